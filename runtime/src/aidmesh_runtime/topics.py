"""Create the catalogue's topics (and their dead-letter topics). Idempotent."""

from __future__ import annotations

import asyncio
import time

from aidmesh_contracts.catalogue import CATALOGUE
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000
#: The largest record accepted (the local broker allows it): a 5 MB poison record must
#: reach the service to be dead-lettered, not be refused by the broker.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


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
                1,
                1,
                topic_configs={
                    "retention.ms": str(DLQ_RETENTION_MS),
                    "max.message.bytes": str(MAX_MESSAGE_BYTES),
                },
            )
        )
    return wanted


async def ensure_topics(bootstrap: str, *, timeout_s: float = 60.0) -> list[str]:
    """Create missing catalogue topics (and their DLQs); return the names created."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="aidmesh-bootstrap")
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
        missing = [t for t in wanted_topics() if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
