"""Shelter use cases for assistance given without a household case: winterization kits and
rental assistance (guarded against the same assistance twice in a heating season),
collective-centre refurbishment (facility cases), and post-distribution monitoring."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog
from aidmesh_contracts import AssistanceDelivered, FacilityCaseOpened, Location, Modality

from . import domain, repository
from .domain import ShelterRules, UseCode
from .service import NotFound, Tx, known_household

log = structlog.get_logger(__name__)


async def _deliver_to_household(
    tx: Tx, delivered: AssistanceDelivered, *, season: str | None
) -> None:
    """Record and publish a delivery, in the flow of the household's registration (there is
    no case event to be caused by)."""
    assert delivered.household_id is not None
    flow = await repository.flow_of(tx.conn, delivered.household_id)
    await tx.publish(delivered, caused_by=None, correlation_id=flow)
    await repository.insert_delivery(tx.conn, delivered, season=season)
    log.info(
        "assistance_delivered",
        delivery_id=str(delivered.delivery_id),
        activity=delivered.activity,
        season=season,
    )


async def give_winterization_kits(
    tx: Tx,
    household_id: UUID,
    *,
    kits: int,
    modality: Modality,
    value: Decimal | None,
    partner_org: str,
    rules: ShelterRules,
) -> tuple[AssistanceDelivered, str]:
    household = await known_household(tx, household_id)
    previous = await repository.past_deliveries(tx.conn, household.household_id)
    delivered, season = domain.winterization_kits(
        household,
        kits=kits,
        modality=modality,
        value=value,
        previous=previous,
        partner_org=partner_org,
        delivery_id=tx.new_id(),
        rules=rules,
        now=tx.now(),
    )
    await _deliver_to_household(tx, delivered, season=season)
    return delivered, season


async def give_rental_assistance(
    tx: Tx,
    household_id: UUID,
    *,
    monthly_amount: Decimal,
    months: int,
    modality: Modality,
    partner_org: str,
    rules: ShelterRules,
) -> tuple[AssistanceDelivered, str]:
    household = await known_household(tx, household_id)
    previous = await repository.past_deliveries(tx.conn, household.household_id)
    delivered, season = domain.rental_assistance(
        household,
        monthly_amount=monthly_amount,
        months=months,
        modality=modality,
        previous=previous,
        partner_org=partner_org,
        delivery_id=tx.new_id(),
        rules=rules,
        now=tx.now(),
    )
    await _deliver_to_household(tx, delivered, season=season)
    return delivered, season


async def household_deliveries(tx: Tx, household_id: UUID) -> list[dict[str, Any]]:
    household = await known_household(tx, household_id)
    return await repository.deliveries_of(tx.conn, household.household_id)


# ---- collective centres ------------------------------------------------------------------


async def open_facility(
    tx: Tx, *, name: str, capacity: int, location: Location
) -> FacilityCaseOpened:
    """A collective centre taken on for refurbishment. Its name stays in this database; the
    event carries its id, capacity and P-codes only."""
    opened = domain.open_facility_case(
        case_id=tx.new_id(),
        facility_id=tx.new_id(),
        capacity=capacity,
        location=location,
        now=tx.now(),
    )
    envelope = await tx.publish(opened, caused_by=None)
    await repository.insert_facility(
        tx.conn,
        facility_id=opened.facility_id,
        name=name,
        capacity=capacity,
        location=location,
        created_at=opened.opened_at,
    )
    await repository.insert_facility_case(
        tx.conn,
        case_id=opened.case_id,
        facility_id=opened.facility_id,
        opened_at=opened.opened_at,
        envelope=envelope,
    )
    log.info(
        "facility_case_opened", case_id=str(opened.case_id), facility_id=str(opened.facility_id)
    )
    return opened


async def complete_refurbishment(
    tx: Tx,
    case_id: UUID,
    *,
    value: Decimal,
    modality: Modality,
    inspection_passed: bool,
    partner_org: str,
    rules: ShelterRules,
) -> AssistanceDelivered:
    found = await repository.facility_case_for_update(tx.conn, case_id)
    if found is None:
        raise NotFound(f"facility case {case_id} not found")
    case, opened = found
    delivered = domain.complete_refurbishment(
        case,
        value=value,
        modality=modality,
        inspection_passed=inspection_passed,
        partner_org=partner_org,
        delivery_id=tx.new_id(),
        rules=rules,
        now=tx.now(),
    )
    await tx.publish(delivered, caused_by=opened)
    await repository.insert_delivery(tx.conn, delivered, case_id=case_id)
    await repository.mark_refurbished(
        tx.conn, case_id, delivery_id=delivered.delivery_id, closed_at=delivered.delivered_at
    )
    log.info("facility_refurbished", case_id=str(case_id), delivery_id=str(delivered.delivery_id))
    return delivered


# ---- post-distribution monitoring --------------------------------------------------------


class AlreadyMonitored(domain.WrongState):
    pass


async def record_monitoring(
    tx: Tx,
    delivery_id: UUID,
    *,
    received: bool,
    satisfaction: int | None,
    use: UseCode | None,
    monitored_by: str,
    monitored_at: datetime | None,
) -> dict[str, Any]:
    """One follow-up per delivery: was it received, how satisfied, what was it used for."""
    if await repository.delivery(tx.conn, delivery_id) is None:
        raise NotFound(f"delivery {delivery_id} not found")
    domain.check_monitoring(received=received, satisfaction=satisfaction, use=use)
    now = tx.now()
    stored = await repository.insert_monitoring(
        tx.conn,
        delivery_id,
        received=received,
        satisfaction=satisfaction,
        use_code=use.value if use else None,
        monitored_by=monitored_by,
        monitored_at=monitored_at or now,
        recorded_at=now,
    )
    if not stored:
        raise AlreadyMonitored(f"delivery {delivery_id} has a monitoring record already")
    record = await repository.monitoring(tx.conn, delivery_id)
    assert record is not None
    return record
