"""Composition root of the registration service."""

from __future__ import annotations

from pathlib import Path

from aidmesh_runtime.service import create_service_app
from fastapi import FastAPI

from .api import router
from .settings import RegistrationSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: RegistrationSettings) -> FastAPI:
    return create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        router=router,
        title="AidMesh registration",
        description="Household registry: the only service that holds personal data.",
    )
