"""Health's API on the real broker and database answers only bearer tokens its issuer
signed, still valid, with the scope each call needs (ADR 0009)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aidmesh_runtime.auth import HEALTH_READ, SHELTER_READ, SHELTER_WRITE
from aidmesh_runtime.testing import auth_headers, send_without_token, session_token
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.integration

TEAM = {
    "team_code": "MMT-AUTH-01",
    "home_oblast": "UA95",
    "daily_capacity": 4,
    "services": ["mhpss"],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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
