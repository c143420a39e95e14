"""Fixtures for shelter's integration tests: the service running in-process on the real broker
and a database of its own, a Kafka producer standing in for registration, and the event log.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aidmesh_runtime.testing import (
    KAFKA,
    Database,
    EventLog,
    event_log,
    isolated_settings,
    kafka_producer,
    running_app,
    service_database,
)
from aidmesh_shelter.app import build_app
from aidmesh_shelter.settings import ShelterSettings
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata, TopicPartition
from httpx import AsyncClient


@pytest.fixture(scope="module")
def settings() -> ShelterSettings:
    return isolated_settings(ShelterSettings)


@pytest.fixture(scope="module")
async def database(settings: ShelterSettings) -> AsyncIterator[Database]:
    async with service_database(settings) as database:
        yield database


@pytest.fixture(scope="module")
async def shelter(settings: ShelterSettings, database: Database) -> AsyncIterator[AsyncClient]:
    async with running_app(build_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
async def events() -> AsyncIterator[EventLog]:
    async with event_log() as log:
        yield log


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer() as producer:
        yield producer


@pytest.fixture(scope="module")
async def consumed(settings: ShelterSettings) -> AsyncIterator[Any]:
    """`await consumed(metadata)`: wait until the service committed past a produced record."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()

    async def wait(record: RecordMetadata, *, timeout_s: float = 30.0) -> None:
        tp = TopicPartition(record.topic, record.partition)
        deadline = time.monotonic() + timeout_s
        while True:
            offsets = await admin.list_consumer_group_offsets(settings.group_id, partitions=[tp])
            committed = offsets.get(tp)
            if committed is not None and committed.offset > record.offset:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{settings.group_id} did not consume {tp}@{record.offset}")
            await asyncio.sleep(0.05)

    try:
        yield wait
    finally:
        await admin.close()
