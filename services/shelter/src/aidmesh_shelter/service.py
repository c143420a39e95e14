"""Shelter use cases, each inside one transaction (a handler's, or its own)."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from aidmesh_contracts import (
    DamageLevel,
    Envelope,
    Modality,
    NeedAssessed,
    RepairCategory,
    ShelterNeedDetails,
)
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.projections.households import HouseholdFacts
from aidmesh_runtime.service import Runtime

from . import domain, repository


class CaseNotFound(LookupError):
    pass


async def open_case(
    need: NeedAssessed, cause: Envelope, household: HouseholdFacts, ctx: HandlerContext
) -> None:
    """An assessed shelter need, its household known, opens a shelter case."""
    details = need.details
    opened = domain.open_case(
        case_id=ctx.new_id(),
        household_id=need.household_id,
        need_assessment_id=need.assessment_id,
        severity=need.severity,
        damage_level=details.damage_level
        if isinstance(details, ShelterNeedDetails)
        else DamageLevel.UNKNOWN,
        location=household.location,
        now=ctx.now(),
    )
    envelope = await ctx.outbox.add(ctx.conn, opened, caused_by=cause)
    await repository.insert_case(ctx.conn, opened, envelope, household.size)


async def complete_repair(
    runtime: Runtime,
    case_id: UUID,
    *,
    category: RepairCategory,
    modality: Modality,
    value_uah: Decimal,
    partner_org: str | None,
) -> UUID:
    """Record a checked repair: RepairCompleted and AssistanceDelivered, once."""
    settings = runtime.settings
    caps = domain.RepairCaps(
        light=settings.light_repair_cap_uah,  # type: ignore[attr-defined]
        medium=settings.medium_repair_cap_uah,  # type: ignore[attr-defined]
    )
    async with runtime.pool.acquire() as conn, conn.transaction():
        found = await repository.case_for_update(conn, case_id)
        if found is None:
            raise CaseNotFound(f"shelter case {case_id} not found")
        case, opened = found
        delivery_id = runtime.new_id()
        repaired, delivered = domain.complete_repair(
            case,
            category=category,
            modality=modality,
            value_uah=value_uah,
            partner_org=partner_org or settings.partner_org,  # type: ignore[attr-defined]
            caps=caps,
            delivery_id=delivery_id,
            now=runtime.clock(),
        )
        repaired_envelope = await runtime.outbox.add(conn, repaired, caused_by=opened)
        await runtime.outbox.add(conn, delivered, caused_by=repaired_envelope)
        await repository.mark_repaired(conn, case_id, delivery_id)
    return delivery_id
