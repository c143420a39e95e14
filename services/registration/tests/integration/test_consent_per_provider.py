"""Consent to data sharing with one financial service provider (issue 24), on the real broker
and database: recorded at registration or later, withdrawn on its own, ended by erasure,
published with its recipient, and never taken for consent to data sharing in general. A
provider's payment file holds a household only while it consents to that provider."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    ConsentRecorded,
    ConsentWithdrawn,
    HouseholdRegistered,
    Money,
    PaymentCycleApproved,
    PaymentInstructed,
    PaymentModality,
)
from aidmesh_registration.iban import with_check_digits
from aidmesh_runtime.auth import REGISTRATION_ERASE, REGISTRATION_PAYMENT_FILES
from aidmesh_runtime.testing import Database, auth_headers, kafka_producer, publish
from httpx import AsyncClient

pytestmark = pytest.mark.integration

Body = Callable[..., dict[str, Any]]
FSP = "privatbank"
CASH_OFFICER = auth_headers(REGISTRATION_PAYMENT_FILES, org="IOM-CASH", sub="user:cash-officer")
DPO = auth_headers(REGISTRATION_ERASE, org="IOM-DPO")


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[Any]:
    async with kafka_producer() as producer:
        yield producer


def new_iban() -> str:
    return with_check_digits("UA", f"322313{uuid4().int % 10**19:019d}")


async def register(registration: AsyncClient, body: dict[str, Any]) -> UUID:
    response = await registration.post("/households", json=body)
    assert response.status_code == 201, response.text
    return UUID(response.json()["household_id"])


async def outbox_of(database: asyncpg.Connection, household_id: UUID, event: type) -> list[Any]:
    """The events of a type the service published about a household, in order, with their
    envelopes."""
    found = await Database(database).outbox(event)
    return [(envelope, e) for envelope, e in found if e.household_id == household_id]


async def pay_in_one_cycle(producer: Any, database: asyncpg.Connection, household_id: UUID) -> UUID:
    """A bank-transfer cycle of FSP paying one household, as cash publishes it."""
    payment = PaymentInstructed(
        payment_id=uuid4(),
        cycle_id=uuid4(),
        household_id=household_id,
        amount=Money(amount=Decimal("10800.00")),
        first_month="2027-01",
        months=3,
        fsp=FSP,
        modality=PaymentModality.BANK_TRANSFER,
        instructed_at=datetime.now(UTC),
    )
    approval = PaymentCycleApproved(
        cycle_id=payment.cycle_id,
        payments=1,
        total=payment.amount,
        approved_by="IOM-CASH",
        approved_at=datetime.now(UTC),
    )
    await publish(producer, payment, source="/aidmesh/cash")
    await publish(producer, approval, source="/aidmesh/cash")
    await Database(database).eventually(
        "SELECT 1 FROM payment_cycles c JOIN payment_instructions i USING (cycle_id)"
        " WHERE c.cycle_id = $1",
        payment.cycle_id,
        what="the cycle's approval and instruction",
    )
    return payment.cycle_id


async def file_rows(registration: AsyncClient, cycle_id: UUID) -> list[dict[str, str]]:
    response = await registration.get(f"/payment-files/{cycle_id}", headers=CASH_OFFICER)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_consent_to_providers_given_at_registration_is_kept_beside_the_general_one(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    household_id = await register(
        registration, body(consents=["registration"], data_sharing_with=[FSP, "ukrposhta"])
    )

    household = (await registration.get(f"/households/{household_id}")).json()
    history = (await registration.get(f"/households/{household_id}/consents")).json()

    assert household["consents"] == ["registration"]
    assert household["data_sharing_with"] == [FSP, "ukrposhta"]
    assert sorted((c["purpose"], c["recipient"], c["active"]) for c in history) == [
        ("data_sharing", FSP, True),
        ("data_sharing", "ukrposhta", True),
        ("registration", None, True),
    ]
    [(registered_envelope, registered)] = await outbox_of(
        database, household_id, HouseholdRegistered
    )
    assert {c.value for c in registered.consents} == {"registration"}
    recorded = await outbox_of(database, household_id, ConsentRecorded)
    assert sorted((e.purpose.value, e.recipient, e.recorded_by) for _, e in recorded) == [
        ("data_sharing", FSP, "DRC"),
        ("data_sharing", "ukrposhta", "DRC"),
    ]
    assert {envelope.causationid for envelope, _ in recorded} == {registered_envelope.id}


async def test_consent_to_the_provider_recorded_later_puts_the_household_in_its_file(
    registration: AsyncClient, database: asyncpg.Connection, producer: Any, body: Body
) -> None:
    household_id = await register(registration, body(iban=new_iban()))  # data sharing in general

    recorded = await registration.post(
        f"/households/{household_id}/consents",
        json={"purpose": "data_sharing", "recipient": FSP},
    )
    cycle_id = await pay_in_one_cycle(producer, database, household_id)

    assert recorded.status_code == 201, recorded.text
    assert (recorded.json()["purpose"], recorded.json()["recipient"]) == ("data_sharing", FSP)
    [(_, event)] = await outbox_of(database, household_id, ConsentRecorded)
    assert (event.purpose.value, event.recipient) == ("data_sharing", FSP)
    [row] = await file_rows(registration, cycle_id)
    assert row["iban"]
    household = (await registration.get(f"/households/{household_id}")).json()
    assert (household["consents"], household["data_sharing_with"]) == (
        ["data_sharing", "registration"],
        [FSP],
    )


async def test_withdrawing_the_providers_consent_drops_the_household_and_keeps_the_general_one(
    registration: AsyncClient, database: asyncpg.Connection, producer: Any, body: Body
) -> None:
    household_id = await register(registration, body(iban=new_iban(), data_sharing_with=[FSP]))
    cycle_id = await pay_in_one_cycle(producer, database, household_id)
    assert len(await file_rows(registration, cycle_id)) == 1

    withdrawn = await registration.post(
        f"/households/{household_id}/consents/data_sharing/withdraw", json={"recipient": FSP}
    )

    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["recipient"] == FSP
    [(_, event)] = await outbox_of(database, household_id, ConsentWithdrawn)
    assert (event.purpose.value, event.recipient) == ("data_sharing", FSP)
    household = (await registration.get(f"/households/{household_id}")).json()
    assert (household["consents"], household["data_sharing_with"]) == (
        ["data_sharing", "registration"],
        [],
    )
    assert await file_rows(registration, cycle_id) == []  # the later download leaves it out
    dropped = await database.fetch(
        "SELECT rows_written, rows_dropped FROM payment_file_downloads WHERE cycle_id = $1"
        " ORDER BY downloaded_at",
        cycle_id,
    )
    assert [tuple(d) for d in dropped] == [(1, 0), (0, 1)]


async def test_withdrawing_data_sharing_in_general_leaves_the_providers_consent(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    household_id = await register(registration, body(data_sharing_with=[FSP]))

    withdrawn = await registration.post(
        f"/households/{household_id}/consents/data_sharing/withdraw", json={}
    )

    assert withdrawn.status_code == 200, withdrawn.text
    [(_, event)] = await outbox_of(database, household_id, ConsentWithdrawn)
    assert event.recipient is None
    household = (await registration.get(f"/households/{household_id}")).json()
    assert (household["consents"], household["data_sharing_with"]) == (["registration"], [FSP])


async def test_a_providers_consent_given_twice_or_withdrawn_without_being_given_is_a_conflict(
    registration: AsyncClient, body: Body
) -> None:
    household_id = await register(registration, body(data_sharing_with=[FSP]))
    consents = f"/households/{household_id}/consents"

    again = await registration.post(consents, json={"purpose": "data_sharing", "recipient": FSP})
    never_given = await registration.post(
        f"{consents}/data_sharing/withdraw", json={"recipient": "ukrposhta"}
    )

    assert again.status_code == 409
    assert again.json()["detail"] == f"consent for data_sharing with {FSP} is already recorded"
    assert never_given.status_code == 409
    assert "no consent for data_sharing with ukrposhta" in never_given.json()["detail"]


async def test_a_recipient_is_refused_for_a_purpose_other_than_data_sharing(
    registration: AsyncClient, body: Body
) -> None:
    household_id = await register(registration, body())

    refused = await registration.post(
        f"/households/{household_id}/consents", json={"purpose": "referral", "recipient": FSP}
    )

    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "recipient"]


async def test_erasure_ends_the_consent_to_each_provider(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    household_id = await register(registration, body(data_sharing_with=[FSP, "ukrposhta"]))

    erased = await registration.post(
        f"/households/{household_id}/erasure",
        json={"reason_code": "data_subject_request", "requested_by": "IOM-DPO"},
        headers=DPO,
    )

    assert erased.status_code == 200, erased.text
    ended = await database.fetch(
        "SELECT recipient, ended_reason FROM consents WHERE household_id = $1"
        " AND recipient IS NOT NULL ORDER BY recipient",
        household_id,
    )
    assert [tuple(r) for r in ended] == [(FSP, "erased"), ("ukrposhta", "erased")]
    row = await database.fetchrow(
        "SELECT consents, data_sharing_with FROM households WHERE household_id = $1", household_id
    )
    assert (row["consents"], row["data_sharing_with"]) == ([], [])
