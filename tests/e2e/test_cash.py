"""Multi-purpose cash across the running services (issue 24): households registered over
HTTP with a cash need are entitled by cash, paid in a cycle a second person approves,
written by registration into the provider's file (their personal data there and nowhere
else), withheld when registration lacks what the provider needs, and reconciled from the
provider's report into AssistanceDelivered in each household's own flow."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import json
import re
import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from aidmesh_runtime.auth import (
    CASH_APPROVE,
    CASH_READ,
    CASH_WRITE,
    REGISTRATION_ASSISTANCE_LISTS,
    REGISTRATION_PAYMENT_FILES,
)
from aidmesh_runtime.testing import EventLog

pytestmark = pytest.mark.e2e

OBLAST = "UA71"  # Cherkasy: no other end-to-end test pays there
ELSEWHERE = "UA74"  # Chernihiv: for the other agency's list
DELIVERED = "org.aidmesh.assistance.assistance.delivered.v1"
WITHHELD = "org.aidmesh.registration.payee.withheld.v1"
WAIT_S = 90.0


def iban(account: str) -> str:
    """A Ukrainian IBAN with valid check digits for a 25-digit BBAN (bank code + account)."""
    bban = account.rjust(25, "0")
    rearranged = bban + "3010" + "00"  # U = 30, A = 10, check digits 00
    check = 98 - int(rearranged) % 97
    return f"UA{check:02d}{bban}"


def household(name: str, document: str, phone: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "field_office",
        "location": {"adm1_pcode": OBLAST},
        "displacement_status": "idp",
        "size": 3,
        "phone": phone,
        "members": [
            {
                "full_name": name,
                "sex": "female",
                "date_of_birth": "1984-03-12",
                "relation": "head",
                "document_number": document,
            },
            {"full_name": "Дитина Перша", "sex": "male", "date_of_birth": "2015-06-01"},
            {"full_name": "Дитина Друга", "sex": "female", "date_of_birth": "2018-09-09"},
        ],
        "consents": ["registration", "data_sharing"],
        "needs": [{"sector": "cash", "severity": 4}],
    }
    for member in body["members"][1:]:
        member["relation"] = "child"
    body.update(overrides)
    return body


async def eventually(call: Any, *, what: str, ok: int = 200) -> httpx.Response:
    deadline = time.monotonic() + WAIT_S
    while (response := await call()).status_code != ok:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {response.status_code} {response.text}")
        await asyncio.sleep(0.2)
    return response


async def test_cash_pays_households_with_their_personal_data_only_in_the_provider_s_file(
    platform: Any, events: EventLog, http: httpx.AsyncClient
) -> None:
    registration, cash = platform.url("registration"), platform.url("cash")
    officer = platform.token(CASH_READ, CASH_WRITE, sub="user:e2e-cash-officer")
    approver = platform.token(CASH_READ, CASH_APPROVE, sub="user:e2e-cash-approver")
    liaison = platform.token(REGISTRATION_PAYMENT_FILES, sub="user:e2e-provider-liaison")
    run = uuid4().int % 10**6
    people = {
        "paid": ("Оксана Іванівна Кравчук", f"ЕК{run:06d}", "+380671110001", iban(f"3052{run}1")),
        "failed": ("Марія Петрівна Гнатюк", f"ЕМ{run:06d}", "+380671110002", iban(f"3052{run}2")),
        "no_iban": ("Ганна Олегівна Савчук", f"ЕО{run:06d}", "+380671110003", None),
    }
    registered = {}
    for role, (name, document, phone, account) in people.items():
        body = household(name, document, phone, **({"iban": account} if account else {}))
        body["data_sharing_with"] = ["privatbank"]  # the cycle's provider
        response = await http.post(registration + "/households", json=body)
        assert response.status_code == 201, response.text
        registered[role] = response.json()
    ids = {role: r["household_id"] for role, r in registered.items()}
    for household_id in ids.values():
        await eventually(
            lambda h=household_id: http.get(f"{cash}/households/{h}/entitlement", headers=officer),
            what="cash's entitlement",
        )

    opened = await http.post(
        cash + "/cycles",
        headers=officer,
        json={
            "adm1_pcodes": [OBLAST],
            "first_month": "2027-02",
            "months": 1,
            "budget_uah": "1000000.00",
            "fsp": "privatbank",
            "modality": "bank_transfer",
        },
    )
    assert opened.status_code == 201, opened.text
    cycle_id = opened.json()["cycle_id"]
    assert opened.json()["proposed"]["households"] >= 3
    approved = await http.post(f"{cash}/cycles/{cycle_id}/approval", headers=approver)
    assert approved.status_code == 200, approved.text

    # Registration writes the provider's file once every instruction has arrived.
    produced = await eventually(
        lambda: http.get(f"{registration}/payment-files/{cycle_id}", headers=liaison),
        what="the provider's file",
    )
    rows = {row["iban"]: row for row in csv.DictReader(io.StringIO(produced.text))}
    paid_row, failed_row = rows[people["paid"][3]], rows[people["failed"][3]]
    assert paid_row["amount"] == "10800.00"
    assert set(paid_row["payee_name"].split()) == set(people["paid"][0].split())
    assert set(failed_row["payee_name"].split()) == set(people["failed"][0].split())
    withheld = (
        await http.get(f"{registration}/payment-files/{cycle_id}/withheld", headers=liaison)
    ).json()
    assert {(w["household_id"], w["reason"]) for w in withheld["items"]} >= {
        (ids["no_iban"], "no_bank_account")
    }

    unknown = uuid4()
    report = "payment_id,status,amount,paid_at,reason\n" + "\n".join(
        [
            f"{paid_row['payment_id']},paid,10800.00,2027-02-03T12:00:00+02:00,",
            f"{failed_row['payment_id']},failed,0,,account_closed",
            f"{unknown},paid,10800.00,2027-02-03T12:00:00+02:00,",
        ]
    )
    reconciled = await http.post(
        f"{cash}/cycles/{cycle_id}/reports",
        headers=officer,
        json={"control_total_uah": "21600.00", "csv": report},
    )
    assert reconciled.status_code == 201, reconciled.text
    result = reconciled.json()
    assert (result["paid"], result["failed"]) == (1, 1)
    assert [(r["payment_id"], r["reason"]) for r in result["refused"]] == [
        (str(unknown), "unknown_payment")
    ]

    # AssistanceDelivered for the paid household only, in its own flow; the withheld one's
    # payment is not made (cash heard registration's PayeeWithheld).
    flows = {role: UUID(r["correlation_id"]) for role, r in registered.items()}
    [delivered] = await events.wait_for(
        lambda rs: len(rs) == 1,
        select=lambda r: (
            r.envelope is not None
            and r.envelope.type == DELIVERED
            and r.envelope.correlationid in flows.values()
        ),
        timeout_s=WAIT_S,
        what="AssistanceDelivered of the paid household",
    )
    assert delivered.envelope is not None
    assert delivered.envelope.correlationid == flows["paid"]
    assert delivered.event().activity == "cash.mpca"
    await events.wait_for(
        bool,
        select=lambda r: (
            r.envelope is not None
            and r.envelope.type == WITHHELD
            and r.envelope.correlationid == flows["no_iban"]
        ),
        timeout_s=WAIT_S,
        what="PayeeWithheld in the withheld household's flow",
    )
    lines = (await http.get(f"{cash}/cycles/{cycle_id}/lines", headers=officer)).json()
    statuses = {line["household_id"]: line["payment_status"] for line in lines}
    assert {role: statuses[ids[role]] for role in ids} == {
        "paid": "paid",
        "failed": "failed",
        "no_iban": "withheld",
    }

    # No name, document, phone or IBAN on any topic, in any event of these flows.
    flow_records = [
        r
        for r in events.records
        if r.envelope is not None and r.envelope.correlationid in flows.values()
    ]
    assert {r.envelope.type.split(".")[2] for r in flow_records if r.envelope} >= {
        "registration",
        "assessment",
        "cash",
        "assistance",
    }
    for record in flow_records:
        wire = (record.value or b"").decode() + json.dumps(record.headers, ensure_ascii=False)
        for name, document, phone, account in people.values():
            for secret in (name, name.split()[-1], document, phone, phone[-9:], account):
                if secret:
                    assert secret not in wire, f"{record.envelope.type} leaks {secret!r}"


async def test_another_agency_s_hashed_list_holds_the_household_it_names(
    platform: Any, http: httpx.AsyncClient
) -> None:
    registration, cash = platform.url("registration"), platform.url("cash")
    officer = platform.token(CASH_READ, CASH_WRITE, sub="user:e2e-cash-officer")
    agency = platform.token(REGISTRATION_ASSISTANCE_LISTS, org="UNHCR", sub="partner:unhcr")
    document = f"ЕТ{uuid4().int % 10**6:06d}"
    body = household("Олена Миколаївна Бойко", document, "+380671110004")
    body["location"] = {"adm1_pcode": ELSEWHERE}
    response = await http.post(registration + "/households", json=body)
    assert response.status_code == 201, response.text
    household_id = response.json()["household_id"]
    await eventually(
        lambda: http.get(f"{cash}/households/{household_id}/entitlement", headers=officer),
        what="cash's entitlement",
    )

    # What the agency runs (registration's README): its own spelling of the number.
    key = base64.b64decode(platform.interagency_key)
    lookalikes = str.maketrans("ABCEHIKMOPTX", "АВСЕНІКМОРТХ")
    spelled = "et " + document[2:5] + "-" + document[5:]
    normal = re.sub(r"[\s\-.]", "", spelled).upper().translate(lookalikes)
    hashes = [hmac.new(key, normal.encode(), hashlib.sha256).hexdigest(), "ab" * 32]
    listed = await http.post(
        registration + "/assistance-lists",
        headers=agency,
        json={"sector": "cash", "first_month": "2027-03", "months": 2, "hashes": hashes},
    )
    assert listed.status_code in (200, 201), listed.text
    assert listed.json()["matched_households"] == 1

    conn = await asyncpg.connect(platform.dsn("cash"))
    try:
        deadline = time.monotonic() + WAIT_S
        while not await conn.fetchval(
            "SELECT 1 FROM agency_overlaps WHERE household_id = $1", UUID(household_id)
        ):
            assert time.monotonic() < deadline, "cash never heard of the overlap"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    opened = await http.post(
        cash + "/cycles",
        headers=officer,
        json={
            "adm1_pcodes": [ELSEWHERE],
            "first_month": "2027-02",
            "months": 2,
            "budget_uah": "1000000.00",
            "fsp": "ukrposhta",
            "modality": "cash_pickup",
        },
    )
    lines = (
        await http.get(f"{cash}/cycles/{opened.json()['cycle_id']}/lines", headers=officer)
    ).json()
    [line] = [line for line in lines if line["household_id"] == household_id]
    assert (line["status"], line["reason"]) == ("held", "assisted_by_another_agency")
