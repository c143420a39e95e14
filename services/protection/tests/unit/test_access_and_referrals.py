"""Who may do what to a case, and when protection refers (consent) or takes a referral."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aidmesh_contracts import (
    CaseSource,
    ConsentPurpose,
    ReferralRequested,
    Sector,
    Urgency,
)
from aidmesh_protection import domain
from aidmesh_protection.domain import (
    Action,
    Actor,
    Case,
    Invalid,
    ReferralStatus,
    Refused,
    Role,
    Status,
)

NOW = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
OLENA = Actor("olena.k", Role.CASEWORKER)
MYKOLA = Actor("mykola.p", Role.CASEWORKER)
SUPERVISOR = Actor("iryna.s", Role.SUPERVISOR)
AUDITOR = Actor("audit.1", Role.AUDITOR)


def case_of(caseworker: str | None = "olena.k", **fields: object) -> Case:
    values: dict[str, object] = {
        "case_ref": "PRT-0123456789",
        "household_id": uuid4(),
        "source": CaseSource.HOTLINE,
        "severity": 4,
        "concern_codes": frozenset(),
        "status": Status.INTAKE,
        "opened_at": NOW,
        "caseworker": caseworker,
    }
    return Case(**(values | fields))  # type: ignore[arg-type]


# ---- access ------------------------------------------------------------------------------


def test_a_caseworker_works_on_the_cases_assigned_to_them() -> None:
    for action in (Action.VIEW_CASE, Action.ASSESS, Action.REFER, Action.REQUEST_CLOSURE):
        assert domain.access_denial(OLENA, action, case_of("olena.k")) is None


def test_a_caseworker_may_not_read_another_caseworkers_case() -> None:
    assert domain.access_denial(MYKOLA, Action.VIEW_CASE, case_of("olena.k")) == (
        "the case is not assigned to you"
    )


def test_a_caseworker_may_not_read_an_unassigned_case() -> None:
    assert domain.access_denial(OLENA, Action.VIEW_CASE, case_of(None)) is not None


@pytest.mark.parametrize("action", [Action.ASSIGN, Action.REVIEW_PLAN, Action.REVIEW_CLOSURE])
def test_assigning_and_reviewing_are_for_supervisors(action: Action) -> None:
    assert domain.access_denial(OLENA, action, case_of("olena.k")) is not None
    assert domain.access_denial(SUPERVISOR, action, case_of("olena.k")) is None


def test_a_supervisor_reads_every_case() -> None:
    assert domain.access_denial(SUPERVISOR, Action.VIEW_CASE, case_of("olena.k")) is None
    assert domain.access_denial(SUPERVISOR, Action.VIEW_CASE, case_of(None)) is None


def test_an_auditor_reads_metadata_and_the_access_log_but_no_narrative() -> None:
    assert domain.view_for(AUDITOR) is Action.VIEW_METADATA
    assert domain.access_denial(AUDITOR, Action.VIEW_METADATA, case_of()) is None
    assert domain.access_denial(AUDITOR, Action.READ_ACCESS_LOG) is None
    assert domain.access_denial(AUDITOR, Action.VIEW_CASE, case_of()) is not None
    for action in (Action.ASSESS, Action.ADD_NOTE, Action.REFER, Action.HOTLINE_INTAKE):
        assert domain.access_denial(AUDITOR, action, case_of()) is not None


def test_caseworkers_and_supervisors_read_cases_in_full_but_not_the_access_log() -> None:
    assert domain.view_for(OLENA) is Action.VIEW_CASE
    assert domain.view_for(SUPERVISOR) is Action.VIEW_CASE
    assert domain.access_denial(OLENA, Action.READ_ACCESS_LOG) is not None
    assert domain.access_denial(SUPERVISOR, Action.READ_ACCESS_LOG) is not None


def test_a_hotline_call_taken_by_a_caseworker_stays_with_them() -> None:
    assert domain.hotline_caseworker(OLENA) == "olena.k"
    assert domain.hotline_caseworker(SUPERVISOR) is None


# ---- referrals out -----------------------------------------------------------------------


def refer(case: Case, consents: set[str] | None, **overrides: object) -> ReferralRequested:
    values: dict[str, object] = {
        "household_id": case.household_id if consents is not None else None,
        "household_consents": consents,
        "to": "shelter",
        "reason_code": "safe_shelter",
        "urgency": Urgency.PRIORITY,
        "referral_id": uuid4(),
        "requested_by": "IOM-PROTECTION",
        "now": NOW,
    }
    return domain.refer(case, **(values | overrides))  # type: ignore[arg-type]


def test_a_referral_with_consent_names_household_target_urgency_and_reason_only() -> None:
    case = case_of()

    referral = refer(case, {"registration", "referral"})

    assert referral.household_id == case.household_id
    assert (referral.from_sector, referral.to) == (Sector.PROTECTION, "shelter")
    assert (referral.reason_code, referral.urgency) == ("safe_shelter", Urgency.PRIORITY)
    assert referral.consent_purpose is ConsentPurpose.REFERRAL


def test_a_referral_goes_to_the_household_that_stays_after_a_merge() -> None:
    survivor = uuid4()

    referral = refer(case_of(), {"referral"}, household_id=survivor)

    assert referral.household_id == survivor


def test_no_referral_without_consent_to_be_referred() -> None:
    with pytest.raises(Refused) as refused:
        refer(case_of(), {"registration", "data_sharing"})

    assert refused.value.code == "no_referral_consent"


def test_no_referral_for_a_household_protection_does_not_know() -> None:
    with pytest.raises(Refused) as refused:
        refer(case_of(), None)

    assert refused.value.code == "household_unknown"


def test_an_anonymous_case_cannot_be_referred() -> None:
    with pytest.raises(Refused, match="anonymous") as refused:
        refer(case_of(household_id=None), None)

    assert refused.value.code == "no_household"


def test_a_closed_case_is_not_referred() -> None:
    with pytest.raises(Refused):
        refer(case_of(status=Status.CLOSED), {"referral"})


def test_a_referral_reason_names_the_service_needed_never_the_concern() -> None:
    with pytest.raises(Invalid) as refused:
        refer(case_of(), {"referral"}, reason_code="gbv_survivor")

    assert refused.value.field == "reason_code"


def test_protection_does_not_refer_to_itself() -> None:
    with pytest.raises(Invalid):
        refer(case_of(), {"referral"}, to="protection")


def test_the_targets_answers_move_an_open_referral_once() -> None:
    requested, accepted = ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED
    completed = ReferralStatus.COMPLETED

    assert domain.referral_answered(requested, accepted) is accepted
    assert domain.referral_answered(accepted, completed) is completed
    assert domain.referral_answered(accepted, accepted) is None
    assert domain.referral_answered(completed, ReferralStatus.DECLINED) is None
    assert domain.referral_answered(ReferralStatus.WITHDRAWN, accepted) is None


# ---- referrals in ------------------------------------------------------------------------


def referral_to_protection(purpose: ConsentPurpose = ConsentPurpose.REFERRAL) -> ReferralRequested:
    return ReferralRequested(
        referral_id=uuid4(),
        household_id=uuid4(),
        from_sector=Sector.HEALTH,
        to="protection",
        reason_code="gbv_disclosure",
        urgency=Urgency.EMERGENCY,
        consent_purpose=purpose,
        requested_by="MMT-KH-01",
        requested_at=NOW,
    )


def test_a_referral_with_consent_is_accepted() -> None:
    assert domain.incoming_referral_decline(referral_to_protection(), {"referral"}) is None


def test_a_referral_for_a_household_not_known_yet_is_taken_on_trust() -> None:
    assert domain.incoming_referral_decline(referral_to_protection(), None) is None


def test_a_referral_for_a_household_without_referral_consent_is_declined() -> None:
    assert domain.incoming_referral_decline(referral_to_protection(), {"registration"}) == (
        "no_referral_consent"
    )


def test_a_referral_checked_against_another_consent_is_declined() -> None:
    referral = referral_to_protection(ConsentPurpose.DATA_SHARING)

    assert domain.incoming_referral_decline(referral, {"referral"}) == (
        "consent_purpose_not_referral"
    )


def test_a_case_opened_from_a_referral_takes_its_urgency_as_severity_and_reason_as_concern() -> (
    None
):
    referral = referral_to_protection()

    opened = domain.open_case_from_referral(
        referral, household_id=referral.household_id, random_id=uuid4(), now=NOW
    )

    assert (opened.source, opened.severity) == (CaseSource.REFERRAL, 5)
    assert opened.concern_codes == {"gbv_disclosure"}
