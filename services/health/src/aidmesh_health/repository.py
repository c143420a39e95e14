"""Plain SQL for teams, visit requests, visits, referrals and clinical records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg
from aidmesh_contracts import Envelope, Location, Urgency, VisitScheduled

from .clinical import Sealed
from .domain import BacklogReason, Team, Visit, VisitRequest

# ---- teams -----------------------------------------------------------------------------


def _team(row: asyncpg.Record) -> Team:
    return Team(
        team_code=row["team_code"],
        home_oblast=row["home_oblast"],
        oblasts=frozenset(row["oblasts"]),
        daily_capacity=row["daily_capacity"],
        services=frozenset(row["services"]),
        active=row["active"],
    )


async def save_team(
    conn: asyncpg.Connection, team: Team, *, now: datetime, replace: bool = True
) -> bool | None:
    """Insert the team, or replace it (`replace`); True if it was new, None if it existed
    and was left alone."""
    row = await conn.fetchrow(
        """INSERT INTO teams (team_code, home_oblast, oblasts, daily_capacity, services, active,
               created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
           ON CONFLICT (team_code) DO UPDATE SET
               home_oblast = EXCLUDED.home_oblast, oblasts = EXCLUDED.oblasts,
               daily_capacity = EXCLUDED.daily_capacity, services = EXCLUDED.services,
               active = EXCLUDED.active, updated_at = EXCLUDED.updated_at
           WHERE $8
           RETURNING (xmax = 0) AS created""",
        team.team_code,
        team.home_oblast,
        sorted(team.oblasts),
        team.daily_capacity,
        sorted(team.services),
        team.active,
        now,
        replace,
    )
    return None if row is None else bool(row["created"])


async def teams(conn: asyncpg.Connection) -> list[Team]:
    rows = await conn.fetch("SELECT * FROM teams ORDER BY team_code")
    return [_team(r) for r in rows]


async def team(conn: asyncpg.Connection, team_code: str) -> Team | None:
    row = await conn.fetchrow("SELECT * FROM teams WHERE team_code = $1", team_code)
    return None if row is None else _team(row)


# ---- visit requests --------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRow:
    request: VisitRequest
    household_id: UUID
    location: Location
    status: str
    missed_visits: int
    visit_id: UUID | None
    referral_id: UUID | None
    need_assessment_id: UUID | None
    cause: Envelope


def _location(row: Mapping[str, Any]) -> Location:
    return Location(
        adm1_pcode=row["adm1_pcode"], adm2_pcode=row["adm2_pcode"], adm3_pcode=row["adm3_pcode"]
    )


def _request(row: asyncpg.Record) -> RequestRow:
    return RequestRow(
        request=VisitRequest(
            request_id=row["request_id"],
            oblast=row["adm1_pcode"],
            services=frozenset(row["services"]),
            priority=row["priority"],
            received_at=row["received_at"],
            not_before=row["not_before"],
        ),
        household_id=row["household_id"],
        location=_location(row),
        status=row["status"],
        missed_visits=row["missed_visits"],
        visit_id=row["visit_id"],
        referral_id=row["referral_id"],
        need_assessment_id=row["need_assessment_id"],
        cause=Envelope.model_validate_json(row["cause"]),
    )


async def insert_request(
    conn: asyncpg.Connection,
    *,
    request_id: UUID,
    household_id: UUID,
    location: Location,
    services: frozenset[str],
    priority: int,
    received_at: datetime,
    cause: Envelope,
    need_assessment_id: UUID | None = None,
    referral_id: UUID | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO visit_requests (request_id, household_id, need_assessment_id, referral_id,
               adm1_pcode, adm2_pcode, adm3_pcode, services, priority, received_at, status, cause)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'backlog', $11::jsonb)""",
        request_id,
        household_id,
        need_assessment_id,
        referral_id,
        location.adm1_pcode,
        location.adm2_pcode,
        location.adm3_pcode,
        sorted(services),
        priority,
        received_at,
        cause.model_dump_json(),
    )


async def backlog(conn: asyncpg.Connection, *, oblasts: list[str]) -> list[RequestRow]:
    """Waiting requests in these oblasts, most urgent first."""
    rows = await conn.fetch(
        "SELECT * FROM visit_requests WHERE status = 'backlog' AND adm1_pcode = ANY($1::text[])"
        " ORDER BY priority, received_at, request_id FOR UPDATE",
        oblasts,
    )
    return [_request(r) for r in rows]


async def note_uncovered(conn: asyncpg.Connection, *, covered: list[str]) -> None:
    """Waiting requests where no active team works say so."""
    await conn.execute(
        "UPDATE visit_requests SET backlog_reason = 'no_team_for_area'"
        " WHERE status = 'backlog' AND NOT adm1_pcode = ANY($1::text[])"
        " AND backlog_reason IS DISTINCT FROM 'no_team_for_area'",
        covered,
    )


async def request_for_update(conn: asyncpg.Connection, request_id: UUID) -> RequestRow | None:
    row = await conn.fetchrow(
        "SELECT * FROM visit_requests WHERE request_id = $1 FOR UPDATE", request_id
    )
    return None if row is None else _request(row)


async def note_backlog_reasons(
    conn: asyncpg.Connection, reasons: Mapping[UUID, BacklogReason]
) -> None:
    if reasons:
        await conn.executemany(
            "UPDATE visit_requests SET backlog_reason = $2 WHERE request_id = $1",
            [(request_id, reason.value) for request_id, reason in reasons.items()],
        )


async def requeue_request(
    conn: asyncpg.Connection,
    request_id: UUID,
    *,
    missed_visits: int,
    not_before: date | None,
    cause: Envelope,
) -> None:
    await conn.execute(
        """UPDATE visit_requests SET status = 'backlog', missed_visits = $2, not_before = $3,
               cause = $4::jsonb, backlog_reason = NULL
           WHERE request_id = $1""",
        request_id,
        missed_visits,
        not_before,
        cause.model_dump_json(),
    )


async def set_request_status(
    conn: asyncpg.Connection,
    request_id: UUID,
    status: str,
    *,
    reason: str | None = None,
    missed_visits: int | None = None,
) -> None:
    await conn.execute(
        """UPDATE visit_requests SET status = $2, closed_reason = coalesce($3, closed_reason),
               missed_visits = coalesce($4, missed_visits)
           WHERE request_id = $1""",
        request_id,
        status,
        reason,
        missed_visits,
    )


# ---- visits ----------------------------------------------------------------------------


async def booked(
    conn: asyncpg.Connection, first_day: date, last_day: date
) -> dict[tuple[str, date], int]:
    """Visits on each team's day: scheduled, done or missed (the team went), not moved ones."""
    rows = await conn.fetch(
        """SELECT team_code, scheduled_for, count(*) AS visits FROM visits
           WHERE status IN ('scheduled', 'completed', 'missed')
             AND scheduled_for BETWEEN $1 AND $2
           GROUP BY team_code, scheduled_for""",
        first_day,
        last_day,
    )
    return {(r["team_code"], r["scheduled_for"]): r["visits"] for r in rows}


async def insert_visit(
    conn: asyncpg.Connection,
    scheduled: VisitScheduled,
    envelope: Envelope,
    *,
    request: RequestRow,
) -> None:
    await conn.execute(
        """INSERT INTO visits (visit_id, household_id, need_assessment_id, team_code, adm1_pcode,
               adm2_pcode, adm3_pcode, request_id, status, scheduled_for, services_planned,
               priority, rescheduled_from, scheduled_at, scheduled_envelope)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9, $10, $11, $12, $13,
                   $14::jsonb)""",
        scheduled.visit_id,
        scheduled.household_id,
        request.need_assessment_id,
        scheduled.team_code,
        scheduled.location.adm1_pcode,
        scheduled.location.adm2_pcode,
        scheduled.location.adm3_pcode,
        request.request.request_id,
        scheduled.scheduled_for,
        sorted(scheduled.services_planned),
        scheduled.priority,
        scheduled.rescheduled_from,
        scheduled.scheduled_at,
        envelope.model_dump_json(),
    )
    await conn.execute(
        "UPDATE visit_requests SET status = 'scheduled', visit_id = $2, backlog_reason = NULL "
        "WHERE request_id = $1",
        request.request.request_id,
        scheduled.visit_id,
    )


def _visit(row: asyncpg.Record) -> Visit:
    return Visit(
        visit_id=row["visit_id"],
        household_id=row["household_id"],
        request_id=row["request_id"],
        team_code=row["team_code"],
        status=row["status"],
        scheduled_for=row["scheduled_for"],
        services_planned=frozenset(row["services_planned"] or ()),
        priority=row["priority"] or 100,
        location=_location(row),
    )


@dataclass(frozen=True)
class VisitRow:
    visit: Visit
    #: The latest event about the visit: what comes next is caused by it.
    last_envelope: Envelope | None


async def visit_for_update(conn: asyncpg.Connection, visit_id: UUID) -> VisitRow | None:
    row = await conn.fetchrow("SELECT * FROM visits WHERE visit_id = $1 FOR UPDATE", visit_id)
    if row is None:
        return None
    last = row["completed_envelope"] or row["scheduled_envelope"]
    return VisitRow(_visit(row), None if last is None else Envelope.model_validate_json(last))


async def scheduled_visits_of(conn: asyncpg.Connection, household_id: UUID) -> list[Visit]:
    rows = await conn.fetch(
        "SELECT * FROM visits WHERE household_id = $1 AND status = 'scheduled' "
        "ORDER BY scheduled_for, visit_id FOR UPDATE",
        household_id,
    )
    return [_visit(r) for r in rows]


async def mark_visit(
    conn: asyncpg.Connection, visit_id: UUID, status: str, *, reason: str | None, at: datetime
) -> None:
    await conn.execute(
        "UPDATE visits SET status = $2, missed_reason = $3, closed_at = $4 WHERE visit_id = $1",
        visit_id,
        status,
        reason,
        at,
    )


async def mark_completed(
    conn: asyncpg.Connection,
    visit_id: UUID,
    *,
    services_delivered: frozenset[str],
    persons_seen: int,
    completed_at: datetime,
    envelope: Envelope,
    deliveries: Iterable[tuple[UUID, str]],
) -> None:
    await conn.execute(
        """UPDATE visits SET status = 'completed', services_delivered = $2, persons_seen = $3,
               completed_at = $4, closed_at = $4, completed_envelope = $5::jsonb
           WHERE visit_id = $1""",
        visit_id,
        sorted(services_delivered),
        persons_seen,
        completed_at,
        envelope.model_dump_json(),
    )
    await conn.executemany(
        "INSERT INTO visit_deliveries (delivery_id, visit_id, service) VALUES ($1, $2, $3)",
        [(delivery_id, visit_id, service) for delivery_id, service in deliveries],
    )


async def save_clinical_record(
    conn: asyncpg.Connection, visit_id: UUID, sealed: Sealed, *, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO clinical_records (visit_id, key_id, sealed, recorded_at) "
        "VALUES ($1, $2, $3, $4)",
        visit_id,
        sealed.key_id,
        sealed.data,
        at,
    )


async def clinical_record(conn: asyncpg.Connection, visit_id: UUID) -> Sealed | None:
    row = await conn.fetchrow(
        "SELECT key_id, sealed FROM clinical_records WHERE visit_id = $1", visit_id
    )
    return None if row is None else Sealed(row["key_id"], bytes(row["sealed"]))


VISIT_COLUMNS = """v.visit_id, v.household_id, v.request_id, v.team_code, v.status,
    v.scheduled_for, v.services_planned, v.priority, v.rescheduled_from, v.adm1_pcode,
    v.adm2_pcode, v.adm3_pcode, v.scheduled_at, v.services_delivered, v.persons_seen,
    v.completed_at, v.missed_reason, v.closed_at, v.need_assessment_id,
    coalesce((SELECT array_agg(d.delivery_id ORDER BY d.service) FROM visit_deliveries d
              WHERE d.visit_id = v.visit_id),
             CASE WHEN v.delivery_id IS NULL THEN '{}'::uuid[] ELSE ARRAY[v.delivery_id] END)
        AS delivery_ids"""


async def list_visits(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    team_code: str | None,
    household_id: UUID | None,
    adm1_pcode: str | None,
    day_from: date | None,
    day_to: date | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {VISIT_COLUMNS} FROM visits v
            WHERE ($1::text IS NULL OR v.status = $1) AND ($2::text IS NULL OR v.team_code = $2)
              AND ($3::uuid IS NULL OR v.household_id = $3)
              AND ($4::text IS NULL OR v.adm1_pcode = $4)
              AND ($5::date IS NULL OR v.scheduled_for >= $5)
              AND ($6::date IS NULL OR v.scheduled_for <= $6)
            ORDER BY v.scheduled_for NULLS LAST, v.priority, v.visit_id LIMIT $7 OFFSET $8""",
        status,
        team_code,
        household_id,
        adm1_pcode,
        day_from,
        day_to,
        limit,
        offset,
    )
    return [dict(r) for r in rows]


async def get_visit(conn: asyncpg.Connection, visit_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {VISIT_COLUMNS} FROM visits v WHERE v.visit_id = $1", visit_id
    )
    return None if row is None else dict(row)


# ---- referrals -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralRow:
    referral_id: UUID
    direction: str
    household_id: UUID
    to_target: str
    reason_code: str
    urgency: Urgency
    status: str
    requested_at: datetime
    request_id: UUID | None
    envelope: Envelope


def _referral(row: asyncpg.Record) -> ReferralRow:
    return ReferralRow(
        referral_id=row["referral_id"],
        direction=row["direction"],
        household_id=row["household_id"],
        to_target=row["to_target"],
        reason_code=row["reason_code"],
        urgency=Urgency(row["urgency"]),
        status=row["status"],
        requested_at=row["requested_at"],
        request_id=row["request_id"],
        envelope=Envelope.model_validate_json(row["envelope"]),
    )


async def insert_referral(
    conn: asyncpg.Connection,
    *,
    referral_id: UUID,
    direction: str,
    household_id: UUID,
    from_sector: str,
    to_target: str,
    reason_code: str,
    urgency: str,
    status: str,
    requested_at: datetime,
    envelope: Envelope,
    visit_id: UUID | None = None,
) -> bool:
    """False if the referral was already known (a redelivered or our own echoed event)."""
    inserted = await conn.fetchval(
        """INSERT INTO referrals (referral_id, direction, household_id, visit_id, from_sector,
               to_target, reason_code, urgency, status, requested_at, updated_at, envelope)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11::jsonb)
           ON CONFLICT (referral_id) DO NOTHING RETURNING true""",
        referral_id,
        direction,
        household_id,
        visit_id,
        from_sector,
        to_target,
        reason_code,
        urgency,
        status,
        requested_at,
        envelope.model_dump_json(),
    )
    return bool(inserted)


async def referral_for_update(
    conn: asyncpg.Connection, referral_id: UUID, *, direction: str
) -> ReferralRow | None:
    row = await conn.fetchrow(
        "SELECT * FROM referrals WHERE referral_id = $1 AND direction = $2 FOR UPDATE",
        referral_id,
        direction,
    )
    return None if row is None else _referral(row)


async def referral_for_request(conn: asyncpg.Connection, request_id: UUID) -> ReferralRow | None:
    row = await conn.fetchrow(
        "SELECT * FROM referrals WHERE request_id = $1 AND direction = 'incoming' FOR UPDATE",
        request_id,
    )
    return None if row is None else _referral(row)


async def set_referral_status(
    conn: asyncpg.Connection,
    referral_id: UUID,
    status: str,
    *,
    reason: str | None = None,
    at: datetime,
    request_id: UUID | None = None,
) -> None:
    await conn.execute(
        """UPDATE referrals SET status = $2, status_reason = $3, updated_at = $4,
               request_id = coalesce($5, request_id)
           WHERE referral_id = $1""",
        referral_id,
        status,
        reason,
        at,
        request_id,
    )


async def referrals_of(
    conn: asyncpg.Connection, household_id: UUID, *, direction: str, statuses: Iterable[str]
) -> list[ReferralRow]:
    rows = await conn.fetch(
        "SELECT * FROM referrals WHERE household_id = $1 AND direction = $2 "
        "AND status = ANY($3::text[]) ORDER BY requested_at, referral_id FOR UPDATE",
        household_id,
        direction,
        list(statuses),
    )
    return [_referral(r) for r in rows]


async def list_referrals(
    conn: asyncpg.Connection,
    *,
    direction: str | None,
    status: str | None,
    household_id: UUID | None,
    limit: int,
    offset: int,
    referral_id: UUID | None = None,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT referral_id, direction, household_id, visit_id, request_id, from_sector,
                  to_target AS "to", reason_code, urgency, status, status_reason, requested_at,
                  updated_at
           FROM referrals
           WHERE ($1::text IS NULL OR direction = $1) AND ($2::text IS NULL OR status = $2)
             AND ($3::uuid IS NULL OR household_id = $3)
             AND ($6::uuid IS NULL OR referral_id = $6)
           ORDER BY requested_at DESC, referral_id LIMIT $4 OFFSET $5""",
        direction,
        status,
        household_id,
        limit,
        offset,
        referral_id,
    )
    return [dict(r) for r in rows]


# ---- merges ----------------------------------------------------------------------------


async def repoint_household(conn: asyncpg.Connection, *, merged: UUID, survivor: UUID) -> None:
    for table in ("visit_requests", "visits", "referrals"):
        await conn.execute(
            f"UPDATE {table} SET household_id = $2 WHERE household_id = $1", merged, survivor
        )


# ---- capacity --------------------------------------------------------------------------


async def backlog_by_oblast(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT adm1_pcode, coalesce(backlog_reason, 'not_planned_yet') AS reason,
                  count(*) AS requests, min(priority) AS top_priority,
                  min(received_at) AS oldest
           FROM visit_requests WHERE status = 'backlog'
           GROUP BY adm1_pcode, reason ORDER BY adm1_pcode, reason"""
    )
    return [dict(r) for r in rows]
