"""Idempotent consumption on the real database: a record's effect is written exactly once,
transient failures are retried in place, and a handler can publish what follows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered, HouseholdRegistered
from aidmesh_contracts.envelope import encode
from aidmesh_contracts.examples import example
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED
from aidmesh_runtime.consumer import EventConsumer, Handler, HandlerContext
from aidmesh_runtime.errors import Rejected
from aidmesh_runtime.rules import NotFound, RuleRefused
from aiokafka import ConsumerRecord
from structlog.testing import capture_logs

pytestmark = pytest.mark.integration

MakeDelivery = Callable[..., AssistanceDelivered]
ProduceRecord = Callable[..., Awaitable[ConsumerRecord]]
EffectsOf = Callable[[UUID], Awaitable[int]]


@pytest.fixture
def delivered_record(
    delivery: MakeDelivery, headers_of: Callable, produce_record: ProduceRecord
) -> Callable[[], Awaitable[tuple[AssistanceDelivered, ConsumerRecord]]]:
    """A valid AssistanceDelivered record, produced to the broker and read back."""

    async def make() -> tuple[AssistanceDelivered, ConsumerRecord]:
        event = delivery()
        record = await produce_record(
            ASSISTANCE_DELIVERED,
            key=event.subject().encode(),
            value=encode(event),
            headers=headers_of(event),
        )
        return event, record

    return make


async def test_a_handled_event_writes_its_effect_once(
    make_consumer: Callable[..., EventConsumer], delivered_record: Callable, effects_of: EffectsOf
) -> None:
    event, record = await delivered_record()

    outcome = await make_consumer().process(record)

    assert outcome == "handled"
    assert await effects_of(event.delivery_id) == 1


async def test_the_same_record_processed_twice_is_a_duplicate_with_no_second_effect(
    make_consumer: Callable[..., EventConsumer], delivered_record: Callable, effects_of: EffectsOf
) -> None:
    event, record = await delivered_record()
    consumer = make_consumer()

    outcomes = [await consumer.process(record), await consumer.process(record)]

    assert outcomes == ["handled", "duplicate"]
    assert await effects_of(event.delivery_id) == 1


async def test_an_event_published_again_under_the_same_id_is_a_duplicate(
    make_consumer: Callable[..., EventConsumer],
    delivered_record: Callable,
    produce_record: ProduceRecord,
    effects_of: EffectsOf,
) -> None:
    # What a relay crash between publish and mark-sent produces: the same ce_id twice.
    event, first = await delivered_record()
    again = await produce_record(
        ASSISTANCE_DELIVERED, key=first.key, value=first.value, headers=list(first.headers)
    )
    consumer = make_consumer()

    outcomes = [await consumer.process(first), await consumer.process(again)]

    assert again.offset != first.offset
    assert outcomes == ["handled", "duplicate"]
    assert await effects_of(event.delivery_id) == 1


async def test_each_consumer_keeps_its_own_inbox(
    make_consumer: Callable[..., EventConsumer], delivered_record: Callable, effects_of: EffectsOf
) -> None:
    event, record = await delivered_record()

    outcomes = [
        await make_consumer(name="reporting").process(record),
        await make_consumer(name="cash").process(record),
    ]

    assert outcomes == ["handled", "handled"]
    assert await effects_of(event.delivery_id) == 2


async def test_a_transient_failure_is_retried_and_the_event_handled_once(
    make_consumer: Callable[..., EventConsumer],
    delivered_record: Callable,
    note_delivery: Handler,
    effects_of: EffectsOf,
) -> None:
    calls = 0

    async def database_briefly_unreachable(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        nonlocal calls
        calls += 1
        await note_delivery(event, ctx)  # written, then rolled back by the failure
        if calls == 1:
            raise ConnectionRefusedError(111, "Connection refused")

    event, record = await delivered_record()
    consumer = make_consumer(handler=database_briefly_unreachable)

    outcome = await asyncio.wait_for(consumer.process(record), timeout=10)

    assert outcome == "handled"
    assert calls == 2
    assert await effects_of(event.delivery_id) == 1
    assert consumer.healthy and consumer.last_error is None


async def test_a_valid_event_of_a_type_the_service_does_not_handle_is_ignored(
    make_consumer: Callable[..., EventConsumer],
    headers_of: Callable,
    produce_record: ProduceRecord,
    pool: asyncpg.Pool,
) -> None:
    household = HouseholdRegistered.model_validate(example(HouseholdRegistered.event_type))
    headers = headers_of(household)
    record = await produce_record(
        ASSISTANCE_DELIVERED, key=b"not-for-us", value=encode(household), headers=headers
    )

    outcome = await make_consumer().process(record)

    assert outcome == "ignored"
    ce_id = UUID(dict(headers)["ce_id"].decode())
    assert not await pool.fetchval("SELECT 1 FROM inbox WHERE event_id = $1", ce_id)


async def test_an_event_a_handler_publishes_is_caused_by_the_handled_one(
    make_consumer: Callable[..., EventConsumer],
    delivered_record: Callable,
    delivery: MakeDelivery,
    pool: asyncpg.Pool,
) -> None:
    follow_up = delivery()

    async def deliver_follow_up(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        await ctx.publish(follow_up)

    _, record = await delivered_record()
    handled = dict(record.headers)

    await make_consumer(handler=deliver_follow_up).process(record)

    row = await pool.fetchval(
        "SELECT headers FROM outbox WHERE key = $1", str(follow_up.household_id)
    )
    published = {name: value for name, value in json.loads(row)}
    assert published["ce_causationid"] == handled["ce_id"].decode()
    assert published["ce_correlationid"] == handled["ce_correlationid"].decode()


async def test_a_batch_is_handled_in_order_with_each_effect_written_once(
    make_consumer: Callable[..., EventConsumer], delivered_record: Callable, effects_of: EffectsOf
) -> None:
    produced = [await delivered_record() for _ in range(5)]
    records = [record for _, record in produced]

    results = await make_consumer().process_batch([*records, records[2]])

    assert [outcome for outcome, _ in results] == ["handled"] * 5 + ["duplicate"]
    assert [await effects_of(event.delivery_id) for event, _ in produced] == [1] * 5


async def test_a_record_rejected_mid_batch_is_dead_lettered_once_and_its_writes_undone(
    make_consumer: Callable[..., EventConsumer],
    delivered_record: Callable,
    note_delivery: Handler,
    effects_of: EffectsOf,
    pool: asyncpg.Pool,
) -> None:
    produced = [await delivered_record() for _ in range(3)]
    rejected_id = produced[1][0].delivery_id
    calls: list[UUID] = []

    async def refuse_the_second(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        calls.append(event.delivery_id)
        await note_delivery(event, ctx)  # written before the refusal: must not stay
        if event.delivery_id == rejected_id:
            raise Rejected("over the entitlement")

    consumer = make_consumer(handler=refuse_the_second, name="runtime-tests-batch-reject")
    sent: list[int] = []
    original_send = consumer._dead_letters.send

    async def count_dead_letters(record: ConsumerRecord, **kwargs: object) -> None:
        sent.append(record.offset)
        await original_send(record, **kwargs)  # type: ignore[arg-type]

    consumer._dead_letters.send = count_dead_letters  # type: ignore[method-assign]

    results = await consumer.process_batch([record for _, record in produced])

    assert [outcome for outcome, _ in results] == ["handled", "dead_lettered", "handled"]
    assert [await effects_of(event.delivery_id) for event, _ in produced] == [1, 0, 1]
    assert sent == [produced[1][1].offset]  # once, although the batch ran twice
    assert calls.count(rejected_id) == 1
    ce_id = UUID(dict(produced[1][1].headers)["ce_id"].decode())
    assert not await pool.fetchval(
        "SELECT 1 FROM inbox WHERE consumer = 'runtime-tests-batch-reject' AND event_id = $1",
        ce_id,
    )


async def test_a_transient_failure_mid_batch_retries_the_whole_batch_without_double_effects(
    make_consumer: Callable[..., EventConsumer],
    delivered_record: Callable,
    note_delivery: Handler,
    effects_of: EffectsOf,
) -> None:
    produced = [await delivered_record() for _ in range(4)]
    failed_once = False

    async def flaky_on_the_third(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        nonlocal failed_once
        await note_delivery(event, ctx)
        if event.delivery_id == produced[2][0].delivery_id and not failed_once:
            failed_once = True
            raise ConnectionResetError(104, "Connection reset by peer")

    consumer = make_consumer(handler=flaky_on_the_third)

    results = await asyncio.wait_for(
        consumer.process_batch([record for _, record in produced]), timeout=10
    )

    assert [outcome for outcome, _ in results] == ["handled"] * 4
    assert [await effects_of(event.delivery_id) for event, _ in produced] == [1] * 4


class OverCap(ValueError, RuleRefused):  # as a service's own rule error
    pass


class CaseNotFound(LookupError, NotFound):  # as a service's own lookup error
    pass


@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        (
            OverCap("the repair is over the oblast's cap"),
            "OverCap: the repair is over the oblast's cap",
        ),
        (CaseNotFound("case 7 not found"), "CaseNotFound: case 7 not found"),
    ],
)
async def test_a_refusal_in_a_handler_is_dead_lettered_with_its_reason_not_as_a_crash(
    make_consumer: Callable[..., EventConsumer],
    delivered_record: Callable,
    refusal: Exception,
    reason: str,
) -> None:
    async def refuse(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        raise refusal

    consumer = make_consumer(handler=refuse, name="runtime-tests-rule-refused")
    reasons: list[object] = []
    original_send = consumer._dead_letters.send

    async def note_reason(record: ConsumerRecord, **kwargs: object) -> None:
        reasons.append(kwargs.get("reason"))
        await original_send(record, **kwargs)  # type: ignore[arg-type]

    consumer._dead_letters.send = note_reason  # type: ignore[method-assign]
    _, record = await delivered_record()

    with capture_logs() as logs:
        outcome = await consumer.process(record)

    assert outcome == "dead_lettered"
    assert reasons == [reason]
    assert "handler_failed" not in [entry["event"] for entry in logs]
