"""Fixtures for registration's integration tests: the service running in-process with a
database of its own on the real PostgreSQL, and the event log of the real broker.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aidmesh_registration.app import build_app
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_runtime.testing import (
    EventLog,
    database_dsn,
    drop_database,
    event_log,
    fresh_database,
    running_app,
    unique,
)
from httpx import AsyncClient


@pytest.fixture(scope="module")
def settings() -> RegistrationSettings:
    return RegistrationSettings(
        db_name=unique("aidmesh_test_registration"), relay_poll_interval_s=0.1
    )


@pytest.fixture(scope="module")
async def database(settings: RegistrationSettings) -> AsyncIterator[asyncpg.Connection]:
    """The service's own database, read as an administrator would (never written)."""
    await fresh_database(settings.database, owner="aidmesh_registration")
    conn = await asyncpg.connect(database_dsn(settings.database))
    try:
        yield conn
    finally:
        await conn.close()
        await drop_database(settings.database)


@pytest.fixture(scope="module")
async def registration(
    settings: RegistrationSettings, database: asyncpg.Connection
) -> AsyncIterator[AsyncClient]:
    async with running_app(build_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
async def events() -> AsyncIterator[EventLog]:
    async with event_log() as log:
        yield log
