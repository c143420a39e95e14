"""Each service consumes exactly the topics the catalogue names it a consumer of, and
handles only event types that flow on them (issue 20): the catalogue drives topic ACLs,
AsyncAPI and the k8s topics, so a handler it does not know of would never be granted its
topic, and a consumer listed there with no handler holds a grant it does not need."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aidmesh_audit.app import build_app as audit_app
from aidmesh_audit.settings import AuditSettings
from aidmesh_cash.app import build_app as cash_app
from aidmesh_cash.settings import CashSettings
from aidmesh_contracts import ProtectionCaseOpened
from aidmesh_contracts.base import Event
from aidmesh_contracts.catalogue import CATALOGUE
from aidmesh_health.app import build_app as health_app
from aidmesh_health.clinical import new_key
from aidmesh_health.settings import HealthSettings
from aidmesh_protection.app import build_app as protection_app
from aidmesh_protection.crypto import new_data_key
from aidmesh_protection.settings import ProtectionSettings
from aidmesh_registration.app import build_app as registration_app
from aidmesh_registration.crypto import new_kek
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_runtime.testing import isolated_settings
from aidmesh_shelter.app import build_app as shelter_app
from aidmesh_shelter.settings import ShelterSettings
from fastapi import FastAPI

SERVICES: dict[str, Callable[[], FastAPI]] = {
    "registration": lambda: registration_app(
        isolated_settings(RegistrationSettings, kek=new_kek("test"))
    ),
    "shelter": lambda: shelter_app(isolated_settings(ShelterSettings)),
    "health": lambda: health_app(isolated_settings(HealthSettings, clinical_key=new_key())),
    "protection": lambda: protection_app(
        isolated_settings(ProtectionSettings, data_key=new_data_key("test"))
    ),
    "cash": lambda: cash_app(isolated_settings(CashSettings)),
    "audit": lambda: audit_app(isolated_settings(AuditSettings)),
}


def handled(service: str) -> set[type[Event]]:
    return set(SERVICES[service]().state.handlers)


def mismatches(service: str, handles: set[type[Event]]) -> list[str]:
    """How a service's handler map and the catalogue disagree (empty: they agree)."""
    listed = {topic.name for topic in CATALOGUE if service in topic.consumers}
    consumed = {model.topic for model in handles}
    carried = {model for topic in CATALOGUE for model in topic.event_types}
    return (
        [f"handles {topic} without being its catalogue consumer" for topic in consumed - listed]
        + [
            f"listed as a consumer of {topic} but handles nothing on it"
            for topic in listed - consumed
        ]
        + [f"handles {m.event_type}, which no topic carries" for m in handles - carried]
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_handles_what_the_catalogue_lists_it_for(service: str) -> None:
    assert mismatches(service, handled(service)) == []


def test_a_planted_handler_the_catalogue_does_not_list_is_found() -> None:
    planted = handled("shelter") | {ProtectionCaseOpened}

    assert mismatches("shelter", planted) == [
        f"handles {ProtectionCaseOpened.topic} without being its catalogue consumer"
    ]
    assert mismatches("audit", set()) != []  # a listed consumer with no handler at all


def test_every_catalogue_consumer_that_is_a_service_is_checked_here() -> None:
    consumers = {name for topic in CATALOGUE for name in topic.consumers}
    outside = {"reporting", "partners"}  # not services of this repository (yet)

    assert consumers - outside == set(SERVICES)
