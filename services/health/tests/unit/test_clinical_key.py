"""Health's clinical key comes from the environment or a file, never from the repository:
without one the service does not start, and says which variable to set."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from aidmesh_health.app import build_app
from aidmesh_health.clinical import ClinicalCipher, new_key
from aidmesh_health.settings import HealthSettings
from aidmesh_runtime.service import serve
from aidmesh_runtime.settings import MissingSecretError
from aidmesh_runtime.testing import isolated_settings


@pytest.fixture(autouse=True)
def no_aidmesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AIDMESH_"):
            monkeypatch.delenv(name)


def test_a_new_key_is_32_random_bytes_in_base64() -> None:
    first, second = new_key(), new_key()

    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != second
    ClinicalCipher(first)


def test_health_without_a_clinical_key_refuses_to_build_naming_both_variables() -> None:
    with pytest.raises(MissingSecretError) as refused:
        build_app(isolated_settings(HealthSettings))

    assert str(refused.value).startswith(
        "AIDMESH_HEALTH_CLINICAL_KEY is not set (nor AIDMESH_HEALTH_CLINICAL_KEY_FILE)"
    )


def test_the_service_exits_with_one_line_saying_what_to_set() -> None:
    with pytest.raises(SystemExit) as stopped:
        serve(build_app, HealthSettings)

    assert str(stopped.value).startswith("health: AIDMESH_HEALTH_CLINICAL_KEY is not set")


def test_the_clinical_key_is_read_from_the_file_its_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    key_file = tmp_path / "clinical-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("AIDMESH_HEALTH_CLINICAL_KEY_FILE", str(key_file))

    settings = HealthSettings()

    assert settings.clinical_key is not None
    assert settings.clinical_key.get_secret_value() == key
    assert key not in repr(settings)
