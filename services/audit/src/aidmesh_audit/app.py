"""Composition root of the audit service."""

from __future__ import annotations

from pathlib import Path

from aidmesh_contracts import EVENT_TYPES, topic
from aidmesh_contracts.catalogue import Sensitivity
from aidmesh_runtime.service import create_service_app
from fastapi import FastAPI

from .api import router
from .service import record_event
from .settings import AuditSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: AuditSettings) -> FastAPI:
    # Every event type of the catalogue, so every topic that carries one (restricted ones
    # included: audit is one of their two readers) except raw personal intake: the ledger
    # is append-only, so personal data in it could never be erased. Registration keeps the
    # record of what it received, and every decision it took is on the shared topics.
    audited = [
        t for t in EVENT_TYPES.values() if topic(t.topic).sensitivity is not Sensitivity.PERSONAL
    ]
    return create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        handlers=dict.fromkeys(audited, record_event),
        router=router,
        title="AidMesh audit",
        description="Append-only, hash-chained ledger of every event; household timelines.",
    )
