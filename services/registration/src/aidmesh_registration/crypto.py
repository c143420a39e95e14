"""Encryption at rest of the registry's personal data, with a key per household ([ADR 0010]).

Envelope encryption. Each household has its own random 256-bit data key (DEK). Its
personal data (address and phone; each member's names, date of birth and documents; the
raw answers of the submissions that registered or edited it) is sealed with that key,
AES-256-GCM, a fresh 96-bit nonce per value, and associated data that binds the
ciphertext to its household, its field and its row: a value copied to another household,
member or column does not open. The DEK itself is stored only wrapped (AES-256-GCM again)
under the key-encryption key (KEK), which never enters the database; the wrapped key
names the KEK's id, so the KEK can be rotated by re-wrapping the (small) DEKs.

Erasure is crypto-shredding: destroying a household's wrapped DEK makes every copy of its
ciphertext (the live rows, WAL, backups) unreadable for good, without rewriting history.

Equality search and deduplication blocking cannot work on random ciphertext, so they use
keyed blind indexes: HMAC-SHA256, under an index key derived from the KEK (HKDF), of the
same normalised values as before (E.164 phone, document number, name keys, blocking
keys), each kind of value in its own domain. Without the KEK the indexes tell nothing;
with it, only equality can be tested, never a value read back.

Pure: no I/O; the KEK comes from the settings (settings.py).

[ADR 0010]: docs/adr/0010-crypto-shredding.md
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aidmesh_runtime import keys
from aidmesh_runtime.keys import KEY_BYTES, KeyConfigError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import interagency

NONCE_BYTES = 12
TAG_BYTES = 16
#: First byte of every sealed value: the format, so that it can change without guessing.
SEALED_V1 = b"\x01"
#: Bytes of HMAC kept in a blind index (128 bits: no collision in any registry's lifetime).
INDEX_BYTES = 16
#: Plaintexts are compact JSON (one encoder: json.dumps with options builds one per call).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)

# Contexts bound into associated data and key derivation, so that no value of one use
# ever opens (or matches) as another.
_WRAP = b"aidmesh.registration.dek.v1"
_FIELD = b"aidmesh.registration.field.v1"
_UNLINKED = b"aidmesh.registration.unlinked.v1"
_INDEX_INFO = b"aidmesh.registration.blind-index.v1"
_UNLINKED_INFO = b"aidmesh.registration.unlinked-key.v1"


class KekError(KeyConfigError):
    """The key-encryption key is missing or malformed. The message never holds a key."""


class DecryptionFailed(Exception):
    """A value does not open: changed, moved to another household, row or field, or
    sealed under another key. Never carries the value."""


class KeyDestroyed(Exception):
    """The household was erased: its data key is destroyed, so its personal data can
    never be read again (by anyone, with any key)."""

    def __init__(self, household_id: UUID) -> None:
        super().__init__(f"household {household_id} was erased: its data key is destroyed")
        self.household_id = household_id


# ---- the key-encryption key -------------------------------------------------------------


def new_kek(kek_id: str) -> str:
    """A fresh KEK in the settings format `<kek id>:<base64 of 32 random bytes>`."""
    return keys.new_key(kek_id, name="KEK", error=KekError)


def parse_kek(text: str, *, default_id: str) -> tuple[str, bytes]:
    """`<kek id>:<base64>`, or the bare base64 of the key (its id is then `default_id`)."""
    return keys.parse_key(text, name="KEK", default_id=default_id, error=KekError)


def _derive(kek: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(kek)


def _aad(*parts: bytes) -> bytes:
    # Length-prefixed: no two different tuples give the same bytes.
    return b"".join(_part(p) for p in parts)


def _part(part: bytes) -> bytes:
    return len(part).to_bytes(2, "big") + part


#: What a household's and a member's row seal (repository.py); their parts of the associated
#: data are encoded once, as they are used millions of times by a bulk import.
HOUSEHOLD_FIELD = "household"
MEMBER_FIELD = "member"
_FIELD_PARTS = {name: _part(name.encode()) for name in (HOUSEHOLD_FIELD, MEMBER_FIELD)}
_NO_ROW = _part(b"")


def _field_part(field_name: str) -> bytes:
    return _FIELD_PARTS.get(field_name) or _part(field_name.encode())


_PICKLED = ("kek_id", "kek", "cache_indexes", "interagency_key")


# ---- household keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class HouseholdKey:
    """One household's data key, unwrapped (in memory only, for one use case)."""

    household_id: UUID
    dek: bytes = field(repr=False)
    _aead: AESGCM = field(init=False, repr=False, compare=False)
    _prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_aead", AESGCM(self.dek))
        object.__setattr__(self, "_prefix", _aad(_FIELD, self.household_id.bytes))

    def seal(self, field_name: str, value: Any, *, row: UUID | None = None) -> bytes:
        """Encrypt a JSON value for one field of this household (of one row, e.g. a
        member, when given)."""
        plaintext = _JSON.encode(value).encode()
        nonce = os.urandom(NONCE_BYTES)
        aad = self._associated_data(field_name, row)
        return SEALED_V1 + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, field_name: str, sealed: bytes, *, row: UUID | None = None) -> Any:
        """Decrypt a value sealed by `seal` for the same field and row of this household;
        DecryptionFailed otherwise."""
        nonce, body = _split(sealed)
        try:
            plaintext = self._aead.decrypt(nonce, body, self._associated_data(field_name, row))
        except InvalidTag:
            raise DecryptionFailed(
                f"{field_name} of household {self.household_id} does not open"
            ) from None
        return json.loads(plaintext)

    def _associated_data(self, field_name: str, row: UUID | None) -> bytes:
        # (context, household, field, row): see _aad.
        return self._prefix + _field_part(field_name) + (_part(row.bytes) if row else _NO_ROW)


def _split(sealed: bytes) -> tuple[bytes, bytes]:
    sealed = bytes(sealed)
    if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES or sealed[:1] != SEALED_V1:
        raise DecryptionFailed("not a sealed value")
    return sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]


# ---- the vault -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vault:
    """The KEK and what is derived from it: wraps and unwraps household keys, computes
    blind indexes, seals what belongs to no household yet. Picklable (bulk import workers
    get it), never printed."""

    kek_id: str
    kek: bytes = field(repr=False)
    #: Remember the blind indexes computed, by value: personal data in clear in memory, so
    #: only for the short-lived copy a bulk import works with (`for_bulk_import`), never
    #: for the service's vault, which lives as long as its process.
    cache_indexes: bool = False
    #: The key shared with other agencies to compare lists of assisted people (issue 24,
    #: interagency.py), if registration takes part.
    interagency_key: bytes | None = field(default=None, repr=False)
    _kek_aead: AESGCM = field(init=False, repr=False, compare=False)
    _index_key: bytes = field(init=False, repr=False, compare=False)
    _unlinked_aead: AESGCM = field(init=False, repr=False, compare=False)
    _index_cache: dict[str, dict[str, str]] | None = field(init=False, repr=False, compare=False)

    @classmethod
    def from_config(
        cls, text: str, *, default_id: str = "kek1", interagency_key: str | None = None
    ) -> Vault:
        kek_id, kek = parse_kek(text, default_id=default_id)
        shared = interagency.parse_key(interagency_key) if interagency_key else None
        return cls(kek_id=kek_id, kek=kek, interagency_key=shared)

    def __post_init__(self) -> None:
        if len(self.kek) != KEY_BYTES:
            raise KekError(f"a KEK is {KEY_BYTES} bytes")
        # Derived once (HKDF), never stored: they are the KEK's as much as the KEK is.
        derived = {
            "_kek_aead": AESGCM(self.kek),
            "_index_key": _derive(self.kek, _INDEX_INFO),
            "_unlinked_aead": AESGCM(_derive(self.kek, _UNLINKED_INFO)),
            "_index_cache": {} if self.cache_indexes else None,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def for_bulk_import(self) -> Vault:
        """A copy that caches blind indexes (a bulk import sees the same names and blocks
        again and again), for one import only: dropped with it, cache and all."""
        return Vault(
            kek_id=self.kek_id,
            kek=self.kek,
            cache_indexes=True,
            interagency_key=self.interagency_key,
        )

    # Pickled (to bulk import workers) as the keys alone (and whether to cache, not the
    # cache); the rest is derived again.
    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _PICKLED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in _PICKLED:
            object.__setattr__(self, name, state.get(name))
        self.__post_init__()

    # -- household keys

    def new_household_key(self, household_id: UUID) -> tuple[HouseholdKey, bytes]:
        """A fresh data key for a new household, and its wrapped form (what is stored)."""
        fresh = os.urandom(KEY_BYTES + NONCE_BYTES)
        dek, nonce = fresh[:KEY_BYTES], fresh[KEY_BYTES:]
        wrapped = nonce + self._kek_aead.encrypt(nonce, dek, self._wrap_aad(household_id))
        return HouseholdKey(household_id, dek), wrapped

    def open_household_key(
        self, household_id: UUID, wrapped: bytes | None, *, kek_id: str | None = None
    ) -> HouseholdKey:
        """Unwrap a household's data key. KeyDestroyed when it was erased (no wrapped key);
        DecryptionFailed when it is not this household's key under this KEK."""
        if wrapped is None:
            raise KeyDestroyed(household_id)
        if kek_id is not None and kek_id != self.kek_id:
            raise DecryptionFailed(
                f"the key of household {household_id} is wrapped under KEK {kek_id!r},"
                f" not the configured {self.kek_id!r}"
            )
        wrapped = bytes(wrapped)
        try:
            dek = self._kek_aead.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], self._wrap_aad(household_id)
            )
        except InvalidTag:
            raise DecryptionFailed(f"the key of household {household_id} does not open") from None
        return HouseholdKey(household_id, dek)

    def _wrap_aad(self, household_id: UUID) -> bytes:
        return _aad(_WRAP, household_id.bytes, self.kek_id.encode())

    # -- blind indexes

    def index(self, kind: str, value: str) -> str:
        """The blind index of a normalised value of one kind ("phone", "document",
        "name", "block"): equal values give equal indexes, nothing else can be learnt."""
        if self._index_cache is None:
            return self._blind_index(f"{kind}\x1f", value)
        cache = self._index_cache.setdefault(kind, {})
        index = cache.get(value)
        return self._remember(cache, kind, value) if index is None else index

    def indexes(self, kind: str, values: Iterable[str]) -> list[str]:
        """Blind indexes of several values of one kind, sorted and without repeats (as
        stored)."""
        prefix = f"{kind}\x1f"
        if self._index_cache is None:
            return sorted({self._blind_index(prefix, value) for value in values})
        cache = self._index_cache.setdefault(kind, {})
        found = set()
        for value in values:
            index = cache.get(value)
            found.add(self._remember(cache, kind, value) if index is None else index)
        return sorted(found)

    def _remember(self, cache: dict[str, str], kind: str, value: str) -> str:
        index = self._blind_index(f"{kind}\x1f", value)
        if len(cache) > 1 << 17:
            cache.clear()
        cache[value] = index
        return index

    def interagency_index(self, number: str) -> str | None:
        """What document_index keeps of a document for other agencies' lists: the blind
        index of its inter-agency hash (interagency.keyed_hash), or None while no shared
        key is configured. Not the hash itself: the agencies hold the shared key, and a
        document number is short enough to be found from its hash by trying them all; under
        the registry's own index key, a copy of the database tells them nothing."""
        if self.interagency_key is None:
            return None
        return self.index("interagency", interagency.keyed_hash(self.interagency_key, number))

    @property
    def interagency_key_id(self) -> str | None:
        """The shared key's fingerprint, stored with each index (a new key is noticed)."""
        return None if self.interagency_key is None else interagency.key_id(self.interagency_key)

    def _blind_index(self, prefix: str, value: str) -> str:
        digest = hmac.digest(self._index_key, (prefix + value).encode(), "sha256")
        return base64.urlsafe_b64encode(digest[:INDEX_BYTES]).decode().rstrip("=")

    # -- what belongs to no household (yet)

    def seal_unlinked(self, scope: str, value: Any) -> bytes:
        """Seal a value that has no household: the answers of an intake submission that
        concerns none (rejected, and not an edit of a known household's). Its key is
        derived from the KEK; mapped later (retried), the answers are sealed with the key
        of the household they registered."""
        plaintext = _JSON.encode(value).encode()
        nonce = os.urandom(NONCE_BYTES)
        return (
            SEALED_V1
            + nonce
            + self._unlinked_aead.encrypt(nonce, plaintext, _aad(_UNLINKED, scope.encode()))
        )

    def open_unlinked(self, scope: str, sealed: bytes) -> Any:
        nonce, body = _split(sealed)
        try:
            plaintext = self._unlinked_aead.decrypt(nonce, body, _aad(_UNLINKED, scope.encode()))
        except InvalidTag:
            raise DecryptionFailed(f"{scope} does not open") from None
        return json.loads(plaintext)


__all__ = [
    "DecryptionFailed",
    "HouseholdKey",
    "KekError",
    "KeyDestroyed",
    "Vault",
    "new_kek",
    "parse_kek",
]
