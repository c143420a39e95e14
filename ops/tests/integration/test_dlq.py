"""`aidmesh dlq` on the real broker, each test on a topic pair of its own: list, show,
replay and purge dead letters written by the runtime; and the headline, that a dead
letter replayed after its cause is fixed is processed once."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.envelope import Envelope, PayloadError, encode
from aidmesh_ops import cli
from aidmesh_ops import dlq as dlq_module
from aidmesh_ops.dlq import REPLAY_BATCH_RECORDS
from aidmesh_runtime.consumer import EventConsumer, HandlerContext
from aidmesh_runtime.dlq import DeadLetters
from aidmesh_runtime.errors import Rejected
from aidmesh_runtime.outbox import Outbox
from aiokafka import AIOKafkaProducer, ConsumerRecord
from typer.testing import Result

pytestmark = pytest.mark.integration

Aidmesh = Callable[..., Awaitable[Result]]
DeadLetter = Callable[..., Awaitable[tuple[ConsumerRecord, int]]]
Delivery = Callable[[], tuple[AssistanceDelivered, list[tuple[str, bytes]]]]
Offsets = Callable[[str], Awaitable[int]]


async def dead_letter_a_delivery(
    dead_letter: DeadLetter, delivery: Delivery, topic: str, **kwargs: Any
) -> tuple[ConsumerRecord, int]:
    event, headers = delivery()
    return await dead_letter(
        topic, key=event.subject().encode(), value=encode(event), headers=headers, **kwargs
    )


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


# ---- list and show ---------------------------------------------------------------------


async def test_list_shows_a_dead_lettered_record_with_its_reason(
    topics: tuple[str, str], delivery: Delivery, dead_letter: DeadLetter, aidmesh: Aidmesh
) -> None:
    topic, dlq = topics
    record, offset = await dead_letter_a_delivery(
        dead_letter,
        delivery,
        topic,
        reason="winterization kit already delivered this season",
        exc=Rejected("winterization kit already delivered this season"),
    )

    out = ok(await aidmesh("dlq", "list", "--topic", dlq))

    assert re.search(rf"{re.escape(dlq)}\s*│\s*1\s*│\s*1\s*│\s*0\s*│", out), out  # 1 pending
    assert "Reasons (1 record): business rule 1" in out
    assert "winterization kit already delivered this season" in out
    assert f"[{record.partition}]@{record.offset}" in out
    assert dict(record.headers)["ce_id"].decode() in out
    assert "ops-dlq-tests" in out and "Rejected" in out and "pending" in out
    assert f"{offset}" in out


async def test_list_only_shows_the_records_of_the_service_asked_for(
    topics: tuple[str, str], delivery: Delivery, dead_letter: DeadLetter, aidmesh: Aidmesh
) -> None:
    topic, dlq = topics
    await dead_letter_a_delivery(dead_letter, delivery, topic)

    out = ok(await aidmesh("dlq", "list", "--topic", dlq, "--service", "shelter"))

    assert "No dead letters from service shelter." in out


async def test_show_prints_every_header_and_only_a_preview_of_a_big_binary_value(
    topics: tuple[str, str], delivery: Delivery, dead_letter: DeadLetter, aidmesh: Aidmesh
) -> None:
    topic, dlq = topics
    event, headers = delivery()
    value = bytes(range(256)) * 20 * 1024  # 5 MiB, not UTF-8
    record, offset = await dead_letter(
        topic,
        key=event.subject().encode(),
        value=value,
        headers=[*headers, ("x-partner", b"kobo\xff")],
        reason="AssistanceDelivered payload invalid: (root): Invalid JSON",
        exc=PayloadError("Invalid JSON"),
    )

    out = ok(await aidmesh("dlq", "show", dlq, str(offset)))

    for name, raw in record.headers:
        if name != "x-partner":
            assert f"{name} " in out and raw.decode() in out
    for name in ("aidmesh_dlq_reason", "aidmesh_dlq_exception", "aidmesh_dlq_offset"):
        assert name in out
    assert r"b'kobo\xff'" in out  # a header that is not UTF-8, escaped
    assert "reason class   bad bytes" in out
    assert "5,242,880 bytes, not UTF-8; the first 256 shown" in out
    assert "00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f" in out
    assert r"escaped: b'\x00\x01\x02" in out
    assert len(out) < 30_000, "a 5 MB value must not be dumped to the terminal"


async def test_show_of_a_topic_that_is_no_dlq_names_the_dead_letter_topics(
    topics: tuple[str, str], aidmesh: Aidmesh
) -> None:
    topic, dlq = topics

    result = await aidmesh("dlq", "show", topic, "0")

    assert result.exit_code == 1
    assert f"{topic} is not a dead-letter topic (did you mean {dlq}?)" in result.stderr
    assert "aidmesh.assistance.delivered.v1.dlq" in result.stderr


# ---- replay ----------------------------------------------------------------------------


async def test_replay_puts_the_original_record_back_without_the_dead_letter_headers(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    read_all: Callable[..., Awaitable[list[ConsumerRecord]]],
) -> None:
    topic, dlq = topics
    record, offset = await dead_letter_a_delivery(dead_letter, delivery, topic)

    out = ok(await aidmesh("dlq", "replay", dlq, "--offset", str(offset)))

    assert f"replayed 1 from {dlq} to {topic}" in out
    [replayed] = [
        r
        for r in await read_all(topic, count=2)
        if (r.partition, r.offset) != (record.partition, record.offset)
    ]
    assert (replayed.key, replayed.value, replayed.partition) == (
        record.key,
        record.value,
        record.partition,
    )
    assert list(replayed.headers) == [
        *record.headers,
        ("aidmesh_replayed_from", f"{dlq}:{offset}".encode()),
    ]
    envelope = Envelope.from_headers(replayed.headers)  # the runtime ignores the new header
    assert str(envelope.id) == dict(record.headers)["ce_id"].decode()


async def test_replaying_all_twice_replays_each_record_once(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    end_offset: Offsets,
) -> None:
    topic, dlq = topics
    for _ in range(3):
        await dead_letter_a_delivery(dead_letter, delivery, topic)

    first = ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))
    second = ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))

    assert f"replayed 3 from {dlq}" in first
    assert f"nothing to replay: every record of {dlq} was replayed" in second
    assert await end_offset(topic) == 3 + 3
    listing = ok(await aidmesh("dlq", "list", "--topic", dlq))
    assert re.search(rf"{re.escape(dlq)}\s*│\s*3\s*│\s*0\s*│\s*3\s*│", listing), listing
    assert "pending" not in listing.split("Reasons")[1]


async def test_a_replay_longer_than_a_batch_remembers_every_batch(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    end_offset: Offsets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, dlq = topics
    count = REPLAY_BATCH_RECORDS + 20
    monkeypatch.setattr(dlq_module, "FETCH_RECORDS", 30)  # batches end mid-fetch, too
    for _ in range(count):
        await dead_letter_a_delivery(dead_letter, delivery, topic)

    out = ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))
    again = ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))

    assert f"replayed {count} from {dlq}" in out
    assert "nothing to replay" in again
    assert await end_offset(topic) == 2 * count


async def test_a_record_replayed_alone_is_not_replayed_again_with_the_rest(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    end_offset: Offsets,
) -> None:
    topic, dlq = topics
    for _ in range(3):
        await dead_letter_a_delivery(dead_letter, delivery, topic)

    ok(await aidmesh("dlq", "replay", dlq, "--offset", "1"))
    statuses = [ok(await aidmesh("dlq", "show", dlq, str(o))) for o in range(3)]
    rest = ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))

    assert ["status         replayed" in out for out in statuses] == [False, True, False]
    assert f"replayed 2 from {dlq}" in rest
    assert await end_offset(topic) == 3 + 3


async def test_replaying_an_offset_again_is_a_harmless_no_op(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    end_offset: Offsets,
) -> None:
    topic, dlq = topics
    await dead_letter_a_delivery(dead_letter, delivery, topic)
    ok(await aidmesh("dlq", "replay", dlq, "--offset", "0"))

    out = ok(await aidmesh("dlq", "replay", dlq, "--offset", "0"))

    assert "replayed 0" in out and "already replayed: offsets 0" in out
    assert await end_offset(topic) == 2


async def test_replaying_an_offset_not_in_the_dlq_fails_saying_what_it_holds(
    topics: tuple[str, str], delivery: Delivery, dead_letter: DeadLetter, aidmesh: Aidmesh
) -> None:
    topic, dlq = topics
    await dead_letter_a_delivery(dead_letter, delivery, topic)

    result = await aidmesh("dlq", "replay", dlq, "--offset", "0", "--offset", "7")

    assert result.exit_code == 1
    assert "replayed 1" in result.stdout
    assert f"not in {dlq} (offsets 0-0): offsets 7" in result.stdout


async def test_a_dry_run_publishes_nothing_and_remembers_nothing(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    end_offset: Offsets,
) -> None:
    topic, dlq = topics
    record, _ = await dead_letter_a_delivery(dead_letter, delivery, topic)

    dry = ok(await aidmesh("dlq", "replay", dlq, "--all", "--dry-run"))
    published_by_dry_run = await end_offset(topic) - 1
    real = ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))

    assert "would replay 1" in dry and dict(record.headers)["ce_id"].decode() in dry
    assert published_by_dry_run == 0
    assert "replayed 1" in real


async def test_replay_all_asks_first_on_a_terminal_and_no_means_nothing_is_published(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    end_offset: Offsets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, dlq = topics
    await dead_letter_a_delivery(dead_letter, delivery, topic)
    monkeypatch.setattr(cli, "_can_ask", lambda: True)

    declined = await aidmesh("dlq", "replay", dlq, "--all", input="n\n")
    published_after_no = await end_offset(topic) - 1
    accepted = await aidmesh("dlq", "replay", dlq, "--all", input="y\n")

    assert f"Replay 1 record of {dlq} to {topic}?" in declined.stdout
    assert declined.exit_code == 1 and "nothing replayed" in declined.stderr
    assert published_after_no == 0
    assert "replayed 1" in ok(accepted)


# ---- purge -----------------------------------------------------------------------------


async def test_purge_deletes_the_records_before_an_offset(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    low_watermark: Offsets,
) -> None:
    topic, dlq = topics
    for _ in range(3):
        await dead_letter_a_delivery(dead_letter, delivery, topic)
    ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))

    out = ok(await aidmesh("dlq", "purge", dlq, "--before", "2", "--yes"))

    assert f"purged 2 records from {dlq}; it now starts at offset 2" in out
    assert await low_watermark(dlq) == 2
    gone = await aidmesh("dlq", "show", dlq, "0")
    assert gone.exit_code == 1 and "no record at offset 0" in gone.stderr


async def test_purge_refuses_to_delete_records_never_replayed_unless_forced(
    topics: tuple[str, str],
    delivery: Delivery,
    dead_letter: DeadLetter,
    aidmesh: Aidmesh,
    low_watermark: Offsets,
) -> None:
    topic, dlq = topics
    for _ in range(3):
        await dead_letter_a_delivery(dead_letter, delivery, topic)
    ok(await aidmesh("dlq", "replay", dlq, "--offset", "0"))

    refused = await aidmesh("dlq", "purge", dlq, "--before", "3", "--yes")
    low_after_refusal = await low_watermark(dlq)
    forced = await aidmesh("dlq", "purge", dlq, "--before", "3", "--yes", "--force")

    assert refused.exit_code == 1
    assert "2 of those records were never replayed (offsets 1-2)" in refused.stderr
    assert low_after_refusal == 0
    assert "purged 3 records" in ok(forced)
    assert await low_watermark(dlq) == 3


# ---- the headline ----------------------------------------------------------------------


async def test_a_dead_letter_replayed_after_its_cause_is_fixed_is_processed_once(
    topics: tuple[str, str],
    delivery: Delivery,
    producer: AIOKafkaProducer,
    pool: asyncpg.Pool,
    run_consumer: Callable[[EventConsumer, str], None],
    aidmesh: Aidmesh,
    eventually: Callable[..., Awaitable[None]],
    end_offset: Offsets,
) -> None:
    topic, dlq = topics
    household_known = False  # the cause: deliveries to unknown households are refused

    async def note_delivery(event: AssistanceDelivered, ctx: HandlerContext) -> None:
        if not household_known:
            raise Rejected("household not registered yet")
        await ctx.conn.execute(
            "INSERT INTO deliveries_noted (delivery_id, event_id) VALUES ($1, $2)",
            event.delivery_id,
            ctx.envelope.id,
        )

    consumer = EventConsumer(
        name="ops-dlq-tests",
        pool=pool,
        outbox=Outbox(source="/aidmesh/ops-tests", clock=lambda: datetime.now(UTC)),
        dead_letters=DeadLetters(producer=producer, service="ops-dlq-tests"),
        handlers={AssistanceDelivered: note_delivery},
        max_backoff_s=0.5,
    )
    run_consumer(consumer, topic)

    def outcome(name: str, count: int) -> Callable[[], Awaitable[bool]]:
        async def reached() -> bool:
            return consumer.outcomes[name] >= count

        return reached

    async def effects() -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM deliveries_noted WHERE delivery_id = $1", event.delivery_id
        )

    event, headers = delivery()
    await producer.send_and_wait(
        topic, key=event.subject().encode(), value=encode(event), headers=headers
    )
    await eventually(outcome("dead_lettered", 1), what="the delivery to be dead-lettered")
    assert await effects() == 0

    household_known = True  # the fix
    replayed = ok(await aidmesh("dlq", "replay", dlq, "--offset", "0"))
    await eventually(outcome("handled", 1), what="the replayed delivery to be handled")

    assert "replayed 1" in replayed
    assert await effects() == 1

    again = ok(await aidmesh("dlq", "replay", dlq, "--all", "--yes"))
    assert "nothing to replay" in again
    assert await end_offset(topic) == 2  # the original and one replay

    forced = ok(await aidmesh("dlq", "replay", dlq, "--offset", "0", "--force"))
    await eventually(outcome("duplicate", 1), what="the forced replay to reach the consumer")

    assert "replayed 1" in forced
    assert await effects() == 1  # the inbox knew its ce_id
    assert consumer.outcomes == Counter(dead_lettered=1, handled=1, duplicate=1)
