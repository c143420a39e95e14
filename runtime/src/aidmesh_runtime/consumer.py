"""Idempotent consumption: decode → inbox + handler in one transaction → commit offset.

Records come in batches (what one poll returned, up to `max_batch` across the assigned
partitions, each partition's records in order). A batch is handled in ONE database
transaction, each record inside its own savepoint, and its offsets are committed once,
after that transaction commits: one commit and one offset commit per batch instead of per
record is what makes a hop cheap (see bench/hop.py and ADR 0008).

Every record ends in exactly one of these ways, and the offset is committed only after:
- handled: the inbox row (consumer, ce_id) and the handler's writes (including outbox rows)
  committed together;
- duplicate: the inbox already had the ce_id, nothing is done again;
- ignored: a valid event of a type this service does not handle;
- dead-lettered: a permanent problem (bad headers, bad JSON, schema violation, unknown type,
  a business rule's rejection); the original record goes to `<topic>.dlq` with the reason.
Transient failures (database or broker unavailable, a deadlock) roll the whole batch back
and retry it in place, with backoff, so a partition is never reordered and nothing is
skipped; records already dead-lettered in an earlier attempt are not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import structlog
from aidmesh_contracts.base import Event
from aidmesh_contracts.envelope import (
    Envelope,
    EnvelopeError,
    PayloadError,
    decode,
)
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from opentelemetry import trace
from opentelemetry.trace import Tracer

from .dlq import DeadLetters
from .errors import Rejected, is_transient
from .logging import about_event
from .metrics import ServiceMetrics
from .outbox import Outbox, _backoff
from .rules import Refusal
from .telemetry import (
    consuming,
    describe_event,
    handling,
    note_outcome,
    statements_traced,
    tracer_of,
    unsampled,
)
from .transaction import Tx

if TYPE_CHECKING:
    from .db import Connection

log = structlog.get_logger(__name__)

#: The longest a poll waits when nothing arrives (records end it at once).
_POLL_TIMEOUT_MS = 500


class HandlerContext(Tx):
    """What a handler gets besides the event: its transaction (the batch's), a way to
    publish, and the envelope of the event it handles, which causes what it publishes."""

    def __init__(self, *, conn: Connection, envelope: Envelope, outbox: Outbox) -> None:
        super().__init__(conn, outbox, cause=envelope)

    @property
    def envelope(self) -> Envelope:
        assert self.cause is not None
        return self.cause


Handler = Callable[[Any, HandlerContext], Awaitable[None]]


class EventConsumer:
    """Subscribes a service's handlers to their topics with the guarantees above."""

    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        outbox: Outbox,
        dead_letters: DeadLetters,
        handlers: Mapping[type[Event], Handler],
        retry_attempts_before_unready: int = 8,
        max_backoff_s: float = 30.0,
        max_batch: int = 500,
        metrics: ServiceMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.name = name
        self._tracer = tracer or tracer_of()
        self._group_id = name
        self._metrics = metrics
        self._pool = pool
        self._outbox = outbox
        self._dead_letters = dead_letters
        self._handlers = dict(handlers)
        self._retry_attempts_before_unready = retry_attempts_before_unready
        self._max_backoff_s = max_backoff_s
        self._max_batch = max_batch
        self._kafka: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.outcomes: Counter[str] = Counter()
        self.healthy = True
        self.last_error: str | None = None

    @property
    def topics(self) -> list[str]:
        return sorted({model.topic for model in self._handlers})

    @property
    def kafka(self) -> AIOKafkaConsumer | None:
        """The aiokafka consumer while it runs (readiness and lag read its positions)."""
        return self._kafka

    async def start(
        self, *, kafka: Mapping[str, Any], group_id: str, offset_reset: str, client_id: str
    ) -> None:
        """Join `group_id` on the handled topics and consume in the background until stop().

        The loop is ours, on aiokafka directly (ADR 0012): a poll returns as soon as records
        arrive (FastStream's batch subscriber slept a whole batch timeout after each empty
        poll, which a quiet topic's next event then waited out), and nothing is done per
        record before our own decoding (FastStream decoded every header of every record
        into dicts, and one header that is not UTF-8 failed its whole batch).
        """
        self._group_id = group_id
        self._kafka = AIOKafkaConsumer(
            *self.topics,
            **kafka,
            group_id=group_id,
            client_id=client_id,
            auto_offset_reset=offset_reset,
            enable_auto_commit=False,  # offsets are committed after the batch's transaction
            max_poll_interval_ms=600_000,  # a batch retried through a long outage
        )
        await self._kafka.start()
        self._stopping = False
        self._task = asyncio.create_task(self._consume(self._kafka), name=f"consumer-{self.name}")

    async def stop(self, *, timeout_s: float = 20.0) -> None:
        """Stop fetching, let the batch in hand finish (up to `timeout_s`), leave the group."""
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._kafka is not None:
            await self._kafka.stop()
            self._kafka = None

    async def _consume(self, kafka: AIOKafkaConsumer) -> None:
        while not self._stopping:
            try:
                # Returns as soon as any assigned partition has records; the timeout only
                # bounds how long a quiet consumer takes to notice stop().
                fetched = await kafka.getmany(
                    timeout_ms=_POLL_TIMEOUT_MS, max_records=self._max_batch
                )
            except ConsumerStoppedError:
                return
            except KafkaError as exc:  # the broker away: aiokafka reconnects, we wait
                log.warning("kafka_fetch_failed", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            records = [record for batch in fetched.values() for record in batch]
            attempt = 0
            while records and not self._stopping:
                try:
                    await self._on_records(kafka, records)
                    break
                except Exception as exc:
                    # Not a record's fault (those are dead-lettered) nor a transient outage
                    # (retried inside): a bug or a broken database. The batch is tried again,
                    # never skipped, and /readyz says the consumer is failing meanwhile.
                    attempt += 1
                    self._failing(exc, self._retry_attempts_before_unready)
                    log.exception(
                        "consumer_batch_failed",
                        attempt=attempt,
                        records=len(records),
                        first_offset=records[0].offset,
                    )
                    await asyncio.sleep(_backoff(attempt, self._max_backoff_s))

    async def _on_records(self, kafka: AIOKafkaConsumer, records: Sequence[ConsumerRecord]) -> None:
        results = await self.process_batch(records)
        self.outcomes.update(outcome for outcome, _ in results)
        if self._metrics is not None:
            self._metrics.consumed_batch(records, results)
        # Just past this batch, per partition (its records are in order within each).
        offsets = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}
        try:
            await kafka.commit(offsets)
        except KafkaError as exc:
            # The batch's work is committed, its offsets are not (the group rebalanced while
            # the broker was away). Harmless: a later commit covers it, or the records come
            # again and the inbox skips them.
            self.outcomes["offset_commit_failed"] += 1
            last = records[-1]
            log.warning(
                "offset_commit_failed",
                topic=last.topic,
                partition=last.partition,
                offset=last.offset,
                records=len(records),
                error=repr(exc),
            )

    async def process(self, record: ConsumerRecord) -> str:
        """Process one record to its end state; return 'handled', 'duplicate', ..."""
        [(outcome, _)] = await self.process_batch([record])
        return outcome

    async def process_batch(self, records: Sequence[ConsumerRecord]) -> list[tuple[str, float]]:
        """Process records (in order) to their end states: (outcome, seconds) for each.

        Never raises for a problem with a record itself: those are dead-lettered. Each
        record's processing is one CONSUMER span, continuing the trace of its producer.
        """
        items = [_Item(record) for record in records]
        for item in items:
            item.decode()
        attempt = 0
        while True:
            try:
                await self._handle_batch(items)
                self._recovered()
                return [(item.outcome or "ignored", item.seconds) for item in items]
            except _DeadLettered:
                continue  # the batch again, without the record just dead-lettered
            except Exception as exc:
                if not is_transient(exc):
                    raise  # _process_one turns every other error into a dead letter
                attempt += 1
                delay = _backoff(attempt, self._max_backoff_s)
                self._failing(exc, attempt)
                log.warning(
                    "batch_retrying",
                    error=repr(exc),
                    attempt=attempt,
                    delay_s=delay,
                    records=len(items),
                    first_offset=items[0].record.offset,
                )
                await asyncio.sleep(delay)

    async def _handle_batch(self, items: list[_Item]) -> None:
        """One transaction for the whole batch. A record that must be dead-lettered after
        its handler has written something rolls the batch back (raising `_DeadLettered`)
        and the batch runs again without it: rejections are rare, and a savepoint per
        record would cost two more round trips on every record. A transient error rolls
        back too and is retried with backoff. Dead letters are never sent twice."""
        for item in items:
            if item.outcome != "dead_lettered":
                item.outcome = None
        outbox = _BatchOutbox(self._outbox)
        log_handled = _logs_info()  # a line per handled record only at INFO or below
        # The batch's own statements (BEGIN, the inbox claim, the outbox COPY, COMMIT) get no
        # span; a traced record's handler statements get theirs (inside its CONSUMER span).
        with statements_traced(False):
            await self._handle_batch_in_transaction(items, outbox, log_handled=log_handled)

    async def _handle_batch_in_transaction(
        self, items: list[_Item], outbox: _BatchOutbox, *, log_handled: bool
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._claim(conn, items)
            for item in items:
                if item.outcome is not None:
                    continue
                started = time.perf_counter()
                if item.envelope is not None and unsampled(item.envelope.traceparent):
                    # A flow its first service chose not to trace: no span, no context to
                    # attach; what the handler publishes carries the context it came with.
                    item.outcome = await self._process_one(
                        conn, item, outbox, log_handled=log_handled
                    )
                else:
                    with (
                        consuming(self._tracer, item.record, group=self._group_id) as span,
                        statements_traced(span.is_recording()),
                    ):
                        item.outcome = await self._process_one(
                            conn, item, outbox, log_handled=log_handled
                        )
                        note_outcome(span, item.outcome)
                item.seconds = time.perf_counter() - started
            await outbox.flush(conn)

    async def _process_one(
        self, conn: Connection, item: _Item, outbox: _BatchOutbox, *, log_handled: bool
    ) -> str:
        record = item.record
        if item.error is not None:  # nothing written for it: the batch goes on
            await self._dead_letter(record, reason=str(item.error), exc=item.error, log=item.log())
            return "dead_lettered"
        envelope, event = item.envelope, item.event
        assert envelope is not None and event is not None
        describe_event(trace.get_current_span(), envelope)
        handler = self._handlers.get(type(event))
        if handler is None:
            return "ignored"
        if not item.first_time:
            item.log().info("event_duplicate_skipped")
            return "duplicate"
        failure: Exception
        try:
            await self._run_handler(conn, envelope, event, handler, outbox)
        except Rejected as exc:
            reason, failure = exc.reason, exc
        except Refusal as exc:  # a service's refusal raised in its handler: no crash
            reason, failure = f"{type(exc).__name__}: {exc}", exc
        except Exception as exc:
            if is_transient(exc):
                raise
            item.log().exception("handler_failed")
            reason, failure = f"handler failed: {exc!r}", exc
        else:
            if log_handled:
                item.log().info("event_handled")
            return "handled"
        await self._dead_letter(record, reason=reason, exc=failure, log=item.log())
        item.outcome = "dead_lettered"
        note_outcome(trace.get_current_span(), item.outcome)
        item.seconds = 0.0
        raise _DeadLettered  # its inbox row and partial writes must not commit

    async def _claim(self, conn: Connection, items: list[_Item]) -> None:
        """Insert the inbox rows of the batch's handleable records in one statement and
        mark those seen for the first time; the others are duplicates (an event twice in
        one batch is new only at its first place)."""
        wanted = [
            item
            for item in items
            if item.outcome is None
            and item.envelope is not None
            and type(item.event) in self._handlers
        ]
        for item in items:
            item.first_time = False
        if not wanted:
            return
        rows = await conn.fetch(
            "INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition, "
            "kafka_offset) SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], "
            "$5::int[], $6::bigint[]) ON CONFLICT (consumer, event_id) DO NOTHING "
            "RETURNING event_id",
            self.name,
            [item.envelope.id for item in wanted],  # type: ignore[union-attr]
            [item.envelope.type for item in wanted],  # type: ignore[union-attr]
            [item.record.topic for item in wanted],
            [item.record.partition for item in wanted],
            [item.record.offset for item in wanted],
        )
        new = {row["event_id"] for row in rows}
        for item in wanted:
            event_id = item.envelope.id  # type: ignore[union-attr]
            if event_id in new:
                item.first_time = True
                new.discard(event_id)

    async def _run_handler(
        self,
        conn: Connection,
        envelope: Envelope,
        event: Event,
        handler: Handler,
        outbox: _BatchOutbox,
    ) -> None:
        # The handler's own log lines name the event, and the handler's span (so the
        # events it publishes continue this trace).
        with handling(self._tracer, envelope, handler), about_event(envelope):
            context = HandlerContext(conn=conn, envelope=envelope, outbox=outbox)
            await handler(event, context)

    async def _dead_letter(
        self, record: ConsumerRecord, *, reason: str, exc: BaseException, log: Any
    ) -> None:
        attempt = 0
        while True:
            try:
                await self._dead_letters.send(record, reason=reason, exc=exc)
                log.warning("event_dead_lettered", reason=reason, error_type=type(exc).__name__)
                self._recovered()
                return
            except Exception as send_exc:  # the DLQ itself is unreachable: wait, never drop
                attempt += 1
                self._failing(send_exc, attempt)
                await asyncio.sleep(_backoff(attempt, self._max_backoff_s))

    def _failing(self, exc: BaseException, attempt: int) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if attempt >= self._retry_attempts_before_unready:
            self.healthy = False

    def _recovered(self) -> None:
        self.healthy = True
        self.last_error = None


class _BatchOutbox(Outbox):
    """The outbox as handlers see it during a batch: events are prepared at once (their
    envelopes, ids and trace context are final) and written together with one COPY just
    before the batch's transaction commits: one round trip instead of one per event. The
    rows are in the order the handlers added them, so per-key order is kept."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(source=outbox.source, clock=outbox.clock, new_id=outbox.new_id)
        self._rows: list[tuple[UUID, str, str, str, bytes]] = []

    async def _write(self, conn: Connection, row: tuple[UUID, str, str, str, bytes]) -> None:
        self._rows.append(row)

    async def add_prepared(
        self, conn: Connection, rows: Sequence[tuple[UUID, str, str, str, bytes]]
    ) -> None:
        if not conn.is_in_transaction():
            raise RuntimeError("Outbox rows must be written in the transaction of the change")
        self._rows.extend(rows)

    async def flush(self, conn: Connection) -> None:
        await Outbox.add_prepared(self, conn, self._rows)
        self._rows.clear()


class _DeadLettered(Exception):
    """A record was dead-lettered after its handler ran: roll the batch back, run it again."""


@dataclass
class _Item:
    """One record of a batch on its way to an outcome."""

    record: ConsumerRecord
    envelope: Envelope | None = None
    event: Event | None = None
    error: EnvelopeError | PayloadError | None = None
    outcome: str | None = None
    seconds: float = 0.0
    first_time: bool = False  # its inbox row was inserted by this attempt

    def log(self) -> Any:
        """A logger naming this record and its event (made when a line is written: binding
        it for every record would cost more than the lines, which are few)."""
        record, envelope = self.record, self.envelope
        bound = log.bind(topic=record.topic, partition=record.partition, offset=record.offset)
        if envelope is None:
            return bound
        return bound.bind(
            event_id=str(envelope.id),
            event_type=envelope.type,
            household_id=envelope.subject,
            correlation_id=str(envelope.correlationid),
        )

    def decode(self) -> None:
        try:
            self.envelope = Envelope.from_headers(self.record.headers or ())
            self.event = decode(self.envelope, self.record.value)
        except (EnvelopeError, PayloadError) as exc:
            self.error = exc


def _logs_info() -> bool:
    """Whether an INFO line would be written (the level is configured once, at start)."""
    return bool(log.bind().is_enabled_for(logging.INFO))
