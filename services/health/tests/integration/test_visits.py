"""Health on the real broker and database: a health need is met by a mobile team visit.

Copies of the services started by `make up` may consume the same topics and react to these
events too, so a test only looks at what its own in-process health service did: rows of its
database and the Kafka records those rows name.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    AssistanceDelivered,
    Composition,
    Event,
    HealthNeedDetails,
    HouseholdRegistered,
    Location,
    Modality,
    NeedAssessed,
    Sector,
    ShelterNeedDetails,
    VisitCompleted,
)
from aidmesh_contracts.events.assessment import NeedDetails
from aidmesh_runtime.testing import Seen, publish

pytestmark = pytest.mark.integration

SUMY = Location(adm1_pcode="UA59")


def is_event(record: Seen, model: type[Event], **fields: Any) -> bool:
    """Whether a record is a `model` event on its topic whose payload has these values.

    Other tests share the broker: a record that does not decode is simply not ours."""
    if record.envelope is None or record.envelope.type != model.event_type:
        return False
    if record.topic != model.topic:
        return False  # e.g. a copy in a dead-letter topic
    try:
        event = record.event()
    except ValueError:
        return False
    return all(getattr(event, name) == value for name, value in fields.items())


def household_registered(size: int = 4) -> HouseholdRegistered:
    return HouseholdRegistered(
        household_id=uuid4(),
        registered_at=datetime.now(UTC),
        channel="hotline",
        location=SUMY,
        displacement_status="returnee",
        size=size,
        composition=Composition(female_60_plus=1, male_60_plus=size - 1),
        consents=frozenset({"registration"}),
    )


def need(household_id: UUID, sector: Sector, details: NeedDetails | None) -> NeedAssessed:
    return NeedAssessed(
        assessment_id=uuid4(),
        household_id=household_id,
        sector=sector,
        severity=3,
        assessed_at=datetime.now(UTC),
        assessed_by="IOM-SU-01",
        details=details,
    )


async def test_a_health_need_is_met_by_a_visit_and_a_delivery_caused_by_it(
    health, producer, database, events
) -> None:
    household = household_registered(size=4)
    registered = await publish(producer, household)
    health_need = need(
        household.household_id,
        Sector.HEALTH,
        HealthNeedDetails(services_needed=frozenset({"mhpss", "chronic_disease_care"})),
    )
    need_envelope = await publish(producer, health_need, caused_by=registered)

    row = await database.eventually(
        "SELECT visit_id, delivery_id FROM visits WHERE need_assessment_id = $1",
        health_need.assessment_id,
        what="the visit for the health need",
    )
    [visited] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, VisitCompleted, visit_id=row["visit_id"]),
        what="VisitCompleted of our visit",
    )
    [delivered] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, AssistanceDelivered, delivery_id=row["delivery_id"]),
        what="AssistanceDelivered of our visit",
    )

    assert visited.envelope is not None and delivered.envelope is not None
    assert visited.envelope.causationid == need_envelope.id
    assert delivered.envelope.causationid == visited.envelope.id
    assert {visited.envelope.correlationid, delivered.envelope.correlationid} == {
        registered.correlationid
    }
    visit = visited.event()
    assert isinstance(visit, VisitCompleted)
    assert (visit.household_id, visit.team_code, visit.persons_seen) == (
        household.household_id,
        "MMT-UA59",
        4,
    )
    assert visit.services_delivered == {"mhpss", "chronic_disease_care"}
    assistance = delivered.event()
    assert isinstance(assistance, AssistanceDelivered)
    assert (assistance.sector, assistance.modality) == (Sector.HEALTH, Modality.SERVICE)
    assert (assistance.quantity, assistance.unit) == (Decimal(2), "consultation")
    assert (assistance.household_id, assistance.persons_reached) == (household.household_id, 4)
    assert delivered.topic == "aidmesh.assistance.delivered.v1"


async def test_completed_visits_are_listed(health, producer, database) -> None:
    household = household_registered()
    registered = await publish(producer, household)
    health_need = need(household.household_id, Sector.HEALTH, None)
    await publish(producer, health_need, caused_by=registered)
    row = await database.eventually(
        "SELECT visit_id FROM visits WHERE need_assessment_id = $1",
        health_need.assessment_id,
        what="the visit for the health need",
    )

    response = await health.get("/visits", params={"adm1_pcode": "UA59"})

    assert response.status_code == 200
    listed = {visit["visit_id"]: visit for visit in response.json()}
    visit = listed[str(row["visit_id"])]
    assert visit["household_id"] == str(household.household_id)
    assert visit["services_delivered"] == ["primary_consultation"]
    assert visit["team_code"] == "MMT-UA59"


async def test_a_need_of_another_sector_does_nothing(health, producer, database) -> None:
    household = household_registered()
    registered = await publish(producer, household)
    shelter_need = need(
        household.household_id, Sector.SHELTER, ShelterNeedDetails(damage_level="medium")
    )
    need_envelope = await publish(producer, shelter_need, caused_by=registered)

    await database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = ANY($1::uuid[]) HAVING count(*) = 2",
        [registered.id, need_envelope.id],
        what="health to have consumed the household and its shelter need",
    )

    assert not await database.conn.fetchval(
        "SELECT count(*) FROM visits WHERE household_id = $1", household.household_id
    )
    assert not await database.conn.fetchval(
        "SELECT count(*) FROM pending_need WHERE household_id = $1", household.household_id
    )
    assert not await database.conn.fetchval(
        "SELECT count(*) FROM outbox WHERE headers @> $1::jsonb",
        json.dumps([["ce_correlationid", str(registered.correlationid)]]),
    )
