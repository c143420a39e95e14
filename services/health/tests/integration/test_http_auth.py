"""Health's API on the real broker and database answers only bearer tokens its issuer
signed, still valid, with the scope each call needs; who delivered a visit's services is
the token's organisation (ADR 0009)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aidmesh_contracts import AssistanceDelivered, VisitCompleted
from aidmesh_runtime.auth import (
    HEALTH_READ,
    HEALTH_RECORD_FOR_PARTNERS,
    HEALTH_WRITE,
    SHELTER_READ,
    SHELTER_WRITE,
)
from aidmesh_runtime.testing import auth_headers, bearer, send_without_token, session_token
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.integration

TEAM = {
    "team_code": "MMT-AUTH-01",
    "home_oblast": "UA95",
    "daily_capacity": 4,
    "services": ["mhpss"],
}


async def test_a_call_without_a_token_is_refused_with_401(health) -> None:
    response = await send_without_token(health, "GET", "/visits")

    assert (response.status_code, response.json()) == (401, {"detail": "missing bearer token"})
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_expired_token_is_refused_with_401(health) -> None:
    expired = session_token(HEALTH_READ, now=datetime.now(UTC) - timedelta(days=1))

    response = await health.get("/visits", headers=bearer(expired))

    assert (response.status_code, response.json()) == (401, {"detail": "token expired"})


async def test_a_token_signed_by_another_key_is_refused_with_401(health) -> None:
    forged = session_token(HEALTH_READ, key=Ed25519PrivateKey.generate())

    response = await health.get("/visits", headers=bearer(forged))

    assert (response.status_code, response.json()) == (401, {"detail": "bad signature"})


async def test_a_read_only_token_cannot_add_a_team(health) -> None:
    reader = auth_headers(HEALTH_READ)

    refused = await health.post("/teams", json=TEAM, headers=reader)

    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "this call needs scope health:write"},
    )
    teams = (await health.get("/teams", headers=reader)).json()
    assert "MMT-AUTH-01" not in {t["team_code"] for t in teams}


async def test_a_shelter_token_reads_no_health_visits(health) -> None:
    response = await health.get("/visits", headers=auth_headers(SHELTER_READ, SHELTER_WRITE))

    assert (response.status_code, response.json()) == (
        403,
        {"detail": "this call needs scope health:read"},
    )


async def test_a_visit_reported_in_another_organisation_s_name_is_refused_and_nothing_recorded(
    world, health, database
) -> None:
    await world.team("MMT-ATTR-01", "UA97", capacity=4)
    household, registered = await world.household("UA97")
    need, _ = await world.need(household, registered, services=("mhpss",))
    visit_id = (await world.visit_for(need))["visit_id"]
    report = {"services_delivered": ["mhpss"], "persons_seen": 2, "partner_org": "NRC"}
    team = auth_headers(HEALTH_READ, HEALTH_WRITE, org="NGO-DOBRO", sub="user:mmt-attr-01")

    refused = await health.post(f"/visits/{visit_id}/completion", json=report, headers=team)

    assert (refused.status_code, refused.json()) == (
        403,
        {
            "detail": "partner_org is NRC but the token is for NGO-DOBRO: a call is attributed"
            " to its token's organisation (naming another one needs scope"
            " health:record-for-partners)"
        },
    )
    status = await database.conn.fetchval("SELECT status FROM visits WHERE visit_id = $1", visit_id)
    assert status == "scheduled"
    assert await world.outbox_count(VisitCompleted, visit_id=str(visit_id)) == 0
    assert (
        await world.outbox_count(AssistanceDelivered, household_id=str(household.household_id)) == 0
    )
    # A coordinator who may record for partners reports what NRC delivered.
    coordinator = auth_headers(HEALTH_WRITE, HEALTH_RECORD_FOR_PARTNERS, sub="user:coordinator")
    recorded = await health.post(f"/visits/{visit_id}/completion", json=report, headers=coordinator)
    assert recorded.status_code == 200, recorded.text
    [delivered] = await world.published(
        AssistanceDelivered, household_id=str(household.household_id)
    )
    assert delivered.event().partner_org == "NRC"  # type: ignore[attr-defined]
