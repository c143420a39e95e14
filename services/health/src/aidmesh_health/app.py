"""Composition root of the health service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from uuid import UUID, uuid4

import structlog
from aidmesh_runtime.projections import households
from aidmesh_runtime.service import Runtime, create_service_app, utc_now
from fastapi import FastAPI

from . import service
from .api import build_router
from .handlers import handlers
from .service import Health
from .settings import HealthSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

log = structlog.get_logger(__name__)


def build_app(
    settings: HealthSettings,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid4,
) -> FastAPI:
    health = Health.from_settings(settings)
    app = create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        extra_migrations=[households.MIGRATIONS],
        handlers=handlers(health),
        router=build_router(health),
        title="AidMesh health",
        description=(
            "Mobile medical teams: visits scheduled from health needs and referrals, completed,"
            " missed and rescheduled; referrals checked against consent. Clinical notes stay"
            " sealed in this service's database."
        ),
        clock=clock,
        new_id=new_id,
    )
    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The runtime's lifespan starts the pool, relay and consumer; then health's own
        # start-up work: teams from the settings, and the periodic planning of the backlog.
        async with runtime_lifespan(app):
            runtime: Runtime = app.state.runtime
            await service.seed_teams(runtime, health, settings.seed_teams)
            planner = (
                asyncio.create_task(
                    _plan_periodically(runtime, health, settings.scheduling_interval_s),
                    name="health-scheduling",
                )
                if settings.scheduling_interval_s > 0
                else None
            )
            try:
                yield
            finally:
                if planner is not None:
                    planner.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await planner

    app.router.lifespan_context = lifespan
    return app


async def _plan_periodically(runtime: Runtime, health: Health, interval_s: float) -> None:
    """The backlog planned again as days roll by (the horizon moves with today)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            scheduled = await service.run_scheduling(runtime, health)
        except Exception as exc:  # the database may be away: the next round tries again
            log.warning("scheduling_run_failed", error=repr(exc))
            continue
        if scheduled:
            log.info("scheduling_run", visits_scheduled=len(scheduled))
