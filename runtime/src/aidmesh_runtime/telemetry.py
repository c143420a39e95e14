"""Tracing: one trace per flow, across HTTP, database, outbox, Kafka and handlers.

A flow's trace context travels the way its events do. An HTTP request (or a consumed
record) is the current span when a use case calls `Outbox.add`; the outbox row keeps that
span's W3C `traceparent` in its headers, so the context survives the commit, a crash and
the relay's delay. The relay publishes each row in a PRODUCER span whose parent is the
stored context, and the Kafka record carries that span's `traceparent`. A consumer
continues it in a CONSUMER span and a handler span; events the handler publishes take the
handler's context, so the next service continues the same trace. Why the context lives in
the outbox row and the relay span is a child, not a link: docs/adr/0007-trace-context-through-the-outbox.md.

Each service has its own `Telemetry` (a tracer provider named `aidmesh-<service>`), built
by `create_service_app` and started in its lifespan: nothing global happens at import, and
the provider is not installed as the process-wide default. Spans are exported over
OTLP/HTTP (to Jaeger locally) in batches by a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from aidmesh_contracts.envelope import TRACEPARENT_PATTERN, Envelope
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY_PLAIN
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TRACEPARENT = "traceparent"
#: The W3C response header (Trace Context Level 2) naming the request's trace, so whoever
#: called an endpoint can find its trace: `curl -i` shows it.
TRACERESPONSE = "traceresponse"
#: Health checks and scrapes are polled every few seconds; a trace each would bury the flows.
UNTRACED_URLS = "/healthz$,/readyz$,/metrics$"
INSTRUMENTATION = "aidmesh_runtime"

# Stateless; W3C Trace Context only (no baggage: nothing else rides along with events).
_W3C = TraceContextTextMapPropagator()


def tracer_of(provider: trace.TracerProvider | None = None) -> Tracer:
    """The runtime's tracer from `provider`, or from the process default (a no-op unless an
    application installed one), for the consumer and relay built without a service app."""
    return trace.get_tracer(INSTRUMENTATION, tracer_provider=provider)


# ---- context in and out of headers -----------------------------------------------------


def current_traceparent() -> str | None:
    """The `traceparent` of the current span, or None when there is none."""
    return _traceparent_of(trace.get_current_span())


def context_of(traceparent: str | None) -> Context | None:
    """A context whose (remote) parent is `traceparent`; None if it is missing or invalid."""
    if not traceparent:
        return None
    parent = _W3C.extract({TRACEPARENT: traceparent})
    return parent if trace.get_current_span(parent).get_span_context().is_valid else None


def unsampled(traceparent: str | None) -> bool:
    """Whether `traceparent` names a flow that its first service chose not to trace (the
    sampled flag clear). Every later span of that flow would be dropped (ParentBased), so
    the runtime makes none and passes the context on as it came: the cost of tracing is
    then paid by the traced flows only."""
    return (
        traceparent is not None
        and len(traceparent) == 55
        and traceparent[-2:] in _UNSAMPLED_FLAGS
        and TRACEPARENT_PATTERN.match(traceparent) is not None
    )


#: W3C trace flags with the sampled bit (0x01) clear.
_UNSAMPLED_FLAGS = frozenset(f"{flags:02x}" for flags in range(0, 256, 2))


def _header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


# ---- the relay: PRODUCER spans ---------------------------------------------------------


class SendSpans:
    """PRODUCER spans of one relay batch: each starts before its record is sent and ends
    when the broker acknowledged the batch (or the batch failed), as a failure if it did.

        with SendSpans(tracer) as spans:
            future = await producer.send(topic, ..., headers=spans.start(topic, key, headers))
    """

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._spans: list[Span] = []

    def start(
        self, topic: str, key: str, headers: Sequence[Sequence[str]]
    ) -> list[tuple[str, bytes]]:
        """Start the span of one stored record; return its Kafka headers, whose
        `traceparent` is now the span's own (the stored one is its parent). A flow that is
        not traced gets no span: its stored context goes on as it is."""
        # The outbox writes the traceparent last (Envelope.header_pairs): most rows are
        # answered by their last pair, without a scan or a dict per record.
        last = headers[-1] if headers else None
        if last is not None and last[0] == TRACEPARENT:
            traceparent: str | None = last[1]
        else:
            traceparent = next((value for name, value in headers if name == TRACEPARENT), None)
        if unsampled(traceparent):
            return [(name, value.encode()) for name, value in headers]
        stored = {name: value for name, value in headers}
        span = self._tracer.start_span(
            f"send {topic}",
            # No stored context: a trace of its own, never whatever span happens to be current.
            context=context_of(stored.get(TRACEPARENT)) or Context(),
            kind=SpanKind.PRODUCER,
            attributes=_without_none(
                {
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "send",
                    "messaging.destination.name": topic,
                    "messaging.kafka.message.key": key,
                    "messaging.message.id": stored.get("ce_id"),
                    "cloudevents.event_id": stored.get("ce_id"),
                    "cloudevents.event_type": stored.get("ce_type"),
                    "cloudevents.event_subject": stored.get("ce_subject"),
                }
            ),
        )
        self._spans.append(span)
        own = _traceparent_of(span)
        if own is None:  # not recording (tracing off here): pass the stored context on
            return [(name, value.encode()) for name, value in headers]
        kept = [(name, value.encode()) for name, value in headers if name != TRACEPARENT]
        return [*kept, (TRACEPARENT, own.encode())]

    def __enter__(self) -> SendSpans:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for span in self._spans:
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.end()


def _traceparent_of(span: Span) -> str | None:
    """The W3C `traceparent` (version 00) naming `span`, as the propagator writes it."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


# ---- the consumer: CONSUMER and handler spans ------------------------------------------


@contextlib.contextmanager
def consuming(tracer: Tracer, record: ConsumerRecord, *, group: str) -> Iterator[Span]:
    """The current span while one record is processed: a CONSUMER span whose parent is the
    record's `traceparent` (the producer's span), so the flow's trace goes on here. A flow
    that is not traced makes no span: its context becomes current as it came."""
    traceparent = _header(record.headers, TRACEPARENT)
    parent = context_of(traceparent) or Context()
    if unsampled(traceparent):
        remote = trace.get_current_span(parent)
        with trace.use_span(remote, end_on_exit=False) as span:
            yield span
        return
    with tracer.start_as_current_span(
        f"process {record.topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": group,
        },
    ) as span:
        yield span


def describe_event(span: Span, envelope: Envelope) -> None:
    """Name the event a span is about (its ids and type; never its payload)."""
    if not span.is_recording():
        return
    span.set_attributes(
        _without_none(
            {
                "messaging.message.id": str(envelope.id),
                "cloudevents.event_id": str(envelope.id),
                "cloudevents.event_type": envelope.type,
                "cloudevents.event_source": envelope.source,
                "cloudevents.event_subject": envelope.subject,
                "aidmesh.correlation_id": str(envelope.correlationid),
                "aidmesh.causation_id": str(envelope.causationid) if envelope.causationid else None,
            }
        )
    )


def note_outcome(span: Span, outcome: str) -> None:
    """How the record ended; a dead letter marks the span failed (the reason is logged
    with the same trace id)."""
    span.set_attribute("aidmesh.outcome", outcome)
    if outcome == "dead_lettered":
        span.set_status(Status(StatusCode.ERROR, "dead-lettered"))


def handling(tracer: Tracer, envelope: Envelope, handler: Any) -> Any:
    """The current span while a handler runs (inside the consumer's span and transaction).
    Inside a span that is not recorded (a flow not traced) it makes none: it would not be
    recorded either, and what the handler publishes carries the flow's context anyway."""
    if not trace.get_current_span().is_recording():
        return contextlib.nullcontext()
    return tracer.start_as_current_span(
        f"handle {envelope.type}",
        attributes={
            "code.function.name": getattr(handler, "__qualname__", repr(handler)),
            "cloudevents.event_id": str(envelope.id),
        },
    )


@contextlib.contextmanager
def statements_traced(traced: bool) -> Iterator[None]:
    """Whether the database statements made inside get spans (the asyncpg instrumentation's
    CLIENT spans). Outside a recorded span a statement's span is dropped by the sampler
    anyway, after paying for it: ~10% of a use case's CPU (the latency benchmark's
    producer under py-spy). So: traced inside a recorded span (a traced flow), not
    otherwise (flows not traced, the relay, a batch's own inbox and outbox statements)."""
    suppressed = not traced
    values = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, suppressed)
    values = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY_PLAIN, suppressed, values)
    token = otel_context.attach(values)
    try:
        yield
    finally:
        otel_context.detach(token)


def _without_none(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


# ---- sampling --------------------------------------------------------------------------


class _FlowsOnly(Sampler):
    """Root sampler: trace the flows a service starts (all of them by default, or a share
    `ratio` of them, decided by trace id), but not a database query made outside any flow
    (the relay polling the outbox, readiness checks, migrations): each would be a trace of
    its own, thousands an hour, burying the flows. A flow continued from another service
    follows that service's decision (ParentBased), so a sampled flow stays whole."""

    def __init__(self, ratio: float = 1.0) -> None:
        self._ratio = TraceIdRatioBased(ratio) if ratio < 1.0 else None

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        if self._ratio is not None:
            return self._ratio.should_sample(parent_context, trace_id, name, kind, attributes)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return f"FlowsOnly({self._ratio.get_description() if self._ratio else 'all'})"


# ---- one service's tracing -------------------------------------------------------------


class Telemetry:
    """One service's tracer provider, its HTTP and database instrumentation and its export."""

    def __init__(self, *, service: str, sample_ratio: float = 1.0) -> None:
        # Making a provider opens nothing; export starts with start().
        self.provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: f"aidmesh-{service}"}),
            sampler=ParentBased(root=_FlowsOnly(sample_ratio)),
            shutdown_on_exit=False,  # the service's lifespan flushes it
        )
        self.tracer = tracer_of(self.provider)
        self._processor: SpanProcessor | None = None
        self._instrumented_db = False

    def instrument(self, app: FastAPI) -> None:
        """Trace the app's requests (a server span per request, continuing an incoming
        `traceparent`) and name the trace in each response. Call before the app starts."""
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=UNTRACED_URLS,
            exclude_spans=["receive", "send"],
        )
        app.add_middleware(TraceResponseMiddleware)

    def start(
        self,
        *,
        endpoint: str | None,
        exporter: SpanExporter | None = None,
        processor: SpanProcessor | None = None,
    ) -> None:
        """Export to the OTLP/HTTP `endpoint` (nothing is exported when it is empty), or to
        `exporter`/`processor` (tests); trace database queries."""
        if processor is None:
            if exporter is None and endpoint:
                exporter = OTLPSpanExporter(endpoint=otlp_traces_url(endpoint), timeout=5)
            processor = BatchSpanProcessor(exporter) if exporter is not None else None
        if processor is not None:
            self._processor = processor
            self.provider.add_span_processor(processor)
        # asyncpg is patched process-wide, once: one service per process in production.
        # (Tests that run two services in one process see the first one's queries only.)
        instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=self.provider)
            self._instrumented_db = True

    async def shutdown(self) -> None:
        """Export what is buffered (a few seconds at most) and stop tracing queries."""
        if self._instrumented_db:
            AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
            self._instrumented_db = False
        if self._processor is not None:
            processor, self._processor = self._processor, None
            # Blocking (a last HTTP export): keep the event loop free meanwhile.
            await asyncio.to_thread(processor.shutdown)


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (`http://host:4318`)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class TraceResponseMiddleware:
    """Adds `traceresponse: 00-<trace id>-<span id>-<flags>` to every traced response, and
    traces the request's database statements only if the request itself is traced."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # A request's statements are traced only if the request is (its flow sampled).
        with statements_traced(trace.get_current_span().is_recording()):
            await self.app(scope, receive, self._with_trace(send))

    @staticmethod
    def _with_trace(send: Send) -> Send:
        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                traceparent = current_traceparent()
                if traceparent:
                    headers = list(message.get("headers", []))
                    headers.append((TRACERESPONSE.encode(), traceparent.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        return send_with_trace
