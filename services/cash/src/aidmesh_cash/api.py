"""HTTP API for cash programme officers and approvers.

A programme officer (`cash:write`) opens a cycle and imports the provider's report; a
second person (`cash:approve`, never the one who opened it) approves the cycle's list.
Refusals are answered by the runtime (ADR 0014): 404 unknown id, 403 the opener
approving, 409 a step the cycle's state does not allow, 422 a rule's refusal.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from aidmesh_contracts import PaymentModality
from aidmesh_contracts.common import Adm1PCode
from aidmesh_contracts.events.cash import FspCode, Month
from aidmesh_runtime.auth import CASH_APPROVE, CASH_READ, CASH_WRITE, Principal, require_scope
from aidmesh_runtime.params import Offset, Uah
from aidmesh_runtime.service import Runtime, rules_of, runtime_of
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from . import domain, repository, service
from .domain import FLAGS, HOLD_REASONS, CashRules, LineStatus
from .service import NotFound

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
Reads = require_scope(CASH_READ)
Officer = Annotated[Principal, require_scope(CASH_WRITE)]
Approver = Annotated[Principal, require_scope(CASH_APPROVE)]


RulesDep = Annotated[CashRules, Depends(rules_of)]


def errors(**meaning: str) -> dict[int | str, dict[str, Any]]:
    return {int(code.removeprefix("e")): {"description": text} for code, text in meaning.items()}


router = APIRouter(tags=["cash"])


# ---- entitlements ----------------------------------------------------------------------------


class EntitlementOut(BaseModel):
    household_id: UUID = Field(description="The household (the one that stays, if merged).")
    assessed_household_id: UUID = Field(
        description="The household whose cash need decided it (a merged one, possibly)."
    )
    assessment_id: UUID
    severity: int
    eligible: bool
    monthly_amount_uah: Decimal = Field(description="What one month pays; 0 if not eligible.")
    priority: int = Field(description="Points: more points, paid earlier in a cycle.")
    explanation: dict[str, Any] = Field(
        description="Which rule, which inputs, why: `rule`, `inputs`, `eligible`, `reasons` "
        "(codes and messages), `amount` and `priority` as computed."
    )
    assessed_at: datetime
    decided_at: datetime


@router.get(
    "/households/{household_id}/entitlement",
    dependencies=[Reads],
    response_model=EntitlementOut,
    summary="A household's MPCA entitlement, explained",
    responses=errors(e404="No cash need assessed for this household (or not known yet)"),
)
async def entitlement(household_id: UUID, runtime: RuntimeDep) -> EntitlementOut:
    async with runtime.pool.acquire() as conn:
        row = await repository.entitlement_of(conn, household_id)
    if row is None:
        raise NotFound(f"no cash entitlement for household {household_id}")
    return EntitlementOut(**row, monthly_amount_uah=row["monthly_amount"])


# ---- cycles --------------------------------------------------------------------------------------


class CycleIn(BaseModel):
    adm1_pcodes: Annotated[
        frozenset[Adm1PCode],
        Field(min_length=1, max_length=27, description="The oblasts the cycle pays in."),
    ]
    first_month: Month
    months: Annotated[int | None, Field(ge=1, le=12)] = Field(
        default=None, description="Months the cycle covers; left out: the programme's default."
    )
    budget_uah: Uah
    fsp: FspCode
    modality: PaymentModality


class LineTotals(BaseModel):
    households: int
    total_uah: Decimal


class CycleOut(BaseModel):
    cycle_id: UUID
    status: str = Field(description="proposed (waiting for approval) or approved.")
    adm1_pcodes: list[str]
    first_month: str
    months: int
    budget_uah: Decimal
    fsp: str
    modality: PaymentModality
    opened_by: str = Field(description="The organisation that opened it.")
    opened_at: datetime
    approved_by: str | None = Field(default=None, description="The approver's organisation.")
    approved_at: datetime | None = None
    proposed: LineTotals = Field(description="Within the budget (instructed, once approved).")
    waiting: LineTotals = Field(description="Eligible, beyond the budget, in rank order.")
    held: LineTotals = Field(description="Not paid in this cycle; each line says why.")
    payments: int | None = Field(default=None, description="Payments instructed on approval.")


async def _cycle_out(conn: Any, cycle_id: UUID) -> CycleOut:
    row = await repository.cycle(conn, cycle_id)
    if row is None:
        raise NotFound(f"cycle {cycle_id} not found")
    counts = await repository.line_counts(conn, cycle_id)

    def totals(status: LineStatus) -> LineTotals:
        households, total = counts.get(status.value, (0, Decimal(0)))
        return LineTotals(households=households, total_uah=total)

    return CycleOut(
        cycle_id=row["cycle_id"],
        status=row["status"],
        adm1_pcodes=row["adm1_pcodes"],
        first_month=domain.month_name(row["first_month"]),
        months=row["months"],
        budget_uah=row["budget"],
        fsp=row["fsp"],
        modality=row["modality"],
        opened_by=row["opened_by_org"],
        opened_at=row["opened_at"],
        approved_by=row["approved_by_org"],
        approved_at=row["approved_at"],
        proposed=totals(LineStatus.PROPOSED),
        waiting=totals(LineStatus.WAITING),
        held=totals(LineStatus.HELD),
        payments=row["payments"],
    )


@router.post(
    "/cycles",
    status_code=201,
    response_model=CycleOut,
    summary="Open a payment cycle and propose its list (PaymentCycleOpened)",
    description="The eligible households of the oblasts, ranked by priority (severity, "
    "vulnerability, size; then who was assessed first), are proposed while the budget "
    "lasts; the rest wait in rank order. Households already paid for a month of the cycle, "
    "or without consent to data sharing, are held with the reason.",
    responses=errors(e422="Invalid input, or refused by a cash rule (the reason)"),
)
async def open_cycle(
    body: CycleIn, runtime: RuntimeDep, rules: RulesDep, officer: Officer
) -> CycleOut:
    request = service.CycleRequest(
        adm1_pcodes=body.adm1_pcodes,
        first_month=body.first_month,
        months=body.months or rules.default_months,
        budget=body.budget_uah,
        fsp=body.fsp,
        modality=body.modality,
    )
    async with runtime.transaction() as tx:
        cycle_id = await service.open_cycle(
            tx, request, opened_by=officer.sub, opened_by_org=officer.org, rules=rules
        )
        return await _cycle_out(tx.conn, cycle_id)


@router.get(
    "/cycles/{cycle_id}",
    dependencies=[Reads],
    response_model=CycleOut,
    summary="A cycle: its months, budget, and its list's totals",
    responses=errors(e404="No such cycle"),
)
async def get_cycle(cycle_id: UUID, runtime: RuntimeDep) -> CycleOut:
    async with runtime.pool.acquire() as conn:
        return await _cycle_out(conn, cycle_id)


class LineOut(BaseModel):
    household_id: UUID
    status: LineStatus
    rank: int | None = Field(description="Place in the cycle's order; none when held.")
    amount_uah: Decimal
    reason: str | None = Field(description="Why a held household is held (a code).")
    reason_text: str | None = None
    flags: dict[str, str] = Field(
        description="What the approver should know (code: meaning); no flag stops a payment."
    )
    payment_id: UUID | None = Field(default=None, description="Once approved.")
    payment_status: str | None = Field(
        default=None, description="instructed, paid, failed or unclaimed."
    )


@router.get(
    "/cycles/{cycle_id}/lines",
    dependencies=[Reads],
    response_model=list[LineOut],
    summary="A cycle's list: proposed and waiting households in rank order, then held ones",
    description="Ids and amounts only; a household's entitlement and its explanation are "
    "at /households/{household_id}/entitlement.",
    responses=errors(e404="No such cycle"),
)
async def cycle_lines(
    cycle_id: UUID,
    runtime: RuntimeDep,
    status: LineStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[LineOut]:
    async with runtime.pool.acquire() as conn:
        if await repository.cycle(conn, cycle_id) is None:
            raise NotFound(f"cycle {cycle_id} not found")
        rows = await repository.lines(
            conn, cycle_id, status=status.value if status else None, limit=limit, offset=offset
        )
    return [
        LineOut(
            household_id=row["household_id"],
            status=row["status"],
            rank=row["rank"],
            amount_uah=row["amount"],
            reason=row["reason"],
            reason_text=HOLD_REASONS.get(row["reason"]) if row["reason"] else None,
            flags={flag: FLAGS.get(flag, flag) for flag in row["flags"]},
            payment_id=row["payment_id"],
            payment_status=row["payment_status"],
        )
        for row in rows
    ]


@router.post(
    "/cycles/{cycle_id}/approval",
    response_model=CycleOut,
    summary="Approve a cycle's list: its payments are instructed (PaymentInstructed)",
    description="By a second person: the one who opened the cycle gets 403. Households "
    "paid for a month of the cycle since it was proposed (by another cycle) are held "
    "instead. The payee's details are added by registration, in the provider's file.",
    responses=errors(
        e403="The caller opened this cycle (or lacks cash:approve)",
        e404="No such cycle",
        e409="The cycle is not waiting for approval",
    ),
)
async def approve(cycle_id: UUID, runtime: RuntimeDep, approver: Approver) -> CycleOut:
    async with runtime.transaction() as tx:
        await service.approve_cycle(tx, cycle_id, approver=approver.sub, approver_org=approver.org)
        return await _cycle_out(tx.conn, cycle_id)


# ---- providers' reports --------------------------------------------------------------------------


class ReportIn(BaseModel):
    control_total_uah: Annotated[
        Decimal,
        Field(
            ge=0,
            max_digits=14,
            decimal_places=2,
            description="The provider's total of its paid rows: the report is refused whole "
            "if its rows do not add up to it.",
        ),
    ]
    csv: Annotated[
        str,
        Field(
            min_length=1,
            description="The provider's report: header `"
            + ",".join(domain.REPORT_COLUMNS)
            + "`, one row per payment; status paid, failed or unclaimed; paid_at (ISO 8601) "
            "on paid rows; reason a code, if any.",
        ),
    ]


class RowRefusalOut(BaseModel):
    line: int = Field(description="The report's line (the header is line 1).")
    payment_id: str
    reason: str = Field(
        description="unknown_payment, repeated, already_reported, amount_mismatch or bad_row."
    )
    message: str


class ReportOut(BaseModel):
    report_id: UUID
    cycle_id: UUID
    imported_at: datetime
    paid: int
    failed: int
    unclaimed: int
    paid_total_uah: Decimal
    control_total_uah: Decimal
    refused: list[RowRefusalOut]
    reconciled: bool = Field(description="True when no row was refused.")


@router.post(
    "/cycles/{cycle_id}/reports",
    status_code=201,
    response_model=ReportOut,
    summary="Import a provider's report and reconcile it with the cycle's payments",
    description="Paid rows confirm their payment (PaymentConfirmed, AssistanceDelivered); "
    "failed and unclaimed rows give the household's months back (PaymentFailed, with the "
    "next step). Rows naming an unknown payment, one already reported or repeated, or "
    "another amount than instructed are refused, each with its line and reason; the rest "
    "is applied. The same file again answers the first import's result.",
    responses=errors(
        e404="No such cycle",
        e409="The cycle is not approved",
        e422="Unreadable report, or its paid rows do not add up to the control total",
    ),
)
async def import_report(
    cycle_id: UUID, body: ReportIn, runtime: RuntimeDep, rules: RulesDep, officer: Officer
) -> ReportOut:
    async with runtime.transaction() as tx:
        result = await service.import_report(
            tx,
            cycle_id,
            body.csv,
            control_total=body.control_total_uah,
            imported_by=officer.sub,
            rules=rules,
        )
    return ReportOut.model_validate(result)


@router.get(
    "/cycles/{cycle_id}/reports/{report_id}",
    dependencies=[Reads],
    response_model=ReportOut,
    summary="A provider's report as it was reconciled",
    responses=errors(e404="No such cycle or report"),
)
async def get_report(cycle_id: UUID, report_id: UUID, runtime: RuntimeDep) -> ReportOut:
    async with runtime.pool.acquire() as conn:
        row = await repository.report(conn, cycle_id, report_id)
    if row is None:
        raise NotFound(f"report {report_id} of cycle {cycle_id} not found")
    return ReportOut.model_validate(json.loads(row["result"]))
