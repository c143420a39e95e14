"""The demo's HTTP side (registration client, shelter field engineer) against fake APIs."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal
from uuid import uuid4

import httpx
from aidmesh_ops.demo import ShelterEngineer, refusal_reason, register_all
from aidmesh_ops.demo_data import RepairPlan, generate_households

HOUSEHOLDS = generate_households(4, seed=5, today=date(2026, 11, 23))


async def test_registered_households_are_remembered_and_refusals_reported() -> None:
    def registration(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body == HOUSEHOLDS[1].registration_body():
            return httpx.Response(
                422,
                json={
                    "detail": [
                        {
                            "loc": ["body", "members", 0, "full_name"],
                            "msg": "String should have at least 2 characters",
                            "input": body["members"][0]["full_name"],
                        }
                    ]
                },
            )
        return httpx.Response(
            201, json={"household_id": str(uuid4()), "correlation_id": str(uuid4()), "events": []}
        )

    registered, refused, done = [], [], []
    async with httpx.AsyncClient(transport=httpx.MockTransport(registration)) as http:
        await register_all(
            http,
            "http://registration",
            HOUSEHOLDS,
            on_registered=lambda h, hid, cid: registered.append(h.index),
            on_refused=lambda h, status, why: refused.append((h.index, status, why)),
            on_done=lambda: done.append(1),
        )
    assert sorted(registered) == [0, 2, 3]
    [(index, status, why)] = refused
    assert (index, status) == (1, 422)
    assert "members.0.full_name" in why
    assert HOUSEHOLDS[1].members[0].full_name not in why, "a refusal must not echo personal data"
    assert len(done) == 4


def test_a_refusal_without_json_shows_the_text() -> None:
    assert refusal_reason(httpx.Response(500, text="Internal Server Error")) == (
        "Internal Server Error"
    )


async def test_the_engineer_reports_repairs_of_open_cases_only_once() -> None:
    household_id, other_id, case_id = str(uuid4()), str(uuid4()), str(uuid4())
    posted = []

    def shelter(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            assert request.url.params["status"] == "open"
            cases = [
                {"case_id": case_id, "household_id": household_id, "damage_level": "light"},
                {"case_id": str(uuid4()), "household_id": other_id, "damage_level": "heavy"},
            ]
            open_cases = [c for c in cases if c["case_id"] not in {p[0] for p in posted}]
            return httpx.Response(200, json=open_cases)
        posted.append((request.url.path.split("/")[2], json.loads(request.content)))
        return httpx.Response(200, json={"case_id": case_id, "delivery_id": str(uuid4())})

    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(shelter)) as http:
        engineer = ShelterEngineer(http, "http://shelter", say=lambda _: None, poll_s=0.05)
        engineer.expect(household_id, RepairPlan("light", "voucher", Decimal("12500.00")))
        await asyncio.wait_for(engineer.run(stop, registration_done), timeout=5)
    assert posted == [
        (
            case_id,
            {
                "category": "light",
                "modality": "voucher",
                "value_uah": "12500.00",
                "partner_org": "IOM",
            },
        )
    ]
    assert engineer.reported == 1


async def test_the_engineer_says_when_shelter_is_down_and_keeps_trying() -> None:
    said = []
    attempts = []

    def down(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ConnectError("connection refused", request=request)

    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        engineer = ShelterEngineer(http, "http://shelter", say=said.append, poll_s=0.05)
        household_id = str(uuid4())
        engineer.expect(household_id, RepairPlan("medium", "in_kind", Decimal("30000.00")))
        task = asyncio.create_task(engineer.run(stop, registration_done))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert len(attempts) >= 2
    assert len(said) == 1 and "not reachable at http://shelter" in said[0]
    explanation = engineer.explain({household_id})
    assert explanation is not None and "unreachable" in explanation


async def test_a_refused_repair_report_is_not_retried() -> None:
    household_id, case_id = str(uuid4()), str(uuid4())
    posts = []

    def shelter(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[{"case_id": case_id, "household_id": household_id}])
        posts.append(1)
        return httpx.Response(409, json={"detail": "case is not open"})

    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(shelter)) as http:
        engineer = ShelterEngineer(http, "http://shelter", say=lambda _: None, poll_s=0.05)
        engineer.expect(household_id, RepairPlan("light", "in_kind", Decimal("9000.00")))
        await asyncio.wait_for(engineer.run(stop, registration_done), timeout=5)
    assert posts == [1]
    assert "409" in engineer.failed[household_id]


async def test_the_engineer_finds_its_case_pages_away_behind_older_open_cases() -> None:
    household_id, case_id = str(uuid4()), str(uuid4())
    older = [{"case_id": str(uuid4()), "household_id": str(uuid4())} for _ in range(1200)]
    open_cases = [*older, {"case_id": case_id, "household_id": household_id}]
    posted = []

    def shelter(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            limit = int(request.url.params["limit"])
            offset = int(request.url.params["offset"])
            return httpx.Response(200, json=open_cases[offset : offset + limit])
        posted.append(request.url.path)
        return httpx.Response(200, json={"case_id": case_id, "delivery_id": str(uuid4())})

    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(shelter)) as http:
        engineer = ShelterEngineer(http, "http://shelter", say=lambda _: None, poll_s=0.05)
        engineer.expect(household_id, RepairPlan("medium", "voucher", Decimal("41000.00")))
        await asyncio.wait_for(engineer.run(stop, registration_done), timeout=5)
    assert posted == [f"/cases/{case_id}/repair-completion"]
