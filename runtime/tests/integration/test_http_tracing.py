"""A service's HTTP requests and their database statements: traced when the request's flow
is (its traceparent sampled), not otherwise (telemetry.statements_traced)."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

import pytest
from aidmesh_runtime.service import create_service_app
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import auth_headers, running_app, session_public_keys
from fastapi import APIRouter
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class HttpTracingSettings(ServiceSettings):
    service_name: ClassVar[str] = "http-tracing-tests"
    kafka_username: str | None = "admin"


@pytest.mark.parametrize(("flags", "traced"), [("01", True), ("00", False)])
async def test_a_requests_statements_are_traced_only_when_the_request_is(
    new_database: Callable[[], Awaitable[str]], kafka_bootstrap: str, flags: str, traced: bool
) -> None:
    router = APIRouter()

    @router.get("/statements-traced")
    async def statements_traced() -> dict[str, bool]:
        return {"traced": is_instrumentation_enabled()}

    settings = HttpTracingSettings(
        roles="api",
        kafka_bootstrap=kafka_bootstrap,
        db_dsn=await new_database(),
        otlp_endpoint="",
        auth_public_keys=session_public_keys(),
    )
    app = create_service_app(
        settings=settings,
        migrations=Path(tempfile.mkdtemp(prefix="aidmesh-http-tracing-")),
        router=router,
        title="http tracing test",
        description="Which statements get spans.",
    )
    async with running_app(app, headers=auth_headers()) as client:
        response = await client.get(
            "/statements-traced", headers={"traceparent": f"00-{TRACE}-{PARENT}-{flags}"}
        )

    assert response.json() == {"traced": traced}
    # The response names the request's trace either way.
    assert response.headers["traceresponse"].split("-")[1] == TRACE
