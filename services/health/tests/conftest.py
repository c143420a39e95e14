"""Fixtures for health's integration tests: the service running in-process on the real broker
and a database of its own, a Kafka producer standing in for registration, and the event log.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aidmesh_health.app import build_app
from aidmesh_health.settings import HealthSettings
from aidmesh_runtime.testing import (
    Database,
    EventLog,
    event_log,
    isolated_settings,
    kafka_producer,
    running_app,
    service_database,
)
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient


@pytest.fixture(scope="module")
def settings() -> HealthSettings:
    return isolated_settings(HealthSettings)


@pytest.fixture(scope="module")
async def database(settings: HealthSettings) -> AsyncIterator[Database]:
    async with service_database(settings) as database:
        yield database


@pytest.fixture(scope="module")
async def health(settings: HealthSettings, database: Database) -> AsyncIterator[AsyncClient]:
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
