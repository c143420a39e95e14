"""Other agencies' lists of assisted people, on the real broker and database (issue 24).

An agency hashes its beneficiaries' document numbers under the key it shares with
registration; registration matches them by lookup and publishes AssistanceOverlapFound,
ids only, once per list and household.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aidmesh_contracts import AssistanceOverlapFound
from aidmesh_registration.backfill import hash_documents_for_other_agencies
from aidmesh_registration.interagency import keyed_hash
from aidmesh_registration.overlaps import overlap_id_of
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_runtime.auth import (
    REGISTRATION_ASSISTANCE_LISTS,
    REGISTRATION_READ,
    REGISTRATION_READ_ALL,
    REGISTRATION_REVIEW,
)
from aidmesh_runtime.testing import Database, EventLog, auth_headers
from httpx import AsyncClient

pytestmark = pytest.mark.integration

Body = Callable[..., dict[str, Any]]
UNHCR = auth_headers(REGISTRATION_ASSISTANCE_LISTS, org="UNHCR", sub="partner:unhcr-cash")
REVIEWER = auth_headers(REGISTRATION_READ, REGISTRATION_READ_ALL, REGISTRATION_REVIEW, org="IOM")


@pytest.fixture
def shared_key(settings: RegistrationSettings) -> bytes:
    """The key the agencies share with this registry (conftest.INTERAGENCY_KEY)."""
    assert settings.interagency_key is not None
    return base64.b64decode(settings.interagency_key.get_secret_value())


def unrelated(count: int) -> list[str]:
    return [f"{i:064x}" for i in range(1, count + 1)]


async def register(registration: AsyncClient, body: dict[str, Any]) -> UUID:
    response = await registration.post("/households", json=body)
    assert response.status_code == 201, response.text
    return UUID(response.json()["household_id"])


def passport_of(body: dict[str, Any]) -> str:
    return str(body["members"][0]["documents"][0]["number"])


async def send(registration: AsyncClient, hashes: list[str], **more: Any) -> Any:
    body = {"sector": "cash", "first_month": "2027-01", "months": 3, "hashes": hashes} | more
    return await registration.post("/assistance-lists", json=body, headers=UNHCR)


async def overlaps_of(database: asyncpg.Connection, list_id: str) -> list[AssistanceOverlapFound]:
    found = [e for _, e in await Database(database).outbox(AssistanceOverlapFound)]
    return [e for e in found if str(e.list_id) == list_id]


async def test_an_agencys_hashed_list_naming_a_registered_document_publishes_an_overlap_with_ids_only(
    registration: AsyncClient,
    database: asyncpg.Connection,
    events: EventLog,
    body: Body,
    shared_key: bytes,
) -> None:
    household = body()
    household_id = await register(registration, household)
    # The agency typed the passport series in Latin letters, with a space: same hash.
    number = passport_of(household)
    typed = f"{number[:2].lower().replace('т', 't')} {number[2:]}"
    hashes = [keyed_hash(shared_key, typed), *unrelated(50)]

    response = await send(registration, hashes)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == {"list_id": answer["list_id"], "hashes": 51, "matched_households": 1}
    [overlap] = await overlaps_of(database, answer["list_id"])
    assert overlap.household_id == household_id and overlap.agency == "UNHCR"
    assert overlap.overlap_id == overlap_id_of(UUID(answer["list_id"]), household_id)
    [record] = await events.wait_for(
        lambda rs: len(rs) >= 1,
        select=lambda r: (
            r.envelope is not None
            and r.envelope.subject == str(household_id)
            and r.envelope.type == AssistanceOverlapFound.event_type
        ),
        what="the overlap on Kafka",
    )
    assert record.topic == "aidmesh.registration.household.v1"
    wire = (record.value or b"").decode() + str(record.headers)
    for secret in (number, number[2:], hashes[0]):
        assert secret not in wire
    # Nothing of the list is kept but its counts.
    stored = await database.fetchrow(
        "SELECT * FROM assistance_lists WHERE list_id = $1", UUID(answer["list_id"])
    )
    assert (stored["agency"], stored["hashes"], stored["matched_households"]) == ("UNHCR", 51, 1)


async def test_the_same_list_sent_again_announces_only_households_not_found_before(
    registration: AsyncClient, database: asyncpg.Connection, body: Body, shared_key: bytes
) -> None:
    first_body, later_body = body(), body()
    first = await register(registration, first_body)
    hashes = [keyed_hash(shared_key, passport_of(b)) for b in (first_body, later_body)]

    before = (await send(registration, hashes)).json()
    later = await register(registration, later_body)
    again = (await send(registration, list(reversed(hashes)))).json()

    assert before["list_id"] == again["list_id"]
    assert (before["matched_households"], again["matched_households"]) == (1, 2)
    announced = [o.household_id for o in await overlaps_of(database, again["list_id"])]
    assert announced == [first, later]


async def test_a_merged_household_overlaps_as_the_household_it_was_merged_into(
    registration: AsyncClient, database: asyncpg.Connection, body: Body, shared_key: bytes
) -> None:
    merged_body = body()
    survivor = await register(registration, body())
    merged = await register(registration, merged_body)
    response = await registration.post(
        f"/households/{merged}/merge", json={"into": str(survivor)}, headers=REVIEWER
    )
    assert response.status_code == 200, response.text

    answer = (await send(registration, [keyed_hash(shared_key, passport_of(merged_body))])).json()

    assert [o.household_id for o in await overlaps_of(database, answer["list_id"])] == [survivor]


async def test_documents_stored_before_the_shared_key_are_hashed_by_the_start_up_step(
    registration: AsyncClient,
    database: asyncpg.Connection,
    body: Body,
    shared_key: bytes,
    settings: RegistrationSettings,
) -> None:
    household = body()
    household_id = await register(registration, household)
    # As a row written while registration had no shared key.
    await database.execute(
        "UPDATE document_index SET interagency_index = NULL, interagency_key_id = NULL"
        " WHERE household_id = $1",
        household_id,
    )
    hashes = [keyed_hash(shared_key, passport_of(household))]
    assert (await send(registration, hashes, months=1)).json()["matched_households"] == 0

    assert await hash_documents_for_other_agencies(database, settings.vault()) >= 1

    assert (await send(registration, hashes, months=1)).json()["matched_households"] == 1


async def test_a_list_is_the_token_organisations_and_needs_its_scope(
    registration: AsyncClient,
) -> None:
    named = await send(registration, unrelated(1), agency="WFP")
    assert named.status_code == 403

    officer = await registration.post(
        "/assistance-lists",
        json={"sector": "cash", "first_month": "2027-01", "months": 1, "hashes": unrelated(1)},
    )
    assert officer.status_code == 403


async def test_a_list_with_a_malformed_hash_is_refused_without_echoing_it(
    registration: AsyncClient,
) -> None:
    response = await send(registration, [*unrelated(2), "ЕК123456"])

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "hashes", 2] and "ЕК123456" not in response.text
