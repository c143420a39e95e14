"""Poison records go to `<topic>.dlq` untouched, with the reason in headers, and the
consumer moves on. Each case is a record no retry could ever fix."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.envelope import encode
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED, dlq_topic
from aidmesh_runtime.consumer import EventConsumer, HandlerContext
from aidmesh_runtime.errors import Rejected
from aidmesh_runtime.topics import MAX_MESSAGE_BYTES
from aiokafka import ConsumerRecord

pytestmark = pytest.mark.integration

DLQ = dlq_topic(ASSISTANCE_DELIVERED)

Headers = list[tuple[str, bytes]]
MakeDelivery = Callable[..., AssistanceDelivered]
HeadersOf = Callable[..., Headers]
ProduceRecord = Callable[..., Awaitable[ConsumerRecord]]


@dataclass(frozen=True)
class Poison:
    """How to spoil a valid delivery record, and what the dead letter must then say."""

    spoil: Callable[[AssistanceDelivered, HeadersOf], tuple[Headers, bytes]]
    exception: str
    reason: str


def without(headers: Headers, *names: str) -> Headers:
    return [(name, value) for name, value in headers if name not in names]


POISONS = {
    "value_not_utf8": Poison(
        lambda event, headers_of: (headers_of(event), b'{"delivery_id": "\xff\xfe\xfd"}'),
        exception="PayloadError",
        reason="Invalid JSON",
    ),
    "value_of_5_mb": Poison(
        lambda event, headers_of: (headers_of(event), b"x" * 5_000_000),
        exception="PayloadError",
        reason="Invalid JSON",
    ),
    # The largest record its topic takes still fits its dead-letter topic, reason and all.
    "value_at_the_size_limit": Poison(
        lambda event, headers_of: (headers_of(event), b"y" * (MAX_MESSAGE_BYTES - 8192)),
        exception="PayloadError",
        reason="Invalid JSON",
    ),
    "value_not_json": Poison(
        lambda event, headers_of: (headers_of(event), b"delivery_id=c4e7a1b2;quantity=1"),
        exception="PayloadError",
        reason="Invalid JSON",
    ),
    "schema_violation": Poison(
        lambda event, headers_of: (
            headers_of(event),
            json.dumps(json.loads(encode(event)) | {"persons_reached": -4}).encode(),
        ),
        exception="PayloadError",
        reason="persons_reached: Input should be greater than or equal to 0",
    ),
    "unknown_event_type": Poison(
        lambda event, headers_of: (
            headers_of(event, type="org.aidmesh.assistance.assistance.teleported.v1"),
            encode(event),
        ),
        exception="UnknownEventType",
        reason="unknown event type 'org.aidmesh.assistance.assistance.teleported.v1'",
    ),
    "missing_headers": Poison(
        lambda event, headers_of: (without(headers_of(event), "ce_id", "ce_type"), encode(event)),
        exception="EnvelopeError",
        reason="missing CloudEvents headers: ce_id, ce_type",
    ),
    "no_headers_at_all": Poison(
        lambda event, headers_of: ([], encode(event)),
        exception="EnvelopeError",
        reason="missing CloudEvents headers: ce_specversion, ce_id, ce_source, ce_type, ce_time",
    ),
    "header_not_utf8": Poison(
        lambda event, headers_of: (
            [*without(headers_of(event), "ce_source"), ("ce_source", b"/aidmesh/\xff")],
            encode(event),
        ),
        exception="EnvelopeError",
        reason="header ce_source is not valid UTF-8",
    ),
}


@pytest.fixture
async def dead_letters(read_from_now: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """`await dead_letters(record)`: the dead letter of one record, read from the DLQ topic."""
    reader = await read_from_now(DLQ)

    async def of(record: ConsumerRecord) -> tuple[ConsumerRecord, dict[str, bytes]]:
        [letter] = await reader.wait_for(
            f"the dead letter of offset {record.offset}",
            select=lambda r: r.key == record.key,
        )
        return letter, dict(letter.headers)

    return of


@pytest.mark.parametrize("poison", POISONS.values(), ids=POISONS.keys())
async def test_a_poison_record_goes_to_the_dead_letter_topic_with_its_reason(
    poison: Poison,
    make_consumer: Callable[..., EventConsumer],
    delivery: MakeDelivery,
    headers_of: HeadersOf,
    produce_record: ProduceRecord,
    dead_letters: Callable[..., Awaitable],
) -> None:
    headers, value = poison.spoil(delivery(), headers_of)
    record = await produce_record(
        ASSISTANCE_DELIVERED, key=uuid4().hex.encode(), value=value, headers=headers
    )

    outcome = await make_consumer(name="runtime-tests-dlq").process(record)

    _, dlq_headers = await dead_letters(record)
    assert outcome == "dead_lettered"
    assert poison.reason in dlq_headers["aidmesh_dlq_reason"].decode()
    assert dlq_headers["aidmesh_dlq_exception"] == poison.exception.encode()
    assert dlq_headers["aidmesh_dlq_service"] == b"runtime-tests-dlq"
    assert dlq_headers["aidmesh_dlq_topic"] == ASSISTANCE_DELIVERED.encode()
    assert dlq_headers["aidmesh_dlq_partition"] == str(record.partition).encode()
    assert dlq_headers["aidmesh_dlq_offset"] == str(record.offset).encode()


@pytest.mark.parametrize("poison", POISONS.values(), ids=POISONS.keys())
async def test_a_dead_letter_keeps_the_original_record_untouched(
    poison: Poison,
    make_consumer: Callable[..., EventConsumer],
    delivery: MakeDelivery,
    headers_of: HeadersOf,
    produce_record: ProduceRecord,
    dead_letters: Callable[..., Awaitable],
) -> None:
    headers, value = poison.spoil(delivery(), headers_of)
    record = await produce_record(
        ASSISTANCE_DELIVERED, key=uuid4().hex.encode(), value=value, headers=headers
    )

    await make_consumer().process(record)

    letter, _ = await dead_letters(record)
    assert letter.value == record.value == value
    assert letter.key == record.key
    assert [h for h in letter.headers if not h[0].startswith("aidmesh_dlq_")] == list(headers)


async def test_a_business_rejection_is_dead_lettered_with_the_handlers_reason(
    make_consumer: Callable[..., EventConsumer],
    delivery: MakeDelivery,
    headers_of: HeadersOf,
    produce_record: ProduceRecord,
    dead_letters: Callable[..., Awaitable],
    pool: asyncpg.Pool,
) -> None:
    async def over_entitlement(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        raise Rejected("winterization kit already delivered this season")

    event = delivery()
    headers = headers_of(event)
    record = await produce_record(
        ASSISTANCE_DELIVERED, key=event.subject().encode(), value=encode(event), headers=headers
    )

    outcome = await make_consumer(handler=over_entitlement).process(record)

    letter, dlq_headers = await dead_letters(record)
    assert outcome == "dead_lettered"
    assert dlq_headers["aidmesh_dlq_reason"] == b"winterization kit already delivered this season"
    assert dlq_headers["aidmesh_dlq_exception"] == b"Rejected"
    assert letter.value == record.value
    # Nothing of the rejected attempt is kept, so a replay after a fix is handled afresh.
    ce_id = UUID(dict(headers)["ce_id"].decode())
    assert not await pool.fetchval("SELECT 1 FROM inbox WHERE event_id = $1", ce_id)


async def test_a_handler_bug_is_dead_lettered_not_retried_forever(
    make_consumer: Callable[..., EventConsumer],
    delivery: MakeDelivery,
    headers_of: HeadersOf,
    produce_record: ProduceRecord,
    dead_letters: Callable[..., Awaitable],
) -> None:
    calls = 0

    async def buggy(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("sector_caps")

    event = delivery()
    record = await produce_record(
        ASSISTANCE_DELIVERED,
        key=event.subject().encode(),
        value=encode(event),
        headers=headers_of(event),
    )

    outcome = await asyncio.wait_for(make_consumer(handler=buggy).process(record), timeout=10)

    _, dlq_headers = await dead_letters(record)
    assert (outcome, calls) == ("dead_lettered", 1)
    assert dlq_headers["aidmesh_dlq_exception"] == b"KeyError"
    assert b"sector_caps" in dlq_headers["aidmesh_dlq_reason"]


async def test_a_long_reason_is_cut_to_valid_utf8(
    make_consumer: Callable[..., EventConsumer],
    delivery: MakeDelivery,
    headers_of: HeadersOf,
    produce_record: ProduceRecord,
    dead_letters: Callable[..., Awaitable],
) -> None:
    reason = "Відмовлено: набір уже видано " + "ї" * 1500  # Ukrainian, far over 2000 bytes

    async def refuse(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        raise Rejected(reason)

    event = delivery()
    record = await produce_record(
        ASSISTANCE_DELIVERED,
        key=event.subject().encode(),
        value=encode(event),
        headers=headers_of(event),
    )

    await make_consumer(handler=refuse).process(record)

    _, dlq_headers = await dead_letters(record)
    cut = dlq_headers["aidmesh_dlq_reason"]
    assert len(cut) <= 2000
    assert reason.startswith(cut.decode("utf-8"))
