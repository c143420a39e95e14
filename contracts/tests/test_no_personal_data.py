"""Events on shared topics carry ids, codes, counts and flags, never personal data.

The check reads field names out of each type's JSON Schema as generated from the model
(the committed files are the same, see test_schemas), at any depth, so a personal field
hidden in a nested model is found too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aidmesh_contracts import EVENT_TYPES, HouseholdRegistered, NeedAssessed
from aidmesh_contracts.schemas import render

PERSONAL_WORDS = ("name", "phone", "address", "document", "passport", "birth", "email")


def field_names(schema: Any) -> Iterator[str]:
    """Every property name declared anywhere in a JSON Schema, $defs included."""
    if isinstance(schema, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            yield from properties
        for value in schema.values():
            yield from field_names(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from field_names(item)


def personal_fields(schema: dict[str, Any]) -> set[str]:
    return {name for name in field_names(schema) if any(w in name.lower() for w in PERSONAL_WORDS)}


def test_registration_and_assessment_events_are_among_those_checked() -> None:
    assert {HouseholdRegistered.event_type, NeedAssessed.event_type} <= set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_no_field_of_a_shared_event_is_named_like_personal_data(event_type: str) -> None:
    assert personal_fields(json.loads(render(event_type))) == set()


def test_the_check_finds_personal_fields_nested_at_any_depth() -> None:
    schema = {
        "properties": {"household_id": {"type": "string"}, "Email": {"type": "string"}},
        "$defs": {
            "Member": {
                "properties": {
                    "date_of_birth": {"type": "string"},
                    "contacts": {
                        "type": "array",
                        "items": {"anyOf": [{"properties": {"mobile_phone": {}}}]},
                    },
                }
            }
        },
    }

    assert personal_fields(schema) == {"Email", "date_of_birth", "mobile_phone"}


def test_the_check_reads_field_names_not_descriptions() -> None:
    schema = {"properties": {"size": {"description": "Never a name or phone number."}}}

    assert personal_fields(schema) == set()
