"""Poison records on the real broker, through a running health process: each lands in
`<topic>.dlq` with its reason, and the valid records behind them (same key, so the same
partition, after them) are still processed.

Other services reading the need topic (a `make up` platform, the end-to-end tests' one,
still running when these tests run in the same session) dead-letter the same records too,
so letters are matched by offset and service, and this process's own log says that it was
the one that dead-lettered each record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aidmesh_contracts import Event, HouseholdRegistered, NeedAssessed
from aidmesh_contracts.envelope import encode, new_envelope
from aidmesh_contracts.examples import example
from aidmesh_contracts.topics import HOUSEHOLD, NEED, dlq_topic
from aidmesh_runtime.service import create_producer
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import event_log

pytestmark = pytest.mark.faults

Headers = list[tuple[str, bytes]]
FIVE_MB = 5 * 1024 * 1024


def headers_of(event: Event, **overrides: Any) -> Headers:
    envelope = new_envelope(event, source="/aidmesh/tests/faults", time=datetime.now(UTC))
    return envelope.model_copy(update=overrides).to_headers()


def without(headers: Headers, *names: str) -> Headers:
    return [(name, value) for name, value in headers if name not in names]


@dataclass(frozen=True)
class Poison:
    spoil: Callable[[NeedAssessed], tuple[Headers, bytes]]
    exception: str
    reason: str


POISONS = {
    "five_megabytes": Poison(
        lambda need: (
            headers_of(need),
            json.dumps(json.loads(encode(need)) | {"notes": "x" * FIVE_MB}).encode(),
        ),
        exception="PayloadError",
        reason="notes: Extra inputs are not permitted",
    ),
    "value_not_utf8": Poison(
        lambda need: (headers_of(need), b'{"assessment_id": "\xff\xfe\xfd"}'),
        exception="PayloadError",
        reason="Invalid JSON",
    ),
    "value_not_json": Poison(
        lambda need: (headers_of(need), b"assessment_id=7;sector=health"),
        exception="PayloadError",
        reason="Invalid JSON",
    ),
    "schema_violation": Poison(
        lambda need: (
            headers_of(need),
            json.dumps(json.loads(encode(need)) | {"severity": 9}).encode(),
        ),
        exception="PayloadError",
        reason="severity: Input should be less than or equal to 5",
    ),
    "unknown_event_type": Poison(
        lambda need: (
            headers_of(need, type="org.aidmesh.assessment.need.teleported.v1"),
            encode(need),
        ),
        exception="UnknownEventType",
        reason="unknown event type 'org.aidmesh.assessment.need.teleported.v1'",
    ),
    "missing_headers": Poison(
        lambda need: (without(headers_of(need), "ce_id", "ce_type"), encode(need)),
        exception="EnvelopeError",
        reason="missing CloudEvents headers: ce_id, ce_type",
    ),
}


def household_and_health_need() -> tuple[HouseholdRegistered, NeedAssessed]:
    household_id = str(uuid4())
    household = HouseholdRegistered.model_validate(
        example(HouseholdRegistered.event_type) | {"household_id": household_id}
    )
    need = NeedAssessed.model_validate(
        example(NeedAssessed.event_type)
        | {
            "assessment_id": str(uuid4()),
            "household_id": household_id,
            "sector": "health",
            "details": {"kind": "health", "services_needed": ["mhpss"]},
        }
    )
    return household, need


async def test_poison_records_are_dead_lettered_and_the_records_after_them_are_processed(
    databases: Any, services: Any, kafka: Any, poll: Any, report: Any
) -> None:
    database = await databases.create("health", owner="aidmesh_health")
    group = f"aidmesh-health-faults-{uuid4().hex[:10]}"
    await kafka.group_at_end(group, HOUSEHOLD, NEED)
    health = await services.start("health", database=database, group=group)
    household, need = household_and_health_need()
    key = str(household.household_id).encode()
    producer = create_producer(
        ServiceSettings(kafka_bootstrap=kafka.bootstrap, kafka_username="admin")
    )
    await producer.start()
    try:
        async with event_log(bootstrap=kafka.bootstrap, topics=[dlq_topic(NEED)]) as letters:
            sent = {}
            for name, poison in POISONS.items():
                headers, value = poison.spoil(need)
                sent[name] = await producer.send_and_wait(
                    NEED, key=key, value=value, headers=headers
                )
            # The valid records come after the poison, in the same partition.
            valid = await producer.send_and_wait(
                NEED, key=key, value=encode(need), headers=headers_of(need)
            )
            await producer.send_and_wait(
                HOUSEHOLD, key=key, value=encode(household), headers=headers_of(household)
            )

            async def visit_completed() -> bool:
                return bool(
                    await databases.fetchval(
                        database,
                        "SELECT count(*) FROM visits WHERE need_assessment_id = $1",
                        need.assessment_id,
                    )
                )

            await poll(visit_completed, what="the valid need behind the poison met", timeout_s=60)

            def letter_of(offset: int) -> Any:
                return next(
                    (
                        r
                        for r in letters.records
                        if r.key == key
                        and r.headers.get("aidmesh_dlq_offset") == str(offset)
                        and r.headers.get("aidmesh_dlq_topic") == NEED
                        and r.headers.get("aidmesh_dlq_service") == "health"
                    ),
                    None,
                )

            async def all_dead_lettered() -> bool:
                return all(letter_of(m.offset) for m in sent.values())

            await poll(all_dead_lettered, what="a dead letter for every poison record")
    finally:
        await producer.stop()

    ours = {
        (entry["partition"], entry["offset"])
        for entry in health.log_events("event_dead_lettered")
        if entry.get("topic") == NEED
    }
    outcome = {}
    for name, poison in POISONS.items():
        letter = letter_of(sent[name].offset)
        outcome[name] = {
            "offset": sent[name].offset,
            "exception": letter.headers["aidmesh_dlq_exception"],
            "reason": letter.headers["aidmesh_dlq_reason"][:120],
            "value_bytes": len(letter.value or b""),
        }
        assert poison.reason in letter.headers["aidmesh_dlq_reason"], name
        assert letter.headers["aidmesh_dlq_exception"] == poison.exception, name
        assert letter.headers["aidmesh_dlq_partition"] == str(sent[name].partition), name
        assert (sent[name].partition, sent[name].offset) in ours, f"{name}: not by this process"
    assert len(letter_of(sent["five_megabytes"].offset).value) > FIVE_MB
    report(
        "poison",
        poison_records=len(POISONS),
        dead_lettered_by_this_process=len(ours),
        valid_records_after_them_processed=2,
        valid_need_offset=valid.offset,
        partition=valid.partition,
        letters=outcome,
    )
