"""Shelter use cases for household cases and referrals, each inside one transaction (a
handler's, or its own): load, decide with the domain, save the rows and the events together.

Every event a case publishes is caused by the case's previous one (opened → assessed →
planned → completed → closed), so a case reads as one causation chain in its flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from uuid import UUID

import structlog
from aidmesh_contracts import (
    DamageLevel,
    Envelope,
    Modality,
    NeedAssessed,
    RepairCategory,
    RepairPlanned,
    ShelterCaseClosed,
    ShelterNeedDetails,
)
from aidmesh_contracts.events.referral import (
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
)
from aidmesh_contracts.events.registration import (
    ConsentRecorded,
    ConsentWithdrawn,
    HouseholdMerged,
)
from aidmesh_runtime import rules
from aidmesh_runtime.projections.households import HouseholdFacts, household_facts, lock_household
from aidmesh_runtime.transaction import Tx

from . import domain, repository
from .domain import Case, CaseStatus, ReferralStatus, ShelterRules

log = structlog.get_logger(__name__)


class NotFound(LookupError, rules.NotFound):
    """What the request names does not exist here (HTTP 404)."""


async def known_household(tx: Tx, household_id: UUID) -> HouseholdFacts:
    """The household (the survivor, if it was merged), locked for this transaction."""
    await lock_household(tx.conn, household_id)
    household = await household_facts(tx.conn, household_id)
    if household is None:
        raise NotFound(
            f"household {household_id} is not known to shelter (not registered, or its "
            "registration has not arrived yet)"
        )
    if household.household_id != household_id:
        await lock_household(tx.conn, household.household_id)
    return household


async def _locked_case(tx: Tx, case_id: UUID) -> tuple[Case, Envelope]:
    """The case and its latest event's envelope, with its household and its row locked."""
    household_id = await repository.household_of_case(tx.conn, case_id)
    if household_id is None:
        raise NotFound(f"shelter case {case_id} not found")
    await lock_household(tx.conn, household_id)
    found = await repository.case_for_update(tx.conn, case_id)
    assert found is not None  # cases are never deleted
    if found[0].household_id != household_id:  # merged away in between
        await lock_household(tx.conn, found[0].household_id)
    return found


# ---- cases from needs and referrals ----------------------------------------------------


async def open_case_for_need(
    tx: Tx, need: NeedAssessed, cause: Envelope, household: HouseholdFacts, *, rules: ShelterRules
) -> None:
    """An assessed shelter need, its household known, opens a case; a household with a case
    in progress keeps that one (one household, one case), at the higher severity."""
    details = need.details
    damage = (
        details.damage_level if isinstance(details, ShelterNeedDetails) else DamageLevel.UNKNOWN
    )
    case_priority = domain.priority(
        severity=need.severity,
        damage_level=damage,
        vulnerabilities=household.vulnerabilities,
        size=household.size,
        weights=rules.priority,
    )
    active = await repository.active_cases_of(tx.conn, household.household_id)
    if active:
        case = active[0][0]
        await repository.raise_severity(
            tx.conn, case.case_id, severity=need.severity, priority=case_priority
        )
        log.info(
            "shelter_need_joined_case",
            case_id=str(case.case_id),
            assessment_id=str(need.assessment_id),
        )
        return
    opened = domain.open_case(
        case_id=tx.new_id(),
        household_id=household.household_id,  # the survivor, if the need named a merged one
        need_assessment_id=need.assessment_id,
        severity=need.severity,
        damage_level=damage,
        location=household.location,
        now=tx.now(),
    )
    envelope = await tx.publish(opened, caused_by=cause)
    await repository.insert_case(
        tx.conn, opened, envelope, household_size=household.size, priority=case_priority
    )


async def receive_referral(
    tx: Tx, referral: ReferralRequested, cause: Envelope, *, rules: ShelterRules
) -> None:
    """A referral to shelter from another sector: decided now if the household is known,
    else when its registration arrives (topics have no order between them)."""
    if referral.to != domain.SHELTER:
        return
    await lock_household(tx.conn, referral.household_id)
    await repository.insert_inbound_referral(tx.conn, referral, cause)
    await decide_waiting_referrals(tx, referral.household_id, rules=rules)


async def decide_waiting_referrals(tx: Tx, household_id: UUID, *, rules: ShelterRules) -> None:
    household = await household_facts(tx.conn, household_id)
    if household is None:
        return  # the referral waits for its household
    waiting = await repository.waiting_inbound_referrals(
        tx.conn, sorted({household_id, household.household_id})
    )
    for referral, envelope in waiting:
        withdrawn = await repository.withdrawn_purposes(tx.conn, household.household_id)
        active = await repository.active_cases_of(tx.conn, household.household_id)
        decision = domain.take_referral(
            referral,
            household,
            withdrawn=withdrawn,
            active_case=active[0][0].case_id if active else None,
            case_id=tx.new_id(),
            rules=rules,
            now=tx.now(),
        )
        if decision.declined is not None:
            await tx.publish(decision.declined, caused_by=envelope)
            await repository.decide_inbound_referral(
                tx.conn, referral.referral_id, decision="declined", case_id=None, at=tx.now()
            )
            log.info(
                "referral_declined", referral_id=str(referral.referral_id), reason="consent_missing"
            )
            continue
        case_id = active[0][0].case_id if active else None
        if decision.opened is not None:
            opened = decision.opened
            case_id = opened.case_id
            opened_envelope = await tx.publish(opened, caused_by=envelope)
            await repository.insert_case(
                tx.conn,
                opened,
                opened_envelope,
                household_size=household.size,
                priority=domain.priority(
                    severity=opened.severity,
                    damage_level=opened.damage_level,
                    vulnerabilities=household.vulnerabilities,
                    size=household.size,
                    weights=rules.priority,
                ),
                referral_id=referral.referral_id,
            )
        assert decision.accepted is not None
        await tx.publish(decision.accepted, caused_by=envelope)
        await repository.decide_inbound_referral(
            tx.conn, referral.referral_id, decision="accepted", case_id=case_id, at=tx.now()
        )
        log.info("referral_accepted", referral_id=str(referral.referral_id), case_id=str(case_id))


async def household_registered(
    tx: Tx, household_id: UUID, cause: Envelope, *, rules: ShelterRules
) -> None:
    """Remember the household's flow, and decide the referrals that waited for it."""
    # One round trip: the flow remembered, and whether referrals wait (rarely: skip the join).
    if await repository.remember_flow(tx.conn, household_id, cause.correlationid):
        await decide_waiting_referrals(tx, household_id, rules=rules)


# ---- the engineer's and the coordinator's steps ----------------------------------------


async def assess(
    tx: Tx,
    case_id: UUID,
    *,
    damage_level: DamageLevel,
    lines: Sequence[domain.BoqLine],
    assessed_by: str,
    rules: ShelterRules,
) -> domain.Assessment:
    """DamageAssessed; for heavy damage, the referral to state compensation (or the case
    waits for the household's consent)."""
    case, last = await _locked_case(tx, case_id)
    household = await known_household(tx, case.household_id)
    withdrawn = await repository.withdrawn_purposes(tx.conn, case.household_id)
    result = domain.assess_damage(
        case,
        damage_level=damage_level,
        lines=lines,
        assessed_by=assessed_by,
        household=household,
        withdrawn=withdrawn,
        referral_id=tx.new_id(),
        rules=rules,
        now=tx.now(),
    )
    latest = await tx.publish(result.assessed, caused_by=last)
    if result.referral is not None:
        latest = await tx.publish(result.referral, caused_by=latest)
        await repository.insert_referral(tx.conn, result.referral, case_id=case_id, envelope=latest)
    await repository.save_assessment(
        tx.conn,
        case_id,
        status=result.status,
        damage_level=damage_level,
        priority=result.priority,
        assessed_at=result.assessed.assessed_at,
        assessed_by=assessed_by,
        estimated_cost=result.assessed.estimated_cost.amount,
        lines=lines,
        envelope=latest,
    )
    log.info(
        "damage_assessed",
        case_id=str(case_id),
        damage_level=damage_level.value,
        status=result.status.value,
    )
    return result


async def plan(
    tx: Tx,
    case_id: UUID,
    *,
    modality: Modality | None,
    budget: Decimal | None,
    rules: ShelterRules,
) -> RepairPlanned:
    case, last = await _locked_case(tx, case_id)
    planned = domain.plan_repair(case, modality=modality, budget=budget, rules=rules, now=tx.now())
    await _save_plan(tx, planned, caused_by=last)
    return planned


async def _save_plan(tx: Tx, planned: RepairPlanned, *, caused_by: Envelope) -> None:
    envelope = await tx.publish(planned, caused_by=caused_by)
    await repository.save_plan(
        tx.conn,
        planned.case_id,
        category=planned.category,
        modality=planned.modality,
        budget=planned.budget.amount,
        planned_at=planned.planned_at,
        envelope=envelope,
    )


async def plan_in_priority_order(
    tx: Tx, *, oblast: str, envelope: Decimal, rules: ShelterRules
) -> domain.BatchPlan:
    """Plan an oblast's assessed cases, most urgent first, within a budget envelope."""
    cases = await repository.assessed_cases_in(tx.conn, oblast)
    batch = domain.plan_in_priority_order(cases, envelope=envelope, rules=rules, now=tx.now())
    causes = await repository.last_envelopes(tx.conn, [p.case_id for p in batch.planned])
    for planned in batch.planned:
        await _save_plan(tx, planned, caused_by=causes[planned.case_id])
    log.info(
        "repairs_planned",
        oblast=oblast,
        planned=len(batch.planned),
        refused=len(batch.refused),
        remaining_uah=str(batch.remaining),
    )
    return batch


async def complete_repair(
    tx: Tx,
    case_id: UUID,
    *,
    value: Decimal,
    inspection_passed: bool,
    category: RepairCategory | None,
    modality: Modality | None,
    partner_org: str,
) -> domain.Repaired:
    """RepairCompleted, the AssistanceDelivered it gives, and the case closed as repaired."""
    case, last = await _locked_case(tx, case_id)
    repaired = domain.complete_repair(
        case,
        value=value,
        inspection_passed=inspection_passed,
        category=category,
        modality=modality,
        partner_org=partner_org,
        delivery_id=tx.new_id(),
        now=tx.now(),
    )
    completed = await tx.publish(repaired.completed, caused_by=last)
    await tx.publish(repaired.delivered, caused_by=completed)
    closed = await tx.publish(repaired.closed, caused_by=completed)
    await repository.insert_delivery(tx.conn, repaired.delivered, case_id=case_id)
    await repository.mark_repaired(
        tx.conn,
        case_id,
        delivery_id=repaired.delivered.delivery_id,
        value=value,
        closed_at=repaired.closed.closed_at,
        envelope=closed,
    )
    log.info(
        "repair_completed", case_id=str(case_id), delivery_id=str(repaired.delivered.delivery_id)
    )
    return repaired


async def record_referral_outcome(
    tx: Tx, case_id: UUID, *, completed: bool, code: str
) -> tuple[ReferralCompleted | ReferralDeclined, ShelterCaseClosed]:
    """The compensation programme's outcome, as a coordinator learned it: the case closes."""
    case, _ = await _locked_case(tx, case_id)
    found = await repository.open_referral_of_case(tx.conn, case_id)
    if found is None:
        raise domain.WrongState(
            f"case {case_id} is {case.status.value}: it has no open referral to record an "
            "outcome for"
        )
    referral, requested = found
    outcome, closed = domain.record_referral_outcome(
        referral, case, completed=completed, code=code, now=tx.now()
    )
    outcome_envelope = await tx.publish(outcome, caused_by=requested)
    closed_envelope = await tx.publish(closed, caused_by=outcome_envelope)
    await repository.set_referral_status(
        tx.conn,
        referral.referral_id,
        ReferralStatus.COMPLETED if completed else ReferralStatus.DECLINED,
        code=code,
        at=tx.now(),
    )
    await repository.close_case(
        tx.conn,
        case_id,
        reason=closed.reason_code,
        closed_at=closed.closed_at,
        envelope=closed_envelope,
    )
    return outcome, closed


# ---- what other services tell us -------------------------------------------------------


async def follow_referral_answer(
    tx: Tx,
    answer: ReferralAccepted | ReferralDeclined | ReferralCompleted,
    cause: Envelope,
) -> None:
    """The programme we referred a household to answered (an integration published it).
    Answers about referrals we did not make, or already closed (ours, coming back from
    the topic), change nothing."""
    found = await repository.referral_for_update(tx.conn, answer.referral_id)
    if found is None or not found[0].status.open:
        return
    referral, _ = found
    if isinstance(answer, ReferralAccepted):
        await repository.set_referral_status(tx.conn, referral.referral_id, ReferralStatus.ACCEPTED)
        return
    if isinstance(answer, ReferralCompleted):
        status, code, reason = (
            ReferralStatus.COMPLETED,
            answer.outcome_code,
            domain.CLOSED_WHEN_COMPLETED,
        )
    else:
        status, code, reason = (
            ReferralStatus.DECLINED,
            answer.reason_code,
            domain.CLOSED_WHEN_DECLINED,
        )
    await repository.set_referral_status(
        tx.conn, referral.referral_id, status, code=code, at=tx.now()
    )
    case_found = await repository.case_for_update(tx.conn, referral.case_id)
    if case_found is None or case_found[0].status is not CaseStatus.REFERRED:
        return
    case = case_found[0]
    closed = domain.close_case(case, reason=reason, now=tx.now())
    envelope = await tx.publish(closed, caused_by=cause)
    await repository.close_case(
        tx.conn, case.case_id, reason=reason, closed_at=closed.closed_at, envelope=envelope
    )
    log.info("referral_outcome_followed", case_id=str(case.case_id), outcome=code)


async def stop_sharing(
    tx: Tx, withdrawal: ConsentWithdrawn, cause: Envelope, *, rules: ShelterRules
) -> None:
    """Consent to share or refer withdrawn: every open referral of the household to another
    programme is withdrawn (ReferralDeclined, consent_withdrawn, by shelter), its case waits
    for consent again, and nothing is referred until the household consents again."""
    if withdrawal.purpose not in rules.sharing_purposes:
        return
    household = await household_facts(tx.conn, withdrawal.household_id)
    household_id = household.household_id if household else withdrawal.household_id
    if household_id != withdrawal.household_id:
        await lock_household(tx.conn, household_id)
    await repository.record_withdrawal(
        tx.conn, household_id, withdrawal.purpose.value, withdrawal.withdrawn_at
    )
    withdrawn = 0
    for referral, _ in await repository.open_referrals_of(tx.conn, household_id):
        declined = domain.withdraw_referral(referral, reason="consent_withdrawn", now=tx.now())
        envelope = await tx.publish(declined, caused_by=cause)
        await repository.set_referral_status(
            tx.conn,
            referral.referral_id,
            ReferralStatus.DECLINED,
            code="consent_withdrawn",
            at=tx.now(),
        )
        found = await repository.case_for_update(tx.conn, referral.case_id)
        if found is not None and found[0].status is CaseStatus.REFERRED:
            await repository.set_status(
                tx.conn, referral.case_id, CaseStatus.AWAITING_CONSENT, envelope=envelope
            )
        withdrawn += 1
    log.info("sharing_stopped", purpose=withdrawal.purpose.value, referrals_withdrawn=withdrawn)


async def consent_given(
    tx: Tx, consent: ConsentRecorded, cause: Envelope, *, rules: ShelterRules
) -> None:
    """Consent to share or refer recorded: cases that waited for it are referred now."""
    if consent.purpose not in rules.sharing_purposes:
        return
    household = await household_facts(tx.conn, consent.household_id)
    if household is None:
        return
    if household.household_id != consent.household_id:
        await lock_household(tx.conn, household.household_id)
    await repository.forget_withdrawal(tx.conn, household.household_id, consent.purpose.value)
    withdrawn = await repository.withdrawn_purposes(tx.conn, household.household_id)
    for case, _ in await repository.cases_awaiting_consent(tx.conn, household.household_id):
        referral = domain.refer_for_compensation(
            case,
            household=household,
            withdrawn=withdrawn,
            priority=case.priority,
            requested_by=case.assessed_by or rules.organisation,
            referral_id=tx.new_id(),
            rules=rules,
            now=tx.now(),
        )
        if isinstance(referral, str):
            continue  # still missing another consent
        envelope = await tx.publish(referral, caused_by=cause)
        await repository.insert_referral(tx.conn, referral, case_id=case.case_id, envelope=envelope)
        await repository.set_status(tx.conn, case.case_id, CaseStatus.REFERRED, envelope=envelope)
        log.info("referred_after_consent", case_id=str(case.case_id))


async def follow_merge(
    tx: Tx, merge: HouseholdMerged, cause: Envelope, *, rules: ShelterRules
) -> None:
    """A duplicate registration merged into the household that stays: its cases, referrals
    and deliveries are the survivor's now (so its deliveries count against a second kit),
    and of two cases in progress the older stays, the other closes as merged."""
    survivor = merge.household_id
    moved = await repository.repoint_household(
        tx.conn, merged=merge.merged_household_id, survivor=survivor
    )
    active = [case for case, _ in await repository.active_cases_of(tx.conn, survivor)]
    for case in domain.duplicates_after_merge(active):
        open_referral = await repository.open_referral_of_case(tx.conn, case.case_id)
        if open_referral is not None:  # one household, one referral: the kept case's
            referral, _ = open_referral
            declined = domain.withdraw_referral(referral, reason="merged", now=tx.now())
            await tx.publish(declined, caused_by=cause)
            await repository.set_referral_status(
                tx.conn,
                referral.referral_id,
                ReferralStatus.DECLINED,
                code="merged",
                at=tx.now(),
            )
        closed = domain.close_case(case, reason="merged", now=tx.now())
        envelope = await tx.publish(closed, caused_by=cause)
        await repository.close_case(
            tx.conn, case.case_id, reason="merged", closed_at=closed.closed_at, envelope=envelope
        )
    await decide_waiting_referrals(tx, survivor, rules=rules)
    log.info("household_merge_followed", cases_moved=moved, cases_closed=max(0, len(active) - 1))
