"""Personal data scrubbed from every log line, as the last step before it is rendered.

Services never log personal data on purpose (ids, codes, counts and flags only), but values
arrive by accident: a keyword argument named after a person's field, an exception whose text
echoes a row (`DETAIL: Key (number)=(ЕК123456) already exists`), a validation error quoting
its input, a library's warning. Two nets catch them:

- by key: the value of a key that names personal data (`name`, `phone`, `address`,
  `passport`, `dob`, `answers`, `narrative`, `notes`, `email`, ..., and any `*_name`,
  `*_phone`, ... such as `family_name` or Kobo's `household/phone`), at any depth, becomes
  `[redacted]`;
- by shape: in every string (the message, exception text and tracebacks included) phone
  numbers become `[phone]`, passport, ID card and IDP certificate numbers `[document]`,
  e-mail addresses `[email]`, and the values PostgreSQL, asyncpg and Pydantic quote in
  their errors `[redacted]`.

UUIDs, P-codes (`UA6312001`), timestamps, decimals and hex ids are left alone: a match must
stand on its own, not inside a longer word, number or id. A free-standing nine-digit number
is indistinguishable from an ID card number and is scrubbed. Names and addresses in free
text cannot be recognised at all: this is a net, not a licence to log a person's data.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import re
import uuid
from collections.abc import Mapping
from typing import Any

import structlog

REDACTED = "[redacted]"

#: Keys whose value is personal data, compared in snake case (`familyName`, `head/dob` and
#: `Phone` are `family_name`, `head_dob` and `phone`).
PERSONAL_KEYS = frozenset(
    {
        "name",
        "names",
        "full_name",
        "family_name",
        "given_name",
        "patronymic",
        "phone",
        "phones",
        "phone_number",
        "address",
        "addresses",
        "document",
        "documents",
        "document_number",
        "passport",
        "date_of_birth",
        "dob",
        "answers",
        "narrative",
        "notes",
        "email",
        # Secrets: never personal data, never to be logged either.
        "password",
        "passwd",
        "token",
        "secret",
        "authorization",
        "kek",
        "dsn",
    }
)
#: ... and keys ending in one of these (`head_family_name`, `contact_phone`, `case_notes`).
_PERSONAL_SUFFIXES = tuple(
    "_" + word
    for word in (
        "name",
        "names",
        "patronymic",
        "phone",
        "phones",
        "phone_number",
        "address",
        "document_number",
        "passport",
        "date_of_birth",
        "dob",
        "narrative",
        "notes",
        "email",
        "password",
        "token",
        "secret",
        "dsn",
        "key",
    )
)
#: Keys ending in `_name` that name things, not people.
_TECHNICAL_NAMES = frozenset(
    {
        "service_name",
        "event_name",
        "topic_name",
        "table_name",
        "column_name",
        "constraint_name",
        "schema_name",
        "logger_name",
        "field_name",
        "db_name",
        "database_name",
        "host_name",
    }
)

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def is_personal_key(key: str) -> bool:
    """Whether a log key names personal data (cached: a service uses few distinct keys)."""
    normal = _NOT_WORD.sub("_", _CAMEL_HUMP.sub("_", key).lower()).strip("_")
    if normal in _TECHNICAL_NAMES:
        return False
    return normal in PERSONAL_KEYS or normal.endswith(_PERSONAL_SUFFIXES)


# A match stands on its own: not preceded by a letter, digit, `.`, `+` or `-` (so never inside
# a UUID's groups, a P-code, a decimal or a hex id) and not followed by one.
_START = r"(?<![\w.+-])"
_END = r"(?![\w-]|\.\d)"
_UPPER = "A-ZА-ЩЬЮЯЄІЇҐ"
_LETTER = _UPPER + "a-zа-щьюяєіїґ"

#: Values quoted in error messages: keep what names them, drop the value.
_QUOTED = re.compile(
    "|".join(
        (
            # What PostgreSQL quotes from a row in its error details (asyncpg's str(exc) has
            # them): `Key (member_id, kind, number)=(…, passport, ЕК123456) already exists.`
            r"(Key \([^)]*\)=\().*?(?=\) (?:already exists|is not present|conflicts with"
            r"|is still referenced))",
            # `Failing row contains (…every column of the row…).`
            r"(Failing row contains \().*(?=\))",
            # `invalid input syntax for type date: "…"`, `invalid input value for enum x: "…"`
            r'(invalid input (?:syntax for type [\w ]+|value for enum [\w."]+): )".*"',
            # asyncpg refusing an argument: `invalid input for query argument $1: '…' (why)`.
            r"(invalid input for query argument \$\d+: ).*(?= \()",
            # What Pydantic quotes from its input: `[…, input_value='Коваленко', input_type=str]`.
            r"(input_value=).*?(?=, input_type=)",
        )
    )
)
_QUOTING = ("=(", "Failing row", "input_value=", "invalid input")

#: Identifiers by their shape, each replaced by the marker of its kind.
_SHAPES = re.compile(
    _START
    + "(?:"
    + "|".join(
        (
            r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,})",
            # IDP certificate: four digits, a hyphen and ten digits (or fourteen digits).
            r"(?P<idp_certificate>\d{4}[\s-]?\d{10})",
            # Any E.164 number, and Ukrainian ones as people write them: +380501234567,
            # 380501234567, +38 (050) 123-45-67, +380 50 123 45 67, 050 123 45 67, 0501234567.
            r"(?P<phone>\+[1-9]\d{7,14}"
            r"|(?:\+?380[\s-]?\(?|\+?38[\s-]?\(?0|\(?0)\d{2}\)?[\s-]?\d{3}[\s-]?\d{2}[\s-]?\d{2})",
            # Passport: two Cyrillic (or look-alike Latin) letters and six digits, ЕК123456,
            # `ЕК 123 456` or `ek734619`; never a P-code (UA and digits).
            rf"(?P<passport>(?!UA\d)(?:[{_UPPER}]{{2}}[\s-]?\d{{3}}\s?\d{{3}}|[{_LETTER}]{{2}}\d{{6}}))",
            # ID card: nine digits.
            r"(?P<id_card>\d{9})",
        )
    )
    + ")"
    + _END
)
_MARKERS = {
    "email": "[email]",
    "phone": "[phone]",
    "idp_certificate": "[document]",
    "passport": "[document]",
    "id_card": "[document]",
}
#: Every shape holds a digit or an `@`: text with neither is skipped at once.
_MAYBE_SHAPED = re.compile(r"[\d@]")


def _marker(match: re.Match[str]) -> str:
    return _MARKERS[match.lastgroup or ""]


def _unquote(match: re.Match[str]) -> str:
    return next(prefix for prefix in match.groups() if prefix is not None) + REDACTED


def scrub_text(text: str) -> str:
    """`text` with phones, document numbers, e-mail addresses and quoted values replaced."""
    if any(quoting in text for quoting in _QUOTING):
        text = _QUOTED.sub(_unquote, text)
    if _MAYBE_SHAPED.search(text):
        text = _SHAPES.sub(_marker, text)
    return text


def scrub(value: Any) -> Any:
    """A log value scrubbed: strings by shape, mappings by key and shape, at any depth."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_personal_key(key) else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item) for item in value]
    if isinstance(value, BaseException):
        # Rendered as text anyway (JSON falls back to repr); its message may quote a row.
        return scrub_text(f"{type(value).__name__}: {value}")
    if isinstance(value, _SAFE_TYPES):
        return value
    # Any other object is rendered through its repr, which may show its fields (a dataclass
    # or model holding a phone or a name): scrub that text, field names included.
    return scrub_text(_scrub_repr_fields(repr(value)))


#: Values whose rendering cannot carry personal data.
_SAFE_TYPES = (
    int,
    float,
    bool,
    type(None),
    uuid.UUID,
    datetime.date,
    datetime.time,
    decimal.Decimal,
    enum.Enum,
)
#: `field=value` pairs in a repr (dataclasses, Pydantic models, attrs): the value of a
#: personal field is replaced whatever its shape.
_REPR_FIELD = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^,)\s]+)")


def _scrub_repr_fields(text: str) -> str:
    return _REPR_FIELD.sub(
        lambda m: f"{m.group(1)}={REDACTED}" if is_personal_key(m.group(1)) else m.group(0), text
    )


def scrub_personal_data(
    logger: object, method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor, the last before the renderer: see the module's docstring.

    Numbers, booleans, None and other non-strings pass untouched (and cost nothing)."""
    if "exc_info" in event_dict:
        # An exception still attached would be rendered after us, unscrubbed: format it now.
        event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
    for key, value in event_dict.items():
        if is_personal_key(key):
            event_dict[key] = REDACTED
        elif not isinstance(value, int | float | bool | None):
            event_dict[key] = scrub(value)
    return event_dict
