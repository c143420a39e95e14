"""A household's bank account: a Ukrainian IBAN, its check digits verified, stored in one
form; optional at registration and in an update, and never told to the other sectors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aidmesh_registration.domain import HouseholdIn, HouseholdPatch, apply_patch, changes
from aidmesh_registration.iban import checksum_holds, normalise_iban, with_check_digits
from pydantic import ValidationError

IBAN = "UA213223130000026007233566001"
TODAY = datetime(2027, 1, 12, tzinfo=UTC).date()


def registration(**overrides: Any) -> dict[str, Any]:
    return {
        "channel": "field_office",
        "location": {"adm1_pcode": "UA63"},
        "displacement_status": "idp",
        "members": [
            {
                "family_name": "Коваленко",
                "given_name": "Олена",
                "sex": "female",
                "date_of_birth": "1984-05-03",
                "relation": "head",
            }
        ],
        "consents": ["registration", "data_sharing"],
    } | overrides


@pytest.mark.parametrize(
    "written",
    [IBAN, "UA21 3223 1300 0002 6007 2335 6600 1", "ua213223130000026007233566001", f" {IBAN} "],
)
def test_an_iban_written_in_groups_or_lower_case_is_stored_compact_and_upper_case(
    written: str,
) -> None:
    assert normalise_iban(written) == IBAN


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("UA213223130000026007233566002", "check digits"),  # the last digit mistyped
        ("UA213223130000026007323566001", "check digits"),  # two digits swapped
        ("DE89370400440532013000", "starts with UA"),
        ("UA21322313000002600723356600", "27 more characters"),
        ("UA21ABC3130000026007233566001", "six-digit code"),
    ],
)
def test_an_iban_that_is_not_a_valid_ukrainian_one_is_refused_saying_why(
    written: str, why: str
) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        normalise_iban(written)

    assert written not in str(refused.value)


def test_check_digits_computed_for_an_account_make_a_valid_iban() -> None:
    iban = with_check_digits("UA", "3052990000026007233566001")

    assert checksum_holds(iban) and normalise_iban(iban) == iban


def test_a_registration_without_a_bank_account_is_still_valid() -> None:
    assert HouseholdIn.model_validate(registration()).iban is None


def test_a_registration_with_a_bad_iban_is_refused_naming_the_field_not_the_value() -> None:
    wrong = "UA213223130000026007233566002"
    with pytest.raises(ValidationError) as refused:
        HouseholdIn.model_validate(registration(iban=wrong))

    [error] = refused.value.errors(include_input=False)
    assert error["loc"] == ("iban",)
    assert "check digits" in error["msg"] and wrong not in error["msg"]


def test_a_new_bank_account_is_a_change_named_bank_account_and_null_clears_it() -> None:
    before = HouseholdIn.model_validate(registration()).to_household(
        household_id=uuid4(), member_ids=[uuid4()], registered_at=datetime.now(UTC)
    )

    given = apply_patch(before, HouseholdPatch.model_validate({"iban": IBAN}), new_member_id=uuid4)
    cleared = apply_patch(given, HouseholdPatch.model_validate({"iban": None}), new_member_id=uuid4)

    assert given.iban == IBAN and cleared.iban is None
    assert changes(before, given, today=TODAY) == {"bank_account"}
    assert changes(given, cleared, today=TODAY) == {"bank_account"}
    assert changes(before, cleared, today=TODAY) == frozenset()
