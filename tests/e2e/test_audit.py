"""The audit service records a registered household's whole flow, across every sector, in
its hash-chained ledger; the household timeline shows it and the ledger verifies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any
from uuid import UUID

import httpx
import pytest
from aidmesh_runtime.testing import EventLog

pytestmark = pytest.mark.e2e

REGISTERED = "org.aidmesh.registration.household.registered.v1"
NEED = "org.aidmesh.assessment.need.assessed.v1"
CASE_OPENED = "org.aidmesh.shelter.case.opened.v1"
VISIT = "org.aidmesh.health.visit.scheduled.v1"  # completed when the team reports it
PROTECTION = "org.aidmesh.protection.case.opened.v1"
EXPECTED = {REGISTERED, NEED, CASE_OPENED, VISIT, PROTECTION}

HOUSEHOLD = {
    "channel": "hotline",
    "location": {"adm1_pcode": "UA63"},
    "displacement_status": "idp",
    "size": 1,
    "members": [
        {
            "full_name": "Оксана Тестова",
            "sex": "female",
            "date_of_birth": "1961-05-02",
            "relation": "head",
        }
    ],
    "vulnerabilities": ["elderly_headed"],
    "consents": ["registration", "data_sharing", "referral"],
    "needs": [
        {"sector": "shelter", "severity": 4, "details": {"damage_level": "medium"}},
        {"sector": "health", "severity": 3, "details": {"services_needed": ["mhpss"]}},
        {"sector": "protection", "severity": 4, "details": {"concern_codes": ["gbv_risk"]}},
    ],
}


async def timeline_once_flow_is_recorded(
    http: httpx.AsyncClient, url: str, flow_event_ids: set[str], *, timeout_s: float = 60
) -> dict[str, Any]:
    """Poll the timeline until it holds every event of the flow seen on the topics."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await http.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        if flow_event_ids <= {e["ce_id"] for e in body["events"]}:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timeline lacks {flow_event_ids - {e['ce_id'] for e in body['events']}}"
            )
        await asyncio.sleep(0.2)


async def test_a_registered_household_shows_up_in_the_audit_timeline_and_the_ledger_verifies(
    platform: Any, events: EventLog, http: httpx.AsyncClient
) -> None:
    response = await http.post(platform.url("registration") + "/households", json=HOUSEHOLD)
    assert response.status_code == 201, response.text
    household_id = response.json()["household_id"]
    flow = UUID(response.json()["correlation_id"])
    records = await events.wait_for(
        lambda rs: {r.envelope.type for r in rs} >= EXPECTED,
        select=lambda r: r.envelope is not None and r.envelope.correlationid == flow,
        what="registration, needs, shelter case, visit scheduled, protection case",
    )
    flow_ids = {str(r.envelope.id) for r in records if r.envelope and r.topic.endswith(".v1")}

    timeline = await timeline_once_flow_is_recorded(
        http, f"{platform.url('audit')}/households/{household_id}/timeline", flow_ids
    )

    events_by_id = {e["ce_id"]: e for e in timeline["events"]}
    assert {e["type"] for e in timeline["events"]} >= EXPECTED
    assert {e["source"] for e in timeline["events"]} >= {
        "/aidmesh/registration",
        "/aidmesh/shelter",
        "/aidmesh/health",
        "/aidmesh/protection",
    }
    [protection] = [e for e in timeline["events"] if e["type"] == PROTECTION]
    assert protection["restricted"] is True
    assert protection["data"] is None
    # Every event but the registration was caused by another event of the timeline.
    for event in timeline["events"]:
        if event["type"] == REGISTERED:
            assert event["causation_id"] is None
        else:
            assert event["causation_id"] in events_by_id, event["type"]
    [root] = timeline["causation_tree"]
    assert root["type"] == REGISTERED
    assert {child["type"] for child in root["caused"]} == {NEED}
    text = str(timeline)
    assert "Оксана" not in text  # personal data never reaches the ledger

    verify = subprocess.run(  # noqa: ASYNC221 - a short command, after the flow
        [sys.executable, "-m", "aidmesh_audit", "verify", "--dsn", platform.dsn("audit")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout
