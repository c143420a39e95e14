"""Audit use cases: record every event in the ledger, inside the consumer's transaction."""

from __future__ import annotations

import structlog
from aidmesh_contracts import Event, encode
from aidmesh_runtime.consumer import HandlerContext

from . import repository
from .ledger import Content
from .settings import AuditSettings

log = structlog.get_logger(__name__)

CONSUMER = AuditSettings.service_name  # the runtime names inbox rows after the service


async def record_event(event: Event, ctx: HandlerContext) -> None:
    """Append the event to the ledger. Every event type is handled by this one function."""
    envelope = ctx.envelope
    delivery = await repository.delivery_of(ctx.conn, consumer=CONSUMER, event_id=envelope.id)
    content = Content(
        ce_id=envelope.id,
        ce_type=envelope.type,
        ce_source=envelope.source,
        ce_subject=envelope.subject,
        ce_time=envelope.time,
        correlation_id=envelope.correlationid,
        causation_id=envelope.causationid,
        topic=delivery["topic"],
        kafka_partition=delivery["kafka_partition"],
        kafka_offset=delivery["kafka_offset"],
        # The runtime hands handlers the validated model, not the record's bytes: this is
        # the payload re-serialised by its contract (see ADR 0005).
        payload=encode(event).decode("utf-8"),
        received_at=ctx.now(),
    )
    entry = await repository.append(ctx.conn, content)
    if entry is None:
        log.info("ledger_entry_exists", event_id=str(envelope.id))
        return
    log.info("ledger_appended", seq=entry.seq, event_id=str(envelope.id), event_type=envelope.type)
