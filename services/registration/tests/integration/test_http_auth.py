"""Registration's API on the real broker and database answers only bearer tokens its issuer
signed, still valid, with the scope each call needs; what a call records is attributed to
its token's organisation (ADR 0009)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aidmesh_runtime.auth import REGISTRATION_INTAKE, REGISTRATION_READ, REGISTRATION_WRITE
from aidmesh_runtime.testing import auth_headers, bearer, send_without_token, session_token
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx import AsyncClient

pytestmark = pytest.mark.integration

Body = Callable[..., dict[str, Any]]


async def registered(client: AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/households", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["household_id"])


async def test_a_call_without_a_token_is_refused_with_401(registration: AsyncClient) -> None:
    response = await send_without_token(registration, "GET", "/households")

    assert (response.status_code, response.json()) == (401, {"detail": "missing bearer token"})
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_expired_or_forged_token_is_refused_with_401(registration: AsyncClient) -> None:
    expired = session_token(REGISTRATION_READ, now=datetime.now(UTC) - timedelta(hours=2))
    forged = session_token(REGISTRATION_READ, key=Ed25519PrivateKey.generate())

    for token, reason in ((expired, "token expired"), (forged, "bad signature")):
        response = await registration.get("/households", headers=bearer(token))
        assert (response.status_code, response.json()) == (401, {"detail": reason})


async def test_a_partner_that_may_only_send_intake_cannot_read_a_household(
    registration: AsyncClient, body: Body
) -> None:
    household_id = await registered(registration, body())
    kobo_partner = auth_headers(REGISTRATION_INTAKE, org="NRC", sub="partner:nrc")

    read = await registration.get(f"/households/{household_id}", headers=kobo_partner)
    search = await registration.get("/households", headers=kobo_partner)
    # (Its own submissions it may read: test_need_to_know.py.)

    for response in (read, search):
        assert (response.status_code, response.json()) == (
            403,
            {"detail": "this call needs scope registration:read"},
        )
    assert household_id not in read.text


async def test_a_registration_officer_cannot_resolve_duplicates(
    registration: AsyncClient, body: Body
) -> None:
    household_id = await registered(registration, body())

    response = await registration.post(
        f"/households/{household_id}/merge", json={"into": household_id}
    )

    assert (response.status_code, response.json()) == (
        403,
        {"detail": "this call needs scope registration:review"},
    )


async def test_a_partners_registration_is_attributed_to_the_partner_its_token_names(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    pin = auth_headers(REGISTRATION_READ, REGISTRATION_WRITE, org="PIN", sub="partner:pin")
    submitted = body(channel="partner")
    del submitted["partner_org"]

    response = await registration.post("/households", json=submitted, headers=pin)

    assert response.status_code == 201, response.text
    household_id = response.json()["household_id"]
    stored = await database.fetchval(
        "SELECT partner_org FROM households WHERE household_id = $1::uuid", household_id
    )
    assert stored == "PIN"


async def test_a_registration_in_another_organisations_name_is_refused_and_nothing_stored(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    before = await database.fetchval("SELECT count(*) FROM households")
    pin = auth_headers(REGISTRATION_WRITE, org="PIN", sub="partner:pin")

    response = await registration.post(
        "/households", json=body(channel="partner", partner_org="NRC"), headers=pin
    )

    assert (response.status_code, response.json()) == (
        403,
        {
            "detail": "partner_org is NRC but the token is for PIN: a call is attributed to"
            " its token's organisation"
        },
    )
    assert await database.fetchval("SELECT count(*) FROM households") == before


async def test_a_field_office_registration_s_consents_and_needs_are_recorded_by_the_token_s_org(
    registration: AsyncClient, body: Body
) -> None:
    office = auth_headers(REGISTRATION_READ, REGISTRATION_WRITE, org="IOM-KH", sub="user:kh-17")
    submitted = body()
    del submitted["partner_org"]  # IOM's own field office: no partner

    response = await registration.post("/households", json=submitted, headers=office)

    assert response.status_code == 201, response.text
    household = f"/households/{response.json()['household_id']}"
    consents = (await registration.get(household + "/consents", headers=office)).json()
    assert sorted((c["purpose"], c["recorded_by"]) for c in consents) == [
        ("data_sharing", "IOM-KH"),
        ("registration", "IOM-KH"),
    ]
    needs = (await registration.get(household, headers=office)).json()["needs"]
    assert [(n["sector"], n["assessed_by"]) for n in needs] == [("shelter", "IOM-KH")]


async def test_needs_assessed_in_another_organisation_s_name_are_refused_and_nothing_stored(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    before = await database.fetchval("SELECT count(*) FROM households")
    refusal = {
        "detail": "assessed_by is NRC but the token is for DRC: a call is attributed to its"
        " token's organisation"
    }

    registering = await registration.post("/households", json=body(assessed_by="NRC"))
    after = await database.fetchval("SELECT count(*) FROM households")
    household_id = await registered(registration, body())
    updating = await registration.patch(
        f"/households/{household_id}",
        json={"needs": [{"sector": "protection", "severity": 4}], "assessed_by": "NRC"},
    )

    assert (registering.status_code, registering.json()) == (403, refusal)
    assert after == before
    assert (updating.status_code, updating.json()) == (403, refusal)
    needs = (await registration.get(f"/households/{household_id}")).json()["needs"]
    assert [(n["sector"], n["assessed_by"]) for n in needs] == [("shelter", "DRC")]
