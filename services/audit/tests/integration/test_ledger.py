"""Audit on the real broker and database: every event lands in the hash-chained ledger once,
in order, and a household's timeline shows what caused what.

Other tests (and a `make up` platform) may publish on the same topics meanwhile: their
events land in this ledger too, so a test looks only at its own events, by ce_id.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_audit.cli import app, verify_ledger
from aidmesh_contracts import (
    Composition,
    DamageLevel,
    HouseholdRegistered,
    Location,
    NeedAssessed,
    Sector,
    ShelterCaseOpened,
    ShelterNeedDetails,
    encode,
)
from aidmesh_runtime.testing import publish
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")


def household_registered() -> HouseholdRegistered:
    return HouseholdRegistered(
        household_id=uuid4(),
        registered_at=datetime.now(UTC),
        channel="field_office",
        location=KHARKIV,
        displacement_status="idp",
        size=3,
        composition=Composition(female_18_59=1, male_0_17=2),
        consents=frozenset({"registration", "data_sharing"}),
    )


def shelter_need(household_id: UUID) -> NeedAssessed:
    return NeedAssessed(
        assessment_id=uuid4(),
        household_id=household_id,
        sector=Sector.SHELTER,
        severity=4,
        assessed_at=datetime.now(UTC),
        assessed_by="IOM-KH-03",
        details=ShelterNeedDetails(damage_level=DamageLevel.MEDIUM),
    )


def case_opened(need: NeedAssessed) -> ShelterCaseOpened:
    return ShelterCaseOpened(
        case_id=uuid4(),
        household_id=need.household_id,
        need_assessment_id=need.assessment_id,
        severity=need.severity,
        damage_level=DamageLevel.MEDIUM,
        location=KHARKIV,
        opened_at=datetime.now(UTC),
    )


async def test_events_land_in_the_ledger_in_order_with_their_envelope_and_a_valid_chain(
    audit, producer, ledger, settings
) -> None:
    registered = household_registered()
    need = shelter_need(registered.household_id)
    first = await publish(producer, registered)
    second = await publish(producer, need, caused_by=first)

    rows = await ledger.entries_of([first.id, second.id])

    assert [r["ce_id"] for r in rows] == [first.id, second.id]
    assert rows[0]["seq"] < rows[1]["seq"]
    row = rows[1]
    assert row["ce_type"] == "org.aidmesh.assessment.need.assessed.v1"
    assert row["ce_source"] == "/aidmesh/tests"
    assert row["ce_subject"] == str(registered.household_id)
    assert row["ce_time"] == second.time
    assert (row["correlation_id"], row["causation_id"]) == (first.id, first.id)
    assert row["topic"] == "aidmesh.assessment.need.v1"
    assert row["kafka_partition"] == rows[0]["kafka_partition"]  # same key, same partition
    assert row["kafka_offset"] >= 0
    assert row["payload"] == encode(need).decode()
    assert row["received_at"] is not None
    verdict = await verify_ledger(settings.database_dsn)
    assert verdict.intact, verdict.broken
    assert verdict.entries >= 2


async def test_a_duplicate_delivery_creates_no_second_entry(audit, producer, ledger) -> None:
    registered = household_registered()
    envelope = await publish(producer, registered)
    await ledger.entries_of([envelope.id])

    # The same record again (a producer retry, a DLQ replay): same ce_id, same headers.
    await producer.send_and_wait(
        registered.topic,
        value=encode(registered),
        key=registered.subject().encode(),
        headers=envelope.to_headers(),
    )
    # Same key, same partition: once the next event is in, the duplicate was handled.
    after = await publish(producer, shelter_need(registered.household_id), caused_by=envelope)
    await ledger.entries_of([after.id])

    assert await ledger.count(envelope.id) == 1
    subject_rows = await ledger.conn.fetchval(
        "SELECT count(*) FROM audit_ledger WHERE ce_subject = $1", str(registered.household_id)
    )
    assert subject_rows == 2


async def test_the_ledger_refuses_updates_and_deletes(audit, producer, ledger, settings) -> None:
    envelope = await publish(producer, household_registered())
    await ledger.entries_of([envelope.id])
    conn = await asyncpg.connect(settings.database_dsn)  # as the service's own role
    try:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(
                "UPDATE audit_ledger SET payload = '{}' WHERE ce_id = $1", envelope.id
            )
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("DELETE FROM audit_ledger WHERE ce_id = $1", envelope.id)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("TRUNCATE audit_ledger")
    finally:
        await conn.close()
    assert await ledger.count(envelope.id) == 1


async def test_the_timeline_shows_a_households_events_with_their_causation_links(
    audit, producer, ledger
) -> None:
    registered = household_registered()
    need = shelter_need(registered.household_id)
    opened = case_opened(need)
    e1 = await publish(producer, registered, source="/aidmesh/registration")
    e2 = await publish(producer, need, caused_by=e1, source="/aidmesh/registration")
    e3 = await publish(producer, opened, caused_by=e2, source="/aidmesh/shelter")
    other = await publish(producer, household_registered())  # another household
    await ledger.entries_of([e1.id, e2.id, e3.id, other.id])

    response = await audit.get(f"/households/{registered.household_id}/timeline")

    assert response.status_code == 200
    body = response.json()
    assert body["household_id"] == str(registered.household_id)
    events = body["events"]
    # Ledger order: the order audit read them. Across topics that need not be the causal
    # order (each topic-partition is read on its own); the causation links give that.
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    parents = {e["ce_id"]: e["causation_id"] for e in events}
    assert parents == {str(e1.id): None, str(e2.id): str(e1.id), str(e3.id): str(e2.id)}
    [case] = [e for e in events if e["ce_id"] == str(e3.id)]
    assert case["source"] == "/aidmesh/shelter"
    assert case["data"]["case_id"] == str(opened.case_id)
    [root] = body["causation_tree"]
    assert root["ce_id"] == str(e1.id)
    assert root["caused"][0]["ce_id"] == str(e2.id)
    assert root["caused"][0]["caused"][0]["ce_id"] == str(e3.id)


async def test_the_timeline_of_an_unknown_household_is_empty(audit) -> None:
    response = await audit.get(f"/households/{uuid4()}/timeline")

    assert response.status_code == 200
    assert response.json()["events"] == []


async def test_the_timeline_refuses_a_household_id_that_is_not_a_uuid(audit) -> None:
    response = await audit.get("/households/not-a-uuid/timeline")

    assert response.status_code == 422


async def test_the_timeline_command_prints_the_households_causation_tree(
    audit, producer, ledger, settings
) -> None:
    registered = household_registered()
    first = await publish(producer, registered, source="/aidmesh/registration")
    second = await publish(producer, shelter_need(registered.household_id), caused_by=first)
    await ledger.entries_of([first.id, second.id])

    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["timeline", str(registered.household_id), "--dsn", settings.database_dsn],
        terminal_width=200,
    )

    assert result.exit_code == 0, result.output
    output = result.output
    assert f"household {registered.household_id}: 2 events" in output
    assert str(first.id) in output and str(second.id) in output
    [root_line] = [line for line in output.splitlines() if "household.registered" in line]
    [need_line] = [line for line in output.splitlines() if "need.assessed" in line]
    assert need_line.index("#") > root_line.index("#")  # nested under what caused it
