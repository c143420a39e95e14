"""Idempotent consumption: decode → inbox + handler in one transaction → commit offset.

Every record ends in exactly one of these ways, and the offset is committed only after:
- handled: the inbox row (consumer, ce_id) and the handler's writes (including outbox rows)
  committed together;
- duplicate: the inbox already had the ce_id, nothing is done again;
- ignored: a valid event of a type this service does not handle;
- dead-lettered: a permanent problem (bad headers, bad JSON, schema violation, unknown type,
  a business rule's rejection); the original record goes to `<topic>.dlq` with the reason.
Transient failures (database or broker unavailable) are retried in place, with backoff, so
a partition is never reordered and nothing is skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
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
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaMessage as KafkaStreamMessage
from faststream.middlewares import AckPolicy
from opentelemetry import trace
from opentelemetry.trace import Tracer

from .dlq import DeadLetters
from .errors import Rejected, is_transient
from .metrics import ServiceMetrics
from .outbox import Outbox, _backoff
from .telemetry import consuming, describe_event, handling, note_outcome, tracer_of

log = structlog.get_logger(__name__)


@dataclass
class HandlerContext:
    """What a handler gets besides the event: its transaction and a way to publish."""

    conn: asyncpg.Connection
    envelope: Envelope
    outbox: Outbox

    def now(self) -> datetime:
        return self.outbox.clock()

    def new_id(self) -> UUID:
        return self.outbox.new_id()

    async def publish(self, event: Event) -> Envelope:
        """Publish an event caused by the one being handled (same flow, same transaction)."""
        return await self.outbox.add(self.conn, event, caused_by=self.envelope)


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
        self.outcomes: Counter[str] = Counter()
        self.healthy = True
        self.last_error: str | None = None

    @property
    def topics(self) -> list[str]:
        return sorted({model.topic for model in self._handlers})

    def subscribe(self, broker: KafkaBroker, *, group_id: str, offset_reset: str) -> Any:
        """Register one subscriber for all topics this consumer handles; return it."""
        subscriber = broker.subscriber(
            *self.topics,
            group_id=group_id,
            auto_offset_reset=offset_reset,  # type: ignore[arg-type]
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_body,  # we decode ourselves, so bad bytes never reach FastStream's JSON
            max_poll_interval_ms=600_000,
        )
        subscriber(self._on_message)
        self._group_id = group_id
        return subscriber

    async def _on_message(self, message: KafkaMessage) -> None:
        record: ConsumerRecord = message.raw_message  # type: ignore[assignment]
        started = time.perf_counter()
        outcome = await self.process(record)
        self.outcomes[outcome] += 1
        if self._metrics is not None:
            self._metrics.consumed(record, outcome=outcome, seconds=time.perf_counter() - started)
        try:
            await message.ack()
        except KafkaError as exc:
            # The record's work is committed, its offset is not (the group rebalanced while
            # the broker was away). Harmless: a later commit covers it, or the record comes
            # again and the inbox skips it. FastStream would swallow this silently.
            self.outcomes["offset_commit_failed"] += 1
            log.warning(
                "offset_commit_failed",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error=repr(exc),
            )

    async def process(self, record: ConsumerRecord) -> str:
        """Process one record to its end state; return 'handled', 'duplicate', ...

        Never raises for a problem with the record itself: those are dead-lettered. The
        processing is one CONSUMER span, continuing the trace of the record's producer.
        """
        with consuming(self._tracer, record, group=self._group_id) as span:
            outcome = await self._process(record)
            note_outcome(span, outcome)
            return outcome

    async def _process(self, record: ConsumerRecord) -> str:
        bound = log.bind(
            topic=record.topic, partition=record.partition, offset=record.offset
        )
        try:
            envelope = Envelope.from_headers(record.headers or ())
            event = decode(envelope, record.value)
        except (EnvelopeError, PayloadError) as exc:
            await self._dead_letter(record, reason=str(exc), exc=exc, log=bound)
            return "dead_lettered"
        bound = bound.bind(
            event_id=str(envelope.id),
            event_type=envelope.type,
            household_id=envelope.subject,
            correlation_id=str(envelope.correlationid),
        )
        describe_event(trace.get_current_span(), envelope)
        handler = self._handlers.get(type(event))
        if handler is None:
            return "ignored"
        attempt = 0
        while True:
            try:
                done = await self._handle_once(record, envelope, event, handler)
                self._recovered()
                bound.info("event_handled" if done else "event_duplicate_skipped")
                return "handled" if done else "duplicate"
            except Rejected as exc:
                await self._dead_letter(record, reason=exc.reason, exc=exc, log=bound)
                return "dead_lettered"
            except Exception as exc:
                if not is_transient(exc):
                    bound.exception("handler_failed")
                    await self._dead_letter(
                        record, reason=f"handler failed: {exc!r}", exc=exc, log=bound
                    )
                    return "dead_lettered"
                attempt += 1
                delay = _backoff(attempt, self._max_backoff_s)
                self._failing(exc, attempt)
                bound.warning("handler_retrying", error=repr(exc), attempt=attempt, delay_s=delay)
                await asyncio.sleep(delay)

    async def _handle_once(
        self,
        record: ConsumerRecord,
        envelope: Envelope,
        event: Event,
        handler: Handler,
    ) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            first_time = await conn.fetchval(
                "INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition, "
                "kafka_offset) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING true",
                self.name,
                envelope.id,
                envelope.type,
                record.topic,
                record.partition,
                record.offset,
            )
            if not first_time:
                return False
            # The handler's own log lines name the event, and the handler's span (so the
            # events it publishes continue this trace).
            with (
                handling(self._tracer, envelope, handler),
                structlog.contextvars.bound_contextvars(
                    event_id=str(envelope.id),
                    event_type=envelope.type,
                    household_id=envelope.subject,
                    correlation_id=str(envelope.correlationid),
                ),
            ):
                context = HandlerContext(conn=conn, envelope=envelope, outbox=self._outbox)
                await handler(event, context)
            return True

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


async def _raw_body(message: KafkaStreamMessage) -> bytes:
    return message.body


