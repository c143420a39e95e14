"""Cash's SQL: entitlements, cycles and their lists, payments and the months they cover,
other sectors' assistance, and providers' reports. Set-based where a cycle touches many
households (a cycle of 100,000 is a few statements, not 100,000 round trips)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .domain import Candidate, Entitlement, Instructed, Line

#: One lock for everything that writes household_months (approvals, merges): a cycle's
#: check "not already paid for these months" and its writes are then one atomic step,
#: for households merged in between too. Taken for the transaction only.
_MONTHS_LOCK = 0x43_41_53_48  # "CASH"

if TYPE_CHECKING:
    from aidmesh_runtime.db import Connection


async def lock_months(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MONTHS_LOCK)


# ---- entitlements --------------------------------------------------------------------------


async def save_entitlement(
    conn: Connection,
    decided: Entitlement,
    *,
    assessed_at: datetime,
    need_envelope: str,
    decided_at: datetime,
) -> None:
    """The household's entitlement; an older assessment never replaces a newer one."""
    await conn.execute(
        """INSERT INTO entitlements (household_id, assessment_id, severity, eligible,
               monthly_amount, priority, explanation, assessed_at, need_envelope, decided_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9::jsonb, $10)
           ON CONFLICT (household_id) DO UPDATE SET
               assessment_id = EXCLUDED.assessment_id, severity = EXCLUDED.severity,
               eligible = EXCLUDED.eligible, monthly_amount = EXCLUDED.monthly_amount,
               priority = EXCLUDED.priority, explanation = EXCLUDED.explanation,
               assessed_at = EXCLUDED.assessed_at, need_envelope = EXCLUDED.need_envelope,
               decided_at = EXCLUDED.decided_at
           WHERE entitlements.assessed_at <= EXCLUDED.assessed_at""",
        decided.household_id,
        decided.assessment_id,
        decided.severity,
        decided.eligible,
        decided.monthly_amount,
        decided.priority,
        json.dumps(decided.explanation),
        assessed_at,
        need_envelope,
        decided_at,
    )


async def entitlement_of(conn: Connection, household_id: UUID) -> dict[str, Any] | None:
    """The entitlement that counts for a household: its own, or for a merged household
    the one of the household that stays (the latest assessed among them)."""
    row = await conn.fetchrow(
        """SELECT e.household_id AS assessed_household_id, e.assessment_id, e.severity,
                  e.eligible, e.monthly_amount, e.priority, e.explanation, e.assessed_at,
                  e.decided_at, survivor.household_id
           FROM household_projection h
           JOIN household_projection survivor
             ON survivor.household_id = coalesce(h.merged_into, h.household_id)
           JOIN household_projection member
             ON coalesce(member.merged_into, member.household_id) = survivor.household_id
           JOIN entitlements e ON e.household_id = member.household_id
           WHERE h.household_id = $1
           ORDER BY e.assessed_at DESC LIMIT 1""",
        household_id,
    )
    if row is None:
        return None
    found = dict(row)
    found["explanation"] = json.loads(found["explanation"])
    return found


# ---- cycles ----------------------------------------------------------------------------------


async def candidates(
    conn: Connection,
    *,
    adm1_pcodes: Sequence[str],
    first_month: int,
    last_month: int,
    modality: str,
) -> list[Candidate]:
    """Every eligible household of the oblasts (a merged household counts as the one that
    stays, with the latest assessed entitlement among them), with what holds it back."""
    rows = await conn.fetch(
        """WITH effective AS (
               SELECT DISTINCT ON (coalesce(h.merged_into, h.household_id))
                      coalesce(h.merged_into, h.household_id) AS household_id,
                      e.monthly_amount, e.priority, e.assessed_at
               FROM entitlements e JOIN household_projection h USING (household_id)
               WHERE e.eligible
               ORDER BY coalesce(h.merged_into, h.household_id), e.assessed_at DESC
           )
           SELECT e.*,
                  EXISTS (SELECT 1 FROM household_months m
                          WHERE m.household_id = e.household_id
                            AND m.month BETWEEN $2 AND $3) AS assisted,
                  EXISTS (SELECT 1 FROM other_assistance o
                          JOIN household_projection oh ON oh.household_id = o.household_id
                          WHERE coalesce(oh.merged_into, oh.household_id) = e.household_id
                            AND o.first_month <= $3 AND o.last_month >= $2) AS rental,
                  (SELECT min(o.agency) FROM agency_overlaps o
                   JOIN household_projection oh ON oh.household_id = o.household_id
                   WHERE coalesce(oh.merged_into, oh.household_id) = e.household_id
                     AND o.first_month <= $3 AND o.last_month >= $2) AS other_agency,
                  EXISTS (SELECT 1 FROM payments p JOIN cycles c USING (cycle_id)
                          WHERE p.household_id = e.household_id AND p.status = 'unclaimed'
                            AND c.modality = $4) AS unclaimed_before
           FROM effective e JOIN household_projection h USING (household_id)
           WHERE h.adm1_pcode = ANY($1::text[])""",
        list(adm1_pcodes),
        first_month,
        last_month,
        modality,
    )
    found = []
    for row in rows:
        hold = None
        if row["assisted"]:
            hold = "already_assisted_in_period"
        elif row["other_agency"] is not None:
            hold = "assisted_by_another_agency"
        flags = tuple(
            flag
            for flag, raised in (
                ("shelter_rental_assistance_same_months", row["rental"]),
                ("unclaimed_before_by_this_modality", row["unclaimed_before"]),
            )
            if raised
        )
        found.append(
            Candidate(
                household_id=row["household_id"],
                monthly_amount=row["monthly_amount"],
                priority=row["priority"],
                assessed_at=row["assessed_at"],
                hold=hold,
                flags=flags,
            )
        )
    return found


async def insert_cycle(conn: Connection, **cycle: Any) -> None:
    columns = ", ".join(cycle)
    values = ", ".join(
        f"${i}::jsonb" if name == "opened_envelope" else f"${i}"
        for i, name in enumerate(cycle, start=1)
    )
    await conn.execute(
        f"INSERT INTO cycles (status, {columns}) VALUES ('proposed', {values})",
        *cycle.values(),
    )


async def insert_lines(conn: Connection, cycle_id: UUID, lines: Sequence[Line]) -> None:
    await conn.copy_records_to_table(
        "cycle_lines",
        columns=("cycle_id", "household_id", "rank", "amount", "status", "reason", "flags"),
        records=[
            (cycle_id, li.household_id, li.rank, li.amount, li.status.value, li.reason, li.flags)
            for li in lines
        ],
    )


async def cycle(conn: Connection, cycle_id: UUID, *, for_update: bool = False) -> Any:
    return await conn.fetchrow(
        "SELECT * FROM cycles WHERE cycle_id = $1" + (" FOR UPDATE" if for_update else ""),
        cycle_id,
    )


async def line_counts(conn: Connection, cycle_id: UUID) -> dict[str, tuple[int, Decimal]]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n, coalesce(sum(amount), 0) AS total FROM cycle_lines"
        " WHERE cycle_id = $1 GROUP BY status",
        cycle_id,
    )
    return {row["status"]: (row["n"], row["total"]) for row in rows}


async def lines(
    conn: Connection, cycle_id: UUID, *, status: str | None, limit: int, offset: int
) -> list[Any]:
    return await conn.fetch(
        """SELECT l.*, p.payment_id, p.status AS payment_status FROM cycle_lines l
           LEFT JOIN payments p ON p.cycle_id = l.cycle_id AND p.household_id = l.household_id
           WHERE l.cycle_id = $1 AND ($2::text IS NULL OR l.status = $2)
           ORDER BY l.status = 'held', l.rank, l.household_id LIMIT $3 OFFSET $4""",
        cycle_id,
        status,
        limit,
        offset,
    )


async def hold_assisted(
    conn: Connection, cycle_id: UUID, *, first_month: int, last_month: int
) -> int:
    """Hold the proposed households paid for a month of the cycle since it was proposed
    (by another cycle approved in between). Under `lock_months`."""
    status = await conn.execute(
        """UPDATE cycle_lines l SET status = 'held', reason = 'already_assisted_in_period',
                  rank = NULL
           WHERE l.cycle_id = $1 AND l.status = 'proposed' AND EXISTS (
               SELECT 1 FROM household_months m
               WHERE m.household_id = l.household_id AND m.month BETWEEN $2 AND $3)""",
        cycle_id,
        first_month,
        last_month,
    )
    return int(status.split()[-1])


async def proposed_with_causes(conn: Connection, cycle_id: UUID) -> list[Any]:
    """The proposed lines, each with the envelope of the need that entitles it."""
    return await conn.fetch(
        """SELECT DISTINCT ON (l.household_id) l.household_id, l.amount, e.need_envelope
           FROM cycle_lines l
           JOIN household_projection h
             ON coalesce(h.merged_into, h.household_id) = l.household_id
           JOIN entitlements e ON e.household_id = h.household_id
           WHERE l.cycle_id = $1 AND l.status = 'proposed'
           ORDER BY l.household_id, e.assessed_at DESC""",
        cycle_id,
    )


async def insert_payments(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Payments (`payment_id, cycle_id, household_id, amount, first_month, months,
    instructed_envelope`) and the months they cover, in two COPYs and one INSERT."""
    await conn.copy_records_to_table(
        "payments",
        columns=(
            "payment_id",
            "cycle_id",
            "household_id",
            "amount",
            "first_month",
            "months",
            "instructed_envelope",
            "status",
        ),
        records=[(*row, "instructed") for row in rows],
    )
    await conn.execute(
        """INSERT INTO household_months (household_id, month, payment_id)
           SELECT p.household_id, m, p.payment_id
           FROM payments p, generate_series(p.first_month, p.first_month + p.months - 1) m
           WHERE p.payment_id = ANY($1::uuid[])""",
        [row[0] for row in rows],
    )


async def mark_approved(
    conn: Connection,
    cycle_id: UUID,
    *,
    approved_by: str,
    approved_by_org: str,
    approved_at: datetime,
    payments: int,
    total: Decimal,
) -> None:
    await conn.execute(
        """UPDATE cycles SET status = 'approved', approved_by = $2, approved_by_org = $3,
                  approved_at = $4, payments = $5, total = $6 WHERE cycle_id = $1""",
        cycle_id,
        approved_by,
        approved_by_org,
        approved_at,
        payments,
        total,
    )


async def follow_merge(conn: Connection, *, survivor: UUID, merged: UUID) -> int:
    """The months paid to a merged household count for the one that stays. Returns how
    many months both had been paid for (double assistance found by the merge)."""
    status = await conn.execute(
        """INSERT INTO household_months (household_id, month, payment_id)
           SELECT $1, month, payment_id FROM household_months WHERE household_id = $2
           ON CONFLICT (household_id, month) DO NOTHING""",
        survivor,
        merged,
    )
    moved = int(status.split()[-1])
    total: int = await conn.fetchval(
        "SELECT count(*) FROM household_months WHERE household_id = $1", merged
    )
    return total - moved


# ---- payments and reports --------------------------------------------------------------------


async def instructed(conn: Connection, cycle_id: UUID) -> dict[UUID, Instructed]:
    rows = await conn.fetch(
        "SELECT payment_id, amount, status FROM payments WHERE cycle_id = $1 FOR UPDATE",
        cycle_id,
    )
    return {r["payment_id"]: Instructed(r["payment_id"], r["amount"], r["status"]) for r in rows}


async def payments_for_report(conn: Connection, payment_ids: Sequence[UUID]) -> list[Any]:
    """The payments a report settles, with their cause and their household's facts."""
    return await conn.fetch(
        """SELECT p.payment_id, p.household_id, p.amount, p.months, p.instructed_envelope,
                  survivor.size, survivor.adm1_pcode, survivor.adm2_pcode, survivor.adm3_pcode
           FROM payments p
           JOIN household_projection h ON h.household_id = p.household_id
           JOIN household_projection survivor
             ON survivor.household_id = coalesce(h.merged_into, h.household_id)
           WHERE p.payment_id = ANY($1::uuid[])""",
        list(payment_ids),
    )


async def settle(conn: Connection, report_id: UUID, outcomes: Sequence[tuple[Any, ...]]) -> None:
    """Record each payment's outcome (`payment_id, status, reason, paid_at`); a payment
    not paid gives its months back."""
    ids, statuses, reasons, paid_at = zip(*outcomes, strict=True) if outcomes else ([],) * 4
    await conn.execute(
        """UPDATE payments p SET status = o.status, reason = o.reason, paid_at = o.paid_at,
                  report_id = $5
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
                AS o (payment_id, status, reason, paid_at)
           WHERE p.payment_id = o.payment_id""",
        list(ids),
        list(statuses),
        list(reasons),
        list(paid_at),
        report_id,
    )
    await conn.execute(
        "DELETE FROM household_months WHERE payment_id = ANY($1::uuid[])",
        [o[0] for o in outcomes if o[1] != "paid"],
    )


async def report_by_hash(conn: Connection, cycle_id: UUID, sha256: str) -> Any:
    return await conn.fetchrow(
        "SELECT report_id, result FROM reports WHERE cycle_id = $1 AND sha256 = $2",
        cycle_id,
        sha256,
    )


async def insert_report(
    conn: Connection,
    *,
    report_id: UUID,
    cycle_id: UUID,
    sha256: str,
    imported_by: str,
    imported_at: datetime,
    result: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO reports (report_id, cycle_id, sha256, imported_by, imported_at, result)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        report_id,
        cycle_id,
        sha256,
        imported_by,
        imported_at,
        json.dumps(result),
    )


async def report(conn: Connection, cycle_id: UUID, report_id: UUID) -> Any:
    return await conn.fetchrow(
        "SELECT result FROM reports WHERE cycle_id = $1 AND report_id = $2", cycle_id, report_id
    )


# ---- other sectors ---------------------------------------------------------------------------


async def record_other_assistance(
    conn: Connection,
    *,
    delivery_id: UUID,
    household_id: UUID,
    activity: str,
    first_month: int,
    last_month: int,
) -> None:
    await conn.execute(
        "INSERT INTO other_assistance (delivery_id, household_id, activity, first_month,"
        " last_month) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO NOTHING",
        delivery_id,
        household_id,
        activity,
        first_month,
        last_month,
    )


async def record_overlap(
    conn: Connection,
    *,
    overlap_id: UUID,
    household_id: UUID,
    agency: str,
    sector: str,
    first_month: int,
    last_month: int,
    found_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO agency_overlaps (overlap_id, household_id, agency, sector, first_month,"
        " last_month, found_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (overlap_id) DO NOTHING",
        overlap_id,
        household_id,
        agency,
        sector,
        first_month,
        last_month,
        found_at,
    )


async def withhold(conn: Connection, payment_id: UUID, *, reason: str) -> bool:
    """A payment registration left out of the provider's file: not made, its months free
    again. False if it was not waiting for its outcome (unknown, or already settled)."""
    withheld = await conn.fetchval(
        "UPDATE payments SET status = 'withheld', reason = $2"
        " WHERE payment_id = $1 AND status = 'instructed' RETURNING payment_id",
        payment_id,
        reason,
    )
    if withheld is None:
        return False
    await conn.execute("DELETE FROM household_months WHERE payment_id = $1", payment_id)
    return True
