"""The consumer service of bench/latency.py, run as its own process (as services are):
`python bench/_latency_consumer.py`, configured by AIDMESH_BENCH_* variables.

Its handler announces each event's commit: `NOTIFY bench_committed, '<event id>'` in the
handler's transaction is delivered by PostgreSQL when that transaction commits.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

from aidmesh_contracts import AssistanceDelivered
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.service import create_service_app, serve
from aidmesh_runtime.settings import ServiceSettings
from fastapi import FastAPI

CHANNEL = "bench_committed"
EMPTY = Path(tempfile.mkdtemp(prefix="aidmesh-bench-"))  # no migrations of its own


class ConsumerSettings(ServiceSettings):
    service_name: ClassVar[str] = "bench"
    #: Not a catalogue service: it has no principal of its own, so it runs as the operator.
    kafka_username: str | None = "admin"
    default_http_port: ClassVar[int] = 19300


async def announce(event: AssistanceDelivered, ctx: HandlerContext) -> None:
    await ctx.conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(ctx.envelope.id))


def build_app(settings: ConsumerSettings) -> FastAPI:
    return create_service_app(
        settings=settings,
        migrations=EMPTY,
        handlers={AssistanceDelivered: announce},
        title="bench consumer",
        description="announces each commit",
    )


if __name__ == "__main__":
    serve(build_app, ConsumerSettings)
