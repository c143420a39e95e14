"""Fixtures for health's integration tests: the service running in-process on the real broker
and a database of its own, a Kafka producer standing in for registration, and the event log.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aidmesh_health.app import build_app
from aidmesh_health.settings import HealthSettings
from aidmesh_runtime.testing import (
    KAFKA,
    EventLog,
    database_dsn,
    drop_database,
    event_log,
    fresh_database,
    running_app,
    unique,
)
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient


class Database:
    """The service's own database, read as an administrator would (never written)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def eventually(
        self, query: str, *args: Any, timeout_s: float = 30.0, what: str = "a row"
    ) -> asyncpg.Record:
        """Poll until `query` returns a row; fail after the deadline naming what was awaited."""
        deadline = time.monotonic() + timeout_s
        while (row := await self.conn.fetchrow(query, *args)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.05)
        return row


@pytest.fixture(scope="module")
def settings() -> HealthSettings:
    return HealthSettings(
        db_name=unique("aidmesh_test_health"),
        consumer_group=unique("test-health"),
        consumer_offset_reset="latest",
        relay_poll_interval_s=0.1,
    )


@pytest.fixture(scope="module")
async def database(settings: HealthSettings) -> AsyncIterator[Database]:
    await fresh_database(settings.database, owner="aidmesh_health")
    conn = await asyncpg.connect(database_dsn(settings.database))
    try:
        yield Database(conn)
    finally:
        await conn.close()
        await drop_database(settings.database)


@pytest.fixture(scope="module")
async def health(settings: HealthSettings, database: Database) -> AsyncIterator[AsyncClient]:
    async with running_app(build_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
async def events() -> AsyncIterator[EventLog]:
    async with event_log() as log:
        yield log


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, enable_idempotence=True)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()
