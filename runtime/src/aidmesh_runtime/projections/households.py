"""The household projection: a sector's local copy of the household topic's facts.

Sectors decide with it (location, size, vulnerability, consent) instead of calling
registration. Events on different topics have no order between them, so a need may arrive
before its household: `need_handlers` keeps such a need pending and acts on it when the
household lands, whichever comes first, exactly once.

HouseholdUpdated, ConsentRecorded, ConsentWithdrawn and HouseholdMerged keep the projection
current, and a sector may react to a merge or a withdrawal with its own hooks (re-point its
cases, stop sharing). A consent that names a recipient (data sharing with one financial
service provider, issue 24) is registration's business only: it changes neither the
projection's consents nor runs the withdrawal hook. HouseholdErased counts as the withdrawal of every consent: the
projection keeps its facts (ids, codes, counts) with no consent left, and the sector's
withdrawal hook runs once per purpose. After a merge, `household_facts` of the merged id answers with the
household that stays: act on `household.household_id`, not on the event's id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from aidmesh_contracts import (
    ConsentPurpose,
    ConsentRecorded,
    ConsentWithdrawn,
    Envelope,
    HouseholdErased,
    HouseholdMerged,
    HouseholdRegistered,
    HouseholdUpdated,
    Location,
    NeedAssessed,
    Sector,
)
from aidmesh_contracts.base import Event

from ..consumer import Handler, HandlerContext

if TYPE_CHECKING:
    from ..db import Connection

MIGRATIONS = ("household_projection", Path(__file__).parent / "household_migrations")


@dataclass(frozen=True)
class HouseholdFacts:
    household_id: UUID
    location: Location
    displacement_status: str
    size: int
    vulnerabilities: frozenset[str]
    consents: frozenset[str]


#: What a sector does with a need once its household is known. `cause` is the need's
#: envelope: events the action publishes should be caused by it.
NeedAction = Callable[[NeedAssessed, Envelope, HouseholdFacts, HandlerContext], Awaitable[None]]
#: A sector's reaction to a merge (re-point its cases) after the projection has followed it.
MergeHook = Callable[[HouseholdMerged, HandlerContext], Awaitable[None]]
#: A sector's reaction to a withdrawn consent (stop sharing, close open referrals).
ConsentHook = Callable[[ConsentWithdrawn, HandlerContext], Awaitable[None]]


def need_handlers(
    sector: Sector,
    act: NeedAction,
    *,
    on_merged: MergeHook | None = None,
    on_consent_withdrawn: ConsentHook | None = None,
) -> dict[type[Event], Handler]:
    """Handlers that keep the household projection, join a sector's needs with it, then `act`."""

    async def on_need_assessed(event: NeedAssessed, ctx: HandlerContext) -> None:
        if event.sector is not sector:
            return
        # The household's lock (see _lock_household) is taken by the insert itself.
        await ctx.conn.execute(
            f"{_LOCKING_2} INSERT INTO pending_need (assessment_id, household_id, payload, "
            "envelope) SELECT $1, $2, $3::jsonb, $4::jsonb FROM locked "
            "ON CONFLICT (assessment_id) DO NOTHING",
            event.assessment_id,
            event.household_id,
            event.model_dump_json(),
            ctx.envelope.model_dump_json(),
        )
        await _act_on_waiting_needs(event.household_id, ctx)

    async def on_household_registered(event: HouseholdRegistered, ctx: HandlerContext) -> None:
        await project_household(event, ctx)  # under the household's lock
        await _act_on_waiting_needs(event.household_id, ctx)

    async def _act_on_waiting_needs(household_id: UUID, ctx: HandlerContext) -> None:
        household = await household_facts(ctx.conn, household_id)
        if household is None:
            return  # the need waits for its household
        waiting = await ctx.conn.fetch(
            "SELECT assessment_id, payload, envelope FROM pending_need "
            "WHERE acted_at IS NULL AND (household_id = $1 OR household_id IN ("
            "  SELECT household_id FROM household_projection WHERE merged_into = $1)) "
            "ORDER BY received_at FOR UPDATE",
            household.household_id,
        )
        for row in waiting:
            need = NeedAssessed.model_validate_json(row["payload"])
            cause = Envelope.model_validate_json(row["envelope"])
            await act(need, cause, household, ctx)
            await ctx.conn.execute(
                "UPDATE pending_need SET acted_at = now() WHERE assessment_id = $1",
                row["assessment_id"],
            )

    async def on_household_updated(event: HouseholdUpdated, ctx: HandlerContext) -> None:
        await _lock_household(event.household_id, ctx)
        await project_update(event, ctx)

    async def on_consent_recorded(event: ConsentRecorded, ctx: HandlerContext) -> None:
        if event.recipient is not None:
            return  # consent to share with one provider is no consent to share in general
        await _lock_household(event.household_id, ctx)
        await ctx.conn.execute(
            "UPDATE household_projection SET consents = ARRAY(SELECT DISTINCT unnest("
            "array_append(consents, $2)) ORDER BY 1), last_event_id = $3 WHERE household_id = $1",
            event.household_id,
            event.purpose.value,
            ctx.envelope.id,
        )

    async def forget_consent(event: ConsentWithdrawn, ctx: HandlerContext) -> None:
        if event.recipient is not None:
            # Withdrawing one provider's consent leaves the general consent (and what the
            # sector shares under it) as it was: the sector's hook has nothing to stop.
            return
        await _lock_household(event.household_id, ctx)
        await ctx.conn.execute(
            "UPDATE household_projection SET consents = array_remove(consents, $2),"
            " last_event_id = $3 WHERE household_id = $1",
            event.household_id,
            event.purpose.value,
            ctx.envelope.id,
        )
        if on_consent_withdrawn is not None:
            await on_consent_withdrawn(event, ctx)

    async def on_household_erased(event: HouseholdErased, ctx: HandlerContext) -> None:
        # Registration destroyed the household's personal data: from now on it is as if
        # every consent had been withdrawn (the facts stay, as history).
        await _lock_household(event.household_id, ctx)
        await ctx.conn.execute(
            "UPDATE household_projection SET consents = '{}', last_event_id = $2"
            " WHERE household_id = $1 OR household_id = ANY($3::uuid[])",
            event.household_id,
            ctx.envelope.id,
            sorted(event.merged_household_ids),
        )
        if on_consent_withdrawn is None:
            return
        for purpose in ConsentPurpose:
            await on_consent_withdrawn(
                ConsentWithdrawn(
                    # Stable across redeliveries: one id per erasure and purpose.
                    consent_id=uuid5(ctx.envelope.id, purpose.value),
                    household_id=event.household_id,
                    purpose=purpose,
                    recorded_by=event.requested_by,
                    withdrawn_at=event.erased_at,
                ),
                ctx,
            )

    async def on_household_merged(event: HouseholdMerged, ctx: HandlerContext) -> None:
        for household_id in sorted((event.household_id, event.merged_household_id)):
            await _lock_household(household_id, ctx)  # in one order: no deadlock
        await ctx.conn.execute(
            "UPDATE household_projection SET merged_into = $1, last_event_id = $3"
            " WHERE household_id = $2",
            event.household_id,
            event.merged_household_id,
            ctx.envelope.id,
        )
        # The merge is keyed by the household that stays, the duplicate's registration by
        # its own id: a consumer catching up may read the merge first. The duplicate then
        # gets a row already pointing at the survivor (its registration, when it comes,
        # fills in its facts and leaves merged_into alone), or it would never follow.
        await ctx.conn.execute(
            """INSERT INTO household_projection (household_id, adm1_pcode, adm2_pcode,
                   adm3_pcode, displacement_status, size, vulnerabilities, consents,
                   registered_at, last_event_id, merged_into)
               SELECT $2, adm1_pcode, adm2_pcode, adm3_pcode, displacement_status, size,
                      vulnerabilities, consents, registered_at, $3, $1
               FROM household_projection WHERE household_id = $1
               ON CONFLICT (household_id) DO NOTHING""",
            event.household_id,
            event.merged_household_id,
            ctx.envelope.id,
        )
        # Households merged earlier into the one now merged away follow it (no chains).
        await ctx.conn.execute(
            "UPDATE household_projection SET merged_into = $1 WHERE merged_into = $2",
            event.household_id,
            event.merged_household_id,
        )
        if on_merged is not None:
            await on_merged(event, ctx)
        await _act_on_waiting_needs(event.household_id, ctx)

    return {
        NeedAssessed: on_need_assessed,
        HouseholdRegistered: on_household_registered,
        HouseholdUpdated: on_household_updated,
        ConsentRecorded: on_consent_recorded,
        ConsentWithdrawn: forget_consent,
        HouseholdMerged: on_household_merged,
        HouseholdErased: on_household_erased,
    }


#: The household's lock (as `_lock_household` takes it, the household id being $1 or $2)
#: taken by the statement that begins with it: the first write of a handler takes it
#: without a round trip of its own. Only a write may: its snapshot is taken before the
#: lock is granted, so what must see the other half of the join reads in a later
#: statement.
_LOCKING_1 = "WITH locked AS (SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0)))"
_LOCKING_2 = "WITH locked AS (SELECT pg_advisory_xact_lock(hashtextextended($2::uuid::text, 0)))"


async def lock_household(conn: Connection, household_id: UUID) -> None:
    """The household's lock, for every service: held until the transaction ends, so
    everything about one household (its projection's events, the needs and referrals that
    wait for it, a use case reading its consents) is serialised across handlers, requests
    and replicas. Statements after it (READ COMMITTED) see what the other transaction
    committed. The same key as `_LOCKING_1/2`, which take it inside a write."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", str(household_id))


async def _lock_household(household_id: UUID, ctx: HandlerContext) -> None:
    """Serialise the two halves of the join for one household. Without it, two replicas
    handling the need and the household at once could each miss the other's uncommitted
    row, and the need would wait forever."""
    await lock_household(ctx.conn, household_id)


async def project_household(event: HouseholdRegistered, ctx: HandlerContext) -> None:
    """Upsert the household's facts (a replayed event changes nothing), taking the
    household's lock (held until the transaction ends) in the same statement."""
    await ctx.conn.execute(
        _LOCKING_1
        + """ INSERT INTO household_projection (household_id, adm1_pcode, adm2_pcode,
               adm3_pcode, displacement_status, size, vulnerabilities, consents,
               registered_at, last_event_id)
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM locked
           ON CONFLICT (household_id) DO UPDATE SET
               adm1_pcode = EXCLUDED.adm1_pcode, adm2_pcode = EXCLUDED.adm2_pcode,
               adm3_pcode = EXCLUDED.adm3_pcode,
               displacement_status = EXCLUDED.displacement_status, size = EXCLUDED.size,
               vulnerabilities = EXCLUDED.vulnerabilities, consents = EXCLUDED.consents,
               registered_at = EXCLUDED.registered_at, last_event_id = EXCLUDED.last_event_id
           -- a registration replayed (from a DLQ) after updates must not undo them
           WHERE household_projection.updated_at IS NULL""",
        event.household_id,
        event.location.adm1_pcode,
        event.location.adm2_pcode,
        event.location.adm3_pcode,
        event.displacement_status.value,
        event.size,
        sorted(v.value for v in event.vulnerabilities),
        sorted(c.value for c in event.consents),
        event.registered_at,
        ctx.envelope.id,
    )


async def project_update(event: HouseholdUpdated, ctx: HandlerContext) -> None:
    """Apply a household's new shareable facts (an update before its registration is kept
    as the projection's first state; the registration, when it comes, does not undo it)."""
    await ctx.conn.execute(
        """INSERT INTO household_projection (household_id, adm1_pcode, adm2_pcode, adm3_pcode,
               displacement_status, size, vulnerabilities, consents, registered_at,
               last_event_id, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, '{}', $8, $9, $8)
           ON CONFLICT (household_id) DO UPDATE SET
               adm1_pcode = EXCLUDED.adm1_pcode, adm2_pcode = EXCLUDED.adm2_pcode,
               adm3_pcode = EXCLUDED.adm3_pcode,
               displacement_status = EXCLUDED.displacement_status, size = EXCLUDED.size,
               vulnerabilities = EXCLUDED.vulnerabilities,
               last_event_id = EXCLUDED.last_event_id, updated_at = EXCLUDED.updated_at""",
        event.household_id,
        event.location.adm1_pcode,
        event.location.adm2_pcode,
        event.location.adm3_pcode,
        event.displacement_status.value,
        event.size,
        sorted(v.value for v in event.vulnerabilities),
        event.updated_at,
        ctx.envelope.id,
    )


async def household_facts(conn: Connection, household_id: UUID) -> HouseholdFacts | None:
    """The household's facts; for a merged household, those of the household that stays."""
    row = await conn.fetchrow(
        "SELECT survivor.* FROM household_projection h"
        " JOIN household_projection survivor"
        "   ON survivor.household_id = coalesce(h.merged_into, h.household_id)"
        " WHERE h.household_id = $1",
        household_id,
    )
    if row is None:
        return None
    return HouseholdFacts(
        household_id=row["household_id"],
        location=Location(
            adm1_pcode=row["adm1_pcode"],
            adm2_pcode=row["adm2_pcode"],
            adm3_pcode=row["adm3_pcode"],
        ),
        displacement_status=row["displacement_status"],
        size=row["size"],
        vulnerabilities=frozenset(row["vulnerabilities"]),
        consents=frozenset(row["consents"]),
    )
