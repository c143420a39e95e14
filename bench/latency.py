"""Latency of one hop at fixed rates (issue 10, item 3): from the producer's database commit
to the consumer's database commit, p50 / p95 / p99 at 100, 1,000 and 5,000 events/s.

Producer: transactions on a pool of connections, one event each, written to the outbox
(`Outbox.add`, as every use case does) and started on a fixed schedule, each in a request
span as the service's API would make (the service's share of flows traced, 10% by default;
statements traced only in those); the clock is read right after each COMMIT returns. The
service's outbox relay publishes them.
Consumer: a second service in its own process (bench/_latency_consumer.py: inbox consumer,
batch transactions) whose handler does `NOTIFY bench_committed, '<event id>'` in its
transaction: PostgreSQL delivers it when that transaction commits, to a connection of the
benchmark that reads the clock on arrival. Both times are read by this process's monotonic
clock. (Two processes, as two services would run; the machine has two cores.)

Settings: BENCH_LATENCY_RATES ("100,1000,5000"), BENCH_LATENCY_SECONDS (10 per rate),
BENCH_LATENCY_POOL (10: the producer's connections; more reach a higher rate on a saturated
machine only by queueing, which the latency then shows: on 2026-12-07 here, 32 gave ~820/s
at p99 300–360 ms against ~735/s at p99 ~250 ms with 10).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from aidmesh_contracts import AssistanceDelivered, Location
from aidmesh_runtime.db import create_pool
from aidmesh_runtime.outbox import Outbox
from aidmesh_runtime.service import create_service_app
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.telemetry import statements_traced
from aidmesh_runtime.testing import ADMIN_DSN, drop_database, fresh_database, running_app, unique
from opentelemetry.trace import SpanKind, Tracer

TARGET_P99_MS_AT_1000 = 50.0
CHANNEL = "bench_committed"


class ProducerSettings(ServiceSettings):
    service_name = "bench"
    #: Not a catalogue service: it has no principal of its own, so it runs as the operator.
    kafka_username: str | None = "admin"


CONSUMER = Path(__file__).with_name("_latency_consumer.py")
CONSUMER_PORT = 19300


async def start_consumer(*, db_name: str, group: str) -> asyncio.subprocess.Process:
    env = os.environ | {
        "AIDMESH_BENCH_DB_NAME": db_name,
        "AIDMESH_BENCH_CONSUMER_GROUP": group,
        "AIDMESH_BENCH_CONSUMER_OFFSET_RESET": "latest",
        "AIDMESH_BENCH_HTTP_PORT": str(CONSUMER_PORT),
        "AIDMESH_OTLP_ENDPOINT": "",
        "AIDMESH_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, str(CONSUMER), env=env)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"http://127.0.0.1:{CONSUMER_PORT}/readyz")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    process.terminate()
    raise RuntimeError("the bench consumer did not get ready in 60 s")


def delivery(now: datetime) -> AssistanceDelivered:
    return AssistanceDelivered(
        delivery_id=uuid4(),
        household_id=uuid4(),
        sector="shelter",
        activity="shelter.winterization_kit",
        modality="in_kind",
        quantity=1,
        unit="kit",
        persons_reached=4,
        partner_org="BENCH",
        location=Location(adm1_pcode="UA63"),
        delivered_at=now,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def ensure_role() -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(
            "DO $$ BEGIN CREATE ROLE aidmesh_bench LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    finally:
        await admin.close()


async def one_rate(
    rate: int,
    seconds: float,
    producer_pool: asyncpg.Pool,
    outbox: Outbox,
    listener: Any,
    tracer: Tracer,
) -> dict[str, Any]:
    """Issue `rate` events/s for `seconds`; latencies (ms) of those the consumer committed."""
    committed_at: dict[UUID, float] = {}
    arrived: dict[UUID, float] = listener.arrived
    total = int(rate * seconds)
    interval = 1.0 / rate
    in_flight: set[asyncio.Task[None]] = set()
    limit = asyncio.Semaphore(producer_pool.get_max_size())

    async def produce_one() -> None:
        # As the service's API runs a use case: in a request span (a share of the flows
        # traced, as the service samples them), its statements traced only if it is.
        async with limit:
            with (
                tracer.start_as_current_span("POST /bench", kind=SpanKind.SERVER) as span,
                statements_traced(span.is_recording()),
            ):
                async with producer_pool.acquire() as conn:
                    async with conn.transaction():
                        envelope = await outbox.add(conn, delivery(datetime.now(UTC)))
                    committed_at[envelope.id] = time.monotonic()

    started = time.monotonic()
    behind = 0
    for i in range(total):
        due = started + i * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.1:
            behind += 1
        task = asyncio.create_task(produce_one())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    produce_seconds = time.monotonic() - started
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(committed_at.keys() & arrived.keys()) >= total:
            break
        await asyncio.sleep(0.1)
    latencies = [
        (arrived[event_id] - at) * 1000
        for event_id, at in committed_at.items()
        if event_id in arrived
    ]
    return {
        "rate_wanted": rate,
        "rate_achieved": round(total / produce_seconds),
        "events": total,
        "received": len(latencies),
        "issued_late_by_100ms": behind,
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
    }


class Listener:
    """Timestamps each event id the consumer's transactions announce at commit."""

    def __init__(self) -> None:
        self.arrived: dict[UUID, float] = {}

    def __call__(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.arrived[UUID(payload)] = time.monotonic()


async def run(env: Any) -> dict[str, Any]:
    rates = [int(r) for r in str(env.setting("latency_rates", "100,1000,5000")).split(",")]
    seconds = float(env.setting("latency_seconds", 10.0))
    pool_size = int(env.setting("latency_pool", 10))
    await ensure_role()
    common = {
        "consumer_offset_reset": "latest",
        "relay_poll_interval_s": 1.0,
        "otlp_endpoint": "",
        "log_level": "WARNING",
    }
    producer_settings = ProducerSettings(db_name=unique("aidmesh_bench_p"), **common)
    consumer_db = unique("aidmesh_bench_c")
    for database in (producer_settings.database, consumer_db):
        await fresh_database(database, owner="aidmesh_bench")
    results = []
    consumer = None
    try:
        with tempfile.TemporaryDirectory() as empty:
            producer_app = create_service_app(
                settings=producer_settings,
                migrations=Path(empty),
                title="bench producer",
                description="writes events to its outbox at a fixed rate",
            )
            consumer = await start_consumer(db_name=consumer_db, group=unique("bench-latency"))
            async with running_app(producer_app):
                listener = Listener()
                listen = await asyncpg.connect(ProducerSettings(db_name=consumer_db).database_dsn)
                await listen.add_listener(CHANNEL, listener)
                # The service pool, as its API's use cases get connections.
                pool = await create_pool(producer_settings.database_dsn, size=pool_size)
                outbox = Outbox(source="/aidmesh/bench", clock=lambda: datetime.now(UTC))
                tracer = producer_app.state.telemetry.tracer
                try:
                    for rate in rates:
                        print(f"    {rate} events/s for {seconds:.0f} s", flush=True)
                        results.append(
                            await one_rate(rate, seconds, pool, outbox, listener, tracer)
                        )
                finally:
                    await pool.close()
                    await listen.close()
    finally:
        if consumer is not None:
            consumer.terminate()
            await asyncio.wait_for(consumer.wait(), timeout=30)
        for database in (producer_settings.database, consumer_db):
            await drop_database(database)
    table = []
    for r in results:
        row = {
            "figure": f"commit→commit latency at {r['rate_wanted']:,}/s (achieved {r['rate_achieved']:,}/s)",
            "value": f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms",
        }
        if r["rate_wanted"] == 1000:
            row |= {
                "target": f"p99 <= {TARGET_P99_MS_AT_1000:.0f} ms",
                # Met only at the rate it is set for: a slower producer would flatter it.
                "met": r["p99_ms"] <= TARGET_P99_MS_AT_1000
                and r["received"] == r["events"]
                and r["rate_achieved"] >= 0.95 * r["rate_wanted"],
            }
        table.append(row)
    return {
        "rates": results,
        "summary": {f"p99_ms_at_{r['rate_wanted']}": r["p99_ms"] for r in results},
        "table": table,
        "notes": [
            "Producer (the benchmark process): one transaction per event (outbox row +"
            f" NOTIFY) on a pool of {pool_size}, and its service's relay (idempotent, acks=all)."
            " Consumer: a service process of its own, batch transactions with the inbox;"
            " its NOTIFY arrives at commit. Each use case runs in a request span, as the"
            " service's API would (the default share of flows traced); spans are not"
            " exported. rate_achieved is what the producer"
            " committed per second: below the wanted rate, the producer is the limit.",
        ],
    }
