"""Plain SQL for the registration tables."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from aidmesh_contracts import NeedAssessed

from .domain import HouseholdIn


async def insert_household(
    conn: asyncpg.Connection,
    household: HouseholdIn,
    *,
    household_id: UUID,
    member_ids: list[UUID],
    registered_at: datetime,
    correlation_id: UUID,
) -> None:
    location = household.location
    await conn.execute(
        """INSERT INTO households (household_id, registered_at, channel, partner_org,
               adm1_pcode, adm2_pcode, adm3_pcode, displacement_status, size, address, phone,
               vulnerabilities, consents, correlation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
        household_id,
        registered_at,
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
    )
    await conn.executemany(
        """INSERT INTO members (member_id, household_id, full_name, sex, date_of_birth,
               relation, document_number) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [
            (
                member_id,
                household_id,
                m.full_name,
                m.sex.value,
                m.date_of_birth,
                m.relation.value,
                m.document_number,
            )
            for member_id, m in zip(member_ids, household.members, strict=True)
        ],
    )


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


async def get_household(conn: asyncpg.Connection, household_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM households WHERE household_id = $1", household_id)
    if row is None:
        return None
    members = await conn.fetch(
        "SELECT member_id, full_name, sex, date_of_birth, relation, document_number "
        "FROM members WHERE household_id = $1 ORDER BY relation <> 'head', date_of_birth",
        household_id,
    )
    needs = await conn.fetch(
        "SELECT assessment_id, sector, severity, details, assessed_at, assessed_by "
        "FROM need_assessments WHERE household_id = $1 ORDER BY sector",
        household_id,
    )
    household = dict(row)
    household["members"] = [dict(m) for m in members]
    household["needs"] = [
        {**dict(n), "details": json.loads(n["details"]) if n["details"] else None} for n in needs
    ]
    return household
