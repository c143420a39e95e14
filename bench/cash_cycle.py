"""A cash payment cycle of 100,000 households from approval to a reconciled report (issue 24).

Registration imports 100,000 synthetic households (its bulk import: sealed, deduplicated),
each consenting to share its details with the provider; cash is seeded by COPY with them
(its household projection, and the entitlement its rules give each a cash need): the
benchmark measures the cycle, not the events that would have brought them in. Then, with
both services running in this process (their real lifespans: database, Kafka, relay,
consumer), through their HTTP APIs:

1. open: a programme officer opens a cycle for the oblasts; the list is proposed (ranked,
   within a budget that pays about 95% of them, the rest waiting);
2. approve: a second person approves; every PaymentInstructed is written to the outbox;
3. the provider's file: cash's relay publishes the instructions, registration consumes
   them, and writes the file (cash pick-up: names, documents, phones) when asked;
4. reconcile: the provider's report (a CSV of the file's payments: 99% paid, 1% failed) is
   imported and reconciled (PaymentConfirmed + AssistanceDelivered per paid row,
   PaymentFailed per failed);
5. publish: the relay has put those on Kafka.

Settings: BENCH_CASH_HOUSEHOLDS (100000). The synthetic CSV is kept in var/bench/.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import asyncpg
from aidmesh_cash import domain
from aidmesh_cash.app import build_app
from aidmesh_cash.settings import CashSettings
from aidmesh_contracts import NeedAssessed, Sector
from aidmesh_contracts.envelope import new_envelope
from aidmesh_registration.app import build_app as registration_app
from aidmesh_registration.bulk_import import ImportOptions
from aidmesh_registration.crypto import new_kek
from aidmesh_registration.import_cli import run_import
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_registration.synthetic import GENERATOR_VERSION, generate, write_csv
from aidmesh_runtime.auth import (
    CASH_APPROVE,
    CASH_READ,
    CASH_WRITE,
    REGISTRATION_PAYMENT_FILES,
)
from aidmesh_runtime.testing import (
    auth_headers,
    isolated_settings,
    running_app,
    service_database,
)

UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"


async def seed(conn: asyncpg.Connection, registry: list[Any], rules: domain.CashRules) -> Decimal:
    """Cash's copy of the registry's households (its projection), each with a cash need and
    the entitlement the service's rules give it; returns what three months of all cost."""
    rng = random.Random(24)  # noqa: S311 - synthetic needs, not a secret
    now = datetime.now(UTC)
    households, entitlements = [], []
    total = Decimal(0)
    for row in registry:
        household = domain.Household(
            household_id=row["household_id"],
            size=row["size"],
            displacement_status=row["displacement_status"],
            vulnerabilities=frozenset(row["vulnerabilities"]),
        )
        need = NeedAssessed(
            assessment_id=uuid4(),
            household_id=household.household_id,
            sector=Sector.CASH,
            severity=rng.randint(3, 5),
            assessed_at=now,
            assessed_by="IOM",
        )
        cause = new_envelope(need, source="/aidmesh/registration", time=now)
        decided = domain.entitlement(
            household, assessment_id=need.assessment_id, severity=need.severity, rules=rules
        )
        total += decided.monthly_amount * 3
        households.append(
            (
                household.household_id,
                row["adm1_pcode"],
                household.displacement_status,
                household.size,
                sorted(household.vulnerabilities),
                sorted(row["consents"]),
                now,
                uuid4(),
            )
        )
        entitlements.append(
            (
                household.household_id,
                need.assessment_id,
                need.severity,
                decided.eligible,
                decided.monthly_amount,
                decided.priority,
                json.dumps(decided.explanation),
                now,
                cause.model_dump_json(),
                now,
            )
        )
    await conn.copy_records_to_table(
        "household_projection",
        columns=(
            "household_id",
            "adm1_pcode",
            "displacement_status",
            "size",
            "vulnerabilities",
            "consents",
            "registered_at",
            "last_event_id",
        ),
        records=households,
    )
    await conn.copy_records_to_table(
        "entitlements",
        columns=(
            "household_id",
            "assessment_id",
            "severity",
            "eligible",
            "monthly_amount",
            "priority",
            "explanation",
            "assessed_at",
            "need_envelope",
            "decided_at",
        ),
        records=entitlements,
    )
    await conn.execute("ANALYZE")
    return total


async def drained(conn: asyncpg.Connection, *, timeout_s: float = 1800.0) -> float:
    """Poll until the relay has published every outbox row; the perf_counter time then."""
    deadline = time.monotonic() + timeout_s
    while await conn.fetchval(UNSENT):
        if time.monotonic() > deadline:
            raise AssertionError("the relay did not drain the outbox")
        await asyncio.sleep(0.1)
    return time.perf_counter()


def report_csv(payments: list[Any], rng: random.Random) -> tuple[str, Decimal, int]:
    lines = ["payment_id,status,amount,paid_at,reason"]
    paid_total = Decimal(0)
    failed = 0
    for payment in payments:
        if rng.random() < 0.01:
            lines.append(f"{payment['payment_id']},failed,0,,account_closed")
            failed += 1
        else:
            lines.append(
                f"{payment['payment_id']},paid,{payment['amount']},2027-02-03T12:00:00+02:00,"
            )
            paid_total += Decimal(payment["amount"])
    return "\n".join(lines) + "\n", paid_total, failed


class LoopWatch:
    """The longest the event loop went without running a 10 ms ticker while the service
    worked (`active`): how long it could answer nothing (no HTTP, no consumer heartbeat, no
    relay). The benchmark's own work (writing the provider's report) is not counted."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self.active = True
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            if self.active:
                self.longest_s = max(self.longest_s, now - last - 0.01)
            last = now

    def __enter__(self) -> LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


FSP = "ukrposhta"


async def registry_of(env: Any, n: int, settings: RegistrationSettings) -> tuple[list[Any], float]:
    """n synthetic households imported into registration (its bulk import, sealed, with dedup)
    and consenting to their details going to the provider; the active ones; the import's
    seconds. What the import published is marked sent: this benchmark starts at the cycle."""
    env.work.mkdir(parents=True, exist_ok=True)
    csv_path = env.work / f"cash-households-{n}-seed24-v{GENERATOR_VERSION}.csv"
    if not csv_path.exists():
        write_csv(generate(n, seed=24, latin=False), csv_path)
    started = time.perf_counter()
    await run_import(settings, csv_path, ImportOptions(partner_org="BENCH", source=settings.source))
    imported_s = time.perf_counter() - started
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        await conn.execute("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL")
        await conn.execute(
            "INSERT INTO consents (consent_id, household_id, purpose, recorded_by, recorded_at,"
            " recipient) SELECT gen_random_uuid(), household_id, 'data_sharing', 'BENCH', now(),"
            " $1 FROM households WHERE status = 'active'",
            FSP,
        )
        await conn.execute(
            "UPDATE households SET data_sharing_with = ARRAY[$1] WHERE status = 'active'", FSP
        )
        registry = await conn.fetch(
            "SELECT household_id, size, adm1_pcode, displacement_status, vulnerabilities,"
            " consents FROM households WHERE status = 'active'"
        )
    finally:
        await conn.close()
    return list(registry), imported_s


async def provider_file(registration: Any, cycle_id: str, liaison: dict[str, str]) -> str:
    """The provider's file, once registration has every instruction (409 until then)."""
    while True:
        answer = await registration.get(f"/payment-files/{cycle_id}", headers=liaison, timeout=1800)
        if answer.status_code == 200:
            return str(answer.text)
        assert answer.status_code in (404, 409), answer.text
        await asyncio.sleep(0.5)


async def run(env: Any) -> dict[str, Any]:
    n = env.setting("cash_households", 100_000)
    registration_settings = isolated_settings(
        RegistrationSettings, kek=new_kek("bench"), log_level="WARNING"
    )
    settings = isolated_settings(CashSettings, log_level="WARNING")
    rules = settings.rules()
    officer = auth_headers(CASH_READ, CASH_WRITE, sub="user:bench-officer")
    approver = auth_headers(CASH_READ, CASH_APPROVE, sub="user:bench-approver")
    liaison = auth_headers(REGISTRATION_PAYMENT_FILES, sub="user:bench-provider-liaison")
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(service_database(registration_settings))
        registry, imported_s = await registry_of(env, n, registration_settings)
        print(f"  registration imported {n:,} households in {imported_s:.1f} s", flush=True)
        database = await stack.enter_async_context(service_database(settings))
        cash = await stack.enter_async_context(running_app(build_app(settings), headers=officer))
        registration = await stack.enter_async_context(
            running_app(registration_app(registration_settings))
        )
        conn = database.conn
        started = time.perf_counter()
        cost = await seed(conn, registry, rules)
        seeded_s = time.perf_counter() - started
        print(f"  cash seeded with {len(registry):,} households in {seeded_s:.1f} s", flush=True)
        budget = (cost * Decimal("0.95")).quantize(Decimal("0.01"))

        watch = LoopWatch()
        watch.__enter__()
        t0 = time.perf_counter()
        opened = await cash.post(
            "/cycles",
            json={
                "adm1_pcodes": sorted({row["adm1_pcode"] for row in registry}),
                "first_month": "2027-02",
                "months": 3,
                "budget_uah": str(budget),
                "fsp": FSP,
                "modality": "cash_pickup",
            },
            timeout=600,
        )
        assert opened.status_code == 201, opened.text
        cycle = opened.json()
        t_open = time.perf_counter()
        print(f"  opened: {cycle['proposed']['households']:,} proposed in {t_open - t0:.1f} s")
        approved = await cash.post(
            f"/cycles/{cycle['cycle_id']}/approval", headers=approver, timeout=600
        )
        assert approved.status_code == 200, approved.text
        t_approved = time.perf_counter()
        payments_n = approved.json()["payments"]
        print(f"  approved: {payments_n:,} payments in {t_approved - t_open:.1f} s", flush=True)
        file_text = await provider_file(registration, cycle["cycle_id"], liaison)
        t_file = time.perf_counter()
        rows = list(csv.DictReader(io.StringIO(file_text)))
        print(
            f"  registration's file: {len(rows):,} payees in {t_file - t_approved:.1f} s "
            "after the approval",
            flush=True,
        )

        watch.active = False
        text, paid_total, failed = report_csv(rows, random.Random(7))  # noqa: S311
        await asyncio.sleep(0.02)  # the ticker notes the bench's own work before it counts
        watch.active = True
        t_report = time.perf_counter()
        reconciled = await cash.post(
            f"/cycles/{cycle['cycle_id']}/reports",
            json={"control_total_uah": str(paid_total), "csv": text},
            timeout=600,
        )
        assert reconciled.status_code == 201, reconciled.text
        result = reconciled.json()
        assert result["reconciled"] and result["failed"] == failed, result
        t_reconciled = time.perf_counter()
        print(f"  reconciled in {t_reconciled - t_report:.1f} s", flush=True)
        t_all_published = await drained(conn)
        print(f"  published in {t_all_published - t_reconciled:.1f} s", flush=True)
        watch.__exit__()
        print(f"  longest event-loop stall: {watch.longest_s:.2f} s", flush=True)
        events = await conn.fetchval("SELECT count(*) FROM outbox")
        withheld = payments_n - len(rows)

    approve_to_reconciled = (t_file - t_open) + (t_reconciled - t_report)
    summary = {
        "payments": payments_n,
        "approval_to_reconciled_s": round(approve_to_reconciled, 1),
        "longest_loop_stall_s": round(watch.longest_s, 2),
    }
    table = [
        {
            "figure": f"open a cycle of {len(registry):,} households (proposal)",
            "value": f"{t_open - t0:.1f} s",
        },
        {
            "figure": f"approve: {payments_n:,} PaymentInstructed",
            "value": f"{t_approved - t_open:.1f} s",
        },
        {
            "figure": "registration's provider file (relay, consume, write)",
            "value": f"{t_file - t_approved:.1f} s",
        },
        {"figure": "reconcile the provider's report", "value": f"{t_reconciled - t_report:.1f} s"},
        {"figure": "relay: outcomes on Kafka", "value": f"{t_all_published - t_reconciled:.1f} s"},
        {"figure": "approval to reconciled report", "value": f"{approve_to_reconciled:.1f} s"},
        {"figure": "longest event-loop stall in those steps", "value": f"{watch.longest_s:.2f} s"},
    ]
    return {
        "summary": summary,
        "table": table,
        "notes": [
            f"{n:,} synthetic households imported by registration's bulk import in "
            f"{imported_s:.1f} s (sealed, deduplicated; {len(registry):,} stay after merges), "
            f"each consenting to share its details with {FSP}; cash seeded with them by COPY "
            f"(projection, and the entitlement its rules give a cash need) in {seeded_s:.1f} s. "
            "Then, with cash and registration running in this process: a cycle opened and "
            "approved through cash's API (a second person); registration consumes the "
            "instructions and writes the provider's file (cash pick-up: names and documents); "
            "the provider's report (99% paid, 1% failed) reconciled. Approval to reconciled "
            "report counts the service steps, not the benchmark writing the report.",
        ],
        "households": n,
        "proposed": cycle["proposed"]["households"],
        "waiting": cycle["waiting"]["households"],
        "payments": payments_n,
        "paid": result["paid"],
        "failed": result["failed"],
        "open_s": round(t_open - t0, 2),
        "approve_s": round(t_approved - t_open, 2),
        "provider_file_s": round(t_file - t_approved, 2),
        "file_rows": len(rows),
        "withheld": withheld,
        "reconcile_s": round(t_reconciled - t_report, 2),
        "publish_outcomes_s": round(t_all_published - t_reconciled, 2),
        "approval_to_reconciled_s": round(approve_to_reconciled, 2),
        "events_published": events,
    }
