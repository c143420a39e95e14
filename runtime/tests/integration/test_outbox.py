"""The transactional outbox on the real database and broker: committed events go out, in
order per key, with CloudEvents headers; rolled-back ones never do."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from uuid import uuid4

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered, Envelope, decode
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED
from aidmesh_runtime.outbox import Outbox, OutboxRelay
from aidmesh_runtime.transaction import Tx, in_turns
from aiokafka import ConsumerRecord

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("relay")]

MakeDelivery = Callable[..., AssistanceDelivered]


class DomainFailure(Exception):
    pass


def ce_id(record: ConsumerRecord) -> str:
    return dict(record.headers)["ce_id"].decode()


async def test_an_event_added_in_a_committed_transaction_is_published_as_a_cloudevent(
    pool: asyncpg.Pool, outbox: Outbox, delivery: MakeDelivery, read_from_now: Callable
) -> None:
    reader = await read_from_now(ASSISTANCE_DELIVERED)
    event = delivery()

    async with pool.acquire() as conn, conn.transaction():
        envelope = await outbox.add(conn, event)

    [record] = await reader.wait_for(
        "the committed delivery", select=lambda r: r.key == str(event.household_id).encode()
    )
    assert Envelope.from_headers(record.headers) == envelope
    assert dict(record.headers)["ce_source"] == b"/aidmesh/runtime-tests"
    assert decode(envelope, record.value) == event


async def test_a_published_event_is_keyed_by_its_subject(
    pool: asyncpg.Pool, outbox: Outbox, delivery: MakeDelivery, read_from_now: Callable
) -> None:
    reader = await read_from_now(ASSISTANCE_DELIVERED)
    event = delivery()

    async with pool.acquire() as conn, conn.transaction():
        envelope = await outbox.add(conn, event)

    [record] = await reader.wait_for(
        "the committed delivery", select=lambda r: ce_id(r) == str(envelope.id)
    )
    assert record.key == event.subject().encode() == str(event.household_id).encode()
    assert dict(record.headers)["ce_subject"] == record.key


async def test_an_event_added_in_a_rolled_back_transaction_is_never_published(
    pool: asyncpg.Pool, outbox: Outbox, delivery: MakeDelivery, read_from_now: Callable
) -> None:
    reader = await read_from_now(ASSISTANCE_DELIVERED)
    household_id = uuid4()

    with pytest.raises(DomainFailure):
        async with pool.acquire() as conn, conn.transaction():
            rolled_back = await outbox.add(conn, delivery(household_id))
            raise DomainFailure("the domain change failed after the event was added")
    async with pool.acquire() as conn, conn.transaction():
        committed = await outbox.add(conn, delivery(household_id))

    # Same key, so had the first one been published it would have arrived first.
    published = await reader.wait_for(
        "the later committed delivery",
        select=lambda r: r.key == str(household_id).encode(),
    )
    assert [ce_id(r) for r in published] == [str(committed.id)]
    assert not await pool.fetchval("SELECT 1 FROM outbox WHERE event_id = $1", rolled_back.id)


async def test_adding_an_event_outside_a_transaction_is_refused(
    pool: asyncpg.Pool, outbox: Outbox, delivery: MakeDelivery
) -> None:
    event = delivery()

    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await outbox.add(conn, event)

    assert not await pool.fetchval("SELECT 1 FROM outbox WHERE key = $1", str(event.household_id))


async def test_many_events_on_a_few_keys_are_published_in_order_per_key(
    pool: asyncpg.Pool, outbox: Outbox, delivery: MakeDelivery, read_from_now: Callable
) -> None:
    reader = await read_from_now(ASSISTANCE_DELIVERED)
    households = [uuid4() for _ in range(4)]
    added: dict[bytes, list[str]] = defaultdict(list)

    for batch in range(20):  # 20 transactions of 10 events, keys interleaved
        async with pool.acquire() as conn, conn.transaction():
            for i in range(10):
                event = delivery(households[(batch + i) % len(households)])
                envelope = await outbox.add(conn, event)
                added[event.subject().encode()].append(str(envelope.id))

    keys = set(added)
    published = await reader.wait_for(
        "200 deliveries", select=lambda r: r.key in keys, count=200, timeout_s=20
    )
    in_order: dict[bytes, list[str]] = defaultdict(list)
    for record in published:
        in_order[record.key].append(ce_id(record))
    assert in_order == added


async def test_a_published_row_is_marked_sent_and_leaves_the_backlog(
    pool: asyncpg.Pool,
    outbox: Outbox,
    relay: OutboxRelay,
    delivery: MakeDelivery,
    eventually: Callable[..., Awaitable[None]],
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        envelope = await outbox.add(conn, delivery())

    async def marked_sent() -> bool:
        return await pool.fetchval(
            "SELECT sent_at IS NOT NULL FROM outbox WHERE event_id = $1", envelope.id
        )

    await eventually(marked_sent, what="the outbox row to be marked sent")
    assert relay.published >= 1


async def test_many_events_published_at_once_go_out_in_order_each_caused_by_its_cause(
    pool: asyncpg.Pool, outbox: Outbox, delivery: MakeDelivery, read_from_now: Callable
) -> None:
    reader = await read_from_now(ASSISTANCE_DELIVERED)
    household_id = uuid4()
    cause = outbox.prepare(delivery(household_id))[0]
    n = 5001  # over one COPY's rows: two chunks, in order

    async with pool.acquire() as conn, conn.transaction():
        envelopes = await Tx(conn, outbox).publish_many(
            (delivery(household_id), cause if i % 2 else None) for i in range(n)
        )

    published = await reader.wait_for(
        f"{n} deliveries",
        select=lambda r: r.key == str(household_id).encode(),
        count=n,
        timeout_s=60,
    )
    assert [ce_id(r) for r in published] == [str(e.id) for e in envelopes]
    assert {e.causationid for e in envelopes[1::2]} == {cause.id}
    assert {e.correlationid for e in envelopes[1::2]} == {cause.correlationid}
    assert all(e.causationid is None for e in envelopes[::2])


async def test_a_long_loop_taking_turns_lets_other_tasks_run() -> None:
    ran: list[int] = []

    async def other() -> None:
        ran.append(len(seen))

    seen: list[int] = []
    task = asyncio.get_running_loop().create_task(other())
    async for item in in_turns(range(1200), every=500):
        seen.append(item)

    assert seen == list(range(1200))
    assert task.done() and ran == [500]  # it ran at the loop's first turn, after 500 items
