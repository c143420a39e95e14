"""Log lines are scrubbed of personal data: by key, by shape, at any depth, in exception text
and in the lines of libraries logging through the standard library; ids, P-codes, times and
ordinary numbers come through unchanged."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import structlog
from aidmesh_runtime.logging import configure_logging
from aidmesh_runtime.scrubbing import (
    REDACTED,
    is_personal_key,
    scrub,
    scrub_personal_data,
    scrub_text,
)


def scrubbed(**event: Any) -> dict[str, Any]:
    return scrub_personal_data(None, "info", dict(event))


# ---- by key ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "name",
        "full_name",
        "family_name",
        "given_name",
        "patronymic",
        "phone",
        "address",
        "document",
        "document_number",
        "passport",
        "date_of_birth",
        "dob",
        "answers",
        "narrative",
        "notes",
        "email",
        "Family_Name",
        "PHONE",
        "familyName",
        "head_family_name",
        "contact_phone",
        "case_notes",
        "head/dob",
        "household/phone",
        "members/given_name",
    ],
)
def test_the_value_of_a_key_naming_personal_data_is_redacted(key: str) -> None:
    assert scrubbed(**{key: "Коваленко"})[key] == REDACTED


@pytest.mark.parametrize(
    "key",
    [
        "household_id",
        "service_name",
        "topic_name",
        "event",
        "partner_org",
        "answer",
        "documents_carried",
        "clinical_record",
        "size",
    ],
)
def test_keys_that_name_no_personal_data_are_not_redacted(key: str) -> None:
    assert not is_personal_key(key)


def test_a_personal_key_is_redacted_whatever_its_value_holds() -> None:
    line = scrubbed(answers={"head/given_name": "Олена", "size": 3}, phone=None, notes=["x"])

    assert line == {"answers": REDACTED, "phone": REDACTED, "notes": REDACTED}


def test_personal_keys_are_redacted_in_nested_mappings_and_lists() -> None:
    line = scrubbed(
        household={
            "household_id": "550e8400-e29b-41d4-a716-446655440000",
            "members": [{"given_name": "Олена", "sex": "female"}, {"dob": "1981-03-14"}],
            "contact": {"phone": "+380501234567"},
        }
    )

    assert line["household"] == {
        "household_id": "550e8400-e29b-41d4-a716-446655440000",
        "members": [{"given_name": REDACTED, "sex": "female"}, {"dob": REDACTED}],
        "contact": {"phone": REDACTED},
    }


# ---- by shape ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+380501234567",
        "380501234567",
        "0501234567",
        "050 123 45 67",
        "(050) 123-45-67",
        "+38 (050) 123-45-67",
        "+380 50 123 45 67",
        "+4915112345678",
    ],
)
def test_phone_numbers_become_a_phone_marker(phone: str) -> None:
    assert scrub_text(f"call {phone} today") == "call [phone] today"


@pytest.mark.parametrize(
    "number",
    [
        "ЕК123456",  # passport, Cyrillic series
        "EK123456",  # passport, Latin look-alikes
        "ek734619",  # as typed
        "МК 417 305",  # as a Kobo answer gives it
        "904412733",  # ID card
        "6312-5518203347",  # IDP certificate
        "63125518203347",  # IDP certificate without its hyphen
    ],
)
def test_document_numbers_become_a_document_marker(number: str) -> None:
    assert scrub_text(f"document {number} refused") == "document [document] refused"


def test_email_addresses_become_an_email_marker() -> None:
    assert scrub_text("sent to olena.k+aid@example.org.ua.") == "sent to [email]."


def test_the_row_values_postgresql_quotes_in_an_error_are_redacted() -> None:
    error = (
        'duplicate key value violates unique constraint "documents_pkey"\n'
        "DETAIL:  Key (member_id, kind, number)=(6f1c3a2e-0000-4000-8000-000000000001,"
        " passport, ЕК123456) already exists."
    )

    assert scrub_text(error).endswith(
        "DETAIL:  Key (member_id, kind, number)=([redacted]) already exists."
    )
    failing = "DETAIL:  Failing row contains (7, Коваленко, вул. Сумська, 5, null)."
    assert scrub_text(failing) == "DETAIL:  Failing row contains ([redacted])."


@pytest.mark.parametrize(
    ("error", "scrubbed_error"),
    [
        (
            'invalid input syntax for type date: "Коваленко"',
            "invalid input syntax for type date: [redacted]",
        ),
        (
            'invalid input value for enum sex: "Олена"',
            "invalid input value for enum sex: [redacted]",
        ),
        (
            "invalid input for query argument $1: 'Коваленко' ('str' object cannot be"
            " interpreted as an integer)",
            "invalid input for query argument $1: [redacted] ('str' object cannot be"
            " interpreted as an integer)",
        ),
    ],
)
def test_the_values_postgresql_and_asyncpg_refuse_are_redacted(
    error: str, scrubbed_error: str
) -> None:
    assert scrub_text(error) == scrubbed_error


def test_the_input_a_validation_error_quotes_is_redacted() -> None:
    error = "[type=string_too_short, input_value='Коваленко', input_type=str]"

    assert scrub_text(error) == "[type=string_too_short, input_value=[redacted], input_type=str]"


@pytest.mark.parametrize(
    "text",
    [
        "550e8400-e29b-41d4-a716-446655440000",
        "6f1c3a2e-0501-4000-8000-380501234567",  # all-digit groups, one shaped like a phone
        "UA6312001",
        "UA631200",
        "UA12",
        "UA6312001001",
        "2026-01-12T10:02:11.000+02:00",
        "2026-11-23T17:12:55.074785Z",
        "2026-11-23 17:12:55",
        "0.123456789",
        "1700000000",
        "1700000000000",
        "12345678",
        "1234567890",
        "86 events in 4.5 s",
        "44a7733a217d6bdb3346b2e366361a93",
        "0501234567abcdef",
        "v1.12.3456789",
        "aidmesh.assessment.need.v1.dlq",
        "org.aidmesh.registration.household.registered.v1",
        "retry in 30.0 s after 123456 ms",
    ],
)
def test_ids_pcodes_times_and_ordinary_numbers_are_not_mangled(text: str) -> None:
    assert scrub_text(text) == text


def test_the_message_and_nested_strings_are_scanned() -> None:
    line = scrubbed(
        event="refused +380501234567",
        reasons=[{"field": "phone", "why": "0501234567 is taken"}],
        pair=("ЕК123456", 3),
    )

    assert line == {
        "event": "refused [phone]",
        "reasons": [{"field": "phone", "why": "[phone] is taken"}],
        "pair": ["[document]", 3],
    }


def test_numbers_booleans_and_none_pass_untouched() -> None:
    line = scrubbed(count=904412733, ratio=0.5, ok=True, missing=None)

    assert line == {"count": 904412733, "ratio": 0.5, "ok": True, "missing": None}


def test_an_exception_given_as_a_value_is_rendered_scrubbed() -> None:
    line = scrubbed(error=ValueError("passport ЕК123456 is taken"))

    assert line["error"] == "ValueError: passport [document] is taken"


def test_an_attached_exception_is_formatted_and_scrubbed() -> None:
    try:
        raise RuntimeError("Key (number)=(ЕК123456) already exists")
    except RuntimeError as exc:
        line = scrubbed(event="failed", exc_info=exc)

    assert "exc_info" not in line
    assert "Key (number)=([redacted]) already exists" in line["exception"]
    assert "ЕК123456" not in line["exception"]


# ---- the configured pipeline -------------------------------------------------------------


@pytest.fixture
def log_lines() -> Any:
    """JSON lines written by the service's logging configuration, ours and the libraries'."""
    stream = io.StringIO()
    configure_logging(service="registration", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    configure_logging(service="registration")


def test_every_line_of_the_configured_service_is_scrubbed(log_lines: Any) -> None:
    log = structlog.get_logger("test")
    log.info("household_registered", family_name="Коваленко", reason="phone 0501234567")
    try:
        raise ValueError("DETAIL:  Key (number)=(ЕК123456) already exists.")
    except ValueError:
        log.exception("registration_failed")

    registered, failed = log_lines()
    assert registered["family_name"] == REDACTED
    assert registered["reason"] == "phone [phone]"
    assert "ЕК123456" not in failed["exception"]
    assert "Key (number)=([redacted]) already exists." in failed["exception"]


def test_library_warnings_are_json_lines_scrubbed_like_ours(log_lines: Any) -> None:
    try:
        raise ValueError("DETAIL:  Failing row contains (Коваленко, +380501234567).")
    except ValueError:
        logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=True)
    logging.getLogger("aiokafka").warning("request for %s failed", "olena@example.org")
    logging.getLogger("aiokafka").info("below the libraries' level: %s", "not shown")

    asgi, kafka = log_lines()
    assert asgi["logger"] == "uvicorn.error"
    assert asgi["service"] == "registration"
    assert asgi["level"] == "error"
    assert "Failing row contains ([redacted])" in asgi["exception"]
    assert "Коваленко" not in asgi["exception"]
    assert kafka["event"] == "request for [email] failed"


def test_configuring_again_replaces_the_library_handler(log_lines: Any) -> None:
    stream = io.StringIO()
    configure_logging(service="registration", stream=stream)
    configure_logging(service="registration", stream=stream)

    logging.getLogger("aiokafka").warning("once")

    assert stream.getvalue().count('"once"') == 1


def test_an_object_logged_as_a_value_has_its_personal_fields_and_shapes_scrubbed() -> None:
    from dataclasses import dataclass

    @dataclass
    class Head:
        family_name: str
        phone: str
        household_id: str

    head = Head("Шевченко", "+380501234567", "0b8f8d52-6a0e-4d7e-9d4f-3f1e2a5c7b90")
    rendered = str(scrub(head))
    assert "Шевченко" not in rendered
    assert "380501234567" not in rendered
    assert "0b8f8d52-6a0e-4d7e-9d4f-3f1e2a5c7b90" in rendered


def test_secrets_are_redacted_by_key() -> None:
    event = {
        "event": "connecting",
        "password": "hunter2-not-a-secret",
        "token": "eyJhbGciOi.not-a-secret",
        "authorization": "Bearer eyJ.not-a-secret",
        "db_dsn": "postgresql://u:pw@h/db",  # not a secret: made up
        "signing_key": "AAAA",
    }
    scrubbed = scrub_personal_data(None, "info", dict(event))
    for key in ("password", "token", "authorization", "db_dsn", "signing_key"):
        assert scrubbed[key] == REDACTED, key


def test_uuids_dates_and_decimals_pass_as_they_are() -> None:
    from datetime import date
    from decimal import Decimal
    from uuid import UUID

    values = [UUID("0b8f8d52-6a0e-4d7e-9d4f-3f1e2a5c7b90"), date(2026, 1, 12), Decimal("12.50")]
    assert [scrub(v) for v in values] == values
