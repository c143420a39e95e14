"""The audit API on the real broker and database: a household's timeline only for a valid
token with audit:read (ADR 0009)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from aidmesh_runtime.auth import AUDIT_READ, REGISTRATION_READ
from aidmesh_runtime.testing import auth_headers, bearer, send_without_token, session_token
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.integration


async def test_a_timeline_without_a_token_is_refused_with_401(audit) -> None:
    response = await send_without_token(audit, "GET", f"/households/{uuid4()}/timeline")

    assert (response.status_code, response.json()) == (401, {"detail": "missing bearer token"})


async def test_a_timeline_with_an_expired_or_forged_token_is_refused_with_401(audit) -> None:
    path = f"/households/{uuid4()}/timeline"
    expired = session_token(AUDIT_READ, now=datetime.now(UTC) - timedelta(hours=3))
    forged = session_token(AUDIT_READ, key=Ed25519PrivateKey.generate())

    assert (await audit.get(path, headers=bearer(expired))).json() == {"detail": "token expired"}
    assert (await audit.get(path, headers=bearer(forged))).json() == {"detail": "bad signature"}


async def test_a_registration_token_reads_no_timeline(audit) -> None:
    path = f"/households/{uuid4()}/timeline"

    response = await audit.get(path, headers=auth_headers(REGISTRATION_READ))

    assert (response.status_code, response.json()) == (
        403,
        {"detail": "this call needs scope audit:read"},
    )
    assert (await audit.get(path)).status_code == 200
