"""Fixtures for shelter's integration tests: the service running in-process on the real broker
and a database of its own, a Kafka producer standing in for registration and the other
sectors, the event log, and `flows`: the steps a test takes and what it sees.

Copies of the services started by `make up` may consume the same topics and react to these
events too, so a test only looks at what its own in-process shelter did: rows of its database
and the Kafka records whose ids its outbox holds (the outbox is the only way out).

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

import pytest
from aidmesh_contracts import (
    Composition,
    ConsentPurpose,
    ConsentRecorded,
    ConsentWithdrawn,
    DamageLevel,
    Envelope,
    Event,
    HouseholdRegistered,
    Location,
    NeedAssessed,
    Sector,
    ShelterNeedDetails,
    decode,
)
from aidmesh_runtime.auth import SHELTER_READ, SHELTER_RECORD_FOR_PARTNERS, SHELTER_WRITE
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.testing import (
    KAFKA,
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
from aidmesh_shelter.app import build_app
from aidmesh_shelter.settings import ShelterSettings
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata, TopicPartition
from httpx import AsyncClient, Response

#: How long a test waits for the service. Generous: the broker is shared, and other test
#: runs' bursts (thousands of registrations) pass through this service's consumer first.
WAIT_S = 120.0


@pytest.fixture(scope="module")
def settings() -> ShelterSettings:
    return isolated_settings(ShelterSettings)


@pytest.fixture(scope="module")
async def database(settings: ShelterSettings) -> AsyncIterator[Database]:
    async with service_database(settings) as database:
        yield database


class Clock:
    """The service's clock: the real time, or a time the test sets."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
async def shelter(
    settings: ShelterSettings, database: Database, clock: Clock
) -> AsyncIterator[AsyncClient]:
    # A shelter officer of IOM: shelter's scopes, nothing else; what it records is IOM's.
    # The engineers and a coordinator recording partners' work have their own (below).
    headers = auth_headers(SHELTER_READ, SHELTER_WRITE, sub="user:shelter-tests")
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


@pytest.fixture(scope="module")
async def consumed(settings: ShelterSettings) -> AsyncIterator[Any]:
    """`await consumed(metadata)`: wait until the service committed past a produced record."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, **operator_auth())
    await admin.start()

    async def wait(record: RecordMetadata, *, timeout_s: float = WAIT_S) -> None:
        tp = TopicPartition(record.topic, record.partition)
        deadline = time.monotonic() + timeout_s
        while True:
            offsets = await admin.list_consumer_group_offsets(settings.group_id, partitions=[tp])
            committed = offsets.get(tp)
            if committed is not None and committed.offset > record.offset:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{settings.group_id} did not consume {tp}@{record.offset}")
            await asyncio.sleep(0.05)

    try:
        yield wait
    finally:
        await admin.close()


# ---- the steps of a test -----------------------------------------------------------------

KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")
#: The engineers' team whose token assesses: the assessments are ENG-KH-01's (ADR 0009).
ENGINEERS = "ENG-KH-01"


def engineer() -> dict[str, str]:
    """A token of the engineers' team (its org is the team's code)."""
    return auth_headers(SHELTER_READ, SHELTER_WRITE, org=ENGINEERS, sub="user:engineer-kh-01")


def coordinator() -> dict[str, str]:
    """An IOM coordinator's token that may record what implementing partners did."""
    return auth_headers(
        SHELTER_READ, SHELTER_WRITE, SHELTER_RECORD_FOR_PARTNERS, sub="user:coordinator"
    )


#: A bill of quantities of a light repair: 3 x 3200.00 + 10 x 250.00 = 12100.00 UAH.
LIGHT_BOQ = [
    {"item_code": "window.pvc_double", "quantity": "3", "unit": "pcs", "unit_cost_uah": "3200.00"},
    {"item_code": "roof.metal_sheet", "quantity": "10", "unit": "m2", "unit_cost_uah": "250.00"},
]


@dataclass(frozen=True)
class Published:
    """An event this shelter wrote to its outbox."""

    envelope: Envelope
    event: Event


@dataclass(frozen=True)
class OpenCase:
    case_id: UUID
    household: HouseholdRegistered
    registered: Envelope
    opened: Envelope


class Flows:
    """What a test does to its shelter (as registration, other sectors, engineers and
    coordinators would) and what it sees of it."""

    def __init__(
        self, http: AsyncClient, producer: AIOKafkaProducer, database: Database, events: EventLog
    ) -> None:
        self.http = http
        self.producer = producer
        self.database = database
        self.events = events
        # Tokens of the people whose work a call records (ADR 0009), for a request's headers.
        self.engineer = engineer
        self.coordinator = coordinator

    # -- as registration --

    def household(
        self,
        *,
        size: int = 3,
        consents: frozenset[str] = frozenset({"registration", "data_sharing", "referral"}),
        vulnerabilities: frozenset[str] = frozenset(),
        displacement_status: str = "idp",
        location: Location = KHARKIV,
    ) -> HouseholdRegistered:
        return HouseholdRegistered(
            household_id=uuid4(),
            registered_at=datetime.now(UTC),
            channel="field_office",
            location=location,
            displacement_status=displacement_status,
            size=size,
            composition=Composition(female_18_59=1, male_0_17=size - 1),
            vulnerabilities=vulnerabilities,
            consents=consents,
        )

    async def register(self, **facts: Any) -> tuple[HouseholdRegistered, Envelope]:
        """Publish a household's registration; return once shelter has projected it."""
        household = self.household(**facts)
        envelope = await publish(self.producer, household)
        await self.projected(household.household_id)
        return household, envelope

    async def projected(self, household_id: UUID) -> None:
        await self.database.eventually(
            "SELECT 1 FROM household_projection WHERE household_id = $1",
            household_id,
            timeout_s=WAIT_S,
            what=f"household {household_id} in shelter's projection",
        )

    async def need(
        self,
        household_id: UUID,
        damage: DamageLevel | str = DamageLevel.LIGHT,
        *,
        severity: int = 4,
        caused_by: Envelope | None = None,
    ) -> tuple[NeedAssessed, Envelope]:
        need = NeedAssessed(
            assessment_id=uuid4(),
            household_id=household_id,
            sector=Sector.SHELTER,
            severity=severity,
            assessed_at=datetime.now(UTC),
            assessed_by="IOM-KH-03",
            details=ShelterNeedDetails(damage_level=DamageLevel(damage)),
        )
        return need, await publish(self.producer, need, caused_by=caused_by)

    async def consent(self, household_id: UUID, purpose: str, *, given: bool) -> Envelope:
        event: Event
        if given:
            event = ConsentRecorded(
                consent_id=uuid4(),
                household_id=household_id,
                purpose=ConsentPurpose(purpose),
                recorded_by="IOM-KH",
                recorded_at=datetime.now(UTC),
            )
        else:
            event = ConsentWithdrawn(
                consent_id=uuid4(),
                household_id=household_id,
                purpose=ConsentPurpose(purpose),
                recorded_by="IOM-KH",
                withdrawn_at=datetime.now(UTC),
            )
        return await publish(self.producer, event)

    async def open_case(
        self, damage: DamageLevel | str = DamageLevel.LIGHT, *, severity: int = 4, **household: Any
    ) -> OpenCase:
        """A household and its shelter need, published; the case shelter opened for it."""
        registered_household, registered = await self.register(**household)
        need, _ = await self.need(
            registered_household.household_id, damage, severity=severity, caused_by=registered
        )
        row = await self.database.eventually(
            "SELECT case_id, opened_envelope FROM shelter_cases WHERE need_assessment_id = $1",
            need.assessment_id,
            timeout_s=WAIT_S,
            what=f"a shelter case for need {need.assessment_id}",
        )
        opened = Envelope.model_validate_json(row["opened_envelope"])
        return OpenCase(row["case_id"], registered_household, registered, opened)

    # -- as the engineer and the coordinator --

    async def assess(
        self, case_id: UUID, damage: str = "light", boq: list[dict[str, str]] | None = None
    ) -> Response:
        body = {
            "damage_level": damage,
            "assessed_by": ENGINEERS,
            "boq": LIGHT_BOQ if boq is None else boq,
        }
        return await self.http.post(f"/cases/{case_id}/assessment", json=body, headers=engineer())

    async def plan(self, case_id: UUID, **body: Any) -> Response:
        return await self.http.post(f"/cases/{case_id}/plan", json=body)

    async def complete(
        self, case_id: UUID, *, headers: dict[str, str] | None = None, **overrides: Any
    ) -> Response:
        body = {"value_uah": "11800.00", "inspection_passed": True} | overrides
        return await self.http.post(
            f"/cases/{case_id}/repair-completion", json=body, headers=headers
        )

    async def planned_case(self, **household: Any) -> OpenCase:
        case = await self.open_case(DamageLevel.LIGHT, **household)
        assessed = await self.assess(case.case_id)
        assert assessed.status_code == 200, assessed.text
        planned = await self.plan(case.case_id)
        assert planned.status_code == 200, planned.text
        return case

    # -- what shelter did --

    async def handled(self, envelope: Envelope) -> None:
        """Wait until shelter has handled this event (its inbox row is committed)."""
        await self.database.eventually(
            "SELECT 1 FROM inbox WHERE event_id = $1",
            envelope.id,
            timeout_s=WAIT_S,
            what=f"{envelope.type} handled",
        )

    async def outbox(
        self, model: type[Event] | None = None, *, correlation_id: UUID | None = None
    ) -> list[Published]:
        """Events this shelter wrote, in order (of one type, one flow, if given)."""
        rows = await self.database.conn.fetch("SELECT headers, payload FROM outbox ORDER BY id")
        found = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
            envelope = Envelope.from_headers(headers)
            if model is not None and envelope.type != model.event_type:
                continue
            if correlation_id is not None and envelope.correlationid != correlation_id:
                continue
            found.append(Published(envelope, decode(envelope, bytes(row["payload"]))))
        return found

    async def published(
        self, model: type[Event], *, timeout_s: float = WAIT_S, **fields: Any
    ) -> tuple[Event, Seen]:
        """Wait until this shelter published a `model` event with these payload values, and
        it is on Kafka; return the event and its record."""
        deadline = time.monotonic() + timeout_s
        while True:
            matches = [
                p
                for p in await self.outbox(model)
                if all(getattr(p.event, k) == v for k, v in fields.items())
            ]
            if matches:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"shelter did not publish {model.__name__} {fields}")
            await asyncio.sleep(0.05)
        assert len(matches) == 1, f"{model.__name__} {fields} published {len(matches)} times"
        [mine] = matches
        [seen] = await self.events.wait_for(
            bool,
            select=lambda r: (
                r.envelope is not None
                and r.envelope.id == mine.envelope.id
                and r.topic == model.topic
            ),
            timeout_s=timeout_s,
            what=f"{model.__name__} on Kafka",
        )
        return mine.event, seen

    async def count(self, model: type[Event], **fields: Any) -> int:
        return sum(
            all(getattr(p.event, k) == v for k, v in fields.items())
            for p in await self.outbox(model)
        )

    async def case_row(self, case_id: UUID) -> Any:
        return await self.database.conn.fetchrow(
            "SELECT * FROM shelter_cases WHERE case_id = $1", case_id
        )

    async def case_status(self, case_id: UUID) -> str:
        return await self.database.conn.fetchval(  # type: ignore[no-any-return]
            "SELECT status FROM shelter_cases WHERE case_id = $1", case_id
        )


@pytest.fixture
def flows(
    shelter: AsyncClient, producer: AIOKafkaProducer, database: Database, events: EventLog
) -> Flows:
    return Flows(shelter, producer, database, events)
