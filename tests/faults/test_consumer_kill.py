"""kill -9 of a consuming service in the middle of a 20,000-event burst loses nothing and
applies nothing twice: after a restart every event's effect exists exactly once.

The consumer is the effects app (tests/faults/effects_app.py): a service built with the
runtime's `create_service_app` whose effects table has no unique constraint, so an event
applied twice would show as two rows. The burst goes to a topic this test owns, as the
app's test-only burst type (AssistanceDelivered's payload): nothing else on the broker
reads it, and it is deleted at the end.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.envelope import encode, new_envelope, schema_uri
from aidmesh_contracts.examples import example
from aidmesh_runtime.kafka import operator_auth
from aiokafka import AIOKafkaProducer, TopicPartition

pytestmark = pytest.mark.faults

BURST = 20_000
PER_HOUSEHOLD = 10  # deliveries per household, keyed by it: per-key order is checked too
KILL_AT = 0.3  # kill once about this share of the burst is applied
BURST_TYPE = "org.aidmesh.faults.delivery.burst.v1"  # as in effects_app.py

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def burst_of_deliveries(source: str) -> list[Record]:
    """The burst as (key, value, headers): CloudEvents binary mode, keyed by household.
    `quantity` numbers a household's deliveries in the order they are produced."""
    template = example(AssistanceDelivered.event_type)
    now = datetime.now(UTC)
    records = []
    for _ in range(BURST // PER_HOUSEHOLD):
        household_id = str(uuid4())
        for n in range(1, PER_HOUSEHOLD + 1):
            event = AssistanceDelivered.model_validate(
                template
                | {"delivery_id": str(uuid4()), "household_id": household_id, "quantity": n}
            )
            envelope = new_envelope(event, source=source, time=now).model_copy(
                update={"type": BURST_TYPE, "dataschema": schema_uri(BURST_TYPE)}
            )
            records.append((household_id.encode(), encode(event), envelope.to_headers()))
    return records


async def produce_fast(bootstrap: str, topic: str, records: list[Record]) -> dict[int, int]:
    """Send without awaiting each record, then flush; return the last offset per partition."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **operator_auth(), enable_idempotence=True, linger_ms=20,
        max_batch_size=512 * 1024,
    )  # fmt: skip
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in records
        ]
        await producer.flush()
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    last: dict[int, int] = {}
    for metadata in sent:
        last[metadata.partition] = max(last.get(metadata.partition, -1), metadata.offset)
    return last


async def test_a_consumer_killed_mid_burst_applies_every_event_exactly_once_after_restart(
    own_topic: str, databases: Any, services: Any, kafka: Any, poll: Any, report: Any
) -> None:
    database = await databases.create("effects", owner="postgres")
    group = f"aidmesh-effects-faults-{uuid4().hex[:10]}"
    await kafka.group_at_end(group, own_topic)
    effects = await services.start_effects(database=database, group=group, burst_topic=own_topic)
    records = burst_of_deliveries("/aidmesh/tests/faults")

    async def applied() -> tuple[int, int]:
        row = (
            await databases.fetch(
                database,
                "SELECT count(*), count(DISTINCT event_id) FROM effects",
            )
        )[0]
        return row[0], row[1]

    t0 = time.monotonic()
    last_offsets = await produce_fast(kafka.bootstrap, own_topic, records)
    produce_s = time.monotonic() - t0

    async def partly_applied() -> int:
        count, _ = await applied()
        return count if count >= KILL_AT * BURST else 0

    await poll(
        partly_applied, what=f"{KILL_AT:.0%} of the burst applied", timeout_s=60, interval_s=0.05
    )
    exit_code = effects.kill()
    killed_at_s = time.monotonic() - t0
    applied_at_kill, _ = await applied()
    inbox_at_kill = await databases.fetchval(database, "SELECT count(*) FROM inbox")
    assert 0 < applied_at_kill < BURST, "the kill must land in the middle of the burst"

    effects.start()
    # Includes the session timeout (10 s) after which the broker gives the killed member's
    # partitions to the new one.
    restart_ready_s = await effects.wait_ready()

    async def consumed_to_the_end() -> bool:
        committed = await kafka.committed(group)
        return all(
            committed.get(TopicPartition(own_topic, partition), -1) > offset
            for partition, offset in last_offsets.items()
        )

    await poll(consumed_to_the_end, what="the group to commit past the burst", timeout_s=180)
    total_s = time.monotonic() - t0
    count, distinct = await applied()
    out_of_order = await databases.fetchval(
        database,
        """SELECT count(*) FROM (
               SELECT household_id, array_agg(quantity ORDER BY id) AS seq FROM effects
               GROUP BY household_id) per_household
           WHERE seq <> (SELECT array_agg(q ORDER BY q) FROM unnest(seq) AS q)""",
    )
    skipped = effects.log_events("event_duplicate_skipped", run=2)
    dead_lettered = effects.log_events("event_dead_lettered")

    report(
        "consumer-kill",
        events_sent=BURST,
        households=BURST // PER_HOUSEHOLD,
        produce_s=produce_s,
        kill_signal="SIGKILL",
        exit_code=exit_code,
        killed_after_s=killed_at_s,
        effects_at_kill=applied_at_kill,
        inbox_rows_at_kill=inbox_at_kill,
        restart_ready_s=restart_ready_s,
        effects=count,
        distinct_event_ids=distinct,
        duplicates_skipped_after_restart=len(skipped),
        dead_lettered=len(dead_lettered),
        households_out_of_order=out_of_order,
        burst_to_all_applied_s=total_s,
        events_per_s_before_kill=applied_at_kill / killed_at_s,
        events_per_s_after_restart=(BURST - applied_at_kill)
        / (total_s - killed_at_s - restart_ready_s),
    )
    assert exit_code == -9
    assert (count, distinct) == (BURST, BURST)
    assert out_of_order == 0
    assert dead_lettered == []
