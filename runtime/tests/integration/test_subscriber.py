"""The consumer running its own fetch loop on the real broker: outbox → broker → handler →
inbox, with offsets committed only after processing, and poison records not stopping it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED
from aidmesh_runtime.consumer import EventConsumer
from aidmesh_runtime.kafka import operator
from aidmesh_runtime.outbox import Outbox
from aiokafka import AIOKafkaProducer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("relay")]

Eventually = Callable[..., Awaitable[None]]
EffectsOf = Callable[[UUID], Awaitable[int]]


@pytest.fixture
async def subscribed(
    kafka_bootstrap: str,
    make_consumer: Callable[..., EventConsumer],
    group_at_end: Callable[..., Awaitable[str]],
) -> AsyncIterator[EventConsumer]:
    """An EventConsumer consuming in the background, in a new group that begins at the
    current end of the topic."""
    consumer = make_consumer(name="runtime-tests-subscriber")
    await consumer.start(
        kafka=operator(kafka_bootstrap).aiokafka(),
        group_id=await group_at_end(*consumer.topics),
        offset_reset="earliest",
        client_id="runtime-tests-subscriber",
    )
    yield consumer
    await consumer.stop()


async def add_deliveries(pool: asyncpg.Pool, outbox: Outbox, *events: AssistanceDelivered) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await outbox.add(conn, event)


async def test_an_event_from_the_outbox_is_handled_once_by_the_subscribed_consumer(
    subscribed: EventConsumer,
    pool: asyncpg.Pool,
    outbox: Outbox,
    delivery: Callable[..., AssistanceDelivered],
    effects_of: EffectsOf,
    eventually: Eventually,
) -> None:
    event = delivery()

    await add_deliveries(pool, outbox, event)

    async def handled() -> bool:
        return await effects_of(event.delivery_id) == 1

    await eventually(handled, what="the delivery to be handled", timeout_s=20)
    assert subscribed.outcomes["handled"] >= 1


async def test_a_poison_record_does_not_stop_the_subscribed_consumer(
    subscribed: EventConsumer,
    producer: AIOKafkaProducer,
    pool: asyncpg.Pool,
    outbox: Outbox,
    delivery: Callable[..., AssistanceDelivered],
    read_from_now: Callable[..., Awaitable],
    effects_of: EffectsOf,
    eventually: Eventually,
) -> None:
    dlq = await read_from_now(ASSISTANCE_DELIVERED + ".dlq")
    household_id = uuid4()
    event = delivery(household_id)
    key = str(household_id).encode()

    # Same key, so the same partition: the poison record comes first and must not block.
    await producer.send_and_wait(ASSISTANCE_DELIVERED, key=key, value=b"\x00\xff not json")
    await add_deliveries(pool, outbox, event)

    async def handled() -> bool:
        return await effects_of(event.delivery_id) == 1

    await eventually(handled, what="the delivery after the poison record", timeout_s=20)
    [letter] = await dlq.wait_for("the poison record", select=lambda r: r.key == key)
    assert letter.value == b"\x00\xff not json"
    assert dict(letter.headers)["aidmesh_dlq_service"] == b"runtime-tests-subscriber"
