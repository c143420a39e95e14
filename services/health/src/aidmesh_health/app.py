"""Composition root of the health service."""

from __future__ import annotations

from pathlib import Path

from aidmesh_contracts import Sector
from aidmesh_runtime.projections import households
from aidmesh_runtime.service import create_service_app
from fastapi import FastAPI

from .api import router
from .service import visit_completer
from .settings import HealthSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: HealthSettings) -> FastAPI:
    return create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        extra_migrations=[households.MIGRATIONS],
        handlers=households.need_handlers(Sector.HEALTH, visit_completer(settings.partner_org)),
        router=router,
        title="AidMesh health",
        description="Mobile medical team visits from assessed health needs. No clinical data.",
    )
