"""The committed JSON Schemas are current, valid Draft 2020-12, and accept every example."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aidmesh_contracts import EVENT_TYPES, HouseholdRegistered, RepairCompleted
from aidmesh_contracts.envelope import encode, schema_uri
from aidmesh_contracts.examples import example
from aidmesh_contracts.schemas import SCHEMA_DIR, stale_files, write
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

ALL_TYPES = sorted(EVENT_TYPES)
HOUSEHOLD_REGISTERED = HouseholdRegistered.event_type

SchemaOf = Callable[[str], dict[str, Any]]


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_committed_json_schemas_are_current() -> None:
    assert stale_files() == [], "run `python -m aidmesh_contracts.schemas write`"


def test_stale_files_notices_a_schema_that_no_longer_matches_its_model(
    schema_dir_copy: Path,
) -> None:
    path = schema_dir_copy / f"{HOUSEHOLD_REGISTERED}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    del schema["properties"]["size"]
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    assert stale_files(schema_dir_copy) == [path.name]


def test_stale_files_notices_an_orphan_schema_of_no_registered_type(
    schema_dir_copy: Path,
) -> None:
    orphan = schema_dir_copy / "org.aidmesh.registration.household.vanished.v1.json"
    orphan.write_text("{}\n", encoding="utf-8")

    assert stale_files(schema_dir_copy) == [orphan.name]


def test_stale_files_notices_a_missing_schema(schema_dir_copy: Path) -> None:
    missing = schema_dir_copy / f"{HOUSEHOLD_REGISTERED}.json"
    missing.unlink()

    assert stale_files(schema_dir_copy) == [missing.name]


def test_writing_the_schemas_makes_a_stale_directory_current(schema_dir_copy: Path) -> None:
    (schema_dir_copy / f"{HOUSEHOLD_REGISTERED}.json").write_text("{}\n", encoding="utf-8")
    orphan = schema_dir_copy / "org.aidmesh.registration.household.vanished.v1.json"
    orphan.write_text("{}\n", encoding="utf-8")

    write(schema_dir_copy)

    assert stale_files(schema_dir_copy) == []
    assert not orphan.exists()


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_committed_schema_is_a_valid_draft_2020_12_schema(
    event_type: str, committed_schema: SchemaOf
) -> None:
    schema = committed_schema(event_type)

    assert validator_for(schema) is Draft202012Validator
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == schema_uri(event_type)
    assert schema["x-aidmesh-topic"] == EVENT_TYPES[event_type].topic


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_example_is_valid_against_its_committed_schema(
    event_type: str, committed_schema: SchemaOf
) -> None:
    validator(committed_schema(event_type)).validate(example(event_type))


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_event_as_published_is_valid_against_its_committed_schema(
    event_type: str, committed_schema: SchemaOf
) -> None:
    event = EVENT_TYPES[event_type].model_validate(example(event_type))

    validator(committed_schema(event_type)).validate(json.loads(encode(event)))


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_committed_schema_rejects_an_unknown_field(
    event_type: str, committed_schema: SchemaOf
) -> None:
    payload = example(event_type) | {"beneficiary_note": "anything"}

    errors = list(validator(committed_schema(event_type)).iter_errors(payload))

    assert [e.validator for e in errors] == ["additionalProperties"]
    assert "beneficiary_note" in errors[0].message


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_committed_schema_rejects_a_payload_missing_a_required_field(
    event_type: str, committed_schema: SchemaOf
) -> None:
    schema = committed_schema(event_type)
    required = sorted(schema["required"])[0]
    payload = example(event_type)
    del payload[required]

    errors = list(validator(schema).iter_errors(payload))

    assert [e.validator for e in errors] == ["required"]
    assert required in errors[0].message


def test_the_committed_schema_rejects_a_p_code_of_the_wrong_shape(
    committed_schema: SchemaOf,
) -> None:
    payload = example(HOUSEHOLD_REGISTERED)
    payload["location"]["adm1_pcode"] = "Kharkiv"

    errors = list(validator(committed_schema(HOUSEHOLD_REGISTERED)).iter_errors(payload))

    assert [list(e.absolute_path) for e in errors] == [["location", "adm1_pcode"]]


def test_the_committed_schema_refuses_a_negative_or_over_precise_amount(
    committed_schema: SchemaOf,
) -> None:
    repair = RepairCompleted.event_type
    payload = example(repair)
    payload["value"]["amount"] = "-27850.001"

    assert list(validator(committed_schema(repair)).iter_errors(payload)) != []


def _const_with_default(node: object, where: str) -> list[str]:
    if isinstance(node, dict):
        found = [where] if "const" in node and "default" in node else []
        return found + [f for k, v in node.items() for f in _const_with_default(v, f"{where}/{k}")]
    if isinstance(node, list):
        return [f for i, v in enumerate(node) for f in _const_with_default(v, f"{where}/{i}")]
    return []


def test_no_schema_gives_a_const_a_default_that_generators_turn_into_invalid_code() -> None:
    # `asyncapi generate models` wrote `default=None, default='UAH'` for such a pair.
    committed = {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}
    document = yaml.safe_load((SCHEMA_DIR.parents[2] / "asyncapi.yaml").read_text())

    assert [f for n, s in committed.items() for f in _const_with_default(s, n)] == []
    assert _const_with_default(document, "asyncapi.yaml") == []
    assert _const_with_default({"const": "UAH", "default": "UAH"}, "planted") == ["planted"]
