"""What the service factory gives every service's HTTP API: one answer for each kind of
refusal (rules.py, ADR 0014), and database statements traced only when the request's flow
is (telemetry.statements_traced)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

import pytest
from aidmesh_runtime.rules import Conflict, Forbidden, NotFound, RuleRefused
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import (
    auth_headers,
    bare_service,
    running_app,
    session_public_keys,
)
from fastapi import APIRouter, FastAPI
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class HttpTestSettings(ServiceSettings):
    service_name: ClassVar[str] = "http-tests"
    kafka_username: str | None = "admin"


def service_with(router: APIRouter, dsn: str, kafka_bootstrap: str) -> FastAPI:
    settings = HttpTestSettings(
        roles="api",
        kafka_bootstrap=kafka_bootstrap,
        db_dsn=dsn,
        otlp_endpoint="",
        auth_public_keys=session_public_keys(),
    )
    return bare_service(settings, router=router, title="http test")


class WrongState(ValueError, Conflict):  # as a service declares its own
    pass


REFUSALS = {
    "missing": (NotFound("case 7 not found"), 404, "case 7 not found"),
    "forbidden": (
        Forbidden("only its caseworker", code="forbidden"),
        403,
        {"reason": "forbidden", "message": "only its caseworker"},
    ),
    "closed": (WrongState("the case is closed"), 409, "the case is closed"),
    "field": (
        RuleRefused("is not a known team", field="team_code"),
        422,
        [{"loc": ["body", "team_code"], "msg": "is not a known team", "type": "value_error"}],
    ),
}


async def test_every_refusal_a_use_case_raises_is_answered_with_its_status_and_reason(
    new_database: Callable[[], Awaitable[str]], kafka_bootstrap: str
) -> None:
    router = APIRouter()

    @router.post("/refuse/{kind}")
    async def refuse(kind: str) -> None:
        raise REFUSALS[kind][0]

    app = service_with(router, await new_database(), kafka_bootstrap)
    async with running_app(app, headers=auth_headers()) as client:
        for kind, (_, status, detail) in REFUSALS.items():
            response = await client.post(f"/refuse/{kind}")
            assert (response.status_code, response.json()) == (status, {"detail": detail}), kind


@pytest.mark.parametrize(("flags", "traced"), [("01", True), ("00", False)])
async def test_a_requests_statements_are_traced_only_when_the_request_is(
    new_database: Callable[[], Awaitable[str]], kafka_bootstrap: str, flags: str, traced: bool
) -> None:
    router = APIRouter()

    @router.get("/statements-traced")
    async def statements_traced() -> dict[str, bool]:
        return {"traced": is_instrumentation_enabled()}

    app = service_with(router, await new_database(), kafka_bootstrap)
    async with running_app(app, headers=auth_headers()) as client:
        response = await client.get(
            "/statements-traced", headers={"traceparent": f"00-{TRACE}-{PARENT}-{flags}"}
        )

    assert response.json() == {"traced": traced}
    # The response names the request's trace either way.
    assert response.headers["traceresponse"].split("-")[1] == TRACE
