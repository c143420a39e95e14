"""Health rules. Pure: no database, no Kafka, no clock.

The walking skeleton completes a visit as soon as a health need's household is known
(a mobile medical team of the household's oblast). Scheduling within team capacity,
no-shows and referrals come later; the events and their causation stay the same.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from aidmesh_contracts import (
    AssistanceDelivered,
    HealthNeedDetails,
    Location,
    Modality,
    NeedAssessed,
    Sector,
    VisitCompleted,
)

DEFAULT_SERVICE = "primary_consultation"


def team_for(location: Location) -> str:
    """The mobile medical team that covers an oblast."""
    return f"MMT-{location.adm1_pcode}"


def services_for(need: NeedAssessed) -> frozenset[str]:
    details = need.details
    if isinstance(details, HealthNeedDetails) and details.services_needed:
        return details.services_needed
    return frozenset({DEFAULT_SERVICE})


def complete_visit(
    need: NeedAssessed,
    *,
    location: Location,
    household_size: int,
    visit_id: UUID,
    delivery_id: UUID,
    partner_org: str,
    now: datetime,
) -> tuple[VisitCompleted, AssistanceDelivered]:
    services = services_for(need)
    visit = VisitCompleted(
        visit_id=visit_id,
        household_id=need.household_id,
        team_code=team_for(location),
        services_delivered=services,
        persons_seen=household_size,
        location=location,
        completed_at=now,
    )
    # One consultation per service delivered; the activity names the main service.
    main_service = DEFAULT_SERVICE if DEFAULT_SERVICE in services else sorted(services)[0]
    delivered = AssistanceDelivered(
        delivery_id=delivery_id,
        household_id=need.household_id,
        sector=Sector.HEALTH,
        activity=f"health.{main_service}",
        modality=Modality.SERVICE,
        quantity=Decimal(len(services)),
        unit="consultation",
        persons_reached=household_size,
        partner_org=partner_org,
        location=location,
        delivered_at=now,
    )
    return visit, delivered
