"""SASL/SCRAM and ACLs on the real broker: each service is a principal of its own, and the
broker refuses what the catalogue does not grant it (issue 12, ADR 0011)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from aidmesh_contracts.topics import HOUSEHOLD, PROTECTION_CASE, REFERRAL
from aidmesh_ops.kafka_acl import Grant, apply, grants
from aidmesh_runtime.kafka import (
    DEFAULT_SECRETS_DIR,
    KafkaConnection,
    KafkaCredentialsMissing,
    operator,
    read_password,
)
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

pytestmark = pytest.mark.integration

SECRETS = Path(os.environ.get("AIDMESH_KAFKA_SECRETS_DIR", DEFAULT_SECRETS_DIR))


def as_principal(name: str, kafka_bootstrap: str) -> KafkaConnection:
    password = read_password(name, password=None, secrets_dir=SECRETS, variable="-")
    return KafkaConnection(bootstrap=kafka_bootstrap, username=name, password=password)


async def read_one(connection: KafkaConnection, topic: str) -> bytes | None:
    """Subscribe in one of the principal's own groups, from the start; the first value."""
    consumer = AIOKafkaConsumer(
        topic,
        **connection.aiokafka(),
        group_id=f"aidmesh-{connection.username}-acl-test-{uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
        return record.value
    finally:
        await consumer.stop()


async def write(connection: KafkaConnection, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(**connection.aiokafka(), enable_idempotence=True)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=b"acl-test"), timeout=20)
    finally:
        await producer.stop()


@pytest.fixture
async def protection_record(kafka_bootstrap: str) -> AsyncIterator[bytes]:
    """A record protection itself wrote to its restricted topic."""
    value = f"acl-test-{uuid4()}".encode()
    await write(as_principal("protection", kafka_bootstrap), PROTECTION_CASE, value)
    yield value


async def test_shelter_is_denied_reading_the_protection_topic(
    kafka_bootstrap: str, protection_record: bytes
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await read_one(as_principal("shelter", kafka_bootstrap), PROTECTION_CASE)


async def test_audit_reads_what_protection_wrote_on_its_restricted_topic(
    kafka_bootstrap: str, protection_record: bytes
) -> None:
    audit = as_principal("audit", kafka_bootstrap)
    consumer = AIOKafkaConsumer(
        PROTECTION_CASE,
        **audit.aiokafka(),
        group_id=f"aidmesh-audit-acl-test-{uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        values: set[bytes] = set()
        async with asyncio.timeout(30):
            while protection_record not in values:
                batch = await consumer.getmany(timeout_ms=500)
                values |= {r.value for records in batch.values() for r in records}
    finally:
        await consumer.stop()


async def test_shelter_is_denied_writing_registrations_topic(kafka_bootstrap: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await write(as_principal("shelter", kafka_bootstrap), HOUSEHOLD, b"forged")


async def test_a_service_is_denied_another_services_consumer_group(kafka_bootstrap: str) -> None:
    shelter = as_principal("shelter", kafka_bootstrap)
    consumer = AIOKafkaConsumer(
        REFERRAL, **shelter.aiokafka(), group_id="aidmesh-health", enable_auto_commit=False
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await consumer.start()
            await asyncio.wait_for(consumer.getmany(timeout_ms=2000), timeout=20)
    finally:
        await consumer.stop()


async def test_a_wrong_password_is_refused(kafka_bootstrap: str) -> None:
    impostor = KafkaConnection(bootstrap=kafka_bootstrap, username="audit", password="guessed")
    producer = AIOKafkaProducer(**impostor.aiokafka(), request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        try:
            await producer.start()
        finally:
            await producer.stop()


async def test_a_client_without_sasl_is_refused(kafka_bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        try:
            await producer.start()
        finally:
            await producer.stop()


def test_a_principal_without_a_password_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaCredentialsMissing, match=r"'nobody'.*AIDMESH_X_KAFKA_PASSWORD"):
        read_password(
            "nobody", password=None, secrets_dir=tmp_path, variable="AIDMESH_X_KAFKA_PASSWORD"
        )


async def test_apply_is_idempotent_and_revokes_what_the_catalogue_no_longer_grants(
    kafka_bootstrap: str,
) -> None:
    # A grant the catalogue does not give: shelter reading a topic of its own name.
    stray = Grant("shelter", "topic", f"acl-test-{uuid4().hex[:8]}", "literal", "READ")
    connection = operator(kafka_bootstrap)

    planted = await asyncio.to_thread(
        apply, connection, wanted=[*grants(), stray], secrets_dir=None
    )
    assert planted.created == [stray]

    applied = await asyncio.to_thread(apply, connection, secrets_dir=None)
    assert applied.created == []
    assert applied.deleted == [stray]
    assert applied.kept == len(grants())
