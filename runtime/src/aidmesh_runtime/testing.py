"""Helpers for integration and end-to-end tests on the real broker and database.

They live in the runtime (not in a conftest) so every service's tests and the
end-to-end tests share one implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
from aidmesh_contracts import CATALOGUE, Envelope, Event, decode, encode
from aidmesh_contracts.envelope import new_envelope
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient, Response

from . import auth
from .kafka import operator_auth
from .service import create_service_app
from .settings import ServiceSettings
from .topics import MAX_MESSAGE_BYTES

KAFKA = os.environ.get("AIDMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
ADMIN_DSN = os.environ.get("AIDMESH_PG_DSN", "postgresql://postgres@127.0.0.1:5433/postgres")


async def fresh_database(name: str, *, owner: str, admin_dsn: str = ADMIN_DSN) -> None:
    """Drop (if present) and create an empty database owned by `owner`."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    finally:
        await conn.close()


async def drop_database(name: str, *, admin_dsn: str = ADMIN_DSN) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def database_dsn(name: str, *, admin_dsn: str = ADMIN_DSN) -> str:
    """DSN of another database on the admin DSN's server, as the admin user."""
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{name}"


@dataclass(frozen=True)
class Seen:
    """A record read from the broker, with its envelope parsed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    envelope: Envelope | None

    def event(self) -> Event:
        assert self.envelope is not None
        return decode(self.envelope, self.value)


class EventLog:
    """Reads every catalogue topic (and DLQ) from the end offsets at start, in background.

    Tests publish after `start()` and then `wait_for` what they expect, with a deadline.
    """

    def __init__(self, *, bootstrap: str = KAFKA, topics: Iterable[str] | None = None) -> None:
        self._bootstrap = bootstrap
        self._topics = (
            list(topics)
            if topics is not None
            else [name for entry in CATALOGUE for name in (entry.name, entry.dlq)]
        )
        self.records: list[Seen] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **operator_auth(),
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            await consumer.stop()
            raise RuntimeError(f"none of {self._topics} exists: run `make bootstrap`")
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve positions now, so "from start()" is exact
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    headers = {name: value.decode("utf-8", "replace") for name, value in r.headers}
                    try:
                        envelope = Envelope.from_headers(r.headers)
                    except ValueError:
                        envelope = None
                    self.records.append(
                        Seen(r.topic, r.partition, r.offset, r.key, r.value, headers, envelope)
                    )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    def of_flow(self, correlation_id: UUID) -> list[Seen]:
        return [
            r for r in self.records if r.envelope and r.envelope.correlationid == correlation_id
        ]

    async def wait_for(
        self,
        predicate: Callable[[list[Seen]], bool],
        *,
        select: Callable[[Seen], bool] = lambda r: True,
        timeout_s: float = 30.0,
        what: str = "expected events",
    ) -> list[Seen]:
        """Poll until predicate(selected records) holds; fail naming what was seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            selected = [r for r in self.records if select(r)]
            if predicate(selected):
                return selected
            if time.monotonic() > deadline:
                seen = [r.envelope.type if r.envelope else r.topic for r in selected]
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; saw {seen}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def event_log(**kwargs: object) -> AsyncIterator[EventLog]:
    log = EventLog(**kwargs)  # type: ignore[arg-type]
    await log.start()
    try:
        yield log
    finally:
        await log.stop()


async def publish(
    producer: AIOKafkaProducer,
    event: Event,
    *,
    source: str = "/aidmesh/tests",
    caused_by: Envelope | None = None,
    correlation_id: UUID | None = None,
) -> Envelope:
    """Publish one event as a service would (CloudEvents headers, key = subject)."""
    envelope = new_envelope(
        event,
        source=source,
        time=datetime.now(UTC),
        caused_by=caused_by,
        correlation_id=correlation_id,
    )
    await producer.send_and_wait(
        event.topic,
        value=encode(event),
        key=event.subject().encode(),
        headers=envelope.to_headers(),
    )
    return envelope


def unique(prefix: str) -> str:
    """A name unique to this test run (databases, consumer groups)."""
    return f"{prefix}_{uuid4().hex[:10]}"


def bare_service(
    settings: ServiceSettings, *, router: APIRouter | None = None, title: str = "test service"
) -> FastAPI:
    """A service made by the runtime's factory with no migrations of its own and no
    handlers: what every service gets from the runtime, for the runtime's own tests."""
    return create_service_app(
        settings=settings,
        migrations=Path(tempfile.mkdtemp(prefix="aidmesh-bare-")),
        router=router,
        title=title,
        description="A service made by the runtime's factory alone.",
    )


@contextlib.asynccontextmanager
async def running_app(
    app: FastAPI,
    *,
    ready_timeout_s: float = 30.0,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[AsyncClient]:
    """Run a service in-process (its real lifespan: database, Kafka, relay, consumer) and
    yield an HTTP client for it, once /readyz says ready (partitions assigned and the
    consumer knows where it starts reading). `headers` go with every request (typically
    `auth_headers(...)`; a request's own headers win)."""
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(
            transport=transport, base_url="http://service", headers=headers
        ) as client:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                response = await client.get("/readyz")
                if response.status_code == 200:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"service not ready: {response.text}")
                await asyncio.sleep(0.1)
            yield client


# ---- bearer tokens ------------------------------------------------------------------------
# A key pair made for this test session only (no key is ever committed): services built from
# isolated_settings trust its public key, and auth_headers signs with its private key.

TEST_KEY_ID = "test-session"


@functools.cache
def session_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def session_public_keys() -> str:
    """The session key pair's public key, as AIDMESH_AUTH_PUBLIC_KEYS (`<kid>:<base64>`)."""
    return auth.public_key_line(TEST_KEY_ID, session_signing_key().public_key())


def session_token(
    *scopes: str,
    org: str = "IOM",
    sub: str = "service:tests",
    ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    key: Ed25519PrivateKey | None = None,
    kid: str = TEST_KEY_ID,
) -> str:
    """A token signed by the session key (or `key`), issued `now` (default: now)."""
    return auth.sign_token(
        key=key or session_signing_key(),
        kid=kid,
        sub=sub,
        org=org,
        scopes=scopes,
        now=now or datetime.now(UTC),
        ttl=ttl,
    )


def bearer(token: str) -> dict[str, str]:
    """`Authorization: Bearer <token>`: the headers of a request sending this token."""
    return {"Authorization": f"Bearer {token}"}


def auth_headers(*scopes: str, org: str = "IOM", sub: str = "service:tests") -> dict[str, str]:
    """`Authorization: Bearer <token>` with these scopes, for `org`, valid for an hour."""
    for scope in scopes:
        if scope not in auth.SCOPES:
            raise ValueError(f"{scope} is not in the scope catalogue")
    return bearer(session_token(*scopes, org=org, sub=sub))


async def send_without_token(client: AsyncClient, method: str, url: str, **kwargs: Any) -> Response:
    """A request without the client's default Authorization header."""
    request = client.build_request(method, url, **kwargs)
    del request.headers["Authorization"]
    return await client.send(request)


S = TypeVar("S", bound=ServiceSettings)
E = TypeVar("E", bound=Event)


def isolated_settings(settings_class: type[S], **overrides: Any) -> S:
    """A service's settings for a test run: its own database and consumer group, reading
    from `latest` (a fresh group must not replay the shared history), a fast relay, and
    the session's public key to verify bearer tokens (auth_headers)."""
    name = settings_class.service_name
    values: dict[str, Any] = {
        "db_name": unique(f"aidmesh_test_{name}"),
        # Under the group prefix the service's Kafka principal is granted (aidmesh-<name>).
        "consumer_group": unique(f"aidmesh-{name}-test"),
        "consumer_offset_reset": "latest",
        "relay_poll_interval_s": 0.1,
        "auth_public_keys": session_public_keys(),
        "auth_public_keys_file": None,
    }
    return settings_class(**(values | overrides))


class Database:
    """A service's own database, read as an administrator would."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def eventually(
        self, query: str, *args: Any, timeout_s: float = 30.0, what: str = "a row"
    ) -> asyncpg.Record:
        """Poll until `query` returns a row; fail after the deadline naming what was awaited."""
        deadline = time.monotonic() + timeout_s
        while (row := await self.conn.fetchrow(query, *args)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.05)
        return row

    async def outbox(self, model: type[E]) -> list[tuple[Envelope, E]]:
        """The `model` events the service wrote to its outbox (the only way out), in order."""
        rows = await self.conn.fetch(
            "SELECT headers, payload FROM outbox WHERE headers @> $1::jsonb ORDER BY id",
            json.dumps([["ce_type", model.event_type]]),
        )
        found = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
            envelope = Envelope.from_headers(headers)
            event = decode(envelope, bytes(row["payload"]))
            assert isinstance(event, model)
            found.append((envelope, event))
        return found


@contextlib.asynccontextmanager
async def service_database(settings: ServiceSettings) -> AsyncIterator[Database]:
    """A fresh database for the service (owned by its role), and an administrator's
    connection to it; dropped afterwards."""
    await fresh_database(settings.database, owner=f"aidmesh_{settings.service_name}")
    conn = await asyncpg.connect(database_dsn(settings.database))
    try:
        yield Database(conn)
    finally:
        await conn.close()
        await drop_database(settings.database)


@contextlib.asynccontextmanager
async def kafka_producer(bootstrap: str = KAFKA) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer standing in for another service."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **operator_auth(), enable_idempotence=True
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def record_producer(
    producer: AIOKafkaProducer, *, bootstrap: str = KAFKA, timeout_s: float = 15.0
) -> AsyncIterator[Callable[..., Awaitable[ConsumerRecord]]]:
    """`await produce(topic, key=, value=, headers=)`: produce one record exactly as given
    (any bytes, any headers) and return it as a consumer reads it back."""
    fetcher = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **operator_auth(),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=2 * MAX_MESSAGE_BYTES,
        fetch_max_bytes=2 * MAX_MESSAGE_BYTES,
    )
    await fetcher.start()

    async def produce(
        topic: str, *, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> ConsumerRecord:
        sent = await producer.send_and_wait(topic, key=key, value=value, headers=headers)
        partition = TopicPartition(topic, sent.partition)
        fetcher.assign([partition])
        fetcher.seek(partition, sent.offset)
        record = await asyncio.wait_for(fetcher.getone(), timeout=timeout_s)
        assert (record.partition, record.offset) == (sent.partition, sent.offset)
        return record

    try:
        yield produce
    finally:
        await fetcher.stop()
