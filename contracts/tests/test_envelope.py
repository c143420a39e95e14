"""CloudEvents binary mode: headers in, headers out, and a reason for every refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import pytest
from aidmesh_contracts import HouseholdRegistered, NeedAssessed
from aidmesh_contracts.envelope import (
    Envelope,
    EnvelopeError,
    PayloadError,
    UnknownEventType,
    decode,
    encode,
    new_envelope,
    schema_uri,
)
from aidmesh_contracts.examples import example

EVENT_ID = UUID("7b0e4c2a-5d31-4f8e-a6b9-0c3d2e1f4a57")
FLOW_ID = UUID("1a9f3e6c-8b42-4d07-95e1-c2b7d4a0f386")
CAUSE_ID = UUID("d5c8b1a4-2e67-4f39-8a0d-b3e6f9c2a715")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NOW = datetime(2026, 1, 12, 8, 24, tzinfo=UTC)


@pytest.fixture
def household() -> HouseholdRegistered:
    return HouseholdRegistered.model_validate(example(HouseholdRegistered.event_type))


@pytest.fixture
def envelope(household: HouseholdRegistered) -> Envelope:
    return Envelope(
        id=EVENT_ID,
        source="/aidmesh/registration",
        type=household.event_type,
        subject=household.subject(),
        time=NOW,
        dataschema=schema_uri(household.event_type),
        correlationid=FLOW_ID,
        causationid=CAUSE_ID,
        traceparent=TRACEPARENT,
    )


def without(headers: list[tuple[str, bytes]], *names: str) -> list[tuple[str, bytes]]:
    return [(name, value) for name, value in headers if name not in names]


def replaced(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [*without(headers, name), (name, value)]


def test_an_envelope_round_trips_through_kafka_headers(envelope: Envelope) -> None:
    assert Envelope.from_headers(envelope.to_headers()) == envelope


def test_the_headers_are_plain_cloudevents_any_client_can_read(envelope: Envelope) -> None:
    headers = dict(envelope.to_headers())

    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == str(EVENT_ID).encode()
    assert headers["ce_type"] == b"org.aidmesh.registration.household.registered.v1"
    assert headers["ce_time"] == b"2026-01-12T08:24:00+00:00"
    assert headers["content-type"] == b"application/json"
    assert headers["traceparent"] == TRACEPARENT.encode()


def test_missing_required_headers_are_named(envelope: Envelope) -> None:
    headers = without(envelope.to_headers(), "ce_id", "ce_type")

    with pytest.raises(EnvelopeError, match="missing CloudEvents headers: ce_id, ce_type"):
        Envelope.from_headers(headers)


def test_no_headers_at_all_names_every_required_header() -> None:
    with pytest.raises(EnvelopeError) as refused:
        Envelope.from_headers([])

    assert str(refused.value) == (
        "missing CloudEvents headers: ce_specversion, ce_id, ce_source, ce_type, ce_time"
    )


def test_another_cloudevents_spec_version_is_refused(envelope: Envelope) -> None:
    headers = replaced(envelope.to_headers(), "ce_specversion", b"0.3")

    with pytest.raises(EnvelopeError, match=r"unsupported ce_specversion '0\.3'"):
        Envelope.from_headers(headers)


def test_a_header_that_is_not_utf8_is_refused_by_name(envelope: Envelope) -> None:
    headers = replaced(envelope.to_headers(), "ce_source", b"/aidmesh/\xff\xfe")

    with pytest.raises(EnvelopeError, match="header ce_source is not valid UTF-8"):
        Envelope.from_headers(headers)


def test_a_malformed_event_type_is_refused_by_header_name(envelope: Envelope) -> None:
    headers = replaced(envelope.to_headers(), "ce_type", b"HouseholdRegistered")

    with pytest.raises(EnvelopeError, match="ce_type: String should match pattern"):
        Envelope.from_headers(headers)


def test_an_id_that_is_not_a_uuid_is_refused_by_header_name(envelope: Envelope) -> None:
    headers = replaced(envelope.to_headers(), "ce_id", b"42")

    with pytest.raises(EnvelopeError, match="ce_id: "):
        Envelope.from_headers(headers)


def test_a_time_without_timezone_is_refused(envelope: Envelope) -> None:
    headers = replaced(envelope.to_headers(), "ce_time", b"2026-01-12T08:24:00")

    with pytest.raises(EnvelopeError, match="ce_time: "):
        Envelope.from_headers(headers)


def test_a_payload_that_is_not_json_is_refused_by_content_type(envelope: Envelope) -> None:
    headers = replaced(envelope.to_headers(), "content-type", b"application/avro")

    with pytest.raises(EnvelopeError, match="unsupported content-type"):
        Envelope.from_headers(headers)


def test_a_flow_started_outside_aidmesh_is_its_own_correlation(envelope: Envelope) -> None:
    headers = without(envelope.to_headers(), "ce_correlationid", "ce_causationid")

    parsed = Envelope.from_headers(headers)

    assert parsed.correlationid == EVENT_ID
    assert parsed.causationid is None


def test_a_malformed_traceparent_is_dropped_not_fatal(envelope: Envelope) -> None:
    headers = replaced(envelope.to_headers(), "traceparent", b"not-a-trace")

    assert Envelope.from_headers(headers).traceparent is None


def test_a_payload_decodes_to_the_model_of_its_type(
    envelope: Envelope, household: HouseholdRegistered
) -> None:
    assert decode(envelope, encode(household)) == household


def test_an_unknown_but_well_formed_type_is_an_unknown_event_type(
    envelope: Envelope, household: HouseholdRegistered
) -> None:
    unknown = envelope.model_copy(
        update={"type": "org.aidmesh.registration.household.teleported.v1"}
    )

    with pytest.raises(UnknownEventType, match=r"household\.teleported\.v1"):
        decode(unknown, encode(household))


def test_an_unknown_event_type_is_an_envelope_problem() -> None:
    assert issubclass(UnknownEventType, EnvelopeError)


def test_a_value_that_is_not_json_is_a_payload_error(envelope: Envelope) -> None:
    with pytest.raises(PayloadError, match="Invalid JSON"):
        decode(envelope, b"household_id=3f2b8c1e")


def test_a_value_that_is_not_utf8_is_a_payload_error(envelope: Envelope) -> None:
    with pytest.raises(PayloadError, match="Invalid JSON"):
        decode(envelope, b'{"household_id": "\xff\xfe"}')


def test_a_record_without_value_is_a_payload_error(envelope: Envelope) -> None:
    with pytest.raises(PayloadError, match="no value"):
        decode(envelope, None)


def test_a_schema_violation_is_a_payload_error_naming_the_field(envelope: Envelope) -> None:
    need = example(NeedAssessed.event_type) | {"severity": 9}
    need_envelope = envelope.model_copy(update={"type": NeedAssessed.event_type})
    value = json.dumps(need).encode()

    with pytest.raises(PayloadError) as refused:
        decode(need_envelope, value)

    assert str(refused.value).startswith("org.aidmesh.assessment.need.assessed.v1 payload invalid:")
    assert "severity: Input should be less than or equal to 5" in str(refused.value)


def test_a_nested_schema_violation_names_the_path_to_the_field(
    envelope: Envelope,
) -> None:
    payload = example(HouseholdRegistered.event_type)
    payload["location"]["adm1_pcode"] = "Kharkiv"
    value = json.dumps(payload).encode()

    with pytest.raises(PayloadError, match=r"location\.adm1_pcode: String should match pattern"):
        decode(envelope, value)


def test_a_new_event_starts_its_own_flow(household: HouseholdRegistered) -> None:
    made = new_envelope(
        household, source="/aidmesh/registration", time=NOW, new_id=lambda: EVENT_ID
    )

    assert made.id == EVENT_ID
    assert made.correlationid == EVENT_ID
    assert made.causationid is None


def test_a_new_event_joins_the_flow_it_is_given(household: HouseholdRegistered) -> None:
    made = new_envelope(
        household,
        source="/aidmesh/registration",
        time=NOW,
        correlation_id=FLOW_ID,
        new_id=lambda: EVENT_ID,
    )

    assert made.correlationid == FLOW_ID
    assert made.causationid is None


def test_an_event_caused_by_another_inherits_its_flow_and_names_its_cause(
    envelope: Envelope,
) -> None:
    need = NeedAssessed.model_validate(example(NeedAssessed.event_type))
    other_flow = UUID("00000000-0000-4000-8000-000000000001")

    made = new_envelope(
        need,
        source="/aidmesh/registration",
        time=NOW,
        caused_by=envelope,
        correlation_id=other_flow,  # the cause's flow wins over an explicit one
        new_id=lambda: CAUSE_ID,
    )

    assert made.correlationid == envelope.correlationid == FLOW_ID
    assert made.causationid == envelope.id == EVENT_ID
    assert made.id == CAUSE_ID


def test_a_new_envelope_is_keyed_and_described_by_its_event(
    household: HouseholdRegistered,
) -> None:
    made = new_envelope(household, source="/aidmesh/registration", time=NOW)

    assert made.type == household.event_type
    assert made.subject == str(household.household_id)
    assert made.dataschema == "urn:aidmesh:schema:" + household.event_type
    assert made.time == NOW


def test_a_new_envelope_refuses_a_naive_time_and_a_malformed_source(
    household: HouseholdRegistered,
) -> None:
    with pytest.raises(ValueError, match="timezone"):
        new_envelope(household, source="/aidmesh/registration", time=datetime(2026, 1, 12))
    with pytest.raises(ValueError, match="source"):
        new_envelope(household, source="aidmesh registration", time=NOW)
