"""`aidmesh infra skip-test-traffic`: the make up services' groups end up past the tests'
traffic, whether they had read part of a topic or never read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest
from aidmesh_ops.bootstrap import dev_groups, skip_to_end
from aidmesh_runtime.kafka import operator_auth
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

pytestmark = pytest.mark.integration


async def committed_total(kafka_bootstrap: str, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        **operator_auth(),
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        return sum([(await consumer.committed(tp)) or 0 for tp in partitions])
    finally:
        await consumer.stop()


async def test_a_group_that_never_read_the_topic_skips_all_of_it(
    kafka_bootstrap: str,
    topics: tuple[str, str],
    producer: AIOKafkaProducer,
    end_offset: Callable[[str], Awaitable[int]],
) -> None:
    topic, _ = topics
    for i in range(7):
        await producer.send_and_wait(topic, key=str(i).encode(), value=b"{}")
    group = f"aidmesh-ops-tests-{uuid4().hex[:8]}"

    skipped = await skip_to_end(kafka_bootstrap, {group: [topic]})

    assert skipped == {group: 7}
    assert await committed_total(kafka_bootstrap, group, topic) == await end_offset(topic) == 7


async def test_a_group_part_way_through_skips_only_the_rest(
    kafka_bootstrap: str, topics: tuple[str, str], producer: AIOKafkaProducer
) -> None:
    topic, _ = topics
    group = f"aidmesh-ops-tests-{uuid4().hex[:8]}"
    for i in range(4):
        await producer.send_and_wait(topic, key=str(i).encode(), value=b"{}")
    await skip_to_end(kafka_bootstrap, {group: [topic]})
    for i in range(5):
        await producer.send_and_wait(topic, key=str(i).encode(), value=b"{}")

    skipped = await skip_to_end(kafka_bootstrap, {group: [topic]})

    assert skipped == {group: 5}
    assert await committed_total(kafka_bootstrap, group, topic) == 9


def test_the_dev_groups_are_the_services_groups_on_the_topics_they_consume() -> None:
    groups = dev_groups()

    assert "aidmesh.registration.intake.v1" in groups["aidmesh-registration"]
    assert "aidmesh.protection.case.v1" in groups["aidmesh-audit"]
    assert "aidmesh.protection.case.v1" not in groups["aidmesh-shelter"]
