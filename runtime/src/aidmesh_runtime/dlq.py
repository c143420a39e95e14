"""Dead letters: the original record, untouched, to `<topic>.dlq` with the reason in headers."""

from __future__ import annotations

import structlog
from aidmesh_contracts.topics import dlq_topic
from aiokafka import ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError

from .producer import Producer

log = structlog.get_logger(__name__)

DLQ_HEADER_PREFIX = "aidmesh_dlq_"
MAX_REASON_BYTES = 2000


class DeadLetters:
    def __init__(self, *, producer: Producer, service: str) -> None:
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
        try:
            await self._producer.send_and_wait(
                dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
            )
        except MessageSizeTooLargeError:
            # Larger than any DLQ accepts (a broker with other limits): keep the letter and
            # say where the original still is, rather than block the partition for ever.
            size = len(record.value or b"")
            headers.append(
                (
                    "aidmesh_dlq_value_omitted",
                    f"{size} bytes, too large for the dead-letter topic; the original is "
                    f"{record.topic}/{record.partition}/{record.offset}".encode(),
                )
            )
            log.warning("dead_letter_value_omitted", size=size, topic=record.topic)
            await self._producer.send_and_wait(
                dlq_topic(record.topic), value=None, key=record.key, headers=headers
            )


def _truncate_utf8(text: str, limit: int) -> bytes:
    """At most `limit` bytes of UTF-8, never cutting a character in half."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").encode("utf-8")
