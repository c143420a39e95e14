"""Protection's reactions to other services' events, each inside the consuming handler's
transaction (inbox row, case rows and outbox rows commit together, once)."""

from __future__ import annotations

from uuid import UUID

import structlog
from aidmesh_contracts import (
    ConsentPurpose,
    ConsentWithdrawn,
    HouseholdMerged,
    NeedAssessed,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    Sector,
)
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.projections.households import household_facts, lock_household
from aidmesh_runtime.transaction import Tx

from . import domain, repository
from .domain import ReferralStatus

log = structlog.get_logger(__name__)

PROTECTION = Sector.PROTECTION.value


async def on_need_assessed(event: NeedAssessed, ctx: HandlerContext) -> None:
    """An assessed protection need opens a confidential case at once.

    It does not wait for the household's facts as other sectors' needs do: opening a case
    needs none of them, and a person at risk must not wait on the order of two topics.
    Consent is checked from the household projection when the case refers.
    """
    if event.sector is not Sector.PROTECTION:
        return
    if await repository.case_of_need(ctx.conn, event.assessment_id):
        return  # the same need sent again under a new event id
    await lock_household(ctx.conn, event.household_id)
    household = await household_facts(ctx.conn, event.household_id)
    opened = domain.open_case_from_need(
        event,
        random_id=ctx.new_id(),
        now=ctx.now(),
        household_id=household.household_id if household else None,
    )
    envelope = await ctx.publish(opened)
    await repository.insert_case(
        ctx.conn,
        domain.new_case(opened),
        opened_envelope=envelope,
        need_assessment_id=event.assessment_id,
    )
    log.info("protection_case_opened", case_ref=opened.case_ref, source=opened.source.value)


async def on_referral_requested(event: ReferralRequested, ctx: HandlerContext) -> None:
    """A referral to protection: accepted (a case opened, or the household's open case
    takes it) or declined with a reason. Referrals to other targets are not ours."""
    if event.to != PROTECTION or event.from_sector is Sector.PROTECTION:
        return
    if await repository.referral_in_seen(ctx.conn, event.referral_id):
        return
    await lock_household(ctx.conn, event.household_id)
    household = await household_facts(ctx.conn, event.household_id)
    household_id = household.household_id if household else event.household_id
    now = ctx.now()
    decline = domain.incoming_referral_decline(event, household.consents if household else None)
    if decline is not None:
        await ctx.publish(
            ReferralDeclined(
                referral_id=event.referral_id,
                household_id=event.household_id,
                declined_by=PROTECTION,
                reason_code=decline,
                declined_at=now,
            )
        )
        await repository.insert_referral_in(
            ctx.conn,
            referral_id=event.referral_id,
            case_ref=None,
            household_id=household_id,
            from_sector=event.from_sector.value,
            status="declined",
            decline_reason=decline,
            received_at=now,
            envelope=ctx.envelope,
        )
        log.info(
            "referral_to_protection_declined", referral_id=str(event.referral_id), reason=decline
        )
        return
    case_ref = await repository.open_case_of_household(ctx.conn, household_id)
    if case_ref is None:
        opened = domain.open_case_from_referral(
            event, household_id=household_id, random_id=ctx.new_id(), now=now
        )
        envelope = await ctx.publish(opened)
        await repository.insert_case(ctx.conn, domain.new_case(opened), opened_envelope=envelope)
        case_ref = opened.case_ref
        log.info("protection_case_opened", case_ref=case_ref, source=opened.source.value)
    await ctx.publish(
        ReferralAccepted(
            referral_id=event.referral_id,
            household_id=event.household_id,
            accepted_by=PROTECTION,
            accepted_at=now,
        )
    )
    await repository.insert_referral_in(
        ctx.conn,
        referral_id=event.referral_id,
        case_ref=case_ref,
        household_id=household_id,
        from_sector=event.from_sector.value,
        status="accepted",
        decline_reason=None,
        received_at=now,
        envelope=ctx.envelope,
    )
    log.info(
        "referral_to_protection_accepted", referral_id=str(event.referral_id), case_ref=case_ref
    )


async def on_referral_accepted(event: ReferralAccepted, ctx: HandlerContext) -> None:
    await _answered(
        event.referral_id, ReferralStatus.ACCEPTED, by=event.accepted_by, code=None, tx=ctx
    )


async def on_referral_declined(event: ReferralDeclined, ctx: HandlerContext) -> None:
    await _answered(
        event.referral_id,
        ReferralStatus.DECLINED,
        by=event.declined_by,
        code=event.reason_code,
        tx=ctx,
    )


async def on_referral_completed(event: ReferralCompleted, ctx: HandlerContext) -> None:
    await _answered(
        event.referral_id,
        ReferralStatus.COMPLETED,
        by=event.completed_by,
        code=event.outcome_code,
        tx=ctx,
    )


async def _answered(
    referral_id: UUID, answer: ReferralStatus, *, by: str, code: str | None, tx: Tx
) -> None:
    """A target's answer to a referral protection made (anything else is not ours)."""
    row = await repository.referral_out_for_update(tx.conn, referral_id)
    if row is None:
        return
    if by != row["target"]:
        # Only the target answers for itself; protection's own declines (consent withdrawn)
        # were recorded when it made them.
        if by != PROTECTION:
            log.warning("referral_answer_from_another_target", referral_id=str(referral_id))
        return
    status = domain.referral_answered(ReferralStatus(row["status"]), answer)
    if status is None:
        return
    await repository.set_referral_out_status(
        tx.conn, referral_id, status=status, answer_code=code, at=tx.now()
    )
    log.info("referral_from_protection_answered", referral_id=str(referral_id), status=status.value)


async def on_consent_withdrawn(event: ConsentWithdrawn, ctx: HandlerContext) -> None:
    """Consent to referrals withdrawn: protection declines its open referrals of the
    household itself (the targets stop), and refers it nowhere from now on (the projection
    no longer lists the consent). The household's cases stay open: case management is not
    a referral."""
    if event.purpose is not ConsentPurpose.REFERRAL:
        return
    household = await household_facts(ctx.conn, event.household_id)
    households = {event.household_id} | ({household.household_id} if household else set())
    now = ctx.now()
    for row in await repository.open_referrals_out(ctx.conn, sorted(households)):
        await repository.set_referral_out_status(
            ctx.conn,
            row["referral_id"],
            status=ReferralStatus.WITHDRAWN,
            answer_code="consent_withdrawn",
            at=now,
        )
        await ctx.publish(
            ReferralDeclined(
                referral_id=row["referral_id"],
                household_id=row["household_id"],
                declined_by=PROTECTION,
                reason_code="consent_withdrawn",
                declined_at=now,
            )
        )
        log.info("referral_withdrawn", referral_id=str(row["referral_id"]))


async def on_household_merged(event: HouseholdMerged, ctx: HandlerContext) -> None:
    """The merged household's cases and referrals now belong to the household that stays
    (the projection follows the merge before this runs)."""
    cases = await repository.repoint_household(
        ctx.conn, merged=event.merged_household_id, survivor=event.household_id
    )
    log.info("protection_cases_repointed", cases=cases)
