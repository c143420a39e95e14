"""Fixtures for the `aidmesh dlq` tests, on the real broker (and PostgreSQL for one test).

The catalogue's DLQs are shared with every other test on the broker, so each test gets a
topic pair of its own, `aidmesh.test.<random>.v1` and its `.dlq`, created here and deleted
afterwards. Dead letters are written by the runtime's own DeadLetters, so they carry exactly
the headers a service would add. Nothing sleeps to wait for Kafka: waits poll a condition
with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.envelope import new_envelope
from aidmesh_contracts.examples import example
from aidmesh_contracts.topics import dlq_topic
from aidmesh_ops.cli import app
from aidmesh_runtime.consumer import EventConsumer
from aidmesh_runtime.db import RUNTIME_MIGRATIONS, create_pool, load_migrations, migrate
from aidmesh_runtime.dlq import DeadLetters
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.service import create_producer
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import database_dsn, drop_database, fresh_database, record_producer
from aidmesh_runtime.topics import MAX_MESSAGE_BYTES
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner, Result

SERVICE = "ops-dlq-tests"
Headers = list[tuple[str, bytes]]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("AIDMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    return os.environ.get("AIDMESH_PG_DSN", "postgresql://postgres@127.0.0.1:5433/postgres")


@pytest.fixture(scope="session")
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=kafka_bootstrap, **operator_auth(), client_id="ops-dlq-tests"
    )
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """The producer every service uses (idempotent, acks=all, 16 MiB records). One per
    test: a producer keeps asking for the metadata of every topic it wrote to, and the
    tests' topics are deleted."""
    producer = create_producer(
        ServiceSettings(kafka_bootstrap=kafka_bootstrap, kafka_username="admin")
    )
    await producer.start()
    yield producer
    await producer.stop()


# ---- a topic pair of the test's own ----------------------------------------------------


@pytest.fixture
async def topics(admin: AIOKafkaAdminClient) -> AsyncIterator[tuple[str, str]]:
    """`aidmesh.test.<random>.v1` (3 partitions) and its DLQ (1), as bootstrap makes them."""
    topic = f"aidmesh.test.{uuid4().hex[:12]}.v1"
    pair = (topic, dlq_topic(topic))
    config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    await admin.create_topics(
        [
            NewTopic(pair[0], 3, 1, topic_configs=config),
            NewTopic(pair[1], 1, 1, topic_configs=config),
        ]
    )

    async def known() -> bool:
        return set(pair) <= set(await admin.list_topics())

    await _until(known, what=f"{topic} and its DLQ in the broker's metadata")
    yield pair
    await admin.delete_topics(list(pair))


async def _until(
    condition: Callable[[], Awaitable[bool]], *, what: str, timeout_s: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """`await eventually(condition, what=...)`: poll an async condition with a deadline."""
    return _until


# ---- records -----------------------------------------------------------------------------


@pytest.fixture
def delivery() -> Callable[[], tuple[AssistanceDelivered, Headers]]:
    """A valid AssistanceDelivered for a new household, with its CloudEvents headers."""

    def make() -> tuple[AssistanceDelivered, Headers]:
        payload = example(AssistanceDelivered.event_type)
        payload["delivery_id"] = str(uuid4())
        payload["household_id"] = str(uuid4())
        event = AssistanceDelivered.model_validate(payload)
        envelope = new_envelope(event, source="/aidmesh/ops-tests", time=datetime.now(UTC))
        return event, envelope.to_headers()

    return make


@pytest.fixture
async def produce(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> AsyncIterator[Callable[..., Awaitable[ConsumerRecord]]]:
    """`await produce(topic, key=, value=, headers=)`: the record as a consumer reads it."""
    async with record_producer(producer, bootstrap=kafka_bootstrap) as produce:
        yield produce


@pytest.fixture
def dead_letter(
    producer: AIOKafkaProducer,
    produce: Callable[..., Awaitable[ConsumerRecord]],
    end_offset: Callable[[str], Awaitable[int]],
) -> Callable[..., Awaitable[tuple[ConsumerRecord, int]]]:
    """`await dead_letter(topic, key=, value=, headers=, reason=, exc=)`: publish a record to
    the test's topic and dead-letter it as a consumer would; return it and its DLQ offset."""
    letters = DeadLetters(producer=producer, service=SERVICE)

    async def make(
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        reason: str = "household not registered yet",
        exc: BaseException | None = None,
    ) -> tuple[ConsumerRecord, int]:
        record = await produce(topic, key=key, value=value, headers=headers)
        await letters.send(record, reason=reason, exc=exc or ValueError(reason))
        return record, await end_offset(dlq_topic(topic)) - 1  # only this test writes there

    return make


@pytest.fixture
async def end_offset(kafka_bootstrap: str) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """`await end_offset(topic)`: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, **operator_auth(), group_id=None)
    await consumer.start()

    async def end(topic: str) -> int:
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        return sum((await consumer.end_offsets(partitions)).values())

    yield end
    await consumer.stop()


@pytest.fixture
async def low_watermark(kafka_bootstrap: str) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, **operator_auth(), group_id=None)
    await consumer.start()

    async def low(topic: str) -> int:
        tp = TopicPartition(topic, 0)
        return (await consumer.beginning_offsets([tp]))[tp]

    yield low
    await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    cluster = await consumer._client.fetch_all_metadata()
    return sorted(cluster.partitions_for_topic(topic) or ())


@pytest.fixture
async def read_all(kafka_bootstrap: str) -> Callable[..., Awaitable[list[ConsumerRecord]]]:
    """`await read_all(topic, count=n)`: the topic's first `n` records (every partition,
    from the start; the test's own topic holds only the test's records)."""

    async def read(topic: str, *, count: int, timeout_s: float = 15.0) -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            **operator_auth(),
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=2 * MAX_MESSAGE_BYTES,
            fetch_max_bytes=2 * MAX_MESSAGE_BYTES,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            records: list[ConsumerRecord] = []
            deadline = time.monotonic() + timeout_s
            while len(records) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out after {timeout_s}s: {len(records)} of {count} records "
                        f"on {topic}"
                    )
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
            return sorted(records, key=lambda r: (r.partition, r.offset))
        finally:
            await consumer.stop()

    return read


# ---- the command line --------------------------------------------------------------------


@pytest.fixture
def aidmesh(kafka_bootstrap: str) -> Callable[..., Awaitable[Result]]:
    """`await aidmesh("dlq", "list", ...)`: run the CLI as an operator would.

    In a worker thread, because each command runs its own event loop (asyncio.run) and the
    tests' loop is running. No TTY there: like a script, without --yes nothing confirms.
    """
    runner = CliRunner()
    env = {"AIDMESH_KAFKA_BOOTSTRAP": kafka_bootstrap, "COLUMNS": "250"}

    async def run(*args: str, input: str | None = None) -> Result:
        return await asyncio.to_thread(runner.invoke, app, list(args), input=input, env=env)

    return run


# ---- a consumer on a fresh database (the headline test) ----------------------------------


@pytest.fixture(scope="session")
async def pool(admin_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A fresh database with the runtime's tables and a table of handler effects."""
    name = f"aidmesh_test_ops_dlq_{uuid4().hex[:10]}"
    await fresh_database(name, owner="postgres", admin_dsn=admin_dsn)
    pool = await create_pool(database_dsn(name, admin_dsn=admin_dsn), size=5)
    async with pool.acquire() as conn:
        await migrate(conn, load_migrations("runtime", RUNTIME_MIGRATIONS))
        await conn.execute(
            "CREATE TABLE deliveries_noted (delivery_id uuid NOT NULL, event_id uuid NOT NULL)"
        )
    yield pool
    await pool.close()
    await drop_database(name, admin_dsn=admin_dsn)


@pytest.fixture
async def run_consumer(
    kafka_bootstrap: str,
) -> AsyncIterator[Callable[[EventConsumer, str], None]]:
    """`run_consumer(consumer, topic)`: feed every record of the test's topic to the real
    EventConsumer in the background, as its subscriber would (one record at a time, in
    partition order). Its `outcomes` count what became of each."""
    tasks: list[asyncio.Task[None]] = []

    async def loop(event_consumer: EventConsumer, topic: str) -> None:
        reader = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            **operator_auth(),
            group_id=None,
            enable_auto_commit=False,
        )
        await reader.start()
        try:
            partitions = [TopicPartition(topic, p) for p in await _partitions(reader, topic)]
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            while True:
                for records in (await reader.getmany(timeout_ms=200)).values():
                    for record in records:
                        event_consumer.outcomes[await event_consumer.process(record)] += 1
        finally:
            await reader.stop()

    def start(event_consumer: EventConsumer, topic: str) -> None:
        tasks.append(asyncio.create_task(loop(event_consumer, topic), name="consumer"))

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
