"""The outbox relay of bench/hop.py's service as a process of its own (`roles=relay`, as a
busy service runs it): `python bench/_relay.py`, configured by AIDMESH_BENCH_* variables."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

from aidmesh_runtime.service import create_service_app, serve
from aidmesh_runtime.settings import ServiceSettings
from fastapi import FastAPI

EMPTY = Path(tempfile.mkdtemp(prefix="aidmesh-bench-"))  # no migrations of its own


class RelaySettings(ServiceSettings):
    service_name: ClassVar[str] = "bench"
    #: Not a catalogue service: it has no principal of its own, so it runs as the operator.
    kafka_username: str | None = "admin"
    default_http_port: ClassVar[int] = 19301


def build_app(settings: RelaySettings) -> FastAPI:
    return create_service_app(
        settings=settings,
        migrations=EMPTY,
        title="bench relay",
        description="publishes the bench service's outbox",
    )


if __name__ == "__main__":
    serve(build_app, RelaySettings)
