"""Referrals on the real broker and database: out of protection only with consent and without a
narrative, into protection from other sectors, and what consent withdrawal and household merges
change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    CaseSource,
    ConsentPurpose,
    ConsentWithdrawn,
    HouseholdMerged,
    ProtectionCaseClosed,
    ProtectionCaseOpened,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    Sector,
    Urgency,
)
from aidmesh_runtime.testing import publish

pytestmark = pytest.mark.integration

NARRATIVE = "Survivor of an attack at the checkpoint near Izium; she fears the neighbour."
TO_SHELTER = {"to": "shelter", "reason_code": "safe_shelter", "urgency": "priority"}
# Targets no running service answers (a `make up` shelter or health would answer referrals
# to them), for tests that play the target themselves.
LEGAL_CLINIC = "external.legal_clinic"
TO_LEGAL_CLINIC = {"to": LEGAL_CLINIC, "reason_code": "legal_assistance", "urgency": "routine"}


async def outbox_referrals_of(database, household_id: UUID) -> list[str]:
    rows = await database.conn.fetch(
        "SELECT headers FROM outbox WHERE topic = 'aidmesh.referral.v1' AND key = $1 ORDER BY id",
        str(household_id),
    )
    return [dict(json.loads(r["headers"]))["ce_type"] for r in rows]


async def test_a_referral_with_consent_goes_out_with_codes_only_caused_by_the_case(
    as_, register, hotline_case, events, is_event, database
) -> None:
    olena = as_("caseworker")
    household_id = await register(frozenset({"registration", "referral"}))
    case_ref = await hotline_case(olena, narrative=NARRATIVE, household_id=str(household_id))

    response = await olena.post(f"/cases/{case_ref}/referrals", TO_SHELTER)

    assert response.status_code == 201, response.text
    referral_id = UUID(response.json()["referral_id"])
    [seen] = await events.wait_for(
        bool,
        select=lambda r: is_event(r, ReferralRequested, referral_id=referral_id),
        what="ReferralRequested from protection",
    )
    referral = seen.event()
    assert referral.household_id == household_id
    assert (referral.from_sector, referral.to) == (Sector.PROTECTION, "shelter")
    assert (referral.reason_code, referral.urgency) == ("safe_shelter", Urgency.PRIORITY)
    assert referral.consent_purpose is ConsentPurpose.REFERRAL
    assert referral.requested_by == "IOM-PROTECTION"  # the team, never the caseworker
    assert olena.user.encode() not in seen.value
    assert b"Izium" not in seen.value and case_ref.encode() not in seen.value
    assert seen.key == str(household_id).encode()
    opened = await database.conn.fetchval(
        "SELECT opened_envelope->>'id' FROM protection_cases WHERE case_ref = $1", case_ref
    )
    assert str(seen.envelope.causationid) == opened


async def test_a_referral_without_consent_is_refused_with_its_reason_and_nothing_is_published(
    as_, register, hotline_case, events, is_event, database
) -> None:
    olena, supervisor = as_("caseworker"), as_("supervisor")
    household_id = await register(frozenset({"registration", "data_sharing"}))
    case_ref = await hotline_case(olena, household_id=str(household_id))

    response = await olena.post(f"/cases/{case_ref}/referrals", TO_SHELTER)

    assert response.status_code == 409
    assert response.json()["detail"] == {
        "reason": "no_referral_consent",
        "message": "the household has not consented to referrals",
    }
    assert await outbox_referrals_of(database, household_id) == []
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM referrals_out WHERE case_ref = $1", case_ref
        )
        == 0
    )
    # The relay publishes in outbox order: once the case's closure is on Kafka, a referral
    # written before it would be there too.
    await olena.post(f"/cases/{case_ref}/closure", {"closure_code": "declined_services"})
    await supervisor.post(f"/cases/{case_ref}/closure/review", {"decision": "approve"})
    await events.wait_for(
        bool,
        select=lambda r: is_event(r, ProtectionCaseClosed, case_ref=case_ref),
        what="ProtectionCaseClosed (the barrier)",
    )
    assert not [
        r for r in events.records if is_event(r, ReferralRequested, household_id=household_id)
    ]


async def test_an_anonymous_case_cannot_be_referred(as_, hotline_case, database) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena)

    response = await olena.post(f"/cases/{case_ref}/referrals", TO_SHELTER)

    assert response.status_code == 409
    assert response.json()["detail"]["reason"] == "no_household"
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = 'aidmesh.referral.v1' AND headers @> $1::jsonb",
            json.dumps([["ce_subject", case_ref]]),
        )
        == 0
    )


async def test_a_household_protection_does_not_know_is_not_referred(as_, hotline_case) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena, household_id=str(uuid4()))

    response = await olena.post(f"/cases/{case_ref}/referrals", TO_SHELTER)

    assert response.status_code == 409
    assert response.json()["detail"]["reason"] == "household_unknown"


async def test_a_referral_reason_that_would_disclose_the_concern_is_refused(
    as_, register, hotline_case
) -> None:
    olena = as_("caseworker")
    case_ref = await hotline_case(olena, household_id=str(await register()))

    response = await olena.post(
        f"/cases/{case_ref}/referrals", TO_SHELTER | {"reason_code": "gbv_survivor"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason_code"]


async def test_the_targets_answers_are_tracked_on_the_case(
    as_, register, hotline_case, producer, database
) -> None:
    olena = as_("caseworker")
    household_id = await register()
    case_ref = await hotline_case(olena, household_id=str(household_id))
    referral_id = (await olena.post(f"/cases/{case_ref}/referrals", TO_LEGAL_CLINIC)).json()[
        "referral_id"
    ]

    now = datetime.now(UTC)
    await publish(
        producer,
        ReferralAccepted(
            referral_id=referral_id,
            household_id=household_id,
            accepted_by=LEGAL_CLINIC,
            accepted_at=now,
        ),
        source="/aidmesh/tests",
    )
    await database.eventually(
        "SELECT 1 FROM referrals_out WHERE referral_id = $1 AND status = 'accepted'",
        UUID(referral_id),
        what="the referral accepted",
    )
    await publish(
        producer,
        ReferralCompleted(
            referral_id=referral_id,
            household_id=household_id,
            completed_by=LEGAL_CLINIC,
            outcome_code="assisted",
            completed_at=now,
        ),
        source="/aidmesh/tests",
    )
    await database.eventually(
        "SELECT 1 FROM referrals_out WHERE referral_id = $1 AND status = 'completed'",
        UUID(referral_id),
        what="the referral completed",
    )

    [tracked] = (await olena.get(f"/cases/{case_ref}")).json()["referrals_out"]
    assert (tracked["target"], tracked["status"], tracked["answer_code"]) == (
        LEGAL_CLINIC,
        "completed",
        "assisted",
    )


async def test_an_answer_from_another_sector_than_the_target_changes_nothing(
    as_, register, hotline_case, producer, database
) -> None:
    olena = as_("caseworker")
    household_id = await register()
    case_ref = await hotline_case(olena, household_id=str(household_id))
    referral_id = (await olena.post(f"/cases/{case_ref}/referrals", TO_LEGAL_CLINIC)).json()[
        "referral_id"
    ]

    envelope = await publish(
        producer,
        ReferralDeclined(
            referral_id=referral_id,
            household_id=household_id,
            declined_by="shelter",
            reason_code="no_capacity",
            declined_at=datetime.now(UTC),
        ),
        source="/aidmesh/shelter",
    )
    await database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1", envelope.id, what="the answer consumed"
    )

    assert (
        await database.conn.fetchval(
            "SELECT status FROM referrals_out WHERE referral_id = $1", UUID(referral_id)
        )
        == "requested"
    )


async def test_consent_withdrawn_declines_open_referrals_and_stops_new_ones(
    as_, register, hotline_case, producer, ours, database
) -> None:
    olena = as_("caseworker")
    household_id = await register()
    case_ref = await hotline_case(olena, household_id=str(household_id))
    to_cash = {
        "to": "external.cash_partner",
        "reason_code": "cash_assistance",
        "urgency": "routine",
    }
    legal_referral = (await olena.post(f"/cases/{case_ref}/referrals", TO_LEGAL_CLINIC)).json()
    cash_referral = (await olena.post(f"/cases/{case_ref}/referrals", to_cash)).json()

    withdrawn = await publish(
        producer,
        ConsentWithdrawn(
            consent_id=uuid4(),
            household_id=household_id,
            purpose=ConsentPurpose.REFERRAL,
            recorded_by="IOM-KH-03",
            withdrawn_at=datetime.now(UTC),
        ),
        source="/aidmesh/registration",
    )

    declined = [
        await ours(ReferralDeclined, referral_id=UUID(referral["referral_id"]))
        for referral in (legal_referral, cash_referral)
    ]
    assert {r.event().reason_code for r in declined} == {"consent_withdrawn"}
    assert {r.envelope.causationid for r in declined} == {withdrawn.id}
    assert await database.conn.fetchval(
        "SELECT array_agg(DISTINCT status) FROM referrals_out WHERE case_ref = $1", case_ref
    ) == ["withdrawn"]
    again = await olena.post(f"/cases/{case_ref}/referrals", TO_SHELTER)
    assert again.status_code == 409
    assert again.json()["detail"]["reason"] == "no_referral_consent"
    # The case itself stays open: case management is not a referral.
    assert (await olena.get(f"/cases/{case_ref}")).json()["status"] == "intake"


async def test_a_merge_repoints_cases_and_referrals_go_to_the_household_that_stays(
    as_, register, hotline_case, producer, database, events, is_event
) -> None:
    olena = as_("caseworker")
    merged, survivor = await register(), await register()
    case_ref = await hotline_case(olena, household_id=str(merged))

    envelope = await publish(
        producer,
        HouseholdMerged(
            household_id=survivor,
            merged_household_id=merged,
            decided_by="IOM-KH-03",
            merged_at=datetime.now(UTC),
        ),
        source="/aidmesh/registration",
    )
    await database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1", envelope.id, what="the merge consumed"
    )

    assert (
        await database.conn.fetchval(
            "SELECT household_id FROM protection_cases WHERE case_ref = $1", case_ref
        )
        == survivor
    )
    response = await olena.post(f"/cases/{case_ref}/referrals", TO_SHELTER)
    assert response.status_code == 201
    assert response.json()["household_id"] == str(survivor)


# ---- referrals to protection -------------------------------------------------------------


def referral_to_protection(
    household_id: UUID, *, urgency: Urgency = Urgency.EMERGENCY
) -> ReferralRequested:
    return ReferralRequested(
        referral_id=uuid4(),
        household_id=household_id,
        from_sector=Sector.HEALTH,
        to="protection",
        reason_code="gbv_disclosure",
        urgency=urgency,
        consent_purpose=ConsentPurpose.REFERRAL,
        requested_by="MMT-KH-01",
        requested_at=datetime.now(UTC),
    )


async def test_a_referral_from_health_opens_a_case_and_is_accepted(
    register, producer, ours, database
) -> None:
    household_id = await register()
    referral = referral_to_protection(household_id)

    envelope = await publish(producer, referral, source="/aidmesh/health")

    accepted = await ours(ReferralAccepted, referral_id=referral.referral_id)
    assert accepted.event().accepted_by == "protection"
    assert accepted.envelope.causationid == envelope.id
    case_ref = await database.conn.fetchval(
        "SELECT case_ref FROM referrals_in WHERE referral_id = $1", referral.referral_id
    )
    opened = await ours(ProtectionCaseOpened, case_ref=case_ref)
    assert opened.envelope.causationid == envelope.id
    case = opened.event()
    assert (case.source, case.household_id, case.severity) == (CaseSource.REFERRAL, household_id, 5)
    assert case.concern_codes == {"gbv_disclosure"}


async def test_a_referral_for_a_household_without_referral_consent_is_declined(
    register, producer, ours, database
) -> None:
    household_id = await register(frozenset({"registration"}))
    referral = referral_to_protection(household_id)

    await publish(producer, referral, source="/aidmesh/health")

    declined = await ours(ReferralDeclined, referral_id=referral.referral_id)
    assert (declined.event().declined_by, declined.event().reason_code) == (
        "protection",
        "no_referral_consent",
    )
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM protection_cases WHERE household_id = $1", household_id
        )
        == 0
    )


async def test_a_second_referral_joins_the_households_open_case(
    register, producer, database
) -> None:
    household_id = await register()
    first, second = referral_to_protection(household_id), referral_to_protection(household_id)

    await publish(producer, first, source="/aidmesh/health")
    await publish(producer, second, source="/aidmesh/health")

    rows = [
        await database.eventually(
            "SELECT case_ref, status FROM referrals_in WHERE referral_id = $1",
            referral.referral_id,
            what="the referral answered",
        )
        for referral in (first, second)
    ]
    assert [r["status"] for r in rows] == ["accepted", "accepted"]
    assert rows[0]["case_ref"] == rows[1]["case_ref"]
    assert (
        await database.conn.fetchval(
            "SELECT count(*) FROM protection_cases WHERE household_id = $1", household_id
        )
        == 1
    )


async def test_closing_a_referred_case_completes_the_referral(
    as_, register, producer, ours, database
) -> None:
    supervisor, olena = as_("supervisor"), as_("caseworker")
    household_id = await register()
    referral = referral_to_protection(household_id, urgency=Urgency.ROUTINE)
    await publish(producer, referral, source="/aidmesh/health")
    row = await database.eventually(
        "SELECT case_ref FROM referrals_in WHERE referral_id = $1",
        referral.referral_id,
        what="the referral accepted",
    )
    path = f"/cases/{row['case_ref']}"
    await supervisor.post(path + "/assignment", {"caseworker": olena.user})
    await olena.post(path + "/closure", {"closure_code": "referred"})

    closed = await supervisor.post(path + "/closure/review", {"decision": "approve"})

    assert closed.json()["status"] == "closed"
    completed = await ours(ReferralCompleted, referral_id=referral.referral_id)
    assert (completed.event().completed_by, completed.event().outcome_code) == (
        "protection",
        "case_closed",
    )
