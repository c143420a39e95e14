"""Dead letters: the original record, untouched, to `<topic>.dlq` with the reason in headers."""

from __future__ import annotations

from aidmesh_contracts.topics import dlq_topic
from aiokafka import AIOKafkaProducer, ConsumerRecord

DLQ_HEADER_PREFIX = "aidmesh_dlq_"
MAX_REASON_BYTES = 2000


class DeadLetters:
    def __init__(self, *, producer: AIOKafkaProducer, service: str) -> None:
        self._producer = producer
        self._service = service

    async def send(self, record: ConsumerRecord, *, reason: str, exc: BaseException) -> None:
        headers = [
            (name, value)
            for name, value in (record.headers or ())
            if not name.startswith(DLQ_HEADER_PREFIX)
        ]
        headers += [
            ("aidmesh_dlq_reason", _truncate_utf8(reason, MAX_REASON_BYTES)),
            ("aidmesh_dlq_exception", type(exc).__name__.encode()),
            ("aidmesh_dlq_service", self._service.encode()),
            ("aidmesh_dlq_topic", record.topic.encode()),
            ("aidmesh_dlq_partition", str(record.partition).encode()),
            ("aidmesh_dlq_offset", str(record.offset).encode()),
        ]
        await self._producer.send_and_wait(
            dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
        )


def _truncate_utf8(text: str, limit: int) -> bytes:
    """At most `limit` bytes of UTF-8, never cutting a character in half."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").encode("utf-8")
