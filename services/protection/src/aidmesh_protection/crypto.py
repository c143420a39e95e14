"""Field-by-field encryption of restricted text (narratives, case notes, safe contacts).

Each value is sealed on its own with AES-256-GCM under the current data key, with a fresh
random 96-bit nonce, and bound to where it belongs: the associated data is the case
reference and the field name, so a ciphertext copied to another case or another field
(or a note's body swapped with another note's) fails to open instead of showing the
wrong person's story. The stored token names its key, so keys can rotate: new values use
the current key, older ones open with a retired key until `reencrypt` has moved them.

    enc:v1:<key id>:<base64url(nonce || ciphertext || tag)>
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aidmesh_runtime import keys
from aidmesh_runtime.keys import KEY_ID, KeyConfigError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_PREFIX = "enc:v1:"  # noqa: S105 - a format marker, not a secret
NONCE_BYTES = 12
#: Bound into every value's associated data, so a token of another format or application
#: never opens as one of ours.
_CONTEXT = b"aidmesh.protection.field.v1"


class DataKeyError(KeyConfigError):
    """The configured data keys are missing or malformed. The message never holds a key."""


class DecryptionFailed(Exception):
    """A stored value does not open: tampered, moved to another case or field, or sealed
    with a key that is not configured. Never carries the value itself."""


def new_data_key(key_id: str) -> str:
    """A fresh key in the settings format `<key id>:<base64 of 32 random bytes>`."""
    return keys.new_key(key_id, name="data key", error=DataKeyError)


def parse_key(text: str) -> tuple[str, bytes]:
    """`<key id>:<base64 key>` → (key id, 32 key bytes)."""
    return keys.parse_key(text, name="data key", error=DataKeyError)


@dataclass(frozen=True)
class Keyring:
    """The current data key (seals new values) and retired keys (only open old ones)."""

    current_id: str
    current: bytes = field(repr=False)
    retired: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, current: str | None, retired: str | None = None) -> Keyring:
        """From the settings strings: `current` is `<id>:<base64>`, `retired` a
        comma-separated list of the same."""
        if not current or not current.strip():
            raise DataKeyError("no data key configured")
        current_id, current_key = parse_key(current)
        old: dict[str, bytes] = {}
        for item in (retired or "").split(","):
            if item.strip():
                key_id, key = parse_key(item)
                if key_id == current_id or key_id in old:
                    raise DataKeyError(f"data key id {key_id!r} is configured twice")
                old[key_id] = key
        return cls(current_id=current_id, current=current_key, retired=old)

    def seal(self, plaintext: str, *, case_ref: str, field_name: str) -> str:
        """Encrypt one value for one field of one case."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.current).encrypt(
            nonce, plaintext.encode("utf-8"), _associated_data(case_ref, field_name)
        )
        encoded = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{TOKEN_PREFIX}{self.current_id}:{encoded}"

    def open(self, token: str, *, case_ref: str, field_name: str) -> str:
        """Decrypt one value; DecryptionFailed unless it was sealed for this case and field
        with one of our keys and is unchanged."""
        key_id, blob = _split(token)
        key = self.current if key_id == self.current_id else self.retired.get(key_id)
        if key is None:
            raise DecryptionFailed(f"sealed with data key {key_id!r}, which is not configured")
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        try:
            plaintext = AESGCM(key).decrypt(nonce, sealed, _associated_data(case_ref, field_name))
        except InvalidTag:
            raise DecryptionFailed(
                f"{field_name} of {case_ref} does not open: changed, or not sealed for it"
            ) from None
        return plaintext.decode("utf-8")

    def is_current(self, token: str) -> bool:
        """Whether the value is sealed with the current key (else `reencrypt` moves it)."""
        return _split(token)[0] == self.current_id


def key_id_of(token: str) -> str:
    return _split(token)[0]


def _split(token: str) -> tuple[str, bytes]:
    if not token.startswith(TOKEN_PREFIX):
        raise DecryptionFailed("not an encrypted value")
    key_id, sep, encoded = token[len(TOKEN_PREFIX) :].partition(":")
    if not sep or not KEY_ID.fullmatch(key_id):
        raise DecryptionFailed("malformed encrypted value")
    try:
        blob = base64.urlsafe_b64decode(encoded.encode())
    except (binascii.Error, ValueError):
        raise DecryptionFailed("malformed encrypted value") from None
    if len(blob) < NONCE_BYTES + 16:
        raise DecryptionFailed("malformed encrypted value")
    return key_id, blob


def _associated_data(case_ref: str, field_name: str) -> bytes:
    # Length-prefixed parts: no two (case, field) pairs give the same bytes.
    parts = (_CONTEXT, case_ref.encode(), field_name.encode())
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)
