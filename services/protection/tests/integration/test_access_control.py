"""Who may read which case, and the access log that records every read (and every refusal)."""

from __future__ import annotations

import asyncpg
import pytest

pytestmark = pytest.mark.integration

NARRATIVE = "Her brother-in-law threatens the children when she mentions leaving."


async def access_rows(database, case_ref: str) -> list[tuple[str, str, str, str]]:
    rows = await database.conn.fetch(
        "SELECT user_id, role, action, outcome FROM case_access_log WHERE case_ref = $1 ORDER BY id",
        case_ref,
    )
    return [tuple(r) for r in rows]


async def test_a_caseworker_reading_another_caseworkers_case_is_forbidden(
    as_, hotline_case
) -> None:
    olena, mykola = as_("caseworker"), as_("caseworker")
    case_ref = await hotline_case(olena, narrative=NARRATIVE)

    response = await mykola.get(f"/cases/{case_ref}")

    assert response.status_code == 403
    assert "brother" not in response.text
    assert response.json()["detail"]["message"] == "the case is not assigned to you"


async def test_a_caseworker_may_not_write_to_another_caseworkers_case(
    as_, hotline_case, database
) -> None:
    olena, mykola = as_("caseworker"), as_("caseworker")
    case_ref = await hotline_case(olena)

    response = await mykola.post(f"/cases/{case_ref}/notes", {"note": "not mine to write"})

    assert response.status_code == 403
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM case_notes WHERE case_ref = $1", case_ref
        )
        == 0
    )


async def test_every_read_of_a_case_lands_in_the_access_log_refusals_included(
    as_, hotline_case, database
) -> None:
    olena, mykola, supervisor, auditor = (
        as_("caseworker"),
        as_("caseworker"),
        as_("supervisor"),
        as_("auditor"),
    )
    case_ref = await hotline_case(olena, narrative=NARRATIVE)

    await olena.get(f"/cases/{case_ref}")
    await mykola.get(f"/cases/{case_ref}")
    await supervisor.get(f"/cases/{case_ref}")
    await auditor.get(f"/cases/{case_ref}")
    await olena.get("/cases")

    assert await access_rows(database, case_ref) == [
        (olena.user, "caseworker", "hotline_intake", "granted"),
        (olena.user, "caseworker", "view_case", "granted"),
        (mykola.user, "caseworker", "view_case", "denied"),
        (supervisor.user, "supervisor", "view_case", "granted"),
        (auditor.user, "auditor", "view_metadata", "granted"),
        (olena.user, "caseworker", "list", "granted"),
    ]
    columns = {
        r["column_name"]
        for r in await database.conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'case_access_log'"
        )
    }
    assert columns == {"id", "at", "user_id", "role", "case_ref", "action", "outcome"}


async def test_a_read_of_a_case_that_does_not_exist_is_logged_too(as_, database) -> None:
    olena = as_("caseworker")

    response = await olena.get("/cases/PRT-0000000000")

    assert response.status_code == 404
    assert await access_rows(database, "PRT-0000000000") == [
        (olena.user, "caseworker", "view_case", "not_found")
    ]


async def test_a_caseworker_lists_only_their_own_cases(as_, hotline_case) -> None:
    olena, mykola = as_("caseworker"), as_("caseworker")
    hers = {await hotline_case(olena), await hotline_case(olena)}
    his = await hotline_case(mykola)

    listed = {c["case_ref"] for c in (await olena.get("/cases", limit=500)).json()}
    unassigned = (await olena.get("/cases", unassigned="true")).json()

    assert listed == hers
    assert his not in listed
    assert unassigned == []


async def test_a_supervisor_sees_every_case_and_assigns_them(as_, hotline_case) -> None:
    supervisor, olena = as_("supervisor"), as_("caseworker")
    case_ref = await hotline_case(supervisor, narrative=NARRATIVE)
    assert (await olena.get(f"/cases/{case_ref}")).status_code == 403

    waiting = {
        c["case_ref"] for c in (await supervisor.get("/cases", unassigned="true", limit=500)).json()
    }
    assigned = await supervisor.post(f"/cases/{case_ref}/assignment", {"caseworker": olena.user})

    assert case_ref in waiting
    assert assigned.json()["caseworker"] == olena.user
    view = (await olena.get(f"/cases/{case_ref}")).json()
    assert view["notes"][0]["text"] == NARRATIVE


async def test_an_auditor_reads_metadata_without_narrative_notes_or_household(
    as_, hotline_case, register
) -> None:
    olena, auditor = as_("caseworker"), as_("auditor")
    household_id = await register()
    case_ref = await hotline_case(
        olena, narrative=NARRATIVE, safe_contact="only by SMS", household_id=str(household_id)
    )

    response = await auditor.get(f"/cases/{case_ref}")

    assert response.status_code == 200
    case = response.json()
    assert case["status"] == "intake"
    assert case["caseworker"] == olena.user
    assert (case["has_household"], case["household_id"]) == (True, None)
    assert case["safe_contact"] is None
    assert [(n["kind"], n["author"], n["text"]) for n in case["notes"]] == [
        ("intake", olena.user, None)
    ]
    assert set(case["withheld"]) == {"household_id", "notes.text", "safe_contact"}
    assert "brother" not in response.text and str(household_id) not in response.text
    listed = (await auditor.get("/cases", limit=500)).json()
    assert all(c["household_id"] is None for c in listed)


async def test_an_auditor_changes_nothing(as_, hotline_case) -> None:
    olena, auditor = as_("caseworker"), as_("auditor")
    case_ref = await hotline_case(olena)

    for step, body in [
        ("/notes", {"note": "x"}),
        ("/assessment", {"risk_level": "low"}),
        ("/assignment", {"caseworker": auditor.user}),
        ("/referrals", {"to": "health", "reason_code": "medical_care", "urgency": "routine"}),
    ]:
        assert (await auditor.post(f"/cases/{case_ref}{step}", body)).status_code == 403, step


async def test_the_auditor_reads_the_access_log_and_that_reading_is_logged(
    as_, hotline_case
) -> None:
    olena, mykola, auditor = as_("caseworker"), as_("caseworker"), as_("auditor")
    case_ref = await hotline_case(olena)
    await mykola.get(f"/cases/{case_ref}")

    response = await auditor.get("/access-log", case_ref=case_ref)

    assert response.status_code == 200
    assert [(e["user_id"], e["action"], e["outcome"]) for e in response.json()] == [
        (olena.user, "hotline_intake", "granted"),
        (mykola.user, "view_case", "denied"),
        (auditor.user, "read_access_log", "granted"),  # this very read
    ]


@pytest.mark.parametrize("role", ["caseworker", "supervisor"])
async def test_only_auditors_read_the_access_log(as_, role) -> None:
    assert (await as_(role).get("/access-log")).status_code == 403


async def test_the_access_log_cannot_be_changed_or_emptied(as_, hotline_case, database) -> None:
    await hotline_case(as_("caseworker"))

    for statement in (
        "UPDATE case_access_log SET user_id = 'someone-else'",
        "DELETE FROM case_access_log",
        "TRUNCATE case_access_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await database.conn.execute(statement)


async def test_paging_beyond_what_the_database_holds_is_refused_by_name(as_) -> None:
    cases = await as_("supervisor").get("/cases", offset=str(2**63))
    log = await as_("auditor").get("/access-log", after_id=str(2**63))

    assert (cases.status_code, cases.json()["detail"][0]["loc"]) == (422, ["query", "offset"])
    assert (log.status_code, log.json()["detail"][0]["loc"]) == (422, ["query", "after_id"])
