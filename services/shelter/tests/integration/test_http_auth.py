"""Shelter's API on the real broker and database answers only bearer tokens its issuer
signed, still valid, with the scope each call needs (ADR 0009)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aidmesh_runtime.auth import SHELTER_READ
from aidmesh_runtime.testing import auth_headers, send_without_token, session_token
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.integration

CENTRE = {"name": "Гуртожиток №3", "location": {"adm1_pcode": "UA63"}, "capacity": 40}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_call_without_a_token_is_refused_with_401(shelter) -> None:
    response = await send_without_token(shelter, "GET", "/cases")

    assert response.status_code == 401
    assert response.json() == {"detail": "missing bearer token"}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_expired_token_is_refused_with_401(shelter) -> None:
    expired = session_token(
        SHELTER_READ, ttl=timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=2)
    )

    response = await shelter.get("/cases", headers=bearer(expired))

    assert (response.status_code, response.json()) == (401, {"detail": "token expired"})


async def test_a_token_signed_by_another_key_is_refused_with_401(shelter) -> None:
    forged = session_token(SHELTER_READ, key=Ed25519PrivateKey.generate())

    response = await shelter.get("/cases", headers=bearer(forged))

    assert (response.status_code, response.json()) == (401, {"detail": "bad signature"})


async def test_a_read_only_token_cannot_open_a_collective_centre(shelter) -> None:
    reader = auth_headers(SHELTER_READ)

    refused = await shelter.post("/facilities", json=CENTRE, headers=reader)

    assert refused.status_code == 403
    assert refused.json() == {"detail": "this call needs scope shelter:write"}
    listed = await shelter.get("/facilities", params={"oblast": "UA63"}, headers=reader)
    assert listed.status_code == 200
    assert CENTRE["name"] not in listed.text


async def test_a_token_for_another_service_opens_nothing_here(shelter) -> None:
    response = await shelter.get("/cases", headers=auth_headers("health:read", "health:write"))

    assert (response.status_code, response.json()) == (
        403,
        {"detail": "this call needs scope shelter:read"},
    )


async def test_probes_metrics_and_the_api_description_need_no_token(shelter) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert (await send_without_token(shelter, "GET", path)).status_code == 200, path
