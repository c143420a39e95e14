"""Cash use cases, each in one transaction (a handler's, or its own): decide, write, publish.

A household's payment continues the flow of the cash need that entitles it (its events are
caused by that NeedAssessed), so the household's flow in the audit ledger and in tracing
runs from registration to the money received.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import structlog
from aidmesh_contracts import (
    AssistanceDelivered,
    AssistanceOverlapFound,
    Envelope,
    HouseholdMerged,
    Location,
    Modality,
    Money,
    NeedAssessed,
    NextStep,
    PayeeWithheld,
    PaymentConfirmed,
    PaymentCycleApproved,
    PaymentCycleOpened,
    PaymentFailed,
    PaymentInstructed,
    PaymentModality,
    PaymentOutcome,
    Sector,
)
from aidmesh_contracts.base import Event
from aidmesh_runtime import rules as refusals
from aidmesh_runtime.projections.households import HouseholdFacts
from aidmesh_runtime.transaction import Tx, in_turns

from . import domain, repository
from .domain import MPCA, CashRefused, CashRules, WrongState

log = structlog.get_logger(__name__)

#: Other sectors' deliveries that pay a household's costs: flagged when a cycle covers
#: the same months.
RENTAL_ASSISTANCE = "shelter.rental_assistance"


class NotFound(LookupError, refusals.NotFound):
    """What the request names does not exist here (HTTP 404)."""


# ---- from events ---------------------------------------------------------------------------


async def decide_entitlement(
    tx: Tx, need: NeedAssessed, cause: Envelope, household: HouseholdFacts, *, rules: CashRules
) -> None:
    """A cash need, its household known: the household's entitlement, explained."""
    decided = domain.entitlement(
        domain.Household(
            household_id=household.household_id,
            size=household.size,
            displacement_status=household.displacement_status,
            vulnerabilities=household.vulnerabilities,
        ),
        assessment_id=need.assessment_id,
        severity=need.severity,
        rules=rules,
    )
    await repository.save_entitlement(
        tx.conn,
        decided,
        assessed_at=need.assessed_at,
        need_envelope=cause.model_dump_json(),
        decided_at=tx.now(),
    )
    log.info(
        "cash_entitlement_decided",
        household_id=str(household.household_id),
        eligible=decided.eligible,
        monthly_amount=str(decided.monthly_amount),
    )


async def follow_merge(tx: Tx, event: HouseholdMerged) -> None:
    """The months paid to the merged household count for the one that stays."""
    await repository.lock_months(tx.conn)
    both = await repository.follow_merge(
        tx.conn, survivor=event.household_id, merged=event.merged_household_id
    )
    if both:
        log.warning(
            "cash_double_assistance_found_by_merge",
            household_id=str(event.household_id),
            merged_household_id=str(event.merged_household_id),
            months=both,
        )


async def note_other_assistance(tx: Tx, event: AssistanceDelivered, *, timezone: ZoneInfo) -> None:
    """Remember the months shelter's rental assistance covers, for the approver's flags."""
    if event.activity != RENTAL_ASSISTANCE or event.household_id is None:
        return
    local = event.delivered_at.astimezone(timezone)
    first = local.year * 12 + local.month - 1
    await repository.record_other_assistance(
        tx.conn,
        delivery_id=event.delivery_id,
        household_id=event.household_id,
        activity=event.activity,
        first_month=first,
        last_month=first + max(int(event.quantity), 1) - 1,
    )


async def note_overlap(tx: Tx, event: AssistanceOverlapFound) -> None:
    """Another agency gives this household cash for some months: a cycle covering them
    holds it (issue 24's cross-agency de-duplication; registration matched the list)."""
    if event.sector is not Sector.CASH:
        return
    first = domain.month_index(event.first_month)
    await repository.record_overlap(
        tx.conn,
        overlap_id=event.overlap_id,
        household_id=event.household_id,
        agency=event.agency,
        sector=event.sector.value,
        first_month=first,
        last_month=first + event.months - 1,
        found_at=event.found_at,
    )
    log.info("cash_overlap_noted", household_id=str(event.household_id), agency=event.agency)


async def payee_withheld(tx: Tx, event: PayeeWithheld) -> None:
    """Registration left the payee out of the provider's file: the payment is not made."""
    # The cycle's row first, as a report's import takes it before its payments: without
    # it, a batch of these and an import locked the same payments in two orders (deadlock).
    await repository.cycle(tx.conn, event.cycle_id, for_update=True)
    withheld = await repository.withhold(tx.conn, event.payment_id, reason=event.reason.value)
    log.info(
        "cash_payment_withheld",
        payment_id=str(event.payment_id),
        reason=event.reason.value,
        applied=withheld,
    )


# ---- payment cycles ------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleRequest:
    adm1_pcodes: frozenset[str]
    first_month: str
    months: int
    budget: Decimal
    fsp: str
    modality: PaymentModality


async def open_cycle(
    tx: Tx, request: CycleRequest, *, opened_by: str, opened_by_org: str, rules: CashRules
) -> UUID:
    """Open a cycle and propose its list: the eligible households of its oblasts, ranked,
    within the budget; the others waiting or held, each with its reason."""
    if not 1 <= request.months <= rules.max_months:
        raise CashRefused(f"a cycle covers 1 to {rules.max_months} months", field="months")
    first = domain.month_index(request.first_month)
    last = first + request.months - 1
    cycle_id = tx.new_id()
    opened = PaymentCycleOpened(
        cycle_id=cycle_id,
        adm1_pcodes=request.adm1_pcodes,
        first_month=request.first_month,
        months=request.months,
        budget=Money(amount=request.budget),
        fsp=request.fsp,
        modality=request.modality,
        opened_by=opened_by_org,
        opened_at=tx.now(),
    )
    envelope = await tx.publish(opened)
    await repository.insert_cycle(
        tx.conn,
        cycle_id=cycle_id,
        adm1_pcodes=sorted(request.adm1_pcodes),
        first_month=first,
        months=request.months,
        budget=request.budget,
        fsp=request.fsp,
        modality=request.modality.value,
        opened_by_org=opened_by_org,
        opened_by=opened_by,
        opened_at=opened.opened_at,
        opened_envelope=envelope.model_dump_json(),
    )
    candidates = await repository.candidates(
        tx.conn,
        adm1_pcodes=sorted(request.adm1_pcodes),
        first_month=first,
        last_month=last,
        modality=request.modality.value,
    )
    # Pure and long for a large cycle: in a thread, the event loop keeps its turns (the
    # interpreter switches threads every few ms).
    lines = await asyncio.to_thread(
        domain.propose, candidates, months=request.months, budget=request.budget
    )
    await repository.insert_lines(tx.conn, cycle_id, lines)
    log.info("cash_cycle_opened", cycle_id=str(cycle_id), candidates=len(lines))
    return cycle_id


async def approve_cycle(tx: Tx, cycle_id: UUID, *, approver: str, approver_org: str) -> None:
    """A second person approves the proposed list: one PaymentInstructed per household,
    each caused by the household's cash need, and PaymentCycleApproved with the count."""
    cycle = await repository.cycle(tx.conn, cycle_id, for_update=True)
    if cycle is None:
        raise NotFound(f"cycle {cycle_id} not found")
    if cycle["status"] != "proposed":
        raise WrongState(f"cycle {cycle_id} is {cycle['status']}", code="not_proposed")
    domain.approver_may_approve(opened_by=cycle["opened_by"], approver=approver)
    first, months = cycle["first_month"], cycle["months"]
    await repository.lock_months(tx.conn)
    held = await repository.hold_assisted(
        tx.conn, cycle_id, first_month=first, last_month=first + months - 1
    )
    now = tx.now()
    instructions: list[tuple[PaymentInstructed, Envelope]] = []
    async for line in in_turns(await repository.proposed_with_causes(tx.conn, cycle_id)):
        instructions.append(
            (
                PaymentInstructed(
                    payment_id=tx.new_id(),
                    cycle_id=cycle_id,
                    household_id=line["household_id"],
                    amount=Money(amount=line["amount"]),
                    first_month=domain.month_name(first),
                    months=months,
                    fsp=cycle["fsp"],
                    modality=PaymentModality(cycle["modality"]),
                    instructed_at=now,
                ),
                Envelope.model_validate_json(line["need_envelope"]),
            )
        )
    total = sum((instructed.amount.amount for instructed, _ in instructions), Decimal(0))
    approved = PaymentCycleApproved(
        cycle_id=cycle_id,
        payments=len(instructions),
        total=Money(amount=total),
        approved_by=approver_org,
        approved_at=now,
    )
    opened = Envelope.model_validate_json(cycle["opened_envelope"])
    envelopes = await tx.publish_many([(approved, opened), *instructions])
    payments = [
        (
            instructed.payment_id,
            cycle_id,
            instructed.household_id,
            instructed.amount.amount,
            first,
            months,
            envelope.model_dump_json(),
        )
        async for (instructed, _), envelope in in_turns(
            zip(instructions, envelopes[1:], strict=True)
        )
    ]
    await repository.insert_payments(tx.conn, payments)
    await repository.mark_approved(
        tx.conn,
        cycle_id,
        approved_by=approver,
        approved_by_org=approver_org,
        approved_at=now,
        payments=len(instructions),
        total=total,
    )
    log.info(
        "cash_cycle_approved",
        cycle_id=str(cycle_id),
        payments=len(instructions),
        held_since_proposed=held,
    )


# ---- the provider's report -----------------------------------------------------------------


async def import_report(
    tx: Tx,
    cycle_id: UUID,
    text: str,
    *,
    control_total: Decimal,
    imported_by: str,
    rules: CashRules,
) -> dict[str, Any]:
    """Reconcile a provider's report with the cycle's payments: paid rows confirm their
    payment (PaymentConfirmed, AssistanceDelivered), failed and unclaimed ones give the
    household's months back (PaymentFailed, with the next step); rows that do not match a
    payment are refused with their reasons. The same file twice answers the first result."""
    cycle = await repository.cycle(tx.conn, cycle_id, for_update=True)
    if cycle is None:
        raise NotFound(f"cycle {cycle_id} not found")
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    earlier = await repository.report_by_hash(tx.conn, cycle_id, sha256)
    if earlier is not None:
        return json.loads(earlier["result"])  # type: ignore[no-any-return]
    if cycle["status"] != "approved":
        raise WrongState(
            f"cycle {cycle_id} is {cycle['status']}: only an approved cycle has payments",
            code="not_approved",
        )
    instructed = await repository.instructed(tx.conn, cycle_id)
    reconciled = await asyncio.to_thread(  # pure and long, as the proposal
        _reconciled, text, instructed=instructed, control_total=control_total
    )
    report_id = tx.new_id()
    now = tx.now()
    by_id = {row.payment_id: row for row in reconciled.accepted}
    settled = await repository.payments_for_report(tx.conn, list(by_id))
    outcomes: list[tuple[Any, ...]] = []
    first_events: list[tuple[Event, Envelope | None]] = []
    async for payment in in_turns(settled):
        row = by_id[payment["payment_id"]]
        cause = Envelope.model_validate_json(payment["instructed_envelope"])
        event: Event
        if row.status == "paid":
            assert row.paid_at is not None
            event = PaymentConfirmed(
                payment_id=row.payment_id,
                cycle_id=cycle_id,
                household_id=payment["household_id"],
                amount=Money(amount=payment["amount"]),
                fsp=cycle["fsp"],
                paid_at=row.paid_at,
            )
        else:
            outcome = PaymentOutcome(row.status)
            event = PaymentFailed(
                payment_id=row.payment_id,
                cycle_id=cycle_id,
                household_id=payment["household_id"],
                outcome=outcome,
                reason=row.reason,
                next_step=rules.next_step.get(outcome, NextStep.RETRY_NEXT_CYCLE),
                reported_at=now,
            )
        first_events.append((event, cause))
        outcomes.append((row.payment_id, row.status, row.reason, row.paid_at))
    envelopes = await tx.publish_many(first_events)
    await tx.publish_many(
        (_delivered(event, payment, partner_org=cycle["opened_by_org"]), envelope)
        for (event, _), envelope, payment in zip(first_events, envelopes, settled, strict=True)
        if isinstance(event, PaymentConfirmed)
    )
    await repository.settle(tx.conn, report_id, outcomes)
    result = _result(report_id, cycle_id, now, reconciled)
    await repository.insert_report(
        tx.conn,
        report_id=report_id,
        cycle_id=cycle_id,
        sha256=sha256,
        imported_by=imported_by,
        imported_at=now,
        result=result,
    )
    log.info(
        "cash_report_reconciled",
        cycle_id=str(cycle_id),
        report_id=str(report_id),
        accepted=len(reconciled.accepted),
        refused=len(reconciled.refused),
    )
    return result


def _reconciled(
    text: str, *, instructed: dict[UUID, domain.Instructed], control_total: Decimal
) -> domain.Reconciliation:
    rows, unreadable = domain.parse_report(text)
    return domain.reconcile(rows, unreadable, instructed=instructed, control_total=control_total)


def _delivered(
    confirmed: PaymentConfirmed, payment: Any, *, partner_org: str
) -> AssistanceDelivered:
    return AssistanceDelivered(
        delivery_id=confirmed.payment_id,
        household_id=confirmed.household_id,
        sector=Sector.CASH,
        activity=MPCA,
        modality=Modality.CASH,
        quantity=Decimal(payment["months"]),
        unit="month",
        value=confirmed.amount,
        persons_reached=payment["size"],
        partner_org=partner_org,
        location=Location(
            adm1_pcode=payment["adm1_pcode"],
            adm2_pcode=payment["adm2_pcode"],
            adm3_pcode=payment["adm3_pcode"],
        ),
        delivered_at=confirmed.paid_at,
    )


def _result(
    report_id: UUID, cycle_id: UUID, at: datetime, reconciled: domain.Reconciliation
) -> dict[str, Any]:
    def count(status: str) -> int:
        return sum(1 for row in reconciled.accepted if row.status == status)

    return {
        "report_id": str(report_id),
        "cycle_id": str(cycle_id),
        "imported_at": at.isoformat(),
        "paid": count("paid"),
        "failed": count("failed"),
        "unclaimed": count("unclaimed"),
        "paid_total_uah": str(reconciled.paid_total),
        "control_total_uah": str(reconciled.control_total),
        "refused": [refusal.as_dict() for refusal in reconciled.refused],
        "reconciled": not reconciled.refused,
    }
