"""Fixtures for audit's integration tests: the service running in-process on the real broker
with a database of its own, a Kafka producer standing in for the other services, and the
ledger read (and, for the tampering tests, written) as the PostgreSQL superuser would.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

import asyncpg
import pytest
from aidmesh_audit.app import build_app
from aidmesh_audit.settings import AuditSettings
from aidmesh_runtime.auth import AUDIT_READ
from aidmesh_runtime.testing import (
    auth_headers,
    isolated_settings,
    kafka_producer,
    running_app,
    service_database,
)
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient


class Ledger:
    """The audit database as its superuser sees it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def entries_of(
        self, ce_ids: Sequence[UUID], *, timeout_s: float = 30.0
    ) -> list[asyncpg.Record]:
        """Poll until every one of these events is in the ledger; return them in seq order."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await self.conn.fetch(
                "SELECT * FROM audit_ledger WHERE ce_id = ANY($1::uuid[]) ORDER BY seq",
                list(ce_ids),
            )
            if len(rows) >= len(set(ce_ids)):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s: {len(rows)} of {len(ce_ids)} events in the ledger"
                )
            await asyncio.sleep(0.05)

    async def count(self, ce_id: UUID) -> int:
        return await self.conn.fetchval("SELECT count(*) FROM audit_ledger WHERE ce_id = $1", ce_id)


@pytest.fixture(scope="module")
def settings() -> AuditSettings:
    return isolated_settings(AuditSettings)


@pytest.fixture(scope="module")
async def ledger(settings: AuditSettings) -> AsyncIterator[Ledger]:
    async with service_database(settings) as database:
        yield Ledger(database.conn)


@pytest.fixture(scope="module")
async def audit(settings: AuditSettings, ledger: Ledger) -> AsyncIterator[AsyncClient]:
    headers = auth_headers(AUDIT_READ, sub="user:audit-tests")
    async with running_app(build_app(settings), headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer() as producer:
        yield producer
