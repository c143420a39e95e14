"""Other agencies' lists: every agency normalises and hashes a document number the same way
(the README's example is this rule), and registration keeps of each of its documents only
a blind index of that hash, computed under the shared key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Any

import pytest
from aidmesh_registration.crypto import Vault, new_kek
from aidmesh_registration.interagency import (
    AssistanceListIn,
    InteragencyKeyError,
    keyed_hash,
    normalise_number,
    parse_key,
)
from pydantic import ValidationError

KEY = os.urandom(32)


def readme_example(key: bytes, numbers: list[str]) -> list[str]:
    """The lines the README gives the agencies, as they would run them."""
    lookalikes = str.maketrans("ABCEHIKMOPTX", "АВСЕНІКМОРТХ")  # Latin look-alikes → Cyrillic
    normal = [re.sub(r"[\s\-.]", "", n).upper().translate(lookalikes) for n in numbers]
    return [hmac.new(key, n.encode(), hashlib.sha256).hexdigest() for n in normal]


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("ЕК123456", "ЕК123456"),
        ("ек 123-456", "ЕК123456"),
        ("EK123456", "ЕК123456"),  # Latin letters typed for the Cyrillic series
        ("1234-5678901234", "12345678901234"),
        ("123 456 789", "123456789"),
        ("ЖК.123456", "ЖК123456"),
    ],
)
def test_a_document_number_is_normalised_as_every_agency_does(written: str, normal: str) -> None:
    assert normalise_number(written) == normal


def test_the_hash_is_what_the_readme_example_computes() -> None:
    numbers = ["ek 123456", "ЕК123456", "1234-5678901234", "904412733", "ЖК.123456"]
    assert [keyed_hash(KEY, n) for n in numbers] == readme_example(KEY, numbers)
    assert keyed_hash(KEY, "ek 123456") == keyed_hash(KEY, "ЕК123456")
    assert keyed_hash(KEY, "ЕК123456") != keyed_hash(os.urandom(32), "ЕК123456")


def test_registration_keeps_a_blind_index_of_the_hash_never_the_hash() -> None:
    vault = Vault.from_config(new_kek("k1"), interagency_key=base64.b64encode(KEY).decode())
    stored = vault.interagency_index("ЕК123456")

    assert stored == vault.index("interagency", keyed_hash(KEY, "ЕК123456"))
    assert stored != keyed_hash(KEY, "ЕК123456")
    assert vault.interagency_key_id is not None and len(vault.interagency_key_id) == 16


def test_without_a_shared_key_no_inter_agency_index_is_kept() -> None:
    vault = Vault.from_config(new_kek("k1"))

    assert vault.interagency_index("ЕК123456") is None and vault.interagency_key_id is None


def test_the_shared_key_travels_with_the_vault_to_bulk_import_workers() -> None:
    import pickle

    vault = Vault.from_config(new_kek("k1"), interagency_key=base64.b64encode(KEY).decode())

    copy = pickle.loads(pickle.dumps(vault.for_bulk_import()))

    assert copy.interagency_index("ЕК123456") == vault.interagency_index("ЕК123456")


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(os.urandom(16)).decode()])
def test_a_shared_key_that_is_not_base64_of_32_bytes_is_refused(text: str) -> None:
    with pytest.raises(InteragencyKeyError):
        parse_key(text)


def assistance_list(**overrides: Any) -> dict[str, Any]:
    return {
        "sector": "cash",
        "first_month": "2027-01",
        "months": 3,
        "hashes": [keyed_hash(KEY, "ЕК123456")],
    } | overrides


def test_a_list_counts_each_hash_once_whatever_its_case() -> None:
    h = keyed_hash(KEY, "ЕК123456")
    listed = AssistanceListIn.model_validate(assistance_list(hashes=[h, h.upper(), h]))

    assert listed.distinct_hashes() == [h]


@pytest.mark.parametrize(
    "hashes",
    [[], ["ЕК123456"], ["ab" * 31], ["zz" * 32]],
    ids=["empty", "a number instead of its hash", "too short", "not hex"],
)
def test_a_list_with_anything_but_hashes_is_refused_naming_the_field(hashes: list[str]) -> None:
    with pytest.raises(ValidationError) as refused:
        AssistanceListIn.model_validate(assistance_list(hashes=hashes))

    assert all(e["loc"][0] == "hashes" for e in refused.value.errors())


def test_a_list_names_its_months_as_the_cash_contracts_do() -> None:
    with pytest.raises(ValidationError):
        AssistanceListIn.model_validate(assistance_list(first_month="2027-13"))
    with pytest.raises(ValidationError):
        AssistanceListIn.model_validate(assistance_list(months=0))
