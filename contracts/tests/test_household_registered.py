"""HouseholdRegistered: counts that add up, codes from closed lists."""

from __future__ import annotations

import pytest
from aidmesh_contracts import HouseholdRegistered
from aidmesh_contracts.examples import example
from pydantic import ValidationError


def registration(**changes: object) -> dict[str, object]:
    return example(HouseholdRegistered.event_type) | changes


def test_a_composition_that_adds_up_to_the_size_is_accepted() -> None:
    household = HouseholdRegistered.model_validate(registration())

    assert household.composition.total() == household.size == 4


def test_a_composition_that_does_not_add_up_to_the_size_is_refused() -> None:
    with pytest.raises(ValidationError, match="composition counts 4 members but size is 5"):
        HouseholdRegistered.model_validate(registration(size=5))


def test_a_household_has_at_least_one_member() -> None:
    with pytest.raises(ValidationError) as refused:
        HouseholdRegistered.model_validate(registration(size=0, composition={}))

    assert [e["loc"] for e in refused.value.errors()] == [("size",)]


def test_a_negative_count_in_the_composition_is_refused() -> None:
    composition = {"female_18_59": 5, "male_0_17": -1}

    with pytest.raises(ValidationError) as refused:
        HouseholdRegistered.model_validate(registration(composition=composition))

    assert [e["loc"] for e in refused.value.errors()] == [("composition", "male_0_17")]


def test_a_vulnerability_outside_the_code_list_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        HouseholdRegistered.model_validate(registration(vulnerabilities=["war_veteran_status"]))

    assert refused.value.errors()[0]["loc"][0] == "vulnerabilities"


def test_a_partner_is_named_by_its_code_not_in_free_text() -> None:
    with pytest.raises(ValidationError) as refused:
        HouseholdRegistered.model_validate(registration(partner_org="Danish Refugee Council"))

    assert [e["loc"] for e in refused.value.errors()] == [("partner_org",)]
