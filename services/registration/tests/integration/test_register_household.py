"""Registration on the real database and broker: POST /households stores the household and
its outbox events reach Kafka; invalid submissions are refused before anything is written."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import HouseholdRegistered, NeedAssessed, Sector
from aidmesh_runtime.testing import EventLog, Seen

pytestmark = pytest.mark.integration


def submission(**overrides: Any) -> dict[str, Any]:
    """A field-office registration of a family of three with shelter and health needs."""
    return {
        "channel": "field_office",
        "partner_org": "DRC",
        "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312"},
        "displacement_status": "idp",
        "size": 3,
        "address": "вул. Сумська, 10, кв. 4, Харків",
        "phone": "+380 50 123 45 67",
        "members": [
            {
                "full_name": "Олена Петрівна Коваленко",
                "sex": "female",
                "date_of_birth": "1984-05-03",
                "relation": "head",
                "document_number": "ЕК123456",
            },
            {
                "full_name": "Андрій Коваленко",
                "sex": "male",
                "date_of_birth": "2012-09-01",
                "relation": "child",
            },
            {
                "full_name": "Марія Іванівна Шевчук",
                "sex": "female",
                "date_of_birth": "1950-01-20",
                "relation": "parent",
            },
        ],
        "vulnerabilities": ["female_headed"],
        "consents": ["registration", "data_sharing"],
        "needs": [
            {"sector": "shelter", "severity": 4, "details": {"damage_level": "light"}},
            {"sector": "health", "severity": 3, "details": {"services_needed": ["mhpss"]}},
        ],
    } | overrides


async def flow_on_kafka(events: EventLog, correlation_id: UUID, needs: int) -> list[Seen]:
    """HouseholdRegistered and its NeedAssessed events of one flow, as they reached Kafka."""
    return await events.wait_for(
        lambda rs: len(rs) == 1 + needs,
        select=lambda r: (
            r.envelope is not None
            and r.envelope.correlationid == correlation_id
            and r.envelope.type in (HouseholdRegistered.event_type, NeedAssessed.event_type)
        ),
        what="HouseholdRegistered and its NeedAssessed events",
    )


async def rows_written(database: asyncpg.Connection) -> dict[str, int]:
    return {
        table: await database.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("households", "members", "need_assessments", "outbox")
    }


async def test_a_registration_stores_the_household_its_members_and_needs(
    registration, database
) -> None:
    response = await registration.post("/households", json=submission())

    assert response.status_code == 201, response.text
    household_id = UUID(response.json()["household_id"])
    household = await database.fetchrow(
        "SELECT * FROM households WHERE household_id = $1", household_id
    )
    assert household is not None
    assert (household["adm1_pcode"], household["size"]) == ("UA63", 3)
    # "+380 50 123 45 67" as submitted, stored as E.164 (sealed: read back by the service).
    read = await registration.get(f"/households/{household_id}")
    assert read.json()["phone"] == "+380501234567"
    assert household["correlation_id"] == UUID(response.json()["correlation_id"])
    assert (
        await database.fetchval(
            "SELECT count(*) FROM members WHERE household_id = $1", household_id
        )
        == 3
    )
    needs = await database.fetch(
        "SELECT sector, severity FROM need_assessments WHERE household_id = $1 ORDER BY sector",
        household_id,
    )
    assert [(n["sector"], n["severity"]) for n in needs] == [("health", 3), ("shelter", 4)]


async def test_a_registration_publishes_household_registered_and_one_need_assessed_per_need(
    registration, events
) -> None:
    response = await registration.post("/households", json=submission())
    assert response.status_code == 201, response.text
    body = response.json()
    household_id, correlation_id = UUID(body["household_id"]), UUID(body["correlation_id"])

    flow = await flow_on_kafka(events, correlation_id, needs=2)

    [registered] = [r for r in flow if r.topic == "aidmesh.registration.household.v1"]
    needs = [r for r in flow if r.topic == "aidmesh.assessment.need.v1"]
    assert registered.envelope is not None
    assert registered.envelope.type == HouseholdRegistered.event_type
    assert registered.envelope.correlationid == registered.envelope.id  # it starts the flow
    assert {n.envelope.causationid for n in needs if n.envelope} == {registered.envelope.id}
    assert {n.event().sector for n in needs} == {Sector.SHELTER, Sector.HEALTH}
    assert {r.key for r in flow} == {str(household_id).encode()}
    assert {r.envelope.subject for r in flow if r.envelope} == {str(household_id)}
    # The response lists them too (after them, DuplicateSuspected: earlier tests registered
    # the same family).
    listed = [UUID(e["id"]) for e in body["events"]][: 1 + 2]
    assert {r.envelope.id for r in flow if r.envelope} == set(listed)


async def test_the_household_registered_on_kafka_carries_no_personal_data(
    registration, events
) -> None:
    response = await registration.post("/households", json=submission())
    assert response.status_code == 201, response.text

    flow = await flow_on_kafka(events, UUID(response.json()["correlation_id"]), needs=2)

    wire = b"".join(r.value or b"" for r in flow).decode()
    for personal in ["Коваленко", "Шевчук", "123 45 67", "Сумська", "ЕК123456", "1984-05-03"]:
        assert personal not in wire


async def test_the_correlation_id_header_is_honoured(registration, database, events) -> None:
    correlation_id = uuid4()

    response = await registration.post(
        "/households",
        json=submission(needs=[{"sector": "protection", "severity": 3}]),
        headers={"X-Correlation-ID": str(correlation_id)},
    )

    assert response.status_code == 201, response.text
    assert response.json()["correlation_id"] == str(correlation_id)
    household_id = UUID(response.json()["household_id"])
    assert (
        await database.fetchval(
            "SELECT correlation_id FROM households WHERE household_id = $1", household_id
        )
        == correlation_id
    )
    flow = await flow_on_kafka(events, correlation_id, needs=1)
    assert {r.event().household_id for r in flow} == {household_id}


async def test_a_registered_household_can_be_read_back(registration) -> None:
    created = await registration.post("/households", json=submission())
    household_id = created.json()["household_id"]

    response = await registration.get(f"/households/{household_id}")

    assert response.status_code == 200
    household = response.json()
    assert household["household_id"] == household_id
    assert household["members"][0]["relation"] == "head"
    assert len(household["members"]) == 3
    assert [n["sector"] for n in household["needs"]] == ["health", "shelter"]
    assert household["needs"][1]["details"]["damage_level"] == "light"


async def test_an_unknown_household_is_not_found(registration) -> None:
    response = await registration.get(f"/households/{uuid4()}")

    assert response.status_code == 404


INVALID = {
    "unknown oblast P-code": (
        submission(location={"adm1_pcode": "UA99"}),
        ["body", "location", "adm1_pcode"],
        "unknown oblast P-code 'UA99'",
    ),
    "severity 7": (
        submission(needs=[{"sector": "health", "severity": 7}]),
        ["body", "needs", 0, "severity"],
        "less than or equal to 5",
    ),
    "negative size": (
        submission(size=-3),
        ["body", "size"],
        "greater than or equal to 1",
    ),
    "date of birth in the future": (
        submission(members=[submission()["members"][0] | {"date_of_birth": "2091-05-03"}], size=1),
        ["body", "members", 0, "date_of_birth"],
        "Date should be in the past",
    ),
    "passport number of the wrong format": (
        submission(
            members=[
                submission()["members"][0]
                | {"documents": [{"kind": "passport", "number": "123-EK"}]}
                | {"document_number": None}
            ],
            size=1,
        ),
        ["body", "members", 0, "documents", 0, "number"],
        "two Cyrillic letters and six digits",
    ),
    "unreadable phone": (
        submission(phone="+380 50 123"),
        ["body", "phone"],
        "a Ukrainian number is +380 and nine digits",
    ),
    "no head of household": (
        submission(members=[{**m, "relation": "sibling"} for m in submission()["members"]]),
        ["body", "members"],
        "exactly one member must be the head of household, found 0",
    ),
}


@pytest.mark.parametrize(("body", "loc", "reason"), INVALID.values(), ids=INVALID.keys())
async def test_an_invalid_registration_is_refused_with_the_field_and_the_reason_and_nothing_is_written(
    registration, database, body: dict[str, Any], loc: list[Any], reason: str
) -> None:
    before = await rows_written(database)

    response = await registration.post("/households", json=body)

    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [loc]
    assert reason in errors[0]["msg"]
    assert await rows_written(database) == before


async def test_malformed_json_is_refused_and_nothing_is_written(registration, database) -> None:
    before = await rows_written(database)
    truncated = json.dumps(submission())[:-20]

    response = await registration.post(
        "/households", content=truncated, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["loc"][0] == "body"
    assert 0 < error["loc"][1] <= len(truncated)  # where the JSON stops making sense
    assert error["msg"] == "JSON decode error"
    assert await rows_written(database) == before


async def test_a_refusal_does_not_echo_the_submitted_personal_data(registration) -> None:
    body = submission(location={"adm1_pcode": "UA99"}, phone="not a phone")

    response = await registration.post("/households", json=body)

    assert response.status_code == 422
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", "location", "adm1_pcode"),
        ("body", "phone"),
    }
    for personal in ["Коваленко", "Шевчук", "not a phone", "Сумська", "ЕК123456", "1984-05-03"]:
        assert personal not in response.text
