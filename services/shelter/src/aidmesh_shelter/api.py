"""HTTP API for shelter engineers and coordinators.

Endpoints parse, call one use case in one transaction (`runtime.transaction()`), and answer.
Refusals are answered by the runtime (ADR 0014):
404 unknown id, 409 a step the case's state does not allow, 422 a rule's refusal
(over a cap, duplicate assistance, ...) with the reason in `detail`.

Who did the work a call records (`partner_org` of a delivery, `assessed_by`,
`monitored_by`) is the token's organisation (ADR 0009). A body naming another one is
refused (403 naming the field) unless the token also holds `shelter:record-for-partners`:
a coordinator recording the work of an implementing partner or of one of its teams.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from aidmesh_contracts import DamageLevel, Location, Modality, RepairCategory
from aidmesh_contracts.common import Adm1PCode, Code, OrgCode
from aidmesh_runtime.auth import (
    SHELTER_READ,
    SHELTER_RECORD_FOR_PARTNERS,
    SHELTER_WRITE,
    Principal,
    attributed,
    require_scope,
)
from aidmesh_runtime.params import Offset, Uah
from aidmesh_runtime.service import Runtime, rules_of, runtime_of
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from . import distribution, domain, repository, service
from .domain import CaseStatus, ShelterRules, UseCode
from .service import NotFound

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]

#: Every endpoint needs a scope (ADR 0009): reading, or changing.
Reads = require_scope(SHELTER_READ)
Writes = require_scope(SHELTER_WRITE)
#: A change that records who did the work (see `by`).
Writer = Annotated[Principal, require_scope(SHELTER_WRITE)]

#: How an organisation field of a body is read (the description every such field carries).
BY_CALLER = (
    " Left out: the caller's organisation (the token's `org`). Another one needs the scope"
    " shelter:record-for-partners (else 403)."
)


def by(principal: Principal, named: str | None, *, field: str) -> str:
    """Who did the work a call records: the token's org, or the organisation (or team) the
    body names in `field` if the token may record for partners; else 403."""
    return attributed(principal, named, field=field, for_partners=SHELTER_RECORD_FOR_PARTNERS)


RulesDep = Annotated[ShelterRules, Depends(rules_of)]


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query or path, then the field.")
    msg: str
    type: str


class Problem(BaseModel):
    detail: str | list[FieldProblem] = Field(
        description="Why the request was refused (ids and codes only), or for invalid input "
        "each field and why (never the submitted value)."
    )


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        404: "No such case, household, delivery or facility",
        409: "The case's state does not allow this step",
        422: "Invalid input (the field and why), or refused by a shelter rule (the reason)",
    }
    return {code: {"model": Problem, "description": meaning[code]} for code in codes}


# ---- household cases ---------------------------------------------------------------------

cases = APIRouter(tags=["shelter cases"])


class PlanOut(BaseModel):
    category: RepairCategory
    modality: Modality
    budget_uah: Decimal
    planned_at: datetime


class ReferralOut(BaseModel):
    referral_id: UUID
    to: str = Field(
        description="Where the household was referred, e.g. external.state_compensation."
    )
    status: Literal["requested", "accepted", "declined", "completed"]
    outcome_code: str | None = None


class CaseOut(BaseModel):
    case_id: UUID
    household_id: UUID
    status: CaseStatus
    damage_level: DamageLevel
    severity: int
    priority: int = Field(description="1 is served first (severity, damage, vulnerability, size).")
    location: Location
    household_size: int
    need_assessment_id: UUID | None = None
    opened_from_referral_id: UUID | None = Field(
        default=None, description="The referral to shelter the case was opened from, if any."
    )
    opened_at: datetime
    assessed_at: datetime | None = None
    assessed_by: str | None = None
    estimated_cost_uah: Decimal | None = None
    plan: PlanOut | None = None
    repair_value_uah: Decimal | None = None
    referral: ReferralOut | None = Field(
        default=None, description="The case's latest referral to another programme."
    )
    waiting_for: str | None = Field(
        default=None, description="What an awaiting_consent case waits for."
    )
    closed_at: datetime | None = None
    close_reason: str | None = None
    delivery_id: UUID | None = None


class BoqLineOut(BaseModel):
    item_code: str
    quantity: Decimal
    unit: str
    unit_cost_uah: Decimal
    total_uah: Decimal


class CaseDetailOut(CaseOut):
    boq: list[BoqLineOut] = Field(default_factory=list, description="The bill of quantities.")


def _case_out(row: dict[str, Any], rules: ShelterRules, model: type[CaseOut] = CaseOut) -> Any:
    plan = None
    if row["category"] is not None:
        plan = PlanOut(
            category=row["category"],
            modality=row["modality"],
            budget_uah=row["budget"],
            planned_at=row["planned_at"],
        )
    referral = None
    if row["referral_id"] is not None:
        referral = ReferralOut(
            referral_id=row["referral_id"],
            to=row["referral_target"],
            status=row["referral_status"],
            outcome_code=row["referral_outcome"],
        )
    waiting_for = None
    if row["status"] == CaseStatus.AWAITING_CONSENT:
        waiting_for = (
            f"the household's consent ({rules.referral_consent.value}) before it is referred "
            f"to {rules.compensation_programme}"
        )
    extra = {"boq": row["boq"]} if "boq" in row else {}
    return model(
        **{
            k: row[k]
            for k in (
                "case_id",
                "household_id",
                "status",
                "damage_level",
                "severity",
                "priority",
                "household_size",
                "need_assessment_id",
                "opened_from_referral_id",
                "opened_at",
                "assessed_at",
                "assessed_by",
                "closed_at",
                "close_reason",
                "delivery_id",
            )
        },
        location=Location(
            adm1_pcode=row["adm1_pcode"], adm2_pcode=row["adm2_pcode"], adm3_pcode=row["adm3_pcode"]
        ),
        estimated_cost_uah=row["estimated_cost"],
        repair_value_uah=row["repair_value"],
        plan=plan,
        referral=referral,
        waiting_for=waiting_for,
        **extra,
    )


@cases.get(
    "/cases",
    dependencies=[Reads],
    response_model=list[CaseOut],
    summary="The work queue: cases by status and oblast, most urgent first",
    description="Ordered by priority (1 first: severity, damage, vulnerability flags, "
    "household size), then by how long the case has waited.",
    responses=errors(422),
)
async def list_cases(
    runtime: RuntimeDep,
    rules: RulesDep,
    status: CaseStatus | None = None,
    oblast: Annotated[Adm1PCode | None, Query(description="Oblast P-code, e.g. UA63.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[CaseOut]:
    async with runtime.pool.acquire() as conn:
        rows = await repository.list_cases(
            conn,
            status=status.value if status else None,
            oblast=oblast,
            limit=limit,
            offset=offset,
        )
    return [_case_out(row, rules) for row in rows]


@cases.get(
    "/cases/{case_id}",
    dependencies=[Reads],
    response_model=CaseDetailOut,
    summary="One case with its assessment, plan, referral and delivery",
    responses=errors(404),
)
async def get_case(case_id: UUID, runtime: RuntimeDep, rules: RulesDep) -> CaseDetailOut:
    async with runtime.pool.acquire() as conn:
        row = await repository.case_detail(conn, case_id)
    if row is None:
        raise NotFound(f"shelter case {case_id} not found")
    return _case_out(row, rules, CaseDetailOut)  # type: ignore[no-any-return]


ItemCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{1,63}$"),
    Field(description="Item code of the bill of quantities.", examples=["roof.metal_sheet"]),
]


class BoqLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: ItemCode
    quantity: Annotated[Decimal, Field(gt=0, le=1_000_000, max_digits=12, decimal_places=3)]
    unit: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,16}$")] = Field(examples=["m2"])
    unit_cost_uah: Annotated[
        Decimal, Field(ge=0, le=10_000_000, max_digits=12, decimal_places=2)
    ] = Field(examples=["850.00"])


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    damage_level: Literal["light", "medium", "heavy"]
    assessed_by: OrgCode | None = Field(
        default=None, description="The engineer's team code, never a name." + BY_CALLER
    )
    boq: list[BoqLineIn] = Field(
        default_factory=list,
        max_length=1000,
        description="Bill of quantities; required for light and medium damage.",
    )


class AssessmentOut(BaseModel):
    case_id: UUID
    status: CaseStatus = Field(description="assessed, referred or awaiting_consent.")
    damage_level: DamageLevel
    estimated_cost_uah: Decimal
    boq_lines: int
    priority: int
    cap_uah: Decimal | None = Field(
        default=None, description="The cap of the repair category (light and medium only)."
    )
    within_cap: bool | None = None
    referral_id: UUID | None = None
    referred_to: str | None = None
    waiting_for: str | None = Field(
        default=None, description="Why a heavy-damage case is not referred yet."
    )


@cases.post(
    "/cases/{case_id}/assessment",
    response_model=AssessmentOut,
    summary="Record a field engineer's technical assessment (DamageAssessed)",
    description="Light and medium damage wait for a repair plan. Heavy damage is referred to "
    "the state compensation programme (ReferralRequested) if the household consented to "
    "referral; otherwise the case stays open as awaiting_consent, and is referred when the "
    "consent is recorded.",
    responses=errors(404, 409, 422),
)
async def assess(
    case_id: UUID, body: AssessmentIn, runtime: RuntimeDep, rules: RulesDep, principal: Writer
) -> AssessmentOut:
    assessed_by = by(principal, body.assessed_by, field="assessed_by")
    lines = [
        domain.BoqLine(
            item_code=line.item_code,
            quantity=line.quantity,
            unit=line.unit,
            unit_cost=line.unit_cost_uah,
        )
        for line in body.boq
    ]
    damage = DamageLevel(body.damage_level)
    async with runtime.transaction() as tx:
        result = await service.assess(
            tx,
            case_id,
            damage_level=damage,
            lines=lines,
            assessed_by=assessed_by,
            rules=rules,
        )
    estimated = result.assessed.estimated_cost.amount
    cap = None if damage is DamageLevel.HEAVY else rules.cap(RepairCategory(damage.value))
    return AssessmentOut(
        case_id=case_id,
        status=result.status,
        damage_level=damage,
        estimated_cost_uah=estimated,
        boq_lines=result.assessed.boq_lines,
        priority=result.priority,
        cap_uah=cap,
        within_cap=None if cap is None else estimated <= cap,
        referral_id=result.referral.referral_id if result.referral else None,
        referred_to=result.referral.to if result.referral else None,
        waiting_for=result.waiting_for,
    )


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: Modality | None = Field(
        default=None, description="in_kind or voucher; by default the category's usual one."
    )
    budget_uah: Uah | None = Field(
        default=None, description="At most the category's cap; by default the estimate."
    )


class PlannedOut(BaseModel):
    case_id: UUID
    category: RepairCategory
    modality: Modality
    budget_uah: Decimal
    cap_uah: Decimal
    priority: int


@cases.post(
    "/cases/{case_id}/plan",
    dependencies=[Writes],
    response_model=PlannedOut,
    summary="Plan a light or medium repair within its cap (RepairPlanned)",
    responses=errors(404, 409, 422),
)
async def plan(case_id: UUID, body: PlanIn, runtime: RuntimeDep, rules: RulesDep) -> PlannedOut:
    async with runtime.transaction() as tx:
        planned = await service.plan(
            tx, case_id, modality=body.modality, budget=body.budget_uah, rules=rules
        )
    return _planned_out(planned)


def _planned_out(planned: Any) -> PlannedOut:
    return PlannedOut(
        case_id=planned.case_id,
        category=planned.category,
        modality=planned.modality,
        budget_uah=planned.budget.amount,
        cap_uah=planned.cap.amount,
        priority=planned.priority,
    )


class BatchPlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oblast: Adm1PCode
    envelope_uah: Uah = Field(description="The money available for these repairs.")


class Refusal(BaseModel):
    case_id: UUID
    reason: str


class BatchPlanOut(BaseModel):
    planned: list[PlannedOut]
    refused: list[Refusal] = Field(description="Cases that cannot be planned at their estimate.")
    stopped_at: Refusal | None = Field(
        default=None, description="The first case the envelope could not cover; the rest wait."
    )
    remaining_uah: Decimal


@cases.post(
    "/repair-plans",
    dependencies=[Writes],
    response_model=BatchPlanOut,
    summary="Plan an oblast's assessed cases, most vulnerable first, within an envelope",
    description="Cases are planned at their estimate in priority order until the envelope "
    "runs out; it stops at the first case it cannot cover rather than skip it for a cheaper, "
    "less urgent one. A case over its cap is refused (plan it alone with a lower budget).",
    responses=errors(422),
)
async def plan_batch(body: BatchPlanIn, runtime: RuntimeDep, rules: RulesDep) -> BatchPlanOut:
    async with runtime.transaction() as tx:
        batch = await service.plan_in_priority_order(
            tx, oblast=body.oblast, envelope=body.envelope_uah, rules=rules
        )
    return BatchPlanOut(
        planned=[_planned_out(p) for p in batch.planned],
        refused=[Refusal(case_id=c, reason=r) for c, r in batch.refused],
        stopped_at=Refusal(case_id=batch.stopped_at[0], reason=batch.stopped_at[1])
        if batch.stopped_at
        else None,
        remaining_uah=batch.remaining,
    )


class RepairCompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value_uah: Uah = Field(description="What the repair cost; at most the planned budget.")
    inspection_passed: bool = Field(
        description="The completion inspection passed (works match the bill of quantities)."
    )
    category: RepairCategory | None = Field(
        default=None, description="If given, must be the planned category."
    )
    modality: Modality | None = Field(
        default=None, description="If given, must be the planned modality."
    )
    partner_org: OrgCode | None = Field(
        default=None, description="Who did the work (5W)." + BY_CALLER
    )


class RepairCompletionOut(BaseModel):
    case_id: UUID
    delivery_id: UUID
    status: CaseStatus
    activity: str
    value_uah: Decimal


@cases.post(
    "/cases/{case_id}/repair-completion",
    response_model=RepairCompletionOut,
    summary="Record a completed, inspected repair: RepairCompleted, AssistanceDelivered, "
    "ShelterCaseClosed",
    responses=errors(404, 409, 422),
)
async def complete_repair(
    case_id: UUID, body: RepairCompletionIn, runtime: RuntimeDep, principal: Writer
) -> RepairCompletionOut:
    partner_org = by(principal, body.partner_org, field="partner_org")
    async with runtime.transaction() as tx:
        repaired = await service.complete_repair(
            tx,
            case_id,
            value=body.value_uah,
            inspection_passed=body.inspection_passed,
            category=body.category,
            modality=body.modality,
            partner_org=partner_org,
        )
    return RepairCompletionOut(
        case_id=case_id,
        delivery_id=repaired.delivered.delivery_id,
        status=CaseStatus.REPAIRED,
        activity=repaired.delivered.activity,
        value_uah=body.value_uah,
    )


class ReferralOutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["completed", "declined"]
    code: Code = Field(
        description="The programme's outcome code (completed) or reason code (declined).",
        examples=["compensation_paid", "not_eligible"],
    )


class ReferralOutcomeOut(BaseModel):
    case_id: UUID
    referral_id: UUID
    status: CaseStatus
    close_reason: str


@cases.post(
    "/cases/{case_id}/referral-outcome",
    dependencies=[Writes],
    response_model=ReferralOutcomeOut,
    summary="Record the compensation programme's answer; the case closes",
    description="The external programme does not publish to AidMesh, so shelter records its "
    "answer on its behalf (ReferralCompleted or ReferralDeclined) and closes the case "
    "(compensated or compensation_declined).",
    responses=errors(404, 409, 422),
)
async def referral_outcome(
    case_id: UUID, body: ReferralOutcomeIn, runtime: RuntimeDep
) -> ReferralOutcomeOut:
    async with runtime.transaction() as tx:
        outcome, closed = await service.record_referral_outcome(
            tx, case_id, completed=body.outcome == "completed", code=body.code
        )
    return ReferralOutcomeOut(
        case_id=case_id,
        referral_id=outcome.referral_id,
        status=CaseStatus.CLOSED,
        close_reason=closed.reason_code,
    )


# ---- deliveries without a case -----------------------------------------------------------

assistance = APIRouter(tags=["winterization and rental assistance"])


class DeliveryOut(BaseModel):
    delivery_id: UUID
    household_id: UUID | None = None
    facility_id: UUID | None = None
    case_id: UUID | None = None
    activity: str
    season: str | None = Field(default=None, description="Heating season, e.g. 2026-2027.")
    modality: Modality
    quantity: Decimal
    unit: str
    value_uah: Decimal | None = None
    persons_reached: int
    partner_org: str
    location: Location
    delivered_at: datetime


def _delivery_out(row: dict[str, Any]) -> DeliveryOut:
    return DeliveryOut(
        **{
            k: row[k]
            for k in (
                "delivery_id",
                "household_id",
                "facility_id",
                "case_id",
                "activity",
                "season",
                "modality",
                "quantity",
                "unit",
                "persons_reached",
                "partner_org",
                "delivered_at",
            )
        },
        value_uah=row["value"],
        location=Location(
            adm1_pcode=row["adm1_pcode"], adm2_pcode=row["adm2_pcode"], adm3_pcode=row["adm3_pcode"]
        ),
    )


def _delivered_out(
    delivered: Any, *, season: str | None, case_id: UUID | None = None
) -> DeliveryOut:
    return DeliveryOut(
        delivery_id=delivered.delivery_id,
        household_id=delivered.household_id,
        facility_id=delivered.facility_id,
        case_id=case_id,
        activity=delivered.activity,
        season=season,
        modality=delivered.modality,
        quantity=delivered.quantity,
        unit=delivered.unit,
        value_uah=delivered.value.amount if delivered.value else None,
        persons_reached=delivered.persons_reached,
        partner_org=delivered.partner_org,
        location=delivered.location,
        delivered_at=delivered.delivered_at,
    )


class WinterizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kits: Annotated[int, Field(ge=1, le=20)] = 1
    modality: Modality = Modality.IN_KIND
    value_uah: Uah | None = Field(
        default=None, description="Value of the kits; by default the standard kit value."
    )
    partner_org: OrgCode | None = Field(
        default=None, description="Who did the work (5W)." + BY_CALLER
    )


@assistance.post(
    "/households/{household_id}/winterization-kits",
    response_model=DeliveryOut,
    status_code=201,
    summary="Deliver winterization kits (once per household and heating season)",
    description="Refused with 422 when the household already received winterization kits in "
    "the same heating season (October to April; deliveries from May count for the winter "
    "ahead), including those of a registration merged into it.",
    responses=errors(404, 422),
)
async def winterization_kits(
    household_id: UUID,
    body: WinterizationIn,
    runtime: RuntimeDep,
    rules: RulesDep,
    principal: Writer,
) -> DeliveryOut:
    partner_org = by(principal, body.partner_org, field="partner_org")
    async with runtime.transaction() as tx:
        delivered, season = await distribution.give_winterization_kits(
            tx,
            household_id,
            kits=body.kits,
            modality=body.modality,
            value=body.value_uah,
            partner_org=partner_org,
            rules=rules,
        )
    return _delivered_out(delivered, season=season)


class RentalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monthly_amount_uah: Uah
    months: Annotated[int, Field(ge=1, le=24)]
    modality: Modality = Modality.CASH
    partner_org: OrgCode | None = Field(
        default=None, description="Who did the work (5W)." + BY_CALLER
    )


@assistance.post(
    "/households/{household_id}/rental-assistance",
    response_model=DeliveryOut,
    status_code=201,
    summary="Deliver rental assistance: a monthly amount for N months (displaced households)",
    description="Refused with 422 over the monthly cap or the number of months, for a "
    "household that is not displaced, or when it already received rental assistance in the "
    "same heating season.",
    responses=errors(404, 422),
)
async def rental_assistance(
    household_id: UUID, body: RentalIn, runtime: RuntimeDep, rules: RulesDep, principal: Writer
) -> DeliveryOut:
    partner_org = by(principal, body.partner_org, field="partner_org")
    async with runtime.transaction() as tx:
        delivered, season = await distribution.give_rental_assistance(
            tx,
            household_id,
            monthly_amount=body.monthly_amount_uah,
            months=body.months,
            modality=body.modality,
            partner_org=partner_org,
            rules=rules,
        )
    return _delivered_out(delivered, season=season)


@assistance.get(
    "/households/{household_id}/deliveries",
    dependencies=[Reads],
    response_model=list[DeliveryOut],
    summary="What shelter delivered to a household (and to registrations merged into it)",
    responses=errors(404),
)
async def household_deliveries(household_id: UUID, runtime: RuntimeDep) -> list[DeliveryOut]:
    async with runtime.transaction() as tx:
        rows = await distribution.household_deliveries(tx, household_id)
    return [_delivery_out(r) for r in rows]


# ---- collective centres ------------------------------------------------------------------

facilities = APIRouter(tags=["collective centres"])


class FacilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = (
        Field(description="The centre's name (a building): kept in shelter, never published.")
    )
    location: Location
    capacity: Annotated[int, Field(ge=1, le=100000, description="Places the centre offers.")]


class FacilityOut(BaseModel):
    facility_id: UUID
    case_id: UUID
    name: str
    capacity: int
    location: Location
    status: Literal["open", "refurbished"]
    opened_at: datetime
    closed_at: datetime | None = None
    delivery_id: UUID | None = None


def _facility_out(row: dict[str, Any]) -> FacilityOut:
    return FacilityOut(
        **{
            k: row[k]
            for k in (
                "facility_id",
                "case_id",
                "name",
                "capacity",
                "status",
                "opened_at",
                "closed_at",
                "delivery_id",
            )
        },
        location=Location(
            adm1_pcode=row["adm1_pcode"], adm2_pcode=row["adm2_pcode"], adm3_pcode=row["adm3_pcode"]
        ),
    )


@facilities.post(
    "/facilities",
    dependencies=[Writes],
    response_model=FacilityOut,
    status_code=201,
    summary="Take on a collective centre for refurbishment (FacilityCaseOpened)",
    responses=errors(422),
)
async def open_facility(body: FacilityIn, runtime: RuntimeDep) -> FacilityOut:
    async with runtime.transaction() as tx:
        opened = await distribution.open_facility(
            tx, name=body.name, capacity=body.capacity, location=body.location
        )
        row = await repository.facility(tx.conn, opened.facility_id)
    assert row is not None
    return _facility_out(row)


@facilities.get(
    "/facilities",
    dependencies=[Reads],
    response_model=list[FacilityOut],
    summary="Collective centres and their refurbishment cases",
    responses=errors(422),
)
async def list_facilities(
    runtime: RuntimeDep,
    oblast: Annotated[Adm1PCode | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[FacilityOut]:
    async with runtime.pool.acquire() as conn:
        rows = await repository.list_facilities(conn, oblast=oblast, limit=limit, offset=offset)
    return [_facility_out(r) for r in rows]


@facilities.get(
    "/facilities/{facility_id}",
    dependencies=[Reads],
    response_model=FacilityOut,
    summary="One collective centre",
    responses=errors(404),
)
async def get_facility(facility_id: UUID, runtime: RuntimeDep) -> FacilityOut:
    async with runtime.pool.acquire() as conn:
        row = await repository.facility(conn, facility_id)
    if row is None:
        raise NotFound(f"facility {facility_id} not found")
    return _facility_out(row)


class RefurbishmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value_uah: Uah = Field(description="At most the cap per place times the centre's capacity.")
    modality: Modality = Modality.IN_KIND
    inspection_passed: bool
    partner_org: OrgCode | None = Field(
        default=None, description="Who did the work (5W)." + BY_CALLER
    )


@facilities.post(
    "/facility-cases/{case_id}/refurbishment-completion",
    response_model=DeliveryOut,
    summary="Record a refurbished, inspected centre: AssistanceDelivered to the facility",
    responses=errors(404, 409, 422),
)
async def complete_refurbishment(
    case_id: UUID,
    body: RefurbishmentIn,
    runtime: RuntimeDep,
    rules: RulesDep,
    principal: Writer,
) -> DeliveryOut:
    partner_org = by(principal, body.partner_org, field="partner_org")
    async with runtime.transaction() as tx:
        delivered = await distribution.complete_refurbishment(
            tx,
            case_id,
            value=body.value_uah,
            modality=body.modality,
            inspection_passed=body.inspection_passed,
            partner_org=partner_org,
            rules=rules,
        )
    return _delivered_out(delivered, season=None, case_id=case_id)


# ---- deliveries and their monitoring -----------------------------------------------------

monitoring = APIRouter(tags=["post-distribution monitoring"])


class MonitoringIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    received: bool
    satisfaction: Annotated[int, Field(ge=1, le=5)] | None = Field(
        default=None, description="1 (very unsatisfied) to 5; asked if received."
    )
    use: UseCode | None = Field(default=None, description="What the household did with it.")
    monitored_by: OrgCode | None = Field(
        default=None, description="The monitoring team's code." + BY_CALLER
    )
    monitored_at: AwareDatetime | None = Field(
        default=None, description="When the follow-up took place; by default now."
    )


class MonitoringOut(BaseModel):
    delivery_id: UUID
    received: bool
    satisfaction: int | None
    use: UseCode | None
    monitored_by: str
    monitored_at: datetime
    recorded_at: datetime


def _monitoring_out(row: dict[str, Any]) -> MonitoringOut:
    return MonitoringOut(
        **{
            k: row[k]
            for k in (
                "delivery_id",
                "received",
                "satisfaction",
                "monitored_by",
                "monitored_at",
                "recorded_at",
            )
        },
        use=row["use_code"],
    )


@monitoring.get(
    "/deliveries/{delivery_id}",
    dependencies=[Reads],
    response_model=DeliveryOut,
    summary="One delivery shelter made",
    responses=errors(404),
)
async def get_delivery(delivery_id: UUID, runtime: RuntimeDep) -> DeliveryOut:
    async with runtime.pool.acquire() as conn:
        row = await repository.delivery(conn, delivery_id)
    if row is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return _delivery_out(row)


@monitoring.post(
    "/deliveries/{delivery_id}/monitoring",
    response_model=MonitoringOut,
    status_code=201,
    summary="Record the post-distribution follow-up of a delivery (one per delivery)",
    responses=errors(404, 409, 422),
)
async def record_monitoring(
    delivery_id: UUID, body: MonitoringIn, runtime: RuntimeDep, principal: Writer
) -> MonitoringOut:
    monitored_by = by(principal, body.monitored_by, field="monitored_by")
    async with runtime.transaction() as tx:
        row = await distribution.record_monitoring(
            tx,
            delivery_id,
            received=body.received,
            satisfaction=body.satisfaction,
            use=body.use,
            monitored_by=monitored_by,
            monitored_at=body.monitored_at,
        )
    return _monitoring_out(row)


@monitoring.get(
    "/deliveries/{delivery_id}/monitoring",
    dependencies=[Reads],
    response_model=MonitoringOut,
    summary="The post-distribution follow-up of a delivery",
    responses=errors(404),
)
async def get_monitoring(delivery_id: UUID, runtime: RuntimeDep) -> MonitoringOut:
    async with runtime.pool.acquire() as conn:
        row = await repository.monitoring(conn, delivery_id)
    if row is None:
        raise NotFound(f"delivery {delivery_id} has no monitoring record")
    return _monitoring_out(row)


routers = (cases, assistance, facilities, monitoring)
