"""The service's Kafka producer, replaced by a fresh one when aiokafka's breaks for good.

aiokafka's idempotent producer does not survive a broker outage longer than its request
timeout (30 s). A batch that expires while its partition has no leader is failed after it
was given sequence numbers; the next batch of that partition reaches the broker with a gap,
is refused with OutOfOrderSequenceNumber, and so is every later one: the producer never
sends to that partition again. The outbox relay would back off and retry for ever without
publishing, until someone restarted the process (seen in tests/faults with a 45 s broker
outage; aiokafka 0.14).

`RenewingProducer` notes such errors (and a sender task that has died) and, at the next
send, replaces the producer with a new one: a new producer id, whose sequence numbers start
afresh. Nothing is lost by this: the relay re-sends every outbox row not yet marked sent,
and a record that did reach the broker before the break is a duplicate that the consumers'
inbox drops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.structs import RecordMetadata

log = structlog.get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]

#: The broker no longer accepts this producer's id, epoch or sequence numbers: retrying
#: with the same producer can never succeed.
PRODUCER_STATE_LOST: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)


class Producer(Protocol):
    """What the outbox relay and the dead letters need from a Kafka producer."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> asyncio.Future[RecordMetadata]: ...

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> RecordMetadata: ...


class RenewingProducer:
    """An AIOKafkaProducer made by `factory`, replaced when it can no longer send."""

    def __init__(self, factory: Callable[[], AIOKafkaProducer]) -> None:
        self._factory = factory
        self._producer: AIOKafkaProducer | None = None
        self._broken: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self.renewals = 0

    async def start(self) -> None:
        self._producer = await self._started()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        producer = await self._usable()
        try:
            future = await producer.send(topic, value=value, key=key, headers=headers)
        except PRODUCER_STATE_LOST:
            self._broken = producer
            raise
        future.add_done_callback(lambda f: self._note_failure(producer, f))
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> RecordMetadata:
        future = await self.send(topic, value=value, key=key, headers=headers)
        return await future

    def _note_failure(self, producer: AIOKafkaProducer, future: asyncio.Future[object]) -> None:
        if not future.cancelled() and isinstance(future.exception(), PRODUCER_STATE_LOST):
            self._broken = producer

    async def _usable(self) -> AIOKafkaProducer:
        """The current producer, or a new one if the current one can never send again.
        Raises (like a failed send) while the broker is unreachable: callers retry."""
        current = self._producer
        if current is not None and current is not self._broken and not _sender_died(current):
            return current  # the usual case: no lock for every record
        async with self._lock:
            assert self._producer is not None, "start() first"
            if self._producer is self._broken or _sender_died(self._producer):
                broken = self._producer
                self._producer = await self._started()
                self._broken = None
                self.renewals += 1
                log.warning("kafka_producer_renewed", renewals=self.renewals)
                # Its other partitions may still flush what they hold (duplicates at worst,
                # which inboxes drop); don't let a slow close hold up the new producer.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(broken.stop(), timeout=10)
            return self._producer

    async def _started(self) -> AIOKafkaProducer:
        producer = self._factory()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer


def _sender_died(producer: AIOKafkaProducer) -> bool:
    # aiokafka has no public "can this producer still send"; once its sender task has
    # ended, every send fails (aiokafka 0.14, pinned in uv.lock).
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    return task is not None and task.done()
