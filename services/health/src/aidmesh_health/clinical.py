"""Clinical records (notes, diagnoses) sealed with AES-256-GCM before they reach the table.

A database dump, a backup or a replica read by someone without the key shows ciphertext
only. The visit id is the associated data, so a sealed record copied onto another visit's
row does not open. Each record names the key it was sealed with (a fingerprint, not the
key), so keys can be rotated: seal with the current key, open with any key still listed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
MISSING_KEY = (
    "health seals clinical notes and diagnoses with it and does not start without it."
    " Set it from your secret store to base64 of 32 random bytes (`python -m aidmesh_health"
    " new-key` makes one); locally, deploy/local/services.sh generates one into var/secrets/."
)


def new_key() -> str:
    """A new clinical key: base64 of 32 random bytes (`python -m aidmesh_health new-key`)."""
    return base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class ClinicalRecord:
    notes: str | None
    diagnoses: tuple[str, ...]


@dataclass(frozen=True)
class Sealed:
    key_id: str
    data: bytes  # nonce || ciphertext+tag


def _key_bytes(key: str) -> bytes:
    raw = base64.b64decode(key, validate=True)
    if len(raw) != 32:
        raise ValueError("a clinical key is 32 bytes, base64-encoded")
    return raw


def key_id(key: str) -> str:
    return hashlib.sha256(_key_bytes(key)).hexdigest()[:12]


class ClinicalCipher:
    def __init__(self, current: str, *, previous: tuple[str, ...] = ()) -> None:
        self._current_id = key_id(current)
        self._keys = {key_id(k): AESGCM(_key_bytes(k)) for k in (current, *previous)}

    def seal(self, visit_id: UUID, record: ClinicalRecord) -> Sealed:
        plaintext = json.dumps(
            {"notes": record.notes, "diagnoses": list(record.diagnoses)}, ensure_ascii=False
        ).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current_id].encrypt(nonce, plaintext, visit_id.bytes)
        return Sealed(self._current_id, nonce + sealed)

    def open(self, visit_id: UUID, sealed: Sealed) -> ClinicalRecord:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise LookupError(f"clinical key {sealed.key_id} is not configured")
        nonce, body = sealed.data[:NONCE_BYTES], sealed.data[NONCE_BYTES:]
        data = json.loads(aead.decrypt(nonce, body, visit_id.bytes))
        return ClinicalRecord(notes=data["notes"], diagnoses=tuple(data["diagnoses"]))
