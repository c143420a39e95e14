"""A cash payment cycle of 100,000 households from approval to a reconciled report (issue 24).

The cash service runs in-process (its real lifespan: database, Kafka, relay, consumer) on a
database of its own, seeded by COPY with the households' projection and their entitlements
(decided by the service's own rules): the benchmark measures the cycle, not the events that
would have brought 100,000 households in. Then, through the service's HTTP API:

1. open: a programme officer opens a cycle for the oblasts; the list is proposed (ranked,
   within a budget that pays about 95% of them, the rest waiting);
2. approve: a second person approves; every PaymentInstructed is written to the outbox;
3. publish: the relay has put them all on Kafka;
4. reconcile: the provider's report (a CSV: 99% paid, 1% failed) is imported and reconciled
   (PaymentConfirmed + AssistanceDelivered per paid row, PaymentFailed per failed);
5. publish: the relay has put those on Kafka.

Settings: BENCH_CASH_HOUSEHOLDS (100000).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from aidmesh_cash import domain
from aidmesh_cash.app import build_app
from aidmesh_cash.settings import CashSettings
from aidmesh_contracts import NeedAssessed, Sector
from aidmesh_contracts.envelope import new_envelope
from aidmesh_runtime.auth import CASH_APPROVE, CASH_READ, CASH_WRITE
from aidmesh_runtime.testing import (
    auth_headers,
    isolated_settings,
    running_app,
    service_database,
)

OBLASTS = ("UA05", "UA12", "UA46", "UA63", "UA80")
UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"


async def seed(conn: asyncpg.Connection, n: int, rules: domain.CashRules) -> Decimal:
    """n households with an eligible cash need; returns what three months of all cost."""
    rng = random.Random(24)  # noqa: S311 - synthetic households, not a secret
    now = datetime.now(UTC)
    households, entitlements = [], []
    total = Decimal(0)
    flags = sorted(rules.priority.vulnerability)
    for _ in range(n):
        household = domain.Household(
            household_id=uuid4(),
            size=rng.randint(1, 7),
            displacement_status="idp",
            vulnerabilities=frozenset(rng.sample(flags, rng.choice((0, 0, 1, 2)))),
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
                rng.choice(OBLASTS),
                "idp",
                household.size,
                sorted(household.vulnerabilities),
                ["registration", "data_sharing"],
                now,
                uuid4(),
            )
        )
        entitlements.append(
            (
                household.household_id,
                need.assessment_id,
                need.severity,
                True,
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
            paid_total += payment["amount"]
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


async def run(env: Any) -> dict[str, Any]:
    n = env.setting("cash_households", 100_000)
    settings = isolated_settings(CashSettings, log_level="WARNING")
    rules = settings.rules()
    officer = auth_headers(CASH_READ, CASH_WRITE, sub="user:bench-officer")
    approver = auth_headers(CASH_READ, CASH_APPROVE, sub="user:bench-approver")
    async with (
        service_database(settings) as database,
        running_app(build_app(settings), headers=officer) as cash,
    ):
        conn = database.conn
        started = time.perf_counter()
        cost = await seed(conn, n, rules)
        seeded_s = time.perf_counter() - started
        print(f"  seeded {n:,} households in {seeded_s:.1f} s", flush=True)
        budget = (cost * Decimal("0.95")).quantize(Decimal("0.01"))

        watch = LoopWatch()
        watch.__enter__()
        t0 = time.perf_counter()
        opened = await cash.post(
            "/cycles",
            json={
                "adm1_pcodes": list(OBLASTS),
                "first_month": "2027-02",
                "months": 3,
                "budget_uah": str(budget),
                "fsp": "privatbank",
                "modality": "bank_transfer",
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
        t_instructed_published = await drained(conn)
        print(f"  published in {t_instructed_published - t_approved:.1f} s", flush=True)

        watch.active = False
        payments = await conn.fetch(
            "SELECT payment_id, amount FROM payments WHERE cycle_id = $1",
            UUID(cycle["cycle_id"]),
        )
        text, paid_total, failed = report_csv(list(payments), random.Random(7))  # noqa: S311
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

    approve_to_reconciled = (t_approved - t_open) + (t_reconciled - t_report)
    summary = {
        "payments": payments_n,
        "approval_to_reconciled_s": round(approve_to_reconciled, 1),
        "longest_loop_stall_s": round(watch.longest_s, 2),
        "with_publishing_s": round(
            (t_instructed_published - t_open) + (t_all_published - t_report), 1
        ),
    }
    table = [
        {"figure": f"open a cycle of {n:,} households (proposal)", "value": f"{t_open - t0:.1f} s"},
        {
            "figure": f"approve: {payments_n:,} PaymentInstructed",
            "value": f"{t_approved - t_open:.1f} s",
        },
        {
            "figure": "relay: instructions on Kafka",
            "value": f"{t_instructed_published - t_approved:.1f} s",
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
            f"{n:,} households seeded by COPY (projection and entitlements, by the service's "
            f"rules) in {seeded_s:.1f} s, then through the cash API in-process: open, approve "
            "(a second person), the provider's report (99% paid, 1% failed) reconciled. "
            "Relay publishing timed apart; registration's provider file not included.",
        ],
        "households": n,
        "proposed": cycle["proposed"]["households"],
        "waiting": cycle["waiting"]["households"],
        "payments": payments_n,
        "paid": result["paid"],
        "failed": result["failed"],
        "open_s": round(t_open - t0, 2),
        "approve_s": round(t_approved - t_open, 2),
        "publish_instructed_s": round(t_instructed_published - t_approved, 2),
        "reconcile_s": round(t_reconciled - t_report, 2),
        "publish_outcomes_s": round(t_all_published - t_reconciled, 2),
        "approval_to_reconciled_s": round(approve_to_reconciled, 2),
        "approval_to_all_published_s": round(
            (t_instructed_published - t_open) + (t_all_published - t_report), 2
        ),
        "events_published": events,
        "note": "seconds of the cash service in-process: HTTP, SQL, outbox; the relay's "
        "publishing to Kafka measured apart (publish_*); the provider's file (registration) "
        "is not part of it",
    }
