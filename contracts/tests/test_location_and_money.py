"""Shared value types: P-code locations nest, money is an exact amount in hryvnias."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from aidmesh_contracts import EVENT_TYPES, AssistanceDelivered, Location, Money
from aidmesh_contracts.envelope import encode
from aidmesh_contracts.examples import example
from pydantic import ValidationError


def test_a_hromada_in_its_raion_in_its_oblast_is_a_location() -> None:
    location = Location(adm1_pcode="UA63", adm2_pcode="UA6312", adm3_pcode="UA6312001")

    assert location.adm3_pcode == "UA6312001"


def test_an_oblast_alone_is_a_location() -> None:
    assert Location(adm1_pcode="UA80").adm2_pcode is None


def test_a_raion_outside_its_oblast_is_refused() -> None:
    with pytest.raises(ValidationError, match="adm2_pcode UA8012 is not inside UA63"):
        Location(adm1_pcode="UA63", adm2_pcode="UA8012")


def test_a_hromada_outside_its_raion_is_refused() -> None:
    with pytest.raises(ValidationError, match="adm3_pcode UA6314001 is not inside UA6312"):
        Location(adm1_pcode="UA63", adm2_pcode="UA6312", adm3_pcode="UA6314001")


def test_a_hromada_without_its_raion_is_refused() -> None:
    with pytest.raises(ValidationError, match="adm3_pcode needs adm2_pcode"):
        Location(adm1_pcode="UA63", adm3_pcode="UA6312001")


@pytest.mark.parametrize("adm1", ["UA6", "UA630", "ua63", "63", "Kharkiv"])
def test_an_oblast_p_code_of_the_wrong_shape_is_refused(adm1: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Location(adm1_pcode=adm1)

    assert [e["loc"] for e in refused.value.errors()] == [("adm1_pcode",)]


def test_a_location_refuses_a_street_address() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Location.model_validate({"adm1_pcode": "UA63", "street": "Sumska 1"})


def test_money_refuses_more_than_two_decimal_places() -> None:
    with pytest.raises(ValidationError, match="2 decimal places"):
        Money(amount=Decimal("4200.005"))


def test_money_refuses_a_negative_amount() -> None:
    with pytest.raises(ValidationError):
        Money(amount=Decimal("-1.00"))


def test_money_is_in_hryvnias_only() -> None:
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": "100.00", "currency": "USD"})


def test_money_keeps_an_exact_decimal_and_travels_as_a_json_string() -> None:
    money = Money(amount=Decimal("4200.10"))

    wire = json.loads(money.model_dump_json())

    assert isinstance(money.amount, Decimal)
    assert wire == {"amount": "4200.10", "currency": "UAH"}
    assert Money.model_validate_json(money.model_dump_json()).amount == Decimal("4200.10")


@pytest.mark.parametrize(
    "event_type",
    [t for t in sorted(EVENT_TYPES) if "value" in EVENT_TYPES[t].model_fields],
)
def test_an_events_money_travels_as_a_string_never_a_json_number(event_type: str) -> None:
    event = EVENT_TYPES[event_type].model_validate(example(event_type))

    amount = json.loads(encode(event))["value"]["amount"]

    assert isinstance(amount, str)
    assert Decimal(amount) == event.value.amount  # type: ignore[attr-defined]


def test_a_delivered_quantity_stays_an_exact_decimal() -> None:
    payload = example(AssistanceDelivered.event_type) | {"quantity": "12.5"}

    delivered = AssistanceDelivered.model_validate(payload)

    assert delivered.quantity == Decimal("12.5")
    assert json.loads(encode(delivered))["quantity"] == "12.5"
