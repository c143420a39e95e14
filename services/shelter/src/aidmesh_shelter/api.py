"""HTTP API for shelter engineers and coordinators."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from aidmesh_contracts import DamageLevel, Modality, RepairCategory
from aidmesh_contracts.common import Adm1PCode, OrgCode
from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from . import repository
from .domain import CaseNotOpen, ShelterRuleError
from .service import CaseNotFound, complete_repair

router = APIRouter(tags=["shelter cases"])
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


class CaseOut(BaseModel):
    case_id: UUID
    household_id: UUID
    status: str
    damage_level: DamageLevel
    severity: int
    adm1_pcode: str
    opened_at: datetime
    closed_at: datetime | None = None
    delivery_id: UUID | None = None


class RepairCompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: RepairCategory
    modality: Modality
    value_uah: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)] = Field(
        description="Value of materials or voucher in UAH, as a decimal string.",
        examples=["12500.00"],
    )
    partner_org: OrgCode | None = None


class RepairCompletionOut(BaseModel):
    case_id: UUID
    delivery_id: UUID


@router.get("/cases", response_model=list[CaseOut], summary="Shelter cases, most severe first")
async def list_cases(
    runtime: RuntimeDep,
    status: Literal["open", "repaired", "closed"] | None = None,
    adm1_pcode: Annotated[Adm1PCode | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    async with runtime.pool.acquire() as conn:
        return await repository.list_cases(
            conn, status=status, adm1_pcode=adm1_pcode, limit=limit, offset=offset
        )


@router.post(
    "/cases/{case_id}/repair-completion",
    response_model=RepairCompletionOut,
    summary="Record a completed, checked repair: RepairCompleted and AssistanceDelivered",
    responses={404: {"description": "No such case"}, 409: {"description": "Case not open"},
               422: {"description": "Refused by a shelter rule, with the reason"}},
)
async def record_repair_completion(
    case_id: UUID, body: RepairCompletionIn, runtime: RuntimeDep
) -> RepairCompletionOut:
    try:
        delivery_id = await complete_repair(
            runtime,
            case_id,
            category=body.category,
            modality=body.modality,
            value_uah=body.value_uah,
            partner_org=body.partner_org,
        )
    except CaseNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except CaseNotOpen as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except ShelterRuleError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return RepairCompletionOut(case_id=case_id, delivery_id=delivery_id)
