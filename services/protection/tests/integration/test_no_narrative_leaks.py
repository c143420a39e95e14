"""No narrative leaves the protection database in clear: not on any topic, not in any log line,
not in any table column. One whole flow (hotline intake, assessment, plan, review, follow-up,
notes, referrals out and in, reads by every role, refusals, closure) with distinctive text in
every free-text field, then a scan of everything it produced.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aidmesh_contracts import (
    ConsentPurpose,
    ProtectionCaseClosed,
    ReferralRequested,
    Sector,
    Urgency,
)
from aidmesh_runtime.testing import publish

pytestmark = pytest.mark.integration


async def test_no_narrative_text_appears_on_any_topic_in_any_log_line_or_in_clear_in_the_database(
    as_, register, producer, events, database, captured_logs, hotline_case
) -> None:
    secret = uuid4().hex[:12]
    # Each free-text field gets its own marker, so a leak says which field leaked.
    markers = {
        field: f"Zx{field}{secret}"
        for field in (
            "narrative",
            "contact",
            "assessment",
            "plan",
            "review",
            "followup",
            "note",
            "closure",
            "rejected",
        )
    }
    narrative = f"{markers['narrative']} says the recruiter in Kherson kept her passport."
    olena, supervisor, mykola, auditor = (
        as_("caseworker"),
        as_("supervisor"),
        as_("caseworker"),
        as_("auditor"),
    )
    household_id = await register(frozenset({"registration", "referral"}))
    first_outbox_id = await database.conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox")

    # Intake: a call for a household, and an anonymous one.
    case_ref = await hotline_case(
        supervisor,
        narrative=narrative,
        safe_contact=f"{markers['contact']} +380 67 000 0000 after 18:00",
        household_id=str(household_id),
    )
    anonymous_ref = await hotline_case(olena, narrative=narrative)
    path = f"/cases/{case_ref}"
    flow = [
        (supervisor, "/assignment", {"caseworker": olena.user}),
        (olena, "/assessment", {"risk_level": "critical", "note": markers["assessment"]}),
        (olena, "/plan", {"note": markers["plan"]}),
        (supervisor, "/plan/review", {"decision": "approve", "note": markers["review"]}),
        (olena, "/follow-ups", {"note": markers["followup"]}),
        (olena, "/notes", {"note": markers["note"]}),
        (olena, "/referrals", {"to": "health", "reason_code": "mhpss", "urgency": "priority"}),
        (olena, "/closure", {"closure_code": "goals_met", "note": markers["closure"]}),
    ]
    for caller, step, body in flow:
        response = await caller.post(path + step, body)
        assert response.status_code in (200, 201), (step, response.text)

    # Reads by every role, and refusals that carry narrative in their request.
    assert narrative in (await olena.get(path)).text  # opened for its caseworker
    assert narrative in (await supervisor.get(path)).text
    assert (await mykola.get(path)).status_code == 403
    assert narrative not in (await auditor.get(path)).text
    await auditor.get("/access-log", case_ref=case_ref)
    await olena.get("/cases")
    refused = await mykola.post(path + "/notes", {"note": markers["rejected"]})
    assert refused.status_code == 403
    invalid = await olena.post(
        f"/cases/{anonymous_ref}/notes", {"note": markers["rejected"] + "x" * 20_001}
    )
    assert invalid.status_code == 422 and markers["rejected"] not in invalid.text
    out_of_order = await olena.post(
        f"/cases/{anonymous_ref}/follow-ups", {"note": markers["rejected"]}
    )
    assert out_of_order.status_code == 409 and markers["rejected"] not in out_of_order.text
    # A referral to protection from another sector, for the same household.
    await publish(
        producer,
        ReferralRequested(
            referral_id=uuid4(),
            household_id=household_id,
            from_sector=Sector.HEALTH,
            to="protection",
            reason_code="gbv_disclosure",
            urgency=Urgency.PRIORITY,
            consent_purpose=ConsentPurpose.REFERRAL,
            requested_by="MMT-KH-01",
            requested_at=datetime.now(UTC),
        ),
        source="/aidmesh/health",
    )
    await database.eventually(
        "SELECT 1 FROM referrals_in WHERE household_id = $1", household_id, what="the referral in"
    )
    # A note damaged in the database is reported unreadable, without its content.
    await database.conn.execute(
        "UPDATE case_notes SET body = overlay(body placing 'AAAA' from length(body) - 5)"
        " WHERE case_ref = $1 AND kind = 'note'",
        case_ref,
    )
    damaged = [n for n in (await olena.get(path)).json()["notes"] if n["kind"] == "note"]
    assert damaged[0]["unreadable"] is True and damaged[0]["text"] is None
    closed = await supervisor.post(path + "/closure/review", {"decision": "approve"})
    assert closed.json()["status"] == "closed"

    # Everything this flow made this service publish is on Kafka before we look.
    ours = await database.conn.fetch(
        "SELECT event_id, topic, key, headers::text AS headers, payload FROM outbox WHERE id > $1",
        first_outbox_id,
    )
    assert {"aidmesh.protection.case.v1", "aidmesh.referral.v1"} <= {r["topic"] for r in ours}
    ids = {r["event_id"] for r in ours}
    await events.wait_for(
        lambda rs: {r.envelope.id for r in rs} >= ids,
        select=lambda r: r.envelope is not None and r.envelope.id in ids,
        what="every event of the flow on Kafka",
    )
    assert any(
        r.envelope and r.envelope.type == ProtectionCaseClosed.event_type and r.envelope.id in ids
        for r in events.records
    )
    await asyncio.sleep(0)  # let the log buffer take the last lines

    def leaks(text: str) -> list[str]:
        return [field for field, marker in markers.items() if marker in text] + (
            ["narrative words"] if "recruiter in Kherson" in text else []
        )

    # 1. The outbox rows (key, headers, payload) this service wrote.
    for row in ours:
        assert not leaks(row["key"] + row["headers"] + row["payload"].decode()), row["topic"]
    # 2. Every Kafka record on every catalogue topic and DLQ during the flow, ours or not.
    assert len(events.records) >= len(ids)
    for record in events.records:
        text = (record.key or b"").decode("latin-1") + str(record.headers)
        text += (record.value or b"").decode("utf-8", "replace")
        assert not leaks(text), (record.topic, record.offset)
    # 3. Every log line of the whole flow, structlog and standard logging.
    logged = captured_logs.getvalue()
    assert "protection_case_opened" in logged  # the capture did capture the service
    assert "restricted_field_unreadable" in logged
    assert "case_access_not_granted" in logged
    assert not leaks(logged), leaks(logged)
    # 4. Every column of every table of the protection database, as text.
    tables = await database.conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    assert {"protection_cases", "case_notes", "case_access_log", "outbox"} <= {
        t["tablename"] for t in tables
    }
    for table in tables:
        dump = await database.conn.fetchval(
            f"SELECT coalesce(string_agg(t::text, chr(10)), '') FROM \"{table['tablename']}\" t"
        )
        assert not leaks(dump), table["tablename"]
    encrypted = await database.conn.fetchval(
        "SELECT count(*) FROM case_notes WHERE case_ref = ANY($1::text[])",
        [case_ref, anonymous_ref],
    )
    # Two intake narratives; assessment, plan, plan review, follow-up, note, closure request.
    assert encrypted == 8
