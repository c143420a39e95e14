r"""Other agencies' lists of assisted people, as keyed hashes of document numbers (issue 24).

Agencies that agree to compare their caseloads share a secret key (the inter-agency key,
32 random bytes or more, base64). Each sends the list of the people it assists in a period
as HMAC-SHA256 under that key of each person's document number, normalised the same way
by everyone (`normalise_number`): neither the list nor anything registration answers holds
a number. Registration computes the same hash of each document it holds when it is stored
(crypto.Vault.interagency_index) and matches a list by looking the hashes up, without
decrypting its registry.

The normalisation, as an agency runs it (README, "Other agencies' lists"):

    import base64, hashlib, hmac, re

    key = base64.b64decode(open("interagency.key").read())  # the key the agencies share
    lookalikes = str.maketrans("ABCEHIKMOPTX", "АВСЕНІКМОРТХ")  # Latin look-alikes → Cyrillic
    normal = [re.sub(r"[\s\-.]", "", n).upper().translate(lookalikes) for n in numbers]
    hashes = [hmac.new(key, n.encode(), hashlib.sha256).hexdigest() for n in normal]

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Annotated

from aidmesh_contracts.common import OrgCode, Sector
from aidmesh_contracts.events.cash import Month, Months
from aidmesh_runtime.keys import KeyConfigError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Bytes of key at least (HMAC-SHA256: 32 bytes of randomness is its full strength).
MIN_KEY_BYTES = 32
#: The most hashes one list may carry (a national caseload). The request body limit of the
#: service (`http_max_body_bytes`, 1 MiB ≈ 15,000 hashes by default) is usually lower:
#: raise it for registration, or send a large list in parts (README).
MAX_HASHES = 1_000_000

# Latin letters that look like Cyrillic ones, as typed in passport series (EK → ЕК): the
# same table as the registry's own (domain._HOMOGLYPHS), so a number typed either way
# hashes the same.
_LOOKALIKES = str.maketrans("ABCEHIKMOPTX", "АВСЕНІКМОРТХ")
_SEPARATORS = re.compile(r"[\s\-.]")
_KEY_ID_CONTEXT = b"aidmesh.registration.interagency-key-id.v1\x1f"


class InteragencyKeyError(KeyConfigError):
    """The inter-agency key is malformed. The message never holds the key."""


def parse_key(text: str) -> bytes:
    """The shared key from its base64 (at least 32 bytes), or InteragencyKeyError."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InteragencyKeyError("the inter-agency key is not valid base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise InteragencyKeyError(
            f"the inter-agency key must be at least {MIN_KEY_BYTES} bytes, base64-encoded"
        )
    return key


def key_id(key: bytes) -> str:
    """A short fingerprint of the shared key, stored beside each hash so that a new key is
    noticed (its hashes are computed again): reveals nothing of the key."""
    return hashlib.sha256(_KEY_ID_CONTEXT + key).hexdigest()[:16]


def normalise_number(raw: str) -> str:
    """A document number as every agency hashes it: no spaces, hyphens or dots, upper-case,
    and the Latin letters that look like Cyrillic ones made Cyrillic (Ukrainian passport
    series are Cyrillic): `ek 123-456` → `ЕК123456`, an IDP certificate `1234-5678901234`
    → `12345678901234`."""
    return _SEPARATORS.sub("", raw).upper().translate(_LOOKALIKES)


def keyed_hash(key: bytes, number: str) -> str:
    """HMAC-SHA256 under the shared key of the normalised number, 64 lower-case hex digits."""
    return hmac.new(key, normalise_number(number).encode(), hashlib.sha256).hexdigest()


# ---- a list as an agency sends it ------------------------------------------------------------

Hash = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-fA-F]{64}$"),
    Field(description="HMAC-SHA256 of a normalised document number, 64 hex digits."),
]


class AssistanceListIn(BaseModel):
    """Another agency's list of the people it assists: who, in which sector, for which
    months, as keyed hashes of their document numbers."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agency: OrgCode | None = Field(
        default=None,
        description="The agency that assists them. Left out: the caller's organisation (the"
        " token's `org`); another one is refused (403).",
    )
    sector: Sector = Field(description="What the agency gives (cash, for MPCA lists).")
    first_month: Month
    months: Months
    hashes: list[Hash] = Field(
        min_length=1,
        max_length=MAX_HASHES,
        description=f"At most {MAX_HASHES:,} hashes; repeats count once.",
    )

    def distinct_hashes(self) -> list[str]:
        """The hashes without repeats, lower-case, sorted (the list's identity)."""
        return sorted({h.lower() for h in self.hashes})
