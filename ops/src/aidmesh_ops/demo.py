"""`aidmesh demo`: register synthetic households and watch them flow through the platform.

1. generate households (demo_data: pure, seeded);
2. note the broker's end offsets, so only this run's events count;
3. register each household over registration's HTTP API;
4. act as the shelter field engineer: assess every shelter case (heavy damage is referred
   to state compensation), plan and complete light and medium repairs; as the shelter
   coordinator: give winterization kits, and ask for one kit twice to show the
   duplicate-assistance guard refuse it; and as the mobile medical team: report the visits
   health scheduled as done;
5. watch the real topics until every household's expected events arrived (demo_flows);
6. print what the platform did (demo_render) and exit 0, or 1 naming what is missing.

This module is the I/O: HTTP, Kafka and the clock. Rules and rendering live beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from aidmesh_contracts import topics
from aidmesh_contracts.catalogue import CATALOGUE
from aidmesh_runtime.auth import (
    HEALTH_READ,
    HEALTH_WRITE,
    REGISTRATION_WRITE,
    SHELTER_READ,
    SHELTER_RECORD_FOR_PARTNERS,
    SHELTER_WRITE,
)
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.topics import MAX_MESSAGE_BYTES
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from . import tokens
from .demo_cash import CashAct, CashTokens
from .demo_data import (
    PARTNERS,
    DemoHousehold,
    RepairPlan,
    generate_households,
    with_shelter_showcase,
    with_winterization_kits,
)
from .demo_flows import (
    DAMAGE_ASSESSED,
    REPAIR_PLANNED,
    REPAIRED,
    STEP_ORDER,
    VISITED,
    FlowTracker,
    Step,
    expected_steps,
    read_record,
    short,
)
from .demo_render import render_outcome, render_plan, render_shelter, render_summary

READY_WAIT_S = 60.0
#: Who registers a household that no partner brought (field office, hotline, Kobo form).
REGISTRAR_ORG = "IOM"
SHELTER_POLL_S = 1.0
CASE_PAGE_SIZE = 500
MAX_CASE_PAGES = 20
REGISTRATION_CONCURRENCY = 4
LOGS = "var/logs"

HINTS = {
    "registration": "is registration's outbox relay publishing? see {logs}/registration.log",
    "shelter": "is the shelter service running? see {logs}/shelter.log",
    "health": "is the health service running? see {logs}/health.log",
    "protection": "is the protection service running? see {logs}/protection.log",
}


@dataclass(frozen=True)
class DemoOptions:
    households: int
    seed: int
    registration_url: str
    shelter_url: str
    kafka: str
    timeout_s: float
    today: date
    health_url: str = "http://127.0.0.1:8103"
    cash_url: str = "http://127.0.0.1:8106"
    #: The issuer's key the demo signs its tokens with (default: the local one).
    signing_key_file: Path | None = None


@dataclass(frozen=True)
class DemoTokens:
    """Each actor of the demo calls with its own token and the scopes its work needs:
    registration officers (one per organisation, so that what they register is attributed
    to it), the shelter engineer and coordinator, the mobile medical team."""

    registrars: dict[str, dict[str, str]]
    shelter: dict[str, str]
    health: dict[str, str]

    @classmethod
    def issue(cls, key_file: Path | None) -> DemoTokens:
        def headers(sub: str, org: str, *scopes: str) -> dict[str, str]:
            return tokens.bearer(*scopes, org=org, sub=sub, key_file=key_file)

        return cls(
            registrars={
                org: headers(f"user:demo-registrar-{org.lower()}", org, REGISTRATION_WRITE)
                for org in sorted({REGISTRAR_ORG, *PARTNERS})
            },
            # IOM's shelter desk records what its engineer team (ENG-DEMO-01, `assessed_by`)
            # assessed: naming a team other than the token's org needs record-for-partners.
            shelter=headers(
                "user:demo-shelter-engineer",
                "IOM",
                SHELTER_READ,
                SHELTER_WRITE,
                SHELTER_RECORD_FOR_PARTNERS,
            ),
            health=headers("user:demo-mobile-team", "IOM", HEALTH_READ, HEALTH_WRITE),
        )

    def registrar(self, household: DemoHousehold) -> dict[str, str]:
        return self.registrars[household.partner_org or REGISTRAR_ORG]


class DemoAborted(Exception):
    """A precondition failed (broker or registration unreachable): stop with this message."""


async def run_demo(options: DemoOptions, console: Console) -> int:
    households = with_winterization_kits(
        with_shelter_showcase(
            generate_households(options.households, seed=options.seed, today=options.today)
        )
    )
    render_plan(console, households, seed=options.seed)
    tracker = FlowTracker()
    watch = BrokerWatch(options.kafka)
    try:
        missing_topics = await watch.start()
    except DemoAborted as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    try:
        if missing_topics:
            console.print(
                f"[yellow]topics missing on the broker: {', '.join(missing_topics)} "
                "(run `aidmesh infra bootstrap`)[/]"
            )
        try:
            demo_tokens = DemoTokens.issue(options.signing_key_file)
        except tokens.TokenError as exc:
            console.print(f"[red]cannot sign the demo's tokens: {exc}[/]")
            return 1
        async with (
            httpx.AsyncClient(timeout=10.0) as http,
            httpx.AsyncClient(timeout=10.0, headers=demo_tokens.shelter) as shelter_http,
            httpx.AsyncClient(timeout=10.0, headers=demo_tokens.health) as health_http,
        ):
            try:
                await wait_until_ready(
                    http,
                    options.registration_url,
                    service="registration",
                    wait_s=min(READY_WAIT_S, options.timeout_s),
                )
            except DemoAborted as exc:
                console.print(f"[red]{exc}[/]")
                return 1
            outcome = await _register_and_watch(
                options,
                console,
                http=Clients(
                    registration=http,
                    registrar=demo_tokens.registrar,
                    shelter=shelter_http,
                    health=health_http,
                ),
                households=households,
                tracker=tracker,
                watch=watch,
            )
    finally:
        await watch.stop()
    render_summary(console, tracker)
    render_shelter(
        console,
        tracker,
        awaiting_consent=outcome.engineer.awaiting if outcome.engineer else {},
        second_kit=outcome.coordinator.duplicate if outcome.coordinator else None,
    )
    problems = outcome.problems(tracker, options)
    if outcome.unreachable is None:
        problems += await _cash_act(options, console)
    render_outcome(console, problems, flows=len(households))
    return 0 if not problems else 1


async def _cash_act(options: DemoOptions, console: Console) -> list[str]:
    """Multi-purpose cash, after the households' flows (demo_cash.py)."""
    try:
        people = CashTokens.issue(options.signing_key_file)
    except tokens.TokenError as exc:
        return [f"cash act: cannot sign its tokens: {exc}"]
    async with httpx.AsyncClient(timeout=30.0) as http:
        act = CashAct(
            http,
            registration_url=options.registration_url,
            cash_url=options.cash_url,
            people=people,
            console=console,
            seed=options.seed,
            today=options.today,
        )
        return await act.run()


# ---- the run ---------------------------------------------------------------------------


@dataclass
class Outcome:
    refused: list[tuple[int, int, str]] = field(default_factory=list)  # index, status, why
    unreachable: str | None = None
    engineer: ShelterEngineer | None = None
    coordinator: ShelterCoordinator | None = None
    team: HealthTeam | None = None

    def problems(self, tracker: FlowTracker, options: DemoOptions) -> list[str]:
        """What went wrong, each line naming the service and where to look."""
        problems = []
        if self.unreachable:
            problems.append(self.unreachable)
        if self.refused:
            statuses = ", ".join(
                sorted(
                    {f"HTTP {status}" if status else "no answer" for _, status, _ in self.refused}
                )
            )
            problems.append(
                f"registration: {len(self.refused)} of {options.households} households "
                f"not registered ({statuses}); the answers are printed above"
            )
        for step, flows in tracker.missing_by_step():
            hint = HINTS[step.service].format(logs=LOGS)
            if step in (DAMAGE_ASSESSED, REPAIR_PLANNED, REPAIRED) and self.engineer is not None:
                hint = self.engineer.explain({f.household_id for f in flows}) or hint
            if step == VISITED and self.team is not None:
                hint = self.team.explain({f.household_id for f in flows}) or hint
            problems.append(
                f"{step.service}: {len(flows)} household{'s' if len(flows) != 1 else ''} "
                f"without {step.label}; {hint}"
            )
        strays = tracker.strays()
        if strays:
            kinds = sorted({f"{e.source} {e.name}" for e in strays})
            problems.append(
                f"{len(strays)} events about the demo's households carried another "
                f"ce_correlationid ({'; '.join(kinds)}): the flow's correlation id was not "
                "carried over, so they are not counted"
            )
        if self.coordinator is not None:
            problems += self.coordinator.problems()
        for letter in tracker.dead_letters:
            problems.append(
                f"{letter.service}: dead-lettered {letter.event_type} from {letter.topic} "
                f"(household {short(letter.subject or '?')}): {letter.reason}"
            )
        for bad in tracker.unreadable:
            problems.append(
                f"unreadable record {bad.topic}[{bad.partition}]@{bad.offset}: {bad.problem}"
            )
        return problems


@dataclass(frozen=True)
class Clients:
    """The demo's HTTP clients: registration (with each registrar's token), shelter and
    health (with their actor's token)."""

    registration: httpx.AsyncClient
    registrar: Callable[[DemoHousehold], dict[str, str]]
    shelter: httpx.AsyncClient
    health: httpx.AsyncClient


async def _register_and_watch(
    options: DemoOptions,
    console: Console,
    *,
    http: Clients,
    households: list[DemoHousehold],
    tracker: FlowTracker,
    watch: BrokerWatch,
) -> Outcome:
    outcome = Outcome()
    progress = Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    engineer = ShelterEngineer(http.shelter, options.shelter_url, say=progress.console.print)
    outcome.engineer = engineer
    coordinator = ShelterCoordinator(http.shelter, options.shelter_url, say=progress.console.print)
    outcome.coordinator = coordinator
    team = HealthTeam(http.health, options.health_url, say=progress.console.print)
    outcome.team = team
    bars = _Bars(progress)
    registration_done = asyncio.Event()
    flows_done = asyncio.Event()
    stop = asyncio.Event()

    async def register() -> None:
        try:
            await register_all(
                http.registration,
                options.registration_url,
                households,
                headers_for=http.registrar,
                on_registered=lambda h, household_id, correlation_id: _registered(
                    h,
                    household_id,
                    correlation_id,
                    tracker=tracker,
                    engineer=engineer,
                    coordinator=coordinator,
                    team=team,
                ),
                on_refused=lambda h, status, why: _refused(h, status, why, outcome, progress),
                on_done=lambda: bars.advance_registration(),
            )
        except DemoAborted as exc:
            outcome.unreachable = str(exc)
            progress.console.print(f"[red]{exc}[/]")
        finally:
            registration_done.set()

    async def watch_flows() -> None:
        await registration_done.wait()
        try:
            await asyncio.wait_for(flows_done.wait(), timeout=options.timeout_s)
        except TimeoutError:
            progress.console.print(
                f"[yellow]gave up waiting after {options.timeout_s:.0f} s (--timeout)[/]"
            )
        stop.set()

    async def consume() -> None:
        while not stop.is_set():
            try:
                await watch.poll(tracker, timeout_ms=200)
            except KafkaError as exc:  # the client reconnects by itself; say so and go on
                progress.console.print(f"[yellow]reading from Kafka failed: {exc!r}[/]")
                await asyncio.sleep(1.0)
            bars.update(tracker, engineer)
            if registration_done.is_set() and tracker.all_complete:
                flows_done.set()

    bars.start(households)
    with progress:
        tasks = [
            asyncio.create_task(register(), name="register"),
            asyncio.create_task(consume(), name="consume"),
            asyncio.create_task(engineer.run(stop, registration_done), name="shelter-engineer"),
            asyncio.create_task(
                coordinator.run(stop, registration_done), name="shelter-coordinator"
            ),
            asyncio.create_task(team.run(stop, registration_done), name="mobile-medical-team"),
        ]
        await watch_flows()
        for task in tasks:
            if not task.done():
                await asyncio.wait_for(task, timeout=15)
        bars.update(tracker, engineer)
    return outcome


def _registered(
    household: DemoHousehold,
    household_id: str,
    correlation_id: str,
    *,
    tracker: FlowTracker,
    engineer: ShelterEngineer,
    coordinator: ShelterCoordinator,
    team: HealthTeam,
) -> None:
    tracker.add_flow(household, household_id=household_id, correlation_id=correlation_id)
    if household.repair is not None:
        engineer.expect(household_id, household.repair)
    elif household.damage_level == "heavy":
        engineer.expect_heavy(household_id)
    if household.winterization_kit:
        coordinator.expect(household_id)
    if "health" in household.sectors:
        team.expect(household_id, persons=household.size)


def _refused(
    household: DemoHousehold, status: int, why: str, outcome: Outcome, progress: Progress
) -> None:
    outcome.refused.append((household.index, status, why))
    answer = f"HTTP {status}" if status else "no answer"
    progress.console.print(
        f"[red]registration did not register household #{household.index} ({answer}):[/] {why}"
    )


class _Bars:
    """The live view: registrations, repairs reported, each expected event, flows complete."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._steps: dict[str, TaskID] = {}
        self._registration: TaskID | None = None
        self._repairs: TaskID | None = None
        self._flows: TaskID | None = None
        self._events: TaskID | None = None

    def start(self, households: list[DemoHousehold]) -> None:
        add = self._progress.add_task
        self._registration = add("POST /households", total=len(households))
        self._repairs = add("shelter engineer: cases worked", total=0)
        self._events = add("[bold]events seen[/]", total=None)
        self._flows = add("[bold]flows complete[/]", total=len(households))
        expected = {step for h in households for step in expected_steps(h)}
        for step in STEP_ORDER:
            if step in expected:
                self._add_step(step)

    def advance_registration(self) -> None:
        assert self._registration is not None
        self._progress.advance(self._registration)

    def update(self, tracker: FlowTracker, engineer: ShelterEngineer) -> None:
        progress = self._progress
        for step, done, expected in tracker.progress():
            task = self._steps.get(step.key) or self._add_step(step)
            progress.update(task, completed=done, total=expected)
        assert self._repairs is not None and self._flows is not None and self._events is not None
        progress.update(self._repairs, completed=engineer.reported, total=engineer.expected)
        progress.update(self._events, completed=tracker.events_seen)
        progress.update(self._flows, completed=tracker.complete)

    def _add_step(self, step: Step) -> TaskID:
        task = self._progress.add_task(f"  {step.service} · {step.label}", total=0)
        self._steps[step.key] = task
        return task


# ---- registration ----------------------------------------------------------------------


async def wait_until_ready(
    http: httpx.AsyncClient, base_url: str, *, service: str, wait_s: float = READY_WAIT_S
) -> None:
    """Poll /readyz until the service is ready; raise DemoAborted saying why not."""
    deadline = time.monotonic() + wait_s
    problem = ""
    while True:
        try:
            response = await http.get(f"{base_url}/readyz", timeout=3.0)
            if response.status_code == 200:
                return
            problem = f"not ready (HTTP {response.status_code}): {response.text[:300]}"
        except httpx.TransportError as exc:
            problem = f"not reachable ({type(exc).__name__})"
        if time.monotonic() > deadline:
            raise DemoAborted(
                f"{service} at {base_url} is {problem} after {wait_s:.0f} s; "
                f"is it running? see {LOGS}/{service}.log"
            )
        await asyncio.sleep(0.5)


async def register_all(
    http: httpx.AsyncClient,
    base_url: str,
    households: list[DemoHousehold],
    *,
    on_registered: Callable[[DemoHousehold, str, str], None],
    on_refused: Callable[[DemoHousehold, int, str], None],
    on_done: Callable[[], None],
    headers_for: Callable[[DemoHousehold], dict[str, str]] = lambda household: {},
) -> None:
    """POST every household (with the token `headers_for` it gives); a refusal is
    reported and the others go on. Gives up (raises DemoAborted) only if registration
    stops answering at all."""
    semaphore = asyncio.Semaphore(REGISTRATION_CONCURRENCY)
    transport_failures = 0

    async def one(household: DemoHousehold) -> None:
        nonlocal transport_failures
        async with semaphore:
            if transport_failures >= 3:
                return
            try:
                response = await http.post(
                    f"{base_url}/households",
                    json=household.registration_body(),
                    headers=headers_for(household),
                )
            except httpx.TransportError as exc:
                transport_failures += 1
                on_refused(household, 0, f"no answer ({type(exc).__name__}: {exc})")
                return
            finally:
                on_done()
        body = _json(response)
        if response.status_code == 201 and isinstance(body, dict) and "household_id" in body:
            on_registered(household, str(body["household_id"]), str(body["correlation_id"]))
        else:
            on_refused(household, response.status_code, refusal_reason(response))

    await asyncio.gather(*(one(h) for h in households))
    if transport_failures >= 3:
        raise DemoAborted(
            f"registration at {base_url} stopped answering; see {LOGS}/registration.log"
        )


def refusal_reason(response: httpx.Response) -> str:
    """The answer's body, without echoing submitted values back (they may be personal)."""
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        parts = []
        for problem in body["detail"]:
            if isinstance(problem, dict):
                where = ".".join(str(p) for p in problem.get("loc", ()))
                parts.append(f"{where}: {problem.get('msg', problem)}")
            else:
                parts.append(str(problem))
        return "; ".join(parts)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return response.text[:500] or "(empty body)"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# ---- shelter field engineer and coordinator --------------------------------------------

#: A heavy-damage assessment: no bill of quantities (shelter does not repair it).
HEAVY_ASSESSMENT = {"damage_level": "heavy", "assessed_by": "ENG-DEMO-01", "boq": []}
#: What a case's status means for the engineer: a step to take, or work done.
ENGINEER_DONE = ("repaired", "referred", "awaiting_consent")


class ShelterEngineer:
    """Works the demo's shelter cases through shelter's HTTP API, as a field engineer's
    tablet (and the coordinator approving plans) would: finds each household's case in
    GET /cases?status=open, assesses it (a bill of quantities), and for light and medium
    damage plans the repair and reports it done and inspected. Heavy damage is only
    assessed: shelter refers it to state compensation, or the case waits for the
    household's consent. Tolerates shelter being down: it says so once and keeps trying
    until told to stop; a case's status (GET /cases/{id}) says where to pick up again.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        say: Callable[[str], None],
        poll_s: float = SHELTER_POLL_S,
    ) -> None:
        self._http = http
        self._poll_s = poll_s
        self._base_url = base_url.rstrip("/")
        self.say = say
        self._jobs: dict[str, RepairPlan | None] = {}  # None: heavy damage, assessed only
        self._case_of: dict[str, str] = {}  # household id -> case id
        self.delivered: dict[str, str] = {}  # household id -> delivery id
        self.referred: dict[str, str] = {}  # household id -> referral id
        self.awaiting: dict[str, str] = {}  # household id -> what its case waits for
        self.failed: dict[str, str] = {}  # household id -> why a step was refused
        self.unreachable: str | None = None  # the last connection problem, if any
        self._said: set[str] = set()

    @property
    def expected(self) -> int:
        return len(self._jobs)

    @property
    def reported(self) -> int:
        return len(self.delivered) + len(self.referred) + len(self.awaiting)

    def expect(self, household_id: str, plan: RepairPlan) -> None:
        """A light or medium repair to assess, plan and complete."""
        self._jobs[household_id] = plan

    def expect_heavy(self, household_id: str) -> None:
        """Heavy damage to assess (shelter refers it on)."""
        self._jobs[household_id] = None

    def _due(self) -> dict[str, RepairPlan | None]:
        done = self.delivered.keys() | self.referred.keys() | self.awaiting.keys()
        return {h: job for h, job in self._jobs.items() if h not in done and h not in self.failed}

    async def run(self, stop: asyncio.Event, registration_done: asyncio.Event) -> None:
        while not stop.is_set():
            if registration_done.is_set() and not self._due():
                return
            if self._due():
                await self._round()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)

    async def _round(self) -> None:
        due = self._due()
        if any(h not in self._case_of for h in due):
            cases = await self._open_cases()
            if cases is None:
                return
            for case in cases:
                household_id = str(case.get("household_id"))
                if household_id in due and household_id not in self._case_of:
                    self._case_of[household_id] = str(case.get("case_id"))
        for household_id, plan in due.items():
            case_id = self._case_of.get(household_id)
            if case_id is not None and not await self._work(household_id, case_id, plan):
                return  # shelter is not answering: next round

    async def _open_cases(self) -> list[dict[str, Any]] | None:
        """Every open case, page by page (cases of earlier runs stay open, and the list is
        sorted by priority, so the demo's cases may be pages away)."""
        cases: dict[str, dict[str, Any]] = {}
        for page in range(MAX_CASE_PAGES):
            params = {"status": "open", "limit": CASE_PAGE_SIZE, "offset": page * CASE_PAGE_SIZE}
            response = await self._get("/cases", params=params)
            if response is None:
                return None
            body = _json(response)
            if not isinstance(body, list):
                self._once("list:shape", "[yellow]shelter GET /cases did not answer a list[/]")
                return None
            fresh = {
                str(c.get("case_id")): c
                for c in body
                if isinstance(c, dict) and str(c.get("case_id")) not in cases
            }
            cases.update(fresh)
            if len(body) < CASE_PAGE_SIZE or not fresh:  # last page (or paging ignored)
                break
        return list(cases.values())

    async def _work(self, household_id: str, case_id: str, plan: RepairPlan | None) -> bool:
        """Take the case's next steps; False if shelter did not answer (try again later)."""
        response = await self._get(f"/cases/{case_id}")
        if response is None:
            return False
        case = _json(response) or {}
        status = str(case.get("status"))
        if status == "open":
            answer = await self._post(
                household_id,
                case_id,
                "assessment",
                plan.assessment_body() if plan is not None else HEAVY_ASSESSMENT,
            )
            if answer is None:
                return household_id in self.failed
            status = str(answer.get("status"))
            if status == "referred":
                self.referred[household_id] = str(answer.get("referral_id"))
            elif status == "awaiting_consent":
                self.awaiting[household_id] = str(answer.get("waiting_for"))
        if plan is not None and status == "assessed":
            if await self._post(household_id, case_id, "plan", plan.plan_body()) is None:
                return household_id in self.failed
            status = "planned"
        if plan is not None and status == "planned":
            answer = await self._post(
                household_id, case_id, "repair-completion", plan.request_body()
            )
            if answer is None:
                return household_id in self.failed
            self.delivered[household_id] = str(answer.get("delivery_id"))
            return True
        if status not in ENGINEER_DONE:
            self.failed[household_id] = f"case {short(case_id)} is {status}"
            self.say(f"[red]shelter case {short(case_id)} is {status}: the demo cannot go on[/]")
        elif status == "repaired" and plan is not None:  # completed in an earlier round
            self.delivered[household_id] = str(case.get("delivery_id"))
        elif status == "referred" and household_id not in self.referred:
            self.referred[household_id] = str((case.get("referral") or {}).get("referral_id"))
        elif status == "awaiting_consent" and household_id not in self.awaiting:
            self.awaiting[household_id] = "the household's consent"
        return True

    async def _get(self, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            response = await self._http.get(self._base_url + path, **kwargs)
        except httpx.TransportError as exc:
            self._unreachable(type(exc).__name__)
            return None
        if response.status_code != 200:
            self._once(
                f"get:{response.status_code}",
                f"[yellow]shelter GET {path} answered HTTP {response.status_code}: "
                f"{response.text[:300]}[/]",
            )
            return None
        if self.unreachable:
            self.say("[green]shelter API is answering now[/]")
            self.unreachable = None
        return response

    async def _post(
        self, household_id: str, case_id: str, step: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The answer to one step; None if refused (`failed` says why) or to retry later."""
        try:
            response = await self._http.post(f"{self._base_url}/cases/{case_id}/{step}", json=body)
        except httpx.TransportError as exc:
            self._unreachable(type(exc).__name__)
            return None
        answer = _json(response)
        if response.status_code == 200 and isinstance(answer, dict):
            return answer
        if response.status_code in (404, 409, 422):
            why = f"{step}: HTTP {response.status_code}: {refusal_reason(response)}"
            self.failed[household_id] = why
            self.say(f"[red]shelter refused the {step} of case {short(case_id)}:[/] {why}")
        else:  # 5xx and the like: try again next round
            self._once(
                f"post:{step}:{response.status_code}",
                f"[yellow]shelter {step} answered HTTP {response.status_code}: "
                f"{response.text[:300]} (will retry)[/]",
            )
        return None

    def _unreachable(self, error: str) -> None:
        first = self.unreachable is None
        self.unreachable = error
        if first:
            self.say(
                f"[yellow]shelter API not reachable at {self._base_url} ({error}); is the shelter "
                f"service running? see {LOGS}/shelter.log. Retrying until the deadline.[/]"
            )

    def _once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(message)

    def explain(self, missing: set[str]) -> str | None:
        """Why the engineer's steps are missing for these households, as far as it knows."""
        if self.unreachable and not self.reported:
            return (
                f"the demo could not work the cases: shelter API unreachable at "
                f"{self._base_url} ({self.unreachable}); see {LOGS}/shelter.log"
            )
        never_open = [h for h in missing if h in self._due() and h not in self._case_of]
        refused = [h for h in missing if h in self.failed]
        reported = [h for h in missing if h in self.delivered or h in self.referred]
        parts = []
        if never_open:
            parts.append(f"{len(never_open)} never appeared in GET /cases?status=open")
        if refused:
            parts.append(f"{len(refused)} refused (printed above)")
        if reported:
            parts.append(
                f"shelter answered 200 for {len(reported)}, but their events did not arrive "
                "in the flow"
            )
        if not parts:
            return None
        return "; ".join(parts) + f"; see {LOGS}/shelter.log"


class ShelterCoordinator:
    """Gives winterization kits through shelter's HTTP API, as a shelter coordinator would,
    then asks for a second kit for the first household in the same heating season, to show
    the duplicate-assistance guard refuse it (HTTP 422 with the reason)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        say: Callable[[str], None],
        poll_s: float = SHELTER_POLL_S,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._poll_s = poll_s
        self.say = say
        self._households: list[str] = []
        self.delivered: dict[str, str] = {}  # household id -> delivery id
        self.failed: dict[str, str] = {}
        #: The second kit asked for: (household id, HTTP status, shelter's answer).
        self.duplicate: tuple[str, int, str] | None = None

    def expect(self, household_id: str) -> None:
        self._households.append(household_id)

    def _due(self) -> list[str]:
        return [h for h in self._households if h not in self.delivered and h not in self.failed]

    def _duplicate_due(self) -> str | None:
        if self.duplicate is not None:
            return None
        return next((h for h in self._households if h in self.delivered), None)

    async def run(self, stop: asyncio.Event, registration_done: asyncio.Event) -> None:
        while not stop.is_set():
            if registration_done.is_set() and not self._due() and not self._duplicate_due():
                return
            for household_id in self._due():
                if not await self._give(household_id):
                    break
            await self._ask_again()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)
        await self._ask_again()  # the flows may complete before the second request went out

    async def _post(self, household_id: str) -> httpx.Response | None:
        try:
            return await self._http.post(
                f"{self._base_url}/households/{household_id}/winterization-kits",
                json={"kits": 1, "modality": "in_kind"},
            )
        except httpx.TransportError:
            return None  # the engineer says when shelter is unreachable

    async def _give(self, household_id: str) -> bool:
        """One kit; False if shelter did not answer."""
        response = await self._post(household_id)
        if response is None:
            return False
        answer = _json(response)
        if response.status_code == 201 and isinstance(answer, dict):
            self.delivered[household_id] = str(answer.get("delivery_id"))
        elif response.status_code in (409, 422):
            self.failed[household_id] = f"HTTP {response.status_code}: {refusal_reason(response)}"
            self.say(
                f"[red]shelter refused a winterization kit for {short(household_id)}:[/] "
                f"{self.failed[household_id]}"
            )
        # 404: shelter has not projected the household's registration yet; next round
        return True

    async def _ask_again(self) -> None:
        household_id = self._duplicate_due()
        if household_id is None:
            return
        response = await self._post(household_id)
        if response is None or response.status_code not in (201, 409, 422):
            return  # try again next round
        answer = refusal_reason(response)
        self.duplicate = (household_id, response.status_code, answer)
        if response.status_code == 201:
            self.say(
                f"[red]shelter gave household {short(household_id)} a second winterization kit "
                "in the same heating season: the duplicate-assistance guard did not hold[/]"
            )
        else:
            self.say(
                f"[green]second winterization kit for household {short(household_id)} refused "
                f"as it should be (HTTP {response.status_code}):[/] {answer}"
            )

    def problems(self) -> list[str]:
        if self.duplicate is not None and self.duplicate[1] == 201:
            return [
                f"shelter: a second winterization kit for household {short(self.duplicate[0])} "
                "in the same heating season was accepted; the duplicate-assistance guard failed"
            ]
        if self.duplicate is None and self.delivered:
            return [
                f"shelter: the second winterization kit was never answered; see {LOGS}/shelter.log"
            ]
        return []


# ---- mobile medical team ---------------------------------------------------------------


class HealthTeam:
    """Reports the visits health scheduled for the demo's households as done, as a mobile
    medical team's tablet would: GET the household's scheduled visit, POST its completion
    with the services planned and the household's members seen (clinical notes, which a
    real team would add, stay in health's database: the demo sends none)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        say: Callable[[str], None],
        poll_s: float = SHELTER_POLL_S,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._poll_s = poll_s
        self.say = say
        self._persons: dict[str, int] = {}  # household id -> persons seen
        self.completed: dict[str, str] = {}  # household id -> visit id
        self.failed: dict[str, str] = {}  # household id -> why the report was refused
        self.unreachable: str | None = None
        self._scheduled_seen: set[str] = set()

    def expect(self, household_id: str, *, persons: int) -> None:
        self._persons[household_id] = max(1, min(persons, 99))

    def _due(self) -> list[str]:
        return [h for h in self._persons if h not in self.completed and h not in self.failed]

    async def run(self, stop: asyncio.Event, registration_done: asyncio.Event) -> None:
        while not stop.is_set():
            if registration_done.is_set() and not self._due():
                return
            for household_id in self._due():
                if stop.is_set() or not await self._visit(household_id):
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)

    async def _visit(self, household_id: str) -> bool:
        """Report the household's visit if it is scheduled; False if health is unreachable."""
        try:
            listed = await self._http.get(
                f"{self._base_url}/visits",
                params={"household_id": household_id, "status": "scheduled"},
            )
            visits = _json(listed) if listed.status_code == 200 else None
            if not isinstance(visits, list) or not visits:
                return True  # not scheduled yet
            self._scheduled_seen.add(household_id)
            visit = visits[0]
            response = await self._http.post(
                f"{self._base_url}/visits/{visit['visit_id']}/completion",
                json={
                    "services_delivered": visit["services_planned"],
                    "persons_seen": self._persons[household_id],
                },
            )
        except httpx.TransportError as exc:
            if self.unreachable is None:
                self.say(
                    f"[yellow]health API not reachable at {self._base_url} "
                    f"({type(exc).__name__}); retrying until the deadline.[/]"
                )
            self.unreachable = type(exc).__name__
            return False
        self.unreachable = None
        if response.status_code == 200:
            self.completed[household_id] = str(visit["visit_id"])
        elif response.status_code in (404, 409, 422):
            why = f"HTTP {response.status_code}: {refusal_reason(response)}"
            self.failed[household_id] = why
            self.say(f"[red]health refused the visit report for {short(household_id)}:[/] {why}")
        return True

    def explain(self, missing: set[str]) -> str | None:
        """Why VisitCompleted is missing for these households, as far as the team knows."""
        if self.unreachable and not self.completed:
            return f"the demo could not report visits: health API unreachable at {self._base_url}"
        never = [h for h in missing if h not in self._scheduled_seen]
        refused = [h for h in missing if h in self.failed]
        parts = []
        if never:
            parts.append(
                f"{len(never)} never had a scheduled visit (GET /capacity shows the backlog:"
                " no team for the oblast or no room)"
            )
        if refused:
            parts.append(f"{len(refused)} visit reports refused (printed above)")
        return "; ".join(parts) + f"; see {LOGS}/health.log" if parts else None


# ---- broker ----------------------------------------------------------------------------


def watched_topics() -> list[str]:
    """Every catalogue topic but the intake (raw submissions), and their dead-letter topics."""
    names = [t.name for t in CATALOGUE if t.name != topics.REGISTRATION_INTAKE]
    return names + [topics.dlq_topic(n) for n in names]


class BrokerWatch:
    """A plain consumer on the real broker, from the end offsets noted before registering.

    No consumer group, so the demo never disturbs (or is disturbed by) the services' groups
    and commits nothing; starting from the end offsets, a run never sees an earlier run's.
    """

    def __init__(self, bootstrap: str, *, topic_names: list[str] | None = None) -> None:
        self._bootstrap = bootstrap
        self._topic_names = topic_names or watched_topics()
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self, *, timeout_s: float = 20.0) -> list[str]:
        """Assign all partitions at their current end; return the wanted topics that are missing."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **operator_auth(),
            client_id="aidmesh-demo",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=MAX_MESSAGE_BYTES * 2,
        )
        try:
            async with asyncio.timeout(timeout_s):
                await consumer.start()
                existing = await consumer.topics()
                wanted = {t for t in self._topic_names if t in existing}
                # Without a group, subscribing assigns every partition of these topics (as
                # soon as their metadata is in); then pin each one at its current end.
                consumer.subscribe(topics=sorted(wanted))
                while {tp.topic for tp in consumer.assignment()} != wanted:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                assigned = sorted(consumer.assignment())
                await consumer.seek_to_end(*assigned)
                for partition in assigned:
                    await consumer.position(partition)
        except (KafkaError, OSError, TimeoutError) as exc:
            await consumer.stop()
            raise DemoAborted(
                f"Kafka not reachable at {self._bootstrap} ({exc or type(exc).__name__}); "
                "is the broker running (deploy/local/infra.sh up)?"
            ) from exc
        self._consumer = consumer
        return [t for t in self._topic_names if t not in existing]

    async def poll(self, tracker: FlowTracker, *, timeout_ms: int = 200) -> int:
        """Read what arrived; return how many records were read."""
        assert self._consumer is not None, "start() first"
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=2000)
        count = 0
        for partition, records in batches.items():
            for record in records:
                count += 1
                tracker.observe(
                    read_record(
                        topic=partition.topic,
                        partition=partition.partition,
                        offset=record.offset,
                        headers=list(record.headers or ()),
                        value=record.value,
                    )
                )
        return count

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
