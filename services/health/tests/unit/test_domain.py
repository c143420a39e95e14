"""Health rules: which services a visit delivers, by which team, and how it is counted."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from aidmesh_contracts import (
    HealthNeedDetails,
    Location,
    Modality,
    NeedAssessed,
    Sector,
)
from aidmesh_health.domain import complete_visit, services_for, team_for

NOW = datetime(2026, 1, 22, 7, 50, tzinfo=UTC)
KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")


def health_need(services: set[str] | None = None, **overrides: Any) -> NeedAssessed:
    details = None if services is None else HealthNeedDetails(services_needed=frozenset(services))
    return NeedAssessed(
        **{
            "assessment_id": uuid4(),
            "household_id": uuid4(),
            "sector": Sector.HEALTH,
            "severity": 3,
            "assessed_at": NOW,
            "assessed_by": "IOM-KH-03",
            "details": details,
        }
        | overrides
    )


def visit_for(need: NeedAssessed, **overrides: Any):  # -> (VisitCompleted, AssistanceDelivered)
    arguments: dict[str, Any] = {
        "location": KHARKIV,
        "household_size": 3,
        "visit_id": uuid4(),
        "delivery_id": uuid4(),
        "partner_org": "IOM",
        "now": NOW,
    } | overrides
    return complete_visit(need, **arguments)


def test_the_services_needed_are_the_services_delivered() -> None:
    need = health_need({"mhpss", "vaccination"})

    assert services_for(need) == {"mhpss", "vaccination"}


def test_a_need_without_details_gets_a_primary_consultation() -> None:
    assert services_for(health_need()) == {"primary_consultation"}


def test_a_need_with_no_services_listed_gets_a_primary_consultation() -> None:
    assert services_for(health_need(set())) == {"primary_consultation"}


def test_the_mobile_team_is_the_one_of_the_household_oblast() -> None:
    assert team_for(KHARKIV) == "MMT-UA63"
    assert team_for(Location(adm1_pcode="UA14")) == "MMT-UA14"


def test_a_visit_records_the_team_services_and_persons_seen() -> None:
    need = health_need({"mhpss"})
    visit_id = uuid4()

    visit, _ = visit_for(need, visit_id=visit_id, household_size=4)

    assert visit.visit_id == visit_id
    assert visit.household_id == need.household_id
    assert visit.team_code == "MMT-UA63"
    assert visit.services_delivered == {"mhpss"}
    assert visit.persons_seen == 4
    assert visit.location == KHARKIV
    assert visit.completed_at == NOW


def test_the_delivery_counts_one_consultation_per_service() -> None:
    _, delivered = visit_for(health_need({"mhpss", "vaccination", "chronic_disease_care"}))

    assert delivered.quantity == Decimal(3)
    assert delivered.unit == "consultation"


def test_the_delivery_is_a_health_service_to_the_household() -> None:
    need = health_need()
    delivery_id = uuid4()

    _, delivered = visit_for(need, delivery_id=delivery_id, household_size=5, partner_org="PIN")

    assert delivered.delivery_id == delivery_id
    assert delivered.household_id == need.household_id
    assert delivered.sector is Sector.HEALTH
    assert delivered.modality is Modality.SERVICE
    assert delivered.persons_reached == 5
    assert delivered.partner_org == "PIN"
    assert delivered.location == KHARKIV
    assert delivered.value is None


def test_the_activity_names_primary_consultation_when_it_is_one_of_the_services() -> None:
    _, delivered = visit_for(health_need({"vaccination", "primary_consultation"}))

    assert delivered.activity == "health.primary_consultation"


def test_otherwise_the_activity_names_the_first_service_alphabetically() -> None:
    _, delivered = visit_for(health_need({"vaccination", "mhpss"}))

    assert delivered.activity == "health.mhpss"
