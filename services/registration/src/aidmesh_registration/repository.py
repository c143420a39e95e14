"""Plain SQL for the registration tables (migrations 0001 and 0002)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
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

# ---- households --------------------------------------------------------------------------


async def insert_household(
    conn: asyncpg.Connection,
    household: Household,
    *,
    screening: Screening,
    correlation_id: UUID,
) -> None:
    location = household.location
    await conn.execute(
        """INSERT INTO households (household_id, registered_at, channel, partner_org,
               adm1_pcode, adm2_pcode, adm3_pcode, displacement_status, size, address, phone,
               vulnerabilities, consents, correlation_id, screening)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb)""",
        household.household_id,
        household.registered_at,
        household.channel.value,
        household.partner_org,
        location.adm1_pcode,
        location.adm2_pcode,
        location.adm3_pcode,
        household.displacement_status.value,
        household.size,
        household.address,
        household.phone,
        sorted(v.value for v in household.vulnerabilities),
        sorted(c.value for c in household.consents),
        correlation_id,
        json.dumps(screening.as_json()),
    )
    await insert_members(conn, household)


async def insert_members(conn: asyncpg.Connection, household: Household) -> None:
    rows = []
    for position, m in enumerate(household.members):
        latin = m.latin()
        rows.append(
            (
                m.member_id,
                household.household_id,
                m.full_name,
                m.sex.value,
                m.date_of_birth,
                m.relation.value,
                m.documents[0].number if m.documents else None,
                m.family_name,
                m.given_name,
                m.patronymic,
                latin.family,
                latin.given,
                latin.patronymic,
                m.name_keys(),
                sorted(v.value for v in m.vulnerabilities),
                position,
            )
        )
    await conn.executemany(
        """INSERT INTO members (member_id, household_id, full_name, sex, date_of_birth,
               relation, document_number, family_name, given_name, patronymic,
               family_name_latin, given_name_latin, patronymic_latin, name_keys,
               vulnerabilities, position)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)""",
        rows,
    )
    await insert_documents(
        conn,
        [(m.member_id, household.household_id, d) for m in household.members for d in m.documents],
    )


async def insert_documents(
    conn: asyncpg.Connection, documents: Iterable[tuple[UUID, UUID, Document]]
) -> None:
    await conn.executemany(
        "INSERT INTO documents (member_id, household_id, kind, number) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        [
            (member_id, household_id, d.kind.value, d.number)
            for member_id, household_id, d in documents
        ],
    )


async def update_household(
    conn: asyncpg.Connection,
    household: Household,
    *,
    screening: Screening,
    updated_at: datetime,
    members_changed: bool,
) -> None:
    location = household.location
    await conn.execute(
        """UPDATE households SET adm1_pcode = $2, adm2_pcode = $3, adm3_pcode = $4,
               displacement_status = $5, size = $6, address = $7, phone = $8,
               vulnerabilities = $9, screening = $10::jsonb, updated_at = $11,
               version = version + 1
           WHERE household_id = $1""",
        household.household_id,
        location.adm1_pcode,
        location.adm2_pcode,
        location.adm3_pcode,
        household.displacement_status.value,
        household.size,
        household.address,
        household.phone,
        sorted(v.value for v in household.vulnerabilities),
        json.dumps(screening.as_json()),
        updated_at,
    )
    if members_changed:
        # Documents go with their members (ON DELETE CASCADE); kept ids are re-inserted.
        await conn.execute("DELETE FROM members WHERE household_id = $1", household.household_id)
        await insert_members(conn, household)


async def lock_households(conn: asyncpg.Connection, household_ids: Sequence[UUID]) -> None:
    """Row locks in one order, so two use cases touching the same pair cannot deadlock."""
    await conn.execute(
        "SELECT 1 FROM households WHERE household_id = ANY($1::uuid[]) "
        "ORDER BY household_id FOR NO KEY UPDATE",
        list(household_ids),
    )


async def load_household(
    conn: asyncpg.Connection, household_id: UUID, *, for_update: bool = False
) -> Household | None:
    if for_update:
        await lock_households(conn, [household_id])
    found = await load_households(conn, [household_id])
    return found[0] if found else None


async def load_households(
    conn: asyncpg.Connection, household_ids: Sequence[UUID]
) -> list[Household]:
    rows = await conn.fetch(
        "SELECT * FROM households WHERE household_id = ANY($1::uuid[]) ORDER BY registered_at",
        list(household_ids),
    )
    if not rows:
        return []
    members = await conn.fetch(
        "SELECT * FROM members WHERE household_id = ANY($1::uuid[]) "
        "ORDER BY household_id, position, relation <> 'head', date_of_birth",
        [r["household_id"] for r in rows],
    )
    documents = await conn.fetch(
        "SELECT member_id, kind, number FROM documents WHERE household_id = ANY($1::uuid[]) "
        "ORDER BY member_id, kind, number",
        [r["household_id"] for r in rows],
    )
    docs_of: dict[UUID, list[Document]] = {}
    for d in documents:
        docs_of.setdefault(d["member_id"], []).append(
            Document(DocumentKind(d["kind"]), d["number"])
        )
    members_of: dict[UUID, list[Member]] = {}
    for m in members:
        members_of.setdefault(m["household_id"], []).append(_member(m, docs_of))
    return [_household(r, members_of.get(r["household_id"], [])) for r in rows]


def _member(row: asyncpg.Record, docs_of: dict[UUID, list[Document]]) -> Member:
    documents = docs_of.get(row["member_id"], [])
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


def _household(row: asyncpg.Record, members: list[Member]) -> Household:
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
        address=row["address"],
        phone=row["phone"],
        members=tuple(members),
        vulnerabilities=frozenset(Vulnerability(v) for v in row["vulnerabilities"]),
        consents=frozenset(ConsentPurpose(c) for c in row["consents"]),
        status=HouseholdStatus(row["status"]),
        merged_into=row["merged_into"],
        version=row["version"],
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
    await conn.executemany(
        "INSERT INTO consents (consent_id, household_id, purpose, recorded_by, recorded_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (r.consent_id, r.household_id, r.purpose.value, r.recorded_by, r.recorded_at)
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
    """households.consents is the set of purposes with an active consent record."""
    await conn.execute(
        "UPDATE households h SET consents = ARRAY(SELECT DISTINCT purpose FROM consents c"
        " WHERE c.household_id = h.household_id AND c.withdrawn_at IS NULL ORDER BY 1)"
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


async def household_view(conn: asyncpg.Connection, household_id: UUID) -> dict[str, Any] | None:
    """A household as the API shows it: its row, members with documents, current needs."""
    row = await household_row(conn, household_id)
    if row is None:
        return None
    members = await conn.fetch(
        "SELECT * FROM members WHERE household_id = $1"
        " ORDER BY relation <> 'head', position, date_of_birth",
        household_id,
    )
    documents = await conn.fetch(
        "SELECT member_id, kind, number FROM documents WHERE household_id = $1"
        " ORDER BY kind, number",
        household_id,
    )
    needs = await _current_need_rows(conn, household_id)
    household = dict(row)
    household["screening"] = json.loads(row["screening"]) if row["screening"] else None
    household["members"] = [
        {
            "member_id": m["member_id"],
            "full_name": m["full_name"],
            "family_name": m["family_name"],
            "given_name": m["given_name"],
            "patronymic": m["patronymic"],
            "family_name_latin": m["family_name_latin"],
            "given_name_latin": m["given_name_latin"],
            "patronymic_latin": m["patronymic_latin"],
            "sex": m["sex"],
            "date_of_birth": m["date_of_birth"],
            "relation": m["relation"],
            "document_number": m["document_number"],
            "documents": [
                {"kind": d["kind"], "number": d["number"]}
                for d in documents
                if d["member_id"] == m["member_id"]
            ],
            "vulnerabilities": list(m["vulnerabilities"]),
        }
        for m in members
    ]
    household["needs"] = [
        {**dict(n), "details": json.loads(n["details"]) if n["details"] else None} for n in needs
    ]
    return household


@dataclass(frozen=True)
class SearchQuery:
    name_keys: list[str]
    phone: str | None
    document: str | None
    pcode: str | None
    status: HouseholdStatus | None


async def search(
    conn: asyncpg.Connection,
    query: SearchQuery,
    *,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Households matching every criterion given, newest first, with their head's names."""
    level = {4: "adm1_pcode", 6: "adm2_pcode", 9: "adm3_pcode"}.get(len(query.pcode or ""))
    pcode_filter = f"h.{level} = $4" if level else "$4::text IS NULL"
    return await conn.fetch(
        f"""SELECT h.household_id, h.status, h.merged_into, h.registered_at, h.channel,
                   h.partner_org, h.adm1_pcode, h.adm2_pcode, h.adm3_pcode,
                   h.displacement_status, h.size, h.phone,
                   head.member_id AS head_member_id, head.family_name, head.given_name,
                   head.patronymic, head.family_name_latin, head.given_name_latin,
                   head.patronymic_latin, head.full_name
            FROM households h
            LEFT JOIN LATERAL (SELECT * FROM members m WHERE m.household_id = h.household_id
                               AND m.relation = 'head' LIMIT 1) head ON true
            WHERE (cardinality($1::text[]) = 0 OR EXISTS (
                      SELECT 1 FROM members m WHERE m.household_id = h.household_id
                      AND m.name_keys @> $1::text[]))
              AND ($2::text IS NULL OR h.phone = $2)
              AND ($3::text IS NULL OR EXISTS (
                      SELECT 1 FROM documents d WHERE d.household_id = h.household_id
                      AND d.number = $3))
              AND {pcode_filter}
              AND ($5::text IS NULL OR h.status = $5)
              AND ($6::timestamptz IS NULL OR (h.registered_at, h.household_id) < ($6, $7::uuid))
            ORDER BY h.registered_at DESC, h.household_id DESC
            LIMIT $8""",
        query.name_keys,
        query.phone,
        query.document,
        query.pcode,
        query.status.value if query.status else None,
        before[0] if before else None,
        before[1] if before else None,
        limit,
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
    answers: dict[str, Any]
    status: str
    reasons: list[dict[str, str]]
    household_id: UUID | None
    processed_at: datetime
    attempts: int


def _submission(row: asyncpg.Record) -> Submission:
    return Submission(
        partner_org=row["partner_org"],
        submission_id=row["submission_id"],
        source=row["source"],
        format=row["format"],
        form_id=row["form_id"],
        replaces=row["replaces"],
        submitted_at=row["submitted_at"],
        received_at=row["received_at"],
        answers=json.loads(row["answers"]),
        status=row["status"],
        reasons=json.loads(row["reasons"]),
        household_id=row["household_id"],
        processed_at=row["processed_at"],
        attempts=row["attempts"],
    )


async def claim_submission(conn: asyncpg.Connection, s: Submission) -> Submission | None:
    """Insert a submission seen for the first time (None), or lock and return the stored one.

    The insert takes the key's lock until commit, so the same submission sent twice at once
    is handled once: the second waits, then finds the first."""
    inserted = await conn.fetchval(
        """INSERT INTO intake_submissions (partner_org, submission_id, source, format, form_id,
               replaces, submitted_at, received_at, answers, status, reasons, household_id,
               processed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11::jsonb, $12, $13)
           ON CONFLICT (partner_org, submission_id) DO NOTHING RETURNING 1""",
        s.partner_org,
        s.submission_id,
        s.source,
        s.format,
        s.form_id,
        s.replaces,
        s.submitted_at,
        s.received_at,
        json.dumps(s.answers, ensure_ascii=False),
        s.status,
        json.dumps(s.reasons),
        s.household_id,
        s.processed_at,
    )
    if inserted:
        return None
    return await get_submission(conn, s.partner_org, s.submission_id, for_update=True)


async def get_submission(
    conn: asyncpg.Connection, partner_org: str, submission_id: str, *, for_update: bool = False
) -> Submission | None:
    row = await conn.fetchrow(
        "SELECT * FROM intake_submissions WHERE partner_org = $1 AND submission_id = $2"
        + (" FOR UPDATE" if for_update else ""),
        partner_org,
        submission_id,
    )
    return _submission(row) if row else None


async def record_outcome(
    conn: asyncpg.Connection,
    *,
    partner_org: str,
    submission_id: str,
    status: str,
    reasons: list[dict[str, str]],
    household_id: UUID | None,
    processed_at: datetime,
    answers: dict[str, Any] | None = None,
    retry: bool = False,
) -> None:
    await conn.execute(
        """UPDATE intake_submissions SET status = $3, reasons = $4::jsonb, household_id = $5,
               processed_at = $6, answers = COALESCE($7::jsonb, answers),
               attempts = attempts + $8::int
           WHERE partner_org = $1 AND submission_id = $2""",
        partner_org,
        submission_id,
        status,
        json.dumps(reasons),
        household_id,
        processed_at,
        json.dumps(answers, ensure_ascii=False) if answers is not None else None,
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
    rows = await conn.fetch(
        """SELECT * FROM intake_submissions
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
    return [_submission(r) for r in rows]
