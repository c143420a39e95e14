"""Plain SQL for the registration tables (migrations 0001 to 0004), sealing personal data
with the household's data key on the way in and opening it on the way out (crypto.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg
from aidmesh_contracts import (
    Channel,
    ConsentPurpose,
    DisplacementStatus,
    Location,
    NeedAssessed,
    Sector,
    Vulnerability,
)
from pydantic import TypeAdapter

from .crypto import HOUSEHOLD_FIELD, MEMBER_FIELD, HouseholdKey, KeyDestroyed, Vault
from .domain import (
    ConsentRecord,
    CurrentNeed,
    Document,
    DocumentKind,
    Household,
    HouseholdStatus,
    Member,
    Relation,
    Screening,
    Sex,
    SuspicionStatus,
    infer_document,
    split_full_name,
)

# ---- keys, sealing and blind indexes ------------------------------------------------------
#
# What is personal is sealed with the household's data key (crypto.py): the household's
# address, phone and bank account (IBAN) in households.sealed, each member's names, date of birth and documents
# in members.sealed (Latin forms are computed from the names when read). What search and
# dedup compare is stored as blind indexes. The readers below read sealed rows only: rows
# written in clear before 0004 are sealed by backfill.py before the service serves
# (`unsealed_households` reads them for it).


def sealed_household(key: HouseholdKey, household: Household) -> bytes:
    return key.seal(
        HOUSEHOLD_FIELD,
        {"address": household.address, "phone": household.phone, "iban": household.iban},
    )


def sealed_member(key: HouseholdKey, member: Member) -> bytes:
    return key.seal(
        MEMBER_FIELD,
        {
            "family_name": member.family_name,
            "given_name": member.given_name,
            "patronymic": member.patronymic,
            "written_name": member.written_name,
            "date_of_birth": member.date_of_birth.isoformat(),
            "documents": [[d.kind.value, d.number] for d in member.documents],
            "unverified_documents": [[d.kind.value, d.number] for d in member.unverified_documents],
        },
        row=member.member_id,
    )


def phone_index(vault: Vault, phone: str | None) -> str | None:
    return vault.index("phone", phone) if phone else None


def document_index(vault: Vault, number: str) -> str:
    return vault.index("document", number)


def name_index(vault: Vault, keys: Iterable[str]) -> list[str]:
    """members.name_keys: blind indexes of translit.name_key() values."""
    return vault.indexes("name", keys)


def block_index(vault: Vault, keys: Iterable[str]) -> frozenset[str]:
    """blocking_keys.block_key: blind indexes of dedup.blocking_keys() values."""
    return frozenset(vault.indexes("block", keys))


async def insert_household_key(
    conn: asyncpg.Connection, household_id: UUID, wrapped: bytes, *, kek_id: str, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO household_keys (household_id, wrapped_key, kek_id, created_at)"
        " VALUES ($1, $2, $3, $4)",
        household_id,
        wrapped,
        kek_id,
        at,
    )


async def household_key(conn: asyncpg.Connection, vault: Vault, household_id: UUID) -> HouseholdKey:
    """The household's data key, unwrapped. KeyDestroyed once it was erased."""
    row = await conn.fetchrow(
        "SELECT wrapped_key, kek_id FROM household_keys WHERE household_id = $1", household_id
    )
    if row is None:
        raise LookupError(f"household {household_id} has no data key")
    return vault.open_household_key(household_id, row["wrapped_key"], kek_id=row["kek_id"])


# ---- households --------------------------------------------------------------------------


async def insert_household(
    conn: asyncpg.Connection,
    household: Household,
    *,
    key: HouseholdKey,
    vault: Vault,
    screening: Screening,
    correlation_id: UUID,
) -> None:
    location = household.location
    await conn.execute(
        """INSERT INTO households (household_id, registered_at, channel, partner_org,
               adm1_pcode, adm2_pcode, adm3_pcode, displacement_status, size, sealed,
               phone_index, vulnerabilities, consents, correlation_id, screening, partner_ref)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb,
                   $16)""",
        household.household_id,
        household.registered_at,
        household.channel.value,
        household.partner_org,
        location.adm1_pcode,
        location.adm2_pcode,
        location.adm3_pcode,
        household.displacement_status.value,
        household.size,
        sealed_household(key, household),
        phone_index(vault, household.phone),
        sorted(v.value for v in household.vulnerabilities),
        sorted(c.value for c in household.consents),
        correlation_id,
        json.dumps(screening.as_json()),
        household.partner_ref,
    )
    await insert_members(conn, household, key=key, vault=vault)


async def insert_members(
    conn: asyncpg.Connection, household: Household, *, key: HouseholdKey, vault: Vault
) -> None:
    await conn.executemany(
        """INSERT INTO members (member_id, household_id, sex, relation, name_keys,
               vulnerabilities, position, sealed)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [
            (
                m.member_id,
                household.household_id,
                m.sex.value,
                m.relation.value,
                name_index(vault, m.name_keys()),
                sorted(v.value for v in m.vulnerabilities),
                position,
                sealed_member(key, m),
            )
            for position, m in enumerate(household.members)
        ],
    )
    await insert_document_index(
        conn,
        vault,
        [(m.member_id, household.household_id, d) for m in household.members for d in m.documents],
    )


async def insert_document_index(
    conn: asyncpg.Connection, vault: Vault, documents: Iterable[tuple[UUID, UUID, Document]]
) -> None:
    await conn.executemany(
        "INSERT INTO document_index (member_id, household_id, kind, number_index,"
        " interagency_index, interagency_key_id) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT DO NOTHING",
        [
            (member_id, household_id, *document_index_row(vault, d))
            for member_id, household_id, d in documents
        ],
    )


def document_index_row(vault: Vault, document: Document) -> tuple[str, str, str | None, str | None]:
    """A document as document_index keeps it: kind, blind index of the number, and of its
    inter-agency hash with the shared key's id (both None while no shared key is set)."""
    shared = vault.interagency_index(document.number)
    return (
        document.kind.value,
        document_index(vault, document.number),
        shared,
        vault.interagency_key_id if shared else None,
    )


async def update_household(
    conn: asyncpg.Connection,
    household: Household,
    *,
    key: HouseholdKey,
    vault: Vault,
    screening: Screening,
    updated_at: datetime,
    members_changed: bool,
) -> None:
    location = household.location
    await conn.execute(
        """UPDATE households SET adm1_pcode = $2, adm2_pcode = $3, adm3_pcode = $4,
               displacement_status = $5, size = $6, sealed = $7, phone_index = $8,
               vulnerabilities = $9, screening = $10::jsonb, updated_at = $11,
               version = version + 1
           WHERE household_id = $1""",
        household.household_id,
        location.adm1_pcode,
        location.adm2_pcode,
        location.adm3_pcode,
        household.displacement_status.value,
        household.size,
        sealed_household(key, household),
        phone_index(vault, household.phone),
        sorted(v.value for v in household.vulnerabilities),
        json.dumps(screening.as_json()),
        updated_at,
    )
    if members_changed:
        # Their document index goes with them (ON DELETE CASCADE); kept ids are re-inserted.
        await conn.execute("DELETE FROM members WHERE household_id = $1", household.household_id)
        await insert_members(conn, household, key=key, vault=vault)


async def add_documents(
    conn: asyncpg.Connection,
    *,
    key: HouseholdKey,
    vault: Vault,
    members: Sequence[Member],
    new: Iterable[tuple[UUID, Document]],
) -> None:
    """Members of a household gained documents (carried over by a merge): seal them again
    with their documents, and index the new ones."""
    await conn.executemany(
        "UPDATE members SET sealed = $2 WHERE member_id = $1",
        [(m.member_id, sealed_member(key, m)) for m in members],
    )
    await insert_document_index(
        conn, vault, [(member_id, key.household_id, d) for member_id, d in new]
    )


async def lock_households(conn: asyncpg.Connection, household_ids: Sequence[UUID]) -> None:
    """Row locks in one order, so two use cases touching the same pair cannot deadlock."""
    await conn.execute(
        "SELECT 1 FROM households WHERE household_id = ANY($1::uuid[]) "
        "ORDER BY household_id FOR NO KEY UPDATE",
        list(household_ids),
    )


async def load_household(
    conn: asyncpg.Connection,
    household_id: UUID,
    *,
    vault: Vault,
    for_update: bool = False,
    keys: dict[UUID, HouseholdKey] | None = None,
) -> Household | None:
    if for_update:
        await lock_households(conn, [household_id])
    found = await load_households(conn, [household_id], vault=vault, keys=keys)
    return found[0] if found else None


_HOUSEHOLD_ROWS = (
    "SELECT h.*, k.wrapped_key, k.kek_id FROM households h"
    " LEFT JOIN household_keys k ON k.household_id = h.household_id"
)


async def load_households(
    conn: asyncpg.Connection,
    household_ids: Sequence[UUID],
    *,
    vault: Vault,
    keys: dict[UUID, HouseholdKey] | None = None,
) -> list[Household]:
    """Households decrypted (`keys` collects their opened data keys, for the use case to
    seal with). An erased household comes back without personal data: no address, phone
    or members; check its status before using it."""
    rows = await conn.fetch(
        _HOUSEHOLD_ROWS + " WHERE h.household_id = ANY($1::uuid[]) ORDER BY h.registered_at",
        list(household_ids),
    )
    return await _assemble(conn, rows, vault=vault, keys=keys)


async def _assemble(
    conn: asyncpg.Connection,
    rows: Sequence[asyncpg.Record],
    *,
    vault: Vault,
    keys: dict[UUID, HouseholdKey] | None = None,
) -> list[Household]:
    readable = [r for r in rows if r["status"] != HouseholdStatus.ERASED.value]
    if not readable:
        return [_household(r, [], {}) for r in rows]
    members = await conn.fetch(
        "SELECT * FROM members WHERE household_id = ANY($1::uuid[]) "
        "ORDER BY household_id, position, relation <> 'head', date_of_birth",
        [r["household_id"] for r in readable],
    )
    opened: dict[UUID, HouseholdKey] = {}
    personal: dict[UUID, dict[str, Any]] = {}
    for r in readable:
        household_id = r["household_id"]
        key = vault.open_household_key(household_id, r["wrapped_key"], kek_id=r["kek_id"])
        opened[household_id] = key
        personal[household_id] = key.open(HOUSEHOLD_FIELD, r["sealed"])
    if keys is not None:
        keys.update(opened)
    members_of: dict[UUID, list[Member]] = {}
    for m in members:
        members_of.setdefault(m["household_id"], []).append(
            _sealed_member(m, opened[m["household_id"]])
        )
    return [
        _household(r, members_of.get(r["household_id"], []), personal.get(r["household_id"], {}))
        for r in rows
    ]


def _sealed_member(row: asyncpg.Record, key: HouseholdKey) -> Member:
    data = key.open(MEMBER_FIELD, row["sealed"], row=row["member_id"])
    return Member(
        member_id=row["member_id"],
        family_name=data["family_name"],
        given_name=data["given_name"],
        patronymic=data["patronymic"],
        sex=Sex(row["sex"]),
        date_of_birth=date.fromisoformat(data["date_of_birth"]),
        relation=Relation(row["relation"]),
        documents=tuple(Document(DocumentKind(kind), number) for kind, number in data["documents"]),
        vulnerabilities=frozenset(Vulnerability(v) for v in row["vulnerabilities"]),
        written_name=data["written_name"],
        unverified_documents=tuple(
            Document(DocumentKind(kind), number)
            for kind, number in data.get("unverified_documents", [])  # none before issue 21
        ),
    )


def _household(row: asyncpg.Record, members: list[Member], personal: dict[str, Any]) -> Household:
    return Household(
        household_id=row["household_id"],
        registered_at=row["registered_at"],
        channel=Channel(row["channel"]),
        partner_org=row["partner_org"],
        location=Location(
            adm1_pcode=row["adm1_pcode"],
            adm2_pcode=row["adm2_pcode"],
            adm3_pcode=row["adm3_pcode"],
        ),
        displacement_status=DisplacementStatus(row["displacement_status"]),
        address=personal.get("address"),
        phone=personal.get("phone"),
        members=tuple(members),
        vulnerabilities=frozenset(Vulnerability(v) for v in row["vulnerabilities"]),
        consents=frozenset(ConsentPurpose(c) for c in row["consents"]),
        data_sharing_with=frozenset(row["data_sharing_with"]),
        status=HouseholdStatus(row["status"]),
        merged_into=row["merged_into"],
        version=row["version"],
        partner_ref=row["partner_ref"],
        iban=personal.get("iban"),  # none sealed before issue 24
    )


# ---- rows written in clear before 0004 (backfill.py seals them) ---------------------------


async def unsealed_households(
    conn: asyncpg.Connection, household_ids: Sequence[UUID]
) -> list[Household]:
    """Households as written before 0004: personal data in the plaintext columns and the
    0002 `documents` table. Only the start-up backfill reads these, before the service
    serves anything."""
    rows = await conn.fetch(
        "SELECT * FROM households WHERE household_id = ANY($1::uuid[]) ORDER BY registered_at",
        list(household_ids),
    )
    members = await conn.fetch(
        "SELECT * FROM members WHERE household_id = ANY($1::uuid[]) "
        "ORDER BY household_id, position, relation <> 'head', date_of_birth",
        list(household_ids),
    )
    documents: dict[UUID, list[Document]] = {}
    for d in await conn.fetch(
        "SELECT member_id, kind, number FROM documents WHERE household_id = ANY($1::uuid[])"
        " ORDER BY member_id, kind, number",
        list(household_ids),
    ):
        documents.setdefault(d["member_id"], []).append(
            Document(DocumentKind(d["kind"]), d["number"])
        )
    members_of: dict[UUID, list[Member]] = {}
    for m in members:
        members_of.setdefault(m["household_id"], []).append(_unsealed_member(m, documents))
    return [
        _household(
            r,
            members_of.get(r["household_id"], []),
            {"address": r["address"], "phone": r["phone"]},
        )
        for r in rows
    ]


def _unsealed_member(row: asyncpg.Record, documents_of: dict[UUID, list[Document]]) -> Member:
    documents = documents_of.get(row["member_id"], [])
    if not documents and row["document_number"]:
        # A member written before 0002 (or by a writer that left `documents` out).
        try:
            documents = [Document(*infer_document(row["document_number"]))]
        except ValueError:
            documents = []
    family, given = row["family_name"], row["given_name"]
    patronymic = row["patronymic"]
    if not family or not given:  # written before 0002: only the full name
        names = split_full_name(row["full_name"])
        family, given, patronymic = names.family, names.given, names.patronymic
    return Member(
        member_id=row["member_id"],
        family_name=family,
        given_name=given,
        patronymic=patronymic,
        sex=Sex(row["sex"]),
        date_of_birth=row["date_of_birth"],
        relation=Relation(row["relation"]),
        documents=tuple(documents),
        vulnerabilities=frozenset(Vulnerability(v) for v in row["vulnerabilities"]),
        written_name=row["full_name"],
    )


async def household_row(conn: asyncpg.Connection, household_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM households WHERE household_id = $1", household_id)


async def mark_merged(
    conn: asyncpg.Connection, *, merged: UUID, survivor: UUID, merged_at: datetime
) -> None:
    await conn.execute(
        "UPDATE households SET status = 'merged', merged_into = $2, merged_at = $3,"
        " updated_at = $3, version = version + 1 WHERE household_id = $1",
        merged,
        survivor,
        merged_at,
    )
    # Households merged earlier into the one now merged away follow it: no chains.
    await conn.execute(
        "UPDATE households SET merged_into = $2 WHERE merged_into = $1 AND household_id <> $2",
        merged,
        survivor,
    )


# ---- erasure -----------------------------------------------------------------------------


async def merged_into(conn: asyncpg.Connection, household_id: UUID) -> list[UUID]:
    """Households merged into this one and not erased yet (duplicates of the same people)."""
    rows = await conn.fetch(
        "SELECT household_id FROM households WHERE merged_into = $1 AND status = 'merged'"
        " ORDER BY household_id",
        household_id,
    )
    return [r["household_id"] for r in rows]


async def erase(
    conn: asyncpg.Connection,
    household_ids: Sequence[UUID],
    *,
    at: datetime,
    by: str,
    reason: str,
) -> None:
    """Crypto-shredding, in the caller's transaction: destroy the data keys (every sealed
    value of these households becomes unreadable for good, backups included), delete what
    search and dedup could still match (blind indexes, blocking keys), delete the answers of
    submissions of their edit chains that no household's key seals, clear any plaintext
    left from before 0004, end their consents and open suspicions, and mark them erased.
    Ids, P-codes, counts, codes and timestamps stay, so history stays consistent."""
    ids = list(household_ids)
    await conn.execute(
        "UPDATE household_keys SET wrapped_key = NULL, destroyed_at = $2"
        " WHERE household_id = ANY($1::uuid[]) AND destroyed_at IS NULL",
        ids,
        at,
    )
    await conn.execute("DELETE FROM blocking_keys WHERE household_id = ANY($1::uuid[])", ids)
    await conn.execute("DELETE FROM document_index WHERE household_id = ANY($1::uuid[])", ids)
    await conn.execute("DELETE FROM documents WHERE household_id = ANY($1::uuid[])", ids)
    await conn.execute(
        "UPDATE members SET name_keys = '{}', full_name = NULL, family_name = NULL,"
        " given_name = NULL, patronymic = NULL, family_name_latin = NULL,"
        " given_name_latin = NULL, patronymic_latin = NULL, date_of_birth = NULL,"
        " document_number = NULL WHERE household_id = ANY($1::uuid[])",
        ids,
    )
    await conn.execute(
        "UPDATE intake_submissions SET answers = NULL"
        " WHERE household_id = ANY($1::uuid[]) AND answers IS NOT NULL",
        ids,
    )
    await _forget_unlinked_edits(conn, ids)
    await conn.execute(
        "UPDATE consents SET withdrawn_by = $2, withdrawn_at = $3, ended_reason = 'erased'"
        " WHERE household_id = ANY($1::uuid[]) AND withdrawn_at IS NULL",
        ids,
        by,
        at,
    )
    await refresh_consent_set(conn, ids)
    await conn.execute(
        "UPDATE duplicate_suspicions SET status = 'erased', resolved_by = $2, resolved_at = $3"
        " WHERE status = 'open' AND (household_id = ANY($1::uuid[])"
        " OR candidate_household_id = ANY($1::uuid[]))",
        ids,
        by,
        at,
    )
    await conn.execute(
        "UPDATE households SET status = 'erased', erased_at = $2, erased_by = $3,"
        " erasure_reason = $4, phone_index = NULL, address = NULL, phone = NULL,"
        " updated_at = $2, version = version + 1 WHERE household_id = ANY($1::uuid[])",
        ids,
        at,
        by,
        reason,
    )


async def _forget_unlinked_edits(conn: asyncpg.Connection, household_ids: Sequence[UUID]) -> None:
    """Submissions in an edit chain (`replaces`, either way) with the submissions of these
    households but linked to no household themselves, e.g. a rejected edit stored before
    rejected edits were linked to their household: their answers are these households'
    personal data under the key for unlinked values, which erasure does not destroy, so
    they are deleted."""
    await conn.execute(
        """WITH RECURSIVE chain (partner_org, submission_id, replaces) AS (
               SELECT partner_org, submission_id, replaces FROM intake_submissions
               WHERE household_id = ANY($1::uuid[])
               UNION
               SELECT s.partner_org, s.submission_id, s.replaces
               FROM intake_submissions s JOIN chain c ON s.partner_org = c.partner_org
                   AND (s.replaces = c.submission_id OR s.submission_id = c.replaces)
           )
           UPDATE intake_submissions s SET answers_sealed = NULL, answers = NULL
           FROM chain c
           WHERE s.partner_org = c.partner_org AND s.submission_id = c.submission_id
             AND s.household_id IS NULL
             AND (s.answers_sealed IS NOT NULL OR s.answers IS NOT NULL)""",
        list(household_ids),
    )


# ---- needs -------------------------------------------------------------------------------


async def insert_needs(conn: asyncpg.Connection, needs: list[NeedAssessed]) -> None:
    await conn.executemany(
        """INSERT INTO need_assessments (assessment_id, household_id, sector, severity, details,
               assessed_at, assessed_by) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)""",
        [
            (
                n.assessment_id,
                n.household_id,
                n.sector.value,
                n.severity,
                n.details.model_dump_json() if n.details else None,
                n.assessed_at,
                n.assessed_by,
            )
            for n in needs
        ],
    )


_DETAILS: TypeAdapter[Any] = TypeAdapter(NeedAssessed.model_fields["details"].annotation)


async def current_needs(conn: asyncpg.Connection, household_id: UUID) -> list[CurrentNeed]:
    rows = await _current_need_rows(conn, household_id)
    return [
        CurrentNeed(
            sector=Sector(r["sector"]),
            severity=r["severity"],
            details=_DETAILS.validate_json(r["details"]) if r["details"] else None,
        )
        for r in rows
    ]


async def _current_need_rows(conn: asyncpg.Connection, household_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT DISTINCT ON (sector) assessment_id, sector, severity, details, assessed_at,"
        " assessed_by FROM need_assessments WHERE household_id = $1"
        " ORDER BY sector, assessed_at DESC, assessment_id",
        household_id,
    )


# ---- consents ----------------------------------------------------------------------------


async def insert_consents(conn: asyncpg.Connection, records: Iterable[ConsentRecord]) -> None:
    records = list(records)
    await conn.executemany(
        "INSERT INTO consents (consent_id, household_id, purpose, recipient, recorded_by,"
        " recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
        [
            (
                r.consent_id,
                r.household_id,
                r.purpose.value,
                r.recipient,
                r.recorded_by,
                r.recorded_at,
            )
            for r in records
        ],
    )
    await refresh_consent_set(conn, {r.household_id for r in records})


async def end_consent(
    conn: asyncpg.Connection,
    consent_id: UUID,
    *,
    by: str | None,
    at: datetime,
    reason: str,
) -> None:
    household_id = await conn.fetchval(
        "UPDATE consents SET withdrawn_by = $2, withdrawn_at = $3, ended_reason = $4"
        " WHERE consent_id = $1 RETURNING household_id",
        consent_id,
        by,
        at,
        reason,
    )
    await refresh_consent_set(conn, {household_id})


async def refresh_consent_set(conn: asyncpg.Connection, household_ids: Iterable[UUID]) -> None:
    """households.consents is the set of purposes with an active consent record naming no
    recipient (consent in general); households.data_sharing_with the recipients of its
    active consents to data sharing with one provider."""
    await conn.execute(
        "UPDATE households h SET consents = ARRAY(SELECT DISTINCT purpose FROM consents c"
        " WHERE c.household_id = h.household_id AND c.withdrawn_at IS NULL"
        " AND c.recipient IS NULL ORDER BY 1),"
        " data_sharing_with = ARRAY(SELECT DISTINCT recipient FROM consents c"
        " WHERE c.household_id = h.household_id AND c.withdrawn_at IS NULL"
        " AND c.purpose = 'data_sharing' AND c.recipient IS NOT NULL ORDER BY 1)"
        " WHERE household_id = ANY($1::uuid[])",
        list(household_ids),
    )


async def consent_records(conn: asyncpg.Connection, household_id: UUID) -> list[ConsentRecord]:
    rows = await conn.fetch(
        "SELECT * FROM consents WHERE household_id = $1 ORDER BY recorded_at, consent_id",
        household_id,
    )
    return [
        ConsentRecord(
            consent_id=r["consent_id"],
            household_id=r["household_id"],
            purpose=ConsentPurpose(r["purpose"]),
            recorded_by=r["recorded_by"],
            recorded_at=r["recorded_at"],
            withdrawn_by=r["withdrawn_by"],
            withdrawn_at=r["withdrawn_at"],
            ended_reason=r["ended_reason"],
            recipient=r["recipient"],
        )
        for r in rows
    ]


# ---- deduplication -----------------------------------------------------------------------

#: A key shared by more households than this is too common to say anything (and a block
#: that size would make every registration slow): its candidates are not fetched.
MAX_BLOCK = 200


async def lock_blocking_keys(conn: asyncpg.Connection, keys: Iterable[str]) -> None:
    """Serialise registrations sharing a key until commit, so two duplicates sent at the
    same moment still see each other. Ordered lock ids: no deadlock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(21061, k) FROM ("
        " SELECT DISTINCT hashtext(key) AS k FROM unnest($1::text[]) AS key ORDER BY 1) s",
        sorted(keys),
    )


async def set_blocking_keys(
    conn: asyncpg.Connection, household_id: UUID, keys: Iterable[str]
) -> None:
    await conn.execute("DELETE FROM blocking_keys WHERE household_id = $1", household_id)
    await conn.executemany(
        "INSERT INTO blocking_keys (block_key, household_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        [(key, household_id) for key in sorted(keys)],
    )


async def candidate_ids(
    conn: asyncpg.Connection, keys: Iterable[str], *, excluding: UUID
) -> list[UUID]:
    rows = await conn.fetch(
        """SELECT DISTINCT b.household_id FROM blocking_keys b
           JOIN (SELECT block_key FROM blocking_keys WHERE block_key = ANY($1::text[])
                 GROUP BY block_key HAVING count(*) <= $3) usable USING (block_key)
           JOIN households h ON h.household_id = b.household_id AND h.status = 'active'
           WHERE b.household_id <> $2""",
        list(keys),
        excluding,
        MAX_BLOCK,
    )
    return [r["household_id"] for r in rows]


async def insert_suspicion(
    conn: asyncpg.Connection,
    *,
    suspicion_id: UUID,
    household_id: UUID,
    candidate_household_id: UUID,
    score: float,
    reasons: Iterable[str],
    detected_at: datetime,
) -> bool:
    """False when the pair is already known (open, dismissed or resolved)."""
    inserted = await conn.fetchval(
        """INSERT INTO duplicate_suspicions (suspicion_id, household_id, candidate_household_id,
               score, reasons, detected_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT DO NOTHING RETURNING suspicion_id""",
        suspicion_id,
        household_id,
        candidate_household_id,
        score,
        sorted(reasons),
        detected_at,
    )
    return inserted is not None


@dataclass(frozen=True)
class Suspicion:
    suspicion_id: UUID
    household_id: UUID
    candidate_household_id: UUID
    score: float
    reasons: list[str]
    detected_at: datetime
    status: SuspicionStatus
    resolved_at: datetime | None
    resolved_by: str | None
    survivor_household_id: UUID | None


def _suspicion(row: asyncpg.Record) -> Suspicion:
    return Suspicion(
        suspicion_id=row["suspicion_id"],
        household_id=row["household_id"],
        candidate_household_id=row["candidate_household_id"],
        score=row["score"],
        reasons=list(row["reasons"]),
        detected_at=row["detected_at"],
        status=SuspicionStatus(row["status"]),
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        survivor_household_id=row["survivor_household_id"],
    )


async def get_suspicion(
    conn: asyncpg.Connection, suspicion_id: UUID, *, for_update: bool = False
) -> Suspicion | None:
    row = await conn.fetchrow(
        "SELECT * FROM duplicate_suspicions WHERE suspicion_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        suspicion_id,
    )
    return _suspicion(row) if row else None


async def resolve_suspicion(
    conn: asyncpg.Connection,
    suspicion_id: UUID,
    *,
    status: SuspicionStatus,
    by: str,
    at: datetime,
    survivor: UUID | None = None,
) -> None:
    await conn.execute(
        "UPDATE duplicate_suspicions SET status = $2, resolved_by = $3, resolved_at = $4,"
        " survivor_household_id = $5 WHERE suspicion_id = $1",
        suspicion_id,
        status.value,
        by,
        at,
        survivor,
    )


async def supersede_suspicions(
    conn: asyncpg.Connection, household_id: UUID, *, by: str, at: datetime
) -> None:
    """Open suspicions about a household merged away are moot: the survivor is re-checked."""
    await conn.execute(
        "UPDATE duplicate_suspicions SET status = 'superseded', resolved_by = $2,"
        " resolved_at = $3 WHERE status = 'open'"
        " AND (household_id = $1 OR candidate_household_id = $1)",
        household_id,
        by,
        at,
    )


async def list_suspicions(
    conn: asyncpg.Connection,
    *,
    status: SuspicionStatus | None,
    household_id: UUID | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Suspicion]:
    rows = await conn.fetch(
        """SELECT * FROM duplicate_suspicions
           WHERE ($1::text IS NULL OR status = $1)
             AND ($2::uuid IS NULL OR household_id = $2 OR candidate_household_id = $2)
             AND ($3::timestamptz IS NULL OR (detected_at, suspicion_id) > ($3, $4::uuid))
           ORDER BY detected_at, suspicion_id LIMIT $5""",
        status.value if status else None,
        household_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_suspicion(r) for r in rows]


# ---- reading and searching ---------------------------------------------------------------


async def household_view(
    conn: asyncpg.Connection, household_id: UUID, *, vault: Vault
) -> dict[str, Any] | None:
    """A household as the API shows it: its row, members with documents, current needs,
    decrypted. An erased household is only its non-personal row (the API answers 410)."""
    row = await conn.fetchrow(_HOUSEHOLD_ROWS + " WHERE h.household_id = $1", household_id)
    if row is None:
        return None
    view = {k: row[k] for k in _VIEW_COLUMNS}
    view["screening"] = json.loads(row["screening"]) if row["screening"] else None
    if row["status"] == HouseholdStatus.ERASED.value:
        return view
    (household,) = await _assemble(conn, [row], vault=vault)
    needs = await _current_need_rows(conn, household_id)
    view["address"], view["phone"] = household.address, household.phone
    view["iban"] = household.iban
    # The head first, then as submitted.
    members = sorted(household.members, key=lambda m: m.relation is not Relation.HEAD)
    view["members"] = [_member_view(m) for m in members]
    view["needs"] = [
        {**dict(n), "details": json.loads(n["details"]) if n["details"] else None} for n in needs
    ]
    return view


_VIEW_COLUMNS = (
    "household_id",
    "status",
    "merged_into",
    "merged_at",
    "registered_at",
    "updated_at",
    "version",
    "channel",
    "partner_org",
    "partner_ref",
    "adm1_pcode",
    "adm2_pcode",
    "adm3_pcode",
    "displacement_status",
    "size",
    "vulnerabilities",
    "consents",
    "data_sharing_with",
    "correlation_id",
    "erased_at",
    "erased_by",
    "erasure_reason",
)


def _names_view(m: Member) -> dict[str, Any]:
    latin = m.latin()
    return {
        "full_name": m.full_name,
        "family_name": m.family_name,
        "given_name": m.given_name,
        "patronymic": m.patronymic,
        "family_name_latin": latin.family,
        "given_name_latin": latin.given,
        "patronymic_latin": latin.patronymic,
    }


def _member_view(m: Member) -> dict[str, Any]:
    documents = sorted(m.documents, key=lambda d: (d.kind.value, d.number))
    return {
        "member_id": m.member_id,
        **_names_view(m),
        "sex": m.sex.value,
        "date_of_birth": m.date_of_birth,
        "relation": m.relation.value,
        "document_number": m.documents[0].number if m.documents else None,
        "documents": [{"kind": d.kind.value, "number": d.number} for d in documents],
        "unverified_documents": [
            {"kind": d.kind.value, "number": d.number} for d in m.unverified_documents
        ],
        "vulnerabilities": sorted(v.value for v in m.vulnerabilities),
    }


#: Who may read a household (`$org`), besides IOM's registration staff: the organisation
#: that registered it (its partner, or the one that recorded its consent to registration)
#: and, while the household consents to data sharing, any partner (issue 19).
_READABLE_BY = """(h.partner_org = {org} OR 'data_sharing' = ANY(h.consents)
    OR EXISTS (SELECT 1 FROM consents c WHERE c.household_id = h.household_id
               AND c.purpose = 'registration' AND c.recorded_by = {org}))"""


async def readable_by(conn: asyncpg.Connection, household_id: UUID, org: str) -> bool:
    """Whether `org` may read the household (False also when there is no such household)."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM households h WHERE h.household_id = $1 AND "
            + _READABLE_BY.format(org="$2"),
            household_id,
            org,
        )
    )


@dataclass(frozen=True)
class SearchQuery:
    """What to look for, as blind indexes (search compares them, never values)."""

    name_keys: list[str]
    phone: str | None
    document: str | None
    pcode: str | None
    status: HouseholdStatus | None
    #: Only the households this organisation may read (None: every household).
    readable_by: str | None = None
    #: A partner's own reference: its own households' (every partner's, for staff).
    partner_ref: str | None = None


async def search(
    conn: asyncpg.Connection,
    query: SearchQuery,
    *,
    vault: Vault,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Households matching every criterion given, newest first, with their head's names
    (decrypted). Erased households are never found."""
    level = {4: "adm1_pcode", 6: "adm2_pcode", 9: "adm3_pcode"}.get(len(query.pcode or ""))
    pcode_filter = f"h.{level} = $4" if level else "$4::text IS NULL"
    rows = await conn.fetch(
        f"""SELECT h.household_id, h.status, h.merged_into, h.registered_at, h.channel,
                   h.partner_org, h.partner_ref, h.adm1_pcode, h.adm2_pcode, h.adm3_pcode,
                   h.displacement_status, h.size, h.sealed, k.wrapped_key, k.kek_id,
                   head.member_id AS head_member_id, head.sealed AS head_sealed, head.sex,
                   head.relation, head.vulnerabilities
            FROM households h
            LEFT JOIN household_keys k ON k.household_id = h.household_id
            LEFT JOIN LATERAL (SELECT * FROM members m WHERE m.household_id = h.household_id
                               AND m.relation = 'head' LIMIT 1) head ON true
            WHERE h.status <> 'erased'
              AND (cardinality($1::text[]) = 0 OR EXISTS (
                      SELECT 1 FROM members m WHERE m.household_id = h.household_id
                      AND m.name_keys @> $1::text[]))
              AND ($2::text IS NULL OR h.phone_index = $2)
              AND ($3::text IS NULL OR EXISTS (
                      SELECT 1 FROM document_index d WHERE d.household_id = h.household_id
                      AND d.number_index = $3))
              AND {pcode_filter}
              AND ($5::text IS NULL OR h.status = $5)
              AND ($6::timestamptz IS NULL OR (h.registered_at, h.household_id) < ($6, $7::uuid))
              AND ($9::text IS NULL OR {_READABLE_BY.format(org="$9")})
              AND ($10::text IS NULL OR (h.partner_ref = $10
                   AND ($9::text IS NULL OR h.partner_org = $9)))
            ORDER BY h.registered_at DESC, h.household_id DESC
            LIMIT $8""",
        name_index(vault, query.name_keys),
        phone_index(vault, query.phone),
        document_index(vault, query.document) if query.document else None,
        query.pcode,
        query.status.value if query.status else None,
        before[0] if before else None,
        before[1] if before else None,
        limit,
        query.readable_by,
        query.partner_ref,
    )
    return [_summary(r, vault) for r in rows]


def _summary(row: asyncpg.Record, vault: Vault) -> dict[str, Any]:
    found = {k: row[k] for k in _SUMMARY_COLUMNS}
    key = vault.open_household_key(row["household_id"], row["wrapped_key"], kek_id=row["kek_id"])
    found["phone"] = key.open(HOUSEHOLD_FIELD, row["sealed"])["phone"]
    head = _sealed_member(_HeadRow(row), key) if row["head_member_id"] is not None else None
    names = _names_view(head) if head else dict.fromkeys(_NAME_FIELDS)
    found["head"] = {"member_id": row["head_member_id"], **names}
    return found


_NAME_FIELDS = (
    "full_name",
    "family_name",
    "given_name",
    "patronymic",
    "family_name_latin",
    "given_name_latin",
    "patronymic_latin",
)
_SUMMARY_COLUMNS = (
    "household_id",
    "status",
    "merged_into",
    "registered_at",
    "channel",
    "partner_org",
    "partner_ref",
    "adm1_pcode",
    "adm2_pcode",
    "adm3_pcode",
    "displacement_status",
    "size",
)


class _HeadRow(dict[str, Any]):
    """The head's columns of a search row, named as in a members row."""

    def __init__(self, row: asyncpg.Record) -> None:
        super().__init__(
            member_id=row["head_member_id"],
            sealed=row["head_sealed"],
            sex=row["sex"],
            relation=row["relation"],
            vulnerabilities=row["vulnerabilities"],
        )


# ---- intake ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    partner_org: str
    submission_id: str
    source: str
    format: str
    form_id: str | None
    replaces: str | None
    submitted_at: datetime | None
    received_at: datetime
    #: As sent; None when not read (lists) or no longer readable (its household was erased).
    answers: dict[str, Any] | None
    status: str
    reasons: list[dict[str, str]]
    household_id: UUID | None
    processed_at: datetime
    attempts: int


def answers_field(partner_org: str, submission_id: str) -> str:
    """What a submission's sealed answers are bound to (an OrgCode has no ':')."""
    return f"intake:{partner_org}:{submission_id}"


def seal_answers(
    vault: Vault,
    key: HouseholdKey | None,
    *,
    partner_org: str,
    submission_id: str,
    answers: dict[str, Any],
) -> bytes:
    """The answers sealed with the key of the household the submission registered or
    edited (erased with it), or, while it has none, with the key for unlinked values."""
    field_name = answers_field(partner_org, submission_id)
    if key is None:
        return vault.seal_unlinked(field_name, answers)
    return key.seal(field_name, answers)


def _answers(row: asyncpg.Record, vault: Vault) -> dict[str, Any] | None:
    if row["answers_sealed"] is None:
        return None
    field_name = answers_field(row["partner_org"], row["submission_id"])
    if row["household_id"] is None:
        return vault.open_unlinked(field_name, row["answers_sealed"])  # type: ignore[no-any-return]
    try:
        key = vault.open_household_key(
            row["household_id"], row["wrapped_key"], kek_id=row["kek_id"]
        )
    except KeyDestroyed:
        return None
    return key.open(field_name, row["answers_sealed"])  # type: ignore[no-any-return]


def _submission(row: asyncpg.Record, vault: Vault | None) -> Submission:
    return Submission(
        partner_org=row["partner_org"],
        submission_id=row["submission_id"],
        source=row["source"],
        format=row["format"],
        form_id=row["form_id"],
        replaces=row["replaces"],
        submitted_at=row["submitted_at"],
        received_at=row["received_at"],
        answers=_answers(row, vault) if vault is not None else None,
        status=row["status"],
        reasons=json.loads(row["reasons"]),
        household_id=row["household_id"],
        processed_at=row["processed_at"],
        attempts=row["attempts"],
    )


async def claim_submission(conn: asyncpg.Connection, s: Submission) -> Submission | None:
    """Insert a submission seen for the first time (None), or lock and return the stored one
    (without its answers: what was decided about it is enough to know what to do).

    The insert takes the key's lock until commit, so the same submission sent twice at once
    is handled once: the second waits, then finds the first. The answers are written by
    `record_outcome`, in the same transaction, sealed once with the key the outcome calls
    for."""
    inserted = await conn.fetchval(
        """INSERT INTO intake_submissions (partner_org, submission_id, source, format, form_id,
               replaces, submitted_at, received_at, status, reasons, household_id,
               processed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, NULL, $11)
           ON CONFLICT (partner_org, submission_id) DO NOTHING RETURNING 1""",
        s.partner_org,
        s.submission_id,
        s.source,
        s.format,
        s.form_id,
        s.replaces,
        s.submitted_at,
        s.received_at,
        s.status,
        json.dumps(s.reasons),
        s.processed_at,
    )
    if inserted:
        return None
    row = await conn.fetchrow(
        "SELECT * FROM intake_submissions WHERE partner_org = $1 AND submission_id = $2 FOR UPDATE",
        s.partner_org,
        s.submission_id,
    )
    return _submission(row, None)


_SUBMISSION_ROWS = (
    "SELECT s.*, k.wrapped_key, k.kek_id FROM intake_submissions s"
    " LEFT JOIN household_keys k ON k.household_id = s.household_id"
)


async def get_submission(
    conn: asyncpg.Connection,
    partner_org: str,
    submission_id: str,
    *,
    vault: Vault,
    for_update: bool = False,
) -> Submission | None:
    row = await conn.fetchrow(
        _SUBMISSION_ROWS
        + " WHERE s.partner_org = $1 AND s.submission_id = $2"
        + (" FOR UPDATE OF s" if for_update else ""),
        partner_org,
        submission_id,
    )
    return _submission(row, vault) if row else None


async def record_outcome(
    conn: asyncpg.Connection,
    *,
    partner_org: str,
    submission_id: str,
    status: str,
    reasons: list[dict[str, str]],
    household_id: UUID | None,
    processed_at: datetime,
    answers_sealed: bytes | None,
    retry: bool = False,
) -> None:
    """The outcome, with the answers sealed for it (`seal_answers` with the key of
    `household_id`), or None: not kept."""
    await conn.execute(
        """UPDATE intake_submissions SET status = $3, reasons = $4::jsonb, household_id = $5,
               processed_at = $6, answers_sealed = $7, answers = NULL,
               attempts = attempts + $8::int
           WHERE partner_org = $1 AND submission_id = $2""",
        partner_org,
        submission_id,
        status,
        json.dumps(reasons),
        household_id,
        processed_at,
        answers_sealed,
        1 if retry else 0,
    )


async def household_of_submission(
    conn: asyncpg.Connection, partner_org: str, submission_id: str
) -> UUID | None:
    return await conn.fetchval(
        "SELECT household_id FROM intake_submissions WHERE partner_org = $1 AND submission_id = $2",
        partner_org,
        submission_id,
    )


async def replaced_by(conn: asyncpg.Connection, partner_org: str, submission_id: str) -> str | None:
    """The submission that already edits this one, if the edit came first."""
    return await conn.fetchval(
        "SELECT submission_id FROM intake_submissions WHERE partner_org = $1 AND replaces = $2"
        " AND status <> 'rejected' LIMIT 1",
        partner_org,
        submission_id,
    )


async def list_submissions(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    partner_org: str | None,
    after: tuple[datetime, str, str] | None,
    limit: int,
) -> list[Submission]:
    """Submissions without their answers (read one to get them)."""
    rows = await conn.fetch(
        """SELECT partner_org, submission_id, source, format, form_id, replaces, submitted_at,
                  received_at, status, reasons, household_id, processed_at, attempts
           FROM intake_submissions
           WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR partner_org = $2)
             AND ($3::timestamptz IS NULL
                  OR (received_at, partner_org, submission_id) > ($3, $4::text, $5::text))
           ORDER BY received_at, partner_org, submission_id LIMIT $6""",
        status,
        partner_org,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        limit,
    )
    return [_submission(r, None) for r in rows]
