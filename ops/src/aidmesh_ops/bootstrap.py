"""Create what the services expect to exist: topics from the catalogue, and per-service
PostgreSQL roles and databases. Idempotent: run it as often as you like."""

from __future__ import annotations

import asyncpg
from aidmesh_runtime.topics import ensure_topics

__all__ = ["SERVICES", "ensure_databases", "ensure_topics"]

SERVICES = ("registration", "shelter", "health", "protection", "audit")


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
