"""Service settings: `AIDMESH_<SERVICE>_X` beats `AIDMESH_X`, and the database is derived."""

from __future__ import annotations

import os
from typing import ClassVar

import pytest
from aidmesh_runtime.settings import ServiceSettings


class ShelterSettings(ServiceSettings):
    service_name: ClassVar[str] = "shelter"
    default_http_port: ClassVar[int] = 8102


@pytest.fixture(autouse=True)
def no_aidmesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without AIDMESH_ variables."""
    for name in list(os.environ):
        if name.upper().startswith("AIDMESH_"):
            monkeypatch.delenv(name)


def test_without_environment_a_service_runs_against_the_local_infrastructure() -> None:
    settings = ShelterSettings()

    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.source == "/aidmesh/shelter"
    assert settings.group_id == "aidmesh-shelter"
    assert settings.port == 8102


def test_a_shared_variable_applies_to_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDMESH_KAFKA_BOOTSTRAP", "kafka-1:9092")

    assert ShelterSettings().kafka_bootstrap == "kafka-1:9092"


def test_a_service_specific_variable_overrides_the_shared_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIDMESH_KAFKA_BOOTSTRAP", "kafka-1:9092")
    monkeypatch.setenv("AIDMESH_SHELTER_KAFKA_BOOTSTRAP", "kafka-shelter:9092")

    assert ShelterSettings().kafka_bootstrap == "kafka-shelter:9092"


def test_another_services_variables_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDMESH_HEALTH_DB_POOL_SIZE", "3")
    monkeypatch.setenv("AIDMESH_HEALTH_HTTP_PORT", "9999")

    settings = ShelterSettings()

    assert settings.db_pool_size == 10
    assert settings.port == 8102


def test_values_given_in_code_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDMESH_SHELTER_RELAY_BATCH_SIZE", "50")

    assert ShelterSettings(relay_batch_size=7).relay_batch_size == 7


def test_a_service_specific_port_and_consumer_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDMESH_SHELTER_HTTP_PORT", "18102")
    monkeypatch.setenv("AIDMESH_SHELTER_CONSUMER_GROUP", "aidmesh-shelter-blue")

    settings = ShelterSettings()

    assert settings.port == 18102
    assert settings.group_id == "aidmesh-shelter-blue"


def test_the_service_database_and_role_are_named_after_the_service() -> None:
    settings = ShelterSettings()

    assert settings.database_dsn == "postgresql://aidmesh_shelter@127.0.0.1:5433/aidmesh_shelter"


def test_the_derived_database_keeps_the_server_but_drops_the_admin_credentials() -> None:
    settings = ShelterSettings(
        # not a secret: a made-up password, to see it dropped
        pg_dsn="postgresql://postgres:s3cret@db.internal:6432/postgres?sslmode=require"
    )

    assert settings.database_dsn == (
        "postgresql://aidmesh_shelter@db.internal:6432/aidmesh_shelter?sslmode=require"
    )


def test_a_database_name_from_the_environment_replaces_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIDMESH_SHELTER_DB_NAME", "aidmesh_shelter_e2e")

    assert ShelterSettings().database_dsn.endswith("@127.0.0.1:5433/aidmesh_shelter_e2e")


def test_an_explicit_database_dsn_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = "postgresql://shelter_app:pw@pg.cluster:5432/shelter"  # not a secret: made up
    monkeypatch.setenv("AIDMESH_SHELTER_DB_DSN", dsn)
    monkeypatch.setenv("AIDMESH_PG_DSN", "postgresql://postgres@elsewhere:5432/postgres")

    assert ShelterSettings().database_dsn == dsn
