"""Create what the services expect to exist: topics from the catalogue, and per-service
PostgreSQL roles and databases. Idempotent: run it as often as you like."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aidmesh_contracts.catalogue import CATALOGUE
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

SERVICES = ("registration", "shelter", "health", "protection")
DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def wanted_topics() -> list[NewTopic]:
    wanted = []
    for entry in CATALOGUE:
        config = {
            "retention.ms": str(entry.retention_ms),
            "max.message.bytes": str(MAX_MESSAGE_BYTES),
        }
        wanted.append(NewTopic(entry.name, entry.partitions, 1, topic_configs=config))
        wanted.append(
            NewTopic(
                entry.dlq,
                1,
                1,
                topic_configs={
                    "retention.ms": str(DLQ_RETENTION_MS),
                    "max.message.bytes": str(MAX_MESSAGE_BYTES),
                },
            )
        )
    return wanted


async def ensure_topics(bootstrap: str, *, timeout_s: float = 60.0) -> list[str]:
    """Create missing catalogue topics (and their DLQs); return the names created."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="aidmesh-bootstrap")
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            await admin.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted_topics() if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def ensure_databases(admin_dsn: str, services: tuple[str, ...] = SERVICES) -> list[str]:
    """One role and one database per service, owned by that role; return what was created."""
    created = []
    conn = await asyncpg.connect(admin_dsn)
    try:
        for service in services:
            name = f"aidmesh_{service}"
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
                await conn.execute(f'CREATE ROLE "{name}" LOGIN')
                created.append(f"role {name}")
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
                created.append(f"database {name}")
    finally:
        await conn.close()
    return created


async def create_database(admin_dsn: str, *, name: str, owner: str) -> None:
    """A fresh, empty database (tests use one per run)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    finally:
        await conn.close()
