"""Seal what was written in clear before migration 0004 (ADR 0010).

SQL migrations cannot encrypt: the KEK never enters the database. So the service, when
it starts (after its migrations, before its consumer and API), and the import command
run `seal_plaintext_rows`: households still without a sealed row get their data key,
their personal data sealed, their blind indexes and blocking keys computed, and their
plaintext columns cleared; then the intake submissions still holding answers in clear.

One runner at a time (an advisory lock): a replica starting while another one seals waits
until it is done, then finds nothing left, so no replica serves while a row is still in
clear, and the service's readers read sealed rows only. One batch per transaction, so an
interruption (which releases the lock) only leaves the rest for the next runner. On a
database created after 0004 it finds nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import structlog
from aidmesh_runtime.db import holds_session_state

from . import repository
from .crypto import KeyDestroyed, Vault
from .domain import Household, HouseholdStatus

log = structlog.get_logger(__name__)

BATCH = 500
#: pg_advisory_lock(BACKFILL_LOCK, 0): held by the runner for the whole backfill.
BACKFILL_LOCK = 21063


async def seal_plaintext_rows(
    conn: asyncpg.Connection, vault: Vault, *, now: datetime | None = None, batch: int = BATCH
) -> None:
    at = now or datetime.now(UTC)
    holds_session_state(conn)
    await conn.execute("SELECT pg_advisory_lock($1, 0)", BACKFILL_LOCK)
    try:
        households = submissions = 0
        while sealed := await _seal_households(conn, vault, at=at, batch=batch):
            households += sealed
            log.info("plaintext_households_sealed", households=households)
        while sealed := await _seal_submissions(conn, vault, batch=batch):
            submissions += sealed
            log.info("plaintext_submissions_sealed", submissions=submissions)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, 0)", BACKFILL_LOCK)


async def _seal_households(
    conn: asyncpg.Connection, vault: Vault, *, at: datetime, batch: int
) -> int:
    async with conn.transaction():
        ids = [
            r["household_id"]
            for r in await conn.fetch(
                "SELECT household_id FROM households WHERE sealed IS NULL AND status <> 'erased'"
                " ORDER BY household_id LIMIT $1 FOR NO KEY UPDATE",
                batch,
            )
        ]
        if not ids:
            return 0
        households = await repository.unsealed_households(conn, ids)
        keys = {}
        for household in households:
            key, wrapped = vault.new_household_key(household.household_id)
            keys[household.household_id] = key
            await repository.insert_household_key(
                conn, household.household_id, wrapped, kek_id=vault.kek_id, at=at
            )
        await conn.executemany(
            "UPDATE households SET sealed = $2, phone_index = $3, address = NULL, phone = NULL"
            " WHERE household_id = $1",
            [
                (
                    h.household_id,
                    repository.sealed_household(keys[h.household_id], h),
                    repository.phone_index(vault, h.phone),
                )
                for h in households
            ],
        )
        await conn.executemany(
            "UPDATE members SET sealed = $2, name_keys = $3, full_name = NULL,"
            " family_name = NULL, given_name = NULL, patronymic = NULL,"
            " family_name_latin = NULL, given_name_latin = NULL, patronymic_latin = NULL,"
            " date_of_birth = NULL, document_number = NULL WHERE member_id = $1",
            [
                (
                    m.member_id,
                    repository.sealed_member(keys[h.household_id], m),
                    repository.name_index(vault, m.name_keys()),
                )
                for h in households
                for m in h.members
            ],
        )
        await repository.insert_document_index(
            conn,
            vault,
            [
                (m.member_id, h.household_id, d)
                for h in households
                for m in h.members
                for d in m.documents
            ],
        )
        await conn.execute("DELETE FROM documents WHERE household_id = ANY($1::uuid[])", ids)
        # Blocking keys as blind indexes (households written before 0002 had none at all).
        await _replace_blocking_keys(conn, vault, ids, households)
    return len(ids)


async def _replace_blocking_keys(
    conn: asyncpg.Connection, vault: Vault, ids: list[UUID], households: list[Household]
) -> None:
    """The stored blocking keys of these households, as dedup computes them today."""
    await conn.execute("DELETE FROM blocking_keys WHERE household_id = ANY($1::uuid[])", ids)
    await conn.copy_records_to_table(
        "blocking_keys",
        columns=("block_key", "household_id"),
        records=[
            (block, h.household_id)
            for h in households
            if h.status is HouseholdStatus.ACTIVE and h.members
            for block in sorted(repository.block_index(vault, h.blocking_keys()))
        ],
    )


async def _seal_submissions(conn: asyncpg.Connection, vault: Vault, *, batch: int) -> int:
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT s.partner_org, s.submission_id, s.household_id, s.answers,"
            " k.wrapped_key, k.kek_id"
            " FROM intake_submissions s"
            " LEFT JOIN household_keys k ON k.household_id = s.household_id"
            " WHERE s.answers IS NOT NULL"
            # Households are sealed first; one without a key (a row that is no household's
            # any more) has no key to seal with: left as it is, not read by the service.
            " AND (s.household_id IS NULL OR k.household_id IS NOT NULL)"
            " ORDER BY s.partner_org, s.submission_id"
            " LIMIT $1 FOR UPDATE OF s",
            batch,
        )
        if not rows:
            return 0
        updates = []
        for row in rows:
            key = None
            if row["household_id"] is not None:
                try:
                    key = vault.open_household_key(
                        row["household_id"], row["wrapped_key"], kek_id=row["kek_id"]
                    )
                except KeyDestroyed:
                    updates.append((row["partner_org"], row["submission_id"], None))
                    continue
            answers = json.loads(row["answers"])
            updates.append(
                (
                    row["partner_org"],
                    row["submission_id"],
                    repository.seal_answers(
                        vault,
                        key,
                        partner_org=row["partner_org"],
                        submission_id=row["submission_id"],
                        answers=answers,
                    ),
                )
            )
        await conn.executemany(
            "UPDATE intake_submissions SET answers_sealed = $3, answers = NULL"
            " WHERE partner_org = $1 AND submission_id = $2",
            updates,
        )
    return len(rows)


async def rebuild_blocking_keys(
    conn: asyncpg.Connection,
    vault: Vault,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute the stored blocking keys of every active household, after
    dedup.profile_keys changed (a new key finds old households only once they have it).
    One batch per transaction, households locked while their keys are replaced; returns
    how many households were done. Safe to run beside the service and to run again."""
    after, done = UUID(int=0), 0
    while True:
        async with conn.transaction():
            ids = [
                r["household_id"]
                for r in await conn.fetch(
                    "SELECT household_id FROM households WHERE status = 'active'"
                    " AND household_id > $1 ORDER BY household_id LIMIT $2 FOR NO KEY UPDATE",
                    after,
                    batch,
                )
            ]
            if not ids:
                return done
            households = await repository.load_households(conn, ids, vault=vault)
            await _replace_blocking_keys(conn, vault, ids, households)
        after, done = ids[-1], done + len(ids)
        log.info("blocking_keys_rebuilt", households=done)
        if progress is not None:
            progress(len(ids))


# ---- inter-agency hashes of documents stored before the shared key (issue 24) -------------

#: pg_advisory_lock(BACKFILL_LOCK, INTERAGENCY_LOCK): one runner at a time.
INTERAGENCY_LOCK = 24


async def hash_documents_for_other_agencies(
    conn: asyncpg.Connection, vault: Vault, *, batch: int = BATCH
) -> int:
    """Give every indexed document its inter-agency index under the configured shared key:
    documents stored before registration had one (or under an earlier shared key). The
    numbers are sealed, so their households are opened here, a batch per transaction, once;
    matching a list never decrypts (overlaps.py). Nothing to do without a shared key or
    once done; returns how many households were done."""
    current = vault.interagency_key_id
    if current is None:
        return 0
    holds_session_state(conn)
    await conn.execute("SELECT pg_advisory_lock($1, $2)", BACKFILL_LOCK, INTERAGENCY_LOCK)
    done = 0
    try:
        while True:
            async with conn.transaction():
                ids = [
                    r["household_id"]
                    for r in await conn.fetch(
                        "SELECT DISTINCT household_id FROM document_index"
                        " WHERE interagency_key_id IS DISTINCT FROM $1"
                        " ORDER BY household_id LIMIT $2",
                        current,
                        batch,
                    )
                ]
                if not ids:
                    return done
                await repository.lock_households(conn, ids)
                households = await repository.load_households(conn, ids, vault=vault)
                await conn.executemany(
                    "UPDATE document_index SET interagency_index = $4, interagency_key_id = $5"
                    " WHERE member_id = $1 AND kind = $2 AND number_index = $3",
                    [
                        (m.member_id, *repository.document_index_row(vault, d))
                        for h in households
                        for m in h.members
                        for d in m.documents
                    ],
                )
                # A row whose document no member holds any more (none should be): marked
                # done without an index, so that the loop ends.
                await conn.execute(
                    "UPDATE document_index SET interagency_index = NULL, interagency_key_id = $2"
                    " WHERE household_id = ANY($1::uuid[])"
                    " AND interagency_key_id IS DISTINCT FROM $2",
                    ids,
                    current,
                )
            done += len(ids)
            log.info("interagency_hashes_computed", households=done)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", BACKFILL_LOCK, INTERAGENCY_LOCK)
