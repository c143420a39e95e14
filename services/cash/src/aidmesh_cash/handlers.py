"""What cash does with each event it consumes: the household projection's handlers (cash's
copy of the household facts, cash needs joined with their households) and the months of
other sectors' rental assistance; what registration says of payees and of other agencies'
lists. Each handler is a line or two: the work is in service.py."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aidmesh_contracts import (
    AssistanceDelivered,
    AssistanceOverlapFound,
    Envelope,
    HouseholdMerged,
    NeedAssessed,
    PayeeWithheld,
    Sector,
)
from aidmesh_contracts.base import Event
from aidmesh_runtime.consumer import Handler, HandlerContext
from aidmesh_runtime.projections import households
from aidmesh_runtime.projections.households import HouseholdFacts

from . import service
from .domain import CashRules


def cash_handlers(rules: CashRules, *, timezone: ZoneInfo) -> dict[type[Event], Handler]:
    async def decide(
        need: NeedAssessed, cause: Envelope, household: HouseholdFacts, ctx: HandlerContext
    ) -> None:
        await service.decide_entitlement(ctx, need, cause, household, rules=rules)

    async def follow_merge(event: HouseholdMerged, ctx: HandlerContext) -> None:
        await service.follow_merge(ctx, event)

    async def note_delivery(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        await service.note_other_assistance(ctx, event, timezone=timezone)

    async def note_overlap(event: AssistanceOverlapFound, ctx: HandlerContext) -> None:
        await service.note_overlap(ctx, event)

    async def payee_withheld(event: PayeeWithheld, ctx: HandlerContext) -> None:
        await service.payee_withheld(ctx, event)

    projection = households.need_handlers(Sector.CASH, decide, on_merged=follow_merge)
    return projection | {
        AssistanceDelivered: note_delivery,
        AssistanceOverlapFound: note_overlap,
        PayeeWithheld: payee_withheld,
    }
