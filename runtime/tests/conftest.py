"""Fixtures for the runtime tests.

Unit tests use none of the infrastructure below. Integration tests run on the real broker
and PostgreSQL: a fresh database per session (dropped at the end), the catalogue's topics
(created if missing, exactly as `aidmesh infra bootstrap` does), and readers that see only
what was produced after they started, because topics are shared with everything else on
the broker. Nothing sleeps to wait for Kafka: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered, Event
from aidmesh_contracts.envelope import new_envelope
from aidmesh_contracts.examples import example
from aidmesh_runtime.consumer import EventConsumer, Handler, HandlerContext
from aidmesh_runtime.db import RUNTIME_MIGRATIONS, create_pool, load_migrations, migrate
from aidmesh_runtime.dlq import DeadLetters
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.outbox import Outbox, OutboxRelay
from aidmesh_runtime.service import create_producer, create_relay_producer
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import drop_database, fresh_database, record_producer
from aidmesh_runtime.topics import ensure_topics
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

SOURCE = "/aidmesh/runtime-tests"
CONSUMER_NAME = "runtime-tests"
#: The relay polls this rarely, so a test that sees its event in seconds proves that
#: LISTEN/NOTIFY woke the relay at commit.
RELAY_POLL_INTERVAL_S = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid4().hex[:12]}"


# ---- infrastructure ------------------------------------------------------------------


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    return os.environ.get("AIDMESH_PG_DSN", "postgresql://postgres@127.0.0.1:5433/postgres")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("AIDMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


@pytest.fixture(scope="session")
async def new_database(admin_dsn: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Create fresh, empty test databases on demand (DSN returned); all dropped at the end."""
    created: list[str] = []

    async def create() -> str:
        name = unique_name("aidmesh_test_runtime")
        await fresh_database(name, owner="postgres", admin_dsn=admin_dsn)
        created.append(name)
        return admin_dsn.rsplit("/", 1)[0] + "/" + name

    yield create
    for name in created:
        await drop_database(name, admin_dsn=admin_dsn)


@pytest.fixture(scope="session")
async def pool(new_database: Callable[[], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's database, with the runtime's tables and a table of effects."""
    pool = await create_pool(await new_database(), size=10)
    async with pool.acquire() as conn:
        await migrate(conn, load_migrations("runtime", RUNTIME_MIGRATIONS))
        await conn.execute(
            "CREATE TABLE deliveries_noted (delivery_id uuid NOT NULL, event_id uuid NOT NULL)"
        )
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def kafka_topics(kafka_bootstrap: str) -> None:
    await ensure_topics(kafka_bootstrap, timeout_s=30)


@pytest.fixture(scope="session")
async def producer(kafka_bootstrap: str, kafka_topics: None) -> AsyncIterator[AIOKafkaProducer]:
    """The producer every service uses (idempotent, acks=all)."""
    producer = create_producer(
        ServiceSettings(kafka_bootstrap=kafka_bootstrap, kafka_username="admin")
    )
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="session")
async def relay(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topics: None
) -> AsyncIterator[OutboxRelay]:
    """The outbox relay of the session database, running in the background, with the
    producer a service gives its relay."""
    producer = create_relay_producer(
        ServiceSettings(kafka_bootstrap=kafka_bootstrap, kafka_username="admin")
    )
    await producer.start()
    relay = OutboxRelay(
        pool=pool, producer=producer, poll_interval_s=RELAY_POLL_INTERVAL_S, max_backoff_s=1.0
    )
    task = asyncio.create_task(relay.run(), name="outbox-relay")
    yield relay
    relay.stop()
    await asyncio.wait_for(task, timeout=15)
    await producer.stop()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox(source=SOURCE, clock=utc_now)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """`await eventually(condition, what=...)`: poll an async condition with a deadline."""

    async def wait(
        condition: Callable[[], Awaitable[bool]], *, what: str, timeout_s: float = 10.0
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not await condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.05)

    return wait


# ---- reading topics ------------------------------------------------------------------


class TopicReader:
    """Reads some topics from where they ended when the reader started."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.records: list[ConsumerRecord] = []

    async def wait_for(
        self,
        what: str,
        *,
        select: Callable[[ConsumerRecord], bool],
        count: int = 1,
        timeout_s: float = 10.0,
    ) -> list[ConsumerRecord]:
        """Read until `count` selected records arrived; return them in arrival order."""
        deadline = time.monotonic() + timeout_s
        while True:
            selected = [r for r in self.records if select(r)]
            if len(selected) >= count:
                return selected
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                raise AssertionError(
                    f"timed out after {timeout_s}s waiting for {what}: "
                    f"{len(selected)} of {count} arrived"
                )
            batches = await self._consumer.getmany(timeout_ms=min(remaining_ms, 200))
            for records in batches.values():
                self.records.extend(records)


@pytest.fixture
async def read_from_now(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> AsyncIterator[Callable[..., Awaitable[TopicReader]]]:
    """`await read_from_now(topic, ...)`: a reader that sees only records produced later."""
    consumers: list[AIOKafkaConsumer] = []

    async def start(*topics: str) -> TopicReader:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            **operator_auth(),
            group_id=None,
            enable_auto_commit=False,
        )
        await consumer.start()
        consumers.append(consumer)
        partitions = await all_partitions(producer, topics)
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve "the end" now, not at the first fetch
            await consumer.position(partition)
        return TopicReader(consumer)

    yield start
    for consumer in consumers:
        await consumer.stop()


async def all_partitions(producer: AIOKafkaProducer, topics: Sequence[str]) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(await producer.partitions_for(topic))
    ]


@pytest.fixture
async def produce_record(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> AsyncIterator[Callable[..., Awaitable[ConsumerRecord]]]:
    """Produce one record as given (any bytes, any headers) and return it as read back."""
    async with record_producer(producer, bootstrap=kafka_bootstrap) as produce:
        yield produce


@pytest.fixture
async def group_at_end(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> Callable[..., Awaitable[str]]:
    """A new consumer group whose committed offsets are the topics' current ends.

    A subscriber in it starts with what is produced next, not with the shared history of
    the topic, whatever its offset reset policy.
    """

    async def create(*topics: str) -> str:
        group_id = unique_name("aidmesh-runtime-tests")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            **operator_auth(),
            group_id=group_id,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            partitions = await all_partitions(producer, topics)
            consumer.assign(partitions)
            await consumer.commit(await consumer.end_offsets(partitions))
        finally:
            await consumer.stop()
        return group_id

    return create


# ---- events and consumers ------------------------------------------------------------


@pytest.fixture
def delivery() -> Callable[..., AssistanceDelivered]:
    """`delivery()`: an AssistanceDelivered to a household no other test uses.

    No AidMesh service consumes the assistance topic yet, so the records tests put there
    reach no running service.
    """

    def make(household_id: UUID | None = None) -> AssistanceDelivered:
        payload = example(AssistanceDelivered.event_type)
        payload["delivery_id"] = str(uuid4())
        payload["household_id"] = str(household_id or uuid4())
        return AssistanceDelivered.model_validate(payload)

    return make


@pytest.fixture
def headers_of() -> Callable[..., list[tuple[str, bytes]]]:
    """CloudEvents headers for an event, as a service would publish them."""

    def headers(event: Event, **overrides: Any) -> list[tuple[str, bytes]]:
        envelope = new_envelope(event, source=SOURCE, time=utc_now())
        return envelope.model_copy(update=overrides).to_headers()

    return headers


@pytest.fixture
def note_delivery() -> Handler:
    """A handler whose effect is one row per handling, in the handler's transaction."""

    async def handle(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        await ctx.conn.execute(
            "INSERT INTO deliveries_noted (delivery_id, event_id) VALUES ($1, $2)",
            event.delivery_id,
            ctx.envelope.id,
        )

    return handle


@pytest.fixture
def make_consumer(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, outbox: Outbox, note_delivery: Handler
) -> Callable[..., EventConsumer]:
    """`make_consumer(handler=...)`: an EventConsumer of AssistanceDelivered on the session
    database, dead-lettering through the session producer."""

    def make(*, handler: Handler | None = None, name: str = CONSUMER_NAME) -> EventConsumer:
        return EventConsumer(
            name=name,
            pool=pool,
            outbox=outbox,
            dead_letters=DeadLetters(producer=producer, service=name),
            handlers={AssistanceDelivered: handler or note_delivery},
            max_backoff_s=0.5,
        )

    return make


@pytest.fixture
def effects_of(pool: asyncpg.Pool) -> Callable[[UUID], Awaitable[int]]:
    """How many times the effect of a delivery was written."""

    async def count(delivery_id: UUID) -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM deliveries_noted WHERE delivery_id = $1", delivery_id
        )

    return count
