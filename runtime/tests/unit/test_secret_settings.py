"""Secret settings come from the environment or from files (`X_FILE`), never show in repr,
and a file that cannot be trusted stops the service naming the variable, not the value."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest
from aidmesh_runtime.settings import SecretFileError, ServiceSettings
from pydantic import SecretStr

KEY = "k1:c2VjcmV0LWtleS1tYWRlLXVwLWZvci10aGlzLXRlc3QhIQ=="


class VaultSettings(ServiceSettings):
    service_name: ClassVar[str] = "vault"

    api_key: SecretStr | None = None
    signing_key: SecretStr = SecretStr("unset")
    #: Not a secret: never read from a file.
    team_code: str = "IOM"


@pytest.fixture(autouse=True)
def no_aidmesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AIDMESH_"):
            monkeypatch.delenv(name)


def secret_file(path: Path, content: str, mode: int = 0o600) -> Path:
    path.write_text(content, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_secret_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY", KEY)

    assert VaultSettings().api_key == SecretStr(KEY)


def test_a_secret_is_read_from_the_file_its_file_variable_names_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", str(secret_file(tmp_path / "k", KEY + "\n")))

    settings = VaultSettings()

    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == KEY


def test_a_shared_file_variable_serves_every_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIDMESH_SIGNING_KEY_FILE", str(secret_file(tmp_path / "k", KEY)))

    assert VaultSettings().signing_key.get_secret_value() == KEY


def test_the_service_specific_variable_wins_over_a_shared_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIDMESH_API_KEY_FILE", str(secret_file(tmp_path / "shared", "shared")))
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", str(secret_file(tmp_path / "own", "own")))

    assert VaultSettings().api_key == SecretStr("own")


def test_a_value_given_in_code_wins_and_the_file_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", "/nonexistent/api-key")

    assert VaultSettings(api_key=KEY).api_key == SecretStr(KEY)


def test_only_secret_settings_are_read_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIDMESH_VAULT_TEAM_CODE_FILE", str(secret_file(tmp_path / "t", "NRC")))

    assert VaultSettings().team_code == "IOM"


def test_a_missing_file_stops_the_service_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", "/nonexistent/api-key")

    with pytest.raises(SecretFileError, match="AIDMESH_VAULT_API_KEY_FILE: cannot read"):
        VaultSettings()


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o444])
def test_a_file_every_user_can_read_stops_the_service_without_showing_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    path = secret_file(tmp_path / "api-key", KEY, mode=mode)
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", str(path))

    with pytest.raises(SecretFileError) as refused:
        VaultSettings()

    assert "AIDMESH_VAULT_API_KEY_FILE" in str(refused.value)
    assert "readable by every user" in str(refused.value)
    assert KEY not in str(refused.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o440, 0o640])
def test_a_file_only_its_owner_or_group_can_read_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    path = secret_file(tmp_path / "api-key", KEY, mode=mode)
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", str(path))

    assert VaultSettings().api_key == SecretStr(KEY)


def test_an_empty_file_stops_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", str(secret_file(tmp_path / "k", " \n")))

    with pytest.raises(SecretFileError, match=r"AIDMESH_VAULT_API_KEY_FILE: .* is empty"):
        VaultSettings()


def test_a_secret_given_both_ways_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY", KEY)
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY_FILE", str(secret_file(tmp_path / "k", KEY)))

    with pytest.raises(SecretFileError, match="both AIDMESH_VAULT_API_KEY and"):
        VaultSettings()


def test_secrets_never_show_in_repr_or_a_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = "postgresql://vault_app:Tr0ub4dor-and-3@pg.cluster:5432/vault"  # not a secret: made up
    monkeypatch.setenv("AIDMESH_VAULT_DB_DSN_FILE", str(secret_file(tmp_path / "dsn", dsn)))
    monkeypatch.setenv("AIDMESH_VAULT_API_KEY", KEY)

    settings = VaultSettings()

    assert settings.database_dsn == dsn
    for shown in (repr(settings), str(settings), str(settings.model_dump())):
        assert "Tr0ub4dor" not in shown
        assert KEY not in shown


def test_the_service_refuses_to_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aidmesh_runtime.service import serve

    monkeypatch.setenv("AIDMESH_VAULT_DB_DSN_FILE", "/nonexistent/dsn")

    with pytest.raises(SystemExit) as stopped:
        serve(lambda settings: pytest.fail("built an app without its secrets"), VaultSettings)

    assert str(stopped.value).startswith("vault: AIDMESH_VAULT_DB_DSN_FILE: cannot read")
