"""Plain SQL for protection cases, notes, the access log and referrals.

Restricted text arrives here already sealed (crypto.py) and leaves sealed: this module never
sees a narrative in clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from aidmesh_contracts import CaseSource, Envelope, ReferralRequested

from .domain import Action, Actor, Case, ReferralStatus, RiskLevel, Status


def _case(row: asyncpg.Record) -> Case:
    return Case(
        case_ref=row["case_ref"],
        household_id=row["household_id"],
        source=CaseSource(row["source"]),
        severity=row["severity"],
        concern_codes=frozenset(row["concern_codes"]),
        status=Status(row["status"]),
        opened_at=row["opened_at"],
        caseworker=row["caseworker"],
        risk_level=RiskLevel(row["risk_level"]) if row["risk_level"] else None,
        plan_approved_by=row["plan_approved_by"],
        review_requested_by=row["review_requested_by"],
        closure_code=row["closure_code"],
        resume_status=Status(row["resume_status"]) if row["resume_status"] else None,
        closed_at=row["closed_at"],
    )


async def insert_case(
    conn: asyncpg.Connection,
    case: Case,
    *,
    opened_envelope: Envelope,
    need_assessment_id: UUID | None = None,
    hotline_call_id: UUID | None = None,
    safe_contact: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO protection_cases (case_ref, household_id, source, need_assessment_id,
               severity, concern_codes, status, opened_at, caseworker, hotline_call_id,
               safe_contact, opened_envelope, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $8)""",
        case.case_ref,
        case.household_id,
        case.source.value,
        need_assessment_id,
        case.severity,
        sorted(case.concern_codes),
        case.status.value,
        case.opened_at,
        case.caseworker,
        hotline_call_id,
        safe_contact,
        opened_envelope.model_dump_json(),
    )


async def case_for_update(conn: asyncpg.Connection, case_ref: str) -> Case | None:
    row = await conn.fetchrow(
        "SELECT * FROM protection_cases WHERE case_ref = $1 FOR UPDATE", case_ref
    )
    return _case(row) if row else None


async def save_case(conn: asyncpg.Connection, case: Case, *, now: datetime) -> None:
    """Write back what a transition may change."""
    await conn.execute(
        """UPDATE protection_cases SET household_id = $2, status = $3, caseworker = $4,
               risk_level = $5, plan_approved_by = $6, review_requested_by = $7,
               closure_code = $8, resume_status = $9, closed_at = $10, updated_at = $11
           WHERE case_ref = $1""",
        case.case_ref,
        case.household_id,
        case.status.value,
        case.caseworker,
        case.risk_level.value if case.risk_level else None,
        case.plan_approved_by,
        case.review_requested_by,
        case.closure_code,
        case.resume_status.value if case.resume_status else None,
        case.closed_at,
        now,
    )


async def opened_envelope(conn: asyncpg.Connection, case_ref: str) -> Envelope | None:
    raw = await conn.fetchval(
        "SELECT opened_envelope FROM protection_cases WHERE case_ref = $1", case_ref
    )
    return Envelope.model_validate_json(raw) if raw else None


async def case_of_hotline_call(conn: asyncpg.Connection, call_id: UUID) -> Case | None:
    row = await conn.fetchrow("SELECT * FROM protection_cases WHERE hotline_call_id = $1", call_id)
    return _case(row) if row else None


async def case_of_need(conn: asyncpg.Connection, assessment_id: UUID) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT case_ref FROM protection_cases WHERE need_assessment_id = $1", assessment_id
    )


async def open_case_of_household(conn: asyncpg.Connection, household_id: UUID) -> str | None:
    """The household's oldest case that is not closed, if any."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT case_ref FROM protection_cases WHERE household_id = $1 AND status <> 'closed'"
        " ORDER BY opened_at LIMIT 1",
        household_id,
    )


async def repoint_household(conn: asyncpg.Connection, *, merged: UUID, survivor: UUID) -> int:
    """A merged household's cases and referrals now belong to the household that stays."""
    result = await conn.execute(
        "UPDATE protection_cases SET household_id = $2, updated_at = now() WHERE household_id = $1",
        merged,
        survivor,
    )
    await conn.execute(
        "UPDATE referrals_out SET household_id = $2 WHERE household_id = $1", merged, survivor
    )
    await conn.execute(
        "UPDATE referrals_in SET household_id = $2 WHERE household_id = $1", merged, survivor
    )
    return int(result.split()[-1])


async def safe_contact(conn: asyncpg.Connection, case_ref: str) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT safe_contact FROM protection_cases WHERE case_ref = $1", case_ref
    )


async def list_cases(
    conn: asyncpg.Connection,
    *,
    caseworker: str | None,
    status: Status | None,
    unassigned: bool,
    limit: int,
    offset: int,
) -> list[Case]:
    rows = await conn.fetch(
        """SELECT * FROM protection_cases
           WHERE ($1::text IS NULL OR caseworker = $1) AND ($2::text IS NULL OR status = $2)
             AND (NOT $3 OR caseworker IS NULL)
           ORDER BY severity DESC, opened_at, case_ref LIMIT $4 OFFSET $5""",
        caseworker,
        status.value if status else None,
        unassigned,
        limit,
        offset,
    )
    return [_case(r) for r in rows]


# ---- notes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedNote:
    note_id: UUID
    case_ref: str
    kind: str
    author: str
    author_role: str
    written_at: datetime
    body: str  # sealed


async def insert_note(conn: asyncpg.Connection, note: SealedNote) -> None:
    await conn.execute(
        """INSERT INTO case_notes (note_id, case_ref, kind, author, author_role, written_at, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        note.note_id,
        note.case_ref,
        note.kind,
        note.author,
        note.author_role,
        note.written_at,
        note.body,
    )


async def notes(conn: asyncpg.Connection, case_ref: str) -> list[SealedNote]:
    rows = await conn.fetch(
        "SELECT * FROM case_notes WHERE case_ref = $1 ORDER BY written_at, note_id", case_ref
    )
    return [SealedNote(**dict(r)) for r in rows]


# ---- the access log ----------------------------------------------------------------------


async def log_access(
    conn: asyncpg.Connection,
    *,
    actor: Actor,
    action: Action,
    case_refs: Sequence[str | None],
    outcome: str,
    at: datetime,
) -> None:
    await conn.executemany(
        "INSERT INTO case_access_log (at, user_id, role, case_ref, action, outcome)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(at, actor.user_id, actor.role.value, ref, action.value, outcome) for ref in case_refs],
    )


async def access_log(
    conn: asyncpg.Connection,
    *,
    case_ref: str | None,
    user_id: str | None,
    after_id: int,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, at, user_id, role, case_ref, action, outcome FROM case_access_log
           WHERE ($1::text IS NULL OR case_ref = $1) AND ($2::text IS NULL OR user_id = $2)
             AND id > $3
           ORDER BY id LIMIT $4""",
        case_ref,
        user_id,
        after_id,
        limit,
    )
    return [dict(r) for r in rows]


# ---- referrals ---------------------------------------------------------------------------


async def insert_referral_out(
    conn: asyncpg.Connection,
    *,
    case_ref: str,
    referral: ReferralRequested,
    requested_by: str,
    envelope: Envelope,
) -> None:
    await conn.execute(
        """INSERT INTO referrals_out (referral_id, case_ref, household_id, target, reason_code,
               urgency, status, requested_by, requested_at, updated_at, envelope)
           VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8, $8, $9::jsonb)""",
        referral.referral_id,
        case_ref,
        referral.household_id,
        referral.to,
        referral.reason_code,
        referral.urgency.value,
        requested_by,
        referral.requested_at,
        envelope.model_dump_json(),
    )


async def referral_out_for_update(
    conn: asyncpg.Connection, referral_id: UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(  # type: ignore[no-any-return]
        "SELECT * FROM referrals_out WHERE referral_id = $1 FOR UPDATE", referral_id
    )


async def set_referral_out_status(
    conn: asyncpg.Connection,
    referral_id: UUID,
    *,
    status: ReferralStatus,
    answer_code: str | None,
    at: datetime,
) -> None:
    await conn.execute(
        "UPDATE referrals_out SET status = $2, answer_code = coalesce($3, answer_code),"
        " updated_at = $4 WHERE referral_id = $1",
        referral_id,
        status.value,
        answer_code,
        at,
    )


async def open_referrals_out(
    conn: asyncpg.Connection, household_ids: Sequence[UUID]
) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT * FROM referrals_out WHERE household_id = ANY($1::uuid[])"
        " AND status IN ('requested', 'accepted') ORDER BY requested_at FOR UPDATE",
        list(household_ids),
    )


async def referrals_out_of_case(conn: asyncpg.Connection, case_ref: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT referral_id, target, reason_code, urgency, status, answer_code, requested_at,
                  updated_at
           FROM referrals_out WHERE case_ref = $1 ORDER BY requested_at""",
        case_ref,
    )
    return [dict(r) for r in rows]


async def insert_referral_in(
    conn: asyncpg.Connection,
    *,
    referral_id: UUID,
    case_ref: str | None,
    household_id: UUID,
    from_sector: str,
    status: str,
    decline_reason: str | None,
    received_at: datetime,
    envelope: Envelope,
) -> bool:
    """Record a referral to protection; False if it was recorded already."""
    inserted = await conn.fetchval(
        """INSERT INTO referrals_in (referral_id, case_ref, household_id, from_sector, status,
               decline_reason, received_at, envelope)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
           ON CONFLICT (referral_id) DO NOTHING RETURNING true""",
        referral_id,
        case_ref,
        household_id,
        from_sector,
        status,
        decline_reason,
        received_at,
        envelope.model_dump_json(),
    )
    return bool(inserted)


async def referral_in_seen(conn: asyncpg.Connection, referral_id: UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT true FROM referrals_in WHERE referral_id = $1", referral_id)
    )


async def accepted_referrals_in(conn: asyncpg.Connection, case_ref: str) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT * FROM referrals_in WHERE case_ref = $1 AND status = 'accepted'"
        " ORDER BY received_at",
        case_ref,
    )


async def complete_referral_in(conn: asyncpg.Connection, referral_id: UUID) -> None:
    await conn.execute(
        "UPDATE referrals_in SET status = 'completed' WHERE referral_id = $1", referral_id
    )


async def referrals_in_of_case(conn: asyncpg.Connection, case_ref: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT referral_id, from_sector, status, received_at FROM referrals_in"
        " WHERE case_ref = $1 ORDER BY received_at",
        case_ref,
    )
    return [dict(r) for r in rows]


def envelope_of(raw: str | None) -> Envelope | None:
    return Envelope.model_validate_json(raw) if raw else None
