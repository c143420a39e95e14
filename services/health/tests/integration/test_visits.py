"""The mobile team's reports on the real broker and database: a visit completed gives
VisitCompleted and AssistanceDelivered (clinical notes stay sealed in health's database and
go nowhere else), a no-show is rescheduled a bounded number of times, a visit moves on
request, and bad input is refused naming the field.

Each test works in oblasts of its own; see test_scheduling for why only this health's own
rows and records are looked at.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
import structlog
from aidmesh_contracts import (
    AssistanceDelivered,
    Modality,
    ReferralRequested,
    Sector,
    VisitCompleted,
    VisitMissed,
    VisitScheduled,
)
from aidmesh_health.clinical import ClinicalCipher, Sealed
from aidmesh_runtime.testing import EventLog

pytestmark = pytest.mark.integration

DAY1 = date(2026, 3, 3)
DAY2, DAY3 = DAY1 + timedelta(days=1), DAY1 + timedelta(days=2)

#: Distinctive clinical text: if it shows up anywhere outside health's clinical record, it
#: leaked.
NOTE = "Скарги на нічні кошмари після обстрілу; tremor-zebra-7781, призначено сертралін"
DIAGNOSES = ["F43.1", "G47.09"]


async def scheduled_visit(world, oblast: str, **need: object):
    household, registered = await world.household(oblast)
    need_event, need_envelope = await world.need(household, registered, **need)
    return household, need_event, need_envelope, await world.visit_for(need_event)


async def test_a_completed_visit_gives_visit_completed_and_a_delivery_per_service(
    world, health
) -> None:
    await world.team("MMT-VL-02", "UA91", capacity=4)
    household, _, need_envelope, visit = await scheduled_visit(
        world, "UA91", services=("mhpss", "vaccination")
    )
    [scheduled] = await world.published(VisitScheduled, visit_id=visit["visit_id"])

    response = await health.post(
        f"/visits/{visit['visit_id']}/completion",
        json={"services_delivered": ["mhpss", "vaccination"], "persons_seen": 2},
    )

    assert response.status_code == 200, response.text
    delivery_ids = {UUID(d) for d in response.json()["delivery_ids"]}
    [completed] = await world.published(VisitCompleted, visit_id=visit["visit_id"])
    deliveries = await world.published(
        AssistanceDelivered, count=2, household_id=household.household_id
    )
    assert completed.envelope is not None and scheduled.envelope is not None
    assert completed.envelope.causationid == scheduled.envelope.id
    assert scheduled.envelope.causationid == need_envelope.id
    visit_done = completed.event()
    assert isinstance(visit_done, VisitCompleted)
    assert (visit_done.team_code, visit_done.persons_seen) == ("MMT-VL-02", 2)
    assert visit_done.services_delivered == {"mhpss", "vaccination"}
    assert {d.event().delivery_id for d in deliveries} == delivery_ids
    assert sorted(d.event().activity for d in deliveries) == ["health.mhpss", "health.vaccination"]
    for seen in deliveries:
        delivered = seen.event()
        assert isinstance(delivered, AssistanceDelivered)
        assert seen.envelope is not None and seen.envelope.causationid == completed.envelope.id
        assert seen.envelope.correlationid == need_envelope.correlationid
        assert (delivered.sector, delivered.modality) == (Sector.HEALTH, Modality.SERVICE)
        assert delivered.partner_org == "IOM"  # the reporting token's organisation
        assert (delivered.quantity, delivered.unit, delivered.persons_reached) == (
            Decimal(1),
            "visit",
            2,
        )
        assert seen.topic == "aidmesh.assistance.delivered.v1"
    listed = await health.get("/visits", params={"household_id": str(household.household_id)})
    [row] = listed.json()
    assert (row["status"], row["persons_seen"]) == ("completed", 2)
    assert {UUID(d) for d in row["delivery_ids"]} == delivery_ids

    again = await health.post(
        f"/visits/{visit['visit_id']}/completion",
        json={"services_delivered": ["mhpss"], "persons_seen": 2},
    )
    assert again.status_code == 409
    assert await world.outbox_count(VisitCompleted, visit_id=str(visit["visit_id"])) == 1


async def test_clinical_notes_and_diagnoses_stay_sealed_in_health_and_never_leave_it(
    world, health, database, settings, events: EventLog, caplog
) -> None:
    """Nothing of the clinical record on any topic, in any outbox row, log line or answer:
    the whole flow from the need to a completion with notes and a referral is watched."""
    await world.team("MMT-ZH-02", "UA92", capacity=4)
    caplog.set_level(logging.DEBUG)
    start = len(events.records)
    with structlog.testing.capture_logs() as logs:
        household, _, _, visit = await scheduled_visit(world, "UA92", services=("mhpss",))
        visit_id = visit["visit_id"]
        completion = await health.post(
            f"/visits/{visit_id}/completion",
            json={
                "services_delivered": ["mhpss"],
                "persons_seen": 1,
                "clinical_notes": NOTE,
                "diagnoses": DIAGNOSES,
            },
        )
        referral = await health.post(
            f"/visits/{visit_id}/referrals",
            json={"to": "protection", "reason_code": "mhpss", "urgency": "priority"},
        )
        read_back = [
            await health.get(f"/visits/{visit_id}"),
            await health.get("/visits", params={"household_id": str(household.household_id)}),
            await health.get("/referrals", params={"household_id": str(household.household_id)}),
        ]
        await world.published(AssistanceDelivered, household_id=household.household_id)
        await world.published(ReferralRequested, household_id=household.household_id)
    assert (completion.status_code, referral.status_code) == (200, 201)

    secrets = [NOTE, "tremor-zebra-7781", "сертралін", *DIAGNOSES]
    outbox = await database.conn.fetch("SELECT topic, key, headers::text, payload FROM outbox")
    wire = [
        (r.value or b"").decode("utf-8", "replace") + json.dumps(r.headers, ensure_ascii=False)
        for r in events.records[start:]
    ]
    logged = [json.dumps(entry, default=str, ensure_ascii=False) for entry in logs]
    logged += [record.getMessage() for record in caplog.records]
    answers = [completion.text, referral.text, *(r.text for r in read_back)]
    assert len(outbox) > 0 and len(wire) > 0 and len(logged) > 0
    for secret in secrets:
        for row in outbox:
            assert secret not in row["headers"] + row["payload"].decode(), "outbox leaks"
        assert not [w for w in wire if secret in w], f"Kafka leaks {secret!r}"
        assert not [line for line in logged if secret in line], f"a log line leaks {secret!r}"
        assert not [a for a in answers if secret in a], f"an API answer leaks {secret!r}"

    # The record is in health's database, sealed: unreadable there, readable with the key.
    row = await database.conn.fetchrow(
        "SELECT key_id, sealed FROM clinical_records WHERE visit_id = $1", visit_id
    )
    assert NOTE.encode() not in bytes(row["sealed"])
    assert b"F43.1" not in bytes(row["sealed"])
    cipher = ClinicalCipher(settings.clinical_key.get_secret_value())
    record = cipher.open(visit_id, Sealed(row["key_id"], bytes(row["sealed"])))
    assert (record.notes, list(record.diagnoses)) == (NOTE, DIAGNOSES)


async def test_a_no_show_is_rescheduled_and_after_three_the_request_closes(world, health) -> None:
    await world.team("MMT-LH-01", "UA93", capacity=1)
    _, need, _, visit = await scheduled_visit(world, "UA93")
    assert visit["scheduled_for"] == DAY1

    first = await health.post(f"/visits/{visit['visit_id']}/no-show", json={})

    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "rescheduled"
    assert first.json()["scheduled_for"] == str(DAY2)
    new_id = UUID(first.json()["new_visit_id"])
    [missed] = await world.published(VisitMissed, visit_id=visit["visit_id"])
    [again] = await world.published(VisitScheduled, visit_id=new_id)
    assert missed.event().reason_code == "no_show"  # type: ignore[attr-defined]
    rescheduled = again.event()
    assert isinstance(rescheduled, VisitScheduled)
    assert (rescheduled.rescheduled_from, rescheduled.scheduled_for) == (visit["visit_id"], DAY2)
    assert again.envelope is not None and missed.envelope is not None
    assert again.envelope.causationid == missed.envelope.id

    second = await health.post(f"/visits/{new_id}/no-show", json={"reason_code": "no_access"})
    assert (second.json()["outcome"], second.json()["scheduled_for"]) == ("rescheduled", str(DAY3))
    third = await health.post(f"/visits/{second.json()['new_visit_id']}/no-show")

    assert third.json() == {
        "visit_id": second.json()["new_visit_id"],
        "outcome": "closed",
        "new_visit_id": None,
        "scheduled_for": None,
    }
    request = await world.database.conn.fetchrow(
        "SELECT status, closed_reason, missed_visits FROM visit_requests"
        " WHERE need_assessment_id = $1",
        need.assessment_id,
    )
    assert dict(request) == {
        "status": "closed",
        "closed_reason": "household_not_reached",
        "missed_visits": 3,
    }
    missed_again = await health.post(f"/visits/{visit['visit_id']}/no-show")
    assert missed_again.status_code == 409


async def test_a_scheduled_visit_is_moved_to_a_later_day_on_request(world, health) -> None:
    await world.team("MMT-PL-02", "UA94", capacity=2)
    _, _, _, visit = await scheduled_visit(world, "UA94")

    moved = await health.post(
        f"/visits/{visit['visit_id']}/reschedule",
        json={"reason_code": "household_request", "on_or_after": str(DAY3)},
    )

    assert moved.status_code == 200, moved.text
    assert moved.json()["scheduled_for"] == str(DAY3)
    assert moved.json()["rescheduled_from"] == str(visit["visit_id"])
    [seen] = await world.published(VisitScheduled, visit_id=moved.json()["visit_id"])
    assert seen.event().rescheduled_from == visit["visit_id"]  # type: ignore[attr-defined]
    old = (await health.get(f"/visits/{visit['visit_id']}")).json()
    assert (old["status"], old["missed_reason"]) == ("rescheduled", "household_request")


async def test_a_visit_cannot_move_where_no_team_has_room(world, health) -> None:
    await world.team("MMT-RV-01", "UA95", capacity=1)
    visits = [(await scheduled_visit(world, "UA95"))[3] for _ in range(3)]  # the horizon is full

    refused = await health.post(
        f"/visits/{visits[0]['visit_id']}/reschedule",
        json={"reason_code": "household_request", "on_or_after": str(DAY2)},
    )

    assert refused.status_code == 409
    assert "no team serving UA95 has room" in refused.json()["detail"]
    kept = (await health.get(f"/visits/{visits[0]['visit_id']}")).json()
    assert (kept["status"], kept["scheduled_for"]) == ("scheduled", str(DAY1))


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        ("/teams", {"home_oblast": "UA99"}, ["body", "home_oblast"], "unknown oblast P-code"),
        ("/teams", {"daily_capacity": 0}, ["body", "daily_capacity"], "greater than or equal to 1"),
        ("/teams", {"services": ["dentistry"]}, ["body", "services"], "unknown service code"),
        ("/teams", {"team_code": "mmt lower"}, ["body", "team_code"], "should match pattern"),
        ("completion", {"persons_seen": 0}, ["body", "persons_seen"], "greater than or equal to 1"),
        ("completion", {"diagnoses": ["not a code"]}, ["body", "diagnoses", 0], "match pattern"),
        ("completion", {"services_delivered": []}, ["body", "services_delivered"], "at least 1"),
        (
            "completion",
            {"services_delivered": ["srh"]},
            ["body", "services_delivered"],
            "does not offer srh",
        ),
        ("completion", {"clinical_notes": NOTE * 300}, ["body", "clinical_notes"], "at most 20000"),
        ("no-show", {"reason_code": "bored"}, ["body", "reason_code"], "Input should be"),
        ("referrals", {"to": "housing"}, ["body", "to"], "unknown referral target"),
        (
            "referrals",
            {"reason_code": "depression"},
            ["body", "reason_code"],
            "unknown referral reason",
        ),
        ("referrals", {"urgency": "asap"}, ["body", "urgency"], "Input should be"),
        ("reschedule", {"on_or_after": "someday"}, ["body", "on_or_after"], "valid date"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored_or_published(
    world, health, database, path: str, body: dict, field: list, reason: str
) -> None:
    defaults = {
        "/teams": {
            "team_code": "MMT-XX-01",
            "home_oblast": "UA96",
            "daily_capacity": 2,
            "services": ["mhpss"],
        },
        "completion": {"services_delivered": ["mhpss"], "persons_seen": 1},
        "no-show": {},
        "referrals": {"to": "protection", "reason_code": "mhpss"},
        "reschedule": {"reason_code": "household_request"},
    }
    await world.team("MMT-TR-01", "UA96", capacity=10, services=("mhpss",))
    _, _, _, visit = await scheduled_visit(world, "UA96")
    url = path if path.startswith("/") else f"/visits/{visit['visit_id']}/{path}"
    counts = "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM teams), (SELECT count(*) FROM clinical_records)"
    before = await database.conn.fetchrow(counts)

    response = await health.post(url, json=defaults[path] | body)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(field)] == field and reason in e["msg"] for e in errors), errors
    assert NOTE not in response.text  # refused input is never echoed
    assert await database.conn.fetchrow(counts) == before
    unchanged = (await health.get(f"/visits/{visit['visit_id']}")).json()
    assert unchanged["status"] == "scheduled"


async def test_a_capacity_window_ending_before_it_starts_is_refused(health) -> None:
    response = await health.get("/capacity", params={"from": "2026-03-05", "to": "2026-03-03"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "to"]


async def test_an_unknown_visit_is_not_found(health) -> None:
    response = await health.post(
        f"/visits/{uuid4()}/completion", json={"services_delivered": ["mhpss"], "persons_seen": 1}
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/visits", {"offset": str(2**63)}, "offset"),
        ("/referrals", {"offset": str(2**63)}, "offset"),
        ("/capacity", {"from": "9999-12-31"}, "from"),
        ("/capacity", {"from": "0"}, "from"),  # not read as 1970-01-01
        ("/visits", {"to": "20260303"}, "to"),
    ],
)
async def test_a_query_beyond_what_the_database_holds_is_refused_by_name(
    health, path, params, name
) -> None:
    response = await health.get(path, params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


async def test_the_largest_offset_is_an_empty_page(health) -> None:
    response = await health.get("/visits", params={"offset": str(2**63 - 1)})

    assert (response.status_code, response.json()) == (200, [])
