"""Composition root of the protection service."""

from __future__ import annotations

from pathlib import Path

from aidmesh_contracts import NeedAssessed
from aidmesh_runtime.service import create_service_app
from fastapi import FastAPI

from .service import on_need_assessed
from .settings import ProtectionSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: ProtectionSettings) -> FastAPI:
    # No case API yet: it comes with role-based access control (caseworker, supervisor,
    # auditor), never without it.
    return create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        handlers={NeedAssessed: on_need_assessed},
        title="AidMesh protection",
        description="Confidential protection case management. Restricted.",
    )
