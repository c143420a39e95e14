"""No personal data leaves registration on any topic.

Every path that publishes is driven with distinctive names, phones, documents, birth dates
and addresses: registration, update, Kobo create and edit, the intake topic, a duplicate
found and merged, another dismissed, consent recorded and withdrawn, a bank account (IBAN)
given and changed, cash's payments turned into the provider's file (and PayeeWithheld), and
another agency's hashed list matched (AssistanceOverlapFound). Then every record
registration published (each outbox row, and the Kafka record of each of those ids: value,
key and headers) is searched for each of those values, in Cyrillic, in the official Latin
form, as a matching key, and the phones and documents in their other spellings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    IntakeSource,
    IntakeSubmitted,
    Money,
    PaymentCycleApproved,
    PaymentInstructed,
    PaymentModality,
)
from aidmesh_registration.interagency import keyed_hash
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_registration.translit import name_key, to_latin
from aidmesh_runtime.auth import (
    REGISTRATION_ASSISTANCE_LISTS,
    REGISTRATION_ERASE,
    REGISTRATION_INTAKE,
    REGISTRATION_PAYMENT_FILES,
    REGISTRATION_READ,
    REGISTRATION_REVIEW,
    REGISTRATION_WRITE,
)
from aidmesh_runtime.testing import (
    Database,
    EventLog,
    Seen,
    auth_headers,
    kafka_producer,
    publish,
)
from httpx import AsyncClient

pytestmark = pytest.mark.integration

FAMILY = "Ґудзь-Щербатюк"
SECOND_FAMILY = "Кривошапко"
GIVEN = ("Євстахій", "Ярослава", "Їжена", "Юхим", "Зоряна", "Пилип")
PATRONYMIC = ("Олексійович", "Богданівна", "Остапівна")
PHONES = ("+380674418326", "+380935527104", "+380661239987")
PASSPORT, ID_CARD, IDP_CERTIFICATE = "ЕК734618", "904412733", "6312-5518203347"
BIRTHS = ("1968-02-27", "1971-11-23", "2009-04-16", "2013-12-05")
ADDRESSES = ("вул. Квітки-Основ'яненка, 118, кв. 63, Харків", "пров. Ґонти, 7, Полтава")
IBANS = ("UA213223130000026007233566001", "UA553052990000026004040404040")


def person(given: str, family: str, born: str, relation: str, **more: Any) -> dict[str, Any]:
    return {
        "family_name": family,
        "given_name": given,
        "sex": "female" if given.endswith("а") else "male",
        "date_of_birth": born,
        "relation": relation,
    } | more


def household(**overrides: Any) -> dict[str, Any]:
    return {
        "channel": "field_office",
        "partner_org": "IOM",
        "location": {"adm3_pcode": "UA6312001"},
        "displacement_status": "idp",
        "address": ADDRESSES[0],
        "phone": PHONES[0],
        "iban": IBANS[0],
        "members": [
            person(
                GIVEN[0],
                FAMILY,
                BIRTHS[0],
                "head",
                patronymic=PATRONYMIC[0],
                documents=[
                    {"kind": "passport", "number": PASSPORT},
                    {"kind": "idp_certificate", "number": IDP_CERTIFICATE},
                ],
                vulnerabilities=["disability"],
            ),
            person(
                GIVEN[1],
                FAMILY,
                BIRTHS[1],
                "spouse",
                patronymic=PATRONYMIC[1],
                documents=[{"kind": "id_card", "number": ID_CARD}],
            ),
            person(GIVEN[2], FAMILY, BIRTHS[2], "child", patronymic=PATRONYMIC[2]),
        ],
        "consents": ["registration", "data_sharing"],
        # Its details may go to the provider that pays it (ConsentRecorded naming it).
        "data_sharing_with": ["privatbank"],
        "needs": [
            {"sector": "shelter", "severity": 4, "details": {"damage_level": "heavy"}},
            {"sector": "protection", "severity": 3, "details": {"concern_codes": ["gbv_risk"]}},
        ],
    } | overrides


def kobo_answers(instance: str, **answers: Any) -> dict[str, Any]:
    return {
        "_uuid": instance.removeprefix("uuid:"),
        "meta/instanceID": instance,
        "_submission_time": "2026-01-12T08:20:11",
        "_xform_id_string": "aTEr5MZHhLfRW7bDZXrxZ4",
        "consent/registration": "yes",
        "consent/data_sharing": "yes",
        "location/adm1": "UA53",
        "location/address": ADDRESSES[1],
        "household/displacement_status": "returnee",
        "household/phone": "093 552 71 04",  # PHONES[1]
        "head/family_name": SECOND_FAMILY,
        "head/given_name": GIVEN[3],
        "head/patronymic": PATRONYMIC[0],
        "head/sex": "male",
        "head/dob": BIRTHS[3].replace("2013", "1959"),
        "head/document_type": "passport",
        "head/document_number": "ek 734619",
        "members": [
            {
                "members/family_name": SECOND_FAMILY,
                "members/given_name": GIVEN[4],
                "members/sex": "female",
                "members/dob": BIRTHS[3],
                "members/relation": "grandchild",
            }
        ],
        "needs/health_severity": "3",
        "needs/health_services": "mhpss",
    } | answers


def spellings() -> set[str]:
    """Every personal value, in every form it could leak in."""
    names = {FAMILY, SECOND_FAMILY, *GIVEN, *PATRONYMIC, *FAMILY.split("-")}
    found = set()
    for name in names:
        latin = to_latin(name)
        found |= {name, name.upper(), latin, latin.upper(), latin.lower(), name_key(name)}
    for phone in PHONES:
        national = "0" + phone.removeprefix("+380")
        found |= {phone, phone.removeprefix("+"), national, phone[-7:]}
    found.add("552 71 04")
    for document in (PASSPORT, ID_CARD, IDP_CERTIFICATE, "ЕК734619"):
        found |= {document, document[2:] if document[0].isalpha() else document}
    found |= {"EK734618", "EK734619", IDP_CERTIFICATE.replace("-", "")}
    found |= set(BIRTHS) | {"1959-12-05", *(b.replace("-", "") for b in BIRTHS)}
    for address in ADDRESSES:
        found |= {address, "Квітки-Основ'яненка", "Kvitky-Osnovianenka", "Ґонти", "Gonty"}
    for iban in IBANS:
        grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        found |= {iban, iban.lower(), grouped, iban[10:], iban[4:]}
    # Only distinctive strings: a short number could occur by chance in a time or an id.
    return {s for s in found if len(s) >= (7 if s[-1].isdigit() else 5)}


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[Any]:
    async with kafka_producer() as producer:
        yield producer


async def ok(response: Any, *codes: int) -> dict[str, Any]:
    assert response.status_code in (codes or (200, 201)), response.text
    return response.json()  # type: ignore[no-any-return]


def token(org: str, *scopes: str) -> dict[str, str]:
    """Each organisation calls with its own token (what it records is attributed to it)."""
    return auth_headers(*(scopes or (REGISTRATION_READ, REGISTRATION_WRITE)), org=org)


async def drive_every_path(
    client: AsyncClient, database: asyncpg.Connection, producer: Any, shared_key: bytes
) -> None:
    iom = token("IOM")
    # Registration, then an update of everything personal and shareable.
    first = (await ok(await client.post("/households", json=household(), headers=iom)))[
        "household_id"
    ]
    members = (await ok(await client.get(f"/households/{first}")))["members"]
    newcomer = person(GIVEN[5], SECOND_FAMILY, BIRTHS[3], "other_relative")
    await ok(
        await client.patch(
            f"/households/{first}",
            json={
                "address": ADDRESSES[1],
                "phone": PHONES[2],
                "iban": IBANS[1],
                "location": {"adm1_pcode": "UA53"},
                "members": [
                    {**household()["members"][i], "member_id": members[i]["member_id"]}
                    for i in range(3)
                ]
                + [newcomer],
                "needs": [{"sector": "health", "severity": 2}],
            },
        )
    )
    # Consent recorded and withdrawn.
    await ok(
        await client.post(
            f"/households/{first}/consents",
            json={"purpose": "referral", "recorded_by": "UNHCR"},
            headers=token("UNHCR"),
        )
    )
    await ok(
        await client.post(
            f"/households/{first}/consents/data_sharing/withdraw",
            json={"recorded_by": "IOM"},
            headers=iom,
        )
    )
    # The same family registered again (same passport): suspected, then merged.
    again = await ok(
        await client.post("/households", json=household(partner_org="NRC"), headers=token("NRC"))
    )
    [suspicion] = again["suspected_duplicates"]
    await ok(
        await client.post(
            f"/duplicates/{suspicion}/merge",
            json={"decided_by": "IOM-REG"},
            headers=token("IOM-REG", REGISTRATION_REVIEW),
        )
    )
    # Another resemblance, dismissed: same names and births, another phone and no documents.
    lookalike = household(
        phone=PHONES[1],
        members=[{k: v for k, v in m.items() if k != "documents"} for m in household()["members"]],
    )
    third = await ok(await client.post("/households", json=lookalike, headers=iom))
    for suspicion in third["suspected_duplicates"]:
        await ok(
            await client.post(
                f"/duplicates/{suspicion}/dismiss",
                json={"decided_by": "IOM"},
                headers=token("IOM", REGISTRATION_REVIEW),
            )
        )
    # The lookalike asks to be erased.
    await ok(
        await client.post(
            f"/households/{third['household_id']}/erasure",
            json={"reason_code": "data_subject_request", "requested_by": "IOM"},
            headers=token("IOM", REGISTRATION_ERASE),
        )
    )
    # KoboToolbox: a submission, its edit, and one that cannot be mapped.
    nrc_kobo = token("NRC", REGISTRATION_INTAKE)
    original = kobo_answers(f"uuid:{uuid4()}")
    await ok(await client.post("/intake/kobo", json=original, headers=nrc_kobo))
    edit = original | {
        "meta/instanceID": f"uuid:{uuid4()}",
        "meta/deprecatedID": original["meta/instanceID"],
        "household/phone": PHONES[2],
        "consent/data_sharing": "no",
    }
    await ok(await client.post("/intake/kobo", json=edit, headers=nrc_kobo))
    broken = kobo_answers(f"uuid:{uuid4()}", **{"head/dob": "2099-01-01"})
    await ok(await client.post("/intake/kobo", json=broken, headers=nrc_kobo), 422)
    # The intake topic: a partner's registration.
    answers = household(phone=PHONES[1], address=ADDRESSES[1])
    del answers["channel"], answers["partner_org"]
    event = IntakeSubmitted(
        submission_id=f"pin-{uuid4().hex[:10]}",
        source=IntakeSource.PARTNER,
        partner_org="PIN",
        form_id="pin_form",
        submitted_at=datetime.now(UTC),
        format="aidmesh_household_v1",
        answers=answers,
    )
    await publish(producer, event)
    await Database(database).eventually(
        "SELECT 1 FROM intake_submissions WHERE submission_id = $1 AND status = 'registered'",
        event.submission_id,
        what="the partner's intake registered",
    )
    await pay_and_match(client, database, producer, shared_key, household_id=UUID(first))


async def pay_and_match(
    client: AsyncClient,
    database: asyncpg.Connection,
    producer: Any,
    shared_key: bytes,
    *,
    household_id: UUID,
) -> None:
    """Cash pays the household by bank transfer and by cash pick-up (it consents to sharing
    its details with the provider: the provider's files hold its IBAN and passport), and a
    household registration does not know in each cycle (PayeeWithheld); another agency's
    list names its passport (AssistanceOverlapFound)."""
    cash = token("IOM-CASH", REGISTRATION_PAYMENT_FILES)
    for modality in PaymentModality:
        cycle_id = uuid4()
        payments = [
            PaymentInstructed(
                payment_id=uuid4(),
                cycle_id=cycle_id,
                household_id=paid,
                amount=Money(amount=Decimal("10800.00")),
                first_month="2027-01",
                months=3,
                fsp="privatbank",
                modality=modality,
                instructed_at=datetime.now(UTC),
            )
            for paid in (household_id, uuid4())
        ]
        approval = PaymentCycleApproved(
            cycle_id=cycle_id,
            payments=2,
            total=Money(amount=Decimal("21600.00")),
            approved_by="IOM-CASH",
            approved_at=datetime.now(UTC),
        )
        for event in (*payments, approval):
            await publish(producer, event, source="/aidmesh/cash")
        await Database(database).eventually(
            "SELECT 1 FROM payment_instructions i JOIN payment_cycles c USING (cycle_id)"
            " WHERE cycle_id = $1 HAVING count(*) = 2",
            cycle_id,
            what="the cycle's instructions and approval",
        )
        response = await client.get(f"/payment-files/{cycle_id}", headers=cash)
        assert response.status_code == 200, response.text
        # The file is where the payee's details go, and only there.
        assert (IBANS[1] if modality is PaymentModality.BANK_TRANSFER else PASSPORT) in (
            response.text
        )
    agency = token("UNHCR", REGISTRATION_ASSISTANCE_LISTS)
    listed = {
        "sector": "cash",
        "first_month": "2027-01",
        "months": 3,
        "hashes": [keyed_hash(shared_key, PASSPORT), keyed_hash(shared_key, "ЕК000001")],
    }
    matched = await ok(await client.post("/assistance-lists", json=listed, headers=agency))
    assert matched["matched_households"] >= 1  # the partner's intake has the passport too


@pytest.fixture
def shared_key(settings: RegistrationSettings) -> bytes:
    assert settings.interagency_key is not None
    return base64.b64decode(settings.interagency_key.get_secret_value())


async def test_no_personal_data_leaves_registration_on_any_topic(
    registration: AsyncClient,
    database: asyncpg.Connection,
    events: EventLog,
    producer: Any,
    shared_key: bytes,
) -> None:
    await drive_every_path(registration, database, producer, shared_key)

    rows = await database.fetch("SELECT event_id, topic, key, headers, payload FROM outbox")
    types = {dict(json.loads(r["headers"]))["ce_type"].split(".")[-2] for r in rows}
    # Every kind of event registration publishes was produced, so every kind was checked.
    assert types >= {
        "registered",
        "updated",
        "assessed",
        "suspected",
        "merged",
        "recorded",
        "withdrawn",
        "erased",
        "withheld",
        "found",
    }
    ids = {r["event_id"] for r in rows}
    on_kafka: list[Seen] = await events.wait_for(
        lambda rs: {r.envelope.id for r in rs if r.envelope} >= ids,
        select=lambda r: r.envelope is not None and r.envelope.id in ids,
        what="every event registration published",
    )
    secrets = spellings()
    # The registry itself holds them (sealed; the service reads them back): the values
    # were really submitted.
    found = await ok(await registration.get("/households", params={"name": FAMILY}))
    stored = json.dumps(
        [
            await ok(await registration.get(f"/households/{h['household_id']}"))
            for h in found["items"]
        ],
        ensure_ascii=False,
    )
    assert FAMILY in stored and to_latin(FAMILY) in stored and GIVEN[5] in stored
    for row in rows:
        published = row["payload"].decode() + row["headers"] + row["key"] + row["topic"]
        for secret in secrets:
            assert secret not in published, f"outbox {row['event_id']} leaks {secret!r}"
    for record in on_kafka:
        wire = (
            (record.value or b"").decode()
            + json.dumps(record.headers, ensure_ascii=False)
            + (record.key or b"").decode()
        )
        for secret in secrets:
            assert secret not in wire, f"{record.topic} {record.offset} leaks {secret!r}"
    assert {r.topic for r in on_kafka} <= {
        "aidmesh.registration.household.v1",
        "aidmesh.assessment.need.v1",
    }
    assert len({r.envelope.id for r in on_kafka if r.envelope}) == len(ids)
    assert all(isinstance(i, UUID) for i in ids)


async def test_a_bank_account_is_in_no_table_in_clear(
    registration: AsyncClient, database: asyncpg.Connection
) -> None:
    iom = token("IOM")
    given = household(phone=PHONES[1], members=household()["members"][:1])
    household_id = (await ok(await registration.post("/households", json=given, headers=iom)))[
        "household_id"
    ]
    await ok(
        await registration.patch(
            f"/households/{household_id}", json={"iban": IBANS[1]}, headers=iom
        )
    )
    read = await ok(await registration.get(f"/households/{household_id}"))
    assert read["iban"] == IBANS[1]  # stored, and read back by the service

    tables = await database.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    for table in (t["table_name"] for t in tables):
        # Every row as text; a bytea column shows as hex, so look for the hex too.
        dump = await database.fetchval(f"SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t")
        for iban in IBANS:
            for form in (iban, iban[4:], iban.encode().hex()):
                assert form not in (dump or ""), f"{table} holds an IBAN in clear"
