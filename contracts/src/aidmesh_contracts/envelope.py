"""CloudEvents 1.0 in Kafka binary mode: the payload is the value, metadata is in headers.

Any CloudEvents-aware client (or kcat) can read our topics without our code:

    ce_specversion  1.0
    ce_id           UUID, also the idempotency key of the event
    ce_source       /aidmesh/<service>
    ce_type         org.aidmesh.<context>.<entity>.<verb>.v<N>
    ce_subject      the household id (also the Kafka key)
    ce_time         RFC 3339 time the event happened
    content-type    application/json
    ce_dataschema   the schema URI of ce_type
    ce_correlationid  the id of the whole flow (extension)
    ce_causationid    the ce_id of the event that caused this one (extension)
    traceparent     W3C trace context
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated
from uuid import UUID, uuid4

from pydantic import AwareDatetime, StringConstraints, ValidationError

from .base import EVENT_TYPE_PATTERN, EVENT_TYPES, Event
from .common import FrozenModel

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
SCHEMA_URI_PREFIX = "urn:aidmesh:schema:"

Source = Annotated[str, StringConstraints(pattern=r"^/[a-z0-9][a-z0-9/_.-]{0,127}$")]
TypeName = Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN.pattern)]
TRACEPARENT_PATTERN = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

_ATTRIBUTE_HEADERS = {
    "id": "ce_id",
    "source": "ce_source",
    "type": "ce_type",
    "subject": "ce_subject",
    "time": "ce_time",
    "dataschema": "ce_dataschema",
    "correlationid": "ce_correlationid",
    "causationid": "ce_causationid",
}
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")


class EnvelopeError(ValueError):
    """A record's headers are not a valid AidMesh CloudEvent. Permanent: dead-letter it."""


class UnknownEventType(EnvelopeError):
    """The ce_type is well formed but no contract defines it."""


class PayloadError(ValueError):
    """The value is not valid JSON or does not match the contract of its ce_type."""


def schema_uri(event_type: str) -> str:
    return SCHEMA_URI_PREFIX + event_type


class Envelope(FrozenModel):
    """CloudEvents attributes of one event (everything but the data)."""

    id: UUID
    source: Source
    type: TypeName
    subject: str | None = None
    time: AwareDatetime
    dataschema: str | None = None
    correlationid: UUID
    causationid: UUID | None = None
    traceparent: str | None = None

    def header_pairs(self) -> list[tuple[str, str]]:
        """The Kafka headers as text, in the order they are written."""
        headers = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", str(self.id)),
            ("ce_source", self.source),
            ("ce_type", self.type),
        ]
        if self.subject is not None:
            headers.append(("ce_subject", self.subject))
        headers.append(("ce_time", self.time.isoformat()))
        if self.dataschema is not None:
            headers.append(("ce_dataschema", self.dataschema))
        headers.append(("ce_correlationid", str(self.correlationid)))
        if self.causationid is not None:
            headers.append(("ce_causationid", str(self.causationid)))
        headers.append(("content-type", CONTENT_TYPE))
        if self.traceparent:
            headers.append(("traceparent", self.traceparent))
        return headers

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [(name, value.encode()) for name, value in self.header_pairs()]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]]) -> Envelope:
        """Parse Kafka headers; raise EnvelopeError naming what is missing or wrong."""
        found: dict[str, str] = {}
        for name, raw in headers:
            if raw is None:
                continue
            try:
                found[name] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {name} is not valid UTF-8") from exc
        missing = [h for h in REQUIRED_HEADERS if h not in found]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if found["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"unsupported ce_specversion {found['ce_specversion']!r}")
        content_type = found.get("content-type", CONTENT_TYPE)
        if not content_type.startswith(CONTENT_TYPE):
            raise EnvelopeError(f"unsupported content-type {content_type!r}")
        values: dict[str, str] = {
            attribute: found[header]
            for attribute, header in _ATTRIBUTE_HEADERS.items()
            if header in found
        }
        # A flow that starts outside AidMesh may have no correlation id yet: it starts here.
        values.setdefault("correlationid", values["id"])
        if "traceparent" in found and TRACEPARENT_PATTERN.match(found["traceparent"]):
            values["traceparent"] = found["traceparent"]
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_ATTRIBUTE_HEADERS.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
                for e in exc.errors()
            )
            raise EnvelopeError(f"invalid CloudEvents headers: {problems}") from exc


def new_envelope(
    event: Event,
    *,
    source: str,
    time: datetime,
    caused_by: Envelope | None = None,
    correlation_id: UUID | None = None,
    traceparent: str | None = None,
    new_id: Callable[[], UUID] = uuid4,
) -> Envelope:
    """Envelope for a new event. An event caused by another inherits its correlation id."""
    event_id = new_id()
    if caused_by is not None:
        correlation_id = caused_by.correlationid
    return Envelope(
        id=event_id,
        source=source,
        type=event.event_type,
        subject=event.subject(),
        time=time,
        dataschema=schema_uri(event.event_type),
        correlationid=correlation_id or event_id,
        causationid=caused_by.id if caused_by else None,
        traceparent=traceparent,
    )


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode("utf-8")


def decode(envelope: Envelope, value: bytes | None) -> Event:
    """The payload of a record as the model of its ce_type, or a PayloadError saying why not."""
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise UnknownEventType(f"unknown event type {envelope.type!r}")
    if value is None:
        raise PayloadError("record has no value")
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise PayloadError(f"{envelope.type} payload invalid: {problems}") from exc
