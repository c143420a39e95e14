"""Plain SQL for shelter needs and cases."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from aidmesh_contracts import DamageLevel, Envelope, Location, ShelterCaseOpened

from .domain import Case


async def insert_case(
    conn: asyncpg.Connection, opened: ShelterCaseOpened, envelope: Envelope, household_size: int
) -> None:
    await conn.execute(
        """INSERT INTO shelter_cases (case_id, household_id, need_assessment_id, status,
               damage_level, severity, adm1_pcode, adm2_pcode, adm3_pcode, household_size,
               opened_at, opened_envelope)
           VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11::jsonb)""",
        opened.case_id,
        opened.household_id,
        opened.need_assessment_id,
        opened.damage_level.value,
        opened.severity,
        opened.location.adm1_pcode,
        opened.location.adm2_pcode,
        opened.location.adm3_pcode,
        household_size,
        opened.opened_at,
        envelope.model_dump_json(),
    )


async def case_for_update(conn: asyncpg.Connection, case_id: UUID) -> tuple[Case, Envelope] | None:
    row = await conn.fetchrow("SELECT * FROM shelter_cases WHERE case_id = $1 FOR UPDATE", case_id)
    if row is None:
        return None
    case = Case(
        case_id=row["case_id"],
        household_id=row["household_id"],
        status=row["status"],
        damage_level=DamageLevel(row["damage_level"]),
        location=Location(
            adm1_pcode=row["adm1_pcode"], adm2_pcode=row["adm2_pcode"], adm3_pcode=row["adm3_pcode"]
        ),
        household_size=row["household_size"],
    )
    return case, Envelope.model_validate_json(row["opened_envelope"])


async def mark_repaired(conn: asyncpg.Connection, case_id: UUID, delivery_id: UUID) -> None:
    await conn.execute(
        "UPDATE shelter_cases SET status = 'repaired', closed_at = now(), delivery_id = $2 "
        "WHERE case_id = $1",
        case_id,
        delivery_id,
    )


async def list_cases(
    conn: asyncpg.Connection, *, status: str | None, adm1_pcode: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT case_id, household_id, status, damage_level, severity, adm1_pcode, opened_at,
                  closed_at, delivery_id
           FROM shelter_cases
           WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR adm1_pcode = $2)
           ORDER BY severity DESC, opened_at LIMIT $3 OFFSET $4""",
        status,
        adm1_pcode,
        limit,
        offset,
    )
    return [dict(r) for r in rows]
