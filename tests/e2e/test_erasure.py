"""Erasure across the platform (ADR 0010): registration destroys a household's key and
publishes HouseholdErased; every sector stops treating it as consented; the audit ledger
records the erasure in its hash chain, holds no personal data, and still verifies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from aidmesh_runtime import auth
from aidmesh_runtime.testing import EventLog

pytestmark = pytest.mark.e2e

REGISTERED = "org.aidmesh.registration.household.registered.v1"
ERASED = "org.aidmesh.registration.household.erased.v1"
NAME, PHONE, PASSPORT = "Стефанія Заболотна-Вишиванко", "+380937771144", "МЮ482915"

HOUSEHOLD = {
    "channel": "hotline",
    "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312"},
    "displacement_status": "idp",
    "address": "вул. Лермонтовська, 27, Харків",
    "phone": PHONE,
    "members": [
        {
            "full_name": NAME,
            "sex": "female",
            "date_of_birth": "1958-07-19",
            "relation": "head",
            "document_number": PASSPORT,
        }
    ],
    "consents": ["registration", "data_sharing", "referral"],
    "needs": [{"sector": "shelter", "severity": 4, "details": {"damage_level": "medium"}}],
}
PERSONAL = (
    NAME,
    "Стефанія",
    "Stefaniia",
    PHONE,
    "937771144",
    PASSPORT,
    "1958-07-19",
    "Лермонтовська",
)


async def eventually(check: Any, *, what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.2)


async def projected_consents(dsn: str, household_id: str) -> list[str] | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(  # type: ignore[no-any-return]
            "SELECT consents FROM household_projection WHERE household_id = $1",
            UUID(household_id),
        )
    finally:
        await conn.close()


async def test_an_erased_household_is_unconsented_everywhere_and_the_audit_ledger_verifies(
    platform: Any, events: EventLog, http: httpx.AsyncClient
) -> None:
    registration = platform.url("registration")
    response = await http.post(registration + "/households", json=HOUSEHOLD)
    assert response.status_code == 201, response.text
    household_id = response.json()["household_id"]
    timeline_url = f"{platform.url('audit')}/households/{household_id}/timeline"
    for sector in ("shelter", "health", "protection"):
        await eventually(
            lambda sector=sector: projected_consents(platform.dsn(sector), household_id),
            what=f"the household in {sector}'s projection, with its consents",
        )

    erased = await http.post(
        f"{registration}/households/{household_id}/erasure",
        json={"reason_code": "data_subject_request", "requested_by": "IOM-DPO"},
        headers=platform.token(auth.REGISTRATION_ERASE, org="IOM-DPO", sub="user:dpo"),
    )

    assert erased.status_code == 200, erased.text
    event_id = UUID(erased.json()["event"]["id"])
    [record] = await events.wait_for(
        lambda found: len(found) == 1,
        select=lambda r: r.envelope is not None and r.envelope.id == event_id,
        what="HouseholdErased on the household topic",
    )
    assert record.envelope.type == ERASED
    assert (await http.get(f"{registration}/households/{household_id}")).status_code == 410
    # Every sector now holds the household with no consent: nothing is shared or referred.
    for sector in ("shelter", "health", "protection"):
        await eventually(
            lambda sector=sector: _no_consent_left(platform.dsn(sector), household_id),
            what=f"{sector}'s projection to drop every consent",
        )
    # The ledger has the whole history, the erasure included, and nothing personal.
    timeline = await eventually(
        lambda: _timeline_with(http, timeline_url, str(event_id)),
        what="HouseholdErased in the audit timeline",
    )
    types = [e["type"] for e in timeline["events"]]
    # Same topic and key as the registration: ledgered after it, in order.
    assert types.index(REGISTERED) < types.index(ERASED)
    text = str(timeline) + record.value.decode()
    for value in PERSONAL:
        assert value not in text, value
    verify = subprocess.run(  # noqa: ASYNC221 - a short command, after the flow
        [sys.executable, "-m", "aidmesh_audit", "verify", "--dsn", platform.dsn("audit")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout


async def _no_consent_left(dsn: str, household_id: str) -> bool:
    return await projected_consents(dsn, household_id) == []


async def _timeline_with(http: httpx.AsyncClient, url: str, event_id: str) -> dict[str, Any] | None:
    response = await http.get(url)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body if event_id in {e["ce_id"] for e in body["events"]} else None
