"""Duplicates on the real database and broker: found on registration and update, queued for
review, then merged (HouseholdMerged) or dismissed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    ConsentPurpose,
    ConsentRecorded,
    DuplicateReason,
    DuplicateSuspected,
    HouseholdMerged,
    HouseholdUpdated,
)
from aidmesh_registration.backfill import rebuild_blocking_keys
from aidmesh_runtime.auth import REGISTRATION_WRITE
from aidmesh_runtime.testing import EventLog, Seen, auth_headers
from httpx import AsyncClient

pytestmark = pytest.mark.integration

Body = Callable[..., dict[str, Any]]
Headers = dict[str, str]


async def register(client: AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """Registered by the organisation the body names, with its own token."""
    headers = auth_headers(REGISTRATION_WRITE, org=body["partner_org"])
    response = await client.post("/households", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


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


def again(original: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The same family registered a second time, by another partner."""
    return {**original, "partner_org": "NRC"} | overrides


async def suspected_pair(
    client: AsyncClient, events: EventLog, first: dict[str, Any], second: dict[str, Any]
) -> tuple[str, str, str]:
    """Register both; return (earlier, later, suspicion id) once the suspicion is on Kafka."""
    earlier = (await register(client, first))["household_id"]
    later = await register(client, second)
    [suspicion_id] = later["suspected_duplicates"]
    [record] = await published(events, later["household_id"], DuplicateSuspected.event_type)
    assert str(record.event().suspicion_id) == suspicion_id  # type: ignore[attr-defined]
    return earlier, later["household_id"], suspicion_id


async def test_the_same_passport_registered_again_is_suspected_with_certainty(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    first = body()
    earlier = (await register(registration, first))["household_id"]

    later = await register(registration, again(first, phone="+380931112233"))

    [record] = await published(events, later["household_id"], DuplicateSuspected.event_type)
    suspected = record.event()
    assert isinstance(suspected, DuplicateSuspected)
    assert (str(suspected.household_id), str(suspected.candidate_household_id)) == (
        later["household_id"],
        earlier,
    )
    assert suspected.score == 1.0
    assert DuplicateReason.SAME_DOCUMENT in suspected.reasons
    assert record.envelope is not None
    assert record.envelope.causationid == UUID(later["events"][0]["id"])  # the registration
    queue = (
        await registration.get(
            "/duplicates", params={"household_id": later["household_id"]}, headers=reviewer
        )
    ).json()["items"]
    assert [(q["suspicion_id"], q["status"]) for q in queue] == [
        (str(suspected.suspicion_id), "open")
    ]
    assert "same_document" in queue[0]["reasons"]


async def test_the_same_phone_with_a_misspelt_name_is_suspected(
    registration: AsyncClient, events: EventLog, body: Body
) -> None:
    first = body()
    head = first["members"][0]
    family = head["family_name"]
    typo = family[:3] + family[4] + family[3] + family[5:]  # two letters swapped
    respelt = {**head, "family_name": typo, "documents": []}  # and no passport this time

    _, later, _ = await suspected_pair(
        registration, events, first, again(first, members=[respelt, first["members"][1]])
    )

    [record] = await published(events, later, DuplicateSuspected.event_type)
    assert DuplicateReason.SAME_PHONE_SIMILAR_NAME in record.event().reasons  # type: ignore[attr-defined]


async def test_a_household_updated_into_a_duplicate_is_suspected_too(
    registration: AsyncClient, events: EventLog, body: Body
) -> None:
    first, second = body(), body()
    earlier = (await register(registration, first))["household_id"]
    later = await register(registration, second)
    assert later["suspected_duplicates"] == []

    response = await registration.patch(
        f"/households/{later['household_id']}",
        json={"members": first["members"], "phone": first["phone"]},
    )

    assert response.status_code == 200, response.text
    [record] = await published(events, later["household_id"], DuplicateSuspected.event_type)
    assert str(record.event().candidate_household_id) == earlier  # type: ignore[attr-defined]
    [updated] = await published(events, later["household_id"], HouseholdUpdated.event_type)
    assert record.envelope is not None and updated.envelope is not None
    assert record.envelope.causationid == updated.envelope.id


async def test_merging_a_duplicate_publishes_household_merged_and_the_merged_id_says_where_it_went(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    first = body(consents=["registration", "data_sharing"])
    head = first["members"][0]
    certificate = {"kind": "idp_certificate", "number": f"6312-{uuid4().int % 10**10:010d}"}
    second = again(
        first,
        consents=["registration", "referral"],
        members=[{**head, "documents": [*head["documents"], certificate]}, first["members"][1]],
    )
    earlier, later, suspicion_id = await suspected_pair(registration, events, first, second)

    response = await registration.post(
        f"/duplicates/{suspicion_id}/merge", json={"decided_by": "IOM-REG"}, headers=reviewer
    )

    assert response.status_code == 200, response.text
    assert (response.json()["household_id"], response.json()["merged_household_id"]) == (
        earlier,
        later,
    )
    [record] = await published(events, earlier, HouseholdMerged.event_type)
    merged = record.event()
    assert isinstance(merged, HouseholdMerged)
    assert (str(merged.merged_household_id), str(merged.suspicion_id)) == (later, suspicion_id)
    assert merged.decided_by == "IOM-REG"
    # The referral consent given only in the duplicate now holds for the household that stays.
    [carried] = await published(events, earlier, ConsentRecorded.event_type)
    assert carried.event().purpose is ConsentPurpose.REFERRAL  # type: ignore[attr-defined]
    assert carried.envelope is not None and record.envelope is not None
    assert carried.envelope.causationid == record.envelope.id

    gone = (await registration.get(f"/households/{later}")).json()
    assert (gone["status"], gone["merged_into"]) == ("merged", earlier)
    stays = (await registration.get(f"/households/{earlier}")).json()
    assert stays["consents"] == ["data_sharing", "referral", "registration"]
    assert certificate in stays["members"][0]["documents"]
    suspicion = (await registration.get(f"/duplicates/{suspicion_id}", headers=reviewer)).json()
    assert (suspicion["status"], suspicion["survivor_household_id"]) == ("merged", earlier)
    found = await registration.get("/households", params={"name": head["family_name"]})
    assert [h["household_id"] for h in found.json()["items"]] == [earlier]


async def test_a_merged_household_can_no_longer_be_changed(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    first = body()
    earlier, later, suspicion_id = await suspected_pair(registration, events, first, again(first))
    merged = await registration.post(
        f"/duplicates/{suspicion_id}/merge", json={"decided_by": "IOM-REG"}, headers=reviewer
    )
    assert merged.status_code == 200, merged.text

    update = await registration.patch(f"/households/{later}", json={"address": "Полтава"})
    consent = await registration.post(f"/households/{later}/consents", json={"purpose": "referral"})

    assert (update.status_code, consent.status_code) == (409, 409)
    assert f"merged into {earlier}" in update.json()["detail"]


async def test_resolving_a_resolved_suspicion_is_a_conflict(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    first = body()
    _, _, suspicion_id = await suspected_pair(registration, events, first, again(first))
    merged = await registration.post(
        f"/duplicates/{suspicion_id}/merge", json={"decided_by": "IOM-REG"}, headers=reviewer
    )
    assert merged.status_code == 200, merged.text

    again_merged = await registration.post(
        f"/duplicates/{suspicion_id}/merge", json={"decided_by": "IOM-REG"}, headers=reviewer
    )
    dismissed = await registration.post(
        f"/duplicates/{suspicion_id}/dismiss", json={"decided_by": "IOM-REG"}, headers=reviewer
    )

    assert (again_merged.status_code, dismissed.status_code) == (409, 409)
    assert "already merged" in dismissed.json()["detail"]


async def test_a_dismissed_pair_leaves_the_queue_and_is_not_raised_again(
    registration: AsyncClient,
    database: asyncpg.Connection,
    events: EventLog,
    body: Body,
    reviewer: Headers,
) -> None:
    first = body()
    earlier, later, suspicion_id = await suspected_pair(registration, events, first, again(first))

    response = await registration.post(
        f"/duplicates/{suspicion_id}/dismiss", json={"decided_by": "IOM-REG"}, headers=reviewer
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "dismissed"
    open_for_later = await registration.get(
        "/duplicates", params={"household_id": later, "status": "open"}, headers=reviewer
    )
    assert open_for_later.json()["items"] == []
    # A later change that re-runs the comparison finds the pair known: no new suspicion.
    update = await registration.patch(f"/households/{later}", json={"phone": "+380931234567"})
    assert [e["type"] for e in update.json()["events"]] == [HouseholdUpdated.event_type]
    assert (
        await database.fetchval(
            "SELECT count(*) FROM duplicate_suspicions WHERE household_id = $1",
            UUID(later),
        )
        == 1
    )
    assert earlier != later


async def test_the_household_that_stays_can_be_chosen(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    first = body()
    earlier, later, suspicion_id = await suspected_pair(registration, events, first, again(first))

    response = await registration.post(
        f"/duplicates/{suspicion_id}/merge",
        json={"decided_by": "IOM-REG", "survivor_household_id": later},
        headers=reviewer,
    )

    assert response.status_code == 200, response.text
    assert (response.json()["household_id"], response.json()["merged_household_id"]) == (
        later,
        earlier,
    )
    await published(events, later, HouseholdMerged.event_type)


async def test_the_household_that_stays_must_be_one_of_the_pair(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    first = body()
    _, _, suspicion_id = await suspected_pair(registration, events, first, again(first))

    response = await registration.post(
        f"/duplicates/{suspicion_id}/merge",
        json={"decided_by": "IOM-REG", "survivor_household_id": str(uuid4())},
        headers=reviewer,
    )

    assert response.status_code == 409
    status = (await registration.get(f"/duplicates/{suspicion_id}", headers=reviewer)).json()[
        "status"
    ]
    assert status == "open"


async def test_a_household_cannot_be_merged_into_itself(
    registration: AsyncClient, body: Body, reviewer: Headers
) -> None:
    household_id = (await register(registration, body()))["household_id"]

    response = await registration.post(
        f"/households/{household_id}/merge",
        json={"into": household_id, "decided_by": "IOM-REG"},
        headers=reviewer,
    )

    assert response.status_code == 409
    assert "itself" in response.json()["detail"]


async def test_nothing_can_be_merged_into_a_merged_household(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    a = (await register(registration, body()))["household_id"]
    b = (await register(registration, body()))["household_id"]
    c = (await register(registration, body()))["household_id"]
    first = await registration.post(
        f"/households/{b}/merge", json={"into": a, "decided_by": "IOM-REG"}, headers=reviewer
    )
    assert first.status_code == 200, first.text

    response = await registration.post(
        f"/households/{c}/merge", json={"into": b, "decided_by": "IOM-REG"}, headers=reviewer
    )

    assert response.status_code == 409
    assert f"{b} was already merged into {a}" in response.json()["detail"]
    await published(events, a, HouseholdMerged.event_type)


async def test_merging_an_unknown_household_is_not_found(
    registration: AsyncClient, body: Body, reviewer: Headers
) -> None:
    household_id = (await register(registration, body()))["household_id"]

    response = await registration.post(
        f"/households/{uuid4()}/merge",
        json={"into": household_id, "decided_by": "IOM-REG"},
        headers=reviewer,
    )
    suspicion = await registration.post(
        f"/duplicates/{uuid4()}/dismiss", json={"decided_by": "IOM-REG"}, headers=reviewer
    )

    assert (response.status_code, suspicion.status_code) == (404, 404)


async def test_the_review_queue_pages_through_open_suspicions_oldest_first(
    registration: AsyncClient, events: EventLog, body: Body, reviewer: Headers
) -> None:
    mine = []
    for _ in range(2):
        first = body()
        mine.append((await suspected_pair(registration, events, first, again(first)))[2])

    listed, cursor = [], None
    while True:
        params = {"status": "open", "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await registration.get("/duplicates", params=params, headers=reviewer)).json()
        listed += page["items"]
        if not (cursor := page["next_cursor"]):
            break

    assert {s["status"] for s in listed} == {"open"}
    ids = [s["suspicion_id"] for s in listed]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i in mine] == mine
    detected = [s["detected_at"] for s in listed]
    assert detected == sorted(detected)


async def test_an_unknown_queue_status_is_refused(
    registration: AsyncClient, reviewer: Headers
) -> None:
    response = await registration.get("/duplicates", params={"status": "pending"}, headers=reviewer)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "status"]


async def test_a_family_that_moved_oblast_is_suspected_when_registered_again(
    registration: AsyncClient, body: Body
) -> None:
    first = body(phone=None)
    for m in first["members"]:
        m.pop("documents", None)
    moved = again(first, location={"adm1_pcode": "UA80"}, phone=None)

    earlier = (await register(registration, first))["household_id"]
    later = await register(registration, moved)

    assert len(later["suspected_duplicates"]) == 1
    suspicion = await registration.get(
        f"/duplicates/{later['suspected_duplicates'][0]}",
        headers=auth_headers("registration:read", "registration:review", org="IOM-REG"),
    )
    assert earlier in {suspicion.json()["household_id"], suspicion.json()["candidate_household_id"]}


async def test_rebuilding_blocking_keys_restores_what_a_household_is_found_by(
    registration: AsyncClient, body: Body, settings: Any
) -> None:
    household_id = UUID((await register(registration, body()))["household_id"])
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        before = await conn.fetchval(
            "SELECT count(*) FROM blocking_keys WHERE household_id = $1", household_id
        )
        await conn.execute("DELETE FROM blocking_keys WHERE household_id = $1", household_id)

        done = await rebuild_blocking_keys(conn, settings.vault(), batch=50)

        after = await conn.fetchval(
            "SELECT count(*) FROM blocking_keys WHERE household_id = $1", household_id
        )
    finally:
        await conn.close()
    assert before > 0 and after == before
    assert done >= 1
