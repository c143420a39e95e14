"""structlog configuration: JSON lines with the service name and, inside a traced flow, the
trace and span ids (console format for humans).

Libraries that log through the standard library (uvicorn, aiokafka, asyncpg, librdkafka) are
routed through the same processors, so their lines are JSON too, and every line, theirs
and ours, is scrubbed of personal data last before it is rendered (scrubbing.py).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TextIO

import structlog
from aidmesh_contracts.envelope import Envelope
from opentelemetry import trace

from .scrubbing import scrub_personal_data

#: The event being handled in this task, if any. Its ids are added to a log line only when
#: a line is written: binding them for every event (four strings and four context
#: variables) would cost more than the few lines a handler writes.
_EVENT: ContextVar[Envelope | None] = ContextVar("aidmesh_event", default=None)


class about_event:  # lower case: a context manager, like structlog's bound_contextvars
    """Log lines written inside name `envelope`'s event (its id, type, household and flow)."""

    __slots__ = ("_envelope", "_token")

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope

    def __enter__(self) -> None:
        self._token = _EVENT.set(self._envelope)

    def __exit__(self, *_: object) -> None:
        _EVENT.reset(self._token)


def add_event_ids(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor: the ids of the event being handled (see `about_event`)."""
    envelope = _EVENT.get()
    if envelope is not None:
        event_dict.setdefault("event_id", str(envelope.id))
        event_dict.setdefault("event_type", envelope.type)
        event_dict.setdefault("household_id", envelope.subject)
        event_dict.setdefault("correlation_id", str(envelope.correlationid))
    return event_dict


def add_trace_ids(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor: the current span's trace and span ids, so that a log line can
    be found from its trace in Jaeger and the other way round."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
        return event_dict
    # A flow that is not traced has no span here (none is made for it): its context is
    # the one the event came with.
    envelope = _EVENT.get()
    if envelope is not None and envelope.traceparent:
        event_dict.setdefault("trace_id", envelope.traceparent[3:35])
        event_dict.setdefault("span_id", envelope.traceparent[36:52])
    return event_dict


def _named(service: str) -> structlog.types.Processor:
    """structlog processor: the service's name on every line, also from tasks that do not
    inherit the lifespan's context variables (uvicorn's request handlers)."""

    def add(
        _logger: object, _method: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


class _LibraryHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler configure_logging installs (one, replaced on each call)."""


def configure_logging(
    *, service: str, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None
) -> None:
    """Log lines go to `stream` (standard error by default), ours and the libraries'."""
    out = stream or sys.stderr
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_event_ids,
        _named(service),
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Last before rendering: nothing personal reaches a log line (scrubbing.py).
        scrub_personal_data,
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aiokafka, uvicorn, asyncpg) log through the standard library: keep their
    # warnings, rendered and scrubbed like our lines (their messages and tracebacks can
    # quote a row's values).
    handler = _LibraryHandler(out)
    handler.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _LibraryHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
