"""What health consumes: the household topic (projection), health needs, and referrals."""

from __future__ import annotations

from aidmesh_contracts import (
    ConsentWithdrawn,
    HouseholdMerged,
    HouseholdRegistered,
    HouseholdUpdated,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    Sector,
)
from aidmesh_contracts.base import Event
from aidmesh_runtime.consumer import Handler, HandlerContext
from aidmesh_runtime.projections import households

from . import service
from .service import Health


def handlers(health: Health) -> dict[type[Event], Handler]:
    async def on_merged(event: HouseholdMerged, ctx: HandlerContext) -> None:
        await service.on_household_merged(event, ctx, health)

    async def on_consent_withdrawn(event: ConsentWithdrawn, ctx: HandlerContext) -> None:
        await service.on_consent_withdrawn(event, ctx)

    handlers = households.need_handlers(
        Sector.HEALTH,
        service.need_to_visit_request(health),
        on_merged=on_merged,
        on_consent_withdrawn=on_consent_withdrawn,
    )
    project_registered = handlers[HouseholdRegistered]
    project_updated = handlers[HouseholdUpdated]

    # A referral to health may come before its household: answer it once the household lands.
    async def on_registered(event: HouseholdRegistered, ctx: HandlerContext) -> None:
        await project_registered(event, ctx)
        await service.decide_waiting_referrals(ctx, health, event.household_id)

    async def on_updated(event: HouseholdUpdated, ctx: HandlerContext) -> None:
        await project_updated(event, ctx)
        await service.follow_household_move(event, ctx, health)
        await service.decide_waiting_referrals(ctx, health, event.household_id)

    async def on_referral_requested(event: ReferralRequested, ctx: HandlerContext) -> None:
        await service.receive_referral(event, ctx, health)

    return handlers | {
        HouseholdRegistered: on_registered,
        HouseholdUpdated: on_updated,
        ReferralRequested: on_referral_requested,
        ReferralAccepted: service.track_referral_answer,
        ReferralDeclined: service.track_referral_answer,
        ReferralCompleted: service.track_referral_answer,
    }
