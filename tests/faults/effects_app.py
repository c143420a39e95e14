"""A purpose-built AidMesh service for the fault-injection tests, run as a real process:
`python tests/faults/effects_app.py`.

It consumes deliveries through the runtime like any service and writes one row per handled
event into `effects`, a table with no unique constraint: an event applied twice shows as
two rows, which a real service's own constraints would hide (or dead-letter).

By default it reads AssistanceDelivered from the assistance topic. With
`AIDMESH_EFFECTS_VISITS=true` it reads VisitScheduled from the health visit topic instead
(one row per scheduled visit, the visit id as the delivery id): health schedules a visit per
health need, and completes it only when a team reports, which no fault test plays. With
`AIDMESH_EFFECTS_BURST_TOPIC` it reads a topic the test owns instead, where the same payload
travels as the test-only type BURST_TYPE: a 20,000-event burst then reaches no other
consumer on the shared broker (audit reads every catalogue topic) and stays on no shared
topic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from aidmesh_contracts import AssistanceDelivered, VisitScheduled
from aidmesh_contracts.base import Event, event
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.service import create_service_app, serve
from aidmesh_runtime.settings import ServiceSettings
from fastapi import FastAPI

MIGRATIONS = Path(__file__).resolve().parent / "effects_migrations"
BURST_TYPE = "org.aidmesh.faults.delivery.burst.v1"


class EffectsSettings(ServiceSettings):
    service_name: ClassVar[str] = "effects"
    #: Not a catalogue service: it has no principal of its own, so it runs as the operator.
    kafka_username: str | None = "admin"
    default_http_port: ClassVar[int] = 19200

    burst_topic: str | None = None
    visits: bool = False


def burst_model(topic: str) -> type[Event]:
    """AssistanceDelivered's payload as BURST_TYPE on `topic`, known to this process only."""

    @event(type=BURST_TYPE, topic=topic)
    class BurstDelivery(AssistanceDelivered):
        pass

    return BurstDelivery


async def note_delivery(event: AssistanceDelivered, ctx: HandlerContext) -> None:
    """The effect of one delivery: one row, in the consumer's transaction."""
    await ctx.conn.execute(
        "INSERT INTO effects (event_id, delivery_id, household_id, quantity) "
        "VALUES ($1, $2, $3, $4)",
        ctx.envelope.id,
        event.delivery_id,
        event.household_id,
        event.quantity,
    )


async def note_visit(event: VisitScheduled, ctx: HandlerContext) -> None:
    """The effect of one scheduled visit: one row, in the consumer's transaction."""
    await ctx.conn.execute(
        "INSERT INTO effects (event_id, delivery_id, household_id, quantity) "
        "VALUES ($1, $2, $3, 1)",
        ctx.envelope.id,
        event.visit_id,
        event.household_id,
    )


def build_app(settings: EffectsSettings) -> FastAPI:
    if settings.visits:
        handlers: dict[type[Event], Any] = {VisitScheduled: note_visit}
    elif settings.burst_topic is None:
        handlers = {AssistanceDelivered: note_delivery}
    else:
        handlers = {burst_model(settings.burst_topic): note_delivery}
    return create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        handlers=handlers,
        title="AidMesh fault-injection effects",
        description="Test-only: one effect row per delivery, duplicates visible.",
    )


if __name__ == "__main__":
    serve(build_app, EffectsSettings)
