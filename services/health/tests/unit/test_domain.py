"""Health rules: priority, planning visits within team capacity and geography, visits
completed or missed, merges, and referrals checked against consent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    HealthNeedDetails,
    Location,
    Modality,
    NeedAssessed,
    Sector,
    Urgency,
)
from aidmesh_health.domain import (
    Assignment,
    BacklogReason,
    ConsentMissing,
    HealthRuleError,
    ReferralAnswer,
    Team,
    Visit,
    VisitNotOpen,
    VisitRequest,
    answered_status,
    complete_visit,
    duplicate_visits,
    incoming_referral_decline,
    miss_visit,
    plan_visits,
    refer,
    reschedule_after_miss,
    services_for_need,
    services_for_referral,
    visit_priority,
    visit_scheduled,
)

NOW = datetime(2026, 1, 22, 7, 50, tzinfo=UTC)
DAY1 = date(2026, 1, 23)
DAY2 = DAY1 + timedelta(days=1)
KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")
ALL = frozenset({"primary_consultation", "mhpss", "vaccination", "ncd_followup"})


def team(code: str = "MMT-KH-01", **overrides: Any) -> Team:
    values: dict[str, Any] = {
        "team_code": code,
        "home_oblast": "UA63",
        "oblasts": frozenset({"UA63"}),
        "daily_capacity": 2,
        "services": ALL,
    }
    return Team(**(values | overrides))


def request(
    priority: int = 40,
    *,
    oblast: str = "UA63",
    services: set[str] | None = None,
    received_at: datetime = NOW,
    request_id: UUID | None = None,
    not_before: date | None = None,
) -> VisitRequest:
    return VisitRequest(
        request_id=request_id or uuid4(),
        oblast=oblast,
        services=frozenset(services or {"primary_consultation"}),
        priority=priority,
        received_at=received_at,
        not_before=not_before,
    )


def plan(requests: list[VisitRequest], teams: list[Team], **kwargs: Any):
    arguments: dict[str, Any] = {"booked": {}, "first_day": DAY1, "horizon_days": 14} | kwargs
    return plan_visits(requests, teams=teams, **arguments)


def days(result: Any) -> dict[UUID, date]:
    return {a.request_id: a.day for a in result.assignments}


def visit(**overrides: Any) -> Visit:
    values: dict[str, Any] = {
        "visit_id": uuid4(),
        "household_id": uuid4(),
        "request_id": uuid4(),
        "team_code": "MMT-KH-01",
        "status": "scheduled",
        "scheduled_for": DAY1,
        "services_planned": frozenset({"mhpss"}),
        "priority": 40,
        "location": KHARKIV,
    }
    return Visit(**(values | overrides))


# ---- priority --------------------------------------------------------------------------


def test_a_more_severe_need_comes_first() -> None:
    assert visit_priority(severity=5, vulnerabilities=()) < visit_priority(
        severity=4, vulnerabilities=()
    )


def test_vulnerability_orders_households_of_the_same_severity() -> None:
    plain = visit_priority(severity=3, vulnerabilities=())
    pregnant = visit_priority(severity=3, vulnerabilities={"pregnant_or_lactating"})

    assert pregnant < plain


def test_vulnerability_never_puts_a_less_severe_need_first() -> None:
    every_flag = {
        "pregnant_or_lactating",
        "chronic_illness",
        "disability",
        "elderly_headed",
        "child_headed",
        "unaccompanied_minor",
    }

    assert visit_priority(severity=4, vulnerabilities=()) < visit_priority(
        severity=3, vulnerabilities=every_flag
    )


def test_an_emergency_referral_goes_before_a_routine_one() -> None:
    routine = visit_priority(severity=3, vulnerabilities=(), urgency=Urgency.ROUTINE)
    emergency = visit_priority(severity=3, vulnerabilities=(), urgency=Urgency.EMERGENCY)

    assert emergency < routine


def test_priority_stays_between_1_and_100() -> None:
    assert (
        visit_priority(
            severity=5, vulnerabilities={"disability", "chronic_illness"}, urgency=Urgency.EMERGENCY
        )
        == 1
    )
    assert 1 <= visit_priority(severity=1, vulnerabilities=()) <= 100


# ---- services --------------------------------------------------------------------------


def health_need(services: set[str] | None) -> NeedAssessed:
    details = None if services is None else HealthNeedDetails(services_needed=frozenset(services))
    return NeedAssessed(
        assessment_id=uuid4(),
        household_id=uuid4(),
        sector=Sector.HEALTH,
        severity=3,
        assessed_at=NOW,
        assessed_by="IOM-KH-03",
        details=details,
    )


def test_a_need_asks_for_the_services_it_lists() -> None:
    assert services_for_need(health_need({"mhpss", "vaccination"})) == {"mhpss", "vaccination"}


def test_a_need_without_services_asks_for_a_primary_consultation() -> None:
    assert services_for_need(health_need(None)) == {"primary_consultation"}
    assert services_for_need(health_need(set())) == {"primary_consultation"}


def test_a_need_for_services_no_team_offers_still_gets_a_primary_consultation() -> None:
    assert services_for_need(health_need({"dentistry"})) == {"primary_consultation"}
    assert services_for_need(health_need({"dentistry", "mhpss"})) == {"mhpss"}


def test_a_referral_for_a_service_asks_for_it_and_any_other_for_a_consultation() -> None:
    assert services_for_referral("mhpss") == {"mhpss"}
    assert services_for_referral("suspected_violence") == {"primary_consultation"}


# ---- planning --------------------------------------------------------------------------


def test_the_most_urgent_requests_take_the_first_day_within_capacity() -> None:
    low, high, middle = request(55), request(10), request(25)

    result = plan([low, high, middle], [team(daily_capacity=2)])

    assert days(result) == {high.request_id: DAY1, middle.request_id: DAY1, low.request_id: DAY2}
    assert result.backlog == {}


def test_visits_already_booked_use_up_the_day() -> None:
    first = request(10)

    result = plan([first], [team(daily_capacity=2)], booked={("MMT-KH-01", DAY1): 2})

    assert days(result) == {first.request_id: DAY2}


def test_each_team_has_its_own_daily_capacity() -> None:
    requests = [request(10), request(20), request(30)]
    teams = [team("MMT-A", daily_capacity=1), team("MMT-B", daily_capacity=2)]

    result = plan(requests, teams)

    assert [(a.team_code, a.day) for a in result.assignments] == [
        ("MMT-A", DAY1),
        ("MMT-B", DAY1),
        ("MMT-B", DAY1),
    ]


def test_a_team_serves_only_the_oblasts_it_covers() -> None:
    sumy = request(10, oblast="UA59")

    result = plan([sumy], [team(oblasts=frozenset({"UA63"}))])

    assert result.assignments == ()
    assert result.backlog == {sumy.request_id: BacklogReason.NO_TEAM_FOR_AREA}


def test_a_team_covering_another_oblast_serves_it() -> None:
    sumy = request(10, oblast="UA59")

    result = plan([sumy], [team(oblasts=frozenset({"UA63", "UA59"}))])

    assert days(result) == {sumy.request_id: DAY1}


def test_a_team_must_offer_a_service_asked_for() -> None:
    srh = request(10, services={"srh"})

    result = plan([srh], [team(services=frozenset({"primary_consultation"}))])

    assert result.backlog == {srh.request_id: BacklogReason.NO_TEAM_FOR_SERVICE}


def test_the_team_offering_more_of_the_services_is_chosen_and_brings_what_it_offers() -> None:
    both = request(10, services={"mhpss", "vaccination"})
    teams = [
        team("MMT-A", services=frozenset({"mhpss"})),
        team("MMT-B", services=frozenset({"mhpss", "vaccination"}), daily_capacity=1),
    ]

    result = plan([both], teams)

    [assignment] = result.assignments
    assert (assignment.team_code, assignment.services) == ("MMT-B", {"mhpss", "vaccination"})


def test_a_team_offering_some_of_the_services_brings_those() -> None:
    both = request(10, services={"mhpss", "srh"})

    result = plan([both], [team(services=frozenset({"mhpss", "primary_consultation"}))])

    assert result.assignments[0].services == {"mhpss"}


def test_equal_priority_goes_to_who_asked_first() -> None:
    later = request(40, received_at=NOW)
    earlier = request(40, received_at=NOW - timedelta(hours=1))

    result = plan([later, earlier], [team(daily_capacity=1)])

    assert days(result) == {earlier.request_id: DAY1, later.request_id: DAY2}


def test_a_full_tie_is_settled_by_the_request_id_whatever_the_input_order() -> None:
    a = request(40, request_id=UUID(int=1))
    b = request(40, request_id=UUID(int=2))

    assert days(plan([b, a], [team(daily_capacity=1)])) == {a.request_id: DAY1, b.request_id: DAY2}
    assert days(plan([a, b], [team(daily_capacity=1)])) == {a.request_id: DAY1, b.request_id: DAY2}


def test_a_request_with_no_room_within_the_horizon_waits_in_the_backlog() -> None:
    requests = [request(10), request(20), request(30)]

    result = plan(requests, [team(daily_capacity=1)], horizon_days=2)

    assert len(result.assignments) == 2
    assert result.backlog == {requests[2].request_id: BacklogReason.NO_CAPACITY}


def test_a_request_is_not_planned_before_its_earliest_day() -> None:
    later = request(10, not_before=DAY1 + timedelta(days=3))

    assert days(plan([later], [team()])) == {later.request_id: DAY1 + timedelta(days=3)}


def test_the_home_team_goes_first_when_two_teams_have_room() -> None:
    teams = [
        team("MMT-A", home_oblast="UA59", oblasts=frozenset({"UA59", "UA63"})),
        team("MMT-Z", home_oblast="UA63", oblasts=frozenset({"UA63"})),
    ]

    result = plan([request(10)], teams)

    assert result.assignments[0].team_code == "MMT-Z"


def test_an_inactive_team_is_not_planned() -> None:
    waiting = request(10)

    result = plan([waiting], [team(active=False)])

    assert result.backlog == {waiting.request_id: BacklogReason.NO_TEAM_FOR_AREA}


# ---- visits ----------------------------------------------------------------------------


def test_a_scheduled_visit_names_team_day_services_and_priority() -> None:
    assignment = Assignment(uuid4(), "MMT-KH-01", DAY1, frozenset({"mhpss"}))
    household_id, visit_id, previous = uuid4(), uuid4(), uuid4()

    event = visit_scheduled(
        assignment,
        visit_id=visit_id,
        household_id=household_id,
        priority=25,
        location=KHARKIV,
        rescheduled_from=previous,
        now=NOW,
    )

    assert (event.visit_id, event.household_id, event.team_code) == (
        visit_id,
        household_id,
        "MMT-KH-01",
    )
    assert (event.scheduled_for, event.services_planned, event.priority) == (DAY1, {"mhpss"}, 25)
    assert (event.rescheduled_from, event.location, event.scheduled_at) == (previous, KHARKIV, NOW)


def complete(v: Visit, **overrides: Any):
    arguments: dict[str, Any] = {
        "services_delivered": frozenset({"mhpss", "vaccination"}),
        "persons_seen": 3,
        "team_services": ALL,
        "partner_org": "IOM",
        "new_id": uuid4,
        "now": NOW,
    } | overrides
    return complete_visit(v, **arguments)


def test_a_completed_visit_records_team_services_and_persons_seen() -> None:
    v = visit()

    completed, _ = complete(v)

    assert (completed.visit_id, completed.household_id, completed.team_code) == (
        v.visit_id,
        v.household_id,
        "MMT-KH-01",
    )
    assert completed.services_delivered == {"mhpss", "vaccination"}
    assert (completed.persons_seen, completed.location, completed.completed_at) == (3, KHARKIV, NOW)


def test_each_service_delivered_is_one_visit_of_its_activity() -> None:
    v = visit()

    _, deliveries = complete(v, partner_org="PIN")

    assert [d.activity for d in deliveries] == ["health.mhpss", "health.vaccination"]
    for delivered in deliveries:
        assert (delivered.sector, delivered.modality) == (Sector.HEALTH, Modality.SERVICE)
        assert (delivered.quantity, delivered.unit) == (Decimal(1), "visit")
        assert (delivered.household_id, delivered.persons_reached) == (v.household_id, 3)
        assert (delivered.partner_org, delivered.location) == ("PIN", KHARKIV)
        assert delivered.value is None
    assert len({d.delivery_id for d in deliveries}) == 2


def test_a_team_cannot_report_a_service_it_does_not_offer() -> None:
    with pytest.raises(HealthRuleError, match="does not offer srh") as refused:
        complete(visit(), services_delivered=frozenset({"srh"}))

    assert refused.value.field == "services_delivered"


def test_only_a_scheduled_visit_can_be_completed_or_missed() -> None:
    done = visit(status="completed")

    with pytest.raises(VisitNotOpen):
        complete(done)
    with pytest.raises(VisitNotOpen):
        miss_visit(done, reason_code="no_show", now=NOW)


def test_a_missed_visit_says_why() -> None:
    v = visit()

    missed = miss_visit(v, reason_code="no_access", now=NOW)

    assert (missed.visit_id, missed.reason_code, missed.recorded_at) == (
        v.visit_id,
        "no_access",
        NOW,
    )


def test_missed_visits_are_rescheduled_up_to_a_bound() -> None:
    assert reschedule_after_miss(missed_so_far=2, max_missed=3)
    assert not reschedule_after_miss(missed_so_far=3, max_missed=3)


def test_after_a_merge_the_later_visit_with_the_same_services_is_the_duplicate() -> None:
    earlier = visit(scheduled_for=DAY1)
    later = visit(scheduled_for=DAY2)

    assert duplicate_visits([later, earlier]) == [later]


def test_after_a_merge_a_visit_bringing_other_services_stays() -> None:
    mhpss = visit(scheduled_for=DAY1, services_planned=frozenset({"mhpss"}))
    vaccination = visit(scheduled_for=DAY2, services_planned=frozenset({"vaccination"}))

    assert duplicate_visits([mhpss, vaccination]) == []


# ---- referrals -------------------------------------------------------------------------


def referral(**overrides: Any):
    arguments: dict[str, Any] = {
        "referral_id": uuid4(),
        "household_id": uuid4(),
        "to": "protection",
        "reason_code": "suspected_violence",
        "urgency": Urgency.PRIORITY,
        "consents": frozenset({"registration", "referral"}),
        "requested_by": "MMT-KH-01",
        "now": NOW,
    } | overrides
    return refer(**arguments)


def test_a_referral_with_consent_names_target_reason_and_consent_checked() -> None:
    event = referral(to="external.rehabilitation_centre", reason_code="rehabilitation")

    assert (event.from_sector, event.to, event.reason_code) == (
        Sector.HEALTH,
        "external.rehabilitation_centre",
        "rehabilitation",
    )
    assert (event.consent_purpose.value, event.requested_by) == ("referral", "MMT-KH-01")


def test_without_referral_consent_nothing_is_referred() -> None:
    with pytest.raises(ConsentMissing):
        referral(consents=frozenset({"registration", "data_sharing"}))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"to": "housing"}, "to"),
        ({"to": "health"}, "to"),
        ({"reason_code": "depression"}, "reason_code"),  # a diagnosis is not a reason code
    ],
)
def test_a_referral_goes_to_a_known_target_for_a_known_reason(
    overrides: dict[str, str], field: str
) -> None:
    with pytest.raises(HealthRuleError) as refused:
        referral(**overrides)

    assert refused.value.field == field


def test_the_targets_answers_move_an_outgoing_referral_on_and_final_states_stay() -> None:
    assert answered_status("requested", ReferralAnswer.ACCEPTED) == "accepted"
    assert answered_status("accepted", ReferralAnswer.COMPLETED) == "completed"
    assert answered_status("requested", ReferralAnswer.DECLINED) == "declined"
    assert answered_status("accepted", ReferralAnswer.ACCEPTED) is None
    assert answered_status("withdrawn", ReferralAnswer.ACCEPTED) is None
    assert answered_status("completed", ReferralAnswer.DECLINED) is None


def test_a_referral_to_health_is_declined_without_consent_before_anything_else() -> None:
    assert (
        incoming_referral_decline(
            consents=frozenset(), teams=[], oblast="UA63", services=frozenset({"mhpss"})
        )
        == "consent_missing"
    )


def test_a_referral_to_health_is_declined_where_no_team_works() -> None:
    assert (
        incoming_referral_decline(
            consents=frozenset({"referral"}),
            teams=[team()],
            oblast="UA59",
            services=frozenset({"mhpss"}),
        )
        == "no_team_for_area"
    )


def test_a_referral_to_health_is_accepted_where_a_team_offers_the_service() -> None:
    assert (
        incoming_referral_decline(
            consents=frozenset({"referral"}),
            teams=[team()],
            oblast="UA63",
            services=frozenset({"mhpss"}),
        )
        is None
    )
