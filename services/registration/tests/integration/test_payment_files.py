"""The provider's payment file, on the real broker and database (issue 24).

Cash's PaymentCycleApproved and PaymentInstructed are published on its topic as cash
would; registration keeps them, and writes the file only once every instruction has
arrived: the households that consented to sharing their details with the cycle's provider,
with what the modality needs, personal data in the file only, and one PayeeWithheld (ids
and a reason) for every other payment, once.
"""

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
    Money,
    PayeeWithheld,
    PaymentCycleApproved,
    PaymentInstructed,
    PaymentModality,
)
from aidmesh_registration.iban import with_check_digits
from aidmesh_runtime.auth import (
    REGISTRATION_ERASE,
    REGISTRATION_PAYMENT_FILES,
    REGISTRATION_READ,
    REGISTRATION_READ_ALL,
    REGISTRATION_REVIEW,
)
from aidmesh_runtime.testing import Database, EventLog, auth_headers, kafka_producer, publish
from httpx import AsyncClient

pytestmark = pytest.mark.integration

Body = Callable[..., dict[str, Any]]
CASH_OFFICER = auth_headers(REGISTRATION_PAYMENT_FILES, org="IOM-CASH", sub="user:cash-officer")
REVIEWER = auth_headers(REGISTRATION_READ, REGISTRATION_READ_ALL, REGISTRATION_REVIEW, org="IOM")
DPO = auth_headers(REGISTRATION_ERASE, org="IOM-DPO")
#: The providers of the cycles below: a bank for transfers, the post office for pick-ups.
BANK_FSP, PICKUP_FSP = "privatbank", "ukrposhta"


def new_iban() -> str:
    return with_check_digits("UA", f"322313{uuid4().int % 10**19:019d}")


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[Any]:
    async with kafka_producer() as producer:
        yield producer


async def register(registration: AsyncClient, body: dict[str, Any]) -> UUID:
    response = await registration.post("/households", json=body)
    assert response.status_code == 201, response.text
    return UUID(response.json()["household_id"])


class Cycle:
    """A cash cycle as cash publishes it: payments to households, then its approval."""

    def __init__(self, modality: PaymentModality = PaymentModality.BANK_TRANSFER) -> None:
        self.cycle_id = uuid4()
        self.modality = modality
        self.payments: list[PaymentInstructed] = []

    def pay(self, household_id: UUID, amount: str = "10800.00") -> UUID:
        payment = PaymentInstructed(
            payment_id=uuid4(),
            cycle_id=self.cycle_id,
            household_id=household_id,
            amount=Money(amount=Decimal(amount)),
            first_month="2027-01",
            months=3,
            fsp=BANK_FSP if self.modality is PaymentModality.BANK_TRANSFER else PICKUP_FSP,
            modality=self.modality,
            instructed_at=datetime.now(UTC),
        )
        self.payments.append(payment)
        return payment.payment_id

    def approval(self) -> PaymentCycleApproved:
        return PaymentCycleApproved(
            cycle_id=self.cycle_id,
            payments=len(self.payments),
            total=Money(amount=sum((p.amount.amount for p in self.payments), Decimal(0))),
            approved_by="IOM-CASH",
            approved_at=datetime.now(UTC),
        )


async def arrived(database: asyncpg.Connection, cycle: Cycle, *, instructions: int) -> None:
    await Database(database).eventually(
        "SELECT 1 FROM payment_instructions WHERE cycle_id = $1 HAVING count(*) >= $2",
        cycle.cycle_id,
        instructions,
        what=f"{instructions} instructions of the cycle",
    )


async def publish_cycle(producer: Any, database: asyncpg.Connection, cycle: Cycle) -> None:
    for payment in cycle.payments:
        await publish(producer, payment, source="/aidmesh/cash")
    await publish(producer, cycle.approval(), source="/aidmesh/cash")
    await arrived(database, cycle, instructions=len(cycle.payments))
    await Database(database).eventually(
        "SELECT 1 FROM payment_cycles WHERE cycle_id = $1", cycle.cycle_id, what="the approval"
    )


async def download(registration: AsyncClient, cycle: Cycle) -> list[dict[str, str]]:
    response = await registration.get(f"/payment-files/{cycle.cycle_id}", headers=CASH_OFFICER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


async def withheld_events(database: asyncpg.Connection, cycle: Cycle) -> dict[UUID, PayeeWithheld]:
    found = [e for _, e in await Database(database).outbox(PayeeWithheld)]
    mine = [e for e in found if e.cycle_id == cycle.cycle_id]
    assert len({e.payment_id for e in mine}) == len(mine), "a payment withheld twice"
    return {e.payment_id: e for e in mine}


async def test_the_bank_file_holds_only_consenting_households_with_an_iban_and_withholds_the_rest(
    registration: AsyncClient,
    database: asyncpg.Connection,
    events: EventLog,
    producer: Any,
    body: Body,
) -> None:
    consenting = [BANK_FSP]
    paid_body = body(iban=new_iban(), data_sharing_with=consenting)
    paid = await register(registration, paid_body)
    refusing = await register(
        registration, body(iban=new_iban(), consents=["registration", "referral"])
    )
    # Consent to data sharing in general, and with another provider: not with this one.
    elsewhere = await register(registration, body(iban=new_iban(), data_sharing_with=[PICKUP_FSP]))
    without_account = await register(registration, body(data_sharing_with=consenting))
    erased = await register(registration, body(iban=new_iban(), data_sharing_with=consenting))
    assert (
        await registration.post(
            f"/households/{erased}/erasure",
            json={"reason_code": "data_subject_request", "requested_by": "IOM-DPO"},
            headers=DPO,
        )
    ).status_code == 200
    # A household merged into another one is paid as the one it was merged into.
    survivor_body = body(iban=new_iban(), data_sharing_with=consenting)
    survivor = await register(registration, survivor_body)
    merged = await register(registration, body())
    assert (
        await registration.post(
            f"/households/{merged}/merge", json={"into": str(survivor)}, headers=REVIEWER
        )
    ).status_code == 200
    cycle = Cycle()
    to_paid, to_refusing = cycle.pay(paid), cycle.pay(refusing, "7200.00")
    to_elsewhere = cycle.pay(elsewhere)
    to_without, to_erased = cycle.pay(without_account), cycle.pay(erased)
    to_unknown, to_merged = cycle.pay(uuid4()), cycle.pay(merged, "3600.50")
    await publish_cycle(producer, database, cycle)

    rows = await download(registration, cycle)

    assert list(rows[0]) == ["payment_id", "amount", "currency", "payee_name", "iban"]
    by_payment = {UUID(r["payment_id"]): r for r in rows}
    assert set(by_payment) == {to_paid, to_merged}
    head = paid_body["members"][0]
    assert by_payment[to_paid] == {
        "payment_id": str(to_paid),
        "amount": "10800.00",
        "currency": "UAH",
        "payee_name": f"{head['family_name']} {head['given_name']} {head['patronymic']}",
        "iban": paid_body["iban"],
    }
    assert by_payment[to_merged]["iban"] == survivor_body["iban"]
    assert by_payment[to_merged]["amount"] == "3600.50"
    withheld = await withheld_events(database, cycle)
    assert {p: e.reason.value for p, e in withheld.items()} == {
        to_refusing: "no_data_sharing_consent",
        to_elsewhere: "no_data_sharing_consent",
        to_without: "no_bank_account",
        to_erased: "erased",
        to_unknown: "unknown_household",
    }
    assert withheld[to_refusing].household_id == refusing
    # On the household topic, keyed by household, ids and a reason only.
    seen = await events.wait_for(
        lambda rs: len(rs) >= 5,
        select=lambda r: (
            r.envelope is not None
            and r.envelope.type == PayeeWithheld.event_type
            and str(cycle.cycle_id).encode() in (r.value or b"")
        ),
        what="the cycle's PayeeWithheld on Kafka",
    )
    for record in seen:
        assert record.topic == "aidmesh.registration.household.v1"
        assert set(record.event().model_dump()) == {
            "payment_id",
            "cycle_id",
            "household_id",
            "reason",
            "withheld_at",
        }
        assert record.key == str(record.event().household_id).encode()  # type: ignore[attr-defined]


async def test_the_file_downloaded_again_is_the_same_and_withholds_no_one_twice(
    registration: AsyncClient, database: asyncpg.Connection, producer: Any, body: Body
) -> None:
    paid = await register(registration, body(iban=new_iban(), data_sharing_with=[BANK_FSP]))
    unpaid = await register(registration, body(data_sharing_with=[BANK_FSP]))
    cycle = Cycle()
    cycle.pay(paid)
    cycle.pay(unpaid)
    await publish_cycle(producer, database, cycle)

    first = await registration.get(f"/payment-files/{cycle.cycle_id}", headers=CASH_OFFICER)
    second = await registration.get(f"/payment-files/{cycle.cycle_id}", headers=CASH_OFFICER)

    assert first.status_code == second.status_code == 200
    assert first.text == second.text
    assert len(await withheld_events(database, cycle)) == 1
    listed = await registration.get(
        f"/payment-files/{cycle.cycle_id}/withheld", headers=CASH_OFFICER
    )
    assert listed.status_code == 200, listed.text
    assert [(i["household_id"], i["reason"]) for i in listed.json()["items"]] == [
        (str(unpaid), "no_bank_account")
    ]
    downloads = await database.fetch(
        "SELECT downloaded_by, org, rows_written FROM payment_file_downloads WHERE cycle_id = $1",
        cycle.cycle_id,
    )
    assert [tuple(d) for d in downloads] == [("user:cash-officer", "IOM-CASH", 1)] * 2


async def test_a_cash_pickup_file_names_the_payees_document_and_phone(
    registration: AsyncClient, database: asyncpg.Connection, producer: Any, body: Body
) -> None:
    household = body(data_sharing_with=[PICKUP_FSP])
    with_document = await register(registration, household)
    members = [{k: v for k, v in m.items() if k != "documents"} for m in body()["members"]]
    without_document = await register(
        registration, body(members=members, data_sharing_with=[PICKUP_FSP])
    )
    cycle = Cycle(PaymentModality.CASH_PICKUP)
    to_document, to_none = cycle.pay(with_document), cycle.pay(without_document)
    await publish_cycle(producer, database, cycle)

    [row] = await download(registration, cycle)

    assert list(row) == [
        "payment_id",
        "amount",
        "currency",
        "payee_name",
        "document_type",
        "document_number",
        "phone",
    ]
    passport = household["members"][0]["documents"][0]["number"]
    assert (row["payment_id"], row["document_type"], row["document_number"], row["phone"]) == (
        str(to_document),
        "passport",
        passport,
        household["phone"],
    )
    withheld = await withheld_events(database, cycle)
    assert {p: e.reason.value for p, e in withheld.items()} == {to_none: "no_document"}


async def test_the_file_waits_for_every_instruction_the_approval_announced(
    registration: AsyncClient, database: asyncpg.Connection, producer: Any, body: Body
) -> None:
    households = [
        await register(registration, body(iban=new_iban(), data_sharing_with=[BANK_FSP]))
        for _ in range(3)
    ]
    cycle = Cycle()
    for household_id in households:
        cycle.pay(household_id)
    url = f"/payment-files/{cycle.cycle_id}"
    assert (await registration.get(url, headers=CASH_OFFICER)).status_code == 404

    # Two instructions arrive before the approval (other partitions), the third after it.
    for payment in cycle.payments[:2]:
        await publish(producer, payment, source="/aidmesh/cash")
    await arrived(database, cycle, instructions=2)
    early = await registration.get(url, headers=CASH_OFFICER)
    assert early.status_code == 409, early.text
    assert early.json()["detail"]["reason"] == "incomplete"
    await publish(producer, cycle.approval(), source="/aidmesh/cash")
    await Database(database).eventually(
        "SELECT 1 FROM payment_cycles WHERE cycle_id = $1", cycle.cycle_id, what="the approval"
    )
    waiting = await registration.get(url, headers=CASH_OFFICER)
    assert waiting.status_code == 409
    assert waiting.json()["detail"] == {
        "reason": "incomplete",
        "message": f"payment cycle {cycle.cycle_id}: 2 of 3 payment instructions received so far",
    }
    assert (await registration.get(f"{url}/withheld", headers=CASH_OFFICER)).status_code == 409
    # Redelivered events change nothing.
    await publish(producer, cycle.payments[0], source="/aidmesh/cash")
    await publish(producer, cycle.payments[2], source="/aidmesh/cash")
    await arrived(database, cycle, instructions=3)

    assert len(await download(registration, cycle)) == 3
    assert await withheld_events(database, cycle) == {}


async def test_the_file_needs_its_own_scope(registration: AsyncClient) -> None:
    response = await registration.get(f"/payment-files/{uuid4()}")  # an officer's token

    assert response.status_code == 403


async def test_a_mistyped_iban_is_refused_naming_the_field_and_a_later_one_is_an_update(
    registration: AsyncClient, database: asyncpg.Connection, body: Body
) -> None:
    iban = new_iban()
    mistyped = iban[:-1] + str((int(iban[-1]) + 1) % 10)

    refused = await registration.post("/households", json=body(iban=mistyped))
    household_id = await register(registration, body())
    updated = await registration.patch(f"/households/{household_id}", json={"iban": iban})

    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "iban"] and mistyped not in refused.text
    assert updated.status_code == 200, updated.text
    assert updated.json()["changed"] == ["bank_account"]
    assert (await registration.get(f"/households/{household_id}")).json()["iban"] == iban
    outbox = await database.fetch("SELECT payload FROM outbox")
    assert not any(iban.encode() in bytes(r["payload"]) for r in outbox)
