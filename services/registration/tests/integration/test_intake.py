"""Intake on the real database and broker: KoboToolbox REST Services and the partners'
intake topic, both idempotent on the submission id, with edits and kept rejections."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    Channel,
    ConsentPurpose,
    ConsentWithdrawn,
    HouseholdRegistered,
    HouseholdUpdated,
    IntakeSource,
    IntakeSubmitted,
    NeedAssessed,
)
from aidmesh_runtime.auth import REGISTRATION_INTAKE
from aidmesh_runtime.testing import (
    Database,
    EventLog,
    Seen,
    auth_headers,
    kafka_producer,
    publish,
)
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient, Response
from structlog.testing import capture_logs

pytestmark = pytest.mark.integration

Kobo = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer() as producer:
        yield producer


@pytest.fixture
def submission(kobo: Kobo, names: Callable[[], str]) -> Callable[..., dict[str, Any]]:
    """A Kobo submission of a family no other test registers (same form, fresh identity)."""

    def fresh(**answers: Any) -> dict[str, Any]:
        family = names()
        draw = uuid4().int
        base = kobo(
            **{
                "head/family_name": family,
                "head/document_number": f"МК{draw % 10**6:06d}",
                "household/phone": f"+38050{(draw >> 20) % 10**7:07d}",
                "head/dob": f"19{50 + draw % 40}-0{1 + draw % 9}-1{draw % 10}",
            }
        )
        base["members"] = [
            {**m, "members/family_name": family if i == 0 else names()}
            for i, m in enumerate(base["members"])
        ]
        return base | answers

    return fresh


def partner_token(partner: str) -> dict[str, str]:
    """A Kobo project's REST Service: the partner's token, which may only send intake."""
    return auth_headers(REGISTRATION_INTAKE, org=partner, sub=f"partner:{partner.lower()}")


async def send(client: AsyncClient, answers: dict[str, Any], partner: str = "NRC") -> Response:
    return await client.post("/intake/kobo", json=answers, headers=partner_token(partner))


async def counts(database: asyncpg.Connection) -> dict[str, int]:
    return {
        table: await database.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("households", "members", "need_assessments", "outbox", "intake_submissions")
    }


async def published(events: EventLog, subject: str, event_type: str, count: int = 1) -> list[Seen]:
    return await events.wait_for(
        lambda rs: len(rs) >= count,
        select=lambda r: (
            r.envelope is not None
            and r.envelope.subject == subject
            and r.envelope.type == event_type
        ),
        what=f"{count} {event_type} of {subject}",
    )


async def outbox_types(database: asyncpg.Connection, household_id: str) -> list[str]:
    rows = await database.fetch(
        "SELECT headers FROM outbox WHERE key = $1 ORDER BY id", household_id
    )
    return [dict(json.loads(r["headers"]))["ce_type"] for r in rows]


# ---- KoboToolbox REST Services -----------------------------------------------------------


async def test_a_kobo_submission_registers_a_household_of_the_partner(
    registration: AsyncClient, events: EventLog, submission: Callable[..., dict[str, Any]]
) -> None:
    answers = submission()

    response = await send(registration, answers)

    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["status"], result["repeated"], result["submission_id"]) == (
        "registered",
        False,
        answers["meta/instanceID"],
    )
    household_id = result["household_id"]
    household = (await registration.get(f"/households/{household_id}")).json()
    assert (household["channel"], household["partner_org"], household["size"]) == ("kobo", "NRC", 3)
    assert household["adm3_pcode"] == "UA6312001"
    assert household["members"][0]["documents"][0]["kind"] == "passport"
    [registered] = await published(events, household_id, HouseholdRegistered.event_type)
    assert registered.event().channel is Channel.KOBO  # type: ignore[attr-defined]
    await published(events, household_id, NeedAssessed.event_type, count=2)
    kept = (await registration.get(f"/intake/submissions/NRC/{answers['meta/instanceID']}")).json()
    assert (kept["status"], kept["household_id"], kept["form_id"]) == (
        "registered",
        household_id,
        "aTEr5MZHhLfRW7bDZXrxZ4",
    )
    assert kept["answers"]["head/given_name"] == "Людмила"


async def test_a_resent_submission_does_nothing_new(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
) -> None:
    answers = submission()
    first = await send(registration, answers)
    before = await counts(database)

    again = await send(registration, answers)

    assert again.status_code == 200, again.text
    assert again.json()["repeated"] is True
    assert again.json()["events"] == []
    assert again.json()["household_id"] == first.json()["household_id"]
    assert await counts(database) == before


async def test_a_kobo_edit_updates_the_household_its_original_registered(
    registration: AsyncClient,
    database: asyncpg.Connection,
    events: EventLog,
    submission: Callable[..., dict[str, Any]],
) -> None:
    original = submission()
    household_id = (await send(registration, original)).json()["household_id"]
    members_before = (await registration.get(f"/households/{household_id}")).json()["members"]
    edit = original | {
        "meta/instanceID": f"uuid:{uuid4()}",
        "meta/deprecatedID": original["meta/instanceID"],
        "household/displacement_status": "returnee",
        "needs/shelter_severity": "5",
    }
    households_before = (await counts(database))["households"]

    response = await send(registration, edit)

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["household_id"]) == ("updated", household_id)
    assert (await counts(database))["households"] == households_before
    [updated] = await published(events, household_id, HouseholdUpdated.event_type)
    assert updated.event().changed == {"displacement_status"}  # type: ignore[attr-defined]
    assert updated.event().channel is Channel.KOBO  # type: ignore[attr-defined]
    types = await outbox_types(database, household_id)
    assert types.count(HouseholdUpdated.event_type) == 1
    assert types.count(HouseholdRegistered.event_type) == 1
    assert types.count(NeedAssessed.event_type) == 3  # shelter and health, then shelter again
    members_after = (await registration.get(f"/households/{household_id}")).json()["members"]
    assert [m["member_id"] for m in members_after] == [m["member_id"] for m in members_before]


async def test_an_edit_sent_twice_is_applied_once(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
) -> None:
    original = submission()
    household_id = (await send(registration, original)).json()["household_id"]
    edit = original | {
        "meta/instanceID": f"uuid:{uuid4()}",
        "meta/deprecatedID": original["meta/instanceID"],
        "location/address": "вул. Клочківська, 3, Харків",
    }
    assert (await send(registration, edit)).json()["status"] == "updated"
    before = await counts(database)

    again = await send(registration, edit)

    assert (again.json()["repeated"], again.json()["household_id"]) == (True, household_id)
    assert await counts(database) == before


async def test_an_edit_saying_no_to_data_sharing_withdraws_that_consent(
    registration: AsyncClient, events: EventLog, submission: Callable[..., dict[str, Any]]
) -> None:
    original = submission()
    household_id = (await send(registration, original)).json()["household_id"]
    edit = original | {
        "meta/instanceID": f"uuid:{uuid4()}",
        "meta/deprecatedID": original["meta/instanceID"],
        "consent/data_sharing": "no",
    }

    response = await send(registration, edit)

    assert response.json()["status"] == "updated"
    [withdrawn] = await published(events, household_id, ConsentWithdrawn.event_type)
    assert withdrawn.event().purpose is ConsentPurpose.DATA_SHARING  # type: ignore[attr-defined]
    assert withdrawn.event().recorded_by == "NRC"  # type: ignore[attr-defined]


async def test_an_original_arriving_after_its_edit_is_superseded(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
) -> None:
    original = submission()
    edit = original | {
        "meta/instanceID": f"uuid:{uuid4()}",
        "meta/deprecatedID": original["meta/instanceID"],
    }
    registered = await send(registration, edit)
    assert registered.status_code == 201, registered.text
    households = (await counts(database))["households"]

    late = await send(registration, original)

    assert late.status_code == 200, late.text
    assert (late.json()["status"], late.json()["household_id"]) == (
        "superseded",
        registered.json()["household_id"],
    )
    assert (await counts(database))["households"] == households


async def test_an_unmappable_submission_is_kept_reported_and_nothing_is_registered(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
) -> None:
    answers = submission(**{"head/dob": "2091-02-30", "household/displacement_status": "tourist"})
    before = await counts(database)

    with capture_logs() as logs:
        response = await send(registration, answers)

    assert response.status_code == 422, response.text
    result = response.json()
    assert result["status"] == "rejected"
    assert {tuple(e["loc"]) for e in result["detail"]} == {
        ("body", "head/dob"),
        ("body", "household/displacement_status"),
    }
    after = await counts(database)
    assert after == before | {"intake_submissions": before["intake_submissions"] + 1}
    rejected = (await registration.get("/intake/rejected", params={"partner_org": "NRC"})).json()
    [kept] = [s for s in rejected["items"] if s["submission_id"] == answers["meta/instanceID"]]
    assert {r["field"] for r in kept["reasons"]} == {"head/dob", "household/displacement_status"}
    # Reported without the answers: the response, the listing and the log hold no personal data.
    [line] = [entry for entry in logs if entry["event"] == "intake_rejected"]
    assert line["fields"] == ["head/dob", "household/displacement_status"]
    logged = json.dumps(logs, ensure_ascii=False, default=str)
    for personal in (answers["head/family_name"], answers["household/phone"], "2091-02-30"):
        assert personal not in response.text
        assert personal not in str(rejected)
        assert personal not in logged


async def test_a_rejected_submission_sent_again_after_the_fix_is_registered(
    registration: AsyncClient, submission: Callable[..., dict[str, Any]]
) -> None:
    broken = submission(**{"head/sex": "unknown"})
    assert (await send(registration, broken)).status_code == 422

    fixed = await send(registration, broken | {"head/sex": "female"})

    assert fixed.status_code == 201, fixed.text
    kept = (await registration.get(f"/intake/submissions/NRC/{broken['meta/instanceID']}")).json()
    assert (kept["status"], kept["attempts"], kept["reasons"]) == ("registered", 2, [])
    assert kept["answers"]["head/sex"] == "female"


async def test_a_rejected_submission_can_be_mapped_again_on_request(
    registration: AsyncClient, submission: Callable[..., dict[str, Any]]
) -> None:
    broken = submission(**{"location/adm1": "UA99", "location/adm2": "", "location/adm3": ""})
    assert (await send(registration, broken)).status_code == 422
    path = f"/intake/submissions/NRC/{broken['meta/instanceID']}/retry"

    retried = await registration.post(path)

    # Still unmappable (the oblast is still unknown), kept, and counted.
    assert retried.status_code == 422
    assert retried.json()["detail"][0]["loc"] == ["body", "location/adm1"]
    kept = (await registration.get(f"/intake/submissions/NRC/{broken['meta/instanceID']}")).json()
    assert kept["attempts"] == 2


async def test_only_a_rejected_submission_can_be_mapped_again(
    registration: AsyncClient, submission: Callable[..., dict[str, Any]]
) -> None:
    answers = submission()
    assert (await send(registration, answers)).status_code == 201

    registered = await registration.post(
        f"/intake/submissions/NRC/{answers['meta/instanceID']}/retry"
    )
    unknown = await registration.post("/intake/submissions/NRC/uuid:nobody/retry")

    assert (registered.status_code, unknown.status_code) == (409, 404)


async def test_a_submission_is_attributed_to_the_partner_its_token_names(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
) -> None:
    answers = submission()

    response = await send(registration, answers, partner="PIN")

    assert response.status_code == 201, response.text
    assert response.json()["partner_org"] == "PIN"
    stored = await database.fetchrow(
        "SELECT partner_org, household_id FROM intake_submissions WHERE submission_id = $1",
        answers["meta/instanceID"],
    )
    assert stored["partner_org"] == "PIN"
    household = (await registration.get(f"/households/{stored['household_id']}")).json()
    assert (household["channel"], household["partner_org"]) == ("kobo", "PIN")


@pytest.mark.parametrize(
    ("params", "headers", "named"),
    [
        ({"partner_org": "DRC"}, {}, "partner_org is DRC"),
        ({}, {"X-Partner-Org": "DRC"}, "X-Partner-Org is DRC"),
    ],
)
async def test_a_submission_naming_another_partner_than_its_token_is_refused_and_not_kept(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
    params: dict[str, str],
    headers: dict[str, str],
    named: str,
) -> None:
    before = await counts(database)

    response = await registration.post(
        "/intake/kobo", params=params, json=submission(), headers=partner_token("NRC") | headers
    )

    assert response.status_code == 403
    assert response.json() == {
        "detail": f"{named} but the token is for NRC: a call is attributed to its token's"
        " organisation"
    }
    assert await counts(database) == before


async def test_a_submission_may_repeat_its_tokens_partner(
    registration: AsyncClient, submission: Callable[..., dict[str, Any]]
) -> None:
    response = await registration.post(
        "/intake/kobo",
        params={"partner_org": "NRC"},
        json=submission(),
        headers=partner_token("NRC") | {"X-Partner-Org": "NRC"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["partner_org"] == "NRC"


# ---- the intake topic --------------------------------------------------------------------


def intake_event(answers: dict[str, Any], **fields: Any) -> IntakeSubmitted:
    return IntakeSubmitted(
        **{
            "submission_id": f"drc-{uuid4().hex[:12]}",
            "source": IntakeSource.PARTNER,
            "partner_org": "DRC",
            "form_id": "drc_registration_2026",
            "submitted_at": datetime.now(UTC),
            "format": "aidmesh_household_v1",
            "answers": answers,
        }
        | fields
    )


async def submission_row(
    database: asyncpg.Connection, submission_id: str, status: str
) -> asyncpg.Record:
    return await Database(database).eventually(
        "SELECT * FROM intake_submissions WHERE submission_id = $1 AND status = $2",
        submission_id,
        status,
        what=f"submission {submission_id} {status}",
    )


async def test_a_partners_intake_event_registers_the_household_in_the_partners_flow(
    registration: AsyncClient,
    database: asyncpg.Connection,
    events: EventLog,
    producer: AIOKafkaProducer,
    body: Callable[..., dict[str, Any]],
) -> None:
    answers = body()
    del answers["channel"], answers["partner_org"]
    event = intake_event(answers)

    sent = await publish(producer, event, source="/partners/drc")

    row = await submission_row(database, event.submission_id, "registered")
    household_id = str(row["household_id"])
    [registered] = await published(events, household_id, HouseholdRegistered.event_type)
    assert registered.envelope is not None
    assert registered.envelope.causationid == sent.id
    assert registered.envelope.correlationid == sent.correlationid
    assert registered.event().channel is Channel.PARTNER  # type: ignore[attr-defined]
    assert registered.event().partner_org == "DRC"  # type: ignore[attr-defined]


async def test_a_kobo_submission_on_the_topic_is_mapped_like_the_endpoint(
    registration: AsyncClient,
    database: asyncpg.Connection,
    producer: AIOKafkaProducer,
    submission: Callable[..., dict[str, Any]],
) -> None:
    answers = submission()
    event = intake_event(
        answers,
        submission_id=answers["meta/instanceID"],
        source=IntakeSource.KOBO,
        format="kobo_json",
        partner_org="NRC",
    )

    await publish(producer, event)

    row = await submission_row(database, event.submission_id, "registered")
    household = (await registration.get(f"/households/{row['household_id']}")).json()
    assert (household["channel"], household["size"]) == ("kobo", 3)


async def test_the_same_submission_published_twice_registers_once(
    registration: AsyncClient,
    database: asyncpg.Connection,
    producer: AIOKafkaProducer,
    body: Callable[..., dict[str, Any]],
) -> None:
    event = intake_event(body())
    await publish(producer, event)
    await submission_row(database, event.submission_id, "registered")
    before = await counts(database)

    resent = await publish(producer, event)  # a new ce_id: the inbox alone would not catch it

    await Database(database).eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1", resent.id, what="the resent event handled"
    )
    assert await counts(database) == before


async def test_an_edit_on_the_topic_updates_the_household(
    registration: AsyncClient,
    database: asyncpg.Connection,
    events: EventLog,
    producer: AIOKafkaProducer,
    body: Callable[..., dict[str, Any]],
) -> None:
    answers = body()
    original = intake_event(answers)
    await publish(producer, original)
    household_id = str(
        (await submission_row(database, original.submission_id, "registered"))["household_id"]
    )

    edit = intake_event(
        answers | {"location": {"adm1_pcode": "UA80"}}, replaces=original.submission_id
    )
    await publish(producer, edit)

    row = await submission_row(database, edit.submission_id, "updated")
    assert str(row["household_id"]) == household_id
    [updated] = await published(events, household_id, HouseholdUpdated.event_type)
    assert updated.event().changed == {"location"}  # type: ignore[attr-defined]


async def test_an_unmappable_intake_event_is_kept_as_rejected_for_fixing(
    registration: AsyncClient,
    database: asyncpg.Connection,
    producer: AIOKafkaProducer,
    body: Callable[..., dict[str, Any]],
) -> None:
    answers = body(size=7)
    event = intake_event(answers)

    await publish(producer, event)

    row = await submission_row(database, event.submission_id, "rejected")
    assert row["household_id"] is None
    [reason] = json.loads(row["reasons"])
    assert reason == {
        "field": "members",
        "reason": "size is 7 but 2 members are listed",  # no "Value error, " (issue 19)
    }
    listed = (await registration.get("/intake/rejected", params={"partner_org": "DRC"})).json()
    assert event.submission_id in {s["submission_id"] for s in listed["items"]}


async def test_a_submission_larger_than_the_limit_is_refused_and_nothing_is_kept(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
) -> None:
    before = await counts(database)

    response = await send(registration, submission(**{"meta/padding": "x" * 2_000_000}))

    assert response.status_code == 413
    assert "1048576 bytes" in response.json()["detail"]
    assert await counts(database) == before


async def test_a_submission_sent_as_text_is_refused_as_unsupported(
    registration: AsyncClient, submission: Callable[..., dict[str, Any]]
) -> None:
    response = await registration.post(
        "/intake/kobo",
        content=json.dumps(submission()).encode(),
        headers=partner_token("NRC") | {"content-type": "text/plain"},
    )

    assert response.status_code == 415


async def test_a_submission_assessed_by_another_organisation_is_refused_and_not_kept(
    registration: AsyncClient,
    database: asyncpg.Connection,
    submission: Callable[..., dict[str, Any]],
) -> None:
    before = await counts(database)

    refused = await send(registration, submission(**{"meta/assessed_by": "DRC"}), partner="NRC")
    own = await send(registration, submission(**{"meta/assessed_by": "NRC"}), partner="NRC")

    assert refused.status_code == 403
    assert "meta/assessed_by is DRC but the token is for NRC" in refused.json()["detail"]
    assert own.status_code == 201, own.text
    after = await counts(database)
    assert after["intake_submissions"] == before["intake_submissions"] + 1
    assert after["households"] == before["households"] + 1


@pytest.mark.parametrize(
    ("fmt", "question"),
    [
        ("aidmesh_household_v1", "assessed_by"),
        ("aidmesh_household_v1", "partner_org"),
        ("kobo_json", "meta/assessed_by"),
    ],
)
async def test_an_intake_event_attributing_its_work_to_another_organisation_is_rejected(
    registration: AsyncClient,
    database: asyncpg.Connection,
    producer: AIOKafkaProducer,
    body: Callable[..., dict[str, Any]],
    submission: Callable[..., dict[str, Any]],
    fmt: str,
    question: str,
) -> None:
    if fmt == "kobo_json":
        answers = submission(**{question: "IOM"})
        event = intake_event(
            answers,
            submission_id=answers["meta/instanceID"],
            source=IntakeSource.KOBO,
            format=fmt,
            partner_org="NRC",
        )
    else:
        answers = body(partner_org="NRC") | {question: "IOM"}
        event = intake_event(answers, partner_org="NRC")

    await publish(producer, event)

    row = await submission_row(database, event.submission_id, "rejected")
    assert row["household_id"] is None
    assert json.loads(row["reasons"]) == [
        {
            "field": question,
            "reason": "names IOM but the submission is NRC's: a submission is attributed to"
            " the organisation that sends it",
        }
    ]
