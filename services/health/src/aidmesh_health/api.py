"""HTTP API of health: read-only views for coordinators (no clinical data)."""

from __future__ import annotations

from typing import Annotated, Any

from aidmesh_contracts.common import Adm1PCode
from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Depends, Query

router = APIRouter(tags=["visits"])
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


@router.get("/visits", summary="Completed visits, newest first")
async def list_visits(
    runtime: RuntimeDep,
    adm1_pcode: Annotated[Adm1PCode | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT visit_id, household_id, team_code, services_delivered, persons_seen,
                      adm1_pcode, completed_at, delivery_id FROM visits
               WHERE ($1::text IS NULL OR adm1_pcode = $1) ORDER BY completed_at DESC LIMIT $2""",
            adm1_pcode,
            limit,
        )
    return [dict(r) for r in rows]
