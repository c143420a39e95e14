"""Composition root of the shelter service."""

from __future__ import annotations

from pathlib import Path

from aidmesh_contracts import Sector
from aidmesh_runtime.projections import households
from aidmesh_runtime.service import create_service_app
from fastapi import FastAPI

from .api import router
from .service import open_case
from .settings import ShelterSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: ShelterSettings) -> FastAPI:
    return create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        extra_migrations=[households.MIGRATIONS],
        handlers=households.need_handlers(Sector.SHELTER, open_case),
        router=router,
        title="AidMesh shelter",
        description="Shelter cases from assessed needs, repairs, and the assistance delivered.",
    )
