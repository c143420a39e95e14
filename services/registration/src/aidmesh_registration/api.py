"""HTTP API of registration (thin: validate, call a use case, answer)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Depends, Header, HTTPException, status
from pydantic import BaseModel

from . import repository
from .domain import HouseholdIn
from .service import register_household

router = APIRouter(tags=["households"])
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


class EventRef(BaseModel):
    id: UUID
    type: str


class RegistrationOut(BaseModel):
    household_id: UUID
    correlation_id: UUID
    events: list[EventRef]


@router.post(
    "/households",
    status_code=status.HTTP_201_CREATED,
    response_model=RegistrationOut,
    summary="Register a household and publish HouseholdRegistered and its NeedAssessed events",
    responses={422: {"description": "Invalid registration: the field and the reason"}},
)
async def create_household(
    household: HouseholdIn,
    runtime: RuntimeDep,
    x_correlation_id: Annotated[UUID | None, Header()] = None,
) -> RegistrationOut:
    result = await register_household(runtime, household, correlation_id=x_correlation_id)
    return RegistrationOut(
        household_id=result.household_id,
        correlation_id=result.correlation_id,
        events=[EventRef(id=e.id, type=e.type) for e in result.events],
    )


@router.get("/households/{household_id}", summary="A household with its members and needs")
async def read_household(household_id: UUID, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.pool.acquire() as conn:
        household = await repository.get_household(conn, household_id)
    if household is None:
        raise HTTPException(status_code=404, detail=f"household {household_id} not found")
    return household
