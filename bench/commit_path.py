"""What one use case's commit costs the service's CPU, piece by piece (issue 18: the latency
benchmark's producer cannot issue 1,000 events/s through the outbox on this machine).

Each piece runs BENCH_COMMIT_PATH_N times (3,000) after a warm-up, one after another on one
connection or a pool of two, under uvloop as the services run; the figure is this process's
CPU time per call (PostgreSQL's own CPU is not in it) and the wall time per call. The
latency benchmark's producer does "pool + transaction + outbox.add" for every event, on
the service pool (aidmesh_runtime.db.create_pool: no reset query on release unless the
connection took session state); asyncpg's default pool is measured beside it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aidmesh_runtime.db import create_pool
from aidmesh_runtime.outbox import Outbox
from aidmesh_runtime.testing import ADMIN_DSN, database_dsn, drop_database, fresh_database
from latency import delivery as delivery_at

DATABASE = "aidmesh_bench_commit_path"


async def run(env: Any) -> dict[str, Any]:
    n = env.setting("commit_path_n", 3000)
    await fresh_database(DATABASE, owner="postgres", admin_dsn=ADMIN_DSN)
    pool = await asyncpg.create_pool(database_dsn(DATABASE), min_size=2, max_size=2)
    figures: dict[str, tuple[float, float]] = {}
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE outbox (id bigserial PRIMARY KEY, event_id uuid, topic text,"
                " key text, headers jsonb, payload bytea, created_at timestamptz DEFAULT now(),"
                " sent_at timestamptz)"
            )
        outbox = Outbox(source="/bench", clock=lambda: datetime.now(UTC))
        row = outbox.prepare(delivery_at(datetime.now(UTC)))[1]

        async def measure(name: str, call: Callable[[], Awaitable[object]]) -> None:
            for _ in range(200):
                await call()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(n):
                await call()
            figures[name] = (
                (time.process_time() - cpu) / n * 1e6,
                (time.perf_counter() - wall) / n * 1e6,
            )

        async def prepare() -> None:
            outbox.prepare(delivery_at(datetime.now(UTC)))

        await measure("prepare the event, its envelope and outbox row", prepare)
        async with pool.acquire() as conn:

            async def select_1() -> None:
                await conn.execute("SELECT 1")

            async def begin_commit() -> None:
                async with conn.transaction():
                    pass

            async def insert() -> None:
                await outbox._write(conn, row)  # the INSERT (and NOTIFY) Outbox.add sends

            async def held_use_case() -> None:
                async with conn.transaction():
                    await outbox.add(conn, delivery_at(datetime.now(UTC)))

            await measure("one round trip (SELECT 1)", select_1)
            await measure("an empty transaction (BEGIN, COMMIT)", begin_commit)
            await measure("the outbox INSERT", insert)
            await measure("transaction + outbox.add, connection held", held_use_case)

        service_pool = await create_pool(database_dsn(DATABASE), size=2)
        try:
            for name, each in (
                ("asyncpg's default pool", pool),
                ("the service pool", service_pool),
            ):

                async def acquire_release(each: asyncpg.Pool = each) -> None:
                    async with each.acquire():
                        pass

                async def use_case(each: asyncpg.Pool = each) -> None:
                    async with each.acquire() as conn, conn.transaction():
                        await outbox.add(conn, delivery_at(datetime.now(UTC)))

                await measure(f"pool acquire + release, {name}", acquire_release)
                await measure(f"pool + transaction + outbox.add, {name}", use_case)
        finally:
            await service_pool.close()
    finally:
        await pool.close()
        await drop_database(DATABASE)
    cpu_of = {name: round(cpu) for name, (cpu, _) in figures.items()}
    return {
        **{f"cpu_us: {name}": cpu for name, cpu in cpu_of.items()},
        "summary": {"use_case_cpu_us": cpu_of[next(reversed(cpu_of))]},
        "table": [
            {"figure": name, "value": f"{cpu:.0f} µs CPU, {wall:.0f} µs wall per call"}
            for name, (cpu, wall) in figures.items()
        ],
    }
