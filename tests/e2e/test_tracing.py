"""One registration is one trace in Jaeger: the request in registration, shelter opening
the case, audit recording it, all in the trace the registration response names.

Needs Jaeger (started by `make infra-up`, or `deploy/local/jaeger.sh start`); the services
export to it over OTLP (AIDMESH_OTLP_ENDPOINT, default http://127.0.0.1:4318).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from uuid import UUID

import httpx
import pytest
from aidmesh_runtime.testing import EventLog

pytestmark = pytest.mark.e2e

JAEGER = os.environ.get("AIDMESH_JAEGER_URL", "http://127.0.0.1:16686")
REGISTERED = "org.aidmesh.registration.household.registered.v1"
NEED = "org.aidmesh.assessment.need.assessed.v1"
CASE_OPENED = "org.aidmesh.shelter.case.opened.v1"

HOUSEHOLD = {
    "channel": "hotline",
    "location": {"adm1_pcode": "UA59"},
    "displacement_status": "returnee",
    "size": 1,
    "members": [
        {
            "full_name": "Петро Трасувальник",
            "sex": "male",
            "date_of_birth": "1958-03-14",
            "relation": "head",
        }
    ],
    "vulnerabilities": ["elderly_headed"],
    "consents": ["registration", "data_sharing", "referral"],
    "needs": [{"sector": "shelter", "severity": 4, "details": {"damage_level": "medium"}}],
}


class Trace:
    """A trace as Jaeger's HTTP API returns it, with each span's service at hand."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.trace_id: str = body["traceID"]
        processes = body["processes"]
        self.spans: list[dict[str, Any]] = [
            {**span, "service": processes[span["processID"]]["serviceName"]}
            for span in body["spans"]
        ]
        self._by_id = {span["spanID"]: span for span in self.spans}

    @property
    def services(self) -> set[str]:
        return {span["service"] for span in self.spans}

    def find(self, service: str, operation: str, **tags: str) -> dict[str, Any] | None:
        for span in self.spans:
            span_tags = {tag["key"]: tag["value"] for tag in span["tags"]}
            if (
                span["service"] == service
                and span["operationName"] == operation
                and all(span_tags.get(k) == v for k, v in tags.items())
            ):
                return span
        return None

    def parent(self, span: dict[str, Any]) -> dict[str, Any] | None:
        for reference in span["references"]:
            if reference["refType"] == "CHILD_OF":
                return self._by_id.get(reference["spanID"])
        return None


async def trace_from_jaeger(
    http: httpx.AsyncClient, trace_id: str, *, complete: Any, timeout_s: float = 90
) -> Trace:
    """Poll Jaeger until the trace satisfies `complete` (each service exports its spans in
    batches, every few seconds)."""
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while True:
        try:
            response = await http.get(f"{JAEGER}/api/traces/{trace_id}")
        except httpx.TransportError as exc:
            raise AssertionError(
                f"Jaeger is not reachable at {JAEGER} ({exc!r}): start it with "
                "`make infra-up` or `deploy/local/jaeger.sh start`"
            ) from exc
        if response.status_code == 200:
            [body] = response.json()["data"]
            trace = Trace(body)
            if complete(trace):
                return trace
            seen = trace.services
        elif response.status_code != 404:  # 404: none of its spans has arrived yet
            raise AssertionError(f"Jaeger answered {response.status_code}: {response.text}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"trace {trace_id} incomplete after {timeout_s}s; spans from {sorted(seen)}"
            )
        await asyncio.sleep(0.5)


async def audit_recorded(http: httpx.AsyncClient, url: str, ce_id: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        response = await http.get(url)
        if response.status_code == 200 and ce_id in {e["ce_id"] for e in response.json()["events"]}:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"audit has not recorded {ce_id}: {response.text[:500]}")
        await asyncio.sleep(0.2)


async def test_one_registration_is_one_trace_with_spans_from_registration_shelter_and_audit(
    platform: Any, events: EventLog, http: httpx.AsyncClient
) -> None:
    response = await http.post(platform.url("registration") + "/households", json=HOUSEHOLD)
    assert response.status_code == 201, response.text
    # The response names its trace (W3C traceresponse: version-traceid-spanid-flags).
    _, trace_id, _, _ = response.headers["traceresponse"].split("-")
    household_id = response.json()["household_id"]
    flow = UUID(response.json()["correlation_id"])

    records = await events.wait_for(
        lambda rs: CASE_OPENED in {r.envelope.type for r in rs if r.envelope},
        select=lambda r: r.envelope is not None and r.envelope.correlationid == flow,
        what="the registration, its shelter need and the case shelter opened",
    )
    # Every event of the flow carries the same trace on the wire.
    assert {r.envelope.traceparent.split("-")[1] for r in records if r.envelope} == {trace_id}
    [case] = [r for r in records if r.envelope and r.envelope.type == CASE_OPENED]
    assert case.envelope is not None
    case_id = str(case.envelope.id)
    await audit_recorded(
        http, f"{platform.url('audit')}/households/{household_id}/timeline", case_id
    )

    def complete(trace: Trace) -> bool:
        return (
            trace.find("aidmesh-registration", "POST /households") is not None
            and trace.find("aidmesh-shelter", f"handle {NEED}") is not None
            and trace.find(
                "aidmesh-audit",
                "process aidmesh.shelter.case.v1",
                **{"cloudevents.event_id": case_id},
            )
            is not None
        )

    trace = await trace_from_jaeger(http, trace_id, complete=complete)

    assert {"aidmesh-registration", "aidmesh-shelter", "aidmesh-audit"} <= trace.services
    # The causal chain crosses the services inside the one trace: shelter consumed what
    # registration's relay sent, audit consumed what shelter's relay sent.
    shelter_need = trace.find("aidmesh-shelter", "process aidmesh.assessment.need.v1")
    assert shelter_need is not None
    sent_by = trace.parent(shelter_need)
    assert sent_by is not None
    assert (sent_by["service"], sent_by["operationName"]) == (
        "aidmesh-registration",
        "send aidmesh.assessment.need.v1",
    )
    audit_case = trace.find(
        "aidmesh-audit", "process aidmesh.shelter.case.v1", **{"cloudevents.event_id": case_id}
    )
    assert audit_case is not None
    sent_by = trace.parent(audit_case)
    assert sent_by is not None
    assert (sent_by["service"], sent_by["operationName"]) == (
        "aidmesh-shelter",
        "send aidmesh.shelter.case.v1",
    )
    # Database work is in the trace too (the shelter's handler transaction).
    assert any(
        s["service"] == "aidmesh-shelter" and s["operationName"] == "INSERT" for s in trace.spans
    )
    # ... and the request's own (registration writing the household): a traced request's
    # statements are traced (telemetry.statements_traced).
    assert any(
        s["service"] == "aidmesh-registration" and s["operationName"] == "INSERT"
        for s in trace.spans
    )
    assert "Петро" not in str(trace.spans)  # no personal data in spans
