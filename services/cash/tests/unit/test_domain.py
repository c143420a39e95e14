"""Cash rules, pure: entitlements and their explanations, the list a cycle proposes within
its budget, and reconciling a provider's report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from aidmesh_cash import domain
from aidmesh_cash.domain import (
    Candidate,
    CashRules,
    Household,
    Instructed,
    LineStatus,
    ReportRefused,
    SamePerson,
)

RULES = CashRules()
T0 = datetime(2027, 1, 10, tzinfo=UTC)


def household(size: int = 4, status: str = "idp", flags: frozenset[str] = frozenset()):
    return Household(uuid4(), size, status, flags)


def decide(h: Household, severity: int = 4) -> domain.Entitlement:
    return domain.entitlement(h, assessment_id=uuid4(), severity=severity, rules=RULES)


def test_an_eligible_household_is_entitled_per_member_up_to_the_cap_with_its_reasons() -> None:
    four = decide(household(size=4))
    eight = decide(household(size=8))

    assert (four.eligible, four.monthly_amount) == (True, Decimal("14400.00"))
    assert eight.monthly_amount == Decimal("18000.00")  # 5 members paid for
    assert eight.explanation["amount"] == {
        "transfer_value_per_person_month": "3600.00",
        "household_size_cap": 5,
        "members_paid": 5,
        "monthly": "18000.00",
    }
    assert eight.explanation["rule"] == "mpca.entitlement.v1"
    assert eight.explanation["inputs"]["size"] == 8


def test_low_severity_and_a_status_outside_the_programme_are_refused_each_with_its_reason() -> None:
    decided = decide(household(status="host_community"), severity=2)

    assert (decided.eligible, decided.monthly_amount) == (False, Decimal(0))
    assert [r["code"] for r in decided.explanation["reasons"]] == [
        "severity_below_threshold",
        "displacement_status_not_eligible",
    ]


def test_priority_adds_severity_capped_vulnerability_and_size_points() -> None:
    decided = decide(
        household(size=6, flags=frozenset({"disability", "child_headed", "chronic_illness"})),
        severity=5,
    )

    # 5 x 10 severity; 10 + 15 + 8 = 33 vulnerability, capped at 20; (6 - 3) x 2 size.
    assert decided.explanation["priority"] == {
        "severity": 50,
        "vulnerability": 20,
        "size": 6,
        "total": 76,
    }
    assert decided.priority == 76


def candidate(priority: int, monthly: str = "10000.00", **kw) -> Candidate:
    return Candidate(
        household_id=kw.pop("household_id", uuid4()),
        monthly_amount=Decimal(monthly),
        priority=priority,
        assessed_at=kw.pop("assessed_at", T0),
        **kw,
    )


def test_a_cycle_proposes_in_priority_order_until_the_budget_runs_out_and_the_rest_wait() -> None:
    low, high, middle = candidate(10), candidate(90), candidate(50)
    cheap_but_last = candidate(5, monthly="100.00")

    lines = domain.propose([low, high, middle, cheap_but_last], months=3, budget=Decimal(65000))

    assert [(li.household_id, li.rank, li.status) for li in lines] == [
        (high.household_id, 1, LineStatus.PROPOSED),
        (middle.household_id, 2, LineStatus.PROPOSED),
        (low.household_id, 3, LineStatus.WAITING),
        # it would fit, but nobody skips the queue for being cheaper
        (cheap_but_last.household_id, 4, LineStatus.WAITING),
    ]
    assert lines[0].amount == Decimal("30000.00")


def test_equal_priority_goes_to_whoever_was_assessed_first() -> None:
    later = candidate(40, assessed_at=T0 + timedelta(days=1))
    earlier = candidate(40, assessed_at=T0)

    lines = domain.propose([later, earlier], months=1, budget=Decimal(10000))

    assert [li.household_id for li in lines if li.status is LineStatus.PROPOSED] == [
        earlier.household_id
    ]


def test_held_households_are_listed_with_their_reason_and_take_no_budget() -> None:
    held = candidate(99, hold="already_assisted_in_period")
    paid = candidate(1)

    lines = domain.propose([held, paid], months=1, budget=Decimal(10000))

    assert [(li.household_id, li.status, li.reason, li.rank) for li in lines] == [
        (paid.household_id, LineStatus.PROPOSED, None, 1),
        (held.household_id, LineStatus.HELD, "already_assisted_in_period", None),
    ]


def test_the_opener_may_not_approve_their_own_cycle() -> None:
    with pytest.raises(SamePerson):
        domain.approver_may_approve(opened_by="user:officer-1", approver="user:officer-1")
    domain.approver_may_approve(opened_by="user:officer-1", approver="user:approver-2")


def test_months_count_across_years() -> None:
    assert domain.month_index("2027-01") - domain.month_index("2026-12") == 1
    assert domain.month_name(domain.month_index("2026-12") + 2) == "2027-02"


# ---- the provider's report -------------------------------------------------------------------

HEADER = "payment_id,status,amount,paid_at,reason\n"


def test_a_report_reconciles_paid_failed_and_refuses_unknown_repeated_and_wrong_amounts() -> None:
    paid, failed, other, wrong = uuid4(), uuid4(), uuid4(), uuid4()
    unknown = uuid4()
    instructed = {
        p: Instructed(p, Decimal("43200.00"), "instructed") for p in (paid, failed, other, wrong)
    }
    instructed[other] = Instructed(other, Decimal("43200.00"), "paid")
    text = HEADER + "\n".join(
        [
            f"{paid},paid,43200.00,2027-02-03T12:00:00+02:00,",
            f"{failed},failed,0,,account_closed",
            f"{unknown},paid,43200.00,2027-02-03T12:00:00+02:00,",
            f"{paid},paid,43200.00,2027-02-03T12:00:00+02:00,",
            f"{other},failed,0,,",
            f"{wrong},paid,40000.00,2027-02-03T12:00:00+02:00,",
            "not-a-uuid,paid,1.00,2027-02-03T12:00:00+02:00,",
        ]
    )
    rows, unreadable = domain.parse_report(text)

    result = domain.reconcile(
        rows, unreadable, instructed=instructed, control_total=Decimal("169600.00")
    )

    assert [(r.payment_id, r.status) for r in result.accepted] == [
        (paid, "paid"),
        (failed, "failed"),
    ]
    assert result.accepted[1].reason == "account_closed"
    assert [(r.line, r.reason) for r in result.refused] == [
        (4, "unknown_payment"),
        (5, "repeated"),
        (6, "already_reported"),
        (7, "amount_mismatch"),
        (8, "bad_row"),
    ]
    assert result.paid_total == Decimal("43200.00")


def test_a_report_whose_paid_rows_miss_the_control_total_is_refused_whole() -> None:
    payment = uuid4()
    rows, unreadable = domain.parse_report(
        HEADER + f"{payment},paid,43200.00,2027-02-03T12:00:00+02:00,\n"
    )

    with pytest.raises(ReportRefused, match="control total") as refused:
        domain.reconcile(
            rows,
            unreadable,
            instructed={payment: Instructed(payment, Decimal("43200.00"), "instructed")},
            control_total=Decimal("86400.00"),
        )
    assert refused.value.code == "control_total_mismatch"


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("{id},paid,12.345,2027-02-03T12:00:00,", "at most 2 decimals"),
        ("{id},paid,NaN,2027-02-03T12:00:00,", "non-negative"),
        ("{id},refunded,1.00,,", "status must be one of"),
        ("{id},paid,1.00,yesterday,", "ISO 8601"),
        ("{id},failed,0,,not a code!", "reason must be a code"),
        ("{id},paid,1.00", "5 columns expected"),
    ],
)
def test_unreadable_rows_are_refused_with_their_line_and_why(row: str, why: str) -> None:
    payment_id = UUID(int=7)
    rows, refused = domain.parse_report(HEADER + row.format(id=payment_id) + "\n")

    assert rows == []
    [refusal] = refused
    assert (refusal.line, refusal.payment_id, refusal.reason) == (2, str(payment_id), "bad_row")
    assert why in refusal.message


def test_a_report_without_the_header_is_refused() -> None:
    with pytest.raises(ReportRefused, match="header"):
        domain.parse_report("id,status\n1,paid\n")
