"""Personal data at rest, on the real PostgreSQL and Kafka (ADR 0010).

The registry's tables hold personal data only sealed with each household's data key, and
search and dedup still find what they found before; an erasure destroys the key, so that
what was stored (and any copy of it) can never be read again, and tells the other
services with HouseholdErased, which carries nothing personal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_registration import repository
from aidmesh_registration.backfill import BACKFILL_LOCK, seal_plaintext_rows
from aidmesh_registration.crypto import DecryptionFailed, HouseholdKey, KeyDestroyed
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_registration.translit import name_key, to_latin
from aidmesh_runtime.auth import (
    REGISTRATION_ERASE,
    REGISTRATION_INTAKE,
    REGISTRATION_READ,
    REGISTRATION_READ_ALL,
    REGISTRATION_REVIEW,
)
from aidmesh_runtime.testing import Database, EventLog, auth_headers, database_dsn
from httpx import AsyncClient

pytestmark = pytest.mark.integration

ERASED_TYPE = "org.aidmesh.registration.household.erased.v1"
Body = Callable[..., dict[str, Any]]

#: The data protection officer of IOM: erases, and reads to check.
DPO = auth_headers(
    REGISTRATION_ERASE, REGISTRATION_READ, REGISTRATION_READ_ALL, org="IOM-DPO", sub="user:dpo"
)
REVIEWER = auth_headers(
    REGISTRATION_READ, REGISTRATION_READ_ALL, REGISTRATION_REVIEW, org="IOM-REG"
)
ERASURE = {"reason_code": "data_subject_request", "requested_by": "IOM-DPO"}


def personal_values(body: dict[str, Any]) -> list[str]:
    """What must never be found in clear outside the sealed columns: names (Cyrillic, Latin
    and as matching keys), birth dates, phone, documents and address."""
    values = [body["phone"], body["phone"][4:], body["address"]]
    for m in body["members"]:
        for name in (m["family_name"], m["given_name"], m.get("patronymic")):
            if name:
                values += [name, to_latin(name), name_key(name)]
        values.append(m["date_of_birth"])
        values += [d["number"] for d in m.get("documents", [])]
    return values


async def register(registration: AsyncClient, body: dict[str, Any]) -> str:
    response = await registration.post("/households", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["household_id"])


async def raw_rows(database: asyncpg.Connection, household_id: str) -> str:
    """Every row the registry holds about a household, as an administrator (or a stolen
    backup) would see them."""
    hid = UUID(household_id)
    rows = []
    for table in ("households", "members", "document_index", "blocking_keys", "household_keys"):
        rows += await database.fetch(f"SELECT * FROM {table} WHERE household_id = $1", hid)
    rows += await database.fetch("SELECT * FROM intake_submissions WHERE household_id = $1", hid)
    return json.dumps(
        [{k: v.hex() if isinstance(v, bytes) else v for k, v in dict(r).items()} for r in rows],
        default=str,
        ensure_ascii=False,
    )


async def search_ids(registration: AsyncClient, **params: str) -> set[str]:
    response = await registration.get("/households", params=params | {"status": "any"})
    assert response.status_code == 200, response.text
    return {h["household_id"] for h in response.json()["items"]}


# ---- encrypted at rest ---------------------------------------------------------------------


async def test_the_registry_holds_personal_data_only_sealed(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    household = body()
    household_id = await register(registration, household)

    stored = await raw_rows(database, household_id)

    for value in personal_values(household):
        assert value not in stored, f"{value!r} is stored in clear"
    row = await database.fetchrow(
        "SELECT address, phone, sealed, phone_index FROM households WHERE household_id = $1",
        UUID(household_id),
    )
    assert (row["address"], row["phone"]) == (None, None)
    assert row["sealed"] and row["phone_index"]
    # The service reads it back whole.
    read = (await registration.get(f"/households/{household_id}")).json()
    assert (read["phone"], read["address"]) == (household["phone"], household["address"])
    assert read["members"][0]["family_name"] == household["members"][0]["family_name"]


async def test_a_sealed_row_opens_only_with_its_households_key(
    registration: AsyncClient,
    database: asyncpg.Connection,
    settings: RegistrationSettings,
    body: Body,
) -> None:
    first, second = await register(registration, body()), await register(registration, body())
    keys = {
        hid: await repository.household_key(database, settings.vault(), UUID(hid))
        for hid in (first, second)
    }
    sealed = await database.fetchval(
        "SELECT sealed FROM households WHERE household_id = $1", UUID(first)
    )

    assert keys[first].open("household", sealed)["phone"]
    with pytest.raises(DecryptionFailed):
        keys[second].open("household", sealed)  # another household's key
    with pytest.raises(DecryptionFailed):
        HouseholdKey(UUID(second), keys[first].dek).open("household", sealed)  # moved row


async def test_search_finds_a_household_by_blind_index_of_each_personal_value(
    registration: AsyncClient, body: Body
) -> None:
    household = body()
    household_id = await register(registration, household)
    head = household["members"][0]

    for params in (
        {"name": head["family_name"]},
        {"name": to_latin(head["family_name"])},
        {"name": f"{head['given_name']} {head['family_name']}"},
        {"phone": household["phone"].replace("+380", "0")},
        {"document": head["documents"][0]["number"]},
    ):
        assert household_id in await search_ids(registration, **params), params


async def test_a_kobo_submissions_answers_are_sealed_with_its_households_key(
    registration: AsyncClient,
    database: asyncpg.Connection,
    kobo: Callable[..., dict[str, Any]],
    names: Callable[[], str],
) -> None:
    family = names()
    submission = kobo(**{"head/family_name": family})
    response = await registration.post(
        "/intake/kobo", json=submission, headers=auth_headers(REGISTRATION_INTAKE, org="NRC")
    )
    assert response.status_code == 201, response.text

    row = await database.fetchrow(
        "SELECT answers, answers_sealed, household_id FROM intake_submissions"
        " WHERE submission_id = $1",
        submission["meta/instanceID"],
    )
    assert row["answers"] is None
    assert family.encode() not in row["answers_sealed"]
    read = await registration.get(f"/intake/submissions/NRC/{submission['meta/instanceID']}")
    assert read.json()["answers"]["head/family_name"] == family


# ---- erasure -----------------------------------------------------------------------------


async def test_after_erasure_the_households_personal_data_can_never_be_decrypted(
    registration: AsyncClient,
    database: asyncpg.Connection,
    settings: RegistrationSettings,
    body: Body,
) -> None:
    household_id = await register(registration, body())
    hid = UUID(household_id)
    # What a backup taken now would hold of the household's personal data.
    backup = await database.fetchrow("SELECT sealed FROM households WHERE household_id = $1", hid)
    members_backup = await database.fetch(
        "SELECT member_id, sealed FROM members WHERE household_id = $1", hid
    )

    response = await registration.post(
        f"/households/{household_id}/erasure", json=ERASURE, headers=DPO
    )

    assert response.status_code == 200, response.text
    key_row = await database.fetchrow(
        "SELECT wrapped_key, destroyed_at FROM household_keys WHERE household_id = $1", hid
    )
    assert key_row["wrapped_key"] is None and key_row["destroyed_at"] is not None
    # The service's own path to the data says erased...
    with pytest.raises(KeyDestroyed):
        await repository.household_key(database, settings.vault(), hid)
    (shell,) = await repository.load_households(database, [hid], vault=settings.vault())
    assert (shell.status.value, shell.members, shell.phone) == ("erased", (), None)
    # ...and with the KEK in hand, nothing opens the ciphertext: there is no key to unwrap,
    # and neither the KEK nor anything else derived from it is a household's key.
    with pytest.raises(KeyDestroyed):
        settings.vault().open_household_key(hid, key_row["wrapped_key"])
    with pytest.raises(DecryptionFailed):
        HouseholdKey(hid, settings.vault().kek).open("household", backup["sealed"])
    for member in members_backup:
        with pytest.raises(DecryptionFailed):
            HouseholdKey(hid, settings.vault().kek).open(
                "member", member["sealed"], row=member["member_id"]
            )


async def test_an_erased_household_answers_gone_and_cannot_be_found_or_changed(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    household = body()
    household_id = await register(registration, household)
    head = household["members"][0]
    await registration.post(f"/households/{household_id}/erasure", json=ERASURE, headers=DPO)

    read = await registration.get(f"/households/{household_id}")
    assert read.status_code == 410
    assert "erased" in read.json()["detail"] and "data_subject_request" in read.json()["detail"]
    assert household_id not in await search_ids(registration, name=head["family_name"])
    assert household_id not in await search_ids(registration, phone=household["phone"])
    assert household_id not in await search_ids(
        registration, document=head["documents"][0]["number"]
    )
    assert household_id not in await search_ids(registration, pcode="UA63")
    changes = [
        await registration.patch(f"/households/{household_id}", json={"address": "вул. Нова, 1"}),
        await registration.post(
            f"/households/{household_id}/consents",
            json={"purpose": "referral", "recorded_by": "DRC"},
        ),
        await registration.post(
            f"/households/{household_id}/consents/registration/withdraw",
            json={"recorded_by": "DRC"},
        ),
        await registration.post(f"/households/{household_id}/erasure", json=ERASURE, headers=DPO),
    ]
    assert [c.status_code for c in changes] == [410, 410, 410, 410]
    stored = await raw_rows(database, household_id)
    for value in personal_values(household):
        assert value not in stored
    assert (
        await database.fetchval(
            "SELECT count(*) FROM document_index WHERE household_id = $1", UUID(household_id)
        )
        == 0
    )
    assert (
        await database.fetchval(
            "SELECT count(*) FROM blocking_keys WHERE household_id = $1", UUID(household_id)
        )
        == 0
    )
    # What is not personal stays, so the history still adds up.
    row = await database.fetchrow(
        "SELECT status, adm1_pcode, size, consents FROM households WHERE household_id = $1",
        UUID(household_id),
    )
    assert (row["status"], row["adm1_pcode"], row["size"], row["consents"]) == (
        "erased",
        "UA63",
        2,
        [],
    )


async def test_erasure_publishes_household_erased_with_ids_and_codes_only(
    registration: AsyncClient, events: EventLog, body: Body
) -> None:
    household = body()
    household_id = await register(registration, household)

    # requested_by left out: the token's organisation (IOM-DPO) requests it
    response = await registration.post(
        f"/households/{household_id}/erasure",
        json={"reason_code": "data_subject_request"},
        headers=DPO,
    )

    event_id = UUID(response.json()["event"]["id"])
    (record,) = await events.wait_for(
        lambda found: len(found) == 1,
        select=lambda r: r.envelope is not None and r.envelope.id == event_id,
        what="HouseholdErased",
    )
    assert record.topic == "aidmesh.registration.household.v1"
    assert record.envelope.type == ERASED_TYPE
    assert record.key == household_id.encode()
    payload = json.loads(record.value)
    erased_at = payload.pop("erased_at")
    assert payload == {
        "household_id": household_id,
        "merged_household_ids": [],
        "reason_code": "data_subject_request",
        "requested_by": "IOM-DPO",
    }
    assert datetime.fromisoformat(erased_at) == datetime.fromisoformat(response.json()["erased_at"])
    wire = record.value.decode() + json.dumps(record.headers, ensure_ascii=False)
    for value in personal_values(household):
        assert value not in wire


async def test_erasure_needs_its_own_scope_and_is_attributed_to_the_callers_organisation(
    registration: AsyncClient, body: Body
) -> None:
    household_id = await register(registration, body())

    officer = await registration.post(f"/households/{household_id}/erasure", json=ERASURE)
    other_org = await registration.post(
        f"/households/{household_id}/erasure",
        json=ERASURE | {"requested_by": "NRC"},
        headers=DPO,
    )

    assert officer.status_code == 403 and "registration:erase" in officer.json()["detail"]
    assert other_org.status_code == 403
    assert (await registration.get(f"/households/{household_id}")).status_code == 200


async def test_erasing_a_household_erases_the_duplicates_merged_into_it_and_closes_suspicions(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    household = body()
    survivor = await register(registration, household)
    again = await registration.post("/households", json=household)  # the same passport
    duplicate, [suspicion] = again.json()["household_id"], again.json()["suspected_duplicates"]
    merged = await registration.post(
        f"/duplicates/{suspicion}/merge", json={"decided_by": "IOM-REG"}, headers=REVIEWER
    )
    assert merged.status_code == 200, merged.text
    lookalike = household | {
        "phone": household["phone"][:-1] + str((int(household["phone"][-1]) + 1) % 10),
        "members": [{k: v for k, v in m.items() if k != "documents"} for m in household["members"]],
    }
    third = await registration.post("/households", json=lookalike)
    [open_suspicion] = third.json()["suspected_duplicates"]

    response = await registration.post(f"/households/{survivor}/erasure", json=ERASURE, headers=DPO)

    assert response.json()["merged_household_ids"] == [duplicate]
    statuses = await database.fetch(
        "SELECT h.household_id, h.status, k.wrapped_key IS NULL AS destroyed FROM households h"
        " JOIN household_keys k USING (household_id) WHERE h.household_id = ANY($1::uuid[])",
        [UUID(survivor), UUID(duplicate)],
    )
    assert {(r["status"], r["destroyed"]) for r in statuses} == {("erased", True)}
    assert (await registration.get(f"/households/{duplicate}")).status_code == 410
    closed = await registration.get(f"/duplicates/{open_suspicion}", headers=REVIEWER)
    assert closed.json()["status"] == "erased"
    assert (
        await registration.get(f"/households/{third.json()['household_id']}")
    ).status_code == 200


async def test_a_kobo_edit_of_an_erased_household_is_rejected_and_its_answers_not_kept(
    registration: AsyncClient,
    database: asyncpg.Connection,
    kobo: Callable[..., dict[str, Any]],
    names: Callable[[], str],
) -> None:
    nrc = auth_headers(REGISTRATION_INTAKE, org="NRC")
    original = kobo(**{"head/family_name": names()})
    created = await registration.post("/intake/kobo", json=original, headers=nrc)
    household_id = created.json()["household_id"]
    await registration.post(f"/households/{household_id}/erasure", json=ERASURE, headers=DPO)
    edit = original | {
        "meta/instanceID": original["meta/instanceID"] + "-edit",
        "meta/deprecatedID": original["meta/instanceID"],
    }

    response = await registration.post("/intake/kobo", json=edit, headers=nrc)

    assert response.status_code == 422, response.text
    assert response.json()["household_id"] is None
    assert "erased" in response.json()["reasons"][0]["reason"]
    rows = await database.fetch(
        "SELECT submission_id, answers, answers_sealed FROM intake_submissions"
        " WHERE submission_id = ANY($1::text[])",
        [original["meta/instanceID"], edit["meta/instanceID"]],
    )
    by_id = {r["submission_id"]: r for r in rows}
    assert by_id[edit["meta/instanceID"]]["answers_sealed"] is None  # not kept
    assert by_id[original["meta/instanceID"]]["answers"] is None
    read = await registration.get(f"/intake/submissions/NRC/{original['meta/instanceID']}")
    assert read.status_code == 200 and read.json()["answers"] is None  # shredded with it


async def test_an_erased_households_consent_records_answer_gone(
    registration: AsyncClient, body: Body
) -> None:
    household_id = await register(registration, body())
    assert (await registration.get(f"/households/{household_id}/consents")).status_code == 200
    await registration.post(f"/households/{household_id}/erasure", json=ERASURE, headers=DPO)

    response = await registration.get(f"/households/{household_id}/consents")

    assert response.status_code == 410
    assert (
        "erased" in response.json()["detail"]
        and "data_subject_request" in response.json()["detail"]
    )


async def test_a_rejected_kobo_edit_is_erased_with_the_household_it_edits(
    registration: AsyncClient,
    database: asyncpg.Connection,
    kobo: Callable[..., dict[str, Any]],
    names: Callable[[], str],
) -> None:
    nrc = auth_headers(REGISTRATION_INTAKE, org="NRC")
    original = kobo(**{"head/family_name": names()})
    created = await registration.post("/intake/kobo", json=original, headers=nrc)
    household_id = created.json()["household_id"]
    unmappable_edit = original | {
        "meta/instanceID": original["meta/instanceID"] + "-edit",
        "meta/deprecatedID": original["meta/instanceID"],
        "head/dob": "2091-02-30",
    }
    rejected = await registration.post("/intake/kobo", json=unmappable_edit, headers=nrc)
    assert rejected.status_code == 422, rejected.text
    path = f"/intake/submissions/NRC/{unmappable_edit['meta/instanceID']}"
    kept = (await registration.get(path)).json()
    assert kept["answers"]["head/family_name"] == original["head/family_name"]
    assert kept["household_id"] == household_id  # the household it concerns

    await registration.post(f"/households/{household_id}/erasure", json=ERASURE, headers=DPO)

    read = await registration.get(path)
    assert read.status_code == 200 and read.json()["answers"] is None
    stored = await raw_rows(database, household_id)
    assert original["head/family_name"] not in stored


async def test_erasure_deletes_the_answers_of_an_edit_linked_to_no_household(
    registration: AsyncClient,
    database: asyncpg.Connection,
    settings: RegistrationSettings,
    kobo: Callable[..., dict[str, Any]],
    names: Callable[[], str],
) -> None:
    # A rejected edit as stored before rejected edits were linked to their household:
    # sealed with the key for unlinked values, which erasure does not destroy.
    nrc = auth_headers(REGISTRATION_INTAKE, org="NRC")
    original = kobo(**{"head/family_name": names()})
    created = await registration.post("/intake/kobo", json=original, headers=nrc)
    household_id = created.json()["household_id"]
    edit_id, edit_of_edit_id = (
        f"{original['meta/instanceID']}-e1",
        f"{original['meta/instanceID']}-e2",
    )
    for submission_id, replaces in (
        (edit_id, original["meta/instanceID"]),
        (edit_of_edit_id, edit_id),
    ):
        await database.execute(
            """INSERT INTO intake_submissions (partner_org, submission_id, source, format,
                   replaces, received_at, answers_sealed, status, processed_at)
               VALUES ('NRC', $1, 'kobo', 'kobo_json', $2, now(), $3, 'rejected', now())""",
            submission_id,
            replaces,
            settings.vault().seal_unlinked(
                repository.answers_field("NRC", submission_id), original
            ),
        )
    read = await registration.get(f"/intake/submissions/NRC/{edit_of_edit_id}")
    assert read.json()["answers"]["head/family_name"] == original["head/family_name"]

    await registration.post(f"/households/{household_id}/erasure", json=ERASURE, headers=DPO)

    rows = await database.fetch(
        "SELECT submission_id, answers, answers_sealed FROM intake_submissions"
        " WHERE submission_id = ANY($1::text[])",
        [edit_id, edit_of_edit_id],
    )
    assert [(r["answers"], r["answers_sealed"]) for r in rows] == [(None, None)] * 2
    read = await registration.get(f"/intake/submissions/NRC/{edit_of_edit_id}")
    assert read.status_code == 200 and read.json()["answers"] is None


# ---- rows written before encryption ---------------------------------------------------------


async def test_a_household_written_in_clear_before_0004_is_sealed_by_the_start_up_step(
    registration: AsyncClient,
    database: asyncpg.Connection,
    settings: RegistrationSettings,
    names: Callable[[], str],
) -> None:
    # As a database of an earlier version holds it (written here as that version did).
    family = names()
    hid, mid = uuid4(), uuid4()
    await database.execute(
        """INSERT INTO households (household_id, registered_at, channel, adm1_pcode,
               displacement_status, size, address, phone, consents, correlation_id)
           VALUES ($1, now(), 'field_office', 'UA63', 'idp', 1, 'вул. Стара, 3',
                   '+380679990011', '{registration}', $1)""",
        hid,
    )
    await database.execute(
        """INSERT INTO members (member_id, household_id, full_name, family_name, given_name,
               sex, date_of_birth, relation, document_number, name_keys)
           VALUES ($1, $2, $3, $4, 'Ольга', 'female', '1970-01-02', 'head', 'КМ112233', $5)""",
        mid,
        hid,
        f"Ольга {family}",
        family,
        [name_key(family), name_key("Ольга")],
    )
    await database.execute(
        "INSERT INTO documents (member_id, household_id, kind, number)"
        " VALUES ($1, $2, 'passport', 'КМ112233')",
        mid,
        hid,
    )

    await seal_plaintext_rows(database, settings.vault())

    assert await database.fetchval(
        "SELECT sealed IS NOT NULL FROM households WHERE household_id = $1", hid
    )
    stored = await raw_rows(database, str(hid))
    for value in (
        family,
        "Ольга",
        "+380679990011",
        "Стара",
        "КМ112233",
        "1970-01-02",
        name_key(family),
    ):
        assert value not in stored, value
    assert (
        await database.fetchval("SELECT count(*) FROM documents WHERE household_id = $1", hid) == 0
    )
    read = (await registration.get(f"/households/{hid}")).json()
    assert (read["phone"], read["members"][0]["family_name"]) == ("+380679990011", family)
    assert str(hid) in await search_ids(registration, name=family)
    assert str(hid) in await search_ids(registration, document="КМ112233")
    assert str(hid) in await search_ids(registration, phone="+380679990011")


async def test_a_replica_starting_while_another_seals_waits_until_it_is_done(
    database: asyncpg.Connection, settings: RegistrationSettings
) -> None:
    # Another replica is sealing: it holds the backfill's lock, on its own connection.
    sealing = await asyncpg.connect(database_dsn(settings.database))
    starting = await asyncpg.connect(database_dsn(settings.database))
    try:
        await sealing.execute("SELECT pg_advisory_lock($1, 0)", BACKFILL_LOCK)
        started = asyncio.create_task(seal_plaintext_rows(starting, settings.vault()))
        try:
            await Database(database).eventually(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1"
                " AND objid = 0 AND objsubid = 2 AND NOT granted",
                BACKFILL_LOCK,
                what="the starting replica to wait for the backfill's lock",
            )
            assert not started.done()  # it waits: it does not serve rows still in clear
            await sealing.execute("SELECT pg_advisory_unlock($1, 0)", BACKFILL_LOCK)
            await asyncio.wait_for(started, timeout=60)
        finally:
            started.cancel()
    finally:
        await sealing.close()
        await starting.close()
