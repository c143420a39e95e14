"""Composition root of the cash service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from aidmesh_runtime.projections import households
from aidmesh_runtime.service import create_service_app, utc_now
from fastapi import FastAPI

from . import api
from .handlers import cash_handlers
from .settings import CashSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(
    settings: CashSettings,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid4,
) -> FastAPI:
    rules = settings.rules()
    app = create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        extra_migrations=[households.MIGRATIONS],
        handlers=cash_handlers(rules, timezone=ZoneInfo(settings.timezone)),
        router=api.router,
        clock=clock,
        new_id=new_id,
        title="AidMesh cash",
        description=(
            "Multi-purpose cash (MPCA): entitlements from assessed cash needs, explained; "
            "payment cycles proposed within a budget and approved by a second person; "
            "payments instructed without personal data (registration writes the provider's "
            "file); providers' reports reconciled into confirmed and failed payments and "
            "AssistanceDelivered. One MPCA per household per month."
        ),
    )
    app.state.rules = rules
    return app
