"""Fixtures for health's integration tests: the service running in-process on the real broker
and a database of its own, a Kafka producer standing in for registration and the other
sectors, the event log, and a clock the tests move.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    Composition,
    Envelope,
    Event,
    HealthNeedDetails,
    HouseholdRegistered,
    Location,
    NeedAssessed,
    Sector,
)
from aidmesh_health.app import build_app
from aidmesh_health.clinical import new_key
from aidmesh_health.settings import HealthSettings
from aidmesh_runtime.auth import HEALTH_READ, HEALTH_WRITE
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
)
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient

#: 08:00 in Kyiv: visits are planned from the next day, 2026-03-03.
START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The service's clock, moved by the tests (a day rolls; scheduling follows)."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def settings() -> HealthSettings:
    # No seeded teams: each test adds the teams of its own oblasts, test-only P-codes that no
    # other test's households have (those reach this service too, on the shared broker). A
    # short horizon, so that a few requests fill it; no periodic run, so that planning
    # happens when a test says.
    return isolated_settings(
        HealthSettings,
        clinical_key=new_key(),  # made for this run: no key is ever committed
        seed_teams=(),
        extra_oblasts=tuple(f"UA9{n}" for n in range(9)),  # UA99 stays unknown
        scheduling_horizon_days=3,
        scheduling_interval_s=0,
    )


@pytest.fixture(scope="module")
async def database(settings: HealthSettings) -> AsyncIterator[Database]:
    async with service_database(settings) as database:
        yield database


@pytest.fixture(scope="module")
async def health(
    settings: HealthSettings, database: Database, clock: Clock
) -> AsyncIterator[AsyncClient]:
    # A mobile team's and coordinator's token: health's scopes, nothing else.
    headers = auth_headers(HEALTH_READ, HEALTH_WRITE, sub="user:health-tests")
    async with running_app(build_app(settings, clock=clock), headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
async def events() -> AsyncIterator[EventLog]:
    async with event_log() as log:
        yield log


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer() as producer:
        yield producer


class World:
    """What the tests do as the other services and as a coordinator, and what they read back:
    households and needs published as registration would, teams added over the API, and the
    events this health service published (its outbox rows, read back from Kafka)."""

    def __init__(
        self, health: AsyncClient, producer: AIOKafkaProducer, database: Database, events: EventLog
    ) -> None:
        self.health = health
        self.producer = producer
        self.database = database
        self.events = events

    async def team(
        self,
        code: str,
        oblast: str,
        *,
        capacity: int = 2,
        services: tuple[str, ...] = ("primary_consultation", "mhpss", "vaccination"),
        oblasts: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        response = await self.health.post(
            "/teams",
            json={
                "team_code": code,
                "home_oblast": oblast,
                "oblasts": list(oblasts),
                "daily_capacity": capacity,
                "services": list(services),
            },
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def household(
        self,
        oblast: str,
        *,
        consents: tuple[str, ...] = ("registration", "referral"),
        vulnerabilities: tuple[str, ...] = (),
        size: int = 3,
        household_id: UUID | None = None,
    ) -> tuple[HouseholdRegistered, Envelope]:
        household = HouseholdRegistered(
            household_id=household_id or uuid4(),
            registered_at=datetime.now(UTC),
            channel="field_office",
            location=Location(adm1_pcode=oblast),
            displacement_status="idp",
            size=size,
            composition=Composition(female_18_59=1, male_0_17=size - 1),
            vulnerabilities=frozenset(vulnerabilities),
            consents=frozenset(consents),
        )
        envelope = await publish(self.producer, household)
        await self.database.eventually(
            "SELECT 1 FROM household_projection WHERE household_id = $1",
            household.household_id,
            what="the household in health's projection",
        )
        return household, envelope

    async def need(
        self,
        household: HouseholdRegistered,
        registered: Envelope,
        *,
        severity: int = 3,
        services: tuple[str, ...] = ("mhpss",),
    ) -> tuple[NeedAssessed, Envelope]:
        need = NeedAssessed(
            assessment_id=uuid4(),
            household_id=household.household_id,
            sector=Sector.HEALTH,
            severity=severity,
            assessed_at=datetime.now(UTC),
            assessed_by="IOM-KH-03",
            details=HealthNeedDetails(services_needed=frozenset(services)),
        )
        envelope = await publish(self.producer, need, caused_by=registered)
        await self.database.eventually(
            "SELECT 1 FROM visit_requests WHERE need_assessment_id = $1",
            need.assessment_id,
            what="the visit request of the need",
        )
        return need, envelope

    async def visit_for(self, need: NeedAssessed, *, status: str = "scheduled") -> asyncpg.Record:
        return await self.database.eventually(
            "SELECT * FROM visits WHERE need_assessment_id = $1 AND status = $2",
            need.assessment_id,
            status,
            what=f"a {status} visit for the need",
        )

    async def published(self, model: type[Event], *, count: int = 1, **payload: Any) -> list[Seen]:
        """The `model` events with this payload that this health service published, as read
        back from Kafka (other copies of health on the broker publish their own)."""
        deadline = time.monotonic() + 30
        while True:
            rows = await self.database.conn.fetch(
                "SELECT event_id FROM outbox WHERE headers @> $1::jsonb"
                " AND convert_from(payload, 'UTF8')::jsonb @> $2::jsonb ORDER BY id",
                json.dumps([["ce_type", model.event_type]]),
                json.dumps(payload, default=str),
            )
            if len(rows) >= count:
                break
            assert time.monotonic() < deadline, f"health did not publish {count} {model.__name__}"
            await asyncio.sleep(0.05)
        ids = {row["event_id"] for row in rows}
        records = await self.events.wait_for(
            lambda rs: {r.envelope.id for r in rs if r.envelope} >= ids,
            select=lambda r: (
                r.envelope is not None and r.envelope.id in ids and r.topic == model.topic
            ),
            what=f"{model.__name__} on Kafka",
        )
        unique = {r.envelope.id: r for r in records if r.envelope}
        return [unique[row["event_id"]] for row in rows]

    async def outbox_count(self, model: type[Event], **payload: Any) -> int:
        return await self.database.conn.fetchval(
            "SELECT count(*) FROM outbox WHERE headers @> $1::jsonb"
            " AND convert_from(payload, 'UTF8')::jsonb @> $2::jsonb",
            json.dumps([["ce_type", model.event_type]]),
            json.dumps(payload, default=str),
        )


@pytest.fixture(scope="module")
def world(
    health: AsyncClient, producer: AIOKafkaProducer, database: Database, events: EventLog
) -> World:
    return World(health, producer, database, events)
