"""`aidmesh demo`: register synthetic households and watch them flow through the platform.

1. generate households (demo_data: pure, seeded);
2. note the broker's end offsets, so only this run's events count;
3. register each household over registration's HTTP API;
4. act as the shelter field engineer: report light and medium repairs as completed;
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
from typing import Any

import httpx
from aidmesh_contracts import topics
from aidmesh_contracts.catalogue import CATALOGUE
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

from .demo_data import DemoHousehold, RepairPlan, generate_households
from .demo_flows import (
    REPAIRED,
    STEP_ORDER,
    FlowTracker,
    Step,
    expected_steps,
    read_record,
    short,
)
from .demo_render import render_outcome, render_plan, render_summary

READY_WAIT_S = 60.0
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


class DemoAborted(Exception):
    """A precondition failed (broker or registration unreachable): stop with this message."""


async def run_demo(options: DemoOptions, console: Console) -> int:
    households = generate_households(options.households, seed=options.seed, today=options.today)
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
        async with httpx.AsyncClient(timeout=10.0) as http:
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
                options, console, http=http, households=households, tracker=tracker, watch=watch
            )
    finally:
        await watch.stop()
    render_summary(console, tracker)
    problems = outcome.problems(tracker, options)
    render_outcome(console, problems, flows=len(households))
    return 0 if not problems else 1


# ---- the run ---------------------------------------------------------------------------


@dataclass
class Outcome:
    refused: list[tuple[int, int, str]] = field(default_factory=list)  # index, status, why
    unreachable: str | None = None
    engineer: ShelterEngineer | None = None

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
            if step == REPAIRED and self.engineer is not None:
                hint = self.engineer.explain({f.household_id for f in flows}) or hint
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


async def _register_and_watch(
    options: DemoOptions,
    console: Console,
    *,
    http: httpx.AsyncClient,
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
    engineer = ShelterEngineer(http, options.shelter_url, say=progress.console.print)
    outcome.engineer = engineer
    bars = _Bars(progress)
    registration_done = asyncio.Event()
    flows_done = asyncio.Event()
    stop = asyncio.Event()

    async def register() -> None:
        try:
            await register_all(
                http,
                options.registration_url,
                households,
                on_registered=lambda h, household_id, correlation_id: _registered(
                    h, household_id, correlation_id, tracker=tracker, engineer=engineer
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
) -> None:
    tracker.add_flow(household, household_id=household_id, correlation_id=correlation_id)
    if household.repair is not None:
        engineer.expect(household_id, household.repair)


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
        self._repairs = add("shelter engineer: repairs reported", total=0)
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
) -> None:
    """POST every household; a refusal is reported and the others go on. Gives up (raises
    DemoAborted) only if registration stops answering at all."""
    semaphore = asyncio.Semaphore(REGISTRATION_CONCURRENCY)
    transport_failures = 0

    async def one(household: DemoHousehold) -> None:
        nonlocal transport_failures
        async with semaphore:
            if transport_failures >= 3:
                return
            try:
                response = await http.post(
                    f"{base_url}/households", json=household.registration_body()
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


# ---- shelter field engineer ------------------------------------------------------------


class ShelterEngineer:
    """Reports light and medium repairs as completed, once shelter has opened their cases.

    Works from shelter's HTTP API, as a field engineer's tablet would: GET the open cases,
    POST a repair completion for each of the demo's that is due. Tolerates shelter being
    down: it says so once and keeps trying until told to stop.
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
        self._plans: dict[str, RepairPlan] = {}
        self.delivered: dict[str, str] = {}  # household id -> delivery id
        self.failed: dict[str, str] = {}  # household id -> why the report was refused
        self.unreachable: str | None = None  # the last connection problem, if any
        self._cases_seen: set[str] = set()
        self._said: set[str] = set()

    @property
    def expected(self) -> int:
        return len(self._plans)

    @property
    def reported(self) -> int:
        return len(self.delivered)

    def expect(self, household_id: str, plan: RepairPlan) -> None:
        self._plans[household_id] = plan

    def _due(self) -> dict[str, RepairPlan]:
        return {
            h: plan
            for h, plan in self._plans.items()
            if h not in self.delivered and h not in self.failed
        }

    async def run(self, stop: asyncio.Event, registration_done: asyncio.Event) -> None:
        while not stop.is_set():
            if registration_done.is_set() and not self._due():
                return
            if self._due():
                await self._round()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)

    async def _round(self) -> None:
        cases = await self._open_cases()
        if cases is None:
            return
        due = self._due()
        for case in cases:
            household_id = str(case.get("household_id"))
            if household_id not in due:
                continue
            self._cases_seen.add(household_id)
            await self._report(str(case.get("case_id")), household_id, due[household_id], case)

    async def _open_cases(self) -> list[dict[str, Any]] | None:
        """Every open case, page by page (heavy cases of earlier runs stay open, and the
        list is sorted by severity, so the demo's light repairs may be pages away)."""
        cases: dict[str, dict[str, Any]] = {}
        for page in range(MAX_CASE_PAGES):
            params = {"status": "open", "limit": CASE_PAGE_SIZE, "offset": page * CASE_PAGE_SIZE}
            try:
                response = await self._http.get(f"{self._base_url}/cases", params=params)
            except httpx.TransportError as exc:
                self._unreachable(f"{type(exc).__name__}")
                return None
            if response.status_code != 200:
                self._once(
                    f"list:{response.status_code}",
                    f"[yellow]shelter GET /cases?status=open answered HTTP "
                    f"{response.status_code}: {response.text[:300]}[/]",
                )
                return None
            if self.unreachable:
                self.say("[green]shelter API is answering now[/]")
                self.unreachable = None
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

    async def _report(
        self, case_id: str, household_id: str, plan: RepairPlan, case: dict[str, Any]
    ) -> None:
        if case.get("damage_level") not in (None, plan.category):
            self._once(
                f"damage:{case_id}",
                f"[yellow]case {short(case_id)} says damage {case.get('damage_level')}, "
                f"the assessment said {plan.category}; reporting a {plan.category} repair[/]",
            )
        url = f"{self._base_url}/cases/{case_id}/repair-completion"
        try:
            response = await self._http.post(url, json=plan.request_body())
        except httpx.TransportError as exc:
            self._unreachable(f"{type(exc).__name__}")
            return
        body = _json(response)
        if response.status_code == 200 and isinstance(body, dict):
            self.delivered[household_id] = str(body.get("delivery_id"))
        elif response.status_code in (404, 409, 422):
            why = f"HTTP {response.status_code}: {refusal_reason(response)}"
            self.failed[household_id] = why
            self.say(f"[red]shelter refused the repair report for case {short(case_id)}:[/] {why}")
        else:  # 5xx and the like: try again next round
            self._once(
                f"post:{response.status_code}",
                f"[yellow]shelter repair-completion answered HTTP {response.status_code}: "
                f"{response.text[:300]} (will retry)[/]",
            )

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
        """Why RepairCompleted is missing for these households, as far as the engineer knows."""
        if self.unreachable and not self.delivered:
            return (
                f"the demo could not report repairs: shelter API unreachable at "
                f"{self._base_url} ({self.unreachable}); see {LOGS}/shelter.log"
            )
        never_open = [h for h in missing if h in self._due() and h not in self._cases_seen]
        refused = [h for h in missing if h in self.failed]
        reported = [h for h in missing if h in self.delivered]
        parts = []
        if never_open:
            parts.append(f"{len(never_open)} never appeared in GET /cases?status=open")
        if refused:
            parts.append(f"{len(refused)} repair reports refused (printed above)")
        if reported:
            parts.append(
                f"repair-completion answered 200 for {len(reported)}, but their RepairCompleted "
                "did not arrive in the flow"
            )
        if not parts:
            return None
        return "; ".join(parts) + f"; see {LOGS}/shelter.log"


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
