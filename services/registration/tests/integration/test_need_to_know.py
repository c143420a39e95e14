"""Need to know (issue 19): a partner reads the households its organisation registered, and
others only while they consent to data sharing; IOM's registration staff read every one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aidmesh_runtime.auth import (
    REGISTRATION_INTAKE,
    REGISTRATION_READ,
    REGISTRATION_READ_ALL,
    REGISTRATION_WRITE,
)
from aidmesh_runtime.testing import auth_headers
from httpx import AsyncClient

pytestmark = pytest.mark.integration

Body = Callable[..., dict[str, Any]]

NRC = auth_headers(REGISTRATION_READ, REGISTRATION_WRITE, org="NRC", sub="partner:nrc")
PIN = auth_headers(REGISTRATION_READ, REGISTRATION_WRITE, org="PIN", sub="partner:pin")
IOM_STAFF = auth_headers(REGISTRATION_READ, REGISTRATION_READ_ALL, org="IOM-REG", sub="user:reg")


async def registered_by_nrc(registration: AsyncClient, body: Body) -> tuple[str, str]:
    """A household NRC registered, with no consent to data sharing: (its path, its phone)."""
    household = body(channel="partner", partner_org="NRC", consents=["registration"])
    response = await registration.post("/households", json=household, headers=NRC)
    assert response.status_code == 201, response.text
    return f"/households/{response.json()['household_id']}", household["phone"]


async def test_another_partner_cannot_read_find_or_change_a_household_without_consent(
    registration: AsyncClient, body: Body
) -> None:
    household, phone = await registered_by_nrc(registration, body)

    assert (await registration.get(household, headers=NRC)).status_code == 200
    for path in (household, household + "/consents"):
        response = await registration.get(path, headers=PIN)
        assert response.status_code == 404, response.text
        assert "not found" in response.json()["detail"]
    patch = await registration.patch(
        household, json={"displacement_status": "returnee"}, headers=PIN
    )
    assert patch.status_code == 404
    found = await registration.get("/households", params={"phone": phone}, headers=PIN)
    assert found.json()["items"] == []
    found = await registration.get("/households", params={"phone": phone}, headers=NRC)
    assert [h["household_id"] for h in found.json()["items"]] == [household.split("/")[-1]]


async def test_consent_to_data_sharing_opens_a_household_to_other_partners_until_withdrawn(
    registration: AsyncClient, body: Body
) -> None:
    household, phone = await registered_by_nrc(registration, body)

    given = await registration.post(
        household + "/consents", json={"purpose": "data_sharing"}, headers=NRC
    )
    assert given.status_code == 201, given.text
    assert (await registration.get(household, headers=PIN)).status_code == 200
    found = await registration.get("/households", params={"phone": phone}, headers=PIN)
    assert len(found.json()["items"]) == 1

    withdrawn = await registration.post(
        household + "/consents/data_sharing/withdraw", json={}, headers=NRC
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert (await registration.get(household, headers=PIN)).status_code == 404


async def test_iom_registration_staff_read_every_household(
    registration: AsyncClient, body: Body
) -> None:
    household, phone = await registered_by_nrc(registration, body)

    assert (await registration.get(household, headers=IOM_STAFF)).status_code == 200
    found = await registration.get("/households", params={"phone": phone}, headers=IOM_STAFF)
    assert len(found.json()["items"]) == 1


async def test_a_partner_sees_its_own_intake_submissions_only(
    registration: AsyncClient, kobo: Callable[..., dict[str, Any]]
) -> None:
    answers = kobo(**{"head/dob": "2091-02-30"})  # kept as a rejected submission of NRC
    sent = await registration.post(
        "/intake/kobo",
        json=answers,
        headers=auth_headers(REGISTRATION_INTAKE, org="NRC", sub="partner:nrc-kobo"),
    )
    assert sent.status_code == 422, sent.text
    one = f"/intake/submissions/NRC/{answers['meta/instanceID']}"

    assert (await registration.get(one, headers=NRC)).status_code == 200
    assert (await registration.get(one, headers=IOM_STAFF)).status_code == 200
    assert (await registration.get(one, headers=PIN)).status_code == 404
    listed = await registration.get("/intake/rejected", params={"partner_org": "NRC"}, headers=PIN)
    assert listed.json()["items"] == []
    listed = await registration.get("/intake/rejected", headers=PIN)
    assert all(s["partner_org"] == "PIN" for s in listed.json()["items"])


async def test_a_partner_reads_the_outcome_of_its_submissions_with_its_intake_token(
    registration: AsyncClient, kobo: Callable[..., dict[str, Any]]
) -> None:
    intake = auth_headers(REGISTRATION_INTAKE, org="NRC", sub="partner:nrc-kobo")
    answers = kobo(**{"head/dob": "2091-02-30"})
    assert (
        await registration.post("/intake/kobo", json=answers, headers=intake)
    ).status_code == 422
    others = auth_headers(REGISTRATION_INTAKE, org="PIN", sub="partner:pin-kobo")
    one = f"/intake/submissions/NRC/{answers['meta/instanceID']}"

    read = await registration.get(one, headers=intake)
    assert read.status_code == 200, read.text
    assert (read.json()["status"], [r["field"] for r in read.json()["reasons"]]) == (
        "rejected",
        ["head/dob"],
    )
    rejected = (await registration.get("/intake/rejected", headers=intake)).json()["items"]
    assert answers["meta/instanceID"] in {s["submission_id"] for s in rejected}
    assert {s["partner_org"] for s in rejected} == {"NRC"}
    assert (await registration.get(one, headers=others)).status_code == 404
    households = await registration.get("/households", headers=intake)
    assert households.status_code == 403  # the intake token opens submissions, not households


async def test_a_partner_finds_its_household_again_by_its_own_reference(
    registration: AsyncClient, body: Body
) -> None:
    household = body(
        channel="partner", partner_org="NRC", consents=["registration"], partner_ref="KH-2026-0042"
    )
    created = await registration.post("/households", json=household, headers=NRC)
    assert created.status_code == 201, created.text
    household_id = created.json()["household_id"]

    found = await registration.get(
        "/households", params={"partner_ref": "KH-2026-0042"}, headers=NRC
    )
    assert [h["household_id"] for h in found.json()["items"]] == [household_id]
    assert found.json()["items"][0]["partner_ref"] == "KH-2026-0042"
    read = (await registration.get(f"/households/{household_id}", headers=NRC)).json()
    assert read["partner_ref"] == "KH-2026-0042"
    # Another partner with a reference of the same text finds nothing of NRC's.
    other = await registration.get(
        "/households", params={"partner_ref": "KH-2026-0042"}, headers=PIN
    )
    assert other.json()["items"] == []
