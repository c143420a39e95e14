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
    event_log,
    isolated_settings,
    running_app,
    service_database,
)
from httpx import AsyncClient


@pytest.fixture(scope="module")
def settings() -> RegistrationSettings:
    return isolated_settings(RegistrationSettings)


@pytest.fixture(scope="module")
async def database(settings: RegistrationSettings) -> AsyncIterator[asyncpg.Connection]:
    """The service's own database, read as an administrator would (never written)."""
    async with service_database(settings) as database:
        yield database.conn


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
