"""Plain SQL for cash's payment instructions and the provider's files (migration 0007)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg
from aidmesh_contracts import Envelope, PaymentCycleApproved, PaymentInstructed, PaymentModality

from .payment_file import Cycle, Instruction


async def insert_cycle(
    conn: asyncpg.Connection, event: PaymentCycleApproved, *, received_at: datetime
) -> bool:
    """False when the approval was already stored (a redelivery)."""
    inserted = await conn.fetchval(
        """INSERT INTO payment_cycles (cycle_id, payments, total, approved_by, approved_at,
               received_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (cycle_id) DO NOTHING RETURNING 1""",
        event.cycle_id,
        event.payments,
        event.total.amount,
        event.approved_by,
        event.approved_at,
        received_at,
    )
    return inserted is not None


async def insert_instruction(
    conn: asyncpg.Connection,
    event: PaymentInstructed,
    *,
    envelope: Envelope,
    received_at: datetime,
) -> bool:
    """False when the instruction was already stored (a redelivery)."""
    inserted = await conn.fetchval(
        """INSERT INTO payment_instructions (payment_id, cycle_id, household_id, amount,
               currency, first_month, months, fsp, modality, instructed_at, received_at,
               envelope)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)
           ON CONFLICT (payment_id) DO NOTHING RETURNING 1""",
        event.payment_id,
        event.cycle_id,
        event.household_id,
        event.amount.amount,
        event.amount.currency,
        event.first_month,
        event.months,
        event.fsp,
        event.modality.value,
        event.instructed_at,
        received_at,
        envelope.model_dump_json(),
    )
    return inserted is not None


async def cycle(
    conn: asyncpg.Connection, cycle_id: UUID, *, for_update: bool = False
) -> Cycle | None:
    row = await conn.fetchrow(
        "SELECT cycle_id, payments, total, file_produced_at FROM payment_cycles"
        " WHERE cycle_id = $1" + (" FOR UPDATE" if for_update else ""),
        cycle_id,
    )
    return Cycle(**dict(row)) if row else None


async def received(conn: asyncpg.Connection, cycle_id: UUID) -> tuple[int, Decimal]:
    """How many of the cycle's instructions arrived, and what they add up to."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(amount), 0) AS total FROM payment_instructions"
        " WHERE cycle_id = $1",
        cycle_id,
    )
    return row["n"], row["total"]


@dataclass(frozen=True)
class StoredInstruction:
    instruction: Instruction
    envelope: str


async def instructions(conn: asyncpg.Connection, cycle_id: UUID) -> list[StoredInstruction]:
    rows = await conn.fetch(
        "SELECT payment_id, household_id, amount, currency, modality, fsp, envelope::text"
        " FROM payment_instructions WHERE cycle_id = $1 ORDER BY payment_id",
        cycle_id,
    )
    return [
        StoredInstruction(
            Instruction(
                payment_id=r["payment_id"],
                household_id=r["household_id"],
                amount=r["amount"],
                currency=r["currency"],
                modality=PaymentModality(r["modality"]),
                fsp=r["fsp"],
            ),
            r["envelope"],
        )
        for r in rows
    ]


async def payees(conn: asyncpg.Connection, household_ids: Sequence[UUID]) -> dict[UUID, UUID]:
    """Who is paid for each household registration knows: itself, or the household it was
    merged into (merges leave no chains: repository.mark_merged)."""
    rows = await conn.fetch(
        "SELECT household_id, CASE WHEN status = 'merged' THEN merged_into ELSE household_id"
        " END AS payee FROM households WHERE household_id = ANY($1::uuid[])",
        list(household_ids),
    )
    return {r["household_id"]: r["payee"] for r in rows}


async def insert_decisions(
    conn: asyncpg.Connection,
    cycle_id: UUID,
    decisions: Sequence[tuple[UUID, UUID, str | None]],
    *,
    at: datetime,
) -> None:
    """(payment, household, withheld reason or None) for each payment of the cycle, and the
    time its file was first produced."""
    await conn.copy_records_to_table(
        "payment_decisions",
        columns=("payment_id", "cycle_id", "household_id", "reason", "decided_at"),
        records=[(p, cycle_id, h, reason, at) for p, h, reason in decisions],
    )
    await conn.execute(
        "UPDATE payment_cycles SET file_produced_at = $2 WHERE cycle_id = $1", cycle_id, at
    )


async def included(conn: asyncpg.Connection, cycle_id: UUID) -> set[UUID]:
    """The payments the cycle's first file held."""
    rows = await conn.fetch(
        "SELECT payment_id FROM payment_decisions WHERE cycle_id = $1 AND reason IS NULL",
        cycle_id,
    )
    return {r["payment_id"] for r in rows}


@dataclass(frozen=True)
class Withheld:
    payment_id: UUID
    household_id: UUID
    reason: str
    withheld_at: datetime


async def withheld(conn: asyncpg.Connection, cycle_id: UUID) -> list[Withheld]:
    rows = await conn.fetch(
        "SELECT payment_id, household_id, reason, decided_at AS withheld_at"
        " FROM payment_decisions WHERE cycle_id = $1 AND reason IS NOT NULL"
        " ORDER BY payment_id",
        cycle_id,
    )
    return [Withheld(**dict(r)) for r in rows]


async def record_download(
    conn: asyncpg.Connection,
    *,
    download_id: UUID,
    cycle_id: UUID,
    downloaded_by: str,
    org: str,
    rows_written: int,
    rows_dropped: int,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO payment_file_downloads (download_id, cycle_id, downloaded_by, org,
               rows_written, rows_dropped, downloaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        download_id,
        cycle_id,
        downloaded_by,
        org,
        rows_written,
        rows_dropped,
        at,
    )
