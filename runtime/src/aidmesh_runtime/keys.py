"""Symmetric keys as services are configured with them: `<key id>:<base64 of 32 bytes>`.

One format for every service that encrypts (registration's key-encryption key, protection's
data keys): a short id that travels with what the key sealed, so keys can rotate, and 32
random bytes (AES-256). Each service names its key in the messages ("KEK", "data key") and
raises its own error class; a message never holds key material.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

KEY_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyConfigError(ValueError):
    """A configured key is missing or malformed. The message never holds a key."""


def new_key(key_id: str, *, name: str = "key", error: type[KeyConfigError] = KeyConfigError) -> str:
    """A fresh key in the settings format `<key id>:<base64 of 32 random bytes>`."""
    if not KEY_ID.fullmatch(key_id):
        raise error(_bad_id(name))
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def parse_key(
    text: str,
    *,
    name: str = "key",
    default_id: str | None = None,
    error: type[KeyConfigError] = KeyConfigError,
) -> tuple[str, bytes]:
    """`<key id>:<base64>` → (key id, 32 key bytes). With a `default_id`, the bare base64
    of the key is accepted too (its id is then `default_id`)."""
    text = text.strip()
    key_id, sep, encoded = text.rpartition(":")
    if not sep:
        if default_id is None:
            raise error(
                f"a {name} is written '<{name} id>:<base64 of {KEY_BYTES} bytes>'; " + _bad_id(name)
            )
        key_id, encoded = default_id, text
    if not KEY_ID.fullmatch(key_id):
        raise error(_bad_id(name))
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{name} {key_id!r} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise error(f"{name} {key_id!r} must be {KEY_BYTES} bytes (AES-256), base64-encoded")
    return key_id, key


def _bad_id(name: str) -> str:
    return f"a {name} id is 1-32 letters, digits, '_' or '-'"
