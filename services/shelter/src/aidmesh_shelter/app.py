"""Composition root of the shelter service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from uuid import UUID, uuid4

from aidmesh_runtime.projections import households
from aidmesh_runtime.service import create_service_app, utc_now
from fastapi import APIRouter, FastAPI

from . import api
from .handlers import shelter_handlers
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

    return app
