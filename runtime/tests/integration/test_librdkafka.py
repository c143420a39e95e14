"""The relay's producer (librdkafka) on the real broker: keys land where the Java client and
aiokafka put them, in order, and the errors the relay and the dead letters act on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import uuid4

import pytest
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED
from aidmesh_runtime.librdkafka import LibrdkafkaProducer
from aidmesh_runtime.service import create_relay_producer
from aidmesh_runtime.settings import ServiceSettings
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

pytestmark = pytest.mark.integration


@pytest.fixture
async def relay_producer(
    kafka_bootstrap: str, kafka_topics: None
) -> AsyncIterator[LibrdkafkaProducer]:
    producer = create_relay_producer(
        ServiceSettings(kafka_bootstrap=kafka_bootstrap, kafka_username="admin")
    )
    await producer.start()
    yield producer
    await producer.stop()


async def test_a_key_lands_on_the_partition_aiokafka_and_the_java_client_choose_in_order(
    relay_producer: LibrdkafkaProducer,
    producer: AIOKafkaProducer,
    read_from_now: Callable[..., Awaitable],
) -> None:
    reader = await read_from_now(ASSISTANCE_DELIVERED)
    partitions = sorted(await producer.partitions_for(ASSISTANCE_DELIVERED))
    keys = [str(uuid4()).encode() for _ in range(12)]
    records = [
        (ASSISTANCE_DELIVERED, key, f"{n}".encode(), [("test", b"librdkafka")])
        for n in range(5)
        for key in keys
    ]

    futures = await relay_producer.send_many(records)
    await asyncio.gather(*futures)

    ours = set(keys)
    seen = await reader.wait_for(
        "every record", select=lambda r: r.key in ours, count=len(records), timeout_s=20
    )
    for key in keys:
        of_key = [r for r in seen if r.key == key]
        assert {r.partition for r in of_key} == {DefaultPartitioner()(key, partitions, partitions)}
        assert [r.value for r in of_key] == [b"0", b"1", b"2", b"3", b"4"]
        assert all(("test", b"librdkafka") in r.headers for r in of_key)


async def test_a_record_larger_than_any_request_is_refused_as_too_large(
    relay_producer: LibrdkafkaProducer,
) -> None:
    too_large = b"x" * (17 * 1024 * 1024)  # above MAX_DLQ_MESSAGE_BYTES

    with pytest.raises(MessageSizeTooLargeError):
        await relay_producer.send_and_wait(ASSISTANCE_DELIVERED, value=too_large, key=b"k")


async def test_nothing_to_send_is_done_at_once(relay_producer: LibrdkafkaProducer) -> None:
    [future] = await relay_producer.send_many([])

    assert await asyncio.wait_for(future, timeout=1) is None
