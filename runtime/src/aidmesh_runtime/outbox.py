"""Transactional outbox: the only way an event leaves a service.

`Outbox.add` writes the event in the caller's transaction, next to the domain change, so
both commit or neither does. `OutboxRelay` publishes committed rows in id order (hence in
order per key) with an idempotent producer, then marks them sent. A crash between commit
and publish only delays an event; a crash between publish and mark re-sends it, and the
consumers' inbox drops the duplicate by ce_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID, uuid4

import asyncpg
import orjson
import structlog
from aidmesh_contracts.base import Event
from aidmesh_contracts.envelope import Envelope, encode, new_envelope
from opentelemetry.trace import Tracer

from .db import holds_session_state
from .metrics import ServiceMetrics
from .producer import Producer
from .telemetry import SendSpans, current_traceparent, statements_traced, tracer_of

if TYPE_CHECKING:
    from .db import Connection

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "aidmesh_outbox"
# One relay per service database publishes at a time, so per-key order holds even when
# several replicas of a service run. The lock is per database, so one constant is enough.
_RELAY_LOCK = 0x4F_55_54_42  # "OUTB"


class Outbox:
    """Writes events into the outbox table inside the caller's transaction."""

    def __init__(
        self,
        *,
        source: str,
        clock: Callable[[], datetime],
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self.source = source
        self.clock = clock
        self.new_id = new_id

    #: Columns of the rows `prepare` returns, for writers that COPY events in bulk.
    COLUMNS = ("event_id", "topic", "key", "headers", "payload")

    async def add(
        self,
        conn: Connection,
        event: Event,
        *,
        caused_by: Envelope | None = None,
        correlation_id: UUID | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        if not conn.is_in_transaction():
            raise RuntimeError("Outbox.add must run inside the transaction of the domain change")
        envelope, row = self.prepare(
            event, caused_by=caused_by, correlation_id=correlation_id, traceparent=traceparent
        )
        await self._write(conn, row)
        return envelope

    async def _write(self, conn: Connection, row: tuple[UUID, str, str, str, bytes]) -> None:
        # One round trip for the row and the wake-up call. The notification is delivered at
        # commit, only if the transaction commits, and wakes the relay at once.
        await conn.execute(
            "WITH written AS (INSERT INTO outbox (event_id, topic, key, headers, payload) "
            "VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING 1) "
            f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM written",
            *row,
        )

    def prepare(
        self,
        event: Event,
        *,
        caused_by: Envelope | None = None,
        correlation_id: UUID | None = None,
        traceparent: str | None = None,
    ) -> tuple[Envelope, tuple[UUID, str, str, str, bytes]]:
        """The envelope of an event and its outbox row (`COLUMNS`), not written yet.

        Pure, so a bulk writer can prepare rows in worker processes and write them with
        `add_prepared`; `add` writes one the same way.
        """
        envelope = new_envelope(
            event,
            source=self.source,
            time=self.clock(),
            caused_by=caused_by,
            correlation_id=correlation_id,
            # The current span (the request or the handler) continues the flow's trace.
            traceparent=traceparent
            or current_traceparent()
            or (caused_by.traceparent if caused_by else None),
            new_id=self.new_id,
        )
        headers = orjson.dumps(envelope.header_pairs()).decode()
        row = (envelope.id, event.topic, envelope.subject or "", headers, encode(event))
        return envelope, row

    async def add_prepared(
        self, conn: Connection, rows: Sequence[tuple[UUID, str, str, str, bytes]]
    ) -> None:
        """Write rows from `prepare` with one COPY, in the caller's transaction."""
        if not conn.is_in_transaction():
            raise RuntimeError("Outbox rows must be written in the transaction of the change")
        if not rows:
            return
        await conn.copy_records_to_table("outbox", columns=self.COLUMNS, records=rows)
        await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


class OutboxRelay:
    """Publishes committed outbox rows to Kafka, in order, and marks them sent."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: Producer,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        retention_hours: int = 72,
        max_backoff_s: float = 30.0,
        crash_at: str | None = None,
        metrics: ServiceMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._crash_at = crash_at
        self._tracer = tracer or tracer_of()
        self._metrics = metrics
        self._pool = pool
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention_hours = retention_hours
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._stopping = False
        self.published = 0
        self.leader = False
        self.healthy = True
        self.last_error: str | None = None

    async def run(self) -> None:
        """Relay until stop(); survives database and broker outages by backing off."""
        # Its statements are no flow's: no span (each record's PRODUCER span is its own).
        with statements_traced(False):
            await self._run()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._run_as_leader()
                failures = 0
            except Exception as exc:  # any failure: back off and retry, never give up
                self.leader = False
                if self._stopping:
                    break
                failures += 1
                self.healthy = failures < 5
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = _backoff(failures, self._max_backoff_s)
                log.warning("outbox_relay_failed", error=self.last_error, retry_in_s=delay)
                await self._sleep(delay)

    async def _run_as_leader(self) -> None:
        async with self._pool.acquire() as listener:
            holds_session_state(listener)
            await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
            # The lock and the LISTEN live in this session. If the database ends it (restart,
            # killed connection), other pooled connections still work, so publishing would
            # go on without the lock and with no wake-ups: wake up and lead again instead.
            listener.add_termination_listener(self._on_notify)
            try:
                while not self._stopping:
                    if await listener.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                        break
                    await self._sleep(self._poll_interval_s)
                if self._stopping:
                    return  # stopped while standing by: never publish without the lock
                self.leader = True
                self.healthy = True
                self.last_error = None
                rounds = 0
                while not self._stopping:
                    if _session_ended(listener):
                        raise ConnectionResetError("the relay's database session ended")
                    sent = await self.publish_batch()
                    rounds += 1
                    if rounds % 600 == 0:
                        await self.prune()
                    if sent < self._batch_size:
                        await self._sleep(self._poll_interval_s)
                await self._drain()
            finally:
                self.leader = False
                if not _session_ended(listener):
                    listener.remove_termination_listener(self._on_notify)
                    await listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
                    await listener.execute("SELECT pg_advisory_unlock_all()")

    async def publish_batch(self) -> int:
        """Publish one batch of unsent rows; return how many were sent."""
        async with self._pool.acquire() as conn:
            rows = await self._unsent(conn)
            if not rows:
                return 0
            self._crash_point("relay_before_publish")
            sent = await self._send(rows)
            self._crash_point("relay_after_publish")
            await self._mark_sent(conn, [row.id for row in rows])
        self.published += len(rows)
        if self._metrics is not None:
            self._metrics.published(sent)
        log.debug("outbox_published", count=len(rows))
        return len(rows)

    async def _unsent(self, conn: Connection) -> list[_Unsent]:
        """The next rows to publish, in id order, their stored headers parsed."""
        rows = await conn.fetch(
            "SELECT id, topic, key, headers, payload FROM outbox "
            "WHERE sent_at IS NULL ORDER BY id LIMIT $1",
            self._batch_size,
        )
        return [
            _Unsent(
                row["id"], row["topic"], row["key"], orjson.loads(row["headers"]), row["payload"]
            )
            for row in rows
        ]

    async def _send(self, rows: Sequence[_Unsent]) -> list[dict[str, object]]:
        """Send the rows and wait until Kafka acknowledged them all; what was sent (topic
        and stored headers of each) for the metrics."""
        # The producer queues them in this order; the idempotent producer keeps that order
        # per partition even when it retries, so per-key order survives.
        # Each record in a PRODUCER span, child of the context stored with the row.
        with SendSpans(self._tracer) as spans:
            futures = await self._producer.send_many(
                [
                    (
                        row.topic,
                        row.key.encode(),
                        bytes(row.payload),
                        spans.start(row.topic, row.key, row.headers),
                    )
                    for row in rows
                ]
            )
            await asyncio.gather(*futures)
        return [{"topic": row.topic, "headers": row.headers} for row in rows]

    async def _mark_sent(self, conn: Connection, ids: list[int]) -> None:
        async with conn.transaction():
            # The mark need not wait for the disk: if a crash loses it, the rows are
            # sent again and the consumers' inboxes drop the duplicates, as after a
            # crash between publish and mark. It saves a WAL flush every round.
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(
                "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", ids
            )

    async def _drain(self, *, timeout_s: float = 10.0) -> None:
        """At shutdown, publish what was committed so far (the next start would anyway)."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.publish_batch():
                    pass
        except TimeoutError:
            log.warning("outbox_drain_timed_out", backlog=await self.backlog())

    async def prune(self) -> int:
        async with self._pool.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM outbox WHERE sent_at < now() - make_interval(hours => $1)",
                self._retention_hours,
            )
        return int(result.split()[-1])

    async def backlog(self) -> int:
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))

    def _crash_point(self, name: str) -> None:
        """Fault injection for the delivery tests: die like `kill -9` at a named point."""
        if self._crash_at == name:
            log.warning("fault_injected_crash", point=name)
            os._exit(137)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()


class _Unsent(NamedTuple):
    """An outbox row the relay is to publish."""

    id: int
    topic: str
    key: str
    headers: list[list[str]]  # [name, value] pairs, as stored
    payload: bytes


def _session_ended(conn: Connection) -> bool:
    """Whether the database session behind a pooled connection is gone (and the locks and
    LISTEN it held with it)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # the pool detaches a connection once it has closed
        return True


def _backoff(attempt: int, cap: float) -> float:
    """Exponential backoff with full jitter, bounded by cap."""
    return random.uniform(0, min(cap, 0.2 * 2 ** min(attempt, 32)))  # noqa: S311 - jitter
