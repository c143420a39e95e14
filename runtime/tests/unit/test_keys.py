"""Configured keys (keys.py): `<key id>:<base64 of 32 bytes>`, refused without showing them."""

from __future__ import annotations

import base64

import pytest
from aidmesh_runtime.keys import KeyConfigError, new_key, parse_key


class ServiceKeyError(KeyConfigError):
    """What a service raises for its own key."""


def test_a_new_key_reads_back_as_its_id_and_32_bytes() -> None:
    key_id, key = parse_key(new_key("k1"))

    assert key_id == "k1" and len(key) == 32


def test_a_bare_key_takes_the_default_id_only_when_one_is_given() -> None:
    raw = base64.b64encode(bytes(32)).decode()

    assert parse_key(raw, default_id="kek1") == ("kek1", bytes(32))
    with pytest.raises(KeyConfigError, match="is written '<key id>:"):
        parse_key(raw)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("k1:not base64!", "KEK 'k1' is not valid base64"),
        ("k1:" + base64.b64encode(bytes(16)).decode(), "KEK 'k1' must be 32 bytes"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "a KEK id is 1-32"),
    ],
)
def test_a_malformed_key_is_refused_in_the_services_words_without_showing_it(
    text: str, reason: str
) -> None:
    with pytest.raises(ServiceKeyError, match=reason) as refused:
        parse_key(text, name="KEK", default_id="kek1", error=ServiceKeyError)

    assert text.partition(":")[2] not in str(refused.value)


def test_a_key_id_is_checked_when_a_key_is_made() -> None:
    with pytest.raises(ServiceKeyError, match="a data key id"):
        new_key("bad id", name="data key", error=ServiceKeyError)
