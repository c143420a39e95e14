"""Fixtures for protection's integration tests: the service running in-process on the real broker
and a database of its own (with a data key generated for the run), a Kafka producer standing in
for registration and the other sectors, the event log, and callers in each role.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import structlog
from aidmesh_contracts import Composition, Event, HouseholdRegistered, Location
from aidmesh_protection.app import build_app
from aidmesh_protection.crypto import new_data_key
from aidmesh_protection.settings import ProtectionSettings
from aidmesh_runtime.logging import configure_logging
from aidmesh_runtime.testing import (
    Database,
    EventLog,
    Seen,
    auth_headers,
    event_log,
    isolated_settings,
    kafka_producer,
    publish,
    running_app,
    service_database,
    unique,
)
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient


@pytest.fixture(scope="module")
def settings() -> ProtectionSettings:
    # A key made for this run only: no key is ever committed.
    return isolated_settings(ProtectionSettings, data_key=new_data_key("test"))


@pytest.fixture(scope="module")
async def database(settings: ProtectionSettings) -> AsyncIterator[Database]:
    async with service_database(settings) as database:
        yield database


@pytest.fixture(scope="module")
async def protection(
    settings: ProtectionSettings, database: Database
) -> AsyncIterator[AsyncClient]:
    async with running_app(build_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
async def events() -> AsyncIterator[EventLog]:
    async with event_log() as log:
        yield log


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer() as producer:
        yield producer


# ---- callers -----------------------------------------------------------------------------


@dataclass
class Caller:
    """Someone calling the API with a bearer token: their user id as its subject, their
    role as its one protection scope."""

    client: AsyncClient
    user: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(f"protection:{self.role}", sub=self.user, org="IOM-PROTECTION")

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers)

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.headers)


@pytest.fixture
def as_(protection: AsyncClient) -> Callable[..., Caller]:
    """`as_("caseworker")`: a caller in that role, with a user id of its own."""

    def caller(role: str, user: str | None = None) -> Caller:
        return Caller(protection, user or unique(role.replace("_", "")), role)

    return caller


@pytest.fixture
def hotline_case() -> Callable[..., Awaitable[str]]:
    """`await hotline_case(caller, **fields)`: the case ref of a new hotline case."""

    async def take_call(caller: Caller, **fields: Any) -> str:
        body = {"call_id": str(uuid4()), "severity": 4, "concern_codes": ["trafficking_risk"]}
        response = await caller.post("/hotline/calls", body | fields)
        assert response.status_code == 201, response.text
        return str(response.json()["case_ref"])

    return take_call


# ---- other services' events --------------------------------------------------------------


@pytest.fixture
def register(producer: AIOKafkaProducer, database: Database) -> Callable[..., Awaitable[UUID]]:
    """`await register(consents)`: a household registered (as registration publishes it),
    once protection's household projection holds it."""

    async def register_household(
        consents: frozenset[str] = frozenset({"registration", "referral"}),
    ) -> UUID:
        household = HouseholdRegistered(
            household_id=uuid4(),
            registered_at=datetime.now(UTC),
            channel="hotline",
            location=Location(adm1_pcode="UA63"),
            displacement_status="idp",
            size=2,
            composition=Composition(female_18_59=1, female_0_17=1),
            consents=consents,
        )
        await publish(producer, household, source="/aidmesh/registration")
        await database.eventually(
            "SELECT 1 FROM household_projection WHERE household_id = $1",
            household.household_id,
            what="the household in protection's projection",
        )
        return household.household_id

    return register_household


@pytest.fixture
def is_event() -> Callable[..., bool]:
    def matches(record: Seen, model: type[Event], **fields: Any) -> bool:
        """Whether a record is a `model` event on its topic whose payload has these values.

        Other tests share the broker: a record that does not decode is simply not ours."""
        if record.envelope is None or record.envelope.type != model.event_type:
            return False
        if record.topic != model.topic:
            return False  # e.g. a copy in a dead-letter topic
        try:
            event = record.event()
        except ValueError:
            return False
        return all(getattr(event, name) == value for name, value in fields.items())

    return matches


@pytest.fixture
def ours(database: Database, events: EventLog) -> Callable[..., Awaitable[Seen]]:
    """`await ours(Model, **fields)`: the Kafka record of the `Model` event with these payload
    values that THIS protection service published (found through its outbox, the only way
    out). Other copies of protection (an e2e run, `make up`) may answer the same events."""

    async def published(model: type[Event], *, timeout_s: float = 30.0, **fields: Any) -> Seen:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await database.conn.fetch(
                "SELECT event_id, payload FROM outbox WHERE topic = $1"
                " AND headers @> $2::jsonb ORDER BY id",
                model.topic,
                json.dumps([["ce_type", model.event_type]]),
            )
            matching = [
                r["event_id"]
                for r in rows
                if all(
                    getattr(model.model_validate_json(r["payload"]), name) == value
                    for name, value in fields.items()
                )
            ]
            if matching:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"protection published no {model.__name__} with {fields}")
            await asyncio.sleep(0.05)
        [event_id] = matching
        [seen] = await events.wait_for(
            bool,
            select=lambda r: (
                r.topic == model.topic and r.envelope is not None and r.envelope.id == event_id
            ),
            timeout_s=timeout_s,
            what=f"{model.__name__} {event_id} on Kafka",
        )
        return seen

    return published


# ---- what the service logs ---------------------------------------------------------------


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every line the service logs during the test, through structlog (as configured in
    production, JSON, but at DEBUG) and through the standard library (every logger, DEBUG)."""
    buffer = io.StringIO()
    saved = structlog.get_config()
    configure_logging(service="protection", level="DEBUG", fmt="json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        structlog.configure(**saved)
