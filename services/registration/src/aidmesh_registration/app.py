"""Composition root of the registration service."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from aidmesh_contracts import IntakeSubmitted
from aidmesh_runtime.service import create_service_app
from fastapi import APIRouter, FastAPI

from .api import duplicates, households, intake_router
from .backfill import hash_documents_for_other_agencies, seal_plaintext_rows
from .cash_api import assistance_lists, payment_files
from .intake import intake_handler
from .payments import payment_handlers
from .settings import RegistrationSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: RegistrationSettings) -> FastAPI:
    """The registration service. Raises KekError, before anything starts, when its
    key-encryption key is missing: it never stores personal data it could not encrypt."""
    vault = settings.vault()

    async def seal_rows_written_before_0004(conn: asyncpg.Connection) -> None:
        await seal_plaintext_rows(conn, vault)
        # Documents stored before the inter-agency key was set (or under another one).
        await hash_documents_for_other_agencies(conn, vault)

    router = APIRouter()
    for part in (households, duplicates, intake_router, payment_files, assistance_lists):
        router.include_router(part)
    app = create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        handlers={
            IntakeSubmitted: intake_handler(
                default_assessor=settings.default_assessor, vault=vault
            ),
            **payment_handlers(),
        },
        router=router,
        title="AidMesh registration",
        description=(
            "Household registry: the only service that holds personal data. Registration,"
            " search, consent, the duplicate review queue, intake from KoboToolbox and"
            " partners, the cash providers' payment files and other agencies' lists."
        ),
        extras={"vault": vault},
        after_migrations=seal_rows_written_before_0004,
    )
    return app
