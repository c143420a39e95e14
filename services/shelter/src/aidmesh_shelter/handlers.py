"""What shelter does with each event it consumes: the household projection's handlers (they
keep shelter's copy of the household facts and join needs with households), followed by
shelter's own reactions. Each handler is a few lines: the work is in service.py."""

from __future__ import annotations

from aidmesh_contracts import (
    ConsentRecorded,
    ConsentWithdrawn,
    Envelope,
    HouseholdMerged,
    HouseholdRegistered,
    HouseholdUpdated,
    NeedAssessed,
    Sector,
)
from aidmesh_contracts.base import Event
from aidmesh_contracts.events.referral import (
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
)
from aidmesh_runtime.consumer import Handler, HandlerContext
from aidmesh_runtime.projections import households
from aidmesh_runtime.projections.households import HouseholdFacts

from . import service
from .domain import ShelterRules


def shelter_handlers(rules: ShelterRules) -> dict[type[Event], Handler]:
    async def open_case(
        need: NeedAssessed, cause: Envelope, household: HouseholdFacts, ctx: HandlerContext
    ) -> None:
        await service.open_case_for_need(ctx, need, cause, household, rules=rules)

    async def follow_merge(event: HouseholdMerged, ctx: HandlerContext) -> None:
        await service.follow_merge(ctx, event, ctx.envelope, rules=rules)

    async def stop_sharing(event: ConsentWithdrawn, ctx: HandlerContext) -> None:
        await service.stop_sharing(ctx, event, ctx.envelope, rules=rules)

    projection = households.need_handlers(
        Sector.SHELTER, open_case, on_merged=follow_merge, on_consent_withdrawn=stop_sharing
    )
    project_registration = projection[HouseholdRegistered]
    project_update = projection[HouseholdUpdated]
    project_consent = projection[ConsentRecorded]

    async def on_household_registered(event: HouseholdRegistered, ctx: HandlerContext) -> None:
        await project_registration(event, ctx)
        await service.household_registered(ctx, event.household_id, ctx.envelope, rules=rules)

    async def on_household_updated(event: HouseholdUpdated, ctx: HandlerContext) -> None:
        await project_update(event, ctx)  # may be the first shelter hears of the household
        await service.decide_waiting_referrals(ctx, event.household_id, rules=rules)

    async def on_consent_recorded(event: ConsentRecorded, ctx: HandlerContext) -> None:
        await project_consent(event, ctx)
        await service.consent_given(ctx, event, ctx.envelope, rules=rules)

    async def on_referral_requested(event: ReferralRequested, ctx: HandlerContext) -> None:
        await service.receive_referral(ctx, event, ctx.envelope, rules=rules)

    async def on_referral_answer(
        event: ReferralAccepted | ReferralDeclined | ReferralCompleted, ctx: HandlerContext
    ) -> None:
        await service.follow_referral_answer(ctx, event, ctx.envelope)

    return projection | {
        HouseholdRegistered: on_household_registered,
        HouseholdUpdated: on_household_updated,
        ConsentRecorded: on_consent_recorded,
        ReferralRequested: on_referral_requested,
        ReferralAccepted: on_referral_answer,
        ReferralDeclined: on_referral_answer,
        ReferralCompleted: on_referral_answer,
    }
