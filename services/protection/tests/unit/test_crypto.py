"""Field encryption: AES-256-GCM, a fresh nonce per value, bound to its case and field."""

from __future__ import annotations

import base64

import pytest
from aidmesh_protection.__main__ import main
from aidmesh_protection.app import build_app
from aidmesh_protection.crypto import (
    DataKeyError,
    DecryptionFailed,
    Keyring,
    key_id_of,
    new_data_key,
    parse_key,
)
from aidmesh_protection.settings import ProtectionSettings

NARRATIVE = "She was promised work in a café abroad; her passport was taken at the border."
CASE = "PRT-0123456789"
OTHER_CASE = "PRT-ABCDEFGHJK"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_config(new_data_key("k1"))


def test_a_sealed_value_opens_for_its_case_and_field(keyring: Keyring) -> None:
    token = keyring.seal(NARRATIVE, case_ref=CASE, field_name="case_notes.body/1")

    assert keyring.open(token, case_ref=CASE, field_name="case_notes.body/1") == NARRATIVE


def test_a_sealed_value_shows_nothing_of_the_text(keyring: Keyring) -> None:
    token = keyring.seal(NARRATIVE, case_ref=CASE, field_name="f")

    assert token.startswith("enc:v1:k1:")
    assert "passport" not in token
    assert "passport" not in base64.urlsafe_b64decode(token.split(":", 3)[3]).decode("latin-1")


def test_the_same_text_seals_differently_each_time(keyring: Keyring) -> None:
    first = keyring.seal(NARRATIVE, case_ref=CASE, field_name="f")
    second = keyring.seal(NARRATIVE, case_ref=CASE, field_name="f")

    assert first != second
    nonce = lambda token: base64.urlsafe_b64decode(token.split(":", 3)[3])[:12]  # noqa: E731
    assert nonce(first) != nonce(second)


def test_a_value_moved_to_another_case_does_not_open(keyring: Keyring) -> None:
    token = keyring.seal(NARRATIVE, case_ref=CASE, field_name="f")

    with pytest.raises(DecryptionFailed):
        keyring.open(token, case_ref=OTHER_CASE, field_name="f")


def test_a_value_moved_to_another_field_does_not_open(keyring: Keyring) -> None:
    token = keyring.seal(NARRATIVE, case_ref=CASE, field_name="case_notes.body/1")

    with pytest.raises(DecryptionFailed):
        keyring.open(token, case_ref=CASE, field_name="case_notes.body/2")


def test_a_tampered_value_does_not_open(keyring: Keyring) -> None:
    token = keyring.seal(NARRATIVE, case_ref=CASE, field_name="f")
    prefix, encoded = token.rsplit(":", 1)
    blob = bytearray(base64.urlsafe_b64decode(encoded))
    blob[20] ^= 0x01
    tampered = prefix + ":" + base64.urlsafe_b64encode(bytes(blob)).decode()

    with pytest.raises(DecryptionFailed):
        keyring.open(tampered, case_ref=CASE, field_name="f")


def test_a_truncated_or_foreign_value_does_not_open(keyring: Keyring) -> None:
    token = keyring.seal(NARRATIVE, case_ref=CASE, field_name="f")

    for broken in (token[:30], "plain text", "enc:v1:k1:", "enc:v1:k1:!!!"):
        with pytest.raises(DecryptionFailed):
            keyring.open(broken, case_ref=CASE, field_name="f")


def test_a_value_sealed_with_another_key_does_not_open(keyring: Keyring) -> None:
    token = Keyring.from_config(new_data_key("k1")).seal(NARRATIVE, case_ref=CASE, field_name="f")

    with pytest.raises(DecryptionFailed):
        keyring.open(token, case_ref=CASE, field_name="f")


def test_a_rotated_keyring_opens_old_values_and_seals_new_ones_with_the_new_key() -> None:
    old_key = new_data_key("k1")
    old_token = Keyring.from_config(old_key).seal(NARRATIVE, case_ref=CASE, field_name="f")
    rotated = Keyring.from_config(new_data_key("k2"), retired=old_key)

    assert rotated.open(old_token, case_ref=CASE, field_name="f") == NARRATIVE
    assert not rotated.is_current(old_token)
    new_token = rotated.seal(NARRATIVE, case_ref=CASE, field_name="f")
    assert key_id_of(new_token) == "k2"
    assert rotated.is_current(new_token)


def test_a_value_under_a_key_no_longer_configured_names_the_key_only() -> None:
    token = Keyring.from_config(new_data_key("k1")).seal(NARRATIVE, case_ref=CASE, field_name="f")

    with pytest.raises(DecryptionFailed, match="'k1'") as refused:
        Keyring.from_config(new_data_key("k2")).open(token, case_ref=CASE, field_name="f")

    assert "passport" not in str(refused.value)


@pytest.mark.parametrize(
    "config",
    [
        "no-separator",
        "k1:not base64!",
        "k1:" + base64.b64encode(b"too short").decode(),
        "bad id!:" + base64.b64encode(bytes(32)).decode(),
    ],
)
def test_a_malformed_key_is_refused_without_showing_it(config: str) -> None:
    with pytest.raises(DataKeyError) as refused:
        parse_key(config)

    material = config.partition(":")[2]
    assert not material or material not in str(refused.value)


def test_a_key_id_configured_twice_is_refused() -> None:
    key = new_data_key("k1")

    with pytest.raises(DataKeyError, match="twice"):
        Keyring.from_config(key, retired=new_data_key("k1"))


def test_settings_without_a_data_key_refuse_with_a_clear_message() -> None:
    settings = ProtectionSettings(data_key=None)

    with pytest.raises(DataKeyError, match="AIDMESH_PROTECTION_DATA_KEY is not set"):
        settings.keyring()


def test_settings_read_the_data_key_from_a_file(tmp_path, monkeypatch) -> None:
    key_file = tmp_path / "protection-data-key"
    key_file.write_text(new_data_key("local1") + "\n")
    key_file.chmod(0o600)
    monkeypatch.delenv("AIDMESH_PROTECTION_DATA_KEY", raising=False)
    monkeypatch.setenv("AIDMESH_PROTECTION_DATA_KEY_FILE", str(key_file))

    keyring = ProtectionSettings().keyring()

    assert keyring.current_id == "local1"


def test_the_service_refuses_to_start_with_a_data_key_file_every_user_can_read(
    tmp_path, monkeypatch, capsys
) -> None:
    key = new_data_key("local1")
    key_file = tmp_path / "protection-data-key"
    key_file.write_text(key)
    key_file.chmod(0o644)
    monkeypatch.delenv("AIDMESH_PROTECTION_DATA_KEY", raising=False)
    monkeypatch.setenv("AIDMESH_PROTECTION_DATA_KEY_FILE", str(key_file))

    assert main([]) == 2

    error = capsys.readouterr().err
    assert "AIDMESH_PROTECTION_DATA_KEY_FILE" in error
    assert "readable by every user" in error
    assert key.split(":")[1] not in error


def test_the_settings_never_show_the_key() -> None:
    key = new_data_key("k1")
    settings = ProtectionSettings(data_key=key)

    assert key.split(":")[1] not in repr(settings)
    assert key.split(":")[1] not in str(settings.model_dump())


def test_the_service_refuses_to_start_without_a_data_key(monkeypatch, capsys) -> None:
    for name in ("AIDMESH_PROTECTION_DATA_KEY", "AIDMESH_PROTECTION_DATA_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIDMESH_DATA_KEY", raising=False)
    monkeypatch.delenv("AIDMESH_DATA_KEY_FILE", raising=False)

    assert main([]) == 2

    assert "AIDMESH_PROTECTION_DATA_KEY is not set" in capsys.readouterr().err


def test_build_app_refuses_settings_without_a_data_key() -> None:
    with pytest.raises(DataKeyError):
        build_app(ProtectionSettings(data_key=None))


def test_new_key_prints_a_usable_key(capsys) -> None:
    assert main(["new-key", "k7"]) == 0

    assert Keyring.from_config(capsys.readouterr().out).current_id == "k7"
