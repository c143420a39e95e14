"""The audit HTTP API: a household's timeline."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aidmesh_runtime.auth import AUDIT_READ, require_scope
from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Depends

from . import repository
from .timeline import timeline_document

router = APIRouter(tags=["audit"])
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


@router.get(
    "/households/{household_id}/timeline",
    dependencies=[require_scope(AUDIT_READ)],
    summary="Every event about a household, in ledger order, with its causation tree",
)
async def household_timeline(household_id: UUID, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.pool.acquire() as conn:
        entries = await repository.household_entries(conn, str(household_id))
    return timeline_document(str(household_id), entries)
