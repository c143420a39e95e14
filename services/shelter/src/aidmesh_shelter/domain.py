"""Shelter rules. Pure: no database, no Kafka, no clock.

A household's shelter case goes through these states:

    open ──assess──▶ assessed ──plan──▶ planned ──complete──▶ repaired      (light, medium)
    open ──assess──▶ referred ──outcome──▶ closed                            (heavy damage)
                 └─▶ awaiting_consent ──consent recorded──▶ referred

Heavy damage is not repaired by us: the household is referred to the state compensation
programme, with its consent, and the case stays open for follow-up until the programme's
outcome is known. Winterization kits and rental assistance are deliveries to a household
without a case, guarded against the same assistance twice in one heating season.
Collective centres are facilities with cases of their own, never households.

Every number a coordinator may want to change (caps, modalities, priority weights, the
heating season, kit values) is in `ShelterRules`, built from settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol
from uuid import UUID

from aidmesh_contracts import (
    AssistanceDelivered,
    DamageAssessed,
    DamageLevel,
    FacilityCaseOpened,
    Location,
    Modality,
    Money,
    RepairCategory,
    RepairCompleted,
    RepairPlanned,
    Sector,
    ShelterCaseClosed,
    ShelterCaseOpened,
)
from aidmesh_contracts.events.referral import (
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    Urgency,
)
from aidmesh_contracts.events.registration import ConsentPurpose
from aidmesh_runtime.priority import HouseholdPoints
from aidmesh_runtime.rules import Conflict, RuleRefused

CENT = Decimal("0.01")
#: The largest amount a Money field carries.
MAX_AMOUNT = Decimal("999999999999.99")
#: How shelter names itself as a referral target (`to`, `accepted_by`, `declined_by`).
SHELTER = Sector.SHELTER.value

LIGHT_REPAIR = "shelter.light_repair"
MEDIUM_REPAIR = "shelter.medium_repair"
WINTERIZATION_KIT = "shelter.winterization_kit"
RENTAL_ASSISTANCE = "shelter.rental_assistance"
CENTRE_REFURBISHMENT = "shelter.collective_centre_refurbishment"


# ---- errors ----------------------------------------------------------------------------


class ShelterRuleError(ValueError, RuleRefused):
    """A request that shelter's rules refuse; the message says why (HTTP 422)."""


class WrongState(ShelterRuleError, Conflict):
    """The case is not in a state that allows this step (HTTP 409)."""


class DuplicateAssistance(ShelterRuleError):
    """The household already received this assistance in this season (HTTP 422, or DLQ)."""


# ---- rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PriorityWeights(HouseholdPoints):
    """Points that move a household up the queue (the runtime's household points), and
    the damage to its home."""

    damage: Mapping[DamageLevel, int] = field(
        default_factory=lambda: MappingProxyType(
            {
                DamageLevel.HEAVY: 15,
                DamageLevel.MEDIUM: 10,
                DamageLevel.LIGHT: 5,
                DamageLevel.UNKNOWN: 5,
            }
        )
    )


def _default_caps() -> Mapping[RepairCategory, Decimal]:
    return MappingProxyType(
        {RepairCategory.LIGHT: Decimal("30000.00"), RepairCategory.MEDIUM: Decimal("100000.00")}
    )


def _default_modalities() -> Mapping[RepairCategory, Modality]:
    # Light repairs (windows, roof patches) by voucher at local shops; medium ones need
    # materials bought in bulk and a contractor, so in kind.
    return MappingProxyType(
        {RepairCategory.LIGHT: Modality.VOUCHER, RepairCategory.MEDIUM: Modality.IN_KIND}
    )


@dataclass(frozen=True)
class ShelterRules:
    """Shelter's decision rules, configurable (see settings.py for the environment names)."""

    repair_caps: Mapping[RepairCategory, Decimal] = field(default_factory=_default_caps)
    default_repair_modality: Mapping[RepairCategory, Modality] = field(
        default_factory=_default_modalities
    )
    repair_modalities: frozenset[Modality] = frozenset({Modality.IN_KIND, Modality.VOUCHER})
    priority: PriorityWeights = field(default_factory=PriorityWeights)
    #: Priority (1 first) at or below which a compensation referral is urgent.
    emergency_priority: int = 10
    urgent_priority: int = 30
    compensation_programme: str = "external.state_compensation"
    #: Who requests a referral when the case names no assessor (who delivers is the
    #: caller's: the API attributes every delivery).
    organisation: str = "IOM"
    #: Consent needed before anything about the household goes to another programme.
    referral_consent: ConsentPurpose = ConsentPurpose.REFERRAL
    #: Withdrawing any of these stops sharing: open external referrals are withdrawn, and
    #: nothing is referred until the household consents again.
    sharing_purposes: frozenset[ConsentPurpose] = frozenset(
        {ConsentPurpose.REFERRAL, ConsentPurpose.DATA_SHARING}
    )
    #: Heating season: October to April. Deliveries from May on prepare for the winter ahead
    #: and count for the next season.
    last_winter_month: int = 4
    timezone: tzinfo = UTC
    winterization_kit_value: Decimal = Decimal("4500.00")
    winterization_max_kits: int = 3
    winterization_modalities: frozenset[Modality] = frozenset({Modality.IN_KIND, Modality.VOUCHER})
    rental_monthly_cap: Decimal = Decimal("6000.00")
    rental_max_months: int = 6
    rental_modalities: frozenset[Modality] = frozenset({Modality.CASH, Modality.VOUCHER})
    #: Rental assistance is for households that had to leave their home.
    rental_displacement_statuses: frozenset[str] = frozenset({"idp"})
    centre_cap_per_place: Decimal = Decimal("15000.00")
    refurbishment_modalities: frozenset[Modality] = frozenset(
        {Modality.IN_KIND, Modality.VOUCHER, Modality.SERVICE}
    )

    def cap(self, category: RepairCategory) -> Decimal:
        return self.repair_caps[category]


# ---- what shelter knows about a household ----------------------------------------------


class Household(Protocol):
    """The household facts shelter decides with (the household projection's)."""

    @property
    def household_id(self) -> UUID: ...
    @property
    def location(self) -> Location: ...
    @property
    def displacement_status(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def vulnerabilities(self) -> frozenset[str]: ...
    @property
    def consents(self) -> frozenset[str]: ...


def priority(
    *,
    severity: int,
    damage_level: DamageLevel,
    vulnerabilities: Iterable[str],
    size: int,
    weights: PriorityWeights,
) -> int:
    """1 (served first) to 100: severity, damage, vulnerability flags and household size."""
    household = weights.points(severity=severity, vulnerabilities=vulnerabilities, size=size)
    points = household["total"] + weights.damage.get(damage_level, 0)
    return max(1, min(100, 100 - points))


def urgency(case_priority: int, rules: ShelterRules) -> Urgency:
    if case_priority <= rules.emergency_priority:
        return Urgency.EMERGENCY
    if case_priority <= rules.urgent_priority:
        return Urgency.PRIORITY
    return Urgency.ROUTINE


def consent_missing(
    consents: frozenset[str], withdrawn: frozenset[str], rules: ShelterRules
) -> str | None:
    """Why the household may not be referred to another programme now, or None if it may."""
    stopped = sorted(p.value for p in rules.sharing_purposes if p.value in withdrawn)
    if stopped:
        return f"the household withdrew consent to {', '.join(stopped)}"
    if rules.referral_consent.value not in consents:
        return f"the household has not consented to {rules.referral_consent.value}"
    return None


# ---- household cases -------------------------------------------------------------------


class CaseStatus(StrEnum):
    OPEN = "open"
    ASSESSED = "assessed"
    PLANNED = "planned"
    AWAITING_CONSENT = "awaiting_consent"
    REFERRED = "referred"
    REPAIRED = "repaired"
    CLOSED = "closed"

    @property
    def active(self) -> bool:
        return self not in (CaseStatus.REPAIRED, CaseStatus.CLOSED)


@dataclass(frozen=True)
class Plan:
    category: RepairCategory
    modality: Modality
    budget: Decimal


@dataclass(frozen=True)
class Case:
    case_id: UUID
    household_id: UUID
    status: CaseStatus
    damage_level: DamageLevel
    severity: int
    location: Location
    household_size: int
    priority: int = 50
    opened_at: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    estimated_cost: Decimal | None = None
    assessed_by: str | None = None
    plan: Plan | None = None


@dataclass(frozen=True)
class BoqLine:
    """One line of a bill of quantities: an item, how much of it, and its unit cost."""

    item_code: str
    quantity: Decimal
    unit: str
    unit_cost: Decimal

    @property
    def total(self) -> Decimal:
        return (self.quantity * self.unit_cost).quantize(CENT, ROUND_HALF_UP)


def open_case(
    *,
    case_id: UUID,
    household_id: UUID,
    need_assessment_id: UUID | None,
    severity: int,
    damage_level: DamageLevel,
    location: Location,
    now: datetime,
) -> ShelterCaseOpened:
    return ShelterCaseOpened(
        case_id=case_id,
        household_id=household_id,
        need_assessment_id=need_assessment_id,
        severity=severity,
        damage_level=damage_level,
        location=location,
        opened_at=now,
    )


#: A referral carries an urgency, not a severity; the case opened from it needs one.
SEVERITY_OF_URGENCY = MappingProxyType(
    {Urgency.ROUTINE: 3, Urgency.PRIORITY: 4, Urgency.EMERGENCY: 5}
)


@dataclass(frozen=True)
class ReferralDecision:
    """What shelter does with a referral to it: decline it, or accept it (opening a case
    unless the household already has an active one)."""

    accepted: ReferralAccepted | None = None
    declined: ReferralDeclined | None = None
    opened: ShelterCaseOpened | None = None


def take_referral(
    referral: ReferralRequested,
    household: Household,
    *,
    withdrawn: frozenset[str],
    active_case: UUID | None,
    case_id: UUID,
    rules: ShelterRules,
    now: datetime,
) -> ReferralDecision:
    """A referral to shelter from another sector. The referrer checked consent; we check
    it again against our own copy of the household's consents, which may be more recent."""
    if consent_missing(household.consents, withdrawn, rules) is not None:
        return ReferralDecision(
            declined=ReferralDeclined(
                referral_id=referral.referral_id,
                household_id=household.household_id,
                declined_by=SHELTER,
                reason_code="consent_missing",
                declined_at=now,
            )
        )
    accepted = ReferralAccepted(
        referral_id=referral.referral_id,
        household_id=household.household_id,
        accepted_by=SHELTER,
        accepted_at=now,
    )
    if active_case is not None:
        return ReferralDecision(accepted=accepted)
    opened = open_case(
        case_id=case_id,
        household_id=household.household_id,
        need_assessment_id=None,
        severity=SEVERITY_OF_URGENCY[referral.urgency],
        damage_level=DamageLevel.UNKNOWN,
        location=household.location,
        now=now,
    )
    return ReferralDecision(accepted=accepted, opened=opened)


@dataclass(frozen=True)
class Assessment:
    """The outcome of a technical assessment: the event, the case's new state and, for
    heavy damage, the referral made or the reason it waits."""

    assessed: DamageAssessed
    status: CaseStatus
    priority: int
    referral: ReferralRequested | None = None
    waiting_for: str | None = None


def assess_damage(
    case: Case,
    *,
    damage_level: DamageLevel,
    lines: Sequence[BoqLine],
    assessed_by: str,
    household: Household,
    withdrawn: frozenset[str],
    referral_id: UUID,
    rules: ShelterRules,
    now: datetime,
) -> Assessment:
    """A field engineer's assessment. Light and medium damage wait for a repair plan;
    heavy damage is referred to state compensation at once if the household consents."""
    if case.status not in (CaseStatus.OPEN, CaseStatus.ASSESSED):
        raise WrongState(
            f"case {case.case_id} is {case.status.value}: only an open or assessed case "
            "can be assessed"
        )
    if damage_level is DamageLevel.UNKNOWN:
        raise ShelterRuleError("a technical assessment says light, medium or heavy damage")
    if damage_level is not DamageLevel.HEAVY and not lines:
        raise ShelterRuleError(
            f"{damage_level.value} damage needs a bill of quantities to plan the repair"
        )
    estimated = sum((line.total for line in lines), start=Decimal("0.00"))
    if estimated > MAX_AMOUNT:
        raise ShelterRuleError("the bill of quantities adds up to more than any repair could cost")
    assessed = DamageAssessed(
        case_id=case.case_id,
        household_id=case.household_id,
        damage_level=damage_level,
        estimated_cost=Money(amount=estimated),
        boq_lines=len(lines),
        assessed_by=assessed_by,
        assessed_at=now,
    )
    new_priority = priority(
        severity=case.severity,
        damage_level=damage_level,
        vulnerabilities=household.vulnerabilities,
        size=household.size,
        weights=rules.priority,
    )
    if damage_level is not DamageLevel.HEAVY:
        return Assessment(assessed, CaseStatus.ASSESSED, new_priority)
    referred = refer_for_compensation(
        case,
        household=household,
        withdrawn=withdrawn,
        priority=new_priority,
        requested_by=assessed_by,
        referral_id=referral_id,
        rules=rules,
        now=now,
    )
    if isinstance(referred, str):
        return Assessment(assessed, CaseStatus.AWAITING_CONSENT, new_priority, waiting_for=referred)
    return Assessment(assessed, CaseStatus.REFERRED, new_priority, referral=referred)


def refer_for_compensation(
    case: Case,
    *,
    household: Household,
    withdrawn: frozenset[str],
    priority: int,
    requested_by: str,
    referral_id: UUID,
    rules: ShelterRules,
    now: datetime,
) -> ReferralRequested | str:
    """The referral of a heavily damaged home to state compensation, or why not yet."""
    missing = consent_missing(household.consents, withdrawn, rules)
    if missing is not None:
        return missing
    return ReferralRequested(
        referral_id=referral_id,
        household_id=case.household_id,
        from_sector=Sector.SHELTER,
        to=rules.compensation_programme,
        reason_code="heavy_damage",
        urgency=urgency(priority, rules),
        consent_purpose=rules.referral_consent,
        requested_by=requested_by,
        requested_at=now,
    )


def plan_repair(
    case: Case,
    *,
    modality: Modality | None,
    budget: Decimal | None,
    rules: ShelterRules,
    now: datetime,
) -> RepairPlanned:
    """Plan a light or medium repair within its category's cap (the budget defaults to the
    engineer's estimate; the modality to the category's usual one)."""
    if case.status is not CaseStatus.ASSESSED:
        hint = {
            CaseStatus.OPEN: "assess the damage first",
            CaseStatus.PLANNED: "its repair is planned already",
        }.get(case.status, "only an assessed case can be planned")
        raise WrongState(f"case {case.case_id} is {case.status.value}: {hint}")
    if case.damage_level is DamageLevel.HEAVY or case.damage_level is DamageLevel.UNKNOWN:
        raise ShelterRuleError(f"{case.damage_level.value} damage is not repaired by shelter")
    category = RepairCategory(case.damage_level.value)
    modality = modality or rules.default_repair_modality[category]
    if modality not in rules.repair_modalities:
        raise ShelterRuleError(
            "repairs are delivered "
            + " or ".join(sorted(m.value for m in rules.repair_modalities))
            + f", not {modality.value}"
        )
    amount = budget if budget is not None else case.estimated_cost
    if amount is None or amount <= 0:
        raise ShelterRuleError("a repair plan needs a budget above 0 UAH")
    cap = rules.cap(category)
    if amount > cap:
        raise ShelterRuleError(
            f"budget {amount:.2f} UAH exceeds the {category.value} repair cap of {cap:.2f} UAH"
        )
    return RepairPlanned(
        case_id=case.case_id,
        household_id=case.household_id,
        category=category,
        modality=modality,
        budget=Money(amount=amount.quantize(CENT)),
        cap=Money(amount=cap),
        priority=case.priority,
        planned_at=now,
    )


@dataclass(frozen=True)
class BatchPlan:
    """Cases planned within an envelope, in priority order, and those left out with why."""

    planned: list[RepairPlanned]
    refused: list[tuple[UUID, str]]
    stopped_at: tuple[UUID, str] | None
    remaining: Decimal


def plan_in_priority_order(
    cases: Sequence[Case], *, envelope: Decimal, rules: ShelterRules, now: datetime
) -> BatchPlan:
    """Plan assessed cases at their estimate, most vulnerable first, while the envelope
    lasts. It stops at the first case the envelope cannot cover rather than skip it for a
    cheaper, less urgent one; a case over its cap is refused (it needs a lower budget,
    planned one by one) and does not stop the others."""
    planned: list[RepairPlanned] = []
    refused: list[tuple[UUID, str]] = []
    remaining = envelope
    for case in sorted(cases, key=lambda c: (c.priority, c.opened_at, str(c.case_id))):
        try:
            plan = plan_repair(case, modality=None, budget=None, rules=rules, now=now)
        except ShelterRuleError as exc:
            refused.append((case.case_id, str(exc)))
            continue
        if plan.budget.amount > remaining:
            why = (
                f"its budget {plan.budget.amount:.2f} UAH exceeds the remaining envelope of "
                f"{remaining:.2f} UAH"
            )
            return BatchPlan(planned, refused, (case.case_id, why), remaining)
        planned.append(plan)
        remaining -= plan.budget.amount
    return BatchPlan(planned, refused, None, remaining)


@dataclass(frozen=True)
class Repaired:
    completed: RepairCompleted
    delivered: AssistanceDelivered
    closed: ShelterCaseClosed


def complete_repair(
    case: Case,
    *,
    value: Decimal,
    inspection_passed: bool,
    category: RepairCategory | None = None,
    modality: Modality | None = None,
    partner_org: str,
    delivery_id: UUID,
    now: datetime,
) -> Repaired:
    """A repair done as planned and inspected: the repair, the assistance it delivered, and
    the case closed as repaired."""
    if case.status is not CaseStatus.PLANNED or case.plan is None:
        raise WrongState(
            f"case {case.case_id} is {case.status.value}, not planned: only a planned repair "
            "can be completed"
        )
    plan = case.plan
    if category is not None and category is not plan.category:
        raise ShelterRuleError(
            f"the case was planned as a {plan.category.value} repair, not {category.value}"
        )
    if modality is not None and modality is not plan.modality:
        raise ShelterRuleError(
            f"the repair was planned {plan.modality.value}, not {modality.value}"
        )
    if not inspection_passed:
        raise ShelterRuleError(
            "the repair has not passed inspection: complete it once an inspection passes"
        )
    if value > plan.budget:
        raise ShelterRuleError(
            f"{value:.2f} UAH exceeds the planned budget of {plan.budget:.2f} UAH"
        )
    money = Money(amount=value)
    completed = RepairCompleted(
        case_id=case.case_id,
        household_id=case.household_id,
        category=plan.category,
        modality=plan.modality,
        value=money,
        completed_at=now,
    )
    delivered = AssistanceDelivered(
        delivery_id=delivery_id,
        household_id=case.household_id,
        sector=Sector.SHELTER,
        activity=LIGHT_REPAIR if plan.category is RepairCategory.LIGHT else MEDIUM_REPAIR,
        modality=plan.modality,
        quantity=Decimal(1),
        unit="dwelling",
        value=money,
        persons_reached=case.household_size,
        partner_org=partner_org,
        location=case.location,
        delivered_at=now,
    )
    return Repaired(completed, delivered, close_case(case, reason="repaired", now=now))


def close_case(case: Case, *, reason: str, now: datetime) -> ShelterCaseClosed:
    return ShelterCaseClosed(
        case_id=case.case_id, household_id=case.household_id, reason_code=reason, closed_at=now
    )


# ---- referrals out (state compensation) ------------------------------------------------


class ReferralStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    COMPLETED = "completed"

    @property
    def open(self) -> bool:
        return self in (ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED)


@dataclass(frozen=True)
class Referral:
    referral_id: UUID
    case_id: UUID
    household_id: UUID
    target: str
    status: ReferralStatus


#: How a case closes when the programme it was referred to is done with it.
CLOSED_WHEN_COMPLETED = "compensated"
CLOSED_WHEN_DECLINED = "compensation_declined"


def record_referral_outcome(
    referral: Referral,
    case: Case,
    *,
    completed: bool,
    code: str,
    now: datetime,
) -> tuple[ReferralCompleted | ReferralDeclined, ShelterCaseClosed]:
    """The programme's outcome, as a coordinator heard it (the programme does not publish
    to AidMesh, so shelter records it on its behalf), and the case closed."""
    if not referral.status.open or case.status is not CaseStatus.REFERRED:
        raise WrongState(
            f"case {case.case_id} is {case.status.value} and its referral "
            f"{referral.status.value}: there is no open referral to record an outcome for"
        )
    outcome: ReferralCompleted | ReferralDeclined
    if completed:
        outcome = ReferralCompleted(
            referral_id=referral.referral_id,
            household_id=case.household_id,
            completed_by=referral.target,
            outcome_code=code,
            completed_at=now,
        )
        reason = CLOSED_WHEN_COMPLETED
    else:
        outcome = ReferralDeclined(
            referral_id=referral.referral_id,
            household_id=case.household_id,
            declined_by=referral.target,
            reason_code=code,
            declined_at=now,
        )
        reason = CLOSED_WHEN_DECLINED
    return outcome, close_case(case, reason=reason, now=now)


def withdraw_referral(referral: Referral, *, reason: str, now: datetime) -> ReferralDeclined:
    """Shelter takes back a referral it made (consent withdrawn, household merged): the
    referring sector declines it, as the contract allows when consent is gone."""
    return ReferralDeclined(
        referral_id=referral.referral_id,
        household_id=referral.household_id,
        declined_by=SHELTER,
        reason_code=reason,
        declined_at=now,
    )


# ---- merges ----------------------------------------------------------------------------


def duplicates_after_merge(active: Sequence[Case]) -> list[Case]:
    """The survivor's active cases after a merge, but the oldest: those are closed (one
    household, one case)."""
    ordered = sorted(active, key=lambda c: (c.opened_at, str(c.case_id)))
    return ordered[1:]


# ---- deliveries without a case (NFI, rental assistance) --------------------------------


def heating_season(at: datetime, *, rules: ShelterRules) -> str:
    """The heating season a delivery counts for, e.g. "2026-2027" (Oct 2026 - Apr 2027),
    by the local date; deliveries from May prepare for the winter ahead."""
    day = at.astimezone(rules.timezone).date()
    start = day.year if day.month > rules.last_winter_month else day.year - 1
    return f"{start}-{start + 1}"


@dataclass(frozen=True)
class PastDelivery:
    delivery_id: UUID
    activity: str
    season: str | None
    delivered_at: datetime


def refuse_duplicate(
    previous: Iterable[PastDelivery], *, household_id: UUID, activity: str, season: str
) -> None:
    for past in previous:
        if past.activity == activity and past.season == season:
            raise DuplicateAssistance(
                f"household {household_id} already received {activity} in the {season} "
                f"heating season (delivery {past.delivery_id} on {past.delivered_at.date()})"
            )


def winterization_kits(
    household: Household,
    *,
    kits: int,
    modality: Modality,
    value: Decimal | None,
    previous: Iterable[PastDelivery],
    partner_org: str,
    delivery_id: UUID,
    rules: ShelterRules,
    now: datetime,
) -> tuple[AssistanceDelivered, str]:
    """Winterization kits for a household, once per heating season; and that season."""
    season = heating_season(now, rules=rules)
    refuse_duplicate(
        previous, household_id=household.household_id, activity=WINTERIZATION_KIT, season=season
    )
    if not 1 <= kits <= rules.winterization_max_kits:
        raise ShelterRuleError(
            f"a household gets 1 to {rules.winterization_max_kits} winterization kits"
        )
    if modality not in rules.winterization_modalities:
        raise ShelterRuleError(f"winterization kits are not given as {modality.value}")
    amount = value if value is not None else rules.winterization_kit_value * kits
    delivered = AssistanceDelivered(
        delivery_id=delivery_id,
        household_id=household.household_id,
        sector=Sector.SHELTER,
        activity=WINTERIZATION_KIT,
        modality=modality,
        quantity=Decimal(kits),
        unit="kit",
        value=Money(amount=amount.quantize(CENT)),
        persons_reached=household.size,
        partner_org=partner_org,
        location=household.location,
        delivered_at=now,
    )
    return delivered, season


def rental_assistance(
    household: Household,
    *,
    monthly_amount: Decimal,
    months: int,
    modality: Modality,
    previous: Iterable[PastDelivery],
    partner_org: str,
    delivery_id: UUID,
    rules: ShelterRules,
    now: datetime,
) -> tuple[AssistanceDelivered, str]:
    """Rental assistance (a monthly amount for N months) for a displaced household, once
    per heating season; and that season."""
    season = heating_season(now, rules=rules)
    refuse_duplicate(
        previous, household_id=household.household_id, activity=RENTAL_ASSISTANCE, season=season
    )
    if household.displacement_status not in rules.rental_displacement_statuses:
        raise ShelterRuleError(
            "rental assistance is for displaced households ("
            + ", ".join(sorted(rules.rental_displacement_statuses))
            + f"), not {household.displacement_status}"
        )
    if not 1 <= months <= rules.rental_max_months:
        raise ShelterRuleError(f"rental assistance covers 1 to {rules.rental_max_months} months")
    if monthly_amount > rules.rental_monthly_cap:
        raise ShelterRuleError(
            f"{monthly_amount:.2f} UAH a month exceeds the rental assistance cap of "
            f"{rules.rental_monthly_cap:.2f} UAH"
        )
    if modality not in rules.rental_modalities:
        raise ShelterRuleError(f"rental assistance is not given as {modality.value}")
    delivered = AssistanceDelivered(
        delivery_id=delivery_id,
        household_id=household.household_id,
        sector=Sector.SHELTER,
        activity=RENTAL_ASSISTANCE,
        modality=modality,
        quantity=Decimal(months),
        unit="month",
        value=Money(amount=(monthly_amount * months).quantize(CENT)),
        persons_reached=household.size,
        partner_org=partner_org,
        location=household.location,
        delivered_at=now,
    )
    return delivered, season


# ---- collective centres ----------------------------------------------------------------


@dataclass(frozen=True)
class FacilityCase:
    case_id: UUID
    facility_id: UUID
    status: str  # open, refurbished
    capacity: int
    location: Location


def open_facility_case(
    *, case_id: UUID, facility_id: UUID, capacity: int, location: Location, now: datetime
) -> FacilityCaseOpened:
    return FacilityCaseOpened(
        case_id=case_id,
        facility_id=facility_id,
        capacity=capacity,
        location=location,
        opened_at=now,
    )


def complete_refurbishment(
    case: FacilityCase,
    *,
    value: Decimal,
    modality: Modality,
    inspection_passed: bool,
    partner_org: str,
    delivery_id: UUID,
    rules: ShelterRules,
    now: datetime,
) -> AssistanceDelivered:
    """A collective centre refurbished and inspected: assistance to the facility, within a
    cap per place it offers."""
    if case.status != "open":
        raise WrongState(f"facility case {case.case_id} is {case.status}, not open")
    if not inspection_passed:
        raise ShelterRuleError(
            "the refurbishment has not passed inspection: complete it once an inspection passes"
        )
    if modality not in rules.refurbishment_modalities:
        raise ShelterRuleError(f"refurbishments are not paid as {modality.value}")
    cap = rules.centre_cap_per_place * case.capacity
    if value > cap:
        raise ShelterRuleError(
            f"{value:.2f} UAH exceeds the cap of {cap:.2f} UAH for a centre of "
            f"{case.capacity} places"
        )
    return AssistanceDelivered(
        delivery_id=delivery_id,
        facility_id=case.facility_id,
        sector=Sector.SHELTER,
        activity=CENTRE_REFURBISHMENT,
        modality=modality,
        quantity=Decimal(1),
        unit="facility",
        value=Money(amount=value),
        persons_reached=case.capacity,
        partner_org=partner_org,
        location=case.location,
        delivered_at=now,
    )


# ---- post-distribution monitoring -----------------------------------------------------


class UseCode(StrEnum):
    """What the household did with the assistance, as the monitor heard it."""

    USED_AS_INTENDED = "used_as_intended"
    PARTLY_USED = "partly_used"
    SHARED = "shared"
    SOLD = "sold"
    STORED = "stored"
    NOT_USED = "not_used"


def check_monitoring(*, received: bool, satisfaction: int | None, use: UseCode | None) -> None:
    """A follow-up that did not receive anything rates nothing and used nothing."""
    if received and satisfaction is None:
        raise ShelterRuleError("satisfaction (1-5) is asked when the assistance was received")
    if not received and (satisfaction is not None or use is not None):
        raise ShelterRuleError("assistance not received has no satisfaction or use: leave them out")
