"""Trace context across the outbox, the relay and the consumer, without a broker: the
relay's span is a child of the context stored with the row and the record carries the
relay's own; the consumer's span is a child of the record's; logs name the current span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aidmesh_contracts.envelope import Envelope
from aidmesh_runtime.logging import add_trace_ids
from aidmesh_runtime.telemetry import (
    TRACEPARENT,
    SendSpans,
    Telemetry,
    consuming,
    current_traceparent,
    handling,
    statements_traced,
    tracer_of,
    unsampled,
)
from aiokafka import ConsumerRecord
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

STORED_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
STORED_SPAN_ID = "00f067aa0ba902b7"
STORED = f"00-{STORED_TRACE_ID}-{STORED_SPAN_ID}-01"
TOPIC = "aidmesh.assistance.delivered.v1"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter) -> Iterator[Telemetry]:
    telemetry = Telemetry(service="tracing-tests")
    telemetry.provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield telemetry
    telemetry.provider.shutdown()


@pytest.fixture
def tracer(telemetry: Telemetry) -> Tracer:
    return telemetry.tracer


def stored_headers(traceparent: str | None = STORED) -> list[list[str]]:
    """Headers as an outbox row keeps them (JSON pairs of text)."""
    headers = [["ce_id", "6f1c3f9e-8a43-4b8e-9d0b-2c4b1a7e5d10"], ["ce_type", "org.x.y.z.v1"]]
    return headers + ([[TRACEPARENT, traceparent]] if traceparent else [])


def record(headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(
        topic=TOPIC,
        partition=3,
        offset=42,
        timestamp=0,
        timestamp_type=0,
        key=b"household",
        value=b"{}",
        checksum=None,
        serialized_key_size=9,
        serialized_value_size=2,
        headers=tuple(headers),
    )


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def test_the_relay_sends_a_record_in_a_producer_span_child_of_the_context_stored_with_it(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with SendSpans(tracer) as spans:
        headers = dict(spans.start(TOPIC, "household", stored_headers()))

    [span] = exporter.get_finished_spans()
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == STORED_SPAN_ID
    trace_id, span_id = hex_ids(span)
    assert trace_id == STORED_TRACE_ID
    # The record carries the relay's span, so the consumer's span is the relay's child.
    assert headers[TRACEPARENT].decode() == f"00-{trace_id}-{span_id}-01"
    assert headers["ce_id"] == b"6f1c3f9e-8a43-4b8e-9d0b-2c4b1a7e5d10"
    assert span.attributes is not None
    assert span.attributes["messaging.destination.name"] == TOPIC
    assert span.attributes["messaging.message.id"] == "6f1c3f9e-8a43-4b8e-9d0b-2c4b1a7e5d10"


def test_a_row_stored_without_trace_context_starts_a_trace_of_its_own(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.start_as_current_span("unrelated work"), SendSpans(tracer) as spans:
        headers = dict(spans.start(TOPIC, "household", stored_headers(traceparent=None)))

    span = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER)
    assert span.parent is None
    _, trace_id, span_id, _ = headers[TRACEPARENT].decode().split("-")
    assert (trace_id, span_id) == hex_ids(span)


def test_a_failed_send_marks_every_span_of_the_batch_failed(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(ConnectionError), SendSpans(tracer) as spans:
        spans.start(TOPIC, "a", stored_headers())
        spans.start(TOPIC, "b", stored_headers())
        raise ConnectionError("broker gone")

    assert [s.status.is_ok for s in exporter.get_finished_spans()] == [False, False]


def test_without_tracing_the_relay_passes_the_stored_context_on_unchanged() -> None:
    with SendSpans(tracer_of()) as spans:  # the process default: a no-op tracer
        headers = dict(spans.start(TOPIC, "household", stored_headers()))

    assert headers[TRACEPARENT].decode() == STORED


def test_the_consumer_span_is_a_child_of_the_records_traceparent(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with consuming(tracer, record([(TRACEPARENT, STORED.encode())]), group="g") as span:
        inside = current_traceparent()

    [finished] = exporter.get_finished_spans()
    assert finished.kind is SpanKind.CONSUMER
    assert finished.parent is not None
    assert format(finished.parent.span_id, "016x") == STORED_SPAN_ID
    trace_id, span_id = hex_ids(finished)
    assert trace_id == STORED_TRACE_ID
    assert inside == f"00-{trace_id}-{span_id}-01"  # what Outbox.add stores meanwhile
    assert span.get_span_context().span_id == finished.context.span_id
    assert finished.attributes is not None
    assert finished.attributes["messaging.kafka.offset"] == 42
    assert finished.attributes["messaging.destination.partition.id"] == "3"


def test_a_record_with_a_malformed_traceparent_starts_a_trace_of_its_own(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with (
        tracer.start_as_current_span("unrelated work"),
        consuming(tracer, record([(TRACEPARENT, b"00-nonsense")]), group="g"),
    ):
        pass

    finished = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER)
    assert finished.parent is None


def test_a_log_line_inside_a_span_carries_its_trace_and_span_ids(tracer: Tracer) -> None:
    with tracer.start_as_current_span("work") as span:
        line = add_trace_ids(None, "info", {"event": "something_done"})

    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_a_log_line_outside_any_span_has_no_trace_ids() -> None:
    line = add_trace_ids(None, "info", {"event": "service_started"})

    assert "trace_id" not in line and "span_id" not in line


def test_a_database_query_outside_any_flow_is_not_traced_but_one_inside_a_flow_is(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    # The relay polling its outbox, readiness checks: a trace each would bury the flows.
    with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
        pass
    with (
        tracer.start_as_current_span("process topic", kind=SpanKind.CONSUMER),
        tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT),
    ):
        pass

    assert [s.name for s in exporter.get_finished_spans()] == ["INSERT", "process topic"]


def test_a_services_spans_name_it() -> None:
    telemetry = Telemetry(service="shelter")

    assert telemetry.provider.resource.attributes["service.name"] == "aidmesh-shelter"


def test_a_sample_ratio_of_zero_traces_no_flow_the_service_starts_but_follows_a_sampled_one() -> (
    None
):
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(service="tracing-tests", sample_ratio=0.0)
    telemetry.provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with consuming(telemetry.tracer, record([]), group="g"):
            pass  # a flow this service starts: not sampled
        with consuming(telemetry.tracer, record([(TRACEPARENT, STORED.encode())]), group="g"):
            pass  # a flow another service sampled: followed
        spans = exporter.get_finished_spans()
        assert [format(s.context.trace_id, "032x") for s in spans] == [STORED_TRACE_ID]
    finally:
        telemetry.provider.shutdown()


def test_by_default_every_flow_is_traced(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    for _ in range(20):
        with consuming(telemetry.tracer, record([]), group="g"):
            pass
    assert len(exporter.get_finished_spans()) == 20


UNTRACED = f"00-{STORED_TRACE_ID}-{STORED_SPAN_ID}-00"


def test_a_flow_not_traced_makes_no_span_at_the_relay_and_keeps_its_context(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with SendSpans(tracer) as spans:
        headers = dict(spans.start(TOPIC, "household", stored_headers(UNTRACED)))

    assert exporter.get_finished_spans() == ()
    assert headers[TRACEPARENT].decode() == UNTRACED
    assert headers["ce_id"] == b"6f1c3f9e-8a43-4b8e-9d0b-2c4b1a7e5d10"


def test_a_flow_not_traced_makes_no_consumer_or_handler_span_and_passes_its_context_on(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    envelope = Envelope.model_validate(
        {
            "id": "6f1c3f9e-8a43-4b8e-9d0b-2c4b1a7e5d10",
            "source": "/aidmesh/tests",
            "type": "org.aidmesh.shelter.case.opened.v1",
            "time": "2026-12-07T10:00:00Z",
            "correlationid": "6f1c3f9e-8a43-4b8e-9d0b-2c4b1a7e5d10",
        }
    )
    with consuming(tracer, record([(TRACEPARENT, UNTRACED.encode())]), group="g") as span:
        assert not span.is_recording()
        with handling(tracer, envelope, print):
            inside = current_traceparent()

    assert exporter.get_finished_spans() == ()
    # What the handler publishes stays in the same (untraced) flow.
    assert inside == UNTRACED


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (UNTRACED, True),
        (f"00-{STORED_TRACE_ID}-{STORED_SPAN_ID}-02", True),  # other flags, sampled bit clear
        (STORED, False),
        (f"00-{STORED_TRACE_ID}-{STORED_SPAN_ID}-03", False),
        (None, False),
        ("", False),
        ("00-not-a-traceparent-00", False),
        (f"00-{STORED_TRACE_ID.upper()}-{STORED_SPAN_ID}-00", False),  # malformed: its own trace
    ],
)
def test_unsampled_reads_the_sampled_flag_of_a_well_formed_traceparent_only(
    traceparent: str | None, expected: bool
) -> None:
    assert unsampled(traceparent) is expected


@pytest.mark.parametrize("ratio", [1.0, 0.0])
def test_current_traceparent_is_what_the_w3c_propagator_writes(ratio: float) -> None:
    telemetry = Telemetry(service="tracing-tests", sample_ratio=ratio)
    with telemetry.tracer.start_as_current_span("flow"):
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        assert current_traceparent() == carrier[TRACEPARENT]
    assert current_traceparent() is None


def test_database_statements_are_traced_inside_a_traced_record_within_an_untraced_batch() -> None:
    assert is_instrumentation_enabled()
    with statements_traced(False):  # a batch's or the relay's own statements
        assert not is_instrumentation_enabled()
        with statements_traced(True):  # a traced record's handler
            assert is_instrumentation_enabled()
        assert not is_instrumentation_enabled()
    assert is_instrumentation_enabled()
