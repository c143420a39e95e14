"""Referrals and household changes on the real broker and database: health refers with
consent only, follows the target's answers, takes referrals to health on (or declines them
with the reason), withdraws its referrals when consent goes, and follows merges.

Each test works in oblasts of its own; see test_scheduling for why only this health's own
rows and records are looked at.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    ConsentPurpose,
    ConsentWithdrawn,
    HouseholdMerged,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    Sector,
    Urgency,
    VisitCompleted,
    VisitMissed,
    VisitScheduled,
)
from aidmesh_runtime.testing import publish

pytestmark = pytest.mark.integration


async def visit_of(world, oblast: str, *, consents=("registration", "referral")):
    household, registered = await world.household(oblast, consents=consents)
    need, _ = await world.need(household, registered)
    return household, await world.visit_for(need)


async def refer(health, visit_id: UUID, **body: str):
    return await health.post(
        f"/visits/{visit_id}/referrals",
        json={"to": "external.rehabilitation_centre", "reason_code": "rehabilitation"} | body,
    )


def referral_to_health(household_id: UUID, *, urgency: Urgency = Urgency.PRIORITY):
    return ReferralRequested(
        referral_id=uuid4(),
        household_id=household_id,
        from_sector=Sector.PROTECTION,
        to="health",
        reason_code="mhpss",
        urgency=urgency,
        consent_purpose=ConsentPurpose.REFERRAL,
        requested_by="IOM-PRT-01",
        requested_at=datetime.now(UTC),
    )


async def referral_status(health, referral_id: UUID) -> dict:
    listed = (await health.get("/referrals")).json()
    return next(r for r in listed if r["referral_id"] == str(referral_id))


async def test_a_referral_with_consent_is_requested_on_the_referral_topic(world, health) -> None:
    await world.team("MMT-KH-11", "UA90", capacity=10)
    household, visit = await visit_of(world, "UA90")
    [scheduled] = await world.published(VisitScheduled, visit_id=visit["visit_id"])

    response = await refer(
        health,
        visit["visit_id"],
        to="protection",
        reason_code="suspected_violence",
        urgency="emergency",
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["direction"], body["status"], body["to"]) == (
        "outgoing",
        "requested",
        "protection",
    )
    [seen] = await world.published(ReferralRequested, referral_id=body["referral_id"])
    requested = seen.event()
    assert isinstance(requested, ReferralRequested)
    assert (requested.household_id, requested.from_sector, requested.to) == (
        household.household_id,
        Sector.HEALTH,
        "protection",
    )
    assert (requested.reason_code, requested.urgency) == ("suspected_violence", Urgency.EMERGENCY)
    assert (requested.consent_purpose, requested.requested_by) == (
        ConsentPurpose.REFERRAL,
        "MMT-KH-11",
    )
    assert seen.topic == "aidmesh.referral.v1"
    assert seen.envelope is not None and scheduled.envelope is not None
    assert seen.envelope.causationid == scheduled.envelope.id


async def test_a_referral_without_consent_is_refused_with_the_reason_and_nothing_is_sent(
    world, health, events
) -> None:
    await world.team("MMT-KH-12", "UA90", capacity=10)
    household, visit = await visit_of(world, "UA90", consents=("registration", "data_sharing"))

    refused = await refer(health, visit["visit_id"], to="protection", reason_code="gbv_support")

    assert refused.status_code == 409
    assert refused.json()["detail"]["reason"] == "consent_missing"
    assert await world.outbox_count(ReferralRequested, household_id=household.household_id) == 0
    assert not await world.database.conn.fetchval(
        "SELECT count(*) FROM referrals WHERE household_id = $1", household.household_id
    )
    # A referral made afterwards reaches Kafka (the relay keeps order): none before it did.
    _, consenting_visit = await visit_of(world, "UA90")
    marker = await refer(health, consenting_visit["visit_id"])
    await world.published(ReferralRequested, referral_id=marker.json()["referral_id"])
    assert not [
        r
        for r in events.records
        if r.topic == ReferralRequested.topic and r.key == str(household.household_id).encode()
    ]


async def test_the_targets_answers_to_a_referral_are_tracked(world, health, producer) -> None:
    await world.team("MMT-KH-13", "UA90", capacity=10)
    household, visit = await visit_of(world, "UA90")
    made = (await refer(health, visit["visit_id"])).json()
    referral_id = UUID(made["referral_id"])
    target = "external.rehabilitation_centre"
    stranger = ReferralDeclined(
        referral_id=referral_id,
        household_id=household.household_id,
        declined_by="shelter",
        reason_code="not_eligible",
        declined_at=datetime.now(UTC),
    )
    accepted = ReferralAccepted(
        referral_id=referral_id,
        household_id=household.household_id,
        accepted_by=target,
        accepted_at=datetime.now(UTC),
    )
    completed = ReferralCompleted(
        referral_id=referral_id,
        household_id=household.household_id,
        completed_by=target,
        outcome_code="service_provided",
        completed_at=datetime.now(UTC),
    )

    for answer in (stranger, accepted, completed):
        envelope = await publish(producer, answer, source="/aidmesh/partners")
        await world.database.eventually(
            "SELECT 1 FROM inbox WHERE event_id = $1", envelope.id, what="the answer consumed"
        )
        if answer is accepted:
            assert (await referral_status(health, referral_id))["status"] == "accepted"

    final = await referral_status(health, referral_id)
    assert (final["status"], final["status_reason"]) == ("completed", "service_provided")


async def test_a_referral_to_health_is_accepted_scheduled_and_completed_back(
    world, health, producer
) -> None:
    await world.team("MMT-SU-01", "UA91", capacity=5)
    household, _ = await world.household("UA91", vulnerabilities=("elderly_headed",))
    referral = referral_to_health(household.household_id)

    referral_envelope = await publish(producer, referral, source="/aidmesh/protection")

    [accepted] = await world.published(ReferralAccepted, referral_id=referral.referral_id)
    assert accepted.event().accepted_by == "health"  # type: ignore[attr-defined]
    assert accepted.envelope is not None and accepted.envelope.causationid == referral_envelope.id
    visit = await world.database.eventually(
        "SELECT v.* FROM visits v JOIN visit_requests r USING (request_id)"
        " WHERE r.referral_id = $1",
        referral.referral_id,
        what="the visit for the referral",
    )
    [scheduled] = await world.published(VisitScheduled, visit_id=visit["visit_id"])
    assert scheduled.envelope is not None
    assert scheduled.envelope.causationid == referral_envelope.id
    assert scheduled.event().services_planned == {"mhpss"}  # type: ignore[attr-defined]
    assert (await referral_status(health, referral.referral_id))["direction"] == "incoming"

    done = await health.post(
        f"/visits/{visit['visit_id']}/completion",
        json={"services_delivered": ["mhpss"], "persons_seen": 1},
    )

    assert done.status_code == 200
    [completed] = await world.published(ReferralCompleted, referral_id=referral.referral_id)
    [visit_completed] = await world.published(VisitCompleted, visit_id=visit["visit_id"])
    assert completed.event().outcome_code == "service_provided"  # type: ignore[attr-defined]
    assert completed.envelope is not None and visit_completed.envelope is not None
    assert completed.envelope.causationid == visit_completed.envelope.id
    assert (await referral_status(health, referral.referral_id))["status"] == "completed"


@pytest.mark.parametrize(
    ("oblast", "consents", "reason"),
    [
        ("UA92", ("registration", "referral"), "no_team_for_area"),
        ("UA91", ("registration",), "consent_missing"),
    ],
)
async def test_a_referral_to_health_is_declined_with_the_reason(
    world, producer, oblast: str, consents: tuple[str, ...], reason: str
) -> None:
    await world.team("MMT-SU-02", "UA91", capacity=5)
    household, _ = await world.household(oblast, consents=consents)
    referral = referral_to_health(household.household_id)

    await publish(producer, referral, source="/aidmesh/protection")

    [declined] = await world.published(ReferralDeclined, referral_id=referral.referral_id)
    assert declined.event().reason_code == reason  # type: ignore[attr-defined]
    assert declined.event().declined_by == "health"  # type: ignore[attr-defined]
    assert not await world.database.conn.fetchval(
        "SELECT count(*) FROM visit_requests WHERE referral_id = $1", referral.referral_id
    )


async def test_a_referral_to_health_that_arrives_before_its_household_waits_for_it(
    world, producer
) -> None:
    await world.team("MMT-SU-03", "UA91", capacity=5)
    household_id = uuid4()
    referral = referral_to_health(household_id)
    referral_envelope = await publish(producer, referral, source="/aidmesh/protection")
    await world.database.eventually(
        "SELECT 1 FROM inbox WHERE event_id = $1", referral_envelope.id, what="the referral"
    )
    assert await world.outbox_count(ReferralAccepted, referral_id=referral.referral_id) == 0

    household, _ = await world.household("UA91")
    assert household.household_id != household_id  # another household: still waiting
    assert await world.outbox_count(ReferralAccepted, referral_id=referral.referral_id) == 0
    late, _ = await world.household("UA91", household_id=household_id)

    [accepted] = await world.published(ReferralAccepted, referral_id=referral.referral_id)
    assert accepted.envelope is not None and accepted.envelope.causationid == referral_envelope.id
    assert late.household_id == household_id


async def test_withdrawn_referral_consent_withdraws_open_referrals_and_stops_new_ones(
    world, health, producer
) -> None:
    await world.team("MMT-CH-01", "UA92", capacity=5)
    household, visit = await visit_of(world, "UA92")
    made = (await refer(health, visit["visit_id"])).json()
    withdrawal = ConsentWithdrawn(
        consent_id=uuid4(),
        household_id=household.household_id,
        purpose=ConsentPurpose.REFERRAL,
        recorded_by="IOM-KH-03",
        withdrawn_at=datetime.now(UTC),
    )

    withdrawn_envelope = await publish(producer, withdrawal)

    [declined] = await world.published(ReferralDeclined, referral_id=made["referral_id"])
    assert declined.event().reason_code == "consent_withdrawn"  # type: ignore[attr-defined]
    assert declined.envelope is not None
    assert declined.envelope.causationid == withdrawn_envelope.id
    status = await referral_status(health, UUID(made["referral_id"]))
    assert (status["status"], status["status_reason"]) == ("withdrawn", "consent_withdrawn")
    refused = await refer(health, visit["visit_id"], to="protection", reason_code="mhpss")
    assert refused.status_code == 409
    assert refused.json()["detail"]["reason"] == "consent_missing"


async def test_a_merge_repoints_visits_and_referrals_and_cancels_the_duplicate_visit(
    world, health, producer, database
) -> None:
    await world.team("MMT-CK-01", "UA93", capacity=1)
    survivor, survivor_visit = await visit_of(world, "UA93")
    merged, merged_visit = await visit_of(world, "UA93")  # the same services, a day later
    referral = (await refer(health, merged_visit["visit_id"])).json()
    merge = HouseholdMerged(
        household_id=survivor.household_id,
        merged_household_id=merged.household_id,
        decided_by="IOM-KH-03",
        merged_at=datetime.now(UTC),
    )

    merge_envelope = await publish(producer, merge)

    [cancelled] = await world.published(VisitMissed, visit_id=merged_visit["visit_id"])
    assert cancelled.event().reason_code == "duplicate_after_merge"  # type: ignore[attr-defined]
    assert cancelled.event().household_id == survivor.household_id  # type: ignore[attr-defined]
    assert cancelled.envelope is not None
    assert cancelled.envelope.causationid == merge_envelope.id
    visits = {
        row["visit_id"]: (row["household_id"], row["status"])
        for row in await database.conn.fetch(
            "SELECT visit_id, household_id, status FROM visits WHERE visit_id = ANY($1::uuid[])",
            [survivor_visit["visit_id"], merged_visit["visit_id"]],
        )
    }
    assert visits == {
        survivor_visit["visit_id"]: (survivor.household_id, "scheduled"),
        merged_visit["visit_id"]: (survivor.household_id, "cancelled"),
    }
    moved = await referral_status(health, UUID(referral["referral_id"]))
    assert moved["household_id"] == str(survivor.household_id)
    assert not await database.conn.fetchval(
        "SELECT count(*) FROM visit_requests WHERE household_id = $1", merged.household_id
    )
