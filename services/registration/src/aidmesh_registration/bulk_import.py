"""Bulk import of a partner's CSV file into the registry.

The file has one row per household member; the rows of one household are consecutive and
share a `household_ref`; household columns are read from the household's first row (see
README, "Bulk import"). Each chunk of households is, in order:

1. prepared in a worker process (pure: parse, validate with the registry's own rules,
   compute Latin forms, name keys, blocking keys, the screening, and the events through
   the contracts and the runtime's `Outbox.prepare`);
2. deduplicated in the main process: pairs within the chunk (`dedup.pairs_sharing_keys`)
   and with every household already stored, found through the `blocking_keys` table,
   scored together (`dedup.match_indexed`); each match becomes a suspicion in the review
   queue and a DuplicateSuspected event, as for a registration through the API;
3. written in ONE transaction with COPY: households, their data keys, members, document
   indexes, consents, needs, blocking keys, suspicions, outbox rows (HouseholdRegistered,
   NeedAssessed, DuplicateSuspected), the rows' errors, and the import's checkpoint
   (`rows_done`).

Personal data is written sealed, as the API's use cases write it (ADR 0010): each
household gets its data key in the worker, its address, phone and members are sealed
with it there, and what search and dedup compare (phone, document numbers, name keys,
blocking keys) is written as blind indexes; the workers get the vault with their chunk.

A chunk commits whole or not at all, so an interrupted import resumes after its last
committed chunk; the same file again (same partner, same SHA-256) continues the same
import, and once finished is a no-op. Rows that fail validation are reported with their row
number, column and reason (never the value) in `<file>.errors.csv` next to the input; the
whole household of a bad row is left out. Nothing personal is logged.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import gc
import hashlib
import io
import json
import multiprocessing
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import structlog
from aidmesh_contracts import (
    Channel,
    ConsentPurpose,
    DisplacementStatus,
    DuplicateReason,
    DuplicateSuspected,
    Envelope,
    Location,
    NeedAssessed,
    Sector,
    Vulnerability,
)
from aidmesh_runtime.db import holds_session_state
from aidmesh_runtime.errors import validation_message
from aidmesh_runtime.outbox import Outbox
from pydantic import TypeAdapter, ValidationError

from . import dedup, repository
from .crypto import Vault
from .domain import (
    MEMBER_FLAGS,
    Document,
    DocumentKind,
    Household,
    LocationIn,
    Member,
    NamePart,
    Relation,
    Screening,
    Sex,
    household_registered,
    name_keys,
    normalise_document,
    screening_of,
)
from .phones import normalise_phone

log = structlog.get_logger(__name__)

#: The columns of the file, in the order `synthetic.write_csv` writes them. Any order is
#: accepted; unknown columns are ignored (and named in the summary).
COLUMNS = (
    "household_ref",
    "relation",
    "family_name",
    "given_name",
    "patronymic",
    "sex",
    "date_of_birth",
    "passport",
    "id_card",
    "idp_certificate",
    "member_vulnerabilities",
    "adm1_pcode",
    "adm2_pcode",
    "adm3_pcode",
    "displacement_status",
    "phone",
    "address",
    "household_vulnerabilities",
    "consents",
    "needs",
)
REQUIRED_COLUMNS = (
    "household_ref",
    "relation",
    "family_name",
    "given_name",
    "sex",
    "date_of_birth",
    "displacement_status",
    "consents",
)
#: Read from a household's first row; on its other rows empty or the same value.
HOUSEHOLD_COLUMNS = (
    "adm1_pcode",
    "adm2_pcode",
    "adm3_pcode",
    "displacement_status",
    "phone",
    "address",
    "household_vulnerabilities",
    "consents",
    "needs",
)
_DOCUMENT_COLUMNS = (
    ("passport", DocumentKind.PASSPORT),
    ("id_card", DocumentKind.ID_CARD),
    ("idp_certificate", DocumentKind.IDP_CERTIFICATE),
)
MAX_MEMBERS = 99


class ImportRefused(Exception):
    """The file as a whole cannot be imported (not CSV, columns missing, in use)."""


# ---- parsing and validation (pure; runs in worker processes) ------------------------------


@dataclass(frozen=True)
class RowError:
    row: int  # as a spreadsheet shows it: the header is row 1
    field: str
    reason: str  # never the value
    #: "error": the household was not imported; "warning": it was, the cell kept as given.
    severity: str = "error"


class _Invalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


_NAME = TypeAdapter(NamePart)


@functools.lru_cache(maxsize=1 << 18)
def _keys_of_name(name: str) -> frozenset[str]:
    return frozenset(name_keys(name))


def _name_keys(*names: str | None) -> list[str]:
    """`domain.name_keys`, name by name from a cache (each name comes back many times)."""
    return sorted(frozenset().union(*(_keys_of_name(n) for n in names if n)))


@functools.lru_cache(maxsize=1 << 16)
def _name(text: str) -> str | _Invalid:
    """The registry's rule for a name (Ukrainian Cyrillic), cached: names repeat a lot."""
    try:
        return _NAME.validate_python(text)
    except ValidationError as exc:
        return _Invalid("", validation_message(exc.errors()[0]))


def _required_name(value: str, column: str) -> str:
    if not value:
        raise _Invalid(column, "is required")
    checked = _name(value)
    if isinstance(checked, _Invalid):
        raise _Invalid(column, checked.reason)
    return checked


def _optional_name(value: str, column: str) -> str | None:
    return _required_name(value, column) if value else None


class _Ids:
    """Random (version 4) UUIDs, many per system call: `uuid4()` asks the kernel for 16
    bytes each time, which is a tenth of the time spent on a household."""

    def __init__(self, batch: int = 4096) -> None:
        self._batch = batch
        self._buffer = b""
        self._offset = 0

    def __call__(self) -> UUID:
        if self._offset >= len(self._buffer):
            self._buffer = os.urandom(16 * self._batch)
            self._offset = 0
        start = self._offset
        self._offset += 16
        return UUID(bytes=self._buffer[start : start + 16], version=4)


_DOTTED_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def _birth_date(value: str, today: date) -> date:
    born = _parsed_date(value, today)
    if isinstance(born, _Invalid):
        raise born
    return born


@functools.lru_cache(maxsize=1 << 16)
def _parsed_date(value: str, today: date) -> date | _Invalid:
    try:
        return _check_date(value, today)
    except _Invalid as invalid:
        return invalid


def _check_date(value: str, today: date) -> date:
    if not value:
        raise _Invalid("date_of_birth", "is required")
    try:
        dotted = _DOTTED_DATE.match(value)
        if dotted:
            day, month, year = (int(g) for g in dotted.groups())
            born = date(year, month, day)
        else:
            born = date.fromisoformat(value)
    except ValueError:
        raise _Invalid("date_of_birth", "not a date: write YYYY-MM-DD (or DD.MM.YYYY)") from None
    if born >= today:
        raise _Invalid("date_of_birth", "must be in the past")
    if born.year < 1900:
        raise _Invalid("date_of_birth", "is before 1900")
    return born


@functools.cache
def _members_of(enum: Any) -> dict[str, Any]:
    return {e.value: e for e in enum}


def _code(enum: Any, value: str, column: str) -> Any:
    found = _members_of(enum).get(value) or _members_of(enum).get(value.strip().lower())
    if found is None:
        allowed = ", ".join(e.value for e in enum)
        raise _Invalid(column, f"must be one of: {allowed}")
    return found


def _codes(enum: Any, value: str, column: str) -> frozenset[Any]:
    if not value:
        return frozenset()
    return frozenset(_code(enum, part, column) for part in value.split(";") if part.strip())


@functools.lru_cache(maxsize=1 << 12)
def _location(adm1: str, adm2: str, adm3: str) -> Location | _Invalid:
    given = {
        k: v for k, v in (("adm1_pcode", adm1), ("adm2_pcode", adm2), ("adm3_pcode", adm3)) if v
    }
    try:
        return Location(**LocationIn(**given).model_dump())
    except ValidationError as exc:
        error = exc.errors()[0]
        column = str(error["loc"][0]) if error["loc"] else "adm1_pcode"
        return _Invalid(column, validation_message(error))


_PHONE_NOISE = re.compile(r"[\s()\-.]")
_UA_PHONE = re.compile(r"^(?:\+?380|\+?38(?=0)|)(0?)(\d{9})$")


@functools.lru_cache(maxsize=1 << 14)
def _valid_ukrainian_prefix(prefix: str) -> bool:
    """Whether nine-digit national numbers starting with these four digits are valid."""
    try:
        normalise_phone("+380" + prefix + "0" * 5)
    except ValueError:
        return False
    return True


def fast_phone(raw: str) -> str:
    """`phones.normalise_phone`, with a fast path for Ukrainian numbers.

    Whether a nine-digit Ukrainian national number is valid depends only on its first
    four digits at most: libphonenumber's patterns for Ukraine are a prefix of two to four
    digits (an operator or area code, 790, 800x, 89x, 900x) followed by any digits. So the
    registry's own normalisation is asked once per four-digit prefix, and numbers with a
    known prefix are formatted directly; anything else goes to `normalise_phone`. A unit
    test checks that both give the same answer for every prefix.
    """
    compact = _PHONE_NOISE.sub("", raw)
    match = _UA_PHONE.match(compact)
    if match is None or (not match.group(1) and not compact.startswith(("+38", "38"))):
        return normalise_phone(raw)
    national = match.group(2)
    e164 = "+380" + national
    if not _valid_ukrainian_prefix(national[:4]):
        return normalise_phone(raw)  # raises with the library's reason
    return e164


def _needs(value: str) -> list[tuple[Sector, int]]:
    found: dict[Sector, int] = {}
    if not value:
        return []
    for part in value.split(";"):
        if not part.strip():
            continue
        sector_text, _, severity_text = part.partition(":")
        sector = _code(Sector, sector_text, "needs")
        if not severity_text.strip().isdigit() or not 1 <= int(severity_text) <= 5:
            raise _Invalid("needs", "each need is sector:severity, severity 1 to 5")
        if sector in found:
            raise _Invalid("needs", "at most one need per sector")
        found[sector] = int(severity_text)
    return list(found.items())


@dataclass(frozen=True)
class Context:
    """What a worker needs to prepare a chunk (picklable)."""

    import_id: UUID
    partner_org: str
    now: datetime
    source: str
    columns: tuple[str, ...]  # the file's header
    vault: Vault  # seals personal data and computes blind indexes (crypto.py)


@dataclass
class Prepared:
    """One chunk, ready to be deduplicated and written."""

    first_row: int
    last_row: int
    rows: int
    errors: list[RowError] = field(default_factory=list)
    #: Cells of imported households kept as given for an officer to verify.
    warnings: list[RowError] = field(default_factory=list)
    rejected_rows: int = 0
    households: list[tuple[Any, ...]] = field(default_factory=list)
    household_keys: list[tuple[Any, ...]] = field(default_factory=list)
    members: list[tuple[Any, ...]] = field(default_factory=list)
    documents: list[tuple[Any, ...]] = field(default_factory=list)
    consents: list[tuple[Any, ...]] = field(default_factory=list)
    needs: list[tuple[Any, ...]] = field(default_factory=list)
    blocking: list[tuple[str, UUID]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    profiles: list[dedup.Profile] = field(default_factory=list)
    #: Blocking keys of each household, as blind indexes (as stored in blocking_keys).
    keys: list[frozenset[str]] = field(default_factory=list)
    #: HouseholdRegistered of each household (causes its DuplicateSuspected events).
    registered: list[Envelope] = field(default_factory=list)
    seconds: float = 0.0


RawHousehold = list[tuple[int, list[str]]]  # (row number, values) of one household


def prepare_chunk(households: Sequence[RawHousehold], context: Context) -> Prepared:
    """Validate and turn a chunk of households into rows and events. Pure (ids are new)."""
    # Nearly every object made here lives until the chunk is returned, so the cyclic
    # collector would only go through them again and again (a fifth of the time): it
    # waits until the chunk is prepared.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _prepare_chunk(households, context)
    finally:
        if collecting:
            gc.enable()


def _prepare_chunk(households: Sequence[RawHousehold], context: Context) -> Prepared:
    started = time.perf_counter()
    rows = [row for household in households for row in household]
    prepared = Prepared(first_row=rows[0][0], last_row=rows[-1][0], rows=len(rows))
    ids = _Ids()
    outbox = Outbox(source=context.source, clock=lambda: context.now, new_id=ids)
    index = {name: i for i, name in enumerate(context.columns)}
    for raw in households:
        try:
            household, needs, first_row, warnings = _household(
                raw, index=index, context=context, ids=ids
            )
        except _RowsInvalid as invalid:
            prepared.errors.extend(invalid.errors)
            prepared.rejected_rows += len(raw)
            continue
        prepared.warnings.extend(warnings)
        _add_household(
            prepared, household, needs, first_row, outbox=outbox, context=context, ids=ids
        )
    prepared.seconds = time.perf_counter() - started
    return prepared


class _RowsInvalid(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = errors


def _household(
    raw: RawHousehold, *, index: dict[str, int], context: Context, ids: Callable[[], UUID]
) -> tuple[Household, list[tuple[Sector, int]], int, list[RowError]]:
    def value(values: list[str], column: str) -> str:
        i = index.get(column)
        return values[i].strip() if i is not None and i < len(values) else ""

    errors: list[RowError] = []
    warnings: list[RowError] = []
    today = context.now.date()
    first_row, first = raw[0]
    # Household columns: from the first row; later rows may repeat them, not contradict.
    for row_number, values in raw[1:]:
        for column in HOUSEHOLD_COLUMNS:
            later = value(values, column)
            if later and later != value(first, column):
                errors.append(
                    RowError(row_number, column, "differs from the household's first row")
                )
    if len(raw) > MAX_MEMBERS:
        errors.append(RowError(first_row, "household_ref", f"more than {MAX_MEMBERS} members"))

    household: dict[str, Any] = {}

    def check(row_number: int, column: str, parse: Callable[..., Any], *args: Any) -> Any:
        try:
            return parse(*args)
        except _Invalid as invalid:
            errors.append(RowError(row_number, invalid.field or column, invalid.reason))
            return None

    location = _location(
        value(first, "adm1_pcode"), value(first, "adm2_pcode"), value(first, "adm3_pcode")
    )
    if isinstance(location, _Invalid):
        errors.append(RowError(first_row, location.field, location.reason))
    status = value(first, "displacement_status")
    household["displacement_status"] = check(
        first_row, "displacement_status", _code, DisplacementStatus, status, "displacement_status"
    )
    phone_text = value(first, "phone")
    household["phone"] = check(first_row, "phone", _phone, phone_text) if phone_text else None
    address = value(first, "address")
    if len(address) > 500:
        errors.append(RowError(first_row, "address", "longer than 500 characters"))
    column = "household_vulnerabilities"
    declared = check(first_row, column, _codes, Vulnerability, value(first, column), column)
    consents = check(
        first_row, "consents", _codes, ConsentPurpose, value(first, "consents"), "consents"
    )
    if consents is not None and ConsentPurpose.REGISTRATION not in consents:
        errors.append(
            RowError(first_row, "consents", "consent for 'registration' is required to register")
        )
    needs = check(first_row, "needs", _needs, value(first, "needs"))

    members: list[Member] = []
    heads = 0
    for row_number, values in raw:
        if len(values) != len(index):
            errors.append(
                RowError(
                    row_number, "household_ref", f"has {len(values)} columns, not {len(index)}"
                )
            )
            continue
        relation = check(
            row_number, "relation", _code, Relation, value(values, "relation"), "relation"
        )
        heads += relation is Relation.HEAD
        family = check(
            row_number, "family_name", _required_name, value(values, "family_name"), "family_name"
        )
        given = check(
            row_number, "given_name", _required_name, value(values, "given_name"), "given_name"
        )
        patronymic = check(
            row_number, "patronymic", _optional_name, value(values, "patronymic"), "patronymic"
        )
        sex = check(row_number, "sex", _code, Sex, value(values, "sex"), "sex")
        born = check(
            row_number, "date_of_birth", _birth_date, value(values, "date_of_birth"), today
        )
        documents, unverified = [], []
        for column, kind in _DOCUMENT_COLUMNS:
            number = value(values, column)
            if not number:
                continue
            try:
                documents.append(_document(kind, number, column))
            except _Invalid as invalid:
                # A mistyped number must not cost a family its registration (issue 21):
                # the household is imported, the number kept as given (sealed) for an
                # officer to verify, and the report says so.
                unverified.append(Document(kind, number[:_MAX_UNVERIFIED]))
                warnings.append(
                    RowError(
                        row_number,
                        column,
                        f"{invalid.reason}; kept as given, unverified",
                        severity="warning",
                    )
                )
        column = "member_vulnerabilities"
        flags = check(row_number, column, _member_flags, value(values, column))
        if errors:
            continue  # this household will be rejected: do not build what follows
        members.append(
            Member(
                member_id=ids(),
                family_name=family,
                given_name=given,
                patronymic=patronymic,
                sex=sex,
                date_of_birth=born,
                relation=relation,
                documents=tuple(dict.fromkeys(documents)),
                vulnerabilities=flags,
                unverified_documents=tuple(dict.fromkeys(unverified)),
            )
        )
    if heads != 1 and not any(e.field == "relation" for e in errors):
        errors.append(
            RowError(first_row, "relation", f"exactly one member must be the head, found {heads}")
        )
    if errors:
        # Refused anyway: its document cells are reported with its errors, to be fixed too.
        raise _RowsInvalid(errors + [replace(w, severity="error") for w in warnings])
    # The head first, as the registry lists members.
    members.sort(key=lambda m: m.relation is not Relation.HEAD)
    assert isinstance(location, Location)
    return (
        Household(
            household_id=ids(),
            registered_at=context.now,
            channel=Channel.BULK_IMPORT,
            partner_org=context.partner_org,
            location=location,
            displacement_status=household["displacement_status"],
            address=address or None,
            phone=household["phone"],
            members=tuple(members),
            vulnerabilities=declared,
            consents=consents,
            partner_ref=value(first, "household_ref")[:64] or None,
        ),
        needs,
        first_row,
        warnings,
    )


#: The longest document cell kept as given (a cell longer than any document number).
_MAX_UNVERIFIED = 64


def _phone(text: str) -> str:
    try:
        return fast_phone(text)
    except ValueError as exc:
        raise _Invalid("phone", str(exc)) from None


def _document(kind: DocumentKind, number: str, column: str) -> Document:
    try:
        return Document(kind, normalise_document(kind, number))
    except ValueError as exc:
        raise _Invalid(column, str(exc)) from None


def _member_flags(value: str) -> frozenset[Vulnerability]:
    flags = _codes(Vulnerability, value, "member_vulnerabilities")
    if not flags <= MEMBER_FLAGS:
        raise _Invalid(
            "member_vulnerabilities",
            "a member's flags are disability, chronic_illness and pregnant_or_lactating",
        )
    return flags


@functools.lru_cache(maxsize=1 << 12)
def _screening_json(screening: Screening) -> str:
    """households.screening: few screenings differ, so each is written out once."""
    return json.dumps(screening.as_json())


def _add_household(
    prepared: Prepared,
    household: Household,
    needs: list[tuple[Sector, int]],
    first_row: int,
    *,
    outbox: Outbox,
    context: Context,
    ids: Callable[[], UUID],
) -> None:
    """The rows of one valid household, as the API's use case would write them."""
    now, hid, vault = context.now, household.household_id, context.vault
    key, wrapped = vault.new_household_key(hid)
    prepared.household_keys.append((hid, wrapped, vault.kek_id, now))
    screening = screening_of(household, today=now.date())
    registered, registered_row = outbox.prepare(
        household_registered(household, household_id=hid, now=now, screening=screening)
    )
    prepared.registered.append(registered)
    prepared.outbox.append(registered_row)
    location = household.location
    prepared.households.append(
        (
            hid,
            now,
            Channel.BULK_IMPORT.value,
            context.partner_org,
            location.adm1_pcode,
            location.adm2_pcode,
            location.adm3_pcode,
            household.displacement_status.value,
            household.size,
            repository.sealed_household(key, household),
            repository.phone_index(vault, household.phone),
            sorted(v.value for v in household.vulnerabilities),
            sorted(c.value for c in household.consents),
            registered.correlationid,
            _screening_json(screening),
            context.import_id,
            first_row,
            household.partner_ref,
        )
    )
    for position, m in enumerate(household.members):
        prepared.members.append(
            (
                m.member_id,
                hid,
                m.sex.value,
                m.relation.value,
                repository.name_index(vault, _name_keys(m.family_name, m.given_name, m.patronymic)),
                sorted(v.value for v in m.vulnerabilities),
                position,
                repository.sealed_member(key, m),
            )
        )
        prepared.documents.extend(
            (m.member_id, hid, *repository.document_index_row(vault, d)) for d in m.documents
        )
    prepared.consents.extend(
        (ids(), hid, purpose.value, context.partner_org, now)
        for purpose in sorted(household.consents)
    )
    for sector, severity in needs:
        need = NeedAssessed(
            assessment_id=ids(),
            household_id=hid,
            sector=sector,
            severity=severity,
            assessed_at=now,
            assessed_by=context.partner_org,
        )
        prepared.needs.append(
            (need.assessment_id, hid, sector.value, severity, None, now, context.partner_org)
        )
        prepared.outbox.append(outbox.prepare(need, caused_by=registered)[1])
    profile = household.profile()
    keys = repository.block_index(vault, dedup.profile_keys(profile))
    prepared.profiles.append(profile)
    prepared.keys.append(keys)
    prepared.blocking.extend((key, hid) for key in sorted(keys))


# ---- reading the file ----------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_header(path: Path) -> tuple[str, ...]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        try:
            header = next(csv.reader(f))
        except StopIteration:
            raise ImportRefused("the file is empty") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ImportRefused(f"not a UTF-8 CSV file ({type(exc).__name__})") from None
    columns = tuple(c.strip().lower() for c in header)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ImportRefused(f"required columns missing: {', '.join(missing)}")
    if not ({"adm1_pcode", "adm2_pcode", "adm3_pcode"} & set(columns)):
        raise ImportRefused("a location column is required: adm1_pcode, adm2_pcode or adm3_pcode")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ImportRefused(f"columns appear twice: {', '.join(duplicated)}")
    return columns


def read_chunks(
    path: Path, *, columns: tuple[str, ...], skip_rows: int, chunk_rows: int
) -> Iterator[tuple[list[RawHousehold], list[RowError], int]]:
    """Chunks of whole households after the first `skip_rows` data rows: (households,
    errors of rows that belong to no household, data rows in the chunk)."""
    ref_column = columns.index("household_ref")
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)  # the header
        households: list[RawHousehold] = []
        errors: list[RowError] = []
        current: RawHousehold = []
        current_ref: str | None = None
        rows_in_chunk = 0
        for data_row, values in enumerate(reader, start=1):
            row_number = data_row + 1  # the header is row 1
            ref = values[ref_column].strip() if ref_column < len(values) else ""
            if data_row <= skip_rows:
                seen.add(ref)
                continue
            rows_in_chunk += 1
            if ref != current_ref and current:
                households.append(current)
                current = []
                if rows_in_chunk > chunk_rows:
                    yield households, errors, rows_in_chunk - 1
                    households, errors, rows_in_chunk = [], [], 1
            current_ref = ref
            if not ref:
                errors.append(RowError(row_number, "household_ref", "is required"))
                current_ref = None
                continue
            if not current and ref in seen:
                errors.append(
                    RowError(
                        row_number,
                        "household_ref",
                        "used by earlier rows: the rows of a household must be consecutive",
                    )
                )
                current_ref = None
                continue
            seen.add(ref)
            current.append((row_number, values))
        if current:
            households.append(current)
        if households or errors:
            yield households, errors, rows_in_chunk


# ---- the import ------------------------------------------------------------------------------


@dataclass
class Phases:
    """Seconds spent in each phase (the bench reports them)."""

    prepare: float = 0.0  # in the workers (summed over processes)
    waiting_for_workers: float = 0.0
    dedup: float = 0.0  # all of it, including:
    dedup_lookup: float = 0.0  # finding stored households that share a key
    copy: float = 0.0
    outbox: float = 0.0
    commit: float = 0.0
    copy_by_table: dict[str, float] = field(default_factory=dict)


@dataclass
class ImportReport:
    import_id: UUID
    file: str
    status: str  # finished | interrupted | already_imported
    rows: int
    rows_done: int
    households_imported: int
    rows_rejected: int
    errors: int
    suspicions: int
    events: int
    seconds: float
    resumed_from_row: int
    error_report: str | None
    phases: Phases = field(default_factory=Phases)
    ignored_columns: list[str] = field(default_factory=list)
    #: Cells of imported households kept as given, unverified (in the error report too).
    warnings: int = 0

    def as_json(self) -> dict[str, Any]:
        data = self.__dict__ | {"import_id": str(self.import_id), "phases": self.phases.__dict__}
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}


@dataclass
class ImportOptions:
    partner_org: str
    source: str = "/aidmesh/registration"
    #: Data rows per chunk (a chunk ends on a household boundary): one transaction each.
    chunk_rows: int = 20_000
    #: Worker processes that prepare chunks (0: prepare in this process).
    workers: int = 2
    #: Stop after this many chunks (as an interruption would); None: to the end.
    stop_after_chunks: int | None = None
    #: Threads rapidfuzz may use for scoring a chunk's pairs.
    dedup_workers: int = 1
    clock: Callable[[], datetime] | None = None
    new_id: Callable[[], UUID] = uuid4


Progress = Callable[[int], None]
_ORG_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")  # aidmesh_contracts.common.OrgCode


async def import_file(
    conn: asyncpg.Connection,
    path: Path,
    options: ImportOptions,
    *,
    vault: Vault,
    progress: Progress | None = None,
    total_rows: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import (or resume, or confirm) one file on `conn`; see the module docstring."""
    started = time.perf_counter()
    if not _ORG_CODE.match(options.partner_org):
        raise ImportRefused("the partner must be an organisation code (upper case, digits, - _)")
    columns = read_header(path)
    ignored = [c for c in columns if c not in COLUMNS]
    clock = options.clock or _utc_now
    digest = file_sha256(path)
    record = await _import_record(conn, path, options, digest=digest, now=clock())
    import_id = record["import_id"]
    report = ImportReport(
        import_id=import_id,
        file=path.name,
        status="already_imported" if record["finished_at"] else "interrupted",
        rows=0,
        rows_done=record["rows_done"],
        households_imported=0,
        rows_rejected=0,
        errors=0,
        suspicions=0,
        events=0,
        seconds=0.0,
        resumed_from_row=record["rows_done"],
        error_report=None,
        ignored_columns=ignored,
    )
    log.info(
        "bulk_import_started",
        import_id=str(import_id),
        partner_org=options.partner_org,
        resumed_from_row=record["rows_done"],
        finished=record["finished_at"] is not None,
    )
    holds_session_state(conn)
    if not await conn.fetchval("SELECT pg_try_advisory_lock(21062, hashtext($1))", str(import_id)):
        raise ImportRefused("this file is being imported by another process right now")
    try:
        if record["finished_at"] is None:
            await _run(
                conn,
                path,
                options,
                columns=columns,
                import_id=import_id,
                vault=vault,
                skip_rows=record["rows_done"],
                report=report,
                progress=progress,
                total_rows=total_rows,
                clock=clock,
            )
        final = await conn.fetchrow("SELECT * FROM bulk_imports WHERE import_id = $1", import_id)
    finally:
        gc.unfreeze()
        await conn.execute("SELECT pg_advisory_unlock(21062, hashtext($1))", str(import_id))
    report.rows_done = final["rows_done"]
    report.households_imported = final["rows_imported"]
    report.rows_rejected = final["rows_rejected"]
    report.errors, report.warnings = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE severity = 'error'),"
        " count(*) FILTER (WHERE severity = 'warning')"
        " FROM bulk_import_errors WHERE import_id = $1",
        import_id,
    )
    report.error_report = str(await write_error_report(conn, import_id, path))
    report.seconds = time.perf_counter() - started
    log.info(
        "bulk_import_stopped",
        import_id=str(import_id),
        status=report.status,
        rows_done=report.rows_done,
        households_imported=report.households_imported,
        rows_rejected=report.rows_rejected,
        suspicions=report.suspicions,
        seconds=round(report.seconds, 2),
    )
    return report


def _utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


async def _import_record(
    conn: asyncpg.Connection, path: Path, options: ImportOptions, *, digest: str, now: datetime
) -> asyncpg.Record:
    await conn.execute(
        """INSERT INTO bulk_imports (import_id, partner_org, file_name, file_sha256, started_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partner_org, file_sha256) DO NOTHING""",
        options.new_id(),
        options.partner_org,
        path.name,
        digest,
        now,
    )
    return await conn.fetchrow(
        "SELECT * FROM bulk_imports WHERE partner_org = $1 AND file_sha256 = $2",
        options.partner_org,
        digest,
    )


async def _run(
    conn: asyncpg.Connection,
    path: Path,
    options: ImportOptions,
    *,
    columns: tuple[str, ...],
    import_id: UUID,
    vault: Vault,
    skip_rows: int,
    report: ImportReport,
    progress: Progress | None,
    total_rows: Callable[[int, int], None] | None,
    clock: Callable[[], datetime],
) -> None:
    if total_rows is not None:
        total_rows(_count_rows(path), skip_rows)
    known: dict[UUID, dedup.Profile] = {}  # households imported by this run, for dedup
    outbox = Outbox(source=options.source, clock=clock, new_id=options.new_id)
    chunks = read_chunks(path, columns=columns, skip_rows=skip_rows, chunk_rows=options.chunk_rows)
    done = 0
    rows_done = skip_rows
    async for prepared, stray_errors, rows_in_chunk in _prepared_chunks(
        chunks,
        options,
        columns=columns,
        import_id=import_id,
        vault=vault,
        clock=clock,
        phases=report.phases,
    ):
        started = time.perf_counter()
        suspicions, events = await _find_duplicates(
            conn,
            prepared,
            known=known,
            vault=vault,
            outbox=outbox,
            clock=clock,
            workers=options.dedup_workers,
            phases=report.phases,
        )
        report.phases.dedup += time.perf_counter() - started
        errors = (prepared.errors + prepared.warnings if prepared else []) + stray_errors
        rows_done += rows_in_chunk
        await _write_chunk(
            conn,
            prepared,
            suspicions=suspicions,
            events=events,
            errors=errors,
            import_id=import_id,
            rows_before=rows_done - rows_in_chunk,
            rows_done=rows_done,
            rejected=(prepared.rejected_rows if prepared else 0) + len(stray_errors),
            outbox=outbox,
            phases=report.phases,
        )
        if prepared:
            known.update((p.household_id, p) for p in prepared.profiles)
            report.events += len(prepared.outbox) + len(events)
        report.suspicions += len(suspicions)
        report.rows += rows_in_chunk
        done += 1
        if progress is not None:
            progress(rows_in_chunk)
        # What is alive now (above all the profiles in `known`) lives as long as the run:
        # the cyclic collector need not go through it again with every chunk (a full
        # collection of millions of objects); `import_file` unfreezes it.
        gc.freeze()
        if options.stop_after_chunks is not None and done >= options.stop_after_chunks:
            log.warning("bulk_import_stopped_early", import_id=str(import_id), chunks=done)
            return
    await conn.execute(
        "UPDATE bulk_imports SET finished_at = $2 WHERE import_id = $1", import_id, clock()
    )
    report.status = "finished"


def _count_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


async def _prepared_chunks(
    chunks: Iterator[tuple[list[RawHousehold], list[RowError], int]],
    options: ImportOptions,
    *,
    columns: tuple[str, ...],
    import_id: UUID,
    vault: Vault,
    clock: Callable[[], datetime],
    phases: Phases,
) -> AsyncIterator[tuple[Prepared | None, list[RowError], int]]:
    """Prepared chunks in file order; workers prepare the next ones meanwhile."""
    context = Context(
        import_id=import_id,
        partner_org=options.partner_org,
        now=clock(),
        source=options.source,
        columns=columns,
        # Caches blind indexes (names and blocks repeat across households): a copy that
        # goes with this import, never the caller's vault.
        vault=vault.for_bulk_import(),
    )
    executor: Executor | None = None
    if options.workers > 0:
        # Fresh interpreters: no asyncio loop, connection or logger state is inherited.
        executor = ProcessPoolExecutor(
            max_workers=options.workers, mp_context=multiprocessing.get_context("spawn")
        )
    pending: list[tuple[Future[Prepared] | Prepared | None, list[RowError], int]] = []
    try:
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < max(1, options.workers) + 1:
                try:
                    households, errors, rows = next(chunks)
                except StopIteration:
                    exhausted = True
                    break
                if not households:
                    pending.append((None, errors, rows))
                elif executor is None:
                    pending.append((prepare_chunk(households, context), errors, rows))
                else:
                    pending.append(
                        (executor.submit(prepare_chunk, households, context), errors, rows)
                    )
            if not pending:
                break
            job, errors, rows = pending.pop(0)
            started = time.perf_counter()
            prepared = await asyncio.wrap_future(job) if isinstance(job, Future) else job
            phases.waiting_for_workers += time.perf_counter() - started
            if prepared is not None:
                phases.prepare += prepared.seconds
            yield prepared, errors, rows
    finally:
        if executor is not None:
            for job, _, _ in pending:
                if isinstance(job, Future):
                    job.cancel()
            executor.shutdown(wait=True, cancel_futures=True)


async def _find_duplicates(
    conn: asyncpg.Connection,
    prepared: Prepared | None,
    *,
    known: dict[UUID, dedup.Profile],
    vault: Vault,
    outbox: Outbox,
    clock: Callable[[], datetime],
    workers: int,
    phases: Phases,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Suspicion rows and DuplicateSuspected outbox rows for a chunk's households: matched
    with each other and with every stored household sharing a blocking key."""
    if not prepared or not prepared.profiles:
        return [], []
    profiles = prepared.profiles
    # Stored households sharing a key with the chunk (earlier chunks, other registrations),
    # with the keys they share.
    started = time.perf_counter()
    chunk_keys = sorted({key for keys in prepared.keys for key in keys})
    stored = await conn.fetch(
        "SELECT household_id, array_agg(block_key) AS keys FROM blocking_keys"
        " WHERE block_key = ANY($1::text[]) GROUP BY household_id",
        chunk_keys,
    )
    phases.dedup_lookup += time.perf_counter() - started
    missing = [r["household_id"] for r in stored if r["household_id"] not in known]
    if missing:
        for household in await repository.load_households(conn, missing, vault=vault):
            if household.status.value == "active":
                known[household.household_id] = dedup.profile(household.candidate())
    stored = [r for r in stored if r["household_id"] in known]
    # One blocking pass over the stored households (first) and the chunk: a pair counts
    # when its later side is in the chunk. A key's block is everyone having it, as in the
    # API's lookup, so a key too common there is too common here.
    everyone = [known[r["household_id"]] for r in stored] + profiles
    keys = [frozenset(r["keys"]) for r in stored] + prepared.keys
    later, earlier = dedup.pairs_sharing_keys(keys)
    in_chunk = later >= len(stored)
    matches = dedup.match_indexed(everyone, later[in_chunk], earlier[in_chunk], workers=workers)
    registered = {p.household_id: e for p, e in zip(profiles, prepared.registered, strict=True)}
    now = clock()
    suspicions, events = [], []
    for match in matches:
        suspicion_id = outbox.new_id()
        reasons = sorted(r.value for r in match.reasons)
        suspicions.append(
            (
                suspicion_id,
                match.household_id,
                match.candidate_household_id,
                match.score,
                reasons,
                now,
            )
        )
        events.append(
            outbox.prepare(
                DuplicateSuspected(
                    suspicion_id=suspicion_id,
                    household_id=match.household_id,
                    candidate_household_id=match.candidate_household_id,
                    score=match.score,
                    reasons=frozenset(DuplicateReason(r) for r in reasons),
                    detected_at=now,
                ),
                caused_by=registered[match.household_id],
            )[1]
        )
    return suspicions, events


_TABLES: dict[str, tuple[str, ...]] = {
    "households": (
        "household_id",
        "registered_at",
        "channel",
        "partner_org",
        "adm1_pcode",
        "adm2_pcode",
        "adm3_pcode",
        "displacement_status",
        "size",
        "sealed",
        "phone_index",
        "vulnerabilities",
        "consents",
        "correlation_id",
        "screening",
        "import_id",
        "import_row",
        "partner_ref",
    ),
    "household_keys": ("household_id", "wrapped_key", "kek_id", "created_at"),
    "members": (
        "member_id",
        "household_id",
        "sex",
        "relation",
        "name_keys",
        "vulnerabilities",
        "position",
        "sealed",
    ),
    "document_index": (
        "member_id",
        "household_id",
        "kind",
        "number_index",
        "interagency_index",
        "interagency_key_id",
    ),
    "consents": ("consent_id", "household_id", "purpose", "recorded_by", "recorded_at"),
    "need_assessments": (
        "assessment_id",
        "household_id",
        "sector",
        "severity",
        "details",
        "assessed_at",
        "assessed_by",
    ),
    "blocking_keys": ("block_key", "household_id"),
    "duplicate_suspicions": (
        "suspicion_id",
        "household_id",
        "candidate_household_id",
        "score",
        "reasons",
        "detected_at",
    ),
}


async def _write_chunk(
    conn: asyncpg.Connection,
    prepared: Prepared | None,
    *,
    suspicions: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
    errors: list[RowError],
    import_id: UUID,
    rows_before: int,
    rows_done: int,
    rejected: int,
    outbox: Outbox,
    phases: Phases,
) -> None:
    """One transaction: the chunk's rows, events, errors and the checkpoint."""
    started = time.perf_counter()
    async with conn.transaction():
        moved = await conn.execute(
            "UPDATE bulk_imports SET rows_done = $2, rows_imported = rows_imported + $3,"
            " rows_rejected = rows_rejected + $4 WHERE import_id = $1 AND rows_done = $5",
            import_id,
            rows_done,
            len(prepared.households) if prepared else 0,
            rejected,
            rows_before,
        )
        if moved != "UPDATE 1":  # someone else moved the checkpoint: never write twice
            raise ImportRefused("the import's checkpoint moved under us; run it again")
        if prepared:
            for table, rows in (
                ("households", prepared.households),
                ("household_keys", prepared.household_keys),
                ("members", prepared.members),
                ("document_index", prepared.documents),
                ("consents", prepared.consents),
                ("need_assessments", prepared.needs),
                ("blocking_keys", prepared.blocking),
                ("duplicate_suspicions", suspicions),
            ):
                if rows:
                    table_started = time.perf_counter()
                    await conn.copy_records_to_table(table, columns=_TABLES[table], records=rows)
                    phases.copy_by_table[table] = phases.copy_by_table.get(table, 0.0) + (
                        time.perf_counter() - table_started
                    )
        copied = time.perf_counter()
        phases.copy += copied - started
        if prepared:
            await outbox.add_prepared(conn, prepared.outbox + events)
        if errors:
            unique = {(e.row, e.field): (e.reason, e.severity) for e in errors}
            await conn.copy_records_to_table(
                "bulk_import_errors",
                columns=("import_id", "row_number", "field", "reason", "severity"),
                records=[
                    (import_id, row, f, reason, severity)
                    for (row, f), (reason, severity) in unique.items()
                ],
            )
        committing = time.perf_counter()
        phases.outbox += committing - copied
    phases.commit += time.perf_counter() - committing


async def write_error_report(conn: asyncpg.Connection, import_id: UUID, path: Path) -> Path:
    """`<file>.errors.csv` next to the input: row, column, reason (no values), severity
    (`error`: the household was not imported; `warning`: it was, the cell kept as given)."""
    rows = await conn.fetch(
        "SELECT row_number, field, reason, severity FROM bulk_import_errors"
        " WHERE import_id = $1 ORDER BY row_number, field",
        import_id,
    )
    target = path.with_name(path.name + ".errors.csv")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "column", "reason", "severity"])
    writer.writerows((r["row_number"], r["field"], r["reason"], r["severity"]) for r in rows)
    target.write_text(buffer.getvalue(), encoding="utf-8")
    return target


__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "ImportOptions",
    "ImportRefused",
    "ImportReport",
    "RowError",
    "fast_phone",
    "import_file",
    "prepare_chunk",
    "read_chunks",
    "write_error_report",
]
