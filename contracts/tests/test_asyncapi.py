"""The AsyncAPI 3.0 document: current, valid against the official schema, and complete.

The official schema is `schemas/3.0.0.json` of the npm package `@asyncapi/specs` 6.11.1
(Apache-2.0), committed byte for byte as `asyncapi-3.0.0.schema.json` so that no test needs
the network. It is a draft-07 schema that bundles every definition it refers to.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aidmesh_contracts import EVENT_TYPES, NeedAssessed, decode
from aidmesh_contracts.asyncapi import (
    DEAD_LETTER,
    DOCUMENT_PATH,
    REPO_ROOT,
    build_document,
    channel_id,
    dereference,
    load,
    problems,
    render,
    stale_files,
)
from aidmesh_contracts.catalogue import CATALOGUE
from aidmesh_contracts.envelope import Envelope
from aidmesh_contracts.examples import example
from aidmesh_contracts.topics import DLQ_PARTITIONS, DLQ_RETENTION_MS
from jsonschema import Draft7Validator

OFFICIAL_SCHEMA = Path(__file__).with_name("asyncapi-3.0.0.schema.json")
OFFICIAL_SCHEMA_SHA256 = "d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626"
ALL_TYPES = sorted(EVENT_TYPES)

Document = dict[str, Any]


@pytest.fixture(scope="module")
def official() -> Draft7Validator:
    return Draft7Validator(json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def committed() -> Document:
    return load()


@pytest.fixture
def document(committed: Document) -> Document:
    """A scratch copy of the committed document, to break."""
    return copy.deepcopy(committed)


def errors(validator: Draft7Validator, document: Document) -> list[str]:
    return [e.message for e in validator.iter_errors(document)]


def message_of(document: Document, event_type: str) -> Document:
    return document["components"]["messages"][EVENT_TYPES[event_type].__name__]


def payload_validator(document: Document, schema: Any) -> Draft7Validator:
    return Draft7Validator(
        dereference(document, schema), format_checker=Draft7Validator.FORMAT_CHECKER
    )


# ---- current and valid -----------------------------------------------------------------


def test_the_committed_asyncapi_document_and_page_are_current() -> None:
    assert stale_files() == [], "run `python -m aidmesh_contracts.asyncapi write`"


def test_regenerating_the_document_gives_the_same_text() -> None:
    assert render(build_document()) == DOCUMENT_PATH.read_text(encoding="utf-8")


def test_the_yaml_reads_back_as_the_document_it_was_written_from() -> None:
    assert yaml.safe_load(render()) == build_document()


def test_the_official_schema_is_the_unmodified_asyncapi_3_0_0_schema() -> None:
    schema = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))

    assert hashlib.sha256(OFFICIAL_SCHEMA.read_bytes()).hexdigest() == OFFICIAL_SCHEMA_SHA256
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    Draft7Validator.check_schema(schema)


def test_the_committed_document_is_valid_asyncapi_3_0(
    official: Draft7Validator, committed: Document
) -> None:
    assert errors(official, committed) == []


def test_the_committed_document_keeps_our_own_promises(committed: Document) -> None:
    assert problems(committed) == []


def test_the_local_server_says_how_clients_authenticate_as_the_broker_does(
    committed: Document,
) -> None:
    """Integrators read the document, not deploy/local: it must not promise an open broker."""
    [local] = committed["servers"].values()
    [scheme] = [
        committed["components"]["securitySchemes"][ref["$ref"].rsplit("/", 1)[-1]]
        for ref in local["security"]
    ]
    broker = (REPO_ROOT / "deploy" / "local" / "kafka.sh").read_text(encoding="utf-8")

    assert scheme["type"] == "scramSha512"
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in broker
    assert f"SASL_PLAINTEXT://{local['host'].split(':')[0]}" in broker
    assert "SASL_PLAINTEXT" in local["description"]
    assert "no authentication" not in render(committed)


# ---- the validator rejects what it should ----------------------------------------------


def _wrong_version(d: Document) -> None:
    d["asyncapi"] = "2.6.0"


def _v2_publish_action(d: Document) -> None:
    next(iter(d["operations"].values()))["action"] = "publish"


def _operation_without_channel(d: Document) -> None:
    del next(iter(d["operations"].values()))["channel"]


def _misspelled_message_field(d: Document) -> None:
    message = d["components"]["messages"]["HouseholdRegistered"]
    message["payloads"] = message.pop("payload")


def _openapi_discriminator_in_a_payload(d: Document) -> None:
    details = d["components"]["schemas"]["NeedAssessed"]["properties"]["details"]["anyOf"][0]
    details["discriminator"] = details.pop("x-discriminator")


def _server_without_host(d: Document) -> None:
    del d["servers"]["local"]["host"]


def _no_info(d: Document) -> None:
    del d["info"]


@pytest.mark.parametrize(
    "breaks",
    [
        _wrong_version,
        _v2_publish_action,
        _operation_without_channel,
        _misspelled_message_field,
        _openapi_discriminator_in_a_payload,
        _server_without_host,
        _no_info,
    ],
)
def test_the_official_schema_rejects_a_broken_document(
    official: Draft7Validator, document: Document, breaks: Callable[[Document], None]
) -> None:
    breaks(document)

    assert errors(official, document) != []


def test_a_message_without_payload_passes_the_official_schema_but_not_our_check(
    official: Draft7Validator, document: Document
) -> None:
    # AsyncAPI 3.0 makes `payload` optional, so the official schema cannot refuse this.
    del document["components"]["messages"]["HouseholdRegistered"]["payload"]

    assert errors(official, document) == []
    assert problems(document) == ["registrationHouseholdV1/HouseholdRegistered: no payload"]


def test_our_check_refuses_a_message_without_key_binding_or_example(document: Document) -> None:
    message = document["components"]["messages"]["NeedAssessed"]
    del message["bindings"]
    del message["examples"]

    assert problems(document) == [
        "assessmentNeedV1/NeedAssessed: no Kafka key binding",
        "assessmentNeedV1/NeedAssessed: no example",
    ]


# ---- complete: every topic, DLQ, type, producer and consumer -------------------------------


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda t: t.name)
def test_every_topic_is_a_channel_with_its_partitions_retention_and_sensitivity(
    committed: Document, entry: Any
) -> None:
    channel = committed["channels"][channel_id(entry.name)]

    assert channel["address"] == entry.name
    assert channel["bindings"]["kafka"]["partitions"] == entry.partitions
    assert channel["bindings"]["kafka"]["topicConfiguration"]["retention.ms"] == entry.retention_ms
    assert channel["x-aidmesh-sensitivity"] == str(entry.sensitivity)
    assert set(channel["messages"]) == {m.__name__ for m in entry.event_types}


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda t: t.name)
def test_every_topic_has_its_dead_letter_channel(committed: Document, entry: Any) -> None:
    channel = committed["channels"][channel_id(entry.dlq)]

    assert channel["address"] == entry.dlq
    assert channel["x-aidmesh-dead-letters-of"] == entry.name
    assert channel["bindings"]["kafka"]["partitions"] == DLQ_PARTITIONS
    assert channel["bindings"]["kafka"]["topicConfiguration"]["retention.ms"] == DLQ_RETENTION_MS
    assert list(channel["messages"]) == [DEAD_LETTER]


def test_there_is_no_channel_outside_the_catalogue(committed: Document) -> None:
    addresses = {c["address"] for c in committed["channels"].values()}

    assert addresses == {name for t in CATALOGUE for name in (t.name, t.dlq)}


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda t: t.name)
def test_every_producer_sends_and_every_consumer_receives_and_dead_letters(
    committed: Document, entry: Any
) -> None:
    def services(action: str, address: str) -> set[str]:
        return {
            op["x-aidmesh-service"]
            for op in committed["operations"].values()
            if op["action"] == action
            and committed["channels"][op["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
            == address
        }

    assert services("send", entry.name) == set(entry.producers)
    assert services("receive", entry.name) == set(entry.consumers)
    assert services("send", entry.dlq) == set(entry.consumers)
    assert services("receive", entry.dlq) == {"operators"}


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_every_event_type_has_one_message_whose_ce_type_header_is_fixed(
    committed: Document, event_type: str
) -> None:
    message = message_of(committed, event_type)

    assert message["headers"]["properties"]["ce_type"]["const"] == event_type
    assert message["x-aidmesh-event-type"] == event_type
    assert message["payload"] == {"$ref": f"#/components/schemas/{message['name']}"}


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_every_payload_field_is_described(committed: Document, event_type: str) -> None:
    def undescribed(schema: Any, path: str) -> list[str]:
        schema = dereference(committed, schema)
        found = []
        for name, prop in schema.get("properties", {}).items():
            options = [prop, *prop.get("anyOf", []), *prop.get("oneOf", [])]
            if not any(o.get("description") for o in options):
                found.append(path + name)
            for option in options:
                found += undescribed(option, f"{path}{name}.")
        return found

    assert undescribed(message_of(committed, event_type)["payload"], "") == []


def test_the_key_of_a_delivery_may_be_a_facility(committed: Document) -> None:
    key = committed["components"]["messages"]["AssistanceDelivered"]["bindings"]["kafka"]["key"]

    assert "facility id" in key["description"]


# ---- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_example_is_valid_against_its_message_headers_and_payload(
    committed: Document, event_type: str
) -> None:
    message = message_of(committed, event_type)
    (sample,) = message["examples"]

    assert sample["payload"] == example(event_type)
    payload_validator(committed, message["payload"]).validate(sample["payload"])
    payload_validator(committed, message["headers"]).validate(sample["headers"])


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_example_decodes_with_the_contracts_package(
    committed: Document, event_type: str
) -> None:
    (sample,) = message_of(committed, event_type)["examples"]
    headers = [(name, value.encode()) for name, value in sample["headers"].items()]

    envelope = Envelope.from_headers(headers)
    event = decode(envelope, json.dumps(sample["payload"]).encode())

    assert envelope.type == event_type
    assert envelope.subject == event.subject()


def test_the_header_schema_refuses_another_event_type(committed: Document) -> None:
    message = message_of(committed, NeedAssessed.event_type)
    headers = message["examples"][0]["headers"] | {"ce_type": "org.aidmesh.x.y.z.v1"}

    found = list(payload_validator(committed, message["headers"]).iter_errors(headers))

    assert [e.validator for e in found] == ["const"]


def test_the_payload_schema_refuses_a_need_of_severity_six(committed: Document) -> None:
    message = message_of(committed, NeedAssessed.event_type)
    payload = example(NeedAssessed.event_type) | {"severity": 6}

    found = list(payload_validator(committed, message["payload"]).iter_errors(payload))

    assert [list(e.absolute_path) for e in found] == [["severity"]]


def test_the_dead_letter_example_carries_every_dlq_header(committed: Document) -> None:
    message = committed["components"]["messages"][DEAD_LETTER]
    (sample,) = message["examples"]

    payload_validator(committed, message["headers"]).validate(sample["headers"])
    assert sample["headers"]["ce_type"] == "org.aidmesh.registration.household.registered.v1"
