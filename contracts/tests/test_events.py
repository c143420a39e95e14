"""What every event model promises, checked for each registered type with its example."""

from __future__ import annotations

import pytest
from aidmesh_contracts import EVENT_TYPES
from aidmesh_contracts.examples import EXAMPLES, example
from pydantic import AwareDatetime, ValidationError

ALL_TYPES = sorted(EVENT_TYPES)

#: Every (event type, field) whose value is a point in time.
TIMESTAMP_FIELDS = [
    (event_type, name)
    for event_type in ALL_TYPES
    for name, field in EVENT_TYPES[event_type].model_fields.items()
    if field.annotation is AwareDatetime
]

SEVERITY_FIELDS = [t for t in ALL_TYPES if "severity" in EVENT_TYPES[t].model_fields]


def test_every_registered_event_type_has_an_example() -> None:
    assert sorted(set(EVENT_TYPES) - set(EXAMPLES)) == []


def test_every_example_belongs_to_a_registered_event_type() -> None:
    assert sorted(set(EXAMPLES) - set(EVENT_TYPES)) == []


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_example_is_a_valid_event(event_type: str) -> None:
    event = EVENT_TYPES[event_type].model_validate(example(event_type))

    assert event.event_type == event_type


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_event_round_trips_through_json_unchanged(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    event = model.model_validate(example(event_type))

    assert model.model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_event_refuses_an_unknown_field(event_type: str) -> None:
    payload = example(event_type) | {"head_of_household": "Kovalenko"}

    with pytest.raises(ValidationError) as refused:
        EVENT_TYPES[event_type].model_validate(payload)

    assert [(e["type"], e["loc"]) for e in refused.value.errors()] == [
        ("extra_forbidden", ("head_of_household",))
    ]


def test_every_event_type_says_when_it_happened() -> None:
    assert {event_type for event_type, _ in TIMESTAMP_FIELDS} == set(ALL_TYPES)


@pytest.mark.parametrize(("event_type", "field"), TIMESTAMP_FIELDS)
def test_each_event_refuses_a_naive_datetime(event_type: str, field: str) -> None:
    payload = example(event_type)
    payload[field] = "2026-01-12T10:24:00"

    with pytest.raises(ValidationError) as refused:
        EVENT_TYPES[event_type].model_validate(payload)

    assert [(e["type"], e["loc"]) for e in refused.value.errors()] == [("timezone_aware", (field,))]


@pytest.mark.parametrize("event_type", SEVERITY_FIELDS)
@pytest.mark.parametrize("severity", [0, 6, -1])
def test_a_severity_outside_one_to_five_is_refused(event_type: str, severity: int) -> None:
    payload = example(event_type) | {"severity": severity}

    with pytest.raises(ValidationError) as refused:
        EVENT_TYPES[event_type].model_validate(payload)

    assert [e["loc"] for e in refused.value.errors()] == [("severity",)]


@pytest.mark.parametrize("event_type", SEVERITY_FIELDS)
@pytest.mark.parametrize("severity", [1, 5])
def test_severities_one_and_five_are_the_ends_of_the_scale(event_type: str, severity: int) -> None:
    event = EVENT_TYPES[event_type].model_validate(example(event_type) | {"severity": severity})

    assert event.severity == severity  # type: ignore[attr-defined]


#: Aggregates other than a household: a collective centre, a raw intake submission.
KEYED_OTHERWISE = {
    "org.aidmesh.shelter.facility.opened.v1": "facility_id",
    "org.aidmesh.registration.intake.submitted.v1": "submission_id",
    "org.aidmesh.cash.cycle.opened.v1": "cycle_id",
    "org.aidmesh.cash.cycle.approved.v1": "cycle_id",
}


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_example_is_keyed_by_its_household(event_type: str) -> None:
    payload = example(event_type)
    event = EVENT_TYPES[event_type].model_validate(payload)

    assert event.subject() == payload[KEYED_OTHERWISE.get(event_type, "household_id")]


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_an_event_cannot_be_changed_once_made(event_type: str) -> None:
    event = EVENT_TYPES[event_type].model_validate(example(event_type))

    with pytest.raises(ValidationError, match="frozen"):
        event.household_id = None  # type: ignore[attr-defined]
