"""Every service, as a real process, verifies bearer tokens with the public key it was
given: a call without a token or with one another key signed gets 401, a token without the
scope gets 403, and a token of the run's issuer with the scope gets in (ADR 0009)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
from aidmesh_runtime import auth
from aidmesh_runtime.testing import session_token

pytestmark = pytest.mark.e2e

#: One read of each service, and the scope it needs.
READS = {
    "registration": ("/households", auth.REGISTRATION_READ),
    "shelter": ("/cases", auth.SHELTER_READ),
    "health": ("/visits", auth.HEALTH_READ),
    "protection": ("/cases", auth.PROTECTION_AUDITOR),
    "audit": (f"/households/{uuid4()}/timeline", auth.AUDIT_READ),
}


@pytest.mark.parametrize("service", READS)
async def test_each_service_refuses_a_call_without_a_token(platform: Any, service: str) -> None:
    path, _ = READS[service]
    async with httpx.AsyncClient(timeout=10) as anonymous:
        response = await anonymous.get(platform.url(service) + path)

    assert (response.status_code, response.json()) == (401, {"detail": "missing bearer token"})


@pytest.mark.parametrize("service", READS)
async def test_each_service_refuses_a_token_its_issuer_did_not_sign(
    platform: Any, service: str
) -> None:
    path, scope = READS[service]
    # Under the run's key id, but signed by the test session's key, which the processes
    # were not given.
    forged = session_token(scope, kid=platform.signing_key.stem)
    stranger = {"Authorization": f"Bearer {forged}"}
    async with httpx.AsyncClient(timeout=10, headers=stranger) as client:
        response = await client.get(platform.url(service) + path)

    assert (response.status_code, response.json()) == (401, {"detail": "bad signature"})


@pytest.mark.parametrize("service", READS)
async def test_each_service_lets_in_the_scope_it_needs_and_nothing_else(
    platform: Any, service: str
) -> None:
    path, scope = READS[service]
    others = [s for s in auth.SCOPES if s.split(":")[0] != service]
    async with httpx.AsyncClient(timeout=10) as client:
        allowed = await client.get(
            platform.url(service) + path, headers=platform.token(scope, sub="user:e2e-reader")
        )
        refused = await client.get(
            platform.url(service) + path, headers=platform.token(*others, sub="user:e2e-other")
        )

    assert allowed.status_code == 200, allowed.text
    assert refused.status_code == 403
    assert scope.split(":")[0] in refused.json()["detail"]
