"""Shelter rules: which repairs we do, within which caps, and the assistance they deliver."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from aidmesh_contracts import (
    DamageLevel,
    Location,
    Modality,
    RepairCategory,
    Sector,
)
from aidmesh_shelter.domain import (
    Case,
    CaseNotOpen,
    RepairCaps,
    ShelterRuleError,
    complete_repair,
    open_case,
)

NOW = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
KHARKIV = Location(adm1_pcode="UA63", adm2_pcode="UA6312")
CAPS = RepairCaps(light=Decimal("30000.00"), medium=Decimal("100000.00"))


def a_case(**overrides: Any) -> Case:
    case = Case(
        case_id=uuid4(),
        household_id=uuid4(),
        status="open",
        damage_level=DamageLevel.LIGHT,
        location=KHARKIV,
        household_size=4,
    )
    return replace(case, **overrides)


def repair(case: Case, **overrides: Any):  # -> tuple[RepairCompleted, AssistanceDelivered]
    arguments: dict[str, Any] = {
        "category": RepairCategory.LIGHT,
        "modality": Modality.IN_KIND,
        "value_uah": Decimal("12500.00"),
        "partner_org": "IOM",
        "caps": CAPS,
        "delivery_id": uuid4(),
        "now": NOW,
    } | overrides
    return complete_repair(case, **arguments)


def test_an_assessed_need_opens_a_case_with_its_damage_level_and_location() -> None:
    household_id, assessment_id, case_id = uuid4(), uuid4(), uuid4()

    opened = open_case(
        case_id=case_id,
        household_id=household_id,
        need_assessment_id=assessment_id,
        severity=4,
        damage_level=DamageLevel.MEDIUM,
        location=KHARKIV,
        now=NOW,
    )

    assert (opened.case_id, opened.household_id, opened.need_assessment_id) == (
        case_id,
        household_id,
        assessment_id,
    )
    assert (opened.severity, opened.damage_level, opened.location) == (
        4,
        DamageLevel.MEDIUM,
        KHARKIV,
    )


def test_a_light_repair_completes_the_repair_and_delivers_assistance() -> None:
    case = a_case()
    delivery_id = uuid4()

    repaired, delivered = repair(case, delivery_id=delivery_id)

    assert (repaired.case_id, repaired.household_id) == (case.case_id, case.household_id)
    assert repaired.category is RepairCategory.LIGHT
    assert delivered.delivery_id == delivery_id
    assert delivered.household_id == case.household_id
    assert delivered.sector is Sector.SHELTER
    assert delivered.activity == "shelter.light_repair"


def test_a_medium_repair_is_a_medium_repair_activity() -> None:
    case = a_case(damage_level=DamageLevel.MEDIUM)

    repaired, delivered = repair(case, category=RepairCategory.MEDIUM, value_uah=Decimal("60000"))

    assert repaired.category is RepairCategory.MEDIUM
    assert delivered.activity == "shelter.medium_repair"


def test_the_repair_value_is_an_exact_decimal_amount_in_uah() -> None:
    repaired, delivered = repair(a_case(), value_uah=Decimal("12500.10"))

    assert delivered.value is not None
    assert delivered.value.amount == Decimal("12500.10")
    assert isinstance(delivered.value.amount, Decimal)
    assert delivered.value.currency == "UAH"
    assert repaired.value == delivered.value


def test_persons_reached_is_the_household_size() -> None:
    _, delivered = repair(a_case(household_size=6))

    assert delivered.persons_reached == 6


def test_one_dwelling_is_delivered_where_the_case_is_with_the_given_modality() -> None:
    _, delivered = repair(a_case(), modality=Modality.VOUCHER, partner_org="NRC")

    assert (delivered.quantity, delivered.unit) == (Decimal(1), "dwelling")
    assert delivered.modality is Modality.VOUCHER
    assert delivered.location == KHARKIV
    assert delivered.partner_org == "NRC"
    assert delivered.delivered_at == NOW


def test_heavy_damage_is_referred_to_state_compensation_not_repaired() -> None:
    with pytest.raises(
        ShelterRuleError, match="heavy damage is referred to the state compensation"
    ):
        repair(a_case(damage_level=DamageLevel.HEAVY))


def test_a_value_above_the_cap_is_refused_with_the_cap() -> None:
    with pytest.raises(
        ShelterRuleError, match=r"30000\.01 UAH exceeds the light repair cap of 30000"
    ):
        repair(a_case(), value_uah=Decimal("30000.01"))


def test_a_value_exactly_at_the_cap_is_accepted() -> None:
    _, delivered = repair(a_case(), value_uah=Decimal("30000.00"))

    assert delivered.value is not None
    assert delivered.value.amount == Decimal("30000.00")


def test_the_medium_cap_applies_to_medium_repairs() -> None:
    case = a_case(damage_level=DamageLevel.MEDIUM)

    with pytest.raises(ShelterRuleError, match="medium repair cap of 100000"):
        repair(case, category=RepairCategory.MEDIUM, value_uah=Decimal("100000.01"))


def test_a_repair_category_that_does_not_fit_the_damage_level_is_refused() -> None:
    with pytest.raises(ShelterRuleError, match="a medium repair does not fit light damage"):
        repair(a_case(damage_level=DamageLevel.LIGHT), category=RepairCategory.MEDIUM)


def test_any_repair_category_fits_unknown_damage() -> None:
    repaired, _ = repair(
        a_case(damage_level=DamageLevel.UNKNOWN),
        category=RepairCategory.MEDIUM,
        value_uah=Decimal("50000"),
    )

    assert repaired.category is RepairCategory.MEDIUM


def test_a_case_that_is_not_open_cannot_be_repaired_again() -> None:
    case = a_case(status="repaired")

    with pytest.raises(CaseNotOpen, match=f"case {case.case_id} is repaired, not open"):
        repair(case)


def test_repairs_are_not_paid_in_cash() -> None:
    with pytest.raises(ShelterRuleError, match="in kind or by voucher"):
        repair(a_case(), modality=Modality.CASH)


def test_repairs_are_not_a_service() -> None:
    with pytest.raises(ShelterRuleError, match="in kind or by voucher"):
        repair(a_case(), modality=Modality.SERVICE)
