"""Assistance without a household case, on the real broker and database: winterization kits
and rental assistance once per heating season, collective-centre refurbishment, and the
follow-up of each delivery. The service's clock is set by the tests (the season depends on it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    AssistanceDelivered,
    FacilityCaseOpened,
    HouseholdMerged,
    Location,
    Modality,
    Sector,
)
from aidmesh_runtime.auth import SHELTER_READ, SHELTER_WRITE
from aidmesh_runtime.testing import auth_headers, publish

pytestmark = pytest.mark.integration

NOVEMBER_2026 = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clock(clock):  # the conftest's clock, set to a date in the 2026-2027 heating season
    clock.now = NOVEMBER_2026
    return clock


@contextlib.contextmanager
def on(clock, when: datetime) -> Iterator[None]:
    before = clock.now
    clock.now = when
    try:
        yield
    finally:
        clock.now = before


async def kits(flows, household_id, **body):
    return await flows.http.post(f"/households/{household_id}/winterization-kits", json=body)


async def rent(flows, household_id, *, headers=None, **overrides):
    body = {"monthly_amount_uah": "4500.00", "months": 3} | overrides
    return await flows.http.post(
        f"/households/{household_id}/rental-assistance", json=body, headers=headers
    )


def monitors() -> dict[str, str]:
    """The token of the monitoring team PDM-KH-01: the follow-ups it records are its own."""
    return auth_headers(SHELTER_READ, SHELTER_WRITE, org="PDM-KH-01", sub="user:pdm-kh-01")


async def test_a_winterization_kit_is_delivered_in_the_household_s_flow(flows) -> None:
    household, registered = await flows.register(size=5)

    response = await kits(flows, household.household_id)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["activity"], body["season"], body["quantity"], body["unit"]) == (
        "shelter.winterization_kit",
        "2026-2027",
        "1",
        "kit",
    )
    assert (body["value_uah"], body["persons_reached"], body["modality"]) == (
        "4500.00",
        5,
        "in_kind",
    )
    delivered, seen = await flows.published(
        AssistanceDelivered, household_id=household.household_id
    )
    assert str(delivered.delivery_id) == body["delivery_id"]
    assert (delivered.sector, delivered.partner_org, delivered.delivered_at) == (
        Sector.SHELTER,
        "IOM",
        NOVEMBER_2026,
    )
    assert seen.envelope.correlationid == registered.correlationid
    assert seen.key == str(household.household_id).encode()
    listed = (await flows.http.get(f"/households/{household.household_id}/deliveries")).json()
    assert [d["delivery_id"] for d in listed] == [body["delivery_id"]]


async def test_a_second_winterization_kit_in_the_same_season_is_refused_with_the_reason(
    flows, clock
) -> None:
    household, _ = await flows.register()
    first = await kits(flows, household.household_id, kits=2)
    assert first.status_code == 201, first.text

    with on(clock, datetime(2027, 2, 10, 9, 0, tzinfo=UTC)):
        second = await kits(flows, household.household_id)

    assert second.status_code == 422
    assert second.json()["detail"] == (
        f"household {household.household_id} already received shelter.winterization_kit in "
        f"the 2026-2027 heating season (delivery {first.json()['delivery_id']} on 2026-11-05)"
    )
    assert await flows.count(AssistanceDelivered, household_id=household.household_id) == 1


async def test_a_winterization_kit_is_given_again_in_the_next_heating_season(flows, clock) -> None:
    household, _ = await flows.register()
    assert (await kits(flows, household.household_id)).status_code == 201

    with on(clock, datetime(2027, 5, 2, 9, 0, tzinfo=UTC)):
        next_season = await kits(flows, household.household_id)

    assert next_season.status_code == 201, next_season.text
    assert next_season.json()["season"] == "2027-2028"


async def test_rental_assistance_is_a_monthly_amount_for_n_months_once_a_season(flows) -> None:
    household, _ = await flows.register(displacement_status="idp")

    # IOM's coordinator records the rent NRC (the implementing partner) paid.
    response = await rent(
        flows, household.household_id, partner_org="NRC", headers=flows.coordinator()
    )
    again = await rent(flows, household.household_id, months=1)
    kit_too = await kits(flows, household.household_id)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["activity"], body["quantity"], body["unit"], body["value_uah"]) == (
        "shelter.rental_assistance",
        "3",
        "month",
        "13500.00",
    )
    delivered, _ = await flows.published(AssistanceDelivered, delivery_id=UUID(body["delivery_id"]))
    assert (delivered.modality, delivered.partner_org) == (Modality.CASH, "NRC")
    assert delivered.value is not None and delivered.value.amount == Decimal("13500.00")
    assert again.status_code == 422
    assert "already received shelter.rental_assistance in the 2026-2027" in again.json()["detail"]
    assert kit_too.status_code == 201, "another activity is not a duplicate"


async def test_rental_assistance_is_refused_to_a_household_that_is_not_displaced(flows) -> None:
    household, _ = await flows.register(displacement_status="returnee")

    response = await rent(flows, household.household_id)

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "rental assistance is for displaced households (idp), not returnee"
    )
    assert await flows.count(AssistanceDelivered, household_id=household.household_id) == 0


async def test_rental_assistance_above_the_monthly_cap_is_refused(flows) -> None:
    household, _ = await flows.register()

    response = await rent(flows, household.household_id, monthly_amount_uah="6000.01")

    assert response.status_code == 422
    assert "6000.01 UAH a month exceeds the rental assistance cap of 6000.00" in response.text


async def test_a_malformed_amount_is_refused_naming_the_field(flows) -> None:
    household, _ = await flows.register()

    response = await rent(flows, household.household_id, monthly_amount_uah="-10")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "monthly_amount_uah"]


async def test_assistance_to_a_household_shelter_does_not_know_is_not_found(flows) -> None:
    unknown = uuid4()

    response = await kits(flows, unknown)

    assert response.status_code == 404
    assert f"household {unknown} is not known to shelter" in response.json()["detail"]


async def test_a_merged_registration_s_kit_counts_for_the_household_that_stays(
    flows, producer
) -> None:
    survivor, _ = await flows.register()
    duplicate, _ = await flows.register()
    first = await kits(flows, duplicate.household_id)
    assert first.status_code == 201, first.text
    merge = HouseholdMerged(
        household_id=survivor.household_id,
        merged_household_id=duplicate.household_id,
        decided_by="IOM-KH",
        merged_at=datetime.now(UTC),
    )
    await flows.handled(await publish(producer, merge))

    again = await kits(flows, survivor.household_id)
    through_old_id = await kits(flows, duplicate.household_id)

    assert again.status_code == 422
    assert f"(delivery {first.json()['delivery_id']} on 2026-11-05)" in again.json()["detail"]
    assert through_old_id.status_code == 422
    assert f"household {survivor.household_id} already received" in through_old_id.json()["detail"]
    listed = (await flows.http.get(f"/households/{survivor.household_id}/deliveries")).json()
    assert [(d["delivery_id"], d["household_id"]) for d in listed] == [
        (first.json()["delivery_id"], str(survivor.household_id))
    ]


# ---- collective centres ------------------------------------------------------------------

CENTRE_NAME = "Гуртожиток ХНУ №7 (колективний центр)"


async def open_centre(flows, capacity: int = 80):
    response = await flows.http.post(
        "/facilities",
        json={
            "name": CENTRE_NAME,
            "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312", "adm3_pcode": "UA6312001"},
            "capacity": capacity,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_collective_centre_is_a_facility_case_whose_name_stays_in_shelter(
    flows,
) -> None:
    centre = await open_centre(flows)

    opened, seen = await flows.published(FacilityCaseOpened, case_id=UUID(centre["case_id"]))

    assert str(opened.facility_id) == centre["facility_id"]
    assert (opened.capacity, opened.location.adm3_pcode) == (80, "UA6312001")
    assert seen.key == centre["facility_id"].encode()
    assert seen.envelope.subject == centre["facility_id"]
    assert "Гуртожиток" not in (seen.value or b"").decode() + str(seen.headers)
    listed = (await flows.http.get("/facilities", params={"oblast": "UA63"})).json()
    assert any(
        f["facility_id"] == centre["facility_id"] and f["name"] == CENTRE_NAME for f in listed
    )


async def test_a_refurbished_centre_is_assistance_delivered_to_the_facility(flows) -> None:
    centre = await open_centre(flows, capacity=80)
    url = f"/facility-cases/{centre['case_id']}/refurbishment-completion"

    over_cap = await flows.http.post(
        url, json={"value_uah": "1200000.01", "inspection_passed": True}
    )
    done = await flows.http.post(url, json={"value_uah": "950000.00", "inspection_passed": True})
    again = await flows.http.post(url, json={"value_uah": "1000.00", "inspection_passed": True})

    assert over_cap.status_code == 422
    assert over_cap.json()["detail"] == (
        "1200000.01 UAH exceeds the cap of 1200000.00 UAH for a centre of 80 places"
    )
    assert done.status_code == 200, done.text
    delivered, seen = await flows.published(
        AssistanceDelivered, delivery_id=UUID(done.json()["delivery_id"])
    )
    _, opened = await flows.published(FacilityCaseOpened, case_id=UUID(centre["case_id"]))
    assert (str(delivered.facility_id), delivered.household_id) == (centre["facility_id"], None)
    assert (delivered.activity, delivered.persons_reached) == (
        "shelter.collective_centre_refurbishment",
        80,
    )
    assert seen.envelope.causationid == opened.envelope.id
    assert again.status_code == 409
    facility = (await flows.http.get(f"/facilities/{centre['facility_id']}")).json()
    assert (facility["status"], facility["delivery_id"]) == (
        "refurbished",
        done.json()["delivery_id"],
    )


# ---- post-distribution monitoring --------------------------------------------------------


async def test_a_delivery_gets_one_follow_up_record(flows) -> None:
    household, _ = await flows.register()
    delivery_id = (await kits(flows, household.household_id)).json()["delivery_id"]
    url = f"/deliveries/{delivery_id}/monitoring"
    follow_up = {
        "received": True,
        "satisfaction": 4,
        "use": "used_as_intended",
        "monitored_by": "PDM-KH-01",
    }

    recorded = await flows.http.post(url, json=follow_up, headers=monitors())
    read = await flows.http.get(url)
    twice = await flows.http.post(url, json=follow_up, headers=monitors())

    assert recorded.status_code == 201, recorded.text
    assert read.status_code == 200
    assert read.json() | {"recorded_at": None} == {
        "delivery_id": delivery_id,
        "received": True,
        "satisfaction": 4,
        "use": "used_as_intended",
        "monitored_by": "PDM-KH-01",
        "monitored_at": "2026-11-05T10:00:00Z",
        "recorded_at": None,
    }
    assert twice.status_code == 409
    assert twice.json()["detail"] == f"delivery {delivery_id} has a monitoring record already"


async def test_a_follow_up_is_refused_for_an_unknown_delivery_or_inconsistent_answers(
    flows,
) -> None:
    household, _ = await flows.register()
    delivery_id = (await kits(flows, household.household_id)).json()["delivery_id"]
    unknown = uuid4()

    not_found = await flows.http.post(
        f"/deliveries/{unknown}/monitoring",
        json={"received": False, "monitored_by": "PDM-KH-01"},
        headers=monitors(),
    )
    inconsistent = await flows.http.post(
        f"/deliveries/{delivery_id}/monitoring",
        json={"received": False, "satisfaction": 2, "monitored_by": "PDM-KH-01"},
        headers=monitors(),
    )
    nothing_yet = await flows.http.get(f"/deliveries/{delivery_id}/monitoring")

    assert not_found.status_code == 404
    assert not_found.json()["detail"] == f"delivery {unknown} not found"
    assert inconsistent.status_code == 422
    assert "not received has no satisfaction or use" in inconsistent.json()["detail"]
    assert nothing_yet.status_code == 404


async def test_a_repair_delivery_is_monitored_too(flows) -> None:
    case = await flows.planned_case()
    delivery_id = (await flows.complete(case.case_id)).json()["delivery_id"]

    response = await flows.http.post(
        f"/deliveries/{delivery_id}/monitoring",
        json={
            "received": True,
            "satisfaction": 5,
            "use": "used_as_intended",
            "monitored_by": "PDM-KH-01",
        },
        headers=monitors(),
    )

    assert response.status_code == 201, response.text
    delivery = (await flows.http.get(f"/deliveries/{delivery_id}")).json()
    assert (delivery["activity"], delivery["case_id"]) == (
        "shelter.light_repair",
        str(case.case_id),
    )
    assert isinstance(Location(**delivery["location"]), Location)
