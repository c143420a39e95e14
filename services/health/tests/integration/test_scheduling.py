"""Scheduling on the real broker and database: health needs become visits, most urgent first,
within each team's daily capacity and oblasts; what does not fit waits in the backlog until
a team or a day has room.

Copies of the services started by `make up` may consume the same topics and react to these
events too, so a test only looks at what its own in-process health did: rows of its database
and the Kafka records those rows name. Each test works in oblasts of its own.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from aidmesh_contracts import NeedAssessed, Sector, ShelterNeedDetails, VisitScheduled
from aidmesh_runtime.testing import publish

pytestmark = pytest.mark.integration

DAY1 = date(2026, 3, 3)  # the clock says 2026-03-02 in Kyiv: teams plan from tomorrow
DAY2, DAY3, DAY4 = (DAY1 + timedelta(days=n) for n in (1, 2, 3))


async def test_when_a_team_arrives_the_two_most_urgent_needs_take_day_one_and_the_third_day_two(
    world, health
) -> None:
    needs = {}
    for severity in (2, 5, 4):  # the least urgent first: arrival order must not matter
        household, registered = await world.household("UA90")
        needs[severity] = await world.need(household, registered, severity=severity)
    waiting = (await health.get("/capacity")).json()["backlog"]
    assert {"adm1_pcode": "UA90", "reason": "no_team_for_area", "requests": 3} in [
        {k: row[k] for k in ("adm1_pcode", "reason", "requests")} for row in waiting
    ]

    saved = await world.team("MMT-VN-01", "UA90", capacity=2)

    assert saved["visits_scheduled"] == 3
    visits = {s: await world.visit_for(need) for s, (need, _) in needs.items()}
    assert {s: v["scheduled_for"] for s, v in visits.items()} == {5: DAY1, 4: DAY1, 2: DAY2}
    assert {v["team_code"] for v in visits.values()} == {"MMT-VN-01"}
    for severity, (need, need_envelope) in needs.items():
        [seen] = await world.published(VisitScheduled, visit_id=visits[severity]["visit_id"])
        scheduled = seen.event()
        assert isinstance(scheduled, VisitScheduled)
        assert (scheduled.household_id, scheduled.scheduled_for) == (
            need.household_id,
            visits[severity]["scheduled_for"],
        )
        assert scheduled.services_planned == {"mhpss"}
        assert seen.envelope is not None and seen.envelope.causationid == need_envelope.id
        assert seen.envelope.correlationid == need_envelope.correlationid
    assert visits[5]["priority"] < visits[4]["priority"] < visits[2]["priority"]


async def test_a_need_is_scheduled_as_it_arrives_when_a_team_has_room(world) -> None:
    await world.team("MMT-VL-01", "UA91", capacity=3)
    household, registered = await world.household("UA91", vulnerabilities=("disability",))

    need, _ = await world.need(household, registered, severity=3, services=("vaccination",))

    visit = await world.visit_for(need)
    assert (visit["scheduled_for"], visit["team_code"]) == (DAY1, "MMT-VL-01")
    assert visit["services_planned"] == ["vaccination"]
    assert visit["adm1_pcode"] == "UA91"


async def test_a_team_only_serves_its_oblasts_and_the_services_it_offers(world, database) -> None:
    await world.team("MMT-ZH-01", "UA92", capacity=5, services=("primary_consultation",))
    elsewhere, registered = await world.household("UA93")
    outside, _ = await world.need(elsewhere, registered)
    here, registered_here = await world.household("UA92")
    unoffered, _ = await world.need(here, registered_here, services=("srh",))

    reasons = {
        row["need_assessment_id"]: row["backlog_reason"]
        for row in await database.conn.fetch(
            "SELECT need_assessment_id, backlog_reason FROM visit_requests"
            " WHERE need_assessment_id = ANY($1::uuid[])",
            [outside.assessment_id, unoffered.assessment_id],
        )
    }

    assert reasons == {
        outside.assessment_id: "no_team_for_area",
        unoffered.assessment_id: "no_team_for_service",
    }
    assert not await database.conn.fetchval(
        "SELECT count(*) FROM visits WHERE household_id = ANY($1::uuid[])",
        [elsewhere.household_id, here.household_id],
    )


async def test_capacity_shows_each_team_day_and_the_backlog_and_a_new_day_brings_room(
    world, health, clock
) -> None:
    await world.team("MMT-KR-01", "UA94", capacity=1)
    needs = []
    for _ in range(4):
        household, registered = await world.household("UA94")
        needs.append(await world.need(household, registered, severity=3))
    # One a day for the three days of the horizon; the fourth waits.
    days = [(await world.visit_for(need))["scheduled_for"] for need, _ in needs[:3]]
    assert days == [DAY1, DAY2, DAY3]

    view = (await health.get("/capacity", params={"from": "2026-03-03", "to": "2026-03-05"})).json()

    [team] = [t for t in view["teams"] if t["team_code"] == "MMT-KR-01"]
    assert team["days"] == [
        {"date": str(day), "scheduled": 1, "capacity": 1, "free": 0} for day in (DAY1, DAY2, DAY3)
    ]
    [waiting] = [b for b in view["backlog"] if b["adm1_pcode"] == "UA94"]
    assert (waiting["reason"], waiting["requests"]) == ("no_capacity", 1)

    clock.now += timedelta(days=1)  # the day rolls: the horizon now ends on DAY4
    try:
        run = await health.post("/scheduling/run")
        assert run.status_code == 200
        assert run.json()["visits_scheduled"] >= 1
        last = await world.visit_for(needs[3][0])
        assert last["scheduled_for"] == DAY4
    finally:
        clock.now -= timedelta(days=1)


async def test_a_team_can_be_replaced_and_teams_are_listed(health) -> None:
    body = {
        "team_code": "MMT-PL-01",
        "home_oblast": "UA95",
        "oblasts": ["UA94"],
        "daily_capacity": 4,
        "services": ["mhpss"],
    }
    created = await health.post("/teams", json=body)
    replaced = await health.post("/teams", json=body | {"daily_capacity": 6, "active": False})

    assert (created.status_code, replaced.status_code) == (201, 200)
    listed = {t["team_code"]: t for t in (await health.get("/teams")).json()}
    assert listed["MMT-PL-01"] == {
        "team_code": "MMT-PL-01",
        "home_oblast": "UA95",
        "oblasts": ["UA94", "UA95"],
        "daily_capacity": 6,
        "services": ["mhpss"],
        "active": False,
    }


async def test_a_need_of_another_sector_does_nothing(world, producer, database) -> None:
    household, registered = await world.household("UA90")
    shelter_need = NeedAssessed(
        assessment_id=household.household_id,
        household_id=household.household_id,
        sector=Sector.SHELTER,
        severity=4,
        assessed_at=household.registered_at,
        assessed_by="IOM-KH-03",
        details=ShelterNeedDetails(damage_level="medium"),
    )
    need_envelope = await publish(producer, shelter_need, caused_by=registered)

    await database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1",
        need_envelope.id,
        what="the shelter need consumed",
    )

    assert not await database.conn.fetchval(
        "SELECT count(*) FROM visit_requests WHERE household_id = $1", household.household_id
    )
    assert not await database.conn.fetchval(
        "SELECT count(*) FROM outbox WHERE headers @> $1::jsonb",
        json.dumps([["ce_correlationid", str(registered.correlationid)]]),
    )
