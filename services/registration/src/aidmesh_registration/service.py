"""Registration use cases: each one transaction of domain rows plus outbox rows."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aidmesh_contracts import Envelope
from aidmesh_runtime.service import Runtime

from . import repository
from .domain import HouseholdIn, household_registered, needs_assessed


@dataclass(frozen=True)
class Registered:
    household_id: UUID
    correlation_id: UUID
    events: list[Envelope]


async def register_household(
    runtime: Runtime, household: HouseholdIn, *, correlation_id: UUID | None = None
) -> Registered:
    """Store a household and publish HouseholdRegistered plus one NeedAssessed per need.

    The HouseholdRegistered event starts the flow: every later event about this
    registration, in any service, carries its correlation id and a causation chain to it.
    """
    now = runtime.clock()
    household_id = runtime.new_id()
    registered = household_registered(household, household_id=household_id, now=now)
    needs = needs_assessed(
        household,
        household_id=household_id,
        assessment_ids=[runtime.new_id() for _ in household.needs],
        now=now,
        default_assessor=runtime.settings.default_assessor,  # type: ignore[attr-defined]
    )
    async with runtime.pool.acquire() as conn, conn.transaction():
        first = await runtime.outbox.add(conn, registered, correlation_id=correlation_id)
        await repository.insert_household(
            conn,
            household,
            household_id=household_id,
            member_ids=[runtime.new_id() for _ in household.members],
            registered_at=now,
            correlation_id=first.correlationid,
        )
        await repository.insert_needs(conn, needs)
        envelopes = [first] + [await runtime.outbox.add(conn, n, caused_by=first) for n in needs]
    return Registered(household_id=household_id, correlation_id=first.correlationid, events=envelopes)
