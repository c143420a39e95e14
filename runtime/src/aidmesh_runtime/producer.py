"""What the outbox relay and the dead letters need from a Kafka producer.

The service's producer is librdkafka's (librdkafka.py, ADR 0012); tests give the relay
recording fakes of this protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

Headers = Sequence[tuple[str, bytes]]
#: One record to send: topic, key, value, headers.
Record = tuple[str, bytes | None, bytes | None, Headers]


class Producer(Protocol):
    async def send_many(self, records: Sequence[Record]) -> list[asyncio.Future[object]]:
        """Queue records in their order (kept per partition); futures done when the broker
        has acknowledged them."""
        ...

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> object:
        """Send one record and wait until the broker has acknowledged it."""
        ...
