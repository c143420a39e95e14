"""Every event type is named by the rule, registered once, and listed on its own topic."""

from __future__ import annotations

from uuid import UUID

import pytest
from aidmesh_contracts import EVENT_TYPES, HouseholdRegistered
from aidmesh_contracts.base import EVENT_TYPE_PATTERN, Event, event
from aidmesh_contracts.catalogue import CATALOGUE, check_catalogue, topic
from aidmesh_contracts.topics import HOUSEHOLD

ALL_TYPES = sorted(EVENT_TYPES)


def test_the_registry_is_not_empty() -> None:
    # Guards the parametrised tests below against silently running zero cases.
    assert len(ALL_TYPES) >= 7


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_every_event_type_is_named_org_aidmesh_context_entity_verb_version(
    event_type: str,
) -> None:
    assert EVENT_TYPE_PATTERN.fullmatch(event_type), event_type


@pytest.mark.parametrize(
    "bad_name",
    [
        "org.aidmesh.registration.household.registered",  # no version
        "org.aidmesh.registration.household.registered.v0",  # versions start at 1
        "org.aidmesh.registration.household.registered.V1",
        "org.aidmesh.registration.registered.v1",  # no entity
        "org.aidmesh.Registration.household.registered.v1",
        "com.example.registration.household.registered.v1",
        "HouseholdRegistered",
    ],
)
def test_the_naming_rule_rejects_a_malformed_event_type(bad_name: str) -> None:
    assert EVENT_TYPE_PATTERN.match(bad_name) is None


def test_registering_a_model_under_a_type_without_version_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):

        @event(type="org.aidmesh.registration.household.archived", topic=HOUSEHOLD)
        class HouseholdArchived(Event):
            household_id: UUID

    assert "org.aidmesh.registration.household.archived" not in EVENT_TYPES


def test_registering_a_second_model_under_an_existing_type_is_refused() -> None:
    existing = HouseholdRegistered.event_type
    with pytest.raises(ValueError, match="registered twice"):

        @event(type=existing, topic=HOUSEHOLD)
        class Impostor(Event):
            household_id: UUID

    assert EVENT_TYPES[existing] is HouseholdRegistered


def test_every_registered_event_type_is_listed_on_its_own_topic_in_the_catalogue() -> None:
    assert check_catalogue() == []


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_event_type_is_listed_on_exactly_one_topic(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    listed_on = [entry.name for entry in CATALOGUE if model in entry.event_types]
    assert listed_on == [model.topic]


def test_the_catalogue_check_reports_a_type_on_no_topic_and_a_topic_not_in_the_catalogue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class StrayEvent(Event):
        household_id: UUID

    StrayEvent.event_type = "org.aidmesh.registration.household.strayed.v1"
    StrayEvent.topic = "aidmesh.nowhere.v1"
    monkeypatch.setitem(EVENT_TYPES, StrayEvent.event_type, StrayEvent)

    problems = check_catalogue()

    assert problems == [
        "org.aidmesh.registration.household.strayed.v1 is registered but listed on no topic",
        "org.aidmesh.registration.household.strayed.v1 names topic aidmesh.nowhere.v1 "
        "that is not in the catalogue",
    ]


def test_looking_up_a_topic_outside_the_catalogue_names_it() -> None:
    with pytest.raises(KeyError, match=r"aidmesh\.nowhere\.v1"):
        topic("aidmesh.nowhere.v1")


def test_every_topic_has_a_dead_letter_topic_next_to_it() -> None:
    assert topic(HOUSEHOLD).dlq == "aidmesh.registration.household.v1.dlq"
