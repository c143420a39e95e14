"""Multi-purpose cash rules, pure: who is entitled to how much, which households a payment
cycle proposes within its budget, and how a provider's report reconciles.

Every decision carries its explanation (which rule, which inputs) so that a programme
officer, an approver and an auditor can see why a household is paid, waits or is held.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from uuid import UUID

from aidmesh_contracts import NextStep, PaymentOutcome
from aidmesh_runtime import rules as refusals
from aidmesh_runtime.priority import HouseholdPoints

CENT = Decimal("0.01")
#: The rule set an explanation names; a new version when the rules change meaning.
ENTITLEMENT_RULE = "mpca.entitlement.v1"
MPCA = "cash.mpca"


class CashRefused(refusals.RuleRefused):
    """A cash rule refuses the request (HTTP 422)."""


class WrongState(CashRefused, refusals.Conflict):
    """The cycle's state does not allow this step (HTTP 409)."""


class SamePerson(refusals.Forbidden):
    """A cycle is approved by a second person, never by the one who opened it (HTTP 403)."""


#: Points that move a household up a cycle's list (the runtime's, as every sector ranks).
PriorityWeights = HouseholdPoints


@dataclass(frozen=True)
class CashRules:
    """The programme's rules (settings.CashSettings configures them)."""

    #: The Cash Working Group's transfer value per person per month, in UAH.
    transfer_value: Decimal = Decimal("3600.00")
    #: Members paid for: larger households get this many persons' value.
    household_size_cap: int = 5
    default_months: int = 3
    max_months: int = 6
    #: The least JIAF severity of a cash need that makes a household eligible.
    min_severity: int = 3
    eligible_displacement: frozenset[str] = frozenset({"idp", "returnee"})
    priority: PriorityWeights = field(default_factory=PriorityWeights)
    #: What happens to the entitlement of a payment the provider did not pay.
    next_step: Mapping[PaymentOutcome, NextStep] = field(
        default_factory=lambda: MappingProxyType(
            {
                PaymentOutcome.FAILED: NextStep.RETRY_NEXT_CYCLE,
                PaymentOutcome.UNCLAIMED: NextStep.SWITCH_MODALITY,
            }
        )
    )


# ---- months ----------------------------------------------------------------------------


def month_index(month: str) -> int:
    """`YYYY-MM` as a number of months (consecutive months differ by one)."""
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# ---- entitlement -------------------------------------------------------------------------


@dataclass(frozen=True)
class Household:
    """What cash knows of a household (from the household projection): no personal data."""

    household_id: UUID
    size: int
    displacement_status: str
    vulnerabilities: frozenset[str]


@dataclass(frozen=True)
class Entitlement:
    household_id: UUID
    assessment_id: UUID
    severity: int
    eligible: bool
    #: What one month pays (0 when not eligible).
    monthly_amount: Decimal
    priority: int
    explanation: dict[str, Any]


def entitlement(
    household: Household, *, assessment_id: UUID, severity: int, rules: CashRules
) -> Entitlement:
    """The household's monthly MPCA entitlement and priority, with why."""
    reasons = []
    if severity < rules.min_severity:
        reasons.append(
            {
                "code": "severity_below_threshold",
                "message": f"cash need severity {severity} is below {rules.min_severity}",
            }
        )
    if household.displacement_status not in rules.eligible_displacement:
        reasons.append(
            {
                "code": "displacement_status_not_eligible",
                "message": f"{household.displacement_status} is not one of "
                + ", ".join(sorted(rules.eligible_displacement)),
            }
        )
    eligible = not reasons
    members_paid = min(household.size, rules.household_size_cap)
    monthly = (rules.transfer_value * members_paid).quantize(CENT) if eligible else Decimal(0)
    points = rules.priority.points(
        severity=severity, vulnerabilities=household.vulnerabilities, size=household.size
    )
    explanation = {
        "rule": ENTITLEMENT_RULE,
        "inputs": {
            "severity": severity,
            "size": household.size,
            "displacement_status": household.displacement_status,
            "vulnerabilities": sorted(household.vulnerabilities),
        },
        "eligible": eligible,
        "reasons": reasons,
        "amount": {
            "transfer_value_per_person_month": str(rules.transfer_value),
            "household_size_cap": rules.household_size_cap,
            "members_paid": members_paid if eligible else 0,
            "monthly": str(monthly),
        },
        "priority": points,
    }
    return Entitlement(
        household_id=household.household_id,
        assessment_id=assessment_id,
        severity=severity,
        eligible=eligible,
        monthly_amount=monthly,
        priority=points["total"],
        explanation=explanation,
    )


# ---- the list a cycle proposes --------------------------------------------------------------


class LineStatus(StrEnum):
    PROPOSED = "proposed"  # within the budget: paid once the cycle is approved
    WAITING = "waiting"  # eligible, beyond the budget: first in line next cycle
    HELD = "held"  # not paid in this cycle, for `reason`


#: Why a household is held (codes; the API says them in words too).
HOLD_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "already_assisted_in_period": "the household already has MPCA for a month of the cycle",
        "assisted_by_another_agency": "another agency's list of assisted people names the "
        "household for a month of the cycle (its hashed document numbers matched)",
    }
)
#: Flags an approver sees on a proposed household; they do not stop the payment.
FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "shelter_rental_assistance_same_months": "shelter's rental assistance covers a month "
        "of the cycle",
        "unclaimed_before_by_this_modality": "a payment by this modality went unclaimed: "
        "switch the household to another modality (a cycle of its own)",
    }
)


@dataclass(frozen=True)
class Candidate:
    household_id: UUID
    monthly_amount: Decimal
    priority: int
    assessed_at: datetime
    hold: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Line:
    household_id: UUID
    rank: int | None
    amount: Decimal
    status: LineStatus
    reason: str | None
    flags: tuple[str, ...]


def propose(candidates: Iterable[Candidate], *, months: int, budget: Decimal) -> list[Line]:
    """Rank eligible households (priority, then who was assessed first) and propose them
    until the budget runs out; the rest wait, in rank order. No household skips the queue
    because it is cheaper: the first that does not fit, and every one after it, waits."""
    ranked = sorted(
        (c for c in candidates if c.hold is None),
        key=lambda c: (-c.priority, c.assessed_at, c.household_id),
    )
    lines = []
    spent = Decimal(0)
    over = False
    for rank, candidate in enumerate(ranked, start=1):
        amount = (candidate.monthly_amount * months).quantize(CENT)
        over = over or spent + amount > budget
        if not over:
            spent += amount
        status = LineStatus.WAITING if over else LineStatus.PROPOSED
        lines.append(Line(candidate.household_id, rank, amount, status, None, candidate.flags))
    for candidate in candidates:
        if candidate.hold is not None:
            amount = (candidate.monthly_amount * months).quantize(CENT)
            lines.append(
                Line(candidate.household_id, None, amount, LineStatus.HELD, candidate.hold, ())
            )
    return lines


def approver_may_approve(*, opened_by: str, approver: str) -> None:
    if opened_by == approver:
        raise SamePerson(
            f"{approver} opened this cycle: a second person approves it (four-eyes rule)"
        )


# ---- the provider's report -------------------------------------------------------------------

#: Columns of a provider's report (a CSV file with this header row).
REPORT_COLUMNS = ("payment_id", "status", "amount", "paid_at", "reason")
REPORT_STATUSES = ("paid", "failed", "unclaimed")


@dataclass(frozen=True)
class ReportRow:
    line: int  # the file's line number (the header is line 1)
    payment_id: UUID
    status: str
    amount: Decimal
    paid_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class Instructed:
    """A payment as cash instructed it, and what is known of it so far."""

    payment_id: UUID
    amount: Decimal
    status: str  # instructed, paid, failed, unclaimed


@dataclass(frozen=True)
class RowRefusal:
    line: int
    payment_id: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "payment_id": self.payment_id,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class Reconciliation:
    accepted: list[ReportRow]
    refused: list[RowRefusal]
    control_total: Decimal
    paid_total: Decimal  # of the accepted paid rows


class ReportRefused(CashRefused):
    """The whole report is refused (unreadable, or its total does not match its rows)."""


def parse_report(text: str) -> tuple[list[ReportRow], list[RowRefusal]]:
    """The rows of a provider's report; rows that cannot be read are refused, each with
    its line and reason (never its content beyond the payment id)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != REPORT_COLUMNS:
        raise ReportRefused(
            "the report's first line must be the header " + ",".join(REPORT_COLUMNS),
            code="bad_header",
        )
    rows: list[ReportRow] = []
    refused: list[RowRefusal] = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        raw_id = cells[0].strip()[:64] if cells else ""
        if len(cells) != len(REPORT_COLUMNS):
            refused.append(
                RowRefusal(line, raw_id, "bad_row", f"{len(REPORT_COLUMNS)} columns expected")
            )
            continue
        try:
            rows.append(_report_row(line, [c.strip() for c in cells]))
        except ValueError as problem:
            refused.append(RowRefusal(line, raw_id, "bad_row", str(problem)))
    return rows, refused


def _report_row(line: int, cells: Sequence[str]) -> ReportRow:
    raw_id, status, raw_amount, raw_paid_at, reason = cells
    try:
        payment_id = UUID(raw_id)
    except ValueError:
        raise ValueError("payment_id is not a UUID") from None
    if status not in REPORT_STATUSES:
        raise ValueError("status must be one of " + ", ".join(REPORT_STATUSES))
    try:
        amount = Decimal(raw_amount)
    except InvalidOperation:
        raise ValueError("amount is not a decimal number") from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(CENT):
        raise ValueError("amount must be a non-negative amount with at most 2 decimals")
    paid_at = None
    if status == "paid":
        try:
            paid_at = datetime.fromisoformat(raw_paid_at)
        except ValueError:
            raise ValueError("paid_at of a paid row must be an ISO 8601 date-time") from None
        if paid_at.tzinfo is None:
            paid_at = paid_at.replace(tzinfo=UTC)
    if reason and not reason.replace("_", "").isalnum():
        raise ValueError("reason must be a code (letters, digits, underscores)")
    return ReportRow(line, payment_id, status, amount, paid_at, reason.lower() or None)


def reconcile(
    rows: Sequence[ReportRow],
    refused: Sequence[RowRefusal],
    *,
    instructed: Mapping[UUID, Instructed],
    control_total: Decimal,
) -> Reconciliation:
    """Check a report against the cycle's payments. The paid rows must add up to the
    report's control total, or nothing is applied. Row by row: an unknown payment, one
    repeated in the report, one already reported, or an amount that is not the instructed
    one is refused with its reason; the others are accepted."""
    declared_paid = sum((r.amount for r in rows if r.status == "paid"), Decimal(0))
    if declared_paid != control_total:
        raise ReportRefused(
            f"the paid rows add up to {declared_paid:.2f} UAH, not the control total "
            f"{control_total:.2f}: the file is incomplete or altered",
            code="control_total_mismatch",
        )
    seen: set[UUID] = set()
    accepted: list[ReportRow] = []
    refusals_: list[RowRefusal] = list(refused)
    for row in rows:
        known = instructed.get(row.payment_id)
        payment_id = str(row.payment_id)
        if row.payment_id in seen:
            refusals_.append(
                RowRefusal(row.line, payment_id, "repeated", "the payment is on an earlier row")
            )
            continue
        seen.add(row.payment_id)
        if known is None:
            refusals_.append(
                RowRefusal(row.line, payment_id, "unknown_payment", "no such payment in the cycle")
            )
        elif known.status != "instructed":
            refusals_.append(
                RowRefusal(
                    row.line,
                    payment_id,
                    "already_reported",
                    f"an earlier report says {known.status}",
                )
            )
        elif row.status == "paid" and row.amount != known.amount:
            refusals_.append(
                RowRefusal(
                    row.line,
                    payment_id,
                    "amount_mismatch",
                    f"paid {row.amount:.2f} UAH where {known.amount:.2f} was instructed",
                )
            )
        else:
            accepted.append(row)
    paid_total = sum((r.amount for r in accepted if r.status == "paid"), Decimal(0))
    refusals_.sort(key=lambda r: r.line)
    return Reconciliation(accepted, refusals_, control_total, paid_total)
