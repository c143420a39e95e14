"""The whole pipeline (issue 10, item 4): households per second from registration to the
AssistanceDelivered recorded by the last consumer, the audit service's ledger.

The five services run as processes (`aidmesh_runtime.service_processes`, as the
end-to-end tests run them): fresh databases, consumer groups of their own reading from
`latest`, ports 182xx, settings as `make up` runs them (INFO logs, NOTIFY-woken relay)
except trace export, off as in the other benchmarks, and the share of flows traced, the
services' default (make up traces every flow). The benchmark then:
1. makes N synthetic households with the demo's generator, each with a light or medium
   shelter need (and the health and protection needs the generator gave it, so every
   sector does its work);
2. registers them over HTTP, BENCH_PIPELINE_CONCURRENCY at a time, each with the token of
   its registering organisation;
3. acts as the shelter field engineer the moment a household's case opens (found in
   GET /cases?status=open): assessment, repair plan, repair completion. That path ends in
   AssistanceDelivered for every household; a health visit does not (visits are booked
   against the teams' daily capacity, so a large intake waits in the backlog);
4. polls the audit ledger every POLL_S for each household's AssistanceDelivered, until
   all are there, a service exits, or the deadline passes.

Households per second: completed households / (the last one seen in the ledger - the first
POST). Per household: its POST → its AssistanceDelivered seen in the ledger (a reader sees
a row once audit's transaction commits; POLL_S is the resolution). A household that never
completes is counted, and named by stage in the notes, never dropped.

Settings: BENCH_HOUSEHOLDS (500), BENCH_PIPELINE_CONCURRENCY (16), BENCH_PIPELINE_DEADLINE_S
(300 + one second per household), BENCH_SEED (10). Needs the local Kafka and PostgreSQL,
and no other load on the topics meanwhile: these services consume whatever is published
(another benchmark's events too).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from aidmesh_contracts import AssistanceDelivered, HouseholdRegistered, ShelterCaseOpened
from aidmesh_ops.demo_data import (
    REPAIR_VALUE_RANGE,
    DemoHousehold,
    Need,
    RepairPlan,
    generate_households,
)
from aidmesh_runtime import auth
from aidmesh_runtime.auth import REGISTRATION_WRITE, SHELTER_READ, SHELTER_WRITE
from aidmesh_runtime.service_processes import running_services
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import auth_headers, session_public_keys

PORTS = {
    "registration": 18201,
    "shelter": 18202,
    "health": 18203,
    "protection": 18204,
    "audit": 18205,
}
#: Trace export off (spans are still made), as in the other benchmarks; the share of flows
#: traced is the services' default (make up and the tests trace every flow); the rest as
#: deployed.
SERVICE_SETTINGS = {
    "AIDMESH_OTLP_ENDPOINT": "",
    "AIDMESH_RELAY_POLL_INTERVAL_S": "1.0",
    "AIDMESH_TRACE_SAMPLE_RATIO": str(ServiceSettings.model_fields["trace_sample_ratio"].default),
}
POLL_S = 0.1
#: How often the engineer looks at the work queue: each look lists every open case, so
#: looking as often as the ledger is polled would load shelter more than the flow does.
CASE_POLL_S = 0.5
CASE_PAGE = 1000
PROGRESS_S = 10.0
#: The engineer's token: it records the work of its team (`assessed_by` ENG-DEMO-01), which
#: the attribution rules (ADR 0009) allow with shelter:record-for-partners, where the scope
#: catalogue has it.
ENGINEER_SCOPES = tuple(
    s for s in (SHELTER_READ, SHELTER_WRITE, "shelter:record-for-partners") if s in auth.SCOPES
)
REGISTERED = HouseholdRegistered.event_type
CASE_OPENED = ShelterCaseOpened.event_type
DELIVERED = AssistanceDelivered.event_type


def households_with_repairs(n: int, *, seed: int) -> list[DemoHousehold]:
    """The demo's households, each with a light or medium shelter need and its repair plan
    (heavy damage goes to state compensation, not to a repair: made medium here)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by design
    chosen = []
    for household in generate_households(n, seed=seed, today=datetime.now(UTC).date()):
        if household.repair is None:
            damage = rng.choice(("light", "medium"))
            shelter = household.need("shelter")
            details = dict(shelter.details) if shelter else {"tenure": "owner"}
            details |= {"damage_level": damage, "heating_available": damage == "light"}
            low, high, step = REPAIR_VALUE_RANGE[damage]
            household = replace(
                household,
                needs=(
                    Need("shelter", 3, details),
                    *(n for n in household.needs if n.sector != "shelter"),
                ),
                repair=RepairPlan(
                    category=damage,
                    modality=rng.choice(("in_kind", "voucher")),
                    value_uah=Decimal(rng.randrange(low, high + 1, step)).quantize(Decimal("0.01")),
                ),
            )
        chosen.append(household)
    return chosen


class Flow:
    """What happened to each household, by the benchmark's wall clock (time.time()).

    (A plain class: bench/run.py loads benchmarks outside sys.modules, where @dataclass
    cannot resolve postponed annotations.)"""

    def __init__(self) -> None:
        self.posted_at: dict[str, float] = {}  # household id -> POST sent
        self.answered_at: dict[str, float] = {}  # -> 201 received
        self.plans: dict[str, RepairPlan] = {}
        self.case_of: dict[str, str] = {}  # -> its shelter case
        self.case_found_at: dict[str, float] = {}
        self.repaired_at: dict[str, float] = {}  # -> repair completion answered
        #: Ledger rows seen: (event type, household id) -> when this process first saw it.
        self.ledgered: dict[tuple[str, str], float] = {}
        self.refused: list[str] = []  # registrations refused, and why
        self.failed: dict[str, str] = {}  # household id -> the step refused
        self.registration_done = False

    def completed(self) -> dict[str, float]:
        """Household id -> when its AssistanceDelivered was seen in the ledger."""
        return {
            h: at for (t, h), at in self.ledgered.items() if t == DELIVERED and h in self.posted_at
        }

    def settled(self) -> bool:
        """Every registered household completed or failed, and registration is over."""
        done = self.completed().keys() | self.failed.keys()
        return self.registration_done and all(h in done for h in self.posted_at)


def problem(response: httpx.Response) -> str:
    """Status and the service's reason (422s name field and reason, never the values)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"HTTP {response.status_code}: {str(detail)[:300]}"


async def register_all(
    http: httpx.AsyncClient,
    url: str,
    households: list[DemoHousehold],
    flow: Flow,
    *,
    concurrency: int,
    registrar: Callable[[DemoHousehold], dict[str, str]],
) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(household: DemoHousehold) -> None:
        async with limit:
            posted = time.time()
            try:
                response = await http.post(
                    url + "/households",
                    json=household.registration_body(),
                    headers=registrar(household),
                )
            except httpx.TransportError as exc:
                flow.refused.append(f"no answer: {type(exc).__name__}")
                return
        if response.status_code != 201:
            flow.refused.append(problem(response))
            return
        household_id = response.json()["household_id"]
        flow.plans[household_id] = household.repair  # type: ignore[assignment]
        flow.answered_at[household_id] = time.time()
        flow.posted_at[household_id] = posted

    try:
        await asyncio.gather(*(one(h) for h in households))
    finally:
        flow.registration_done = True


async def engineer(
    http: httpx.AsyncClient, url: str, flow: Flow, *, concurrency: int, stop: asyncio.Event
) -> None:
    """The shelter field engineer: each case, as soon as it is open, assessed, planned and
    repaired (three calls, as the engineer's tablet makes them)."""
    limit = asyncio.Semaphore(concurrency)
    working: set[asyncio.Task[None]] = set()

    async def work(household_id: str, case_id: str) -> None:
        plan = flow.plans[household_id]
        case = f"{url}/cases/{case_id}"
        async with limit:
            for step, body in (
                ("assessment", plan.assessment_body()),
                ("plan", plan.plan_body()),
                ("repair-completion", plan.request_body()),
            ):
                try:
                    response = await http.post(f"{case}/{step}", json=body)
                except httpx.TransportError as exc:
                    flow.failed[household_id] = f"shelter {step}: no answer ({type(exc).__name__})"
                    return
                if response.status_code != 200:
                    flow.failed[household_id] = f"shelter {step}: {problem(response)}"
                    return
        flow.repaired_at[household_id] = time.time()

    while not stop.is_set():
        if any(h not in flow.case_of for h in flow.posted_at):
            for case in await open_cases(http, url):
                household_id = case["household_id"]
                if household_id in flow.posted_at and household_id not in flow.case_of:
                    flow.case_of[household_id] = case["case_id"]
                    flow.case_found_at[household_id] = time.time()
                    task = asyncio.create_task(work(household_id, case["case_id"]))
                    working.add(task)
                    task.add_done_callback(working.discard)
        await asyncio.sleep(CASE_POLL_S)
    await asyncio.gather(*working)


async def open_cases(http: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """Every open case, page by page (the list is sorted by priority, not by age)."""
    cases: dict[str, dict[str, Any]] = {}
    for page in range(1000):
        response = await http.get(
            url + "/cases",
            params={"status": "open", "limit": CASE_PAGE, "offset": page * CASE_PAGE},
        )
        response.raise_for_status()
        body = response.json()
        cases |= {c["case_id"]: c for c in body}
        if len(body) < CASE_PAGE:
            break
    return list(cases.values())


async def watch_ledger(dsn: str, flow: Flow, *, stop: asyncio.Event) -> None:
    """Note when each household's events first show in the audit ledger (committed rows;
    audit appends under one lock, so rows become visible in `seq` order)."""
    conn = await asyncpg.connect(dsn)
    try:
        last = 0
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT seq, ce_type, ce_subject FROM audit_ledger"
                " WHERE seq > $1 AND ce_type = ANY($2::text[]) ORDER BY seq",
                last,
                [REGISTERED, CASE_OPENED, DELIVERED],
            )
            seen = time.time()
            for row in rows:
                flow.ledgered.setdefault((row["ce_type"], row["ce_subject"]), seen)
                last = row["seq"]
            await asyncio.sleep(POLL_S)
    finally:
        await conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def where_stuck(flow: Flow, household_id: str) -> str:
    """The last stage a household reached, for the notes."""
    if household_id in flow.failed:
        return flow.failed[household_id]
    if household_id in flow.repaired_at:
        return "repaired, AssistanceDelivered not in the audit ledger"
    if household_id in flow.case_of:
        return "case found, repair not completed"
    if (CASE_OPENED, household_id) in flow.ledgered:
        return "case opened (ledgered), not yet listed open by shelter"
    if (REGISTERED, household_id) in flow.ledgered:
        return "registered (ledgered), no shelter case"
    return "registered (201), HouseholdRegistered not in the audit ledger"


async def run(env: Any) -> dict[str, Any]:
    n = env.setting("households", 500)
    concurrency = env.setting("pipeline_concurrency", 16)
    deadline_s = env.setting("pipeline_deadline_s", 300.0 + n)
    seed = env.setting("seed", 10)
    households = households_with_repairs(n, seed=seed)
    registrars = {
        org: auth_headers(REGISTRATION_WRITE, org=org, sub=f"user:bench-registrar-{org.lower()}")
        for org in {"IOM", *(h.partner_org for h in households if h.partner_org)}
    }
    shelter_engineer = auth_headers(*ENGINEER_SCOPES, org="IOM", sub="user:bench-shelter-engineer")
    flow = Flow()
    exited: dict[str, int] = {}
    # Kept after the run (overwritten by the next): what each service logged, to see why.
    logs = env.work / "pipeline-logs"
    async with (
        running_services(
            name="bench",
            ports=PORTS,
            logs=logs,
            public_keys=session_public_keys(),
            settings=SERVICE_SETTINGS,
            cwd=env.root,
        ) as services,
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=4 * concurrency)) as http,
    ):
        stop = asyncio.Event()
        engineer_http = httpx.AsyncClient(
            timeout=30,
            headers=shelter_engineer,
            limits=httpx.Limits(max_connections=2 * concurrency),
        )
        watchers = [
            asyncio.create_task(watch_ledger(services.dsn("audit"), flow, stop=stop)),
            asyncio.create_task(
                engineer(
                    engineer_http,
                    services.url("shelter"),
                    flow,
                    concurrency=concurrency,
                    stop=stop,
                )
            ),
        ]
        started = time.time()
        registering = asyncio.create_task(
            register_all(
                http,
                services.url("registration"),
                households,
                flow,
                concurrency=concurrency,
                registrar=lambda h: registrars[h.partner_org or "IOM"],
            )
        )
        last_progress = time.monotonic()
        try:
            while time.time() - started < deadline_s:
                exited = services.exited()
                if exited or flow.settled() or any(t.done() for t in watchers):
                    break
                if time.monotonic() - last_progress > PROGRESS_S:
                    last_progress = time.monotonic()
                    print(
                        f"    {time.time() - started:.0f} s: registered {len(flow.posted_at)},"
                        f" repaired {len(flow.repaired_at)},"
                        f" delivered in the ledger {len(flow.completed())} of {n}",
                        flush=True,
                    )
                await asyncio.sleep(POLL_S)
        finally:
            stop.set()
            registering.cancel()
            await asyncio.gather(registering, return_exceptions=True)
            errors = [
                r
                for r in await asyncio.gather(*watchers, return_exceptions=True)
                if isinstance(r, BaseException)
            ]
            await engineer_http.aclose()
        tails = {s: services.log_tail(s, 1500) for s in exited}
    if errors:
        raise RuntimeError(f"the benchmark's own watchers failed: {errors!r}")
    return result(n=n, flow=flow, started=started, exited=exited, tails=tails)


def result(
    *, n: int, flow: Flow, started: float, exited: dict[str, int], tails: dict[str, str]
) -> dict[str, Any]:
    completed = flow.completed()
    missing = sorted(flow.posted_at.keys() - completed.keys())
    first_post = min(flow.posted_at.values(), default=started)
    end_to_end = [(completed[h] - flow.posted_at[h]) for h in completed]
    seconds = (max(completed.values()) - first_post) if completed else float("nan")
    per_s = len(completed) / seconds if completed else 0.0
    registration_s = max(flow.answered_at.values(), default=first_post) - first_post
    post_ms = [(flow.answered_at[h] - flow.posted_at[h]) * 1000 for h in flow.answered_at]

    def stage(start: Callable[[str], float | None], end: Callable[[str], float | None]) -> float:
        """Median seconds between two moments, over the completed households."""
        spans = [
            e - s for h in completed if (s := start(h)) is not None and (e := end(h)) is not None
        ]
        return round(statistics.median(spans), 2) if spans else float("nan")

    ledgered = flow.ledgered.get
    stages = {
        "post_to_201_s": stage(flow.posted_at.get, flow.answered_at.get),
        "201_to_case_listed_open_s": stage(flow.answered_at.get, flow.case_found_at.get),
        "case_listed_to_repair_completed_s": stage(flow.case_found_at.get, flow.repaired_at.get),
        "repair_completed_to_delivered_ledgered_s": stage(
            flow.repaired_at.get, lambda h: ledgered((DELIVERED, h))
        ),
        # Not on the path (audit records in parallel): how far behind the audit ledger runs,
        # and when shelter's case opened as audit saw it (the engineer finds it after).
        "audit_lag_201_to_case_opened_ledgered_s": stage(
            flow.answered_at.get, lambda h: ledgered((CASE_OPENED, h))
        ),
        "audit_lag_201_to_registered_ledgered_s": stage(
            flow.answered_at.get, lambda h: ledgered((REGISTERED, h))
        ),
    }
    lost = n - len(completed)
    figures: dict[str, Any] = {
        "households": n,
        "registered": len(flow.posted_at),
        "registration_refused": len(flow.refused),
        "completed": len(completed),
        "not_completed": lost,
        "seconds": round(seconds, 1),
        "households_per_second": round(per_s, 2),
        "registration_per_second": round(len(flow.answered_at) / registration_s, 1)
        if registration_s > 0
        else None,
        "registration_post_p50_ms": round(percentile(post_ms, 0.5)) if post_ms else None,
        "registration_post_p95_ms": round(percentile(post_ms, 0.95)) if post_ms else None,
        "end_to_end_p50_s": round(percentile(end_to_end, 0.5), 2) if end_to_end else None,
        "end_to_end_p95_s": round(percentile(end_to_end, 0.95), 2) if end_to_end else None,
        "end_to_end_max_s": round(max(end_to_end), 2) if end_to_end else None,
        "stage_p50": stages,
        "services_exited": exited,
    }
    notes = [
        "Path to AssistanceDelivered: the shelter repair. Every household has a light or"
        " medium shelter need (plus the health and protection needs the demo generator gave"
        " it); the benchmark, as the field engineer, assesses, plans and completes each case"
        " the moment GET /cases lists it open, so the figure is the platform's own time plus"
        " three HTTP calls per household, with no human delay.",
        "Services: the five as processes (python -m aidmesh_<service>) on fresh databases,"
        " their own consumer groups from latest, INFO JSON logs to files, trace export off;"
        f" the benchmark (registration, engineer, ledger polling every {POLL_S * 1000:.0f} ms)"
        " shares the machine with them, Kafka and PostgreSQL. Service logs of the last run:"
        " var/bench/pipeline-logs/.",
        "Median stage times (s) of the completed households (201_to_case_listed_open:"
        " registration's relay, Kafka, shelter's consumer, and the engineer's look at the"
        f" work queue every {CASE_POLL_S * 1000:.0f} ms): "
        + ", ".join(f"{k.removesuffix('_s')} {v}" for k, v in stages.items())
        + ".",
    ]
    if lost:
        stuck: dict[str, int] = {}
        for h in missing:
            reason = where_stuck(flow, h)
            stuck[reason] = stuck.get(reason, 0) + 1
        refused: dict[str, int] = {}
        for reason in flow.refused:
            refused[reason] = refused.get(reason, 0) + 1
        notes.insert(
            0,
            f"**FAILED: {lost} of {n} households did not reach AssistanceDelivered in the"
            " audit ledger before the deadline** — not registered before it:"
            f" {n - len(flow.posted_at) - len(flow.refused)}; registration refused"
            f" {len(flow.refused)} ({refused}); registered but stuck, by last stage reached:"
            f" {stuck}" + (f"; services that exited: {exited}" if exited else "") + ".",
        )
        figures["stuck"] = stuck
        figures["refused_reasons"] = refused
        figures["exited_log_tails"] = tails
        print(f"    FAILED: {lost} of {n} households not completed: {stuck}", flush=True)
    table = [
        {
            "figure": "households/s, registration POST → AssistanceDelivered in the audit ledger",
            "value": f"{per_s:,.2f} households/s ({len(completed):,} in {seconds:,.1f} s)",
        },
        {
            "figure": "per household, POST → its AssistanceDelivered ledgered",
            "value": f"p50 {figures['end_to_end_p50_s']} s, p95 {figures['end_to_end_p95_s']} s,"
            f" max {figures['end_to_end_max_s']} s",
        },
        {
            "figure": "households completed",
            "value": f"{len(completed):,} of {n:,}",
            "target": "all",
            "met": lost == 0,
        },
        {
            "figure": "registration alone (POST → 201)",
            "value": f"{figures['registration_per_second']} households/s,"
            f" p50 {figures['registration_post_p50_ms']} ms,"
            f" p95 {figures['registration_post_p95_ms']} ms",
        },
    ]
    return {
        **figures,
        "summary": {
            "households": n,
            "households_per_second": figures["households_per_second"],
            "completed": len(completed),
            "not_completed": lost,
            "end_to_end_p50_s": figures["end_to_end_p50_s"],
            "end_to_end_p95_s": figures["end_to_end_p95_s"],
        },
        "table": table,
        "notes": notes,
    }
