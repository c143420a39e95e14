"""Referrals to shelter from other sectors, and merged households, on the real broker and
database: a referral opens a case only with consent; a merge moves the duplicate's cases and
deliveries to the household that stays."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    DamageLevel,
    HouseholdMerged,
    ReferralAccepted,
    ReferralDeclined,
    ReferralRequested,
    Sector,
    ShelterCaseClosed,
    ShelterCaseOpened,
    Urgency,
)
from aidmesh_runtime.testing import publish

pytestmark = pytest.mark.integration


def referral_to(household_id: UUID, to: str = "shelter") -> ReferralRequested:
    return ReferralRequested(
        referral_id=uuid4(),
        household_id=household_id,
        from_sector=Sector.PROTECTION,
        to=to,
        reason_code="unsafe_housing",
        urgency=Urgency.PRIORITY,
        consent_purpose="referral",
        requested_by="PRT-KH-02",
        requested_at=datetime.now(UTC),
    )


async def test_a_referral_from_another_sector_opens_a_case_and_is_accepted(flows, producer) -> None:
    household, _ = await flows.register()
    referral = referral_to(household.household_id)

    sent = await publish(producer, referral, source="/aidmesh/protection")

    opened, opened_seen = await flows.published(
        ShelterCaseOpened, household_id=household.household_id
    )
    accepted, accepted_seen = await flows.published(
        ReferralAccepted, referral_id=referral.referral_id
    )
    assert (opened.need_assessment_id, opened.damage_level, opened.severity) == (
        None,
        DamageLevel.UNKNOWN,
        4,
    )
    assert accepted.accepted_by == "shelter"
    assert opened_seen.envelope.causationid == sent.id
    assert accepted_seen.envelope.causationid == sent.id
    assert accepted_seen.topic == "aidmesh.referral.v1"
    row = await flows.case_row(opened.case_id)
    assert (row["status"], row["referral_id"]) == ("open", referral.referral_id)


async def test_a_referral_without_the_household_s_consent_is_declined_and_opens_no_case(
    flows, producer
) -> None:
    household, _ = await flows.register(consents=frozenset({"registration", "data_sharing"}))
    referral = referral_to(household.household_id)

    await publish(producer, referral, source="/aidmesh/protection")

    declined, _ = await flows.published(ReferralDeclined, referral_id=referral.referral_id)
    assert (declined.declined_by, declined.reason_code) == ("shelter", "consent_missing")
    assert await flows.count(ShelterCaseOpened, household_id=household.household_id) == 0
    assert await flows.count(ReferralAccepted, referral_id=referral.referral_id) == 0


async def test_a_referral_that_arrives_before_its_household_waits_for_it(flows, producer) -> None:
    household = flows.household()
    referral = referral_to(household.household_id)
    sent = await publish(producer, referral, source="/aidmesh/protection")
    await flows.handled(sent)
    assert await flows.count(ReferralAccepted, referral_id=referral.referral_id) == 0

    await publish(producer, household)

    accepted, _ = await flows.published(ReferralAccepted, referral_id=referral.referral_id)
    assert accepted.household_id == household.household_id
    await flows.published(ShelterCaseOpened, household_id=household.household_id)


async def test_a_referral_to_another_sector_is_not_shelter_s_business(flows, producer) -> None:
    household, _ = await flows.register()
    referral = referral_to(household.household_id, to="health")

    sent = await publish(producer, referral, source="/aidmesh/protection")
    await flows.handled(sent)

    assert [p for p in await flows.outbox() if p.envelope.causationid == sent.id] == []
    assert await flows.count(ShelterCaseOpened, household_id=household.household_id) == 0


def merge(survivor: UUID, merged: UUID) -> HouseholdMerged:
    return HouseholdMerged(
        household_id=survivor,
        merged_household_id=merged,
        decided_by="IOM-KH",
        merged_at=datetime.now(UTC),
    )


async def test_a_merge_keeps_the_older_case_and_closes_the_duplicate_s_as_merged(
    flows, producer
) -> None:
    older = await flows.open_case(DamageLevel.LIGHT)
    newer = await flows.open_case(DamageLevel.MEDIUM)
    survivor = older.household.household_id

    merged = await publish(producer, merge(survivor, newer.household.household_id))

    closed, seen = await flows.published(ShelterCaseClosed, case_id=newer.case_id)
    assert (closed.household_id, closed.reason_code) == (survivor, "merged")
    assert seen.envelope.causationid == merged.id
    assert seen.key == str(survivor).encode()
    kept, gone = await flows.case_row(older.case_id), await flows.case_row(newer.case_id)
    assert (kept["household_id"], kept["status"]) == (survivor, "open")
    assert (gone["household_id"], gone["status"], gone["close_reason"]) == (
        survivor,
        "closed",
        "merged",
    )
    assert await flows.count(ShelterCaseClosed, case_id=older.case_id) == 0


async def test_a_merge_re_points_the_duplicate_s_only_case_to_the_household_that_stays(
    flows, producer
) -> None:
    survivor, _ = await flows.register()
    duplicate = await flows.open_case(DamageLevel.LIGHT)

    await flows.handled(
        await publish(producer, merge(survivor.household_id, duplicate.household.household_id))
    )

    row = await flows.case_row(duplicate.case_id)
    assert (row["household_id"], row["status"]) == (survivor.household_id, "open")
    assert await flows.count(ShelterCaseClosed, case_id=duplicate.case_id) == 0


async def test_a_need_for_a_merged_registration_opens_the_case_of_the_household_that_stays(
    flows, producer
) -> None:
    survivor, _ = await flows.register()
    duplicate, _ = await flows.register()
    await flows.handled(
        await publish(producer, merge(survivor.household_id, duplicate.household_id))
    )

    need, _ = await flows.need(duplicate.household_id, DamageLevel.LIGHT)

    opened, seen = await flows.published(ShelterCaseOpened, need_assessment_id=need.assessment_id)
    assert opened.household_id == survivor.household_id
    assert seen.key == str(survivor.household_id).encode()


async def test_a_merge_withdraws_the_duplicate_case_s_open_referral(flows, producer) -> None:
    older = await flows.open_case(DamageLevel.LIGHT)
    heavy = await flows.open_case(DamageLevel.HEAVY)
    assert (await flows.assess(heavy.case_id, "heavy", [])).json()["status"] == "referred"
    referral, _ = await flows.published(
        ReferralRequested, household_id=heavy.household.household_id
    )

    await publish(producer, merge(older.household.household_id, heavy.household.household_id))

    declined, _ = await flows.published(ReferralDeclined, referral_id=referral.referral_id)
    assert (declined.declined_by, declined.reason_code) == ("shelter", "merged")
    await flows.published(ShelterCaseClosed, case_id=heavy.case_id)


async def test_a_merge_read_before_the_duplicate_s_registration_still_binds_it(
    flows, producer
) -> None:
    # The merge is keyed by the household that stays, the duplicate's registration by its
    # own id: on different partitions, a lagging consumer may read the merge first.
    survivor, _ = await flows.register()
    duplicate = flows.household()
    await flows.handled(
        await publish(producer, merge(survivor.household_id, duplicate.household_id))
    )
    await publish(producer, duplicate)
    await flows.projected(duplicate.household_id)

    need, _ = await flows.need(duplicate.household_id, DamageLevel.MEDIUM)

    opened, _ = await flows.published(ShelterCaseOpened, need_assessment_id=need.assessment_id)
    assert opened.household_id == survivor.household_id
