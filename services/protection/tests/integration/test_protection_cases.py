"""Protection on the real broker and database: a protection need opens a confidential case,
shared only as a pseudonymous reference on the restricted topic.

Copies of the services started by `make up` may consume the same topics and react to these
events too, so a test only looks at what its own in-process protection service did: rows of
its database and the Kafka records those rows name.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    CaseSource,
    Event,
    HouseholdMerged,
    NeedAssessed,
    ProtectionCaseOpened,
    ProtectionNeedDetails,
    Sector,
)
from aidmesh_contracts.events.assessment import NeedDetails
from aidmesh_runtime.testing import Seen, publish

pytestmark = pytest.mark.integration

PROTECTION_TOPIC = "aidmesh.protection.case.v1"


def is_event(record: Seen, model: type[Event], **fields: Any) -> bool:
    """Whether a record is a `model` event on its topic whose payload has these values.

    Other tests share the broker: a record that does not decode is simply not ours."""
    if record.envelope is None or record.envelope.type != model.event_type:
        return False
    if record.topic != model.topic:
        return False  # e.g. a copy in a dead-letter topic
    try:
        event = record.event()
    except ValueError:
        return False
    return all(getattr(event, name) == value for name, value in fields.items())


def need(sector: Sector, details: NeedDetails | None = None, severity: int = 4) -> NeedAssessed:
    return NeedAssessed(
        assessment_id=uuid4(),
        household_id=uuid4(),
        sector=sector,
        severity=severity,
        assessed_at=datetime.now(UTC),
        assessed_by="IOM-KH-03",
        details=details,
    )


async def published_by_us(database, correlation_id: UUID) -> list[str]:
    """Topics of every event this protection service wrote to its outbox in one flow."""
    rows = await database.conn.fetch(
        "SELECT topic FROM outbox WHERE headers @> $1::jsonb ORDER BY id",
        json.dumps([["ce_correlationid", str(correlation_id)]]),
    )
    return [r["topic"] for r in rows]


async def test_a_protection_need_opens_a_case_on_the_restricted_topic_caused_by_the_need(
    protection, producer, database, events
) -> None:
    protection_need = need(
        Sector.PROTECTION,
        ProtectionNeedDetails(concern_codes=frozenset({"gbv_risk", "family_separation"})),
    )
    need_envelope = await publish(producer, protection_need)

    row = await database.eventually(
        "SELECT case_ref, status FROM protection_cases WHERE need_assessment_id = $1",
        protection_need.assessment_id,
        what="the protection case for the need",
    )
    [seen] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, ProtectionCaseOpened, case_ref=row["case_ref"]),
        what="ProtectionCaseOpened of our case",
    )

    assert seen.topic == PROTECTION_TOPIC
    assert seen.envelope is not None
    assert seen.envelope.causationid == need_envelope.id
    assert seen.envelope.correlationid == need_envelope.correlationid
    assert seen.key == str(protection_need.household_id).encode()
    opened = seen.event()
    assert isinstance(opened, ProtectionCaseOpened)
    assert re.fullmatch(r"PRT-[0-9A-HJKMNP-TV-Z]{10}", opened.case_ref)
    assert opened.household_id == protection_need.household_id
    assert (opened.source, opened.severity) == (CaseSource.NEED_ASSESSMENT, 4)
    assert opened.concern_codes == {"gbv_risk", "family_separation"}
    assert row["status"] == "intake"


async def test_a_protection_case_is_published_on_no_other_topic(
    protection, producer, database, events
) -> None:
    protection_need = need(Sector.PROTECTION, ProtectionNeedDetails(concern_codes={"gbv_risk"}))
    need_envelope = await publish(producer, protection_need)
    row = await database.eventually(
        "SELECT case_ref FROM protection_cases WHERE need_assessment_id = $1",
        protection_need.assessment_id,
        what="the protection case for the need",
    )
    await events.wait_for(
        bool,
        select=lambda r: is_event(r, ProtectionCaseOpened, case_ref=row["case_ref"]),
        what="ProtectionCaseOpened of our case",
    )

    assert await published_by_us(database, need_envelope.correlationid) == [PROTECTION_TOPIC]
    from_protection = [
        r
        for r in events.of_flow(need_envelope.correlationid)
        if r.envelope is not None and r.envelope.source == "/aidmesh/protection"
    ]
    assert {r.topic for r in from_protection} == {PROTECTION_TOPIC}


async def test_a_need_of_another_sector_opens_no_case(protection, producer, database) -> None:
    health_need = need(Sector.HEALTH)
    need_envelope = await publish(producer, health_need)

    await database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1",
        need_envelope.id,
        what="protection to have consumed the health need",
    )

    assert not await database.conn.fetchval(
        "SELECT count(*) FROM protection_cases WHERE household_id = $1", health_need.household_id
    )
    assert await published_by_us(database, need_envelope.correlationid) == []


async def test_the_same_need_sent_again_under_a_new_event_id_opens_no_second_case(
    protection, producer, database
) -> None:
    protection_need = need(Sector.PROTECTION, ProtectionNeedDetails(concern_codes={"gbv_risk"}))

    await publish(producer, protection_need)
    again = await publish(producer, protection_need)  # a new ce_id: the inbox lets it through

    await database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1", again.id, what="the second copy consumed"
    )
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM protection_cases WHERE need_assessment_id = $1",
            protection_need.assessment_id,
        )
        == 1
    )


async def test_a_need_for_a_merged_household_opens_the_case_for_the_household_that_stays(
    protection, producer, database, register
) -> None:
    merged, survivor = await register(), await register()
    merge = await publish(
        producer,
        HouseholdMerged(
            household_id=survivor,
            merged_household_id=merged,
            decided_by="IOM-KH-03",
            merged_at=datetime.now(UTC),
        ),
        source="/aidmesh/registration",
    )
    await database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1", merge.id, what="the merge consumed"
    )
    late_need = need(Sector.PROTECTION).model_copy(update={"household_id": merged})

    await publish(producer, late_need)

    row = await database.eventually(
        "SELECT household_id FROM protection_cases WHERE need_assessment_id = $1",
        late_need.assessment_id,
        what="the case of the late need",
    )
    assert row["household_id"] == survivor
