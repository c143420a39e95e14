"""Experiment (ADR 0012, rejected): what PostgreSQL would save if the relay deleted a
published outbox row instead of marking it sent. Not part of `make bench`.

Runs the hop (bench/hop.py, one process, the default share traced) in turns with the
relay's mark as it is (UPDATE ... SET sent_at) and as a DELETE, and prints each run's rate
and the CPU per event of this process, PostgreSQL and the broker:

    AIDMESH_KAFKA_SECRETS_DIR=$PWD/var/secrets/kafka .venv/bin/python \\
        bench/experiments/outbox_delete_on_publish.py [runs per variant, 2]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hop
import uvloop
from aidmesh_runtime import outbox
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.testing import KAFKA
from aiokafka import AIOKafkaProducer

MARK_SENT = outbox.OutboxRelay._mark_sent


async def delete_published(self: outbox.OutboxRelay, conn: Any, ids: list[int]) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)


async def main(runs: int) -> None:
    # Done when every consumed event's output has left the outbox, either way.
    hop.SENT = (
        "SELECT (SELECT count(*) FROM inbox) - (SELECT count(*) FROM outbox WHERE sent_at IS NULL)"
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, **operator_auth(), enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        for _ in range(runs):
            for name, mark in (("update", MARK_SENT), ("delete", delete_published)):
                outbox.OutboxRelay._mark_sent = mark  # type: ignore[method-assign]
                n = 20_000
                run = await hop.aidmesh_hop(
                    hop.records(n), producer, trace_sample_ratio=hop.DEFAULT_RATIO
                )
                print(
                    f"{name}: {n / run['seconds']:,.0f} events/s; CPU per event: hop"
                    f" {run['cpu_us_per_event']:.0f} µs, PostgreSQL"
                    f" {run['postgres_cpu_us_per_event']:.0f} µs, broker"
                    f" {run['broker_cpu_us_per_event']:.0f} µs",
                    flush=True,
                )
    finally:
        outbox.OutboxRelay._mark_sent = MARK_SENT  # type: ignore[method-assign]
        await producer.stop()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2))
