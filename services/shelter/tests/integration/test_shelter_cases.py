"""Shelter on the real broker and database: needs open cases, repairs deliver assistance.

Copies of the services started by `make up` may consume the same topics and react to these
events too, so a test only looks at what its own in-process shelter did: rows of its database
and the Kafka records whose ids that database holds (the outbox is the only way out).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    AssistanceDelivered,
    Composition,
    DamageLevel,
    Envelope,
    Event,
    HouseholdRegistered,
    Location,
    NeedAssessed,
    RepairCompleted,
    Sector,
    ShelterCaseOpened,
    ShelterNeedDetails,
    encode,
)
from aidmesh_contracts.envelope import new_envelope
from aidmesh_runtime.testing import EventLog, Seen, publish

pytestmark = pytest.mark.integration

KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")


def is_event(record: Seen, model: type[Event], **fields: Any) -> bool:
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


def household_registered(size: int = 3) -> HouseholdRegistered:
    return HouseholdRegistered(
        household_id=uuid4(),
        registered_at=datetime.now(UTC),
        channel="field_office",
        location=KHARKIV,
        displacement_status="idp",
        size=size,
        composition=Composition(female_18_59=1, male_0_17=size - 1),
        consents=frozenset({"registration", "data_sharing"}),
    )


def shelter_need(household_id: UUID, damage: DamageLevel = DamageLevel.LIGHT) -> NeedAssessed:
    return NeedAssessed(
        assessment_id=uuid4(),
        household_id=household_id,
        sector=Sector.SHELTER,
        severity=4,
        assessed_at=datetime.now(UTC),
        assessed_by="IOM-KH-03",
        details=ShelterNeedDetails(damage_level=damage),
    )


def completion(**overrides: Any) -> dict[str, Any]:
    return {"category": "light", "modality": "in_kind", "value_uah": "12500.00"} | overrides


async def case_opened_for(
    need: NeedAssessed, database: Any, events: EventLog
) -> tuple[asyncpg.Record, Seen]:
    """The case this shelter opened for a need (its row), and its ShelterCaseOpened on Kafka."""
    row = await database.eventually(
        "SELECT * FROM shelter_cases WHERE need_assessment_id = $1",
        need.assessment_id,
        what=f"a shelter case for need {need.assessment_id}",
    )
    opened_id = UUID(json.loads(row["opened_envelope"])["id"])
    [seen] = await events.wait_for(
        bool,
        select=lambda r: r.envelope is not None and r.envelope.id == opened_id,
        what="the ShelterCaseOpened on Kafka",
    )
    return row, seen


async def open_case(
    producer: Any, database: Any, events: EventLog, damage: DamageLevel = DamageLevel.LIGHT
) -> tuple[UUID, Envelope]:
    """A household and its shelter need, published; the case opened and its envelope."""
    household = household_registered()
    registered = await publish(producer, household)
    need = shelter_need(household.household_id, damage)
    await publish(producer, need, caused_by=registered)
    row, seen = await case_opened_for(need, database, events)
    assert seen.envelope is not None
    return row["case_id"], seen.envelope


async def published_by_us(database: Any, correlation_id: UUID) -> list[tuple[str, str]]:
    """(topic, ce_type) of every event this shelter wrote to its outbox in one flow."""
    rows = await database.conn.fetch(
        "SELECT topic, headers FROM outbox WHERE headers @> $1::jsonb ORDER BY id",
        json.dumps([["ce_correlationid", str(correlation_id)]]),
    )
    return [(r["topic"], dict(json.loads(r["headers"]))["ce_type"]) for r in rows]


async def test_a_shelter_need_of_a_known_household_opens_a_case_caused_by_the_need(
    shelter, producer, database, events
) -> None:
    household = household_registered()
    registered = await publish(producer, household)
    await database.eventually(
        "SELECT 1 FROM household_projection WHERE household_id = $1",
        household.household_id,
        what="the household in shelter's projection",
    )
    need = shelter_need(household.household_id, DamageLevel.LIGHT)
    need_envelope = await publish(producer, need, caused_by=registered)

    row, seen = await case_opened_for(need, database, events)

    assert seen.envelope is not None
    assert seen.envelope.type == ShelterCaseOpened.event_type
    assert seen.envelope.causationid == need_envelope.id
    assert seen.envelope.correlationid == registered.correlationid
    assert seen.key == str(household.household_id).encode()
    opened = seen.event()
    assert isinstance(opened, ShelterCaseOpened)
    assert (opened.case_id, opened.household_id) == (row["case_id"], household.household_id)
    assert (opened.damage_level, opened.severity, opened.location) == (
        DamageLevel.LIGHT,
        4,
        KHARKIV,
    )
    assert (row["status"], row["household_size"]) == ("open", 3)


async def test_a_need_that_arrives_before_its_household_waits_then_opens_exactly_one_case(
    shelter, producer, database, events
) -> None:
    household = household_registered()
    need = shelter_need(household.household_id)
    flow = uuid4()
    need_envelope = await publish(producer, need, correlation_id=flow)
    await database.eventually(
        "SELECT 1 FROM pending_need WHERE assessment_id = $1 AND acted_at IS NULL",
        need.assessment_id,
        what="the need waiting for its household",
    )
    assert not await database.conn.fetchval(
        "SELECT count(*) FROM shelter_cases WHERE household_id = $1", household.household_id
    )

    await publish(producer, household, correlation_id=flow)
    _, seen = await case_opened_for(need, database, events)

    assert seen.envelope is not None
    assert seen.envelope.causationid == need_envelope.id
    assert seen.envelope.correlationid == flow
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM shelter_cases WHERE household_id = $1", household.household_id
        )
        == 1
    )
    assert await published_by_us(database, flow) == [
        ("aidmesh.shelter.case.v1", ShelterCaseOpened.event_type)
    ]


async def test_the_same_need_delivered_twice_opens_only_one_case(
    shelter, producer, database, events, consumed
) -> None:
    household = household_registered()
    registered = await publish(producer, household)
    need = shelter_need(household.household_id)
    envelope = new_envelope(
        need, source="/aidmesh/tests", time=datetime.now(UTC), caused_by=registered
    )
    for _ in range(2):  # the same record again, as a producer retry or a replay would send it
        sent = await producer.send_and_wait(
            need.topic,
            value=encode(need),
            key=need.subject().encode(),
            headers=envelope.to_headers(),
        )
    await consumed(sent)

    await case_opened_for(need, database, events)

    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM shelter_cases WHERE household_id = $1", household.household_id
        )
        == 1
    )
    assert await published_by_us(database, registered.correlationid) == [
        ("aidmesh.shelter.case.v1", ShelterCaseOpened.event_type)
    ]


async def test_a_completed_repair_publishes_the_repair_and_the_assistance_it_delivered(
    shelter, producer, database, events
) -> None:
    case_id, opened = await open_case(producer, database, events)

    response = await shelter.post(
        f"/cases/{case_id}/repair-completion", json=completion(value_uah="12500.50")
    )

    assert response.status_code == 200, response.text
    delivery_id = UUID(response.json()["delivery_id"])
    assert response.json()["case_id"] == str(case_id)
    [repaired] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, RepairCompleted, case_id=case_id),
        what="RepairCompleted of our case",
    )
    [delivered] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, AssistanceDelivered, delivery_id=delivery_id),
        what="AssistanceDelivered of our repair",
    )
    assert repaired.envelope is not None and delivered.envelope is not None
    assert repaired.envelope.causationid == opened.id
    assert delivered.envelope.causationid == repaired.envelope.id
    assert delivered.envelope.correlationid == opened.correlationid
    assert delivered.topic == "aidmesh.assistance.delivered.v1"
    assistance = delivered.event()
    assert isinstance(assistance, AssistanceDelivered)
    assert (assistance.sector, assistance.activity) == (Sector.SHELTER, "shelter.light_repair")
    assert assistance.value is not None and assistance.value.amount == Decimal("12500.50")
    assert assistance.persons_reached == 3
    row = await database.conn.fetchrow("SELECT * FROM shelter_cases WHERE case_id = $1", case_id)
    assert (row["status"], row["delivery_id"]) == ("repaired", delivery_id)


async def test_a_second_completion_of_the_same_case_is_a_conflict(
    shelter, producer, database, events
) -> None:
    case_id, opened = await open_case(producer, database, events)
    first = await shelter.post(f"/cases/{case_id}/repair-completion", json=completion())
    assert first.status_code == 200, first.text

    second = await shelter.post(f"/cases/{case_id}/repair-completion", json=completion())

    assert second.status_code == 409
    assert "is repaired, not open" in second.json()["detail"]
    assert [t for _, t in await published_by_us(database, opened.correlationid)] == [
        ShelterCaseOpened.event_type,
        RepairCompleted.event_type,
        AssistanceDelivered.event_type,
    ]


async def test_completing_an_unknown_case_is_not_found(shelter) -> None:
    response = await shelter.post(f"/cases/{uuid4()}/repair-completion", json=completion())

    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


async def test_a_value_above_the_cap_is_refused_with_the_reason_and_the_case_stays_open(
    shelter, producer, database, events
) -> None:
    case_id, opened = await open_case(producer, database, events)

    response = await shelter.post(
        f"/cases/{case_id}/repair-completion", json=completion(value_uah="30000.01")
    )

    assert response.status_code == 422
    assert "exceeds the light repair cap of 30000" in response.json()["detail"]
    assert (
        await database.conn.fetchval("SELECT status FROM shelter_cases WHERE case_id = $1", case_id)
        == "open"
    )
    assert len(await published_by_us(database, opened.correlationid)) == 1


async def test_a_heavy_damage_case_is_not_repaired_by_us(
    shelter, producer, database, events
) -> None:
    case_id, _ = await open_case(producer, database, events, DamageLevel.HEAVY)

    response = await shelter.post(f"/cases/{case_id}/repair-completion", json=completion())

    assert response.status_code == 422
    assert "heavy damage is referred to the state compensation" in response.json()["detail"]


async def test_a_repair_paid_in_cash_is_refused(shelter, producer, database, events) -> None:
    case_id, _ = await open_case(producer, database, events)

    response = await shelter.post(
        f"/cases/{case_id}/repair-completion", json=completion(modality="cash")
    )

    assert response.status_code == 422
    assert "in kind or by voucher" in response.json()["detail"]


async def test_open_cases_are_listed(shelter, producer, database, events) -> None:
    case_id, _ = await open_case(producer, database, events)

    response = await shelter.get("/cases", params={"status": "open", "adm1_pcode": "UA63"})

    assert response.status_code == 200
    listed = {case["case_id"]: case for case in response.json()}
    assert listed[str(case_id)]["damage_level"] == "light"
