"""Encryption at rest (crypto.py), without infrastructure: a household's data key seals and
opens its personal data only for the same household, field and row; wrapped keys open only
under their KEK; erased keys open nowhere; blind indexes match equal values only."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path
from uuid import uuid4

import pytest
from aidmesh_registration.app import build_app
from aidmesh_registration.crypto import (
    DecryptionFailed,
    HouseholdKey,
    KekError,
    KeyDestroyed,
    Vault,
    new_kek,
    parse_kek,
)
from aidmesh_registration.settings import RegistrationSettings

PERSON = {"family_name": "Коваленко", "given_name": "Олена", "date_of_birth": "1984-05-03"}


@pytest.fixture
def vault() -> Vault:
    return Vault.from_config(new_kek("test"))


def test_a_sealed_value_opens_to_what_was_sealed(vault: Vault) -> None:
    household_id, member_id = uuid4(), uuid4()
    key, _ = vault.new_household_key(household_id)

    sealed = key.seal("member", PERSON, row=member_id)

    assert key.open("member", sealed, row=member_id) == PERSON
    assert "Коваленко".encode() not in sealed
    assert key.seal("member", PERSON, row=member_id) != sealed  # a fresh nonce each time


def test_a_value_moved_to_another_field_row_or_household_does_not_open(vault: Vault) -> None:
    household_id, member_id = uuid4(), uuid4()
    key, _ = vault.new_household_key(household_id)
    sealed = key.seal("member", PERSON, row=member_id)
    same_key_other_household = HouseholdKey(uuid4(), key.dek)

    with pytest.raises(DecryptionFailed):
        key.open("household", sealed, row=member_id)
    with pytest.raises(DecryptionFailed):
        key.open("member", sealed, row=uuid4())
    with pytest.raises(DecryptionFailed):
        same_key_other_household.open("member", sealed, row=member_id)


def test_a_value_does_not_open_with_another_households_key(vault: Vault) -> None:
    household_id = uuid4()
    key, _ = vault.new_household_key(household_id)
    other, _ = vault.new_household_key(household_id)  # another random key, same household
    sealed = key.seal("household", {"phone": "+380501234567"})

    with pytest.raises(DecryptionFailed):
        other.open("household", sealed)


def test_a_changed_byte_is_detected(vault: Vault) -> None:
    key, _ = vault.new_household_key(uuid4())
    sealed = bytearray(key.seal("household", {"phone": "+380501234567"}))
    sealed[-1] ^= 1

    with pytest.raises(DecryptionFailed):
        key.open("household", bytes(sealed))


def test_a_wrapped_key_opens_under_its_kek_for_its_household_only(vault: Vault) -> None:
    household_id = uuid4()
    key, wrapped = vault.new_household_key(household_id)

    assert vault.open_household_key(household_id, wrapped, kek_id="test").dek == key.dek
    assert key.dek not in wrapped
    with pytest.raises(DecryptionFailed):
        vault.open_household_key(uuid4(), wrapped)
    with pytest.raises(DecryptionFailed):
        Vault.from_config(new_kek("test")).open_household_key(household_id, wrapped)
    with pytest.raises(DecryptionFailed, match="wrapped under KEK 'old'"):
        vault.open_household_key(household_id, wrapped, kek_id="old")


def test_a_destroyed_key_is_an_erased_household(vault: Vault) -> None:
    household_id = uuid4()

    with pytest.raises(KeyDestroyed, match="erased"):
        vault.open_household_key(household_id, None, kek_id="test")


def test_blind_indexes_match_equal_values_of_one_kind_only(vault: Vault) -> None:
    phone = vault.index("phone", "+380501234567")

    assert vault.index("phone", "+380501234567") == phone
    assert vault.index("phone", "+380501234568") != phone
    assert vault.index("block", "+380501234567") != phone  # kinds are kept apart
    assert Vault.from_config(new_kek("test")).index("phone", "+380501234567") != phone
    assert "380501234567" not in phone
    assert vault.indexes("name", ["b", "a", "b"]) == sorted({vault.index("name", v) for v in "ab"})


def test_unlinked_values_open_only_for_their_scope(vault: Vault) -> None:
    sealed = vault.seal_unlinked("intake:NRC:1", {"head/family_name": "Коваленко"})

    assert vault.open_unlinked("intake:NRC:1", sealed) == {"head/family_name": "Коваленко"}
    with pytest.raises(DecryptionFailed):
        vault.open_unlinked("intake:NRC:2", sealed)


def test_the_vault_crosses_to_worker_processes_and_works_the_same(vault: Vault) -> None:
    copy = pickle.loads(pickle.dumps(vault))
    household_id = uuid4()
    key, wrapped = vault.new_household_key(household_id)

    assert copy.open_household_key(household_id, wrapped).dek == key.dek
    assert copy.index("name", "kovalenko") == vault.index("name", "kovalenko")
    assert "kek" not in repr(vault).replace("kek_id", "")  # the key is never printed


def test_the_services_vault_keeps_no_value_it_indexed_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIDMESH_REGISTRATION_KEK", new_kek("test"))
    vault = RegistrationSettings().vault()

    vault.indexes("name", ["kovalenko"])
    vault.index("phone", "+380501234567")

    held = repr({name: getattr(vault, name) for name in vault.__dataclass_fields__})
    assert "kovalenko" not in held and "+380501234567" not in held


def test_a_bulk_imports_vault_caches_indexes_in_a_copy_of_its_own(vault: Vault) -> None:
    importing = vault.for_bulk_import()
    in_worker = pickle.loads(pickle.dumps(importing))

    assert importing.index("name", "kovalenko") == vault.index("name", "kovalenko")
    assert in_worker.indexes("name", ["b", "a"]) == vault.indexes("name", ["a", "b"])
    assert in_worker.cache_indexes and not vault.cache_indexes
    assert importing.kek == vault.kek


def test_a_kek_is_read_with_or_without_its_id() -> None:
    raw = base64.b64encode(bytes(32)).decode()

    assert parse_kek(f"k2:{raw}", default_id="kek1") == ("k2", bytes(32))
    assert parse_kek(raw + "\n", default_id="kek1") == ("kek1", bytes(32))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("k1:not base64!", "not valid base64"),
        ("k1:" + base64.b64encode(bytes(16)).decode(), "must be 32 bytes"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "KEK id"),
    ],
)
def test_a_malformed_kek_is_refused_without_showing_it(text: str, reason: str) -> None:
    with pytest.raises(KekError, match=reason) as refused:
        parse_kek(text, default_id="kek1")
    assert text.partition(":")[2] not in str(refused.value)


def test_the_service_does_not_start_without_its_kek(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AIDMESH_REGISTRATION_KEK", "AIDMESH_REGISTRATION_KEK_FILE", "AIDMESH_KEK"):
        monkeypatch.delenv(variable, raising=False)

    with pytest.raises(KekError, match="AIDMESH_REGISTRATION_KEK_FILE"):
        build_app(RegistrationSettings())


def test_the_kek_is_read_from_the_file_its_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kek = new_kek("filed")
    path = tmp_path / "registration-kek"
    path.write_text(kek + "\n", encoding="utf-8")
    path.chmod(0o600)
    monkeypatch.delenv("AIDMESH_REGISTRATION_KEK", raising=False)
    monkeypatch.setenv("AIDMESH_REGISTRATION_KEK_FILE", str(path))

    assert RegistrationSettings().vault() == Vault.from_config(kek)
