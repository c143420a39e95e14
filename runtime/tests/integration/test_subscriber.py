"""The consumer running its own fetch loop on the real broker: outbox → broker → handler →
inbox, with offsets committed only after processing, and poison records not stopping it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED
from aidmesh_runtime.consumer import EventConsumer, Handler
from aidmesh_runtime.db import RUNTIME_MIGRATIONS, create_pool, load_migrations, migrate
from aidmesh_runtime.dlq import DeadLetters
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


async def test_a_batch_that_fails_for_a_reason_not_its_records_is_retried_never_skipped(
    kafka_bootstrap: str,
    new_database: Callable[[], Awaitable[str]],
    producer: AIOKafkaProducer,
    pool: asyncpg.Pool,
    outbox: Outbox,
    delivery: Callable[..., AssistanceDelivered],
    note_delivery: Handler,
    group_at_end: Callable[..., Awaitable[str]],
    eventually: Eventually,
) -> None:
    # A database whose inbox table is missing (a migration not applied): claiming fails
    # with an error that is neither a record's fault nor an outage.
    broken = await create_pool(await new_database(), size=2)
    await broken.execute(
        "CREATE TABLE deliveries_noted (delivery_id uuid NOT NULL, event_id uuid NOT NULL)"
    )
    consumer = EventConsumer(
        name="runtime-tests-broken",
        pool=broken,
        outbox=outbox,
        dead_letters=DeadLetters(producer=producer, service="runtime-tests-broken"),
        handlers={AssistanceDelivered: note_delivery},
        retry_attempts_before_unready=1,
        max_backoff_s=0.2,
    )
    await consumer.start(
        kafka=operator(kafka_bootstrap).aiokafka(),
        group_id=await group_at_end(*consumer.topics),
        offset_reset="earliest",
        client_id="runtime-tests-broken",
    )
    try:
        event = delivery()
        await add_deliveries(pool, outbox, event)

        async def failing() -> bool:
            return not consumer.healthy and "UndefinedTable" in (consumer.last_error or "")

        await eventually(failing, what="the consumer to say it is failing", timeout_s=20)
        async with broken.acquire() as conn:
            await migrate(conn, load_migrations("runtime", RUNTIME_MIGRATIONS))

        async def handled() -> bool:
            return (
                await broken.fetchval(
                    "SELECT count(*) FROM deliveries_noted WHERE delivery_id = $1",
                    event.delivery_id,
                )
                == 1
            )

        await eventually(handled, what="the same batch, handled once the table exists")
        assert consumer.healthy
    finally:
        await consumer.stop()
        await broken.close()
