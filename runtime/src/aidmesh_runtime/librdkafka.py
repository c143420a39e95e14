"""The service's Kafka producer on librdkafka (confluent-kafka): the relay's and the dead
letters'.

Why not aiokafka here (ADR 0012): aiokafka builds, partitions and tracks every record in
Python. Measured on this machine (bench/hop.py's records, idempotent, acks=all): aiokafka's
send() costs ~58 µs of CPU per record and its batch API ~28 µs, librdkafka ~11 µs, with its
work in its own C threads. The relay publishes every event AidMesh makes, so that is most
of a hop's produce stage.

How it fits asyncio: `produce()` only queues (it never blocks on the network); a thread of
ours serves librdkafka's delivery reports (`poll`) and settles one asyncio future per call
of `send_many` when every record of it was acknowledged, or failed. Guarantees are those of
the aiokafka producer it replaces: idempotent (acks=all, no duplicates or reordering on
retry, per-partition order kept), and the partition of a key is the Java client's
(`murmur2_random`, as aiokafka's default partitioner), so a key's records stay on one
partition whichever client wrote them.

A producer whose idempotence state is lost for good (a fatal error) is replaced at the next
send: the relay re-sends what was not marked sent, and the consumers' inboxes drop what had
reached the broker. (aiokafka's idempotent producer never recovered from a broker outage
longer than its request timeout: OutOfOrderSequenceNumber on every later batch. librdkafka
bumps its epoch and goes on by itself; a renewal is for what it reports as fatal.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any, TypeAlias, cast

import structlog
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import MessageSizeTooLargeError
from confluent_kafka import KafkaError, KafkaException, Producer

from .producer import Headers, Record

_Headers: TypeAlias = list[tuple[str, str | bytes | None]]

log = structlog.get_logger(__name__)

#: How long the delivery thread waits for reports at a time (also how soon it notices stop).
_POLL_S = 0.1


class DeliveryFailed(AIOKafkaError):  # type: ignore[misc]  # aiokafka has no type information
    """librdkafka could not deliver a record (after its own retries); the caller retries."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(f"{error.name()}: {error.str()}")
        self.error = error


class LibrdkafkaProducer:
    """A confluent-kafka Producer behind the runtime's `Producer` protocol."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {
            **config,
            "enable.idempotence": True,  # acks=all; no duplicates or reordering on retry
            "partitioner": "murmur2_random",  # the Java client's and aiokafka's choice
            "logger": logging.getLogger("librdkafka"),  # its lines through our logging
        }
        self._producer: Producer | None = None
        self._broken: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="kafka-deliveries", daemon=True)
        self._thread.start()

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then stop serving reports."""
        producer = self._producer
        if producer is not None:
            left = await asyncio.to_thread(producer.flush, timeout_s)
            if left:
                log.warning("kafka_producer_stopped_with_undelivered", records=left)
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)

    def _serve(self) -> None:
        """Delivery reports, on this thread (poll releases the GIL while it waits)."""
        while not self._stopping.is_set():
            producer = self._producer
            if producer is not None:
                producer.poll(_POLL_S)
            broken = self._broken
            if broken is not None and broken is not producer:
                broken.poll(0)  # its last reports settle the futures still waiting on it

    async def send_many(self, records: Sequence[Record]) -> list[asyncio.Future[object]]:
        """Queue the records in their order; one future, done when all were acknowledged
        (or failed with the first error)."""
        producer = self._usable()
        assert self._loop is not None, "start() first"
        pending = _Pending(self._loop, len(records), self, producer)
        if not records:
            pending.settle_now()
            return [pending.future]
        queued = 0
        on_delivery = pending.delivered
        try:
            for topic, key, value, given in records:
                # A list, as produce() takes them (the relay's already are).
                headers = cast(_Headers, given if isinstance(given, list) else list(given))
                try:  # queued at once, unless librdkafka's queue is full
                    producer.produce(
                        topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                    )
                except BufferError:
                    await self._produce_when_room(producer, topic, key, value, headers, on_delivery)
                except KafkaException as exc:
                    raise _produce_error(exc) from exc
                queued += 1
        except BaseException as exc:
            pending.abandon(len(records) - queued, exc)
            raise
        return [pending.future]

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> asyncio.Future[object]:
        [future] = await self.send_many([(topic, key, value, headers or ())])
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> object:
        return await (await self.send(topic, value, key, headers=headers))

    async def _produce_when_room(
        self,
        producer: Producer,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: _Headers,
        on_delivery: Any,
    ) -> None:
        while True:
            await asyncio.sleep(0.01)  # its queue is full: wait for deliveries to make room
            try:
                producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
                return
            except BufferError:
                continue
            except KafkaException as exc:
                raise _produce_error(exc) from exc

    def _usable(self) -> Producer:
        """The current producer, or a new one if the current one hit a fatal error."""
        assert self._producer is not None, "start() first"
        if self._producer is self._broken:
            self._producer = Producer(self._config)
            self.renewals += 1
            log.warning("kafka_producer_renewed", renewals=self.renewals)
        return self._producer

    def _note(self, producer: Producer, error: KafkaError) -> None:
        if error.fatal():
            self._broken = producer


def _produce_error(exc: KafkaException) -> Exception:
    """What a record refused at produce() raises: too large (dead-letter it), or failed."""
    error: KafkaError = exc.args[0]
    if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        too_large: Exception = MessageSizeTooLargeError(error.str())
        return too_large
    return DeliveryFailed(error)


class _Pending:
    """The records of one `send_many`: its future is settled, on the event loop, by the
    delivery report of its last record."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        count: int,
        owner: LibrdkafkaProducer,
        producer: Producer,
    ) -> None:
        self.future: asyncio.Future[object] = loop.create_future()
        self._loop = loop
        self._left = count
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # reports arrive on the delivery thread
        self._owner = owner
        self._producer = producer

    def delivered(self, error: KafkaError | None, _message: object) -> None:
        with self._lock:
            if error is not None and self._error is None:
                self._owner._note(self._producer, error)
                self._error = (
                    MessageSizeTooLargeError(error.str())
                    if error.code() == KafkaError.MSG_SIZE_TOO_LARGE
                    else DeliveryFailed(error)
                )
            self._left -= 1
            done = self._left == 0
        if done:
            self._loop.call_soon_threadsafe(self._settle)

    def abandon(self, never_queued: int, exc: BaseException) -> None:
        """Records that were never queued will have no report."""
        with self._lock:
            self._left -= never_queued
            self._error = self._error or exc
            done = self._left == 0
        if done:
            self._settle()

    def settle_now(self) -> None:
        self._settle()

    def _settle(self) -> None:
        if self.future.done():
            return
        if self._error is not None:
            self.future.set_exception(self._error)
            # Nobody may wait for it (the caller failed before): don't warn about that.
            with contextlib.suppress(BaseException):
                self.future.exception()
        else:
            self.future.set_result(None)
