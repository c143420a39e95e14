"""Protection rules: a pseudonymous case reference and coarse codes, nothing more."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from aidmesh_contracts import (
    CaseSource,
    NeedAssessed,
    ProtectionCaseOpened,
    ProtectionNeedDetails,
    Sector,
)
from aidmesh_protection.domain import case_ref, open_case_from_need

NOW = datetime(2026, 1, 15, 13, 30, tzinfo=UTC)
CASE_REF = re.compile(r"^PRT-[0-9A-HJKMNP-TV-Z]{10}$")  # Crockford base32: no I, L, O, U


def protection_need(concerns: set[str] | None = None, **overrides: Any) -> NeedAssessed:
    details = None if concerns is None else ProtectionNeedDetails(concern_codes=frozenset(concerns))
    return NeedAssessed(
        **{
            "assessment_id": uuid4(),
            "household_id": uuid4(),
            "sector": Sector.PROTECTION,
            "severity": 3,
            "assessed_at": NOW,
            "assessed_by": "IOM-KH-03",
            "details": details,
        }
        | overrides
    )


def test_a_case_ref_is_prt_and_ten_crockford_base32_characters() -> None:
    for _ in range(200):
        assert CASE_REF.match(case_ref(uuid4()))


def test_a_case_ref_is_the_low_50_random_bits_of_the_random_id_in_crockford_base32() -> None:
    assert case_ref(UUID(int=0)) == "PRT-0000000000"
    assert case_ref(UUID(int=(1 << 128) - 1)) == "PRT-ZZZZZZZZZZ"
    assert case_ref(UUID(int=0b00001_00001_00001_00001_00001_00001_00001_00001_00001_00001)) == (
        "PRT-1111111111"
    )
    # The version nibble of a uuid4 plays no part: only random bits do.
    assert case_ref(UUID("ffffffff-ffff-4fff-8000-000000000000")) == "PRT-0000000000"


def test_the_same_random_id_gives_the_same_case_ref() -> None:
    random_id = uuid4()

    assert case_ref(random_id) == case_ref(random_id)


def test_different_random_ids_give_different_case_refs_for_the_same_household() -> None:
    need = protection_need()

    first = open_case_from_need(need, random_id=uuid4(), now=NOW)
    second = open_case_from_need(need, random_id=uuid4(), now=NOW)

    assert first.case_ref != second.case_ref


def test_the_case_ref_does_not_depend_on_the_household() -> None:
    random_id = uuid4()

    first = open_case_from_need(protection_need(), random_id=random_id, now=NOW)
    second = open_case_from_need(protection_need(), random_id=random_id, now=NOW)

    assert first.household_id != second.household_id
    assert first.case_ref == second.case_ref


def test_the_case_ref_is_not_derived_from_the_household_id() -> None:
    need = protection_need()

    opened = open_case_from_need(need, random_id=uuid4(), now=NOW)

    assert opened.case_ref != case_ref(need.household_id)


def test_the_concern_codes_of_the_need_are_copied() -> None:
    need = protection_need({"gbv_risk", "family_separation"})

    opened = open_case_from_need(need, random_id=uuid4(), now=NOW)

    assert opened.concern_codes == {"gbv_risk", "family_separation"}


def test_a_need_without_details_opens_a_case_without_concern_codes() -> None:
    opened = open_case_from_need(protection_need(), random_id=uuid4(), now=NOW)

    assert opened.concern_codes == frozenset()


def test_the_case_comes_from_the_need_assessment_with_its_severity() -> None:
    need = protection_need(severity=5)

    opened = open_case_from_need(need, random_id=uuid4(), now=NOW)

    assert opened.source is CaseSource.NEED_ASSESSMENT
    assert opened.severity == 5
    assert opened.opened_at == NOW


def test_the_case_names_the_household_by_its_id_only() -> None:
    need = protection_need({"gbv_risk"})

    opened = open_case_from_need(need, random_id=uuid4(), now=NOW)

    assert opened.household_id == need.household_id
    assert set(ProtectionCaseOpened.model_fields) == {
        "case_ref",
        "household_id",
        "source",
        "severity",
        "concern_codes",
        "opened_at",
    }
    assert str(need.assessment_id) not in opened.model_dump_json()
