"""The case lifecycle: intake → assessment → case plan → follow-up → closure, with supervisor
review of high-risk plans and of every closure, by someone other than who asked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aidmesh_contracts import CaseSource, ProtectionCaseClosed
from aidmesh_protection import domain
from aidmesh_protection.domain import (
    Actor,
    Case,
    Forbidden,
    Invalid,
    Refused,
    RiskLevel,
    Role,
    Status,
)

NOW = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
CASEWORKER = Actor("olena.k", Role.CASEWORKER)
SUPERVISOR = Actor("iryna.s", Role.SUPERVISOR)
OTHER_SUPERVISOR = Actor("taras.m", Role.SUPERVISOR)


def intake_case(**overrides: object) -> Case:
    case = Case(
        case_ref="PRT-0123456789",
        household_id=uuid4(),
        source=CaseSource.NEED_ASSESSMENT,
        severity=4,
        concern_codes=frozenset({"gbv_risk"}),
        status=Status.INTAKE,
        opened_at=NOW,
        caseworker=CASEWORKER.user_id,
    )
    return replace(case, **overrides)  # type: ignore[arg-type]


def in_follow_up(risk: RiskLevel = RiskLevel.MEDIUM) -> Case:
    case = domain.assess(intake_case(), risk_level=risk, by=CASEWORKER)
    case = domain.propose_plan(case, by=CASEWORKER)
    if case.status is Status.PLAN_IN_REVIEW:
        case = domain.review_plan(case, approve=True, by=SUPERVISOR)
    return domain.record_follow_up(case)


def test_an_assessment_records_the_risk_level() -> None:
    case = domain.assess(intake_case(), risk_level=RiskLevel.MEDIUM, by=CASEWORKER)

    assert (case.status, case.risk_level) == (Status.ASSESSED, RiskLevel.MEDIUM)


def test_a_low_or_medium_risk_plan_goes_into_effect_at_once() -> None:
    assessed = domain.assess(intake_case(), risk_level=RiskLevel.LOW, by=CASEWORKER)

    planned = domain.propose_plan(assessed, by=CASEWORKER)

    assert planned.status is Status.CASE_PLAN
    assert planned.plan_approved_by is None


@pytest.mark.parametrize("risk", [RiskLevel.HIGH, RiskLevel.CRITICAL])
def test_a_high_or_critical_risk_plan_waits_for_a_supervisor(risk: RiskLevel) -> None:
    assessed = domain.assess(intake_case(), risk_level=risk, by=CASEWORKER)

    planned = domain.propose_plan(assessed, by=CASEWORKER)

    assert planned.status is Status.PLAN_IN_REVIEW
    assert planned.review_requested_by == CASEWORKER.user_id
    with pytest.raises(Refused):
        domain.record_follow_up(planned)


def test_an_approved_plan_goes_into_effect_naming_its_approver() -> None:
    planned = domain.propose_plan(
        domain.assess(intake_case(), risk_level=RiskLevel.HIGH, by=CASEWORKER), by=CASEWORKER
    )

    approved = domain.review_plan(planned, approve=True, by=SUPERVISOR)

    assert approved.status is Status.CASE_PLAN
    assert approved.plan_approved_by == SUPERVISOR.user_id
    assert approved.review_requested_by is None


def test_a_rejected_plan_sends_the_case_back_for_a_new_plan() -> None:
    planned = domain.propose_plan(
        domain.assess(intake_case(), risk_level=RiskLevel.CRITICAL, by=CASEWORKER), by=CASEWORKER
    )

    rejected = domain.review_plan(planned, approve=False, by=SUPERVISOR)

    assert rejected.status is Status.ASSESSED
    assert domain.propose_plan(rejected, by=CASEWORKER).status is Status.PLAN_IN_REVIEW


def test_a_supervisor_may_not_approve_a_plan_they_proposed() -> None:
    planned = domain.propose_plan(
        domain.assess(intake_case(), risk_level=RiskLevel.HIGH, by=SUPERVISOR), by=SUPERVISOR
    )

    with pytest.raises(Forbidden, match="another supervisor"):
        domain.review_plan(planned, approve=True, by=SUPERVISOR)
    assert domain.review_plan(planned, approve=True, by=OTHER_SUPERVISOR).status is Status.CASE_PLAN


def test_a_plan_needs_an_assessment_first() -> None:
    with pytest.raises(Refused, match="assess the risk first") as refused:
        domain.propose_plan(intake_case(), by=CASEWORKER)

    assert refused.value.code == "invalid_transition"


def test_there_is_no_review_without_a_plan_waiting() -> None:
    with pytest.raises(Refused) as refused:
        domain.review_plan(intake_case(), approve=True, by=SUPERVISOR)

    assert refused.value.code == "nothing_to_review"


def test_follow_ups_need_a_case_plan_in_effect() -> None:
    assessed = domain.assess(intake_case(), risk_level=RiskLevel.LOW, by=CASEWORKER)

    with pytest.raises(Refused, match="needs a case plan"):
        domain.record_follow_up(assessed)


def test_follow_ups_can_repeat() -> None:
    case = in_follow_up()

    assert domain.record_follow_up(case).status is Status.FOLLOW_UP


def test_a_risk_raised_to_high_during_follow_up_sends_the_unapproved_plan_to_review() -> None:
    case = in_follow_up(RiskLevel.MEDIUM)

    escalated = domain.assess(case, risk_level=RiskLevel.HIGH, by=CASEWORKER)

    assert escalated.status is Status.PLAN_IN_REVIEW
    assert escalated.risk_level is RiskLevel.HIGH


def test_a_risk_raised_on_an_approved_plan_keeps_the_plan_in_effect() -> None:
    case = in_follow_up(RiskLevel.HIGH)

    reassessed = domain.assess(case, risk_level=RiskLevel.CRITICAL, by=CASEWORKER)

    assert (reassessed.status, reassessed.risk_level) == (Status.FOLLOW_UP, RiskLevel.CRITICAL)


def test_closure_waits_for_a_supervisor_and_then_closes_with_its_code() -> None:
    asked = domain.request_closure(in_follow_up(), closure_code="goals_met", by=CASEWORKER)
    assert asked.status is Status.CLOSURE_IN_REVIEW
    with pytest.raises(Refused):
        domain.record_follow_up(asked)

    closed, event = domain.review_closure(asked, approve=True, by=SUPERVISOR, now=NOW)

    assert closed.status is Status.CLOSED
    assert closed.closed_at == NOW
    assert event == ProtectionCaseClosed(
        case_ref=asked.case_ref,
        household_id=asked.household_id,
        closure_code="goals_met",
        closed_at=NOW,
    )


def test_a_rejected_closure_returns_the_case_to_where_it_was() -> None:
    asked = domain.request_closure(in_follow_up(), closure_code="goals_met", by=CASEWORKER)

    resumed, event = domain.review_closure(asked, approve=False, by=SUPERVISOR, now=NOW)

    assert event is None
    assert resumed.status is Status.FOLLOW_UP
    assert resumed.closure_code is None


def test_a_supervisor_may_not_approve_a_closure_they_asked_for() -> None:
    asked = domain.request_closure(in_follow_up(), closure_code="goals_met", by=SUPERVISOR)

    with pytest.raises(Forbidden):
        domain.review_closure(asked, approve=True, by=SUPERVISOR, now=NOW)


def test_goals_are_met_only_after_a_follow_up() -> None:
    assessed = domain.assess(intake_case(), risk_level=RiskLevel.LOW, by=CASEWORKER)

    with pytest.raises(Refused) as refused:
        domain.request_closure(assessed, closure_code="goals_met", by=CASEWORKER)

    assert refused.value.code == "no_follow_up"
    lost = domain.request_closure(assessed, closure_code="lost_contact", by=CASEWORKER)
    assert lost.status is Status.CLOSURE_IN_REVIEW


def test_an_unknown_closure_code_is_invalid() -> None:
    with pytest.raises(Invalid) as refused:
        domain.request_closure(in_follow_up(), closure_code="whatever", by=CASEWORKER)

    assert refused.value.field == "closure_code"


def test_a_closed_case_takes_no_further_step() -> None:
    asked = domain.request_closure(in_follow_up(), closure_code="goals_met", by=CASEWORKER)
    closed, _ = domain.review_closure(asked, approve=True, by=SUPERVISOR, now=NOW)

    for step in (
        lambda c: domain.assess(c, risk_level=RiskLevel.LOW, by=CASEWORKER),
        lambda c: domain.propose_plan(c, by=CASEWORKER),
        domain.record_follow_up,
        lambda c: domain.request_closure(c, closure_code="duplicate", by=CASEWORKER),
        lambda c: domain.assign(c, caseworker="someone"),
        domain.can_take_note,
    ):
        with pytest.raises(Refused):
            step(closed)


def test_a_closure_cannot_be_asked_for_while_a_review_is_pending() -> None:
    planned = domain.propose_plan(
        domain.assess(intake_case(), risk_level=RiskLevel.HIGH, by=CASEWORKER), by=CASEWORKER
    )

    with pytest.raises(Refused) as refused:
        domain.request_closure(planned, closure_code="lost_contact", by=CASEWORKER)

    assert refused.value.code == "review_pending"


def test_an_anonymous_case_is_linked_to_a_household_once() -> None:
    anonymous = intake_case(household_id=None, source=CaseSource.HOTLINE)
    household_id = uuid4()

    linked = domain.link_household(anonymous, household_id=household_id)

    assert linked.household_id == household_id
    assert domain.link_household(linked, household_id=household_id) == linked  # a retry
    with pytest.raises(Refused) as refused:
        domain.link_household(linked, household_id=uuid4())
    assert refused.value.code == "household_already_linked"


def test_a_case_is_assigned_to_a_user_id() -> None:
    assert domain.assign(intake_case(), caseworker="mykola.p").caseworker == "mykola.p"
    with pytest.raises(Invalid):
        domain.assign(intake_case(), caseworker="not a user id")
