"""Plain SQL for shelter's cases, referrals, deliveries, facilities and monitoring."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
from aidmesh_contracts import (
    AssistanceDelivered,
    DamageLevel,
    Envelope,
    Location,
    Modality,
    RepairCategory,
    ShelterCaseOpened,
)
from aidmesh_contracts.events.referral import ReferralRequested

from .domain import (
    BoqLine,
    Case,
    CaseStatus,
    FacilityCase,
    PastDelivery,
    Plan,
    Referral,
    ReferralStatus,
)

# ---- locks -------------------------------------------------------------------------------


# ---- household cases -------------------------------------------------------------------


async def insert_case(
    conn: asyncpg.Connection,
    opened: ShelterCaseOpened,
    envelope: Envelope,
    *,
    household_size: int,
    priority: int,
    referral_id: UUID | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO shelter_cases (case_id, household_id, need_assessment_id, referral_id,
               status, damage_level, severity, adm1_pcode, adm2_pcode, adm3_pcode,
               household_size, priority, opened_at, opened_envelope, last_envelope)
           VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb,
                   $13::jsonb)""",
        opened.case_id,
        opened.household_id,
        opened.need_assessment_id,
        referral_id,
        opened.damage_level.value,
        opened.severity,
        opened.location.adm1_pcode,
        opened.location.adm2_pcode,
        opened.location.adm3_pcode,
        household_size,
        priority,
        opened.opened_at,
        envelope.model_dump_json(),
    )


def _case(row: asyncpg.Record) -> Case:
    plan = None
    if row["category"] is not None:
        plan = Plan(
            category=RepairCategory(row["category"]),
            modality=Modality(row["modality"]),
            budget=row["budget"],
        )
    return Case(
        case_id=row["case_id"],
        household_id=row["household_id"],
        status=CaseStatus(row["status"]),
        damage_level=DamageLevel(row["damage_level"]),
        severity=row["severity"],
        location=Location(
            adm1_pcode=row["adm1_pcode"], adm2_pcode=row["adm2_pcode"], adm3_pcode=row["adm3_pcode"]
        ),
        household_size=row["household_size"],
        priority=row["priority"],
        opened_at=row["opened_at"],
        estimated_cost=row["estimated_cost"],
        assessed_by=row["assessed_by"],
        plan=plan,
    )


async def household_of_case(conn: asyncpg.Connection, case_id: UUID) -> UUID | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT household_id FROM shelter_cases WHERE case_id = $1", case_id
    )


async def case_for_update(conn: asyncpg.Connection, case_id: UUID) -> tuple[Case, Envelope] | None:
    """The case, locked, and the envelope of its latest event (the cause of the next)."""
    row = await conn.fetchrow("SELECT * FROM shelter_cases WHERE case_id = $1 FOR UPDATE", case_id)
    if row is None:
        return None
    return _case(row), Envelope.model_validate_json(row["last_envelope"])


async def active_cases_of(
    conn: asyncpg.Connection, household_id: UUID
) -> list[tuple[Case, Envelope]]:
    """The household's cases still in progress, oldest first, locked."""
    rows = await conn.fetch(
        "SELECT * FROM shelter_cases WHERE household_id = $1"
        " AND status NOT IN ('repaired', 'closed') ORDER BY opened_at, case_id FOR UPDATE",
        household_id,
    )
    return [(_case(r), Envelope.model_validate_json(r["last_envelope"])) for r in rows]


async def raise_severity(
    conn: asyncpg.Connection, case_id: UUID, *, severity: int, priority: int
) -> None:
    await conn.execute(
        "UPDATE shelter_cases SET severity = greatest(severity, $2),"
        " priority = least(priority, $3) WHERE case_id = $1",
        case_id,
        severity,
        priority,
    )


async def save_assessment(
    conn: asyncpg.Connection,
    case_id: UUID,
    *,
    status: CaseStatus,
    damage_level: DamageLevel,
    priority: int,
    assessed_at: datetime,
    assessed_by: str,
    estimated_cost: Decimal,
    lines: Sequence[BoqLine],
    envelope: Envelope,
) -> None:
    boq = [
        {
            "item_code": line.item_code,
            "quantity": str(line.quantity),
            "unit": line.unit,
            "unit_cost_uah": str(line.unit_cost),
            "total_uah": str(line.total),
        }
        for line in lines
    ]
    await conn.execute(
        """UPDATE shelter_cases SET status = $2, damage_level = $3, priority = $4,
               assessed_at = $5, assessed_by = $6, estimated_cost = $7, boq = $8::jsonb,
               last_envelope = $9::jsonb
           WHERE case_id = $1""",
        case_id,
        status.value,
        damage_level.value,
        priority,
        assessed_at,
        assessed_by,
        estimated_cost,
        json.dumps(boq),
        envelope.model_dump_json(),
    )


async def save_plan(
    conn: asyncpg.Connection,
    case_id: UUID,
    *,
    category: RepairCategory,
    modality: Modality,
    budget: Decimal,
    planned_at: datetime,
    envelope: Envelope,
) -> None:
    await conn.execute(
        """UPDATE shelter_cases SET status = 'planned', category = $2, modality = $3,
               budget = $4, planned_at = $5, last_envelope = $6::jsonb
           WHERE case_id = $1""",
        case_id,
        category.value,
        modality.value,
        budget,
        planned_at,
        envelope.model_dump_json(),
    )


async def mark_repaired(
    conn: asyncpg.Connection,
    case_id: UUID,
    *,
    delivery_id: UUID,
    value: Decimal,
    closed_at: datetime,
    envelope: Envelope,
) -> None:
    await conn.execute(
        """UPDATE shelter_cases SET status = 'repaired', close_reason = 'repaired',
               closed_at = $2, delivery_id = $3, repair_value = $4, last_envelope = $5::jsonb
           WHERE case_id = $1""",
        case_id,
        closed_at,
        delivery_id,
        value,
        envelope.model_dump_json(),
    )


async def close_case(
    conn: asyncpg.Connection,
    case_id: UUID,
    *,
    reason: str,
    closed_at: datetime,
    envelope: Envelope,
) -> None:
    await conn.execute(
        """UPDATE shelter_cases SET status = 'closed', close_reason = $2, closed_at = $3,
               last_envelope = $4::jsonb
           WHERE case_id = $1""",
        case_id,
        reason,
        closed_at,
        envelope.model_dump_json(),
    )


async def set_status(
    conn: asyncpg.Connection, case_id: UUID, status: CaseStatus, *, envelope: Envelope | None
) -> None:
    await conn.execute(
        "UPDATE shelter_cases SET status = $2,"
        " last_envelope = coalesce($3::jsonb, last_envelope) WHERE case_id = $1",
        case_id,
        status.value,
        envelope.model_dump_json() if envelope else None,
    )


CASE_COLUMNS = """c.case_id, c.household_id, c.status, c.damage_level, c.severity, c.priority,
    c.adm1_pcode, c.adm2_pcode, c.adm3_pcode, c.household_size, c.need_assessment_id,
    c.referral_id AS opened_from_referral_id, c.opened_at, c.assessed_at, c.assessed_by,
    c.estimated_cost, c.category, c.modality, c.budget, c.planned_at, c.repair_value,
    c.closed_at, c.close_reason, c.delivery_id,
    r.referral_id, r.target AS referral_target, r.status AS referral_status,
    r.outcome_code AS referral_outcome"""

# The case's latest referral out, if any.
LATEST_REFERRAL = """LEFT JOIN LATERAL (
    SELECT * FROM referrals WHERE referrals.case_id = c.case_id
    ORDER BY requested_at DESC LIMIT 1) r ON true"""


async def list_cases(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    oblast: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """The work queue: most urgent first (priority 1 first), then the longest waiting."""
    rows = await conn.fetch(
        f"""SELECT {CASE_COLUMNS} FROM shelter_cases c {LATEST_REFERRAL}
           WHERE ($1::text IS NULL OR c.status = $1) AND ($2::text IS NULL OR c.adm1_pcode = $2)
           ORDER BY c.priority, c.opened_at, c.case_id LIMIT $3 OFFSET $4""",
        status,
        oblast,
        limit,
        offset,
    )
    return [dict(r) for r in rows]


async def case_detail(conn: asyncpg.Connection, case_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {CASE_COLUMNS}, c.boq FROM shelter_cases c {LATEST_REFERRAL} WHERE c.case_id = $1",
        case_id,
    )
    if row is None:
        return None
    detail = dict(row)
    detail["boq"] = json.loads(row["boq"]) if row["boq"] else []
    return detail


async def assessed_cases_in(conn: asyncpg.Connection, oblast: str) -> list[Case]:
    """Cases waiting for a repair plan in an oblast, locked (others wait, none skipped)."""
    rows = await conn.fetch(
        "SELECT * FROM shelter_cases WHERE status = 'assessed' AND adm1_pcode = $1"
        " ORDER BY priority, opened_at, case_id FOR UPDATE",
        oblast,
    )
    return [_case(r) for r in rows]


async def last_envelopes(
    conn: asyncpg.Connection, case_ids: Sequence[UUID]
) -> dict[UUID, Envelope]:
    rows = await conn.fetch(
        "SELECT case_id, last_envelope FROM shelter_cases WHERE case_id = ANY($1::uuid[])",
        list(case_ids),
    )
    return {r["case_id"]: Envelope.model_validate_json(r["last_envelope"]) for r in rows}


async def cases_awaiting_consent(
    conn: asyncpg.Connection, household_id: UUID
) -> list[tuple[Case, Envelope]]:
    rows = await conn.fetch(
        "SELECT * FROM shelter_cases WHERE household_id = $1 AND status = 'awaiting_consent'"
        " ORDER BY opened_at FOR UPDATE",
        household_id,
    )
    return [(_case(r), Envelope.model_validate_json(r["last_envelope"])) for r in rows]


# ---- referrals out -----------------------------------------------------------------------


def _referral(row: asyncpg.Record) -> Referral:
    return Referral(
        referral_id=row["referral_id"],
        case_id=row["case_id"],
        household_id=row["household_id"],
        target=row["target"],
        status=ReferralStatus(row["status"]),
    )


async def insert_referral(
    conn: asyncpg.Connection, referral: ReferralRequested, *, case_id: UUID, envelope: Envelope
) -> None:
    await conn.execute(
        """INSERT INTO referrals (referral_id, case_id, household_id, target, status,
               requested_at, envelope)
           VALUES ($1, $2, $3, $4, 'requested', $5, $6::jsonb)""",
        referral.referral_id,
        case_id,
        referral.household_id,
        referral.to,
        referral.requested_at,
        envelope.model_dump_json(),
    )


async def referral_for_update(
    conn: asyncpg.Connection, referral_id: UUID
) -> tuple[Referral, Envelope] | None:
    row = await conn.fetchrow(
        "SELECT * FROM referrals WHERE referral_id = $1 FOR UPDATE", referral_id
    )
    if row is None:
        return None
    return _referral(row), Envelope.model_validate_json(row["envelope"])


async def open_referral_of_case(
    conn: asyncpg.Connection, case_id: UUID
) -> tuple[Referral, Envelope] | None:
    row = await conn.fetchrow(
        "SELECT * FROM referrals WHERE case_id = $1 AND status IN ('requested', 'accepted')"
        " ORDER BY requested_at DESC LIMIT 1 FOR UPDATE",
        case_id,
    )
    if row is None:
        return None
    return _referral(row), Envelope.model_validate_json(row["envelope"])


async def open_referrals_of(
    conn: asyncpg.Connection, household_id: UUID
) -> list[tuple[Referral, Envelope]]:
    rows = await conn.fetch(
        "SELECT * FROM referrals WHERE household_id = $1"
        " AND status IN ('requested', 'accepted') ORDER BY requested_at FOR UPDATE",
        household_id,
    )
    return [(_referral(r), Envelope.model_validate_json(r["envelope"])) for r in rows]


async def set_referral_status(
    conn: asyncpg.Connection,
    referral_id: UUID,
    status: ReferralStatus,
    *,
    code: str | None = None,
    at: datetime | None = None,
) -> None:
    await conn.execute(
        "UPDATE referrals SET status = $2, outcome_code = coalesce($3, outcome_code),"
        " closed_at = coalesce($4, closed_at) WHERE referral_id = $1",
        referral_id,
        status.value,
        code,
        at,
    )


# ---- referrals in ------------------------------------------------------------------------


async def insert_inbound_referral(
    conn: asyncpg.Connection, referral: ReferralRequested, envelope: Envelope
) -> None:
    await conn.execute(
        "INSERT INTO inbound_referrals (referral_id, household_id, payload, envelope)"
        " VALUES ($1, $2, $3::jsonb, $4::jsonb) ON CONFLICT (referral_id) DO NOTHING",
        referral.referral_id,
        referral.household_id,
        referral.model_dump_json(),
        envelope.model_dump_json(),
    )


async def waiting_inbound_referrals(
    conn: asyncpg.Connection, household_ids: Sequence[UUID]
) -> list[tuple[ReferralRequested, Envelope]]:
    rows = await conn.fetch(
        "SELECT payload, envelope FROM inbound_referrals WHERE decided_at IS NULL"
        " AND household_id = ANY($1::uuid[]) ORDER BY received_at, referral_id FOR UPDATE",
        list(household_ids),
    )
    return [
        (
            ReferralRequested.model_validate_json(r["payload"]),
            Envelope.model_validate_json(r["envelope"]),
        )
        for r in rows
    ]


async def has_waiting_referrals(conn: asyncpg.Connection, household_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM inbound_referrals"
            " WHERE household_id = $1 AND decided_at IS NULL)",
            household_id,
        )
    )


async def decide_inbound_referral(
    conn: asyncpg.Connection,
    referral_id: UUID,
    *,
    decision: str,
    case_id: UUID | None,
    at: datetime,
) -> None:
    await conn.execute(
        "UPDATE inbound_referrals SET decision = $2, case_id = $3, decided_at = $4"
        " WHERE referral_id = $1",
        referral_id,
        decision,
        case_id,
        at,
    )


# ---- consents and flows ------------------------------------------------------------------


async def withdrawn_purposes(conn: asyncpg.Connection, household_id: UUID) -> frozenset[str]:
    rows = await conn.fetch(
        "SELECT purpose FROM withdrawn_consents WHERE household_id = $1", household_id
    )
    return frozenset(r["purpose"] for r in rows)


async def record_withdrawal(
    conn: asyncpg.Connection, household_id: UUID, purpose: str, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO withdrawn_consents (household_id, purpose, withdrawn_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (household_id, purpose) DO UPDATE SET withdrawn_at = EXCLUDED.withdrawn_at",
        household_id,
        purpose,
        at,
    )


async def forget_withdrawal(conn: asyncpg.Connection, household_id: UUID, purpose: str) -> None:
    await conn.execute(
        "DELETE FROM withdrawn_consents WHERE household_id = $1 AND purpose = $2",
        household_id,
        purpose,
    )


async def remember_flow(conn: asyncpg.Connection, household_id: UUID, correlation_id: UUID) -> bool:
    """Remember the household's flow; answer whether referrals to it wait for a decision
    (`has_waiting_referrals`, in the same round trip)."""
    return bool(
        await conn.fetchval(
            "WITH remembered AS (INSERT INTO household_flows (household_id, correlation_id)"
            " VALUES ($1, $2) ON CONFLICT (household_id) DO NOTHING)"
            " SELECT EXISTS (SELECT 1 FROM inbound_referrals"
            " WHERE household_id = $1 AND decided_at IS NULL)",
            household_id,
            correlation_id,
        )
    )


async def flow_of(conn: asyncpg.Connection, household_id: UUID) -> UUID | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT correlation_id FROM household_flows WHERE household_id = $1", household_id
    )


# ---- merges ------------------------------------------------------------------------------


async def repoint_household(conn: asyncpg.Connection, *, merged: UUID, survivor: UUID) -> int:
    """Everything shelter holds about the merged household now belongs to the survivor;
    return how many cases moved."""
    moved = await conn.fetchval(
        "WITH moved AS (UPDATE shelter_cases SET household_id = $2 WHERE household_id = $1"
        " RETURNING 1) SELECT count(*) FROM moved",
        merged,
        survivor,
    )
    for table in ("referrals", "inbound_referrals", "deliveries"):
        await conn.execute(
            f"UPDATE {table} SET household_id = $2 WHERE household_id = $1", merged, survivor
        )
    # A withdrawal by either registration binds the household that stays.
    await conn.execute(
        "INSERT INTO withdrawn_consents (household_id, purpose, withdrawn_at)"
        " SELECT $2, purpose, withdrawn_at FROM withdrawn_consents WHERE household_id = $1"
        " ON CONFLICT (household_id, purpose) DO NOTHING",
        merged,
        survivor,
    )
    await conn.execute("DELETE FROM withdrawn_consents WHERE household_id = $1", merged)
    return int(moved)


# ---- deliveries --------------------------------------------------------------------------


async def insert_delivery(
    conn: asyncpg.Connection,
    delivered: AssistanceDelivered,
    *,
    case_id: UUID | None = None,
    season: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO deliveries (delivery_id, household_id, facility_id, case_id, activity,
               season, modality, quantity, unit, value, persons_reached, partner_org,
               adm1_pcode, adm2_pcode, adm3_pcode, delivered_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)""",
        delivered.delivery_id,
        delivered.household_id,
        delivered.facility_id,
        case_id,
        delivered.activity,
        season,
        delivered.modality.value,
        delivered.quantity,
        delivered.unit,
        delivered.value.amount if delivered.value else None,
        delivered.persons_reached,
        delivered.partner_org,
        delivered.location.adm1_pcode,
        delivered.location.adm2_pcode,
        delivered.location.adm3_pcode,
        delivered.delivered_at,
    )


async def past_deliveries(conn: asyncpg.Connection, household_id: UUID) -> list[PastDelivery]:
    rows = await conn.fetch(
        "SELECT delivery_id, activity, season, delivered_at FROM deliveries"
        " WHERE household_id = $1 ORDER BY delivered_at",
        household_id,
    )
    return [
        PastDelivery(
            delivery_id=r["delivery_id"],
            activity=r["activity"],
            season=r["season"],
            delivered_at=r["delivered_at"],
        )
        for r in rows
    ]


DELIVERY_COLUMNS = """delivery_id, household_id, facility_id, case_id, activity, season,
    modality, quantity, unit, value, persons_reached, partner_org, adm1_pcode, adm2_pcode,
    adm3_pcode, delivered_at"""


async def delivery(conn: asyncpg.Connection, delivery_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = $1", delivery_id
    )
    return dict(row) if row else None


async def deliveries_of(conn: asyncpg.Connection, household_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE household_id = $1"
        " ORDER BY delivered_at, delivery_id",
        household_id,
    )
    return [dict(r) for r in rows]


# ---- monitoring --------------------------------------------------------------------------


async def insert_monitoring(
    conn: asyncpg.Connection,
    delivery_id: UUID,
    *,
    received: bool,
    satisfaction: int | None,
    use_code: str | None,
    monitored_by: str,
    monitored_at: datetime,
    recorded_at: datetime,
) -> bool:
    """Store the follow-up; False if the delivery was monitored already."""
    inserted = await conn.fetchval(
        """INSERT INTO delivery_monitoring (delivery_id, received, satisfaction, use_code,
               monitored_by, monitored_at, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (delivery_id) DO NOTHING RETURNING true""",
        delivery_id,
        received,
        satisfaction,
        use_code,
        monitored_by,
        monitored_at,
        recorded_at,
    )
    return bool(inserted)


async def monitoring(conn: asyncpg.Connection, delivery_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT delivery_id, received, satisfaction, use_code, monitored_by, monitored_at,"
        " recorded_at FROM delivery_monitoring WHERE delivery_id = $1",
        delivery_id,
    )
    return dict(row) if row else None


# ---- facilities --------------------------------------------------------------------------


async def insert_facility(
    conn: asyncpg.Connection,
    *,
    facility_id: UUID,
    name: str,
    capacity: int,
    location: Location,
    created_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO facilities (facility_id, name, capacity, adm1_pcode, adm2_pcode,
               adm3_pcode, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        facility_id,
        name,
        capacity,
        location.adm1_pcode,
        location.adm2_pcode,
        location.adm3_pcode,
        created_at,
    )


async def insert_facility_case(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    facility_id: UUID,
    opened_at: datetime,
    envelope: Envelope,
) -> None:
    await conn.execute(
        "INSERT INTO facility_cases (case_id, facility_id, status, opened_at, opened_envelope)"
        " VALUES ($1, $2, 'open', $3, $4::jsonb)",
        case_id,
        facility_id,
        opened_at,
        envelope.model_dump_json(),
    )


async def facility_case_for_update(
    conn: asyncpg.Connection, case_id: UUID
) -> tuple[FacilityCase, Envelope] | None:
    row = await conn.fetchrow(
        """SELECT fc.case_id, fc.facility_id, fc.status, fc.opened_envelope, f.capacity,
                  f.adm1_pcode, f.adm2_pcode, f.adm3_pcode
           FROM facility_cases fc JOIN facilities f USING (facility_id)
           WHERE fc.case_id = $1 FOR UPDATE OF fc""",
        case_id,
    )
    if row is None:
        return None
    case = FacilityCase(
        case_id=row["case_id"],
        facility_id=row["facility_id"],
        status=row["status"],
        capacity=row["capacity"],
        location=Location(
            adm1_pcode=row["adm1_pcode"], adm2_pcode=row["adm2_pcode"], adm3_pcode=row["adm3_pcode"]
        ),
    )
    return case, Envelope.model_validate_json(row["opened_envelope"])


async def mark_refurbished(
    conn: asyncpg.Connection, case_id: UUID, *, delivery_id: UUID, closed_at: datetime
) -> None:
    await conn.execute(
        "UPDATE facility_cases SET status = 'refurbished', delivery_id = $2, closed_at = $3"
        " WHERE case_id = $1",
        case_id,
        delivery_id,
        closed_at,
    )


FACILITY_COLUMNS = """f.facility_id, f.name, f.capacity, f.adm1_pcode, f.adm2_pcode,
    f.adm3_pcode, f.created_at, fc.case_id, fc.status, fc.opened_at, fc.closed_at,
    fc.delivery_id"""


async def list_facilities(
    conn: asyncpg.Connection, *, oblast: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {FACILITY_COLUMNS} FROM facilities f JOIN facility_cases fc USING (facility_id)
           WHERE ($1::text IS NULL OR f.adm1_pcode = $1)
           ORDER BY fc.opened_at, fc.case_id LIMIT $2 OFFSET $3""",
        oblast,
        limit,
        offset,
    )
    return [dict(r) for r in rows]


async def facility(conn: asyncpg.Connection, facility_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""SELECT {FACILITY_COLUMNS} FROM facilities f JOIN facility_cases fc USING (facility_id)
           WHERE f.facility_id = $1 ORDER BY fc.opened_at DESC LIMIT 1""",
        facility_id,
    )
    return dict(row) if row else None
