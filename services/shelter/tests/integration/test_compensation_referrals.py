"""Heavy damage on the real broker and database: referred to the state compensation
programme only with the household's consent, followed up until the programme's answer, and
withdrawn when the household withdraws its consent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aidmesh_contracts import (
    DamageAssessed,
    DamageLevel,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    RepairPlanned,
    Sector,
    ShelterCaseClosed,
    Urgency,
)
from aidmesh_runtime.testing import publish

pytestmark = pytest.mark.integration

NO_REFERRAL = frozenset({"registration", "data_sharing"})


async def referred_case(flows):  # -> tuple[OpenCase, ReferralRequested]
    case = await flows.open_case(DamageLevel.HEAVY, severity=5)
    response = await flows.assess(case.case_id, "heavy", [])
    assert response.status_code == 200, response.text
    referral, _ = await flows.published(ReferralRequested, household_id=case.household.household_id)
    return case, referral


async def test_heavy_damage_is_referred_to_state_compensation_and_the_case_stays_open(
    flows, shelter
) -> None:
    case = await flows.open_case(
        DamageLevel.HEAVY, severity=5, vulnerabilities=frozenset({"disability"})
    )

    response = await flows.assess(case.case_id, "heavy", [])

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["referred_to"], body["waiting_for"]) == (
        "referred",
        "external.state_compensation",
        None,
    )
    referral, seen = await flows.published(
        ReferralRequested, household_id=case.household.household_id
    )
    _, assessed = await flows.published(DamageAssessed, case_id=case.case_id)
    assert seen.topic == "aidmesh.referral.v1"
    assert seen.envelope.causationid == assessed.envelope.id
    assert seen.envelope.correlationid == case.registered.correlationid
    assert str(referral.referral_id) == body["referral_id"]
    assert (referral.from_sector, referral.to, referral.reason_code) == (
        Sector.SHELTER,
        "external.state_compensation",
        "heavy_damage",
    )
    assert (referral.consent_purpose, referral.urgency) == ("referral", Urgency.PRIORITY)
    listed = (await shelter.get("/cases", params={"status": "referred", "oblast": "UA63"})).json()
    mine = next(c for c in listed if c["case_id"] == str(case.case_id))
    assert mine["referral"] == {
        "referral_id": body["referral_id"],
        "to": "external.state_compensation",
        "status": "requested",
        "outcome_code": None,
    }


async def test_heavy_damage_without_consent_waits_and_the_api_says_so(flows, shelter) -> None:
    case = await flows.open_case(DamageLevel.HEAVY, consents=NO_REFERRAL)

    response = await flows.assess(case.case_id, "heavy", [])

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "awaiting_consent"
    assert response.json()["waiting_for"] == "the household has not consented to referral"
    assert response.json()["referral_id"] is None
    await flows.published(DamageAssessed, case_id=case.case_id)
    assert await flows.count(ReferralRequested, household_id=case.household.household_id) == 0
    detail = (await shelter.get(f"/cases/{case.case_id}")).json()
    assert detail["status"] == "awaiting_consent"
    assert detail["waiting_for"] == (
        "the household's consent (referral) before it is referred to external.state_compensation"
    )


async def test_a_case_waiting_for_consent_is_referred_once_the_consent_is_recorded(
    flows,
) -> None:
    case = await flows.open_case(DamageLevel.HEAVY, consents=NO_REFERRAL)
    await flows.assess(case.case_id, "heavy", [])

    consent = await flows.consent(case.household.household_id, "referral", given=True)

    referral, seen = await flows.published(
        ReferralRequested, household_id=case.household.household_id
    )
    assert seen.envelope.causationid == consent.id
    assert referral.requested_by == "ENG-KH-01"
    assert await flows.case_status(case.case_id) == "referred"


async def test_a_heavy_damage_case_is_not_planned_as_a_repair(flows) -> None:
    case, _ = await referred_case(flows)

    response = await flows.plan(case.case_id)

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"case {case.case_id} is referred: only an assessed case can be planned"
    )
    assert await flows.count(RepairPlanned, case_id=case.case_id) == 0


async def test_the_programme_s_outcome_recorded_by_a_coordinator_closes_the_case(
    flows, shelter
) -> None:
    case, referral = await referred_case(flows)

    response = await shelter.post(
        f"/cases/{case.case_id}/referral-outcome",
        json={"outcome": "completed", "code": "compensation_paid"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["close_reason"] == "compensated"
    completed, completed_seen = await flows.published(
        ReferralCompleted, referral_id=referral.referral_id
    )
    closed, closed_seen = await flows.published(ShelterCaseClosed, case_id=case.case_id)
    assert (completed.completed_by, completed.outcome_code) == (
        "external.state_compensation",
        "compensation_paid",
    )
    assert closed.reason_code == "compensated"
    assert closed_seen.envelope.causationid == completed_seen.envelope.id
    assert await flows.case_status(case.case_id) == "closed"
    again = await shelter.post(
        f"/cases/{case.case_id}/referral-outcome",
        json={"outcome": "declined", "code": "not_eligible"},
    )
    assert again.status_code == 409
    assert "it has no open referral" in again.json()["detail"]


async def test_the_programme_s_answer_from_the_topic_closes_the_case(flows, producer) -> None:
    case, referral = await referred_case(flows)
    accepted = ReferralAccepted(
        referral_id=referral.referral_id,
        household_id=referral.household_id,
        accepted_by="external.state_compensation",
        accepted_at=datetime.now(UTC),
    )
    declined = ReferralDeclined(
        referral_id=referral.referral_id,
        household_id=referral.household_id,
        declined_by="external.state_compensation",
        reason_code="not_eligible",
        declined_at=datetime.now(UTC),
    )

    await publish(producer, accepted, source="/partners/state-compensation")
    answer = await publish(producer, declined, source="/partners/state-compensation")

    closed, seen = await flows.published(ShelterCaseClosed, case_id=case.case_id)
    assert closed.reason_code == "compensation_declined"
    assert seen.envelope.causationid == answer.id
    row = await flows.database.conn.fetchrow(
        "SELECT status, outcome_code FROM referrals WHERE referral_id = $1", referral.referral_id
    )
    assert (row["status"], row["outcome_code"]) == ("declined", "not_eligible")


async def test_withdrawn_consent_withdraws_the_open_referral_and_nothing_more_is_referred(
    flows,
) -> None:
    case, referral = await referred_case(flows)

    withdrawal = await flows.consent(case.household.household_id, "referral", given=False)

    declined, seen = await flows.published(ReferralDeclined, referral_id=referral.referral_id)
    assert (declined.declined_by, declined.reason_code) == ("shelter", "consent_withdrawn")
    assert seen.envelope.causationid == withdrawal.id
    assert await flows.case_status(case.case_id) == "awaiting_consent"
    # Another consent is not consent to referral: nothing is referred again.
    other = await flows.consent(case.household.household_id, "data_sharing", given=True)
    await flows.handled(other)
    assert await flows.count(ReferralRequested, household_id=case.household.household_id) == 1
    assert await flows.case_status(case.case_id) == "awaiting_consent"


async def test_withdrawing_data_sharing_also_stops_the_referral_until_consent_is_given_again(
    flows,
) -> None:
    case, referral = await referred_case(flows)

    await flows.consent(case.household.household_id, "data_sharing", given=False)
    await flows.published(ReferralDeclined, referral_id=referral.referral_id)
    await flows.consent(case.household.household_id, "data_sharing", given=True)

    await flows.database.eventually(
        "SELECT 1 FROM referrals WHERE case_id = $1 AND status = 'requested'",
        case.case_id,
        timeout_s=120,
        what="a new referral once data sharing is consented again",
    )
    referrals = [
        r.event.referral_id
        for r in await flows.outbox(ReferralRequested)
        if r.event.household_id == case.household.household_id
    ]
    assert len(referrals) == 2 and referrals[0] == referral.referral_id
    assert await flows.case_status(case.case_id) == "referred"
