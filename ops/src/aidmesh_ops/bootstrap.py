"""Create what the services expect to exist: topics from the catalogue, and per-service
PostgreSQL roles and databases. Idempotent: run it as often as you like."""

from __future__ import annotations

import asyncpg
from aidmesh_contracts import CATALOGUE
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.topics import ensure_topics
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

__all__ = ["SERVICES", "dev_groups", "ensure_databases", "ensure_topics", "skip_to_end"]

SERVICES = ("registration", "shelter", "health", "protection", "cash", "audit")


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


def dev_groups(services: tuple[str, ...] = SERVICES) -> dict[str, list[str]]:
    """The consumer group `make up` runs each service in, and the topics it reads (from the
    catalogue's consumers)."""
    return {
        f"aidmesh-{service}": [t.name for t in CATALOGUE if service in t.consumers]
        for service in services
    }


async def skip_to_end(bootstrap: str, groups: dict[str, list[str]]) -> dict[str, int]:
    """Commit each group's offsets at its topics' current ends; return, per group, how many
    records that skips (a group with no committed offset would have read from the start).

    For a development broker after `make test`: the tests' traffic was not meant for the
    `make up` services, and replaying tens of thousands of test events would hold up the
    demo. Never run it against a broker whose events the groups still owe work to.
    """
    skipped: dict[str, int] = {}
    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, **operator_auth(), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(cluster.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                continue
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            behind = 0
            for tp in partitions:
                committed = await consumer.committed(tp)
                behind += ends[tp] - (committed if committed is not None else 0)
            await consumer.commit(ends)
            skipped[group] = behind
        finally:
            await consumer.stop()
    return skipped
