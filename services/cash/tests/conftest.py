"""Fixtures for cash's integration tests: the service running in-process on the real broker
and a database of its own, a Kafka producer standing in for registration and shelter, the
event log, and `flows`: what a test does as registration, a programme officer, an approver
and a provider, and what it sees.

Each test pays in an oblast of its own, so one test's households never enter another's
cycle. Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from aidmesh_cash.app import build_app
from aidmesh_cash.settings import CashSettings
from aidmesh_contracts import (
    Composition,
    Envelope,
    Event,
    HouseholdRegistered,
    Location,
    NeedAssessed,
    PaymentInstructed,
    Sector,
)
from aidmesh_runtime.auth import CASH_APPROVE, CASH_READ, CASH_WRITE
from aidmesh_runtime.testing import (
    Database,
    EventLog,
    auth_headers,
    event_log,
    isolated_settings,
    kafka_producer,
    publish,
    running_app,
    service_database,
)
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient, Response

#: How long a test waits for the service: the broker is shared with other test runs.
WAIT_S = 120.0


@pytest.fixture(scope="module")
def settings() -> CashSettings:
    return isolated_settings(CashSettings)


@pytest.fixture(scope="module")
async def database(settings: CashSettings) -> AsyncIterator[Database]:
    async with service_database(settings) as database:
        yield database


@pytest.fixture(scope="module")
async def cash(settings: CashSettings, database: Database) -> AsyncIterator[AsyncClient]:
    # A programme officer of IOM opens cycles and imports reports; an approver is another
    # person (approver()).
    headers = auth_headers(CASH_READ, CASH_WRITE, sub="user:cash-officer")
    async with running_app(build_app(settings), headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
async def events() -> AsyncIterator[EventLog]:
    async with event_log() as log:
        yield log


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer() as producer:
        yield producer


def approver() -> dict[str, str]:
    return auth_headers(CASH_READ, CASH_APPROVE, sub="user:cash-approver")


class Flows:
    def __init__(
        self, http: AsyncClient, producer: AIOKafkaProducer, database: Database, events: EventLog
    ) -> None:
        self.http = http
        self.producer = producer
        self.database = database
        self.events = events
        self.wait_s = WAIT_S

    # -- as registration --

    async def register(
        self,
        oblast: str,
        *,
        size: int = 4,
        consents: frozenset[str] = frozenset({"registration", "data_sharing"}),
        vulnerabilities: frozenset[str] = frozenset(),
        displacement_status: str = "idp",
    ) -> tuple[HouseholdRegistered, Envelope]:
        household = HouseholdRegistered(
            household_id=uuid4(),
            registered_at=datetime.now(UTC),
            channel="field_office",
            location=Location(adm1_pcode=oblast),
            displacement_status=displacement_status,
            size=size,
            composition=Composition(female_18_59=1, male_0_17=size - 1),
            vulnerabilities=vulnerabilities,
            consents=consents,
        )
        return household, await publish(self.producer, household)

    async def cash_need(
        self, household_id: UUID, *, severity: int = 4, caused_by: Envelope | None = None
    ) -> tuple[NeedAssessed, Envelope]:
        need = NeedAssessed(
            assessment_id=uuid4(),
            household_id=household_id,
            sector=Sector.CASH,
            severity=severity,
            assessed_at=datetime.now(UTC),
            assessed_by="IOM-KH-03",
        )
        return need, await publish(self.producer, need, caused_by=caused_by)

    async def entitled_household(self, oblast: str, **facts: Any) -> UUID:
        """A household with an assessed cash need, once cash has decided its entitlement."""
        household, registered = await self.register(oblast, **facts)
        await self.cash_need(household.household_id, caused_by=registered)
        await self.decided(household.household_id)
        return household.household_id

    async def decided(self, household_id: UUID) -> None:
        await self.database.eventually(
            "SELECT 1 FROM entitlements WHERE household_id = $1",
            household_id,
            timeout_s=WAIT_S,
            what=f"an entitlement for {household_id}",
        )

    # -- as the programme officer, the approver and the provider --

    async def open_cycle(self, oblast: str, **body: Any) -> Response:
        body = {
            "adm1_pcodes": [oblast],
            "first_month": "2027-02",
            "months": 3,
            "budget_uah": "1000000.00",
            "fsp": "privatbank",
            "modality": "bank_transfer",
        } | body
        return await self.http.post("/cycles", json=body)

    async def approve(self, cycle_id: str, headers: dict[str, str] | None = None) -> Response:
        return await self.http.post(f"/cycles/{cycle_id}/approval", headers=headers or approver())

    async def approved_cycle(self, oblast: str, **body: Any) -> dict[str, Any]:
        opened = await self.open_cycle(oblast, **body)
        assert opened.status_code == 201, opened.text
        approved = await self.approve(opened.json()["cycle_id"])
        assert approved.status_code == 200, approved.text
        return approved.json()  # type: ignore[no-any-return]

    async def lines(self, cycle_id: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(f"/cycles/{cycle_id}/lines", params=params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def report(self, cycle_id: str, rows: list[str], control_total: Decimal) -> Response:
        text = "payment_id,status,amount,paid_at,reason\n" + "\n".join(rows) + "\n"
        return await self.http.post(
            f"/cycles/{cycle_id}/reports",
            json={"control_total_uah": str(control_total), "csv": text},
        )

    # -- what cash did --

    async def published(self, model: type[Event]) -> list[tuple[Envelope, Any]]:
        return await self.database.outbox(model)

    async def payment_of(self, household_id: UUID) -> PaymentInstructed:
        """The one payment cash instructed for the household."""
        [payment] = [
            event
            for _, event in await self.published(PaymentInstructed)
            if event.household_id == household_id
        ]
        return payment  # type: ignore[no-any-return]


@pytest.fixture
def flows(
    cash: AsyncClient, producer: AIOKafkaProducer, database: Database, events: EventLog
) -> Flows:
    return Flows(cash, producer, database, events)
