"""A household registered over HTTP flows through every sector to AssistanceDelivered."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from aidmesh_contracts import EVENT_TYPES
from aidmesh_runtime.auth import SHELTER_WRITE
from aidmesh_runtime.testing import EventLog, Seen

pytestmark = pytest.mark.e2e

REGISTERED = "org.aidmesh.registration.household.registered.v1"
NEED = "org.aidmesh.assessment.need.assessed.v1"
CASE_OPENED = "org.aidmesh.shelter.case.opened.v1"
REPAIRED = "org.aidmesh.shelter.repair.completed.v1"
DAMAGE_ASSESSED = "org.aidmesh.shelter.damage.assessed.v1"
REPAIR_PLANNED = "org.aidmesh.shelter.repair.planned.v1"
CASE_CLOSED = "org.aidmesh.shelter.case.closed.v1"
VISIT_SCHEDULED = "org.aidmesh.health.visit.scheduled.v1"
VISIT = "org.aidmesh.health.visit.completed.v1"
PROTECTION = "org.aidmesh.protection.case.opened.v1"
DELIVERED = "org.aidmesh.assistance.assistance.delivered.v1"

NAME = "Ярослава Богданівна Шевчук-Затонська"
CHILD_NAME = "Тарас Шевчук-Затонський"
PHONE = "+380671234599"
DOCUMENT = "ЕН987654"
ADDRESS = "вул. Сумська 17, кв. 42, Харків"


def household(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "field_office",
        "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312"},
        "displacement_status": "idp",
        "size": 2,
        "address": ADDRESS,
        "phone": PHONE,
        "members": [
            {
                "full_name": NAME,
                "sex": "female",
                "date_of_birth": "1979-11-04",
                "relation": "head",
                "document_number": DOCUMENT,
            },
            {
                "full_name": CHILD_NAME,
                "sex": "male",
                "date_of_birth": "2014-02-19",
                "relation": "child",
            },
        ],
        "vulnerabilities": ["female_headed"],
        "consents": ["registration", "data_sharing", "referral"],
        "needs": [
            {"sector": "shelter", "severity": 4, "details": {"damage_level": "light"}},
            {"sector": "health", "severity": 3, "details": {"services_needed": ["mhpss"]}},
            {"sector": "protection", "severity": 4, "details": {"concern_codes": ["gbv_risk"]}},
        ],
    }
    body.update(overrides)
    return body


async def register(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(url + "/households", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def of_type(records: list[Seen], event_type: str) -> list[Seen]:
    return [r for r in records if r.envelope and r.envelope.type == event_type]


def one(records: list[Seen], event_type: str, **payload: Any) -> Seen:
    matches = [
        r
        for r in of_type(records, event_type)
        if all(getattr(r.event(), k) == v for k, v in payload.items())
    ]
    assert len(matches) == 1, f"expected one {event_type} {payload}, found {len(matches)}"
    return matches[0]


async def open_case_id(http: httpx.AsyncClient, url: str, household_id: str) -> str:
    cases = (await http.get(url + "/cases", params={"status": "open"})).json()
    return next(c["case_id"] for c in cases if c["household_id"] == household_id)


async def test_a_registration_flows_to_assistance_delivered_as_linked_cloudevents(
    platform: Any, events: EventLog, http: httpx.AsyncClient
) -> None:
    registered = await register(http, platform.url("registration"), household())
    household_id = registered["household_id"]
    flow = UUID(registered["correlation_id"])

    await events.wait_for(
        lambda rs: (
            {REGISTERED, NEED, CASE_OPENED, VISIT_SCHEDULED, PROTECTION}
            <= {r.envelope.type for r in rs}
        ),
        select=lambda r: r.envelope is not None and r.envelope.correlationid == flow,
        what="registration, needs, shelter case, health visit scheduled, protection case",
    )
    case_id = await open_case_id(http, platform.url("shelter"), household_id)
    # The shelter engineer assesses, the coordinator plans, the engineer reports it done.
    # The assessment is the engineers' team's, with its own token (ADR 0009).
    shelter_case = f"{platform.url('shelter')}/cases/{case_id}"
    assessed = await http.post(
        shelter_case + "/assessment",
        json={
            "damage_level": "light",
            "assessed_by": "ENG-KH-01",
            "boq": [
                {
                    "item_code": "window.pvc_double",
                    "quantity": "5",
                    "unit": "pcs",
                    "unit_cost_uah": "2900.10",
                }
            ],
        },
        headers=platform.token(SHELTER_WRITE, org="ENG-KH-01", sub="user:engineer-kh-01"),
    )
    assert assessed.status_code == 200, assessed.text
    planned = await http.post(shelter_case + "/plan", json={"modality": "voucher"})
    assert planned.status_code == 200, planned.text
    completion = await http.post(
        shelter_case + "/repair-completion",
        json={"value_uah": "14250.50", "inspection_passed": True},
    )
    assert completion.status_code == 200, completion.text
    # The mobile medical team reports its visit done, as the shelter engineer did the repair.
    health = platform.url("health")
    visits = await http.get(health + "/visits", params={"household_id": household_id})
    [visit_id] = [v["visit_id"] for v in visits.json()]
    visited = await http.post(
        f"{health}/visits/{visit_id}/completion",
        json={"services_delivered": ["mhpss"], "persons_seen": 2},
    )
    assert visited.status_code == 200, visited.text
    records = await events.wait_for(
        lambda rs: (
            len(of_type(rs, DELIVERED)) == 2
            and len(of_type(rs, REPAIRED)) == 1
            and len(of_type(rs, CASE_CLOSED)) == 1
            and len(of_type(rs, VISIT)) == 1
        ),
        select=lambda r: r.envelope is not None and r.envelope.correlationid == flow,
        what="the shelter repair, the completed visit and their deliveries",
    )

    counts = Counter(r.envelope.type for r in records)
    assert counts == {
        REGISTERED: 1,
        NEED: 3,
        CASE_OPENED: 1,
        DAMAGE_ASSESSED: 1,
        REPAIR_PLANNED: 1,
        REPAIRED: 1,
        CASE_CLOSED: 1,
        VISIT_SCHEDULED: 1,
        VISIT: 1,
        PROTECTION: 1,
        DELIVERED: 2,
    }
    # CloudEvents binary mode: every record carries the attributes as headers, the key is
    # the household id, and the value is the contract's JSON.
    for record in records:
        headers = record.headers
        assert headers["ce_specversion"] == "1.0"
        assert UUID(headers["ce_id"])
        assert re.fullmatch(
            r"/aidmesh/(registration|shelter|health|protection)", headers["ce_source"]
        )
        assert headers["ce_type"] in EVENT_TYPES
        assert headers["ce_subject"] == household_id
        assert headers["ce_time"]
        assert headers["content-type"] == "application/json"
        assert headers["ce_dataschema"] == f"urn:aidmesh:schema:{headers['ce_type']}"
        assert headers["ce_correlationid"] == str(flow)
        assert record.key == household_id.encode()
        assert str(record.event().household_id) == household_id

    # Causation: each event names the event that caused it.
    reg = one(records, REGISTERED)
    shelter_need = one(records, NEED, sector="shelter")
    health_need = one(records, NEED, sector="health")
    protection_need = one(records, NEED, sector="protection")
    case_opened = one(records, CASE_OPENED)
    damage_assessed = one(records, DAMAGE_ASSESSED)
    repair_planned = one(records, REPAIR_PLANNED)
    repaired = one(records, REPAIRED)
    case_closed = one(records, CASE_CLOSED)
    visit_scheduled = one(records, VISIT_SCHEDULED)
    visit = one(records, VISIT)
    protection_case = one(records, PROTECTION)
    shelter_delivery = one(records, DELIVERED, sector="shelter")
    health_delivery = one(records, DELIVERED, sector="health")

    def cause(record: Seen) -> UUID | None:
        return record.envelope.causationid

    assert cause(reg) is None
    for need in (shelter_need, health_need, protection_need):
        assert cause(need) == reg.envelope.id
    assert cause(case_opened) == shelter_need.envelope.id
    assert cause(damage_assessed) == case_opened.envelope.id
    assert cause(repair_planned) == damage_assessed.envelope.id
    assert cause(repaired) == repair_planned.envelope.id
    assert cause(shelter_delivery) == repaired.envelope.id
    assert cause(case_closed) == repaired.envelope.id
    assert cause(visit_scheduled) == health_need.envelope.id
    assert cause(visit) == visit_scheduled.envelope.id
    assert cause(health_delivery) == visit.envelope.id
    assert cause(protection_case) == protection_need.envelope.id

    # The deliveries are what donors count: value in UAH as an exact decimal.
    shelter = shelter_delivery.event()
    assert shelter.activity == "shelter.light_repair"
    assert str(shelter.value.amount) == "14250.50"
    assert shelter.persons_reached == 2
    assert health_delivery.event().activity.startswith("health.")
    assert protection_case.topic == "aidmesh.protection.case.v1"
    assert re.fullmatch(r"PRT-[0-9A-Z]{10}", protection_case.event().case_ref)


@pytest.mark.parametrize(
    ("case", "body", "field", "reason"),
    [
        (
            "unknown P-code",
            household(location={"adm1_pcode": "UA99"}),
            ["body", "location", "adm1_pcode"],
            "unknown oblast P-code",
        ),
        (
            "severity 7",
            household(needs=[{"sector": "shelter", "severity": 7}]),
            ["body", "needs", 0, "severity"],
            "less than or equal to 5",
        ),
        (
            "negative size",
            household(size=-2),
            ["body", "size"],
            "greater than or equal to 1",
        ),
        ("malformed JSON", '{"channel": "field_office", "size": 2,', ["body"], "JSON decode error"),
    ],
)
async def test_a_bad_registration_gets_422_naming_the_field_and_nothing_is_stored_or_published(
    platform: Any,
    events: EventLog,
    http: httpx.AsyncClient,
    case: str,
    body: dict[str, Any] | str,
    field: list[Any],
    reason: str,
) -> None:
    conn = await asyncpg.connect(platform.dsn("registration"))
    try:
        before = await _counts(conn)
        content = body if isinstance(body, str) else json.dumps(body)
        response = await http.post(
            platform.url("registration") + "/households",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, case
        errors = response.json()["detail"]
        assert any(e["loc"][: len(field)] == field and reason in e["msg"] for e in errors), errors
        assert await _counts(conn) == before  # no household, no member, no outbox row
    finally:
        await conn.close()
    # And nothing reached the broker: a good registration sent afterwards is published
    # (the relay publishes in order), and no other registration appeared meanwhile.
    start = len(events.records)
    marker = await register(http, platform.url("registration"), household(needs=[]))
    new = await events.wait_for(
        lambda rs: any(r.envelope.subject == marker["household_id"] for r in rs),
        select=lambda r: r.envelope is not None and r.envelope.source == "/aidmesh/registration",
        what="the marker registration",
    )
    published_since = [r for r in new if r in events.records[start:]]
    assert {r.envelope.subject for r in published_since} == {marker["household_id"]}


async def _counts(conn: asyncpg.Connection) -> tuple[int, int, int, int]:
    return (
        await conn.fetchval("SELECT count(*) FROM households"),
        await conn.fetchval("SELECT count(*) FROM members"),
        await conn.fetchval("SELECT count(*) FROM need_assessments"),
        await conn.fetchval("SELECT count(*) FROM outbox"),
    )


async def test_household_events_carry_no_names_phones_documents_or_addresses(
    platform: Any, events: EventLog, http: httpx.AsyncClient
) -> None:
    registered = await register(http, platform.url("registration"), household())
    flow = UUID(registered["correlation_id"])
    records = await events.wait_for(
        lambda rs: len(of_type(rs, NEED)) == 3 and len(of_type(rs, REGISTERED)) == 1,
        select=lambda r: r.envelope is not None and r.envelope.correlationid == flow,
        what="HouseholdRegistered and three NeedAssessed",
    )
    personal = [NAME, CHILD_NAME, PHONE, DOCUMENT, ADDRESS, "Шевчук", "1979-11-04", "2014-02-19"]
    personal += [PHONE.removeprefix("+"), PHONE[-9:]]  # the phone in any format
    for record in records:
        wire = (record.value or b"").decode() + json.dumps(record.headers, ensure_ascii=False)
        for secret in personal:
            assert secret not in wire, f"{record.envelope.type} leaks {secret!r}"
    # The registry itself has them: the data was not simply missing from the request.
    household_record = (
        await http.get(f"{platform.url('registration')}/households/{registered['household_id']}")
    ).json()
    assert household_record["phone"] == PHONE
    assert {m["full_name"] for m in household_record["members"]} == {NAME, CHILD_NAME}


async def test_a_refused_registration_does_not_echo_personal_data_back(
    platform: Any, http: httpx.AsyncClient
) -> None:
    response = await http.post(platform.url("registration") + "/households", json=household(size=3))

    assert response.status_code == 422
    assert "size is 3 but 2 members are listed" in response.text
    for secret in (NAME, PHONE, DOCUMENT, ADDRESS):
        assert secret not in response.text
