"""The ledger in PostgreSQL: append under a lock, read in seq order. Plain asyncpg SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from .ledger import Content, Entry, next_entry

#: Serialises appends across replicas of the audit service: the chain is global (ADR 0005).
APPEND_LOCK = 0x41_55_44_49  # "AUDI"

_COLUMNS = (
    "seq, prev_hash, hash, ce_id, ce_type, ce_source, ce_subject, ce_time, correlation_id, "
    "causation_id, topic, kafka_partition, kafka_offset, payload, received_at"
)


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        seq=row["seq"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        content=Content(
            ce_id=row["ce_id"],
            ce_type=row["ce_type"],
            ce_source=row["ce_source"],
            ce_subject=row["ce_subject"],
            ce_time=row["ce_time"],
            correlation_id=row["correlation_id"],
            causation_id=row["causation_id"],
            topic=row["topic"],
            kafka_partition=row["kafka_partition"],
            kafka_offset=row["kafka_offset"],
            payload=row["payload"],
            received_at=row["received_at"],
        ),
    )


async def append(conn: asyncpg.Connection, content: Content) -> Entry | None:
    """Chain `content` after the newest entry; None if its ce_id is already in the ledger.

    Runs inside the caller's transaction (the consumer's, with the inbox row): the lock is
    held until it commits, so the next writer reads this entry as the head.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
    if await conn.fetchval("SELECT 1 FROM audit_ledger WHERE ce_id = $1", content.ce_id):
        return None
    head = await conn.fetchrow(f"SELECT {_COLUMNS} FROM audit_ledger ORDER BY seq DESC LIMIT 1")
    entry = next_entry(_entry(head) if head else None, content)
    c = entry.content
    await conn.execute(
        f"INSERT INTO audit_ledger ({_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        entry.seq,
        entry.prev_hash,
        entry.hash,
        c.ce_id,
        c.ce_type,
        c.ce_source,
        c.ce_subject,
        c.ce_time,
        c.correlation_id,
        c.causation_id,
        c.topic,
        c.kafka_partition,
        c.kafka_offset,
        c.payload,
        c.received_at,
    )
    return entry


async def delivery_of(conn: asyncpg.Connection, *, consumer: str, event_id: Any) -> asyncpg.Record:
    """Topic, partition and offset of the record being handled, from the runtime's inbox row
    written earlier in the same transaction (the handler is not given the record itself)."""
    row = await conn.fetchrow(
        "SELECT topic, kafka_partition, kafka_offset FROM inbox "
        "WHERE consumer = $1 AND event_id = $2",
        consumer,
        event_id,
    )
    if row is None:
        raise LookupError(f"no inbox row for {event_id}: not called by the runtime's consumer?")
    return row


async def entries(conn: asyncpg.Connection, *, batch: int = 1000) -> AsyncIterator[Entry]:
    """Every entry in seq order, streamed with a server-side cursor (any ledger size)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(
            f"SELECT {_COLUMNS} FROM audit_ledger ORDER BY seq", prefetch=batch
        ):
            yield _entry(row)


async def household_entries(conn: asyncpg.Connection, household_id: str) -> list[Entry]:
    """Entries whose subject is the household, and every entry of the same flows."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM audit_ledger
            WHERE ce_subject = $1
               OR correlation_id IN (
                   SELECT DISTINCT correlation_id FROM audit_ledger WHERE ce_subject = $1)
            ORDER BY seq""",
        household_id,
    )
    return [_entry(r) for r in rows]
