"""Roles (ADR 0012): one service's parts in separate processes on one database. A process
without the relay leaves its outbox alone; a relay-only process publishes it; neither
serves what its roles exclude."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import ClassVar

import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED
from aidmesh_runtime.outbox import Outbox
from aidmesh_runtime.service import GC_THRESHOLDS, Runtime
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import bare_service, running_app, session_public_keys
from fastapi import APIRouter
from pydantic import ValidationError

pytestmark = pytest.mark.integration


class RolesTestSettings(ServiceSettings):
    service_name: ClassVar[str] = "roles-tests"
    #: Not a catalogue service: it has no principal of its own, so it runs as the operator.
    kafka_username: str | None = "admin"


def app_with(roles: str, dsn: str, kafka_bootstrap: str, router: APIRouter | None = None):
    settings = RolesTestSettings(
        roles=roles,
        kafka_bootstrap=kafka_bootstrap,
        db_dsn=dsn,
        relay_poll_interval_s=0.1,
        otlp_endpoint="",
        auth_public_keys=session_public_keys(),
    )
    return bare_service(settings, router=router, title="roles test")


def test_roles_name_only_known_parts() -> None:
    assert RolesTestSettings(roles="api, relay").runs("relay")
    assert not RolesTestSettings(roles="api,consumer").runs("relay")
    with pytest.raises(ValidationError):
        RolesTestSettings(roles="api,worker")


async def test_a_relay_only_process_publishes_what_the_api_process_wrote(
    new_database: Callable[[], Awaitable[str]],
    kafka_bootstrap: str,
    kafka_topics: None,
    read_from_now: Callable[..., Awaitable],
    delivery: Callable[..., AssistanceDelivered],
) -> None:
    dsn = await new_database()
    reader = await read_from_now(ASSISTANCE_DELIVERED)
    router = APIRouter()

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    api = app_with("api,consumer", dsn, kafka_bootstrap, router)
    async with running_app(api) as client:
        runtime: Runtime = api.state.runtime
        assert runtime.relay is None
        event = delivery()
        async with runtime.pool.acquire() as conn, conn.transaction():
            envelope = await Outbox(source="/aidmesh/roles-tests", clock=runtime.clock).add(
                conn, event
            )
        assert (await client.get("/readyz")).status_code == 200

        relay = app_with("relay", dsn, kafka_bootstrap, router)
        async with running_app(relay) as relay_client:
            [record] = await reader.wait_for(
                "the event, published by the relay process",
                select=lambda r: dict(r.headers).get("ce_id") == str(envelope.id).encode(),
                timeout_s=20,
            )
            assert record.key == str(event.household_id).encode()
            assert (await relay_client.get("/ping")).status_code == 404  # no api role
            assert (await relay_client.get("/readyz")).json()["checks"]["outbox_relay"] == "ok"


async def test_a_running_service_collects_garbage_less_often_and_restores_the_default_after(
    new_database: Callable[[], Awaitable[str]], kafka_bootstrap: str
) -> None:
    before = gc.get_threshold()
    api = app_with("api", await new_database(), kafka_bootstrap)
    async with running_app(api):
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what start-up made is out of the collector's way
    assert gc.get_threshold() == before
