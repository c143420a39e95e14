"""The 5W export on the real broker, reading only records this test produced itself.

The delivered topic is shared with every other test and the demo and keeps everything
forever (hundreds of thousands of records on a busy machine), so the test publishes its
deliveries (with household ids of its own) to a topic created for it, exports that topic
from the beginning, and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.envelope import new_envelope
from aidmesh_contracts.examples import example
from aidmesh_ops.fivew import export_5w
from aidmesh_runtime.kafka import operator_auth
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

KAFKA = os.environ.get("AIDMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def delivery(org: str, **changes: object) -> AssistanceDelivered:
    fields = example(AssistanceDelivered.event_type) | {
        "delivery_id": str(uuid4()),
        "household_id": str(uuid4()),
        "partner_org": org,
    }
    return AssistanceDelivered.model_validate(fields | changes)


async def _admin(action: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=KAFKA, **operator_auth(), client_id="aidmesh-fivew-tests"
    )
    await admin.start()
    try:
        if action == "create":
            await admin.create_topics([NewTopic(topic, 3, 1)])
        else:
            await admin.delete_topics([topic])
    finally:
        await admin.close()


@pytest.fixture
def topic() -> Iterator[str]:
    name = f"aidmesh.test.fivew{uuid4().hex[:12]}.v1"
    asyncio.run(_admin("create", name))
    yield name
    with contextlib.suppress(Exception):  # a leftover test topic is harmless
        asyncio.run(_admin("delete", name))


async def publish(topic: str, events: list[AssistanceDelivered]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, **operator_auth(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for event in events:
            envelope = new_envelope(event, source="/aidmesh/ops-tests", time=datetime.now(UTC))
            await producer.send_and_wait(
                topic,
                value=event.model_dump_json().encode(),
                key=event.subject().encode(),
                headers=envelope.to_headers(),
            )
    finally:
        await producer.stop()


def test_the_export_counts_each_delivery_on_the_topic_once(topic: str, tmp_path: Path) -> None:
    org = f"T5W-{uuid4().hex[:10].upper()}"
    kit = delivery(org, value={"amount": "4200.00", "currency": "UAH"})
    repair = delivery(
        org,
        activity="shelter.light_repair",
        value={"amount": "27850.50", "currency": "UAH"},
        delivered_at="2026-02-03T16:40:00+02:00",
    )
    unpriced = delivery(org, value=None, persons_reached=2)
    too_old = delivery(org, delivered_at="2025-06-01T10:00:00+03:00")
    # The kit is published twice (a producer retry, a replay): it is still one delivery.
    asyncio.run(publish(topic, [kit, repair, unpriced, too_old, kit]))
    out, ids_out = tmp_path / "5w.csv", tmp_path / "5w-deliveries.csv"

    summary = export_5w(KAFKA, out, since=date(2026, 1, 1), ids_out=ids_out, topic=topic)

    header, hxl, *data = list(csv.reader(out.open(encoding="utf-8")))
    ours = [dict(zip(header, row, strict=True)) for row in data if row[0] == org]
    assert hxl[0] == "#org"
    assert [
        (r["activity"], r["month"], r["persons_reached"], r["value_uah"], r["deliveries"])
        for r in ours
    ] == [
        ("shelter.light_repair", "2026-02", "4", "27850.50", "1"),
        ("shelter.winterization_kit", "2026-01", "6", "4200.00", "2"),
    ]
    assert ours[1]["deliveries_without_value"] == "1"
    listed = [line[-1] for line in list(csv.reader(ids_out.open(encoding="utf-8")))[2:]]
    assert sorted(listed) == sorted(str(d.delivery_id) for d in (kit, repair, unpriced))
    assert (summary.records, summary.rows, summary.deliveries) == (5, 2, 3)
    assert (summary.duplicates, summary.conflicts, summary.before_since) == (1, 0, 1)
    assert summary.skipped == ()
