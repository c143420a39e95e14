"""The provider's file: who is in it, with what, and why anyone else is withheld. Pure: no
database, no broker, no clock."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import ConsentPurpose, PaymentModality, WithheldReason
from aidmesh_registration import overlaps
from aidmesh_registration.crypto import Vault, new_kek
from aidmesh_registration.domain import Conflict, Household, HouseholdIn, HouseholdStatus, NotFound
from aidmesh_registration.interagency import AssistanceListIn
from aidmesh_registration.payment_file import (
    Cycle,
    Instruction,
    Row,
    columns,
    decide,
    refuse_unless_complete,
    write_csv,
)

TODAY = date(2027, 1, 12)
IBAN = "UA213223130000026007233566001"
BANK, CASH = PaymentModality.BANK_TRANSFER, PaymentModality.CASH_PICKUP
#: The provider of the cycles these payments are in.
FSP = "privatbank"


def person(relation: str, **overrides: Any) -> dict[str, Any]:
    return {
        "family_name": "Коваленко",
        "given_name": "Олена",
        "patronymic": "Петрівна",
        "sex": "female",
        "date_of_birth": "1984-05-03",
        "relation": relation,
    } | overrides


def household(**overrides: Any) -> Household:
    data = {
        "channel": "field_office",
        "location": {"adm1_pcode": "UA63"},
        "displacement_status": "idp",
        "phone": "050 123 45 67",
        "iban": IBAN,
        "members": [
            person("head", documents=[{"kind": "passport", "number": "ЕК123456"}]),
            person(
                "child",
                given_name="Андрій",
                patronymic="Іванович",
                sex="male",
                date_of_birth="2012-09-01",
            ),
        ],
        "consents": ["registration", "data_sharing"],
        "data_sharing_with": [FSP],
    } | overrides
    registration = HouseholdIn.model_validate(data)
    return registration.to_household(
        household_id=uuid4(),
        member_ids=[uuid4() for _ in registration.members],
        registered_at=datetime(2026, 1, 12, tzinfo=UTC),
    )


def instruction(modality: PaymentModality = BANK, amount: str = "10800.00") -> Instruction:
    return Instruction(
        payment_id=uuid4(),
        household_id=uuid4(),
        amount=Decimal(amount),
        currency="UAH",
        modality=modality,
        fsp=FSP,
    )


def test_a_bank_transfer_pays_the_head_into_the_households_iban() -> None:
    paid = instruction(BANK)

    row = decide(paid, household(), today=TODAY)

    assert row == Row(
        paid.payment_id, Decimal("10800.00"), "UAH", "Коваленко Олена Петрівна", iban=IBAN
    )


def test_a_cash_pickup_names_the_heads_identity_document_and_the_phone() -> None:
    row = decide(instruction(CASH), household(), today=TODAY)

    assert isinstance(row, Row)
    assert (row.document_type, row.document_number, row.phone) == (
        "passport",
        "ЕК123456",
        "+380501234567",
    )
    assert row.iban is None


def test_a_head_without_a_document_leaves_the_pickup_to_an_adult_member_who_has_one() -> None:
    members = [
        person("head"),
        person(
            "spouse",
            given_name="Іван",
            patronymic="Петрович",
            sex="male",
            documents=[{"kind": "id_card", "number": "904412733"}],
        ),
    ]

    row = decide(instruction(CASH), household(members=members), today=TODAY)

    assert isinstance(row, Row)
    assert (row.payee_name, row.document_type) == ("Коваленко Іван Петрович", "id_card")


def test_a_child_with_a_document_does_not_collect_cash_and_an_idp_certificate_is_no_id() -> None:
    members = [
        person("head", documents=[{"kind": "idp_certificate", "number": "6312-5518203347"}]),
        person(
            "child",
            given_name="Андрій",
            sex="male",
            date_of_birth="2012-09-01",
            documents=[{"kind": "id_card", "number": "904412733"}],
        ),
    ]

    assert decide(instruction(CASH), household(members=members), today=TODAY) == (
        WithheldReason.NO_DOCUMENT
    )


@pytest.mark.parametrize(
    ("modality", "change", "reason"),
    [
        (BANK, {"iban": None}, WithheldReason.NO_BANK_ACCOUNT),
        (BANK, {"data_sharing_with": []}, WithheldReason.NO_DATA_SHARING_CONSENT),
        (CASH, {"data_sharing_with": []}, WithheldReason.NO_DATA_SHARING_CONSENT),
    ],
)
def test_a_payment_is_withheld_when_the_household_lacks_what_it_needs(
    modality: PaymentModality, change: dict[str, Any], reason: WithheldReason
) -> None:
    assert decide(instruction(modality), household(**change), today=TODAY) == reason


def test_an_erased_or_unknown_household_is_withheld_as_such() -> None:
    erased = replace(
        household(), status=HouseholdStatus.ERASED, members=(), iban=None, consents=frozenset()
    )

    assert decide(instruction(), erased, today=TODAY) == WithheldReason.ERASED
    assert decide(instruction(), None, today=TODAY) == WithheldReason.UNKNOWN_HOUSEHOLD


def test_consent_to_data_sharing_in_general_does_not_put_a_household_in_a_providers_file() -> None:
    in_general_only = household(consents=["registration", "data_sharing"], data_sharing_with=[])

    assert ConsentPurpose.DATA_SHARING in in_general_only.consents
    assert decide(instruction(), in_general_only, today=TODAY) == (
        WithheldReason.NO_DATA_SHARING_CONSENT
    )


def test_consent_to_sharing_with_another_provider_does_not_put_it_in_this_ones_file() -> None:
    another = household(data_sharing_with=["ukrposhta"])

    assert decide(instruction(), another, today=TODAY) == WithheldReason.NO_DATA_SHARING_CONSENT


def test_consent_to_sharing_with_the_cycles_provider_is_enough_without_the_general_one() -> None:
    this_provider_only = household(consents=["registration"], data_sharing_with=[FSP])

    assert isinstance(decide(instruction(), this_provider_only, today=TODAY), Row)


def test_the_file_has_a_header_and_rows_in_payment_id_order_with_two_decimals() -> None:
    rows = [
        Row(UUID(int=2), Decimal("3600"), "UAH", "Б Б", iban=IBAN),
        Row(UUID(int=1), Decimal("7200.5"), "UAH", "А, А", iban=IBAN),
    ]

    text = write_csv(rows, columns=columns([BANK]))

    assert text.startswith("payment_id,amount,currency,payee_name,iban\r\n")
    parsed = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in parsed[1:]] == [str(UUID(int=1)), str(UUID(int=2))]
    assert parsed[1][1:4] == ["7200.50", "UAH", "А, А"]


def test_a_cash_pickup_file_has_document_and_phone_columns() -> None:
    assert columns([CASH]) == (
        "payment_id",
        "amount",
        "currency",
        "payee_name",
        "document_type",
        "document_number",
        "phone",
    )


def cycle(payments: int = 3, total: str = "300.00") -> Cycle:
    return Cycle(cycle_id=uuid4(), payments=payments, total=Decimal(total), file_produced_at=None)


def test_a_cycle_is_complete_once_every_announced_instruction_arrived() -> None:
    known = cycle()

    assert (
        refuse_unless_complete(known.cycle_id, known, received=3, received_total=Decimal("300.00"))
        is known
    )


def test_a_cycle_missing_instructions_says_how_many_of_how_many() -> None:
    known = cycle()

    with pytest.raises(Conflict, match="2 of 3") as refused:
        refuse_unless_complete(known.cycle_id, known, received=2, received_total=Decimal(200))

    assert refused.value.code == "incomplete"


def test_instructions_before_their_approval_are_incomplete_and_nothing_is_unknown() -> None:
    with pytest.raises(Conflict) as refused:
        refuse_unless_complete(uuid4(), None, received=2, received_total=Decimal(200))
    assert refused.value.code == "incomplete"

    with pytest.raises(NotFound):
        refuse_unless_complete(uuid4(), None, received=0, received_total=Decimal(0))


def test_instructions_that_do_not_add_up_to_the_approval_are_inconsistent() -> None:
    known = cycle()

    with pytest.raises(Conflict) as refused:
        refuse_unless_complete(known.cycle_id, known, received=3, received_total=Decimal(299))

    assert refused.value.code == "inconsistent"


async def test_a_list_is_refused_when_registration_has_no_shared_key() -> None:
    listed = AssistanceListIn.model_validate(
        {"sector": "cash", "first_month": "2027-01", "months": 1, "hashes": ["ab" * 32]}
    )

    with pytest.raises(Conflict) as refused:
        await overlaps.match_list(
            None,  # type: ignore[arg-type]  # refused before any SQL
            listed,
            agency="UNHCR",
            vault=Vault.from_config(new_kek("k1")),
            received_by="partner:unhcr",
        )

    assert refused.value.code == "interagency_key_missing"
    assert "AIDMESH_REGISTRATION_INTERAGENCY_KEY" in str(refused.value)
