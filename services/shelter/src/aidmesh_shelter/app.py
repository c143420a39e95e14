"""Composition root of the shelter service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from uuid import UUID, uuid4

from aidmesh_runtime.projections import households
from aidmesh_runtime.service import create_service_app, utc_now
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from . import api
from .domain import ShelterRuleError, WrongState
from .handlers import shelter_handlers
from .service import NotFound
from .settings import ShelterSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(
    settings: ShelterSettings,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid4,
) -> FastAPI:
    rules = settings.rules()
    router = APIRouter()
    for part in api.routers:
        router.include_router(part)
    app = create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        extra_migrations=[households.MIGRATIONS],
        handlers=shelter_handlers(rules),
        router=router,
        clock=clock,
        new_id=new_id,
        title="AidMesh shelter",
        description=(
            "Shelter cases from assessed needs and referrals: technical assessment, repair "
            "plans within caps, repairs delivered, heavy damage referred to state "
            "compensation; winterization kits and rental assistance once per heating season; "
            "collective-centre refurbishment; post-distribution monitoring."
        ),
    )
    app.state.rules = rules

    # Refusals carry their reason (ids and codes only, never submitted personal data).
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(WrongState, conflict)
    app.add_exception_handler(ShelterRuleError, refused)
    return app
