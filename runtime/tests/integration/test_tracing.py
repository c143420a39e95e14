"""One flow, one trace, on the real database: the outbox row keeps the trace context of
the span that wrote it, the relay's record continues it, the consumer and handler continue
the relay's, and what the handler publishes continues the handler's. The broker is
replaced by a producer that records what it is given (its headers are what matters here)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
import structlog
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.envelope import encode, new_envelope
from aidmesh_runtime.consumer import EventConsumer, HandlerContext
from aidmesh_runtime.db import RUNTIME_MIGRATIONS, create_pool, load_migrations, migrate
from aidmesh_runtime.dlq import DeadLetters
from aidmesh_runtime.logging import configure_logging
from aidmesh_runtime.outbox import Outbox, OutboxRelay
from aidmesh_runtime.telemetry import TRACEPARENT, Telemetry
from aiokafka import ConsumerRecord
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, Tracer

pytestmark = pytest.mark.integration

SOURCE = "/aidmesh/tracing-tests"
log = structlog.get_logger("tracing-tests")


class RecordingProducer:
    """Takes records as the relay sends them and hands them back as a consumer reads them."""

    def __init__(self) -> None:
        self.records: list[ConsumerRecord] = []

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Any = None,
    ) -> asyncio.Future[None]:
        self.records.append(
            ConsumerRecord(
                topic=topic,
                partition=0,
                offset=len(self.records),
                timestamp=0,
                timestamp_type=0,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key or b""),
                serialized_value_size=len(value or b""),
                headers=tuple(headers or ()),
            )
        )
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    async def send_and_wait(self, topic: str, value: bytes | None = None, **kw: Any) -> None:
        await (await self.send(topic, value, **kw))

    async def send_many(self, records: Any) -> list[asyncio.Future[None]]:
        return [
            await self.send(topic, value, key=key, headers=headers)
            for topic, key, value, headers in records
        ]


@pytest.fixture(scope="module")
async def traced_pool(new_database: Callable[[], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own: the session's has a relay running that would take our rows."""
    pool = await create_pool(await new_database(), size=4)
    async with pool.acquire() as conn:
        await migrate(conn, load_migrations("runtime", RUNTIME_MIGRATIONS))
    yield pool
    await pool.close()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def telemetry(exporter: InMemorySpanExporter) -> AsyncIterator[Telemetry]:
    """A service's telemetry as its lifespan starts it (database queries traced too),
    exporting into memory."""
    telemetry = Telemetry(service="tracing-tests")
    telemetry.start(endpoint=None, processor=SimpleSpanProcessor(exporter))
    yield telemetry
    await telemetry.shutdown()


@pytest.fixture
def tracer(telemetry: Telemetry) -> Tracer:
    return telemetry.tracer


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The service's JSON log lines written so far (logging configured as a service does,
    onto a buffer instead of stderr)."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    with monkeypatch.context() as patched:
        patched.setattr(sys, "stderr", buffer)
        configure_logging(service="tracing-tests", fmt="json")

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield lines
    structlog.configure(**saved)


@pytest.fixture
def outbox() -> Outbox:
    return Outbox(source=SOURCE, clock=lambda: datetime.now(UTC))


def consumer_of(
    pool: asyncpg.Pool,
    outbox: Outbox,
    tracer: Tracer,
    producer: RecordingProducer,
    *,
    handler: Callable[..., Any],
    name: str,
) -> EventConsumer:
    """The runtime's consumer of AssistanceDelivered with `handler`, traced by `tracer`."""
    return EventConsumer(
        name=name,
        pool=pool,
        outbox=outbox,
        dead_letters=DeadLetters(producer=producer, service="tracing-tests"),
        handlers={AssistanceDelivered: handler},
        tracer=tracer,
    )


def traceparent_of(span: Span | ReadableSpan) -> str:
    context = span.get_span_context() if isinstance(span, Span) else span.context
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def stored_traceparent(pool: asyncpg.Pool, event_id: UUID) -> str | None:
    headers = await pool.fetchval("SELECT headers FROM outbox WHERE event_id = $1", event_id)
    return dict(json.loads(headers)).get(TRACEPARENT)


def one(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


def is_child(span: ReadableSpan, parent: ReadableSpan) -> bool:
    assert span.parent is not None and parent.context is not None, span.name
    return (span.parent.trace_id, span.parent.span_id) == (
        parent.context.trace_id,
        parent.context.span_id,
    )


async def test_an_outbox_row_keeps_the_trace_context_of_the_span_that_added_it(
    traced_pool: asyncpg.Pool, outbox: Outbox, tracer: Tracer, delivery: Callable[..., Any]
) -> None:
    with tracer.start_as_current_span("POST /deliveries", kind=SpanKind.SERVER) as request:
        async with traced_pool.acquire() as conn, conn.transaction():
            envelope = await outbox.add(conn, delivery())

    assert envelope.traceparent == traceparent_of(request)
    assert await stored_traceparent(traced_pool, envelope.id) == traceparent_of(request)


async def test_an_event_added_outside_any_span_keeps_the_context_of_the_event_that_caused_it(
    traced_pool: asyncpg.Pool, outbox: Outbox, tracer: Tracer, delivery: Callable[..., Any]
) -> None:
    with tracer.start_as_current_span("earlier work") as earlier:
        async with traced_pool.acquire() as conn, conn.transaction():
            cause = await outbox.add(conn, delivery())

    async with traced_pool.acquire() as conn, conn.transaction():
        caused = await outbox.add(conn, delivery(), caused_by=cause)

    assert await stored_traceparent(traced_pool, caused.id) == traceparent_of(earlier)


async def test_a_flow_is_one_trace_from_the_request_through_relay_consumer_and_handler_to_the_next_event(
    traced_pool: asyncpg.Pool,
    outbox: Outbox,
    tracer: Tracer,
    exporter: InMemorySpanExporter,
    delivery: Callable[..., Any],
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    await traced_pool.execute("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL")
    follow_up = delivery()
    published: list[UUID] = []

    async def note_and_follow_up(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        log.info("delivery_noted")
        published.append((await ctx.publish(follow_up)).id)

    producer = RecordingProducer()
    relay = OutboxRelay(pool=traced_pool, producer=producer, tracer=tracer)
    consumer = consumer_of(
        traced_pool, outbox, tracer, producer, handler=note_and_follow_up, name="tracing-tests"
    )
    first = delivery()

    with tracer.start_as_current_span("POST /deliveries", kind=SpanKind.SERVER):
        async with traced_pool.acquire() as conn, conn.transaction():
            envelope = await outbox.add(conn, first)
    assert await relay.publish_batch() == 1
    [record] = producer.records
    assert await consumer.process(record) == "handled"

    spans = exporter.get_finished_spans()
    request = one(spans, "POST /deliveries")
    send = one(spans, "send aidmesh.assistance.delivered.v1")
    process = one(spans, "process aidmesh.assistance.delivered.v1")
    handle = one(spans, f"handle {AssistanceDelivered.event_type}")
    assert send.kind is SpanKind.PRODUCER and is_child(send, request)
    assert dict(record.headers)[TRACEPARENT].decode() == traceparent_of(send)
    assert process.kind is SpanKind.CONSUMER and is_child(process, send)
    assert process.attributes is not None
    assert process.attributes["messaging.message.id"] == str(envelope.id)
    assert process.attributes["cloudevents.event_type"] == AssistanceDelivered.event_type
    assert is_child(handle, process)
    # The handler's event continues the trace, so the next service's spans join it.
    assert await stored_traceparent(traced_pool, published[0]) == traceparent_of(handle)
    # Database spans (the batch's inbox and outbox writes too) never carry their values.
    database = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert database
    assert not [s for s in database if "db.statement.parameters" in (s.attributes or {})]
    assert {s.context.trace_id for s in spans if s.context} == {request.context.trace_id}

    [noted] = [line for line in json_logs() if line["event"] == "delivery_noted"]
    assert (noted["trace_id"], noted["span_id"]) == (
        f"{handle.context.trace_id:032x}",
        f"{handle.context.span_id:016x}",
    )
    assert noted["event_id"] == str(envelope.id)
    assert noted["event_type"] == AssistanceDelivered.event_type
    assert noted["household_id"] == str(first.household_id)
    assert noted["service"] == "tracing-tests"


async def test_only_a_traced_records_handler_statements_are_traced(
    traced_pool: asyncpg.Pool,
    outbox: Outbox,
    tracer: Tracer,
    exporter: InMemorySpanExporter,
    delivery: Callable[..., Any],
) -> None:
    """The asyncpg instrumentation makes a span for a statement only in a traced flow: the
    batch's own statements and an untraced flow's pay nothing for spans nobody records."""
    statements_traced: dict[UUID, bool] = {}

    async def note(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        statements_traced[event.delivery_id] = is_instrumentation_enabled()
        await ctx.conn.execute("SELECT 1")

    producer = RecordingProducer()
    traced, untraced = delivery(), delivery()
    for event, flags in ((traced, "01"), (untraced, "00")):
        await producer.send(
            "aidmesh.assistance.delivered.v1",
            value=encode(event),
            key=event.subject().encode(),
            headers=new_envelope(
                event,
                source=SOURCE,
                time=datetime.now(UTC),
                traceparent=f"00-{uuid4().hex}-{uuid4().hex[:16]}-{flags}",
            ).to_headers(),
        )
    consumer = consumer_of(
        traced_pool, outbox, tracer, producer, handler=note, name="tracing-tests-statements"
    )

    results = await consumer.process_batch(producer.records)

    assert [outcome for outcome, _ in results] == ["handled", "handled"]
    assert statements_traced == {traced.delivery_id: True, untraced.delivery_id: False}
    [statement] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert statement.name == "SELECT"
    assert is_instrumentation_enabled()  # as it was before the batch
