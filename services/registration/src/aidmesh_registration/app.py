"""Composition root of the registration service."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from aidmesh_contracts import IntakeSubmitted
from aidmesh_runtime.service import create_service_app
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from .api import duplicates, households, intake_router
from .backfill import seal_plaintext_rows
from .domain import Conflict, Gone, NotFound, Refused
from .intake import intake_handler
from .settings import RegistrationSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: RegistrationSettings) -> FastAPI:
    """The registration service. Raises KekError, before anything starts, when its
    key-encryption key is missing: it never stores personal data it could not encrypt."""
    vault = settings.vault()

    async def seal_rows_written_before_0004(conn: asyncpg.Connection) -> None:
        await seal_plaintext_rows(conn, vault)

    router = APIRouter()
    for part in (households, duplicates, intake_router):
        router.include_router(part)
    app = create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        handlers={
            IntakeSubmitted: intake_handler(default_assessor=settings.default_assessor, vault=vault)
        },
        router=router,
        title="AidMesh registration",
        description=(
            "Household registry: the only service that holds personal data. Registration,"
            " search, consent, the duplicate review queue, and intake from KoboToolbox and"
            " partners."
        ),
        extras={"vault": vault},
        after_migrations=seal_rows_written_before_0004,
    )
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(Gone, _gone)
    app.add_exception_handler(Refused, _refused)
    return app


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _gone(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=410)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    # The same shape as a validation error: the field and the reason, never the value.
    assert isinstance(exc, Refused)
    return JSONResponse(
        {"detail": [{"loc": list(exc.loc), "msg": exc.msg, "type": exc.kind}]}, status_code=422
    )
