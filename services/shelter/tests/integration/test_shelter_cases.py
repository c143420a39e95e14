"""Shelter on the real broker and database: assessed needs open cases, one per household,
and the work queue lists them by oblast and status, most urgent first."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    DamageLevel,
    Location,
    NeedAssessed,
    Sector,
    ShelterCaseOpened,
    ShelterNeedDetails,
    encode,
)
from aidmesh_contracts.envelope import new_envelope
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.outbox import Outbox
from aidmesh_runtime.testing import database_dsn, publish
from aidmesh_shelter.handlers import shelter_handlers

pytestmark = pytest.mark.integration

KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")


def medium_need(household_id: UUID) -> NeedAssessed:
    """A shelter need of severity 3 for medium damage, assessed now."""
    return NeedAssessed(
        assessment_id=uuid4(),
        household_id=household_id,
        sector=Sector.SHELTER,
        severity=3,
        assessed_at=datetime.now(UTC),
        assessed_by="IOM-KH-03",
        details=ShelterNeedDetails(damage_level=DamageLevel.MEDIUM),
    )


async def test_a_shelter_need_of_a_known_household_opens_a_case_caused_by_the_need(
    flows,
) -> None:
    household, registered = await flows.register()
    need, need_envelope = await flows.need(household.household_id, caused_by=registered)

    opened, seen = await flows.published(ShelterCaseOpened, need_assessment_id=need.assessment_id)

    assert seen.envelope.causationid == need_envelope.id
    assert seen.envelope.correlationid == registered.correlationid
    assert seen.key == str(household.household_id).encode()
    assert opened.household_id == household.household_id
    assert (opened.damage_level, opened.severity, opened.location) == (
        DamageLevel.LIGHT,
        4,
        KHARKIV,
    )
    row = await flows.case_row(opened.case_id)
    assert (row["status"], row["household_size"]) == ("open", 3)


async def test_a_need_that_arrives_before_its_household_waits_then_opens_exactly_one_case(
    flows, producer, database
) -> None:
    household = flows.household()
    flow = uuid4()
    need = medium_need(household.household_id)
    need_envelope = await publish(producer, need, correlation_id=flow)
    await database.eventually(
        "SELECT 1 FROM pending_need WHERE assessment_id = $1 AND acted_at IS NULL",
        need.assessment_id,
        timeout_s=120,
        what="the need waiting for its household",
    )
    assert not await database.conn.fetchval(
        "SELECT count(*) FROM shelter_cases WHERE household_id = $1", need.household_id
    )

    await publish(producer, household, correlation_id=flow)
    _, seen = await flows.published(ShelterCaseOpened, need_assessment_id=need.assessment_id)

    assert seen.envelope.causationid == need_envelope.id
    assert seen.envelope.correlationid == flow
    assert [p.envelope.type for p in await flows.outbox(correlation_id=flow)] == [
        ShelterCaseOpened.event_type
    ]


async def test_the_same_need_delivered_twice_opens_only_one_case(flows, producer, consumed) -> None:
    household, registered = await flows.register()
    need = NeedAssessed(
        assessment_id=uuid4(),
        household_id=household.household_id,
        sector=Sector.SHELTER,
        severity=4,
        assessed_at=datetime.now(UTC),
        assessed_by="IOM-KH-03",
        details=ShelterNeedDetails(damage_level=DamageLevel.LIGHT),
    )
    envelope = new_envelope(
        need, source="/aidmesh/tests", time=datetime.now(UTC), caused_by=registered
    )
    for _ in range(2):  # the same record again, as a producer retry or a replay would send it
        sent = await producer.send_and_wait(
            need.topic,
            value=encode(need),
            key=need.subject().encode(),
            headers=envelope.to_headers(),
        )
    await consumed(sent)

    await flows.published(ShelterCaseOpened, need_assessment_id=need.assessment_id)

    assert await flows.count(ShelterCaseOpened, household_id=household.household_id) == 1


async def test_a_second_need_of_a_household_with_a_case_in_progress_opens_no_second_case(
    flows, consumed, producer
) -> None:
    case = await flows.open_case(DamageLevel.LIGHT, severity=2)
    before = (await flows.case_row(case.case_id))["priority"]

    need, _ = await flows.need(case.household.household_id, DamageLevel.LIGHT, severity=5)
    await flows.database.eventually(
        "SELECT 1 FROM pending_need WHERE assessment_id = $1 AND acted_at IS NOT NULL",
        need.assessment_id,
        timeout_s=120,
        what="shelter acting on the second need",
    )

    assert await flows.count(ShelterCaseOpened, household_id=case.household.household_id) == 1
    row = await flows.case_row(case.case_id)
    assert row["severity"] == 5
    assert row["priority"] < before


async def test_the_work_queue_lists_an_oblast_s_open_cases_most_urgent_first(
    flows, shelter
) -> None:
    odesa = Location(adm1_pcode="UA51")
    routine = await flows.open_case(DamageLevel.LIGHT, severity=2, location=odesa)
    vulnerable = await flows.open_case(
        DamageLevel.LIGHT,
        severity=2,
        location=odesa,
        vulnerabilities=frozenset({"disability", "elderly_headed"}),
    )
    severe = await flows.open_case(DamageLevel.MEDIUM, severity=5, location=odesa)
    elsewhere = await flows.open_case(DamageLevel.HEAVY, severity=5)

    response = await shelter.get("/cases", params={"status": "open", "oblast": "UA51"})

    assert response.status_code == 200, response.text
    listed = [c["case_id"] for c in response.json()]
    assert listed == [str(severe.case_id), str(vulnerable.case_id), str(routine.case_id)]
    assert str(elsewhere.case_id) not in listed
    first = response.json()[0]
    assert (first["status"], first["damage_level"], first["location"]["adm1_pcode"]) == (
        "open",
        "medium",
        "UA51",
    )
    assert first["priority"] < response.json()[1]["priority"] < response.json()[2]["priority"]


async def test_the_work_queue_refuses_a_malformed_oblast_naming_the_parameter(shelter) -> None:
    response = await shelter.get("/cases", params={"oblast": "Kharkiv"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "oblast"]
    assert "Kharkiv" not in response.text


async def test_an_unknown_case_is_not_found(shelter) -> None:
    case_id = uuid4()

    response = await shelter.get(f"/cases/{case_id}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"shelter case {case_id} not found"}


async def test_the_openapi_document_describes_the_engineer_and_coordinator_api(shelter) -> None:
    spec = (await shelter.get("/openapi.json")).json()

    assessment = spec["paths"]["/cases/{case_id}/assessment"]["post"]
    assert assessment["summary"].startswith("Record a field engineer's technical assessment")
    assert {"200", "404", "409", "422"} <= set(assessment["responses"])
    assert spec["paths"]["/cases"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]["items"]["$ref"].endswith("/CaseOut")
    for path in (
        "/cases/{case_id}/plan",
        "/cases/{case_id}/repair-completion",
        "/cases/{case_id}/referral-outcome",
        "/households/{household_id}/winterization-kits",
        "/households/{household_id}/rental-assistance",
        "/facilities",
        "/deliveries/{delivery_id}/monitoring",
    ):
        assert spec["paths"][path]["post"]["summary"], path


async def test_each_half_of_the_join_holds_the_household_s_lock_until_its_transaction_ends(
    flows, settings, database
) -> None:
    """The household's lock serialises a need and its household handled at once (ADR 0002);
    each handler takes it with its first write, not in a statement of its own."""
    household = flows.household()
    need = medium_need(household.household_id)
    handlers = shelter_handlers(settings.rules())
    outbox = Outbox(source="/aidmesh/tests", clock=lambda: datetime.now(UTC))
    other = await asyncpg.connect(database_dsn(settings.database))
    try:
        for event in (need, household):
            envelope = new_envelope(event, source="/aidmesh/tests", time=datetime.now(UTC))
            transaction = database.conn.transaction()
            await transaction.start()
            try:
                ctx = HandlerContext(conn=database.conn, envelope=envelope, outbox=outbox)
                await handlers[type(event)](event, ctx)
                assert not await other.fetchval(LOCK_TRY, str(household.household_id))
            finally:
                await transaction.rollback()  # nothing of it stays, nothing is published
            assert await other.fetchval(LOCK_TRY, str(household.household_id))
    finally:
        await other.close()


#: As the household projection and shelter's use cases take the household's lock.
LOCK_TRY = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))"
