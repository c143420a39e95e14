"""Shelter's API on the real broker and database answers only bearer tokens its issuer
signed, still valid, with the scope each call needs; who did the work a call records is
the token's organisation (ADR 0009)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aidmesh_contracts import AssistanceDelivered, DamageAssessed, DamageLevel, RepairCompleted
from aidmesh_runtime.auth import SHELTER_READ, SHELTER_WRITE
from aidmesh_runtime.testing import auth_headers, bearer, send_without_token, session_token
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.integration

CENTRE = {"name": "Гуртожиток №3", "location": {"adm1_pcode": "UA63"}, "capacity": 40}


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


# ---- who did the work ----------------------------------------------------------------------


def dobro() -> dict[str, str]:
    """NGO Dobro's shelter officer: shelter:write, and no scope to record for others."""
    return auth_headers(SHELTER_READ, SHELTER_WRITE, org="NGO-DOBRO", sub="partner:ngo-dobro")


def in_another_name(field: str, named: str) -> dict[str, str]:
    return {
        "detail": f"{field} is {named} but the token is for NGO-DOBRO: a call is attributed to"
        " its token's organisation (naming another one needs scope shelter:record-for-partners)"
    }


async def test_a_delivery_in_another_organisation_s_name_is_refused_and_nothing_is_stored(
    flows, database
) -> None:
    household, _ = await flows.register(displacement_status="idp")
    home = f"/households/{household.household_id}"

    kits = await flows.http.post(
        home + "/winterization-kits", json={"partner_org": "NRC"}, headers=dobro()
    )
    rent = await flows.http.post(
        home + "/rental-assistance",
        json={"monthly_amount_uah": "4500.00", "months": 3, "partner_org": "NRC"},
        headers=dobro(),
    )

    for refused in (kits, rent):
        assert (refused.status_code, refused.json()) == (403, in_another_name("partner_org", "NRC"))
        assert 'scope="shelter:record-for-partners"' in refused.headers["www-authenticate"]
    stored = await database.conn.fetchval(
        "SELECT count(*) FROM deliveries WHERE household_id = $1", household.household_id
    )
    assert stored == 0
    assert await flows.count(AssistanceDelivered, household_id=household.household_id) == 0
    # Naming no one, the kits are NGO Dobro's own delivery.
    own = await flows.http.post(home + "/winterization-kits", json={}, headers=dobro())
    assert own.status_code == 201, own.text
    delivered, _ = await flows.published(AssistanceDelivered, household_id=household.household_id)
    assert (own.json()["partner_org"], delivered.partner_org) == ("NGO-DOBRO", "NGO-DOBRO")


async def test_a_repair_completed_in_another_organisation_s_name_is_refused_and_stays_planned(
    flows,
) -> None:
    case = await flows.planned_case()

    refused = await flows.complete(case.case_id, partner_org="NRC", headers=dobro())

    assert (refused.status_code, refused.json()) == (403, in_another_name("partner_org", "NRC"))
    assert await flows.case_status(case.case_id) == "planned"
    assert await flows.count(RepairCompleted, case_id=case.case_id) == 0
    assert await flows.count(AssistanceDelivered, household_id=case.household.household_id) == 0


async def test_an_assessment_or_a_follow_up_in_another_team_s_name_is_refused(flows) -> None:
    case = await flows.open_case(DamageLevel.LIGHT)
    household, _ = await flows.register()
    kits = await flows.http.post(
        f"/households/{household.household_id}/winterization-kits", json={}
    )
    assert kits.status_code == 201, kits.text
    follow_up = f"/deliveries/{kits.json()['delivery_id']}/monitoring"

    assessment = await flows.http.post(
        f"/cases/{case.case_id}/assessment",
        json={"damage_level": "heavy", "assessed_by": "ENG-KH-01", "boq": []},
        headers=dobro(),
    )
    monitoring = await flows.http.post(
        follow_up, json={"received": True, "monitored_by": "PDM-KH-01"}, headers=dobro()
    )

    assert (assessment.status_code, assessment.json()) == (
        403,
        in_another_name("assessed_by", "ENG-KH-01"),
    )
    assert (monitoring.status_code, monitoring.json()) == (
        403,
        in_another_name("monitored_by", "PDM-KH-01"),
    )
    row = await flows.case_row(case.case_id)
    assert (row["status"], row["assessed_by"]) == ("open", None)
    assert await flows.count(DamageAssessed, case_id=case.case_id) == 0
    assert (await flows.http.get(follow_up)).status_code == 404


async def test_a_coordinator_who_may_record_for_partners_records_what_a_partner_delivered(
    flows,
) -> None:
    household, _ = await flows.register()

    response = await flows.http.post(
        f"/households/{household.household_id}/winterization-kits",
        json={"partner_org": "NRC"},
        headers=flows.coordinator(),
    )

    assert response.status_code == 201, response.text
    delivered, _ = await flows.published(AssistanceDelivered, household_id=household.household_id)
    assert (response.json()["partner_org"], delivered.partner_org) == ("NRC", "NRC")


@pytest.mark.parametrize("path", ["/cases", "/facilities"])
async def test_an_offset_beyond_what_the_database_holds_is_refused_by_name(shelter, path) -> None:
    response = await shelter.get(
        path, params={"offset": str(2**63)}, headers=auth_headers(SHELTER_READ)
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]
