"""Create the catalogue's topics (and their dead-letter topics). Idempotent."""

from __future__ import annotations

import asyncio
import time

from aidmesh_contracts.catalogue import CATALOGUE
from aidmesh_contracts.topics import DLQ_PARTITIONS, DLQ_RETENTION_MS
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError

from .kafka import operator_auth

#: The largest record accepted (the local broker allows it): a 5 MB poison record must
#: reach the service to be dead-lettered, not be refused by the broker.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: A dead letter is the original record plus a few reason headers (the reason is capped at
#: 2 KB), so its topic, and producers, accept a little more than the largest original.
DLQ_HEADROOM_BYTES = 64 * 1024
MAX_DLQ_MESSAGE_BYTES = MAX_MESSAGE_BYTES + DLQ_HEADROOM_BYTES


def wanted_topics() -> list[NewTopic]:
    wanted = []
    for entry in CATALOGUE:
        config = {
            "retention.ms": str(entry.retention_ms),
            "max.message.bytes": str(MAX_MESSAGE_BYTES),
        }
        wanted.append(NewTopic(entry.name, entry.partitions, 1, topic_configs=config))
        wanted.append(
            NewTopic(
                entry.dlq,
                DLQ_PARTITIONS,
                1,
                topic_configs={
                    "retention.ms": str(DLQ_RETENTION_MS),
                    "max.message.bytes": str(MAX_DLQ_MESSAGE_BYTES),
                },
            )
        )
    return wanted


async def ensure_topics(bootstrap: str, *, timeout_s: float = 60.0) -> list[str]:
    """Create missing catalogue topics (and their DLQs) and bring the configuration of
    existing ones to the catalogue's (retention, record size); return the names created."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, **operator_auth(), client_id="aidmesh-bootstrap"
        )
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            await admin.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        wanted = wanted_topics()
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
        present = [t for t in wanted if t.name in existing]
        if present:
            # AlterConfigs sets a topic's whole override set: ours is complete for each topic.
            responses = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t.name, t.topic_configs) for t in present]
            )
            failed = [
                f"{name}: {message or code}"
                for response in responses
                for code, message, _, name in response.resources
                if code
            ]
            if failed:
                raise RuntimeError("could not configure topics: " + "; ".join(failed))
        return [t.name for t in missing]
    finally:
        await admin.close()
