"""Shelter rules: assessment, plans within caps, completion checks, referrals to state
compensation, priorities, heating seasons and the duplicate-assistance guard."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from aidmesh_contracts import (
    DamageLevel,
    Location,
    Modality,
    ReferralRequested,
    RepairCategory,
    Sector,
    Urgency,
)
from aidmesh_shelter.domain import (
    BoqLine,
    Case,
    CaseStatus,
    DuplicateAssistance,
    FacilityCase,
    PastDelivery,
    Plan,
    PriorityWeights,
    Referral,
    ReferralStatus,
    ShelterRuleError,
    ShelterRules,
    UseCode,
    WrongState,
    assess_damage,
    check_monitoring,
    complete_refurbishment,
    complete_repair,
    duplicates_after_merge,
    heating_season,
    plan_in_priority_order,
    plan_repair,
    priority,
    record_referral_outcome,
    rental_assistance,
    take_referral,
    winterization_kits,
)

NOW = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")
KYIV_TIME = ZoneInfo("Europe/Kyiv")
RULES = ShelterRules(timezone=KYIV_TIME)
WEIGHTS = PriorityWeights()


@dataclass(frozen=True)
class Household:
    household_id: UUID
    location: Location = KHARKIV
    displacement_status: str = "idp"
    size: int = 4
    vulnerabilities: frozenset[str] = frozenset()
    consents: frozenset[str] = frozenset({"registration", "data_sharing", "referral"})


def a_household(**overrides: Any) -> Household:
    return Household(household_id=uuid4(), **overrides)


def a_case(**overrides: Any) -> Case:
    case = Case(
        case_id=uuid4(),
        household_id=uuid4(),
        status=CaseStatus.OPEN,
        damage_level=DamageLevel.LIGHT,
        severity=3,
        location=KHARKIV,
        household_size=4,
        priority=40,
        opened_at=NOW,
    )
    return replace(case, **overrides)


def an_assessed_case(**overrides: Any) -> Case:
    values: dict[str, Any] = {
        "status": CaseStatus.ASSESSED,
        "estimated_cost": Decimal("12500.00"),
        "assessed_by": "ENG-KH-01",
    } | overrides
    return a_case(**values)


def a_planned_case(**overrides: Any) -> Case:
    values: dict[str, Any] = {
        "status": CaseStatus.PLANNED,
        "plan": Plan(RepairCategory.LIGHT, Modality.VOUCHER, Decimal("12500.00")),
    } | overrides
    return an_assessed_case(**values)


LINES = [
    BoqLine("window.pvc_double", Decimal("3"), "pcs", Decimal("3200.00")),
    BoqLine("roof.metal_sheet", Decimal("12.5"), "m2", Decimal("245.50")),
]


def assess(case: Case, **overrides: Any):  # -> Assessment
    arguments: dict[str, Any] = {
        "damage_level": DamageLevel.LIGHT,
        "lines": LINES,
        "assessed_by": "ENG-KH-01",
        "household": a_household(),
        "withdrawn": frozenset(),
        "referral_id": uuid4(),
        "rules": RULES,
        "now": NOW,
    } | overrides
    return assess_damage(case, **arguments)


def complete(case: Case, **overrides: Any):  # -> Repaired
    arguments: dict[str, Any] = {
        "value": Decimal("12000.00"),
        "inspection_passed": True,
        "partner_org": "IOM",
        "delivery_id": uuid4(),
        "now": NOW,
    } | overrides
    return complete_repair(case, **arguments)


# ---- priority ----------------------------------------------------------------------------


def rank(**overrides: Any) -> int:
    arguments: dict[str, Any] = {
        "severity": 3,
        "damage_level": DamageLevel.MEDIUM,
        "vulnerabilities": frozenset(),
        "size": 3,
        "weights": WEIGHTS,
    } | overrides
    return priority(**arguments)


def test_a_more_severe_need_is_served_first() -> None:
    assert rank(severity=5) < rank(severity=3)


def test_a_vulnerable_household_is_served_before_another_of_the_same_severity() -> None:
    assert rank(vulnerabilities={"disability"}) < rank()
    assert rank(vulnerabilities={"unaccompanied_minor"}) < rank(vulnerabilities={"female_headed"})


def test_vulnerability_flags_count_for_at_most_two_levels_of_severity() -> None:
    every_flag = set(WEIGHTS.vulnerability)

    assert rank(severity=3, vulnerabilities=every_flag) == rank(severity=5)
    assert rank(severity=2, vulnerabilities=every_flag) > rank(severity=5)


def test_a_larger_household_is_served_first_among_equals() -> None:
    assert rank(size=7) < rank(size=3) == rank(size=1)


def test_priority_stays_between_1_and_100() -> None:
    heavy_weights = PriorityWeights(per_severity=30)
    no_weights = PriorityWeights(per_severity=0, damage={})

    assert rank(severity=5, weights=heavy_weights) == 1
    assert rank(severity=1, vulnerabilities=set(), size=1, weights=no_weights) == 100


def test_vulnerability_weights_are_configurable() -> None:
    weights = PriorityWeights(vulnerability={"female_headed": 15})

    assert rank(vulnerabilities={"female_headed"}, weights=weights) == rank() - 15
    assert rank(vulnerabilities={"disability"}, weights=weights) == rank()


# ---- assessment --------------------------------------------------------------------------


def test_an_assessment_totals_the_bill_of_quantities_exactly() -> None:
    result = assess(a_case())

    # 3 x 3200.00 + 12.5 x 245.50 = 9600.00 + 3068.75
    assert result.assessed.estimated_cost.amount == Decimal("12668.75")
    assert result.assessed.boq_lines == 2
    assert result.assessed.assessed_by == "ENG-KH-01"


def test_a_line_total_is_rounded_to_the_kopiika() -> None:
    line = BoqLine("nails.kg", Decimal("0.333"), "kg", Decimal("10.05"))

    assert line.total == Decimal("3.35")


def test_light_damage_assessed_waits_for_a_repair_plan() -> None:
    result = assess(a_case())

    assert (result.status, result.referral, result.waiting_for) == (CaseStatus.ASSESSED, None, None)


def test_the_assessment_reprioritises_the_case_with_the_damage_found() -> None:
    household = a_household(vulnerabilities=frozenset({"elderly_headed"}))

    result = assess(a_case(severity=4), household=household, damage_level=DamageLevel.MEDIUM)

    assert result.priority == rank(
        severity=4, damage_level=DamageLevel.MEDIUM, vulnerabilities={"elderly_headed"}, size=4
    )


def test_light_damage_without_a_bill_of_quantities_is_refused() -> None:
    with pytest.raises(ShelterRuleError, match="light damage needs a bill of quantities"):
        assess(a_case(), lines=[])


def test_an_assessment_must_say_light_medium_or_heavy() -> None:
    with pytest.raises(ShelterRuleError, match="light, medium or heavy"):
        assess(a_case(), damage_level=DamageLevel.UNKNOWN)


def test_a_planned_case_is_not_assessed_again() -> None:
    case = a_planned_case()

    with pytest.raises(WrongState, match=f"case {case.case_id} is planned"):
        assess(case)


def test_heavy_damage_is_referred_to_state_compensation() -> None:
    case = a_case(severity=4)
    referral_id = uuid4()

    result = assess(case, damage_level=DamageLevel.HEAVY, lines=[], referral_id=referral_id)

    assert result.status is CaseStatus.REFERRED
    referral = result.referral
    assert isinstance(referral, ReferralRequested)
    assert (referral.referral_id, referral.household_id) == (referral_id, case.household_id)
    assert (referral.from_sector, referral.to) == (Sector.SHELTER, "external.state_compensation")
    assert (referral.reason_code, referral.consent_purpose) == ("heavy_damage", "referral")
    assert referral.requested_by == "ENG-KH-01"


def test_heavy_damage_without_consent_to_referral_waits_for_consent() -> None:
    household = a_household(consents=frozenset({"registration", "data_sharing"}))

    result = assess(a_case(), damage_level=DamageLevel.HEAVY, household=household)

    assert (result.status, result.referral) == (CaseStatus.AWAITING_CONSENT, None)
    assert result.waiting_for == "the household has not consented to referral"


def test_heavy_damage_is_not_referred_after_the_household_withdrew_data_sharing() -> None:
    result = assess(a_case(), damage_level=DamageLevel.HEAVY, withdrawn=frozenset({"data_sharing"}))

    assert result.status is CaseStatus.AWAITING_CONSENT
    assert result.waiting_for == "the household withdrew consent to data_sharing"


def test_the_most_urgent_heavy_damage_is_referred_as_an_emergency() -> None:
    household = a_household(vulnerabilities=frozenset({"child_headed", "disability"}), size=8)

    urgent = assess(a_case(severity=5), damage_level=DamageLevel.HEAVY, household=household)
    routine = assess(
        a_case(severity=1), damage_level=DamageLevel.HEAVY, household=a_household(size=1)
    )

    assert urgent.referral is not None and urgent.referral.urgency is Urgency.EMERGENCY
    assert routine.referral is not None and routine.referral.urgency is Urgency.ROUTINE


# ---- plans -------------------------------------------------------------------------------


def test_a_plan_takes_the_estimate_and_the_category_s_usual_modality() -> None:
    case = an_assessed_case(priority=17)

    planned = plan_repair(case, modality=None, budget=None, rules=RULES, now=NOW)

    assert (planned.category, planned.modality) == (RepairCategory.LIGHT, Modality.VOUCHER)
    assert planned.budget.amount == Decimal("12500.00")
    assert planned.cap.amount == Decimal("30000.00")
    assert planned.priority == 17


def test_medium_repairs_are_planned_in_kind_by_default() -> None:
    case = an_assessed_case(damage_level=DamageLevel.MEDIUM)

    planned = plan_repair(case, modality=None, budget=None, rules=RULES, now=NOW)

    assert (planned.category, planned.modality) == (RepairCategory.MEDIUM, Modality.IN_KIND)


def test_a_coordinator_may_choose_the_modality_and_budget() -> None:
    planned = plan_repair(
        an_assessed_case(),
        modality=Modality.IN_KIND,
        budget=Decimal("9000"),
        rules=RULES,
        now=NOW,
    )

    assert (planned.modality, planned.budget.amount) == (Modality.IN_KIND, Decimal("9000.00"))


def test_a_budget_over_the_cap_is_refused_with_the_cap() -> None:
    case = an_assessed_case(estimated_cost=Decimal("30000.01"))

    with pytest.raises(
        ShelterRuleError, match=r"budget 30000\.01 UAH exceeds the light repair cap of 30000\.00"
    ):
        plan_repair(case, modality=None, budget=None, rules=RULES, now=NOW)


def test_a_budget_exactly_at_the_cap_is_accepted() -> None:
    case = an_assessed_case(damage_level=DamageLevel.MEDIUM)

    planned = plan_repair(case, modality=None, budget=Decimal("100000.00"), rules=RULES, now=NOW)

    assert planned.budget.amount == Decimal("100000.00")


def test_caps_come_from_the_rules() -> None:
    rules = ShelterRules(
        repair_caps={
            RepairCategory.LIGHT: Decimal("10000"),
            RepairCategory.MEDIUM: Decimal("50000"),
        }
    )

    with pytest.raises(ShelterRuleError, match=r"light repair cap of 10000\.00"):
        plan_repair(an_assessed_case(), modality=None, budget=None, rules=rules, now=NOW)


def test_repairs_are_not_planned_in_cash() -> None:
    with pytest.raises(ShelterRuleError, match="in_kind or voucher, not cash"):
        plan_repair(an_assessed_case(), modality=Modality.CASH, budget=None, rules=RULES, now=NOW)


def test_a_case_is_assessed_before_it_is_planned() -> None:
    case = a_case()

    with pytest.raises(WrongState, match=f"case {case.case_id} is open: assess the damage first"):
        plan_repair(case, modality=None, budget=None, rules=RULES, now=NOW)


def test_a_heavy_damage_case_waiting_for_consent_is_not_planned() -> None:
    case = a_case(status=CaseStatus.AWAITING_CONSENT, damage_level=DamageLevel.HEAVY)

    with pytest.raises(WrongState, match="only an assessed case can be planned"):
        plan_repair(case, modality=None, budget=None, rules=RULES, now=NOW)


def test_batch_planning_serves_the_most_urgent_first_and_stops_when_money_runs_out() -> None:
    first = an_assessed_case(priority=5, estimated_cost=Decimal("20000"))
    second = an_assessed_case(priority=9, estimated_cost=Decimal("15000"))
    third = an_assessed_case(priority=30, estimated_cost=Decimal("1000"))

    batch = plan_in_priority_order(
        [third, second, first], envelope=Decimal("30000"), rules=RULES, now=NOW
    )

    assert [p.case_id for p in batch.planned] == [first.case_id]
    assert batch.stopped_at is not None and batch.stopped_at[0] == second.case_id
    assert "15000.00 UAH exceeds the remaining envelope of 10000.00" in batch.stopped_at[1]
    assert batch.remaining == Decimal("10000")


def test_batch_planning_refuses_a_case_over_its_cap_and_goes_on() -> None:
    over = an_assessed_case(priority=1, estimated_cost=Decimal("45000"))
    next_one = an_assessed_case(priority=2, estimated_cost=Decimal("5000"))

    batch = plan_in_priority_order(
        [over, next_one], envelope=Decimal("90000"), rules=RULES, now=NOW
    )

    assert [p.case_id for p in batch.planned] == [next_one.case_id]
    assert batch.refused == [
        (over.case_id, "budget 45000.00 UAH exceeds the light repair cap of 30000.00 UAH")
    ]
    assert batch.stopped_at is None


# ---- completion --------------------------------------------------------------------------


def test_a_completed_repair_delivers_assistance_and_closes_the_case() -> None:
    case = a_planned_case(household_size=6)
    delivery_id = uuid4()

    repaired = complete(case, value=Decimal("12000.10"), delivery_id=delivery_id)

    assert (repaired.completed.case_id, repaired.completed.category) == (
        case.case_id,
        RepairCategory.LIGHT,
    )
    delivered = repaired.delivered
    assert (delivered.delivery_id, delivered.household_id) == (delivery_id, case.household_id)
    assert (delivered.sector, delivered.activity) == (Sector.SHELTER, "shelter.light_repair")
    assert (delivered.modality, delivered.quantity, delivered.unit) == (
        Modality.VOUCHER,
        Decimal(1),
        "dwelling",
    )
    assert delivered.value is not None and delivered.value.amount == Decimal("12000.10")
    assert delivered.value.currency == "UAH"
    assert (delivered.persons_reached, delivered.location) == (6, KHARKIV)
    assert (repaired.closed.case_id, repaired.closed.reason_code) == (case.case_id, "repaired")


def test_a_medium_repair_is_a_medium_repair_activity() -> None:
    case = a_planned_case(
        damage_level=DamageLevel.MEDIUM,
        plan=Plan(RepairCategory.MEDIUM, Modality.IN_KIND, Decimal("60000")),
    )

    assert complete(case).delivered.activity == "shelter.medium_repair"


@pytest.mark.parametrize("status", [CaseStatus.OPEN, CaseStatus.ASSESSED, CaseStatus.REPAIRED])
def test_only_a_planned_repair_can_be_completed(status: CaseStatus) -> None:
    case = a_planned_case(status=status)

    with pytest.raises(WrongState, match=f"is {status.value}, not planned"):
        complete(case)


def test_a_repair_costing_more_than_its_planned_budget_is_refused() -> None:
    with pytest.raises(
        ShelterRuleError, match=r"12500\.01 UAH exceeds the planned budget of 12500"
    ):
        complete(a_planned_case(), value=Decimal("12500.01"))


def test_a_repair_that_failed_inspection_is_not_completed() -> None:
    with pytest.raises(ShelterRuleError, match="has not passed inspection"):
        complete(a_planned_case(), inspection_passed=False)


def test_a_completion_must_match_the_plan() -> None:
    with pytest.raises(ShelterRuleError, match="planned as a light repair, not medium"):
        complete(a_planned_case(), category=RepairCategory.MEDIUM)
    with pytest.raises(ShelterRuleError, match="planned voucher, not in_kind"):
        complete(a_planned_case(), modality=Modality.IN_KIND)


# ---- referral outcomes -------------------------------------------------------------------


def a_referral(case: Case, status: ReferralStatus = ReferralStatus.REQUESTED) -> Referral:
    return Referral(uuid4(), case.case_id, case.household_id, "external.state_compensation", status)


def test_compensation_paid_closes_the_case_as_compensated() -> None:
    case = a_case(status=CaseStatus.REFERRED, damage_level=DamageLevel.HEAVY)
    referral = a_referral(case)

    outcome, closed = record_referral_outcome(
        referral, case, completed=True, code="compensation_paid", now=NOW
    )

    assert (outcome.referral_id, outcome.completed_by) == (
        referral.referral_id,
        "external.state_compensation",
    )
    assert outcome.outcome_code == "compensation_paid"
    assert closed.reason_code == "compensated"


def test_compensation_declined_closes_the_case_saying_so() -> None:
    case = a_case(status=CaseStatus.REFERRED, damage_level=DamageLevel.HEAVY)

    outcome, closed = record_referral_outcome(
        a_referral(case), case, completed=False, code="not_eligible", now=NOW
    )

    assert outcome.reason_code == "not_eligible"
    assert closed.reason_code == "compensation_declined"


def test_no_outcome_is_recorded_for_a_referral_already_closed() -> None:
    case = a_case(status=CaseStatus.CLOSED)

    with pytest.raises(WrongState, match="no open referral"):
        record_referral_outcome(
            a_referral(case, ReferralStatus.COMPLETED), case, completed=True, code="paid", now=NOW
        )


# ---- referrals to shelter ----------------------------------------------------------------


def a_referral_to_shelter(household: Household, urgency: Urgency) -> ReferralRequested:
    return ReferralRequested(
        referral_id=uuid4(),
        household_id=household.household_id,
        from_sector=Sector.PROTECTION,
        to="shelter",
        reason_code="unsafe_housing",
        urgency=urgency,
        consent_purpose="referral",
        requested_by="PRT-KH",
        requested_at=NOW,
    )


def test_a_referral_to_shelter_with_consent_opens_a_case_and_is_accepted() -> None:
    household = a_household()
    referral = a_referral_to_shelter(household, Urgency.EMERGENCY)
    case_id = uuid4()

    decision = take_referral(
        referral,
        household,
        withdrawn=frozenset(),
        active_case=None,
        case_id=case_id,
        rules=RULES,
        now=NOW,
    )

    assert decision.declined is None
    assert decision.accepted is not None and decision.accepted.accepted_by == "shelter"
    assert decision.opened is not None
    assert (decision.opened.case_id, decision.opened.need_assessment_id) == (case_id, None)
    assert (decision.opened.severity, decision.opened.damage_level) == (5, DamageLevel.UNKNOWN)


def test_a_referral_without_the_household_s_consent_is_declined() -> None:
    household = a_household(consents=frozenset({"registration"}))

    decision = take_referral(
        a_referral_to_shelter(household, Urgency.ROUTINE),
        household,
        withdrawn=frozenset(),
        active_case=None,
        case_id=uuid4(),
        rules=RULES,
        now=NOW,
    )

    assert (decision.accepted, decision.opened) == (None, None)
    assert decision.declined is not None
    assert (decision.declined.declined_by, decision.declined.reason_code) == (
        "shelter",
        "consent_missing",
    )


def test_a_referral_for_a_household_with_a_case_in_progress_opens_no_second_case() -> None:
    household = a_household()

    decision = take_referral(
        a_referral_to_shelter(household, Urgency.ROUTINE),
        household,
        withdrawn=frozenset(),
        active_case=uuid4(),
        case_id=uuid4(),
        rules=RULES,
        now=NOW,
    )

    assert decision.accepted is not None and decision.opened is None


# ---- merges ------------------------------------------------------------------------------


def test_after_a_merge_the_oldest_case_in_progress_stays_and_the_others_close() -> None:
    oldest = a_case(opened_at=NOW - timedelta(days=3))
    newer = a_case(opened_at=NOW - timedelta(days=1))
    newest = a_case(opened_at=NOW)

    assert duplicates_after_merge([newest, oldest, newer]) == [newer, newest]
    assert duplicates_after_merge([oldest]) == []


# ---- heating seasons and the duplicate guard ---------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("when", "season"),
    [
        ("2026-10-01T08:00:00+03:00", "2026-2027"),
        ("2026-12-31T20:00:00+02:00", "2026-2027"),
        ("2027-02-14T12:00:00+02:00", "2026-2027"),
        ("2027-04-30T12:00:00+03:00", "2026-2027"),
        ("2027-05-01T09:00:00+03:00", "2027-2028"),  # prepares for the winter ahead
        ("2027-08-15T09:00:00+03:00", "2027-2028"),
    ],
)
def test_a_delivery_counts_for_the_heating_season_of_its_date(when: str, season: str) -> None:
    assert heating_season(at(when), rules=RULES) == season


def test_the_season_follows_the_local_date_not_utc() -> None:
    # 30 April 22:30 UTC is already 1 May in Kyiv.
    assert heating_season(at("2027-04-30T22:30:00+00:00"), rules=RULES) == "2027-2028"
    assert heating_season(at("2027-04-30T22:30:00+00:00"), rules=ShelterRules()) == "2026-2027"


def kits(household: Household, **overrides: Any):  # -> tuple[AssistanceDelivered, str]
    arguments: dict[str, Any] = {
        "kits": 1,
        "modality": Modality.IN_KIND,
        "value": None,
        "previous": [],
        "partner_org": "IOM",
        "delivery_id": uuid4(),
        "rules": RULES,
        "now": NOW,
    } | overrides
    return winterization_kits(household, **arguments)


def test_winterization_kits_are_delivered_for_the_season_at_the_standard_value() -> None:
    household = a_household(size=5)

    delivered, season = kits(household, kits=2)

    assert season == "2025-2026"
    assert (delivered.activity, delivered.quantity, delivered.unit) == (
        "shelter.winterization_kit",
        Decimal(2),
        "kit",
    )
    assert delivered.value is not None and delivered.value.amount == Decimal("9000.00")
    assert (delivered.household_id, delivered.persons_reached) == (household.household_id, 5)


def test_a_second_winterization_kit_in_the_same_season_is_refused_naming_the_first() -> None:
    household = a_household()
    first = PastDelivery(
        uuid4(), "shelter.winterization_kit", "2025-2026", NOW - timedelta(days=40)
    )

    with pytest.raises(
        DuplicateAssistance,
        match=f"already received shelter.winterization_kit in the 2025-2026 heating season "
        f"\\(delivery {first.delivery_id} on 2025-12-11\\)",
    ):
        kits(household, previous=[first])


def test_a_winterization_kit_of_last_season_does_not_count() -> None:
    last_winter = PastDelivery(uuid4(), "shelter.winterization_kit", "2024-2025", NOW)

    delivered, _ = kits(a_household(), previous=[last_winter])

    assert delivered.activity == "shelter.winterization_kit"


def test_rental_assistance_this_season_does_not_block_a_winterization_kit() -> None:
    rent = PastDelivery(uuid4(), "shelter.rental_assistance", "2025-2026", NOW)

    delivered, _ = kits(a_household(), previous=[rent])

    assert delivered.activity == "shelter.winterization_kit"


def test_too_many_winterization_kits_are_refused() -> None:
    with pytest.raises(ShelterRuleError, match="1 to 3 winterization kits"):
        kits(a_household(), kits=4)


def rent(household: Household, **overrides: Any):  # -> tuple[AssistanceDelivered, str]
    arguments: dict[str, Any] = {
        "monthly_amount": Decimal("4500.00"),
        "months": 3,
        "modality": Modality.CASH,
        "previous": [],
        "partner_org": "NRC",
        "delivery_id": uuid4(),
        "rules": RULES,
        "now": NOW,
    } | overrides
    return rental_assistance(household, **arguments)


def test_rental_assistance_is_the_monthly_amount_times_the_months() -> None:
    delivered, season = rent(a_household())

    assert (delivered.activity, delivered.quantity, delivered.unit) == (
        "shelter.rental_assistance",
        Decimal(3),
        "month",
    )
    assert delivered.value is not None and delivered.value.amount == Decimal("13500.00")
    assert (delivered.modality, delivered.partner_org, season) == (
        Modality.CASH,
        "NRC",
        "2025-2026",
    )


def test_rental_assistance_is_for_displaced_households() -> None:
    with pytest.raises(ShelterRuleError, match="for displaced households \\(idp\\), not returnee"):
        rent(a_household(displacement_status="returnee"))


def test_rental_assistance_above_the_monthly_cap_is_refused() -> None:
    with pytest.raises(ShelterRuleError, match=r"6000\.01 UAH a month exceeds the rental"):
        rent(a_household(), monthly_amount=Decimal("6000.01"))


def test_rental_assistance_for_too_many_months_is_refused() -> None:
    with pytest.raises(ShelterRuleError, match="1 to 6 months"):
        rent(a_household(), months=7)


def test_rental_assistance_twice_in_a_season_is_refused() -> None:
    before = PastDelivery(uuid4(), "shelter.rental_assistance", "2025-2026", NOW)

    with pytest.raises(DuplicateAssistance, match=r"already received shelter\.rental_assistance"):
        rent(a_household(), previous=[before])


# ---- collective centres ------------------------------------------------------------------


def a_centre(**overrides: Any) -> FacilityCase:
    return replace(FacilityCase(uuid4(), uuid4(), "open", 120, KHARKIV), **overrides)


def test_a_refurbished_centre_is_assistance_to_the_facility_for_its_places() -> None:
    centre = a_centre()

    delivered = complete_refurbishment(
        centre,
        value=Decimal("1200000.00"),
        modality=Modality.IN_KIND,
        inspection_passed=True,
        partner_org="IOM",
        delivery_id=uuid4(),
        rules=RULES,
        now=NOW,
    )

    assert (delivered.facility_id, delivered.household_id) == (centre.facility_id, None)
    assert delivered.activity == "shelter.collective_centre_refurbishment"
    assert (delivered.persons_reached, delivered.location) == (120, KHARKIV)


def test_a_refurbishment_above_the_cap_per_place_is_refused() -> None:
    with pytest.raises(
        ShelterRuleError, match=r"exceeds the cap of 150000\.00 UAH for a centre of 10"
    ):
        complete_refurbishment(
            a_centre(capacity=10),
            value=Decimal("150000.01"),
            modality=Modality.IN_KIND,
            inspection_passed=True,
            partner_org="IOM",
            delivery_id=uuid4(),
            rules=RULES,
            now=NOW,
        )


def test_a_refurbished_centre_is_not_refurbished_twice() -> None:
    with pytest.raises(WrongState, match="is refurbished, not open"):
        complete_refurbishment(
            a_centre(status="refurbished"),
            value=Decimal("1000"),
            modality=Modality.IN_KIND,
            inspection_passed=True,
            partner_org="IOM",
            delivery_id=uuid4(),
            rules=RULES,
            now=NOW,
        )


# ---- monitoring --------------------------------------------------------------------------


def test_a_received_delivery_is_rated() -> None:
    check_monitoring(received=True, satisfaction=4, use=UseCode.USED_AS_INTENDED)

    with pytest.raises(ShelterRuleError, match="satisfaction"):
        check_monitoring(received=True, satisfaction=None, use=UseCode.SOLD)


def test_a_delivery_not_received_has_no_rating_or_use() -> None:
    check_monitoring(received=False, satisfaction=None, use=None)

    with pytest.raises(ShelterRuleError, match="not received has no satisfaction or use"):
        check_monitoring(received=False, satisfaction=2, use=None)
