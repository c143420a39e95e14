"""How a Kafka principal's password is found, and what a client is configured with."""

from __future__ import annotations

from pathlib import Path

import pytest
from aidmesh_runtime.kafka import KafkaConnection, KafkaCredentialsMissing, read_password
from aidmesh_runtime.settings import SecretFileError, ServiceSettings


def password_file(directory: Path, principal: str, mode: int) -> Path:
    path = directory / f"{principal}.password"
    path.write_text("s3cr3t-not-a-secret\n")
    path.chmod(mode)
    return path


def test_the_password_comes_from_the_principals_file_stripped(tmp_path: Path) -> None:
    password_file(tmp_path, "shelter", 0o600)
    assert read_password("shelter", password=None, secrets_dir=tmp_path, variable="V") == (
        "s3cr3t-not-a-secret"
    )


def test_a_password_file_every_user_can_read_is_refused(tmp_path: Path) -> None:
    password_file(tmp_path, "shelter", 0o644)
    with pytest.raises(SecretFileError, match="readable by every user"):
        read_password("shelter", password=None, secrets_dir=tmp_path, variable="V")


def test_a_given_password_wins_over_the_file(tmp_path: Path) -> None:
    password_file(tmp_path, "shelter", 0o600)
    assert read_password("shelter", password="given", secrets_dir=tmp_path, variable="V") == "given"


def test_no_password_anywhere_names_the_variable_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(KafkaCredentialsMissing, match="AIDMESH_SHELTER_KAFKA_PASSWORD"):
        read_password(
            "shelter",
            password=None,
            secrets_dir=tmp_path,
            variable="AIDMESH_SHELTER_KAFKA_PASSWORD",
        )


def test_a_service_connects_as_its_own_principal(tmp_path: Path) -> None:
    class ShelterSettings(ServiceSettings):
        service_name = "shelter"

    password_file(tmp_path, "shelter", 0o600)
    connection = ShelterSettings(kafka_secrets_dir=str(tmp_path)).kafka_connection()
    assert (connection.username, connection.protocol) == ("shelter", "SASL_PLAINTEXT")
    assert connection.auth()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "s3cr3t" not in repr(connection)


def test_plaintext_needs_no_password() -> None:
    connection = KafkaConnection(
        bootstrap="b:9092", username="x", password="", protocol="PLAINTEXT"
    )
    assert connection.auth() == {}
