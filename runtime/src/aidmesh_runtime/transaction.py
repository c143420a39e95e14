"""One transaction context for every use case: HTTP endpoints and event handlers alike.

A use case gets a `Tx`: the connection of its one transaction and the outbox that writes
its events into that same transaction (so the change and its events commit together or not
at all, ADR 0001), the service's clock and id factory. In an event handler the context is a
`HandlerContext` (consumer.py), a `Tx` whose events are caused by the event being handled;
in an HTTP use case it comes from `Runtime.transaction()`:

    async with runtime.transaction() as tx:
        case = await repository.case_for_update(tx.conn, case_id)
        await tx.publish(domain.closed_event(case), caused_by=case.last_envelope)

ADR 0014 (this context and the error model).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

import asyncpg
from aidmesh_contracts.base import Event
from aidmesh_contracts.envelope import Envelope

from .outbox import Outbox

if TYPE_CHECKING:
    from .db import Connection


@dataclass
class Tx:
    """One transaction of a use case and the outbox that writes its events into it."""

    conn: Connection
    outbox: Outbox
    #: What caused this work (the handled event, in a handler): what it publishes without
    #: naming another cause continues that event's flow.
    cause: Envelope | None = None

    def now(self) -> datetime:
        return self.outbox.clock()

    def new_id(self) -> UUID:
        return self.outbox.new_id()

    async def publish(
        self,
        event: Event,
        *,
        caused_by: Envelope | None = None,
        correlation_id: UUID | None = None,
    ) -> Envelope:
        """Write `event` to the outbox in this transaction; it continues the flow of
        `caused_by` (by default this work's cause), or joins `correlation_id`, or starts
        one."""
        return await self.outbox.add(
            self.conn, event, caused_by=caused_by or self.cause, correlation_id=correlation_id
        )

    async def publish_many(self, events: Iterable[tuple[Event, Envelope | None]]) -> list[Envelope]:
        """Write many events, each continuing the flow of its cause (by default this work's
        cause), a COPY per few thousand: a use case that publishes thousands of events at
        once (a cash cycle's payments) makes a few round trips, not one per event, and lets
        the event loop serve others between chunks (`in_turns`)."""
        envelopes: list[Envelope] = []
        rows: list[tuple[UUID, str, str, str, bytes]] = []
        async for event, cause in in_turns(events):
            envelope, row = self.outbox.prepare(event, caused_by=cause or self.cause)
            envelopes.append(envelope)
            rows.append(row)
            if len(rows) == _COPY_ROWS:
                await self.outbox.add_prepared(self.conn, rows)
                rows = []
        await self.outbox.add_prepared(self.conn, rows)
        return envelopes


#: Outbox rows written by one COPY in `publish_many`.
_COPY_ROWS = 5000
#: Items a loop handles between two turns of the event loop (`in_turns`): ~10-50 ms of
#: Python at a few tens of µs per item.
TURN_ITEMS = 500
T = TypeVar("T")


async def in_turns(items: Iterable[T], *, every: int = TURN_ITEMS) -> AsyncIterator[T]:
    """The items, one by one, letting the event loop run its other tasks (HTTP requests,
    the consumer's heartbeats, the relay) every `every` items. A use case looping over
    100,000 items in Python would otherwise hold the loop, and so the whole service, for
    tens of seconds: long enough for the broker to drop the consumer from its group."""
    for count, item in enumerate(items, start=1):
        yield item
        if count % every == 0:
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool, outbox: Outbox) -> AsyncIterator[Tx]:
    """A pooled connection in one transaction, committed when the block ends (rolled back
    if it raises)."""
    async with pool.acquire() as conn, conn.transaction():
        yield Tx(conn, outbox)
