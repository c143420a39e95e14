"""AssistanceDelivered: one recipient, an activity of the delivering sector."""

from __future__ import annotations

from uuid import UUID

import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.examples import example
from pydantic import ValidationError

HOUSEHOLD_ID = "3f2b8c1e-6d4a-4e7b-9a15-2c8e5f0d7b31"
FACILITY_ID = "9d0c3b7e-1f25-4a68-8e4b-6c2a5d9f0e17"


def delivery(**changes: object) -> dict[str, object]:
    return example(AssistanceDelivered.event_type) | changes


def test_a_delivery_to_a_facility_is_keyed_by_the_facility() -> None:
    delivered = AssistanceDelivered.model_validate(
        delivery(household_id=None, facility_id=FACILITY_ID)
    )

    assert delivered.facility_id == UUID(FACILITY_ID)
    assert delivered.subject() == FACILITY_ID


def test_a_delivery_to_both_a_household_and_a_facility_is_refused() -> None:
    with pytest.raises(ValidationError, match="exactly one of household_id and facility_id"):
        AssistanceDelivered.model_validate(
            delivery(household_id=HOUSEHOLD_ID, facility_id=FACILITY_ID)
        )


def test_a_delivery_to_nobody_is_refused() -> None:
    with pytest.raises(ValidationError, match="exactly one of household_id and facility_id"):
        AssistanceDelivered.model_validate(delivery(household_id=None, facility_id=None))


def test_an_activity_of_another_sector_is_refused() -> None:
    refusal = r"activity shelter\.winterization_kit does not belong to sector health"
    with pytest.raises(ValidationError, match=refusal):
        AssistanceDelivered.model_validate(delivery(sector="health"))


def test_an_activity_must_start_with_the_whole_sector_code() -> None:
    with pytest.raises(ValidationError, match="does not belong to sector cash"):
        AssistanceDelivered.model_validate(
            delivery(sector="cash", activity="cashbox.top_up", modality="cash")
        )


def test_an_activity_of_the_delivering_sector_is_accepted() -> None:
    delivered = AssistanceDelivered.model_validate(
        delivery(sector="health", activity="health.primary_consultation", modality="service")
    )

    assert delivered.activity == "health.primary_consultation"


def test_nothing_delivered_is_not_a_delivery() -> None:
    with pytest.raises(ValidationError) as refused:
        AssistanceDelivered.model_validate(delivery(quantity="0"))

    assert [e["loc"] for e in refused.value.errors()] == [("quantity",)]
