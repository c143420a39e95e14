"""Registration rules: what a valid registration is, and what it tells the other sectors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import pytest
from aidmesh_contracts import HealthNeedDetails, HouseholdRegistered, Sector
from aidmesh_registration.domain import (
    ConsentIn,
    HouseholdIn,
    composition,
    household_registered,
    needs_assessed,
)
from pydantic import ValidationError

REGISTERED_AT = datetime(2026, 1, 12, 8, 24, tzinfo=UTC)


def member(relation: str = "head", **overrides: Any) -> dict[str, Any]:
    return {
        "full_name": "Олена Петрівна Коваленко",
        "sex": "female",
        "date_of_birth": "1984-05-03",
        "relation": relation,
        "document_number": "ЕК123456",
    } | overrides


def submission(**overrides: Any) -> dict[str, Any]:
    """A valid field-office registration of a family of three in Kharkiv oblast."""
    return {
        "channel": "field_office",
        "partner_org": "DRC",
        "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312"},
        "displacement_status": "idp",
        "size": 3,
        "address": "вул. Сумська, 10, кв. 4, Харків",
        "phone": "+380 50 123 45 67",
        "members": [
            member("head"),
            member("child", full_name="Андрій Коваленко", sex="male", date_of_birth="2012-09-01"),
            member("parent", full_name="Марія Іванівна Шевчук", date_of_birth="1950-01-20"),
        ],
        "vulnerabilities": ["female_headed"],
        "consents": ["registration", "data_sharing"],
        "needs": [{"sector": "shelter", "severity": 4, "details": {"damage_level": "light"}}],
    } | overrides


def refusal(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        HouseholdIn.model_validate(data)
    return caught.value.errors()


def test_a_complete_submission_is_accepted() -> None:
    household = HouseholdIn.model_validate(submission())

    assert household.size == 3
    assert household.needs[0].sector is Sector.SHELTER


def test_size_must_match_the_number_of_members_listed() -> None:
    errors = refusal(submission(size=4))

    assert "size is 4 but 3 members are listed" in errors[0]["msg"]
    assert errors[0]["loc"] == ("members",)


@pytest.mark.parametrize("born", ["0001-01-01", "1899-12-31"])
def test_a_birth_before_1900_is_refused_as_a_typing_error(born: str) -> None:
    errors = refusal(submission(size=1, members=[member("head", date_of_birth=born)]))

    assert errors[0]["loc"] == ("members", 0, "date_of_birth")
    assert HouseholdIn.model_validate(
        submission(size=1, members=[member("head", date_of_birth="1900-01-01")])
    ).members[0].date_of_birth == date(1900, 1, 1)


def test_a_household_without_a_head_is_refused() -> None:
    errors = refusal(
        submission(size=2, members=[member("spouse"), member("child", date_of_birth="2015-02-02")])
    )

    assert "exactly one member must be the head of household, found 0" in errors[0]["msg"]
    assert errors[0]["loc"] == ("members",)


def test_a_household_with_two_heads_is_refused() -> None:
    errors = refusal(submission(size=2, members=[member("head"), member("head")]))

    assert "found 2" in errors[0]["msg"]


def test_consent_for_registration_is_required() -> None:
    errors = refusal(submission(consents=["data_sharing", "referral"]))

    assert "consent for 'registration' is required" in errors[0]["msg"]
    assert errors[0]["loc"] == ("consents",)


def test_consent_to_share_with_providers_is_not_published_as_consent_in_general() -> None:
    household = HouseholdIn.model_validate(
        submission(consents=["registration"], data_sharing_with=["privatbank", "ukrposhta"])
    ).to_household(household_id=uuid4(), member_ids=[uuid4()] * 3, registered_at=REGISTERED_AT)

    event = household_registered(household, household_id=household.household_id, now=REGISTERED_AT)

    assert household.data_sharing_with == {"privatbank", "ukrposhta"}
    assert {c.value for c in event.consents} == {"registration"}


def test_a_provider_code_in_another_shape_is_refused() -> None:
    errors = refusal(submission(data_sharing_with=["PrivatBank"]))

    assert errors[0]["loc"] == ("data_sharing_with", 0)


def test_only_a_consent_to_data_sharing_names_a_recipient() -> None:
    with pytest.raises(ValidationError) as caught:
        ConsentIn.model_validate({"purpose": "referral", "recipient": "privatbank"})

    [error] = caught.value.errors()
    assert error["loc"] == ("recipient",)
    assert "only a consent to data_sharing names a recipient" in error["msg"]


def test_an_unknown_oblast_is_refused_with_the_field_in_the_error_location() -> None:
    errors = refusal(submission(location={"adm1_pcode": "UA99"}))

    assert errors[0]["loc"] == ("location", "adm1_pcode")
    assert "unknown oblast P-code 'UA99'" in errors[0]["msg"]


def test_a_raion_outside_its_oblast_is_refused() -> None:
    errors = refusal(submission(location={"adm1_pcode": "UA63", "adm2_pcode": "UA1412"}))

    assert errors[0]["loc"] == ("location",)
    assert "not inside UA63" in errors[0]["msg"]


def test_severity_7_is_refused_on_the_jiaf_scale() -> None:
    errors = refusal(submission(needs=[{"sector": "health", "severity": 7}]))

    assert errors[0]["loc"] == ("needs", 0, "severity")
    assert errors[0]["type"] == "less_than_equal"


def test_two_needs_for_the_same_sector_are_refused() -> None:
    errors = refusal(
        submission(needs=[{"sector": "health", "severity": 2}, {"sector": "health", "severity": 3}])
    )

    assert "at most one need per sector" in errors[0]["msg"]
    assert errors[0]["loc"] == ("needs",)


def test_need_details_take_their_kind_from_the_need_sector() -> None:
    household = HouseholdIn.model_validate(
        submission(
            needs=[{"sector": "health", "severity": 3, "details": {"services_needed": ["mhpss"]}}]
        )
    )

    assert household.needs[0].details == HealthNeedDetails(services_needed=frozenset({"mhpss"}))


def test_need_details_of_another_sector_are_refused() -> None:
    errors = refusal(
        submission(needs=[{"sector": "health", "severity": 3, "details": {"kind": "shelter"}}])
    )

    assert "details are for shelter, not health" in errors[0]["msg"]


def test_unknown_fields_are_refused() -> None:
    errors = refusal(submission(nickname="Оля"))

    assert errors[0]["loc"] == ("nickname",)
    assert errors[0]["type"] == "extra_forbidden"


def test_composition_counts_members_by_sex_and_age_band_on_the_registration_date() -> None:
    household = HouseholdIn.model_validate(submission())

    counted = composition(household.members, today=date(2026, 1, 12))

    assert counted.female_18_59 == 1
    assert counted.male_0_17 == 1
    assert counted.female_60_plus == 1
    assert counted.total() == 3


def test_a_member_turning_18_tomorrow_still_counts_as_a_child_today() -> None:
    household = HouseholdIn.model_validate(
        submission(size=1, members=[member("head", sex="male", date_of_birth="2008-01-13")])
    )

    counted = composition(household.members, today=date(2026, 1, 12))

    assert counted.male_0_17 == 1
    assert counted.male_18_59 == 0


def test_a_member_turning_18_today_counts_as_an_adult() -> None:
    household = HouseholdIn.model_validate(
        submission(size=1, members=[member("head", sex="male", date_of_birth="2008-01-12")])
    )

    counted = composition(household.members, today=date(2026, 1, 12))

    assert counted.male_18_59 == 1


def test_a_member_turning_60_today_counts_as_60_plus() -> None:
    household = HouseholdIn.model_validate(
        submission(size=1, members=[member("head", date_of_birth="1966-01-12")])
    )

    counted = composition(household.members, today=date(2026, 1, 12))

    assert counted.female_60_plus == 1


def test_household_registered_counts_members_at_the_registration_date() -> None:
    household = HouseholdIn.model_validate(
        submission(size=1, members=[member("head", sex="male", date_of_birth="2008-01-13")])
    )

    registered = household_registered(household, household_id=uuid4(), now=REGISTERED_AT)

    assert registered.composition.male_0_17 == 1
    assert registered.registered_at == REGISTERED_AT


def test_household_registered_has_no_field_for_personal_data() -> None:
    personal = {"full_name", "members", "phone", "address", "date_of_birth", "document_number"}

    assert personal.isdisjoint(HouseholdRegistered.model_fields)


def test_household_registered_carries_no_name_phone_address_or_document() -> None:
    data = submission()
    household = HouseholdIn.model_validate(data)

    wire = household_registered(
        household, household_id=uuid4(), now=REGISTERED_AT
    ).model_dump_json()

    for secret in ["Коваленко", "Шевчук", "123 45 67", "Сумська", "ЕК123456", "1984-05-03"]:
        assert secret not in wire


def test_household_registered_keeps_the_shareable_facts() -> None:
    household_id = uuid4()
    household = HouseholdIn.model_validate(submission())

    registered = household_registered(household, household_id=household_id, now=REGISTERED_AT)

    assert registered.household_id == household_id
    assert registered.location.adm2_pcode == "UA6312"
    assert registered.size == 3
    assert {v.value for v in registered.vulnerabilities} == {"female_headed"}
    assert {c.value for c in registered.consents} == {"registration", "data_sharing"}


def test_each_need_becomes_one_need_assessed_with_its_own_assessment_id() -> None:
    household_id, ids = uuid4(), [uuid4(), uuid4()]
    household = HouseholdIn.model_validate(
        submission(
            needs=[{"sector": "shelter", "severity": 4}, {"sector": "health", "severity": 2}]
        )
    )

    needs = needs_assessed(
        household,
        household_id=household_id,
        assessment_ids=ids,
        now=REGISTERED_AT,
        default_assessor="IOM-REG",
    )

    assert [(n.assessment_id, n.sector, n.severity) for n in needs] == [
        (ids[0], Sector.SHELTER, 4),
        (ids[1], Sector.HEALTH, 2),
    ]
    assert {n.household_id for n in needs} == {household_id}


def test_the_partner_is_the_assessor_when_none_is_named() -> None:
    household = HouseholdIn.model_validate(submission())

    [need] = needs_assessed(
        household,
        household_id=uuid4(),
        assessment_ids=[uuid4()],
        now=REGISTERED_AT,
        default_assessor="IOM-REG",
    )

    assert need.assessed_by == "DRC"


def test_the_default_assessor_is_used_when_neither_assessor_nor_partner_is_named() -> None:
    household = HouseholdIn.model_validate(submission(partner_org=None))

    [need] = needs_assessed(
        household,
        household_id=uuid4(),
        assessment_ids=[uuid4()],
        now=REGISTERED_AT,
        default_assessor="IOM-REG",
    )

    assert need.assessed_by == "IOM-REG"
