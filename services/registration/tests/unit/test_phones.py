"""Phones are stored and compared in E.164, whatever way people write them."""

from __future__ import annotations

import pytest
from aidmesh_registration.phones import normalise_phone


@pytest.mark.parametrize(
    "written",
    [
        "+380 50 123 45 67",
        "+380501234567",
        "380501234567",
        "050 123 45 67",
        "0501234567",
        "(050) 123-45-67",
        "00380501234567",
    ],
)
def test_a_ukrainian_mobile_in_any_common_format_becomes_e164(written: str) -> None:
    assert normalise_phone(written) == "+380501234567"


def test_a_kyiv_landline_is_kept_with_its_area_code() -> None:
    assert normalise_phone("044 123 45 67") == "+380441234567"


def test_a_foreign_number_with_its_country_code_stays_foreign() -> None:
    assert normalise_phone("+48 601 234 567") == "+48601234567"


@pytest.mark.parametrize("written", ["12345", "050 123 45", "+380 50 123 45 67 89 0"])
def test_a_number_with_the_wrong_length_is_refused_saying_what_a_number_looks_like(
    written: str,
) -> None:
    with pytest.raises(ValueError, match=r"\+380 and nine digits"):
        normalise_phone(written)


def test_text_that_is_no_number_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValueError) as caught:
        normalise_phone("call my sister")

    assert "cannot be read as a phone number" in str(caught.value)
    assert "sister" not in str(caught.value)
