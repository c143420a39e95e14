"""Hotline intake (anonymous or not) and a case's lifecycle through closure, on the real broker
and database: what the API answers, what the database holds, what the restricted topic gets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import CaseSource, ProtectionCaseClosed, ProtectionCaseOpened
from aidmesh_protection.crypto import Keyring, new_data_key
from aidmesh_protection.rotation import reencrypt
from aidmesh_protection.service import SAFE_CONTACT_FIELD, note_field
from aidmesh_runtime.testing import auth_headers, bearer, session_token
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.integration


NARRATIVE = "Caller says her employer in Odesa kept her documents and locked the flat at night."


async def test_an_anonymous_hotline_call_opens_a_case_known_only_by_its_reference(
    as_, database, events, is_event
) -> None:
    olena = as_("caseworker")

    response = await olena.post(
        "/hotline/calls",
        {
            "call_id": str(uuid4()),
            "severity": 5,
            "concern_codes": ["trafficking_risk"],
            "narrative": NARRATIVE,
            "safe_contact": "call back on weekdays after 18:00 only",
        },
    )

    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["status"], answer["created"]) == ("intake", True)
    case_ref = answer["case_ref"]
    [seen] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, ProtectionCaseOpened, case_ref=case_ref),
        what="ProtectionCaseOpened of the anonymous case",
    )
    opened = seen.event()
    assert opened.household_id is None
    assert (opened.source, opened.severity) == (CaseSource.HOTLINE, 5)
    assert seen.key == case_ref.encode()  # no household: the case ref is the key and subject
    assert seen.envelope.subject == case_ref
    row = await database.conn.fetchrow(
        "SELECT household_id, caseworker, status FROM protection_cases WHERE case_ref = $1",
        case_ref,
    )
    assert dict(row) == {"household_id": None, "caseworker": olena.user, "status": "intake"}


async def test_the_narrative_and_safe_contact_are_stored_encrypted_for_their_case_and_field(
    as_, database, settings, hotline_case
) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena, narrative=NARRATIVE, safe_contact="only by SMS")

    note = await database.conn.fetchrow(
        "SELECT note_id, kind, body FROM case_notes WHERE case_ref = $1", case_ref
    )
    contact = await database.conn.fetchval(
        "SELECT safe_contact FROM protection_cases WHERE case_ref = $1", case_ref
    )

    assert note["kind"] == "intake"
    assert "employer" not in note["body"] and "Odesa" not in note["body"]
    assert note["body"].startswith("enc:v1:test:")
    assert "SMS" not in contact and contact.startswith("enc:v1:test:")
    keyring = settings.keyring()
    assert keyring.open(
        note["body"], case_ref=case_ref, field_name=note_field(note["note_id"])
    ) == (NARRATIVE)
    assert keyring.open(contact, case_ref=case_ref, field_name=SAFE_CONTACT_FIELD) == "only by SMS"


async def test_the_database_refuses_plaintext_in_an_encrypted_column(
    as_, database, hotline_case
) -> None:
    case_ref = await hotline_case(as_("caseworker"))

    with pytest.raises(Exception, match="check constraint"):
        await database.conn.execute(
            "UPDATE protection_cases SET safe_contact = 'plain words' WHERE case_ref = $1", case_ref
        )


async def test_the_caseworker_who_took_the_call_reads_the_narrative(as_, hotline_case) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena, narrative=NARRATIVE, safe_contact="only by SMS")

    case = (await olena.get(f"/cases/{case_ref}")).json()

    assert [(n["kind"], n["text"]) for n in case["notes"]] == [("intake", NARRATIVE)]
    assert case["safe_contact"] == "only by SMS"
    assert case["withheld"] == []
    assert (case["has_household"], case["household_id"]) == (False, None)


async def test_a_call_submitted_again_opens_no_second_case(as_, database) -> None:
    olena = as_("caseworker")
    call = {"call_id": str(uuid4()), "severity": 3, "narrative": NARRATIVE}

    first = await olena.post("/hotline/calls", call)
    again = await olena.post("/hotline/calls", call)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() | {"created": False}
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM protection_cases WHERE hotline_call_id = $1",
            UUID(call["call_id"]),
        )
        == 1
    )


async def test_a_hotline_call_for_a_registered_household_names_it(
    as_, register, events, is_event
) -> None:
    household_id = await register()

    response = await as_("supervisor").post(
        "/hotline/calls",
        {"call_id": str(uuid4()), "severity": 4, "household_id": str(household_id)},
    )

    assert response.status_code == 201
    case_ref = response.json()["case_ref"]
    [seen] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, ProtectionCaseOpened, case_ref=case_ref),
        what="ProtectionCaseOpened of the hotline case",
    )
    assert seen.event().household_id == household_id
    assert seen.key == str(household_id).encode()


async def test_an_anonymous_case_is_linked_to_its_household_later(
    as_, register, hotline_case, database
) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena)
    household_id = await register()

    linked = await olena.post(f"/cases/{case_ref}/household", {"household_id": str(household_id)})
    again = await olena.post(f"/cases/{case_ref}/household", {"household_id": str(uuid4())})

    assert linked.status_code == 200, linked.text
    assert linked.json()["household_id"] == str(household_id)
    assert again.status_code == 409
    assert again.json()["detail"]["reason"] == "household_already_linked"
    assert (
        await database.conn.fetchval(
            "SELECT household_id FROM protection_cases WHERE case_ref = $1", case_ref
        )
        == household_id
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        # The gateway headers of before signed tokens are no longer believed.
        ({"X-AidMesh-User": "olena.k", "X-AidMesh-Role": "supervisor"}, "missing bearer token"),
        (
            bearer(session_token("protection:supervisor", key=Ed25519PrivateKey.generate())),
            "bad signature",
        ),
        (
            bearer(
                session_token("protection:caseworker", now=datetime.now(UTC) - timedelta(hours=2))
            ),
            "token expired",
        ),
    ],
)
async def test_a_caller_without_a_valid_token_is_unauthenticated(
    protection, headers, reason
) -> None:
    response = await protection.post(
        "/hotline/calls", json={"call_id": str(uuid4()), "severity": 3}, headers=headers
    )

    assert (response.status_code, response.json()) == (401, {"detail": reason})
    assert (await protection.get("/cases", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    ("scopes", "sub", "reason"),
    [
        (
            ["registration:read", "shelter:read"],
            "user:olena.k",
            "this call needs one of the scopes protection:caseworker, protection:supervisor,"
            " protection:auditor",
        ),
        (
            ["protection:caseworker", "protection:supervisor"],
            "user:olena.k",
            "this token carries 2 protection roles (caseworker, supervisor): protection needs"
            " a token with one",
        ),
        (
            ["protection:caseworker"],
            "olena k; drop",
            "the token's subject is not a user id protection can record",
        ),
    ],
)
async def test_a_token_without_exactly_one_protection_role_is_forbidden(
    protection, database, scopes, sub, reason
) -> None:
    headers = auth_headers(*scopes, sub=sub)
    call_id = uuid4()

    response = await protection.post(
        "/hotline/calls", json={"call_id": str(call_id), "severity": 3}, headers=headers
    )

    assert (response.status_code, response.json()) == (403, {"detail": reason})
    assert (await protection.get("/cases", headers=headers)).status_code == 403
    opened = await database.conn.fetchval(
        "SELECT count(*) FROM protection_cases WHERE hotline_call_id = $1", call_id
    )
    assert opened == 0


async def test_an_auditor_takes_no_calls(as_, database) -> None:
    auditor = as_("auditor")

    response = await auditor.post("/hotline/calls", {"call_id": str(uuid4()), "severity": 3})

    assert response.status_code == 403
    assert (
        await database.conn.fetchval(
            "SELECT outcome FROM case_access_log WHERE user_id = $1", auditor.user
        )
        == "denied"
    )


async def test_a_case_goes_from_intake_through_a_reviewed_plan_and_follow_up_to_closure(
    as_, hotline_case, events, is_event, database
) -> None:
    olena, supervisor = as_("caseworker"), as_("supervisor")
    case_ref = await hotline_case(supervisor, narrative=NARRATIVE)
    path = f"/cases/{case_ref}"

    steps = [
        (supervisor, "/assignment", {"caseworker": olena.user}, "intake"),
        (
            olena,
            "/assessment",
            {"risk_level": "high", "note": "Risk assessed with her."},
            "assessed",
        ),
        (olena, "/plan", {"note": "Safe shelter, legal aid, weekly calls."}, "plan_in_review"),
        (supervisor, "/plan/review", {"decision": "approve"}, "case_plan"),
        (olena, "/follow-ups", {"note": "Moved to safe shelter."}, "follow_up"),
        (olena, "/follow-ups", {"note": "Legal aid started."}, "follow_up"),
        (olena, "/closure", {"closure_code": "goals_met", "note": "Safe."}, "closure_in_review"),
    ]
    for caller, step, body, status in steps:
        response = await caller.post(path + step, body)
        assert response.status_code == 200, (step, response.text)
        assert response.json()["status"] == status, step

    own_review = await supervisor.post(path + "/closure/review", {"decision": "approve"})
    assert own_review.status_code == 200  # the supervisor did not ask for this closure
    closed = own_review.json()

    assert closed["status"] == "closed"
    assert closed["closure_code"] == "goals_met"
    assert closed["plan_approved_by"] == supervisor.user
    [seen] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, ProtectionCaseClosed, case_ref=case_ref),
        what="ProtectionCaseClosed",
    )
    assert seen.event().closure_code == "goals_met"
    opened = await database.conn.fetchval(
        "SELECT opened_envelope->>'id' FROM protection_cases WHERE case_ref = $1", case_ref
    )
    assert str(seen.envelope.causationid) == opened  # the closure belongs to the case's flow
    kinds = [
        r["kind"]
        for r in await database.conn.fetch(
            "SELECT kind FROM case_notes WHERE case_ref = $1 ORDER BY written_at, note_id", case_ref
        )
    ]
    assert sorted(kinds) == sorted(
        ["intake", "assessment", "plan", "follow_up", "follow_up", "closure_request"]
    )
    after = await olena.post(path + "/follow-ups", {"note": "one more"})
    assert after.status_code == 409
    assert after.json()["detail"]["reason"] == "case_closed"


async def test_a_step_out_of_order_is_refused_with_a_reason_and_changes_nothing(
    as_, hotline_case, database
) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena)

    response = await olena.post(f"/cases/{case_ref}/follow-ups", {"note": "too early"})

    assert response.status_code == 409
    assert response.json()["detail"] == {
        "reason": "invalid_transition",
        "message": "a case in intake cannot be followed up: it needs a case plan in effect",
    }
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM case_notes WHERE case_ref = $1 AND kind = 'follow_up'", case_ref
        )
        == 0
    )
    assert (
        await database.conn.fetchval(
            "SELECT outcome FROM case_access_log WHERE case_ref = $1 AND action = 'follow_up'",
            case_ref,
        )
        == "refused"
    )


async def test_a_supervisor_may_not_approve_the_closure_they_asked_for(as_, hotline_case) -> None:
    supervisor, other = as_("supervisor"), as_("supervisor")
    case_ref = await hotline_case(supervisor)
    path = f"/cases/{case_ref}"
    asked = await supervisor.post(path + "/closure", {"closure_code": "lost_contact"})
    assert asked.status_code == 200, asked.text

    own = await supervisor.post(path + "/closure/review", {"decision": "approve"})
    by_other = await other.post(path + "/closure/review", {"decision": "approve"})

    assert own.status_code == 403
    assert by_other.status_code == 200
    assert by_other.json()["status"] == "closed"


async def test_a_caseworker_may_not_review(as_, hotline_case) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena)
    await olena.post(f"/cases/{case_ref}/closure", {"closure_code": "duplicate"})

    response = await olena.post(f"/cases/{case_ref}/closure/review", {"decision": "approve"})

    assert response.status_code == 403


async def test_an_unknown_closure_code_names_the_field(as_, hotline_case) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena)

    response = await olena.post(f"/cases/{case_ref}/closure", {"closure_code": "bored"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "closure_code"]


async def test_reencrypting_moves_every_value_to_the_current_key(
    as_, hotline_case, database, settings
) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena, narrative=NARRATIVE, safe_contact="only by SMS")
    old = settings.keyring()
    rotated = Keyring.from_config(
        new_data_key("rotated"), retired=settings.data_key.get_secret_value()
    )

    result = await reencrypt(database.conn, rotated)

    assert result.moved >= 2 and result.unreadable == []
    note = await database.conn.fetchrow(
        "SELECT note_id, body FROM case_notes WHERE case_ref = $1", case_ref
    )
    assert note["body"].startswith("enc:v1:rotated:")
    assert rotated.open(
        note["body"], case_ref=case_ref, field_name=note_field(note["note_id"])
    ) == (NARRATIVE)
    # Put the run's key back for the tests that follow.
    back = Keyring(
        current_id=old.current_id, current=old.current, retired={"rotated": rotated.current}
    )
    assert (await reencrypt(database.conn, back)).unreadable == []
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM case_notes WHERE body NOT LIKE 'enc:v1:test:%'"
        )
        == 0
    )
