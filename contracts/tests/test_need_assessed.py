"""NeedAssessed: the details, when given, are those of the assessed sector."""

from __future__ import annotations

import pytest
from aidmesh_contracts import HealthNeedDetails, NeedAssessed, Sector
from aidmesh_contracts.examples import example
from pydantic import ValidationError


def assessment(**changes: object) -> dict[str, object]:
    return example(NeedAssessed.event_type) | changes


def test_shelter_details_go_with_a_shelter_need() -> None:
    need = NeedAssessed.model_validate(assessment())

    assert need.sector is Sector.SHELTER
    assert need.details is not None and need.details.kind == "shelter"


def test_details_of_another_sector_are_refused() -> None:
    with pytest.raises(ValidationError, match="details of kind shelter given for sector health"):
        NeedAssessed.model_validate(assessment(sector="health"))


def test_details_are_read_as_the_model_of_their_kind() -> None:
    details = {"kind": "health", "services_needed": ["mhpss", "primary_consultation"]}

    need = NeedAssessed.model_validate(assessment(sector="health", details=details))

    assert isinstance(need.details, HealthNeedDetails)
    assert need.details.services_needed == {"mhpss", "primary_consultation"}


def test_a_need_may_be_assessed_without_details() -> None:
    need = NeedAssessed.model_validate(assessment(sector="wash", details=None))

    assert need.details is None


def test_details_of_an_unknown_kind_are_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        NeedAssessed.model_validate(assessment(details={"kind": "diagnosis", "code": "J18"}))

    assert refused.value.errors()[0]["type"] == "union_tag_invalid"


def test_the_assessor_is_an_organisation_code_never_a_persons_name() -> None:
    with pytest.raises(ValidationError) as refused:
        NeedAssessed.model_validate(assessment(assessed_by="Olena Kovalenko"))

    assert [e["loc"] for e in refused.value.errors()] == [("assessed_by",)]
