"""No personal data in registration's log lines, as the service writes them.

The running service's log lines (its own, and those of the libraries logging through the
standard library: uvicorn, aiokafka, asyncpg) are captured as the JSON lines they are, while
households with distinctive names, phones, passports and addresses are registered, refused
(422) and rejected at intake, and while real PostgreSQL and asyncpg errors quoting the
submitted values are logged the way uvicorn logs an unhandled error. None of the values
may appear in any line.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
import structlog
from aidmesh_runtime import auth
from aidmesh_runtime.logging import configure_logging
from aidmesh_runtime.testing import auth_headers
from httpx import AsyncClient

pytestmark = pytest.mark.integration

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def office() -> dict[str, str]:
    """A field office's token: what the requests below need, nothing more."""
    return auth_headers(auth.REGISTRATION_READ, auth.REGISTRATION_WRITE, auth.REGISTRATION_INTAKE)


@pytest.fixture
def log_lines(registration: AsyncClient) -> Iterator[Lines]:
    """The service's log lines from now on, parsed: the configuration its lifespan made
    (JSON, scrubbed), writing to a buffer instead of standard error."""
    stream = io.StringIO()
    configure_logging(service="registration", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    configure_logging(service="registration")


def personal_values(household: dict[str, Any]) -> set[str]:
    """The household's personal data in the forms it could leak in."""
    head, child = household["members"]
    phone = household["phone"]
    passport = head["documents"][0]["number"]
    return {
        head["family_name"],
        head["given_name"] + " " + head["family_name"],
        child["given_name"] + " " + child["family_name"],
        head["date_of_birth"],
        child["date_of_birth"],
        household["address"],
        phone,
        phone.removeprefix("+"),
        "0" + phone.removeprefix("+380"),
        passport,
        *((household["iban"], household["iban"][4:]) if "iban" in household else ()),
    }


async def test_registering_refusing_and_failing_leave_no_personal_data_in_the_log_lines(
    registration: AsyncClient,
    database: asyncpg.Connection,
    log_lines: Lines,
    body: Callable[..., dict[str, Any]],
    kobo: Callable[..., dict[str, Any]],
    office: dict[str, str],
) -> None:
    # The token's organisation (calls are attributed); with a bank account (issue 24).
    household = body(partner_org="IOM", iban="UA213223130000026007233566001")
    secrets = personal_values(household) | {"UA213223130000026007233566002"}
    head = household["members"][0]
    passport = head["documents"][0]["number"]

    # Registered, read back and searched for by each personal value.
    created = await registration.post("/households", json=household, headers=office)
    assert created.status_code == 201, created.text
    household_id = created.json()["household_id"]
    assert (
        await registration.get(f"/households/{household_id}", headers=office)
    ).status_code == 200
    for query in ({"phone": household["phone"]}, {"document": passport}):
        assert (
            await registration.get("/households", params=query, headers=office)
        ).status_code == 200

    # Refused (422): the same person with an impossible birth date, a broken phone and a
    # mistyped IBAN.
    broken = household | {
        "phone": household["phone"] + "99",
        "iban": "UA213223130000026007233566002",
        "members": [head | {"date_of_birth": "1981-02-30"}],
    }
    refused = await registration.post("/households", json=broken, headers=office)
    assert refused.status_code == 422, refused.text

    # Rejected at intake: a Kobo submission of the same person that cannot be mapped.
    submission = kobo(
        **{
            "head/family_name": head["family_name"],
            "head/document_number": passport,
            "household/phone": household["phone"],
            "location/address": household["address"],
            "head/dob": "2091-02-30",
        }
    )
    rejected = await registration.post(
        "/intake/kobo", params={"partner_org": "IOM"}, json=submission, headers=office
    )
    assert rejected.status_code == 422, rejected.text

    # Real database errors quoting the values, logged as uvicorn logs an unhandled error
    # (an exception escaping a request) and as our code logs a failure.
    await database.execute("CREATE TEMP TABLE seen (number text PRIMARY KEY, name text NOT NULL)")
    await database.execute("INSERT INTO seen VALUES ($1, $2)", passport, head["family_name"])
    failures: list[asyncpg.PostgresError] = []
    for query, args in (
        ("INSERT INTO seen VALUES ($1, $2)", (passport, head["family_name"])),
        ("INSERT INTO seen VALUES ($1, NULL)", (household["phone"],)),
        ("SELECT $1::text::date", (head["family_name"],)),
    ):
        with pytest.raises(asyncpg.PostgresError) as failed:
            await database.execute(query, *args)
        failures.append(failed.value)
    assert passport in str(failures[0])  # what would leak: DETAIL: Key (number)=(…)
    for failure in failures:
        try:
            raise failure
        except asyncpg.PostgresError:
            logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=True)
            structlog.get_logger("test").exception("registration_failed")
            structlog.get_logger("test").warning("registration_failed", error=str(failure))

    lines = log_lines()
    # The lines were written (and would have carried the values): the flow's own...
    [registered] = [line for line in lines if line["event"] == "household_registered"]
    assert registered["household_id"] == household_id
    assert [line for line in lines if line["event"] == "intake_rejected"]
    # ...and the library's, as JSON lines naming the logger, with the values scrubbed out.
    asgi = [line for line in lines if line.get("logger") == "uvicorn.error"]
    assert len(asgi) == 3
    assert "Key (number)=([redacted]) already exists" in asgi[0]["exception"]
    assert "Failing row contains ([redacted])" in asgi[1]["exception"]
    assert "invalid input syntax for type date: [redacted]" in asgi[2]["exception"]
    logged = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    leaked = sorted(value for value in secrets if value in logged)
    assert leaked == [], f"log lines carry personal data: {leaked}"
