"""Other agencies' lists of assisted people: matched by lookup, overlaps published (issue 24).

An agency sends the keyed hashes of its beneficiaries' document numbers (interagency.py).
Each hash is looked up among the blind indexes registration keeps of its own documents'
inter-agency hashes (document_index.interagency_index): nothing is decrypted, and nothing
of the list is kept but its counts. Each household found (a merged one's survivor; never an
erased one) gets one AssistanceOverlapFound per list, with ids only; cash holds or reduces
its entitlement. The same list sent again is the same list (its id derives from its
content): households already found are not announced again, households registered since
are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

import asyncpg
import structlog
from aidmesh_contracts import AssistanceOverlapFound
from aidmesh_contracts.base import Event
from aidmesh_contracts.envelope import Envelope
from aidmesh_runtime.transaction import Tx

from .crypto import Vault
from .domain import Conflict
from .interagency import AssistanceListIn

log = structlog.get_logger(__name__)

#: uuid5 namespace of list ids (a list's id is derived from what it says).
LIST_NAMESPACE = UUID("5b0c2a8e-3f61-4d7a-9a57-2f1c0e6d4b91")
#: Indexes looked up per query.
LOOKUP_BATCH = 50_000

NO_SHARED_KEY = (
    "registration has no inter-agency key, so it cannot match other agencies' lists: set"
    " AIDMESH_REGISTRATION_INTERAGENCY_KEY (or ..._FILE) to the key the agencies agreed on"
    " (base64 of at least 32 bytes) and restart the service"
)


def list_id_of(assistance: AssistanceListIn, agency: str, hashes: Sequence[str]) -> UUID:
    """The list's id: the same agency, sector, months and hashes give the same id."""
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    what = f"{agency}|{assistance.sector.value}|{assistance.first_month}|{assistance.months}"
    return uuid5(LIST_NAMESPACE, f"{what}|{digest}")


def overlap_id_of(list_id: UUID, household_id: UUID) -> UUID:
    """Stable per list and household: a redelivered AssistanceOverlapFound is recognised."""
    return uuid5(list_id, str(household_id))


@dataclass(frozen=True)
class Matched:
    list_id: UUID
    hashes: int
    matched_households: int
    #: Households announced now (not found in an earlier sending of the same list).
    new_overlaps: int


async def match_list(
    tx: Tx, assistance: AssistanceListIn, *, agency: str, vault: Vault, received_by: str
) -> Matched:
    """Match a list by lookup and publish an AssistanceOverlapFound per household found
    (409 `interagency_key_missing` when registration has no shared key)."""
    key_id = vault.interagency_key_id
    if key_id is None:
        raise Conflict(NO_SHARED_KEY, code="interagency_key_missing")
    hashes = assistance.distinct_hashes()
    list_id = list_id_of(assistance, agency, hashes)
    households = await _households_matching(
        tx.conn, vault.indexes("interagency", hashes), key_id=key_id
    )
    now = tx.now()
    await tx.conn.execute(
        """INSERT INTO assistance_lists (list_id, agency, sector, first_month, months, hashes,
               matched_households, received_by, received_at, matched_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
           ON CONFLICT (list_id) DO UPDATE SET matched_households = $7, received_by = $8,
               matched_at = $9""",
        list_id,
        agency,
        assistance.sector.value,
        assistance.first_month,
        assistance.months,
        len(hashes),
        len(households),
        received_by,
        now,
    )
    new = await _new_overlaps(tx.conn, list_id, households, at=now)
    events: list[Event] = [
        AssistanceOverlapFound(
            overlap_id=overlap_id_of(list_id, household_id),
            household_id=household_id,
            list_id=list_id,
            agency=agency,
            sector=assistance.sector,
            first_month=assistance.first_month,
            months=assistance.months,
            found_at=now,
        )
        for household_id in new
    ]
    if events:
        # One flow per list: the first overlap starts it, the others continue it.
        first = await tx.publish(events[0])
        rest: list[tuple[Event, Envelope | None]] = [(e, first) for e in events[1:]]
        await tx.publish_many(rest)
    log.info(
        "assistance_list_matched",
        list_id=str(list_id),
        agency=agency,
        sector=assistance.sector.value,
        hashes=len(hashes),
        matched_households=len(households),
        new_overlaps=len(new),
    )
    return Matched(
        list_id=list_id,
        hashes=len(hashes),
        matched_households=len(households),
        new_overlaps=len(new),
    )


async def _households_matching(
    conn: asyncpg.Connection, indexes: Sequence[str], *, key_id: str
) -> list[UUID]:
    """Households holding a document whose inter-agency index is among `indexes` (a merged
    one counted as the household it was merged into; erased ones have no index left)."""
    found: set[UUID] = set()
    for start in range(0, len(indexes), LOOKUP_BATCH):
        rows = await conn.fetch(
            """SELECT DISTINCT CASE WHEN h.status = 'merged' THEN h.merged_into
                                    ELSE h.household_id END AS household_id
               FROM document_index d JOIN households h ON h.household_id = d.household_id
               WHERE d.interagency_index = ANY($1::text[]) AND d.interagency_key_id = $2
                 AND h.status <> 'erased'""",
            list(indexes[start : start + LOOKUP_BATCH]),
            key_id,
        )
        found.update(r["household_id"] for r in rows)
    return sorted(found)


async def _new_overlaps(
    conn: asyncpg.Connection, list_id: UUID, households: Sequence[UUID], *, at: datetime
) -> list[UUID]:
    """Record the overlaps of a list; the households not recorded for it before."""
    rows = await conn.fetch(
        """INSERT INTO assistance_overlaps (overlap_id, list_id, household_id, found_at)
           SELECT o, $1, h, $4 FROM unnest($2::uuid[], $3::uuid[]) AS t (o, h)
           ON CONFLICT DO NOTHING RETURNING household_id""",
        list_id,
        [overlap_id_of(list_id, h) for h in households],
        list(households),
        at,
    )
    return sorted(r["household_id"] for r in rows)
