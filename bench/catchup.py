"""Consumer catch-up after a backlog (issue 10, item 6).

A consumer group is positioned at the end of the household topic, then BENCH_BACKLOG
(200,000) HouseholdRegistered events are produced while nobody consumes. Measured next:
- raw aiokafka: a consumer in its own group reading the backlog to the end, committing the
  offsets of each batch;
- AidMesh: the one-hop service of bench/hop.py (inbox row and one NeedAssessed through the
  outbox per event, in the runtime's batch transactions) started on that backlog, from the
  start of its process's app to the last inbox row committed ("consumed") and to the last
  outbox row acknowledged by Kafka ("relayed").

Needs the local Kafka and PostgreSQL and no other consumer of the household topic doing work
(make bench stops the make up services).
"""

from __future__ import annotations

import time
from typing import Any

from aidmesh_contracts.topics import HOUSEHOLD
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.testing import KAFKA, unique
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition
from hop import (
    SENT,
    bench_settings,
    commit_at,
    consume_from,
    end_offsets,
    hop_service,
    produce_all,
    records,
    wait_count,
)


async def raw_catch_up(start: dict[TopicPartition, int], n: int) -> float:
    consumer = await consume_from(start, n, group=unique("bench-raw-catchup"))
    try:
        seen = 0
        started = time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(b) for b in batches.values())
            if batches:
                await consumer.commit(
                    {tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch}
                )
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def run(env: Any) -> dict[str, Any]:
    n = env.setting("backlog", 200_000)
    group = unique("bench-catchup")
    start = await end_offsets(HOUSEHOLD)
    await commit_at(group, start)

    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, **operator_auth(), enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        produce_s = await produce_all(producer, HOUSEHOLD, records(n))
    finally:
        await producer.stop()

    raw_s = await raw_catch_up(start, n)

    # Its relay in a process of its own (roles, ADR 0012), as a busy service runs it.
    settings = bench_settings(group=group, offset_reset="earliest", roles="api,consumer")
    started = time.perf_counter()
    async with hop_service(settings, relay_apart=True) as (conn, _):
        ready = time.perf_counter()
        consumed = await wait_count(conn, "SELECT count(*) FROM inbox", n)
        relayed = await wait_count(conn, SENT, n)
    consumed_s, relayed_s = consumed - started, relayed - started

    rates = {
        "raw_catch_up_per_s": n / raw_s,
        "aidmesh_consumed_per_s": n / consumed_s,
        "aidmesh_relayed_per_s": n / relayed_s,
    }
    ratio = rates["aidmesh_consumed_per_s"] / rates["raw_catch_up_per_s"]
    return {
        "backlog": n,
        "backlog_produce_seconds": round(produce_s, 1),
        "raw_catch_up_seconds": round(raw_s, 1),
        "aidmesh_start_seconds": round(ready - started, 1),
        "aidmesh_consumed_seconds": round(consumed_s, 1),
        "aidmesh_relayed_seconds": round(relayed_s, 1),
        **{k: round(v) for k, v in rates.items()},
        "aidmesh_to_raw_ratio": round(ratio, 3),
        "summary": {k: round(v) for k, v in rates.items()} | {"ratio": round(ratio, 3)},
        "table": [
            {
                "figure": f"raw aiokafka catch-up of {n:,} events (commit per batch)",
                "value": f"{raw_s:.1f} s, {rates['raw_catch_up_per_s']:,.0f} events/s",
            },
            {
                "figure": f"AidMesh catch-up of {n:,} events: consumed (inbox + handler)",
                "value": f"{consumed_s:.1f} s, {rates['aidmesh_consumed_per_s']:,.0f} events/s"
                f" (start-up {ready - started:.1f} s included)",
            },
            {
                "figure": "AidMesh catch-up: every output relayed to Kafka",
                "value": f"{relayed_s:.1f} s, {rates['aidmesh_relayed_per_s']:,.0f} events/s",
            },
            {"figure": "AidMesh consumed / raw catch-up", "value": f"{ratio:.3f}"},
        ],
        "notes": [
            f"{n:,} HouseholdRegistered events produced in {produce_s:.1f} s while no consumer"
            " ran; the AidMesh service's group had its offsets committed at the topic's end"
            " before, as a stopped service's would be. The service is bench/hop.py's (one"
            " NeedAssessed through the outbox per event), its consumer in-process and its relay in a"
            " process of its own (bench/_relay.py), 10% of flows traced, trace export off.",
        ],
    }
