"""The demo's HTTP side (registration client, shelter field engineer and coordinator)
against fake APIs."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import httpx
from aidmesh_ops import tokens
from aidmesh_ops.demo import (
    HEAVY_ASSESSMENT,
    DemoTokens,
    ShelterCoordinator,
    ShelterEngineer,
    refusal_reason,
    register_all,
)
from aidmesh_ops.demo_data import RepairPlan, generate_households
from aidmesh_runtime.auth import (
    SHELTER_RECORD_FOR_PARTNERS,
    TokenVerifier,
    attributed,
    keys_from_file,
)

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


class FakeShelter:
    """Shelter's case API in memory: cases move open → assessed → planned → repaired (or
    referred / awaiting_consent for heavy damage) as the engineer posts its steps."""

    def __init__(self, cases: list[dict[str, str]], *, heavy_answer: str = "referred") -> None:
        self.cases = {c["case_id"]: {"status": "open"} | c for c in cases}
        self.heavy_answer = heavy_answer
        self.posted: list[tuple[str, str, dict]] = []  # case id, step, body
        self.kits: list[str] = []  # households given a winterization kit

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and parts == ["cases"]:
            status = request.url.params["status"]
            limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
            listed = [c for c in self.cases.values() if c["status"] == status]
            return httpx.Response(200, json=listed[offset : offset + limit])
        if request.method == "GET":
            return httpx.Response(200, json=self.cases[parts[1]])
        if parts[0] == "households":
            return self.kit(parts[1])
        case, step, body = self.cases[parts[1]], parts[2], json.loads(request.content)
        self.posted.append((parts[1], step, body))
        if step == "assessment":
            heavy = body["damage_level"] == "heavy"
            case["status"] = self.heavy_answer if heavy else "assessed"
            answer = {
                "status": case["status"],
                "referral_id": "r-1" if heavy else None,
                "waiting_for": "the household has not consented to referral",
            }
            return httpx.Response(200, json=answer)
        if step == "plan":
            case["status"] = "planned"
            return httpx.Response(200, json={"case_id": parts[1]})
        case["status"] = "repaired"
        return httpx.Response(200, json={"case_id": parts[1], "delivery_id": "d-1"})

    def kit(self, household_id: str) -> httpx.Response:
        if household_id in self.kits:
            return httpx.Response(
                422,
                json={
                    "detail": f"household {household_id} already "
                    "received shelter.winterization_kit in the "
                    "2026-2027 heating season"
                },
            )
        self.kits.append(household_id)
        return httpx.Response(201, json={"delivery_id": str(uuid4())})


async def work(shelter: FakeShelter, expect) -> ShelterEngineer:
    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(shelter)) as http:
        engineer = ShelterEngineer(http, "http://shelter", say=lambda _: None, poll_s=0.05)
        expect(engineer)
        await asyncio.wait_for(engineer.run(stop, registration_done), timeout=5)
    return engineer


async def test_the_engineer_assesses_plans_and_completes_a_light_repair_once() -> None:
    household_id, case_id = str(uuid4()), str(uuid4())
    shelter = FakeShelter([{"case_id": case_id, "household_id": household_id}])
    plan = RepairPlan("light", "voucher", Decimal("12500.00"))

    engineer = await work(shelter, lambda e: e.expect(household_id, plan))

    assert [(c, step) for c, step, _ in shelter.posted] == [
        (case_id, "assessment"),
        (case_id, "plan"),
        (case_id, "repair-completion"),
    ]
    assessment, planned, completion = (body for _, _, body in shelter.posted)
    assert assessment["damage_level"] == "light"
    assert sum(Decimal(line["unit_cost_uah"]) for line in assessment["boq"]) == Decimal("12500")
    assert planned == {"modality": "voucher"}
    assert completion == {"value_uah": "12500.00", "inspection_passed": True, "partner_org": "IOM"}
    assert (engineer.reported, engineer.delivered) == (1, {household_id: "d-1"})


async def test_the_engineer_only_assesses_heavy_damage_which_shelter_refers_on() -> None:
    household_id, case_id = str(uuid4()), str(uuid4())
    shelter = FakeShelter([{"case_id": case_id, "household_id": household_id}])

    engineer = await work(shelter, lambda e: e.expect_heavy(household_id))

    assert [(step, body["damage_level"]) for _, step, body in shelter.posted] == [
        ("assessment", "heavy")
    ]
    assert engineer.referred == {household_id: "r-1"}


async def test_heavy_damage_without_consent_is_reported_as_awaiting_it() -> None:
    household_id = str(uuid4())
    shelter = FakeShelter(
        [{"case_id": str(uuid4()), "household_id": household_id}], heavy_answer="awaiting_consent"
    )

    engineer = await work(shelter, lambda e: e.expect_heavy(household_id))

    assert engineer.awaiting == {household_id: "the household has not consented to referral"}
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


async def test_a_refused_step_is_not_retried() -> None:
    household_id, case_id = str(uuid4()), str(uuid4())
    posts = []

    def shelter(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/cases":
            return httpx.Response(200, json=[{"case_id": case_id, "household_id": household_id}])
        if request.method == "GET":
            return httpx.Response(200, json={"case_id": case_id, "status": "open"})
        posts.append(1)
        return httpx.Response(409, json={"detail": "case is planned: only an open case ..."})

    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(shelter)) as http:
        engineer = ShelterEngineer(http, "http://shelter", say=lambda _: None, poll_s=0.05)
        engineer.expect(household_id, RepairPlan("light", "in_kind", Decimal("9000.00")))
        await asyncio.wait_for(engineer.run(stop, registration_done), timeout=5)
    assert posts == [1]
    assert "assessment: HTTP 409" in engineer.failed[household_id]


async def test_the_engineer_finds_its_case_pages_away_behind_older_open_cases() -> None:
    household_id, case_id = str(uuid4()), str(uuid4())
    older = [{"case_id": str(uuid4()), "household_id": str(uuid4())} for _ in range(1200)]
    shelter = FakeShelter([*older, {"case_id": case_id, "household_id": household_id}])
    plan = RepairPlan("medium", "voucher", Decimal("41000.00"))

    engineer = await work(shelter, lambda e: e.expect(household_id, plan))

    assert {c for c, _, _ in shelter.posted} == {case_id}
    assert engineer.delivered == {household_id: "d-1"}


async def test_the_coordinator_gives_kits_and_a_second_kit_is_refused_with_the_reason() -> None:
    first, second = str(uuid4()), str(uuid4())
    shelter = FakeShelter([])
    not_known_yet = {first}  # shelter has not projected this registration on the first try

    def api(request: httpx.Request) -> httpx.Response:
        household_id = request.url.path.split("/")[2]
        if household_id in not_known_yet:
            not_known_yet.discard(household_id)
            return httpx.Response(404, json={"detail": "not known to shelter"})
        return shelter(request)

    said: list[str] = []
    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        coordinator = ShelterCoordinator(http, "http://shelter", say=said.append, poll_s=0.05)
        coordinator.expect(first)
        coordinator.expect(second)
        await asyncio.wait_for(coordinator.run(stop, registration_done), timeout=5)

    assert set(coordinator.delivered) == {first, second}
    assert shelter.kits == [second, first]
    assert coordinator.duplicate is not None
    household_id, status, answer = coordinator.duplicate
    assert (household_id, status) == (second, 422)
    assert "already received shelter.winterization_kit" in answer
    assert coordinator.problems() == []
    assert any("refused as it should be" in line for line in said)


async def test_a_second_kit_accepted_is_a_problem_the_demo_reports() -> None:
    household_id = str(uuid4())

    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"delivery_id": str(uuid4())})

    stop, registration_done = asyncio.Event(), asyncio.Event()
    registration_done.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        coordinator = ShelterCoordinator(http, "http://shelter", say=lambda _: None, poll_s=0.05)
        coordinator.expect(household_id)
        await asyncio.wait_for(coordinator.run(stop, registration_done), timeout=5)

    [problem] = coordinator.problems()
    assert "duplicate-assistance guard failed" in problem


async def test_each_household_is_registered_with_the_token_of_its_organisation(
    tmp_path: Path,
) -> None:
    demo_tokens = DemoTokens.issue(tokens.keygen(tmp_path, "demo").private_key)
    verifier = TokenVerifier(keys_from_file(tmp_path / "demo.pem"))
    households = generate_households(24, seed=11, today=date(2026, 11, 23))
    seen: list[tuple[str | None, str, frozenset[str]]] = []

    def registration(request: httpx.Request) -> httpx.Response:
        principal = verifier.verify(request.headers["authorization"].removeprefix("Bearer "))
        body = json.loads(request.content)
        seen.append((body["partner_org"], principal.org, principal.scopes))
        return httpx.Response(
            201, json={"household_id": str(uuid4()), "correlation_id": str(uuid4()), "events": []}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(registration)) as http:
        await register_all(
            http,
            "http://registration",
            households,
            headers_for=demo_tokens.registrar,
            on_registered=lambda *_: None,
            on_refused=lambda *_: None,
            on_done=lambda: None,
        )

    assert len(seen) == 24
    assert {org for partner, org, _ in seen if partner} > {"IOM"}  # several partners
    for partner, org, scopes in seen:
        assert org == (partner or "IOM")
        assert scopes == {"registration:write"}
    assert verifier.verify(demo_tokens.shelter["Authorization"][7:]).scopes == {
        "shelter:read",
        "shelter:write",
        "shelter:record-for-partners",
    }


def test_what_the_demo_s_shelter_desk_records_is_attributed_as_its_token_allows(
    tmp_path: Path,
) -> None:
    demo_tokens = DemoTokens.issue(tokens.keygen(tmp_path, "demo").private_key)
    verifier = TokenVerifier(keys_from_file(tmp_path / "demo.pem"))
    desk = verifier.verify(demo_tokens.shelter["Authorization"].removeprefix("Bearer "))
    plan = RepairPlan("light", "voucher", Decimal("12500.00"))

    recorded = [
        attributed(desk, body[field], field=field, for_partners=SHELTER_RECORD_FOR_PARTNERS)
        for body, field in (
            (plan.assessment_body(), "assessed_by"),
            (HEAVY_ASSESSMENT, "assessed_by"),
            (plan.request_body(), "partner_org"),
        )
    ]

    assert (desk.org, recorded) == ("IOM", ["ENG-DEMO-01", "ENG-DEMO-01", "IOM"])
