"""The sectors' household projection on the real database: a consent that names one
financial service provider (issue 24) is registration's business, not consent in general."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest
from aidmesh_contracts import (
    ConsentPurpose,
    ConsentRecorded,
    ConsentWithdrawn,
    Envelope,
    HouseholdRegistered,
    NeedAssessed,
    Sector,
)
from aidmesh_contracts.base import Event
from aidmesh_contracts.envelope import new_envelope
from aidmesh_contracts.examples import example
from aidmesh_runtime.consumer import Handler, HandlerContext
from aidmesh_runtime.db import load_migrations, migrate
from aidmesh_runtime.outbox import Outbox
from aidmesh_runtime.projections import households
from aidmesh_runtime.projections.households import HouseholdFacts

pytestmark = pytest.mark.integration

SOURCE = "/aidmesh/runtime-tests"


@pytest.fixture(scope="module")
async def projection_pool(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """The session database with the household projection's tables."""
    async with pool.acquire() as conn:
        await migrate(conn, load_migrations(*households.MIGRATIONS))
    yield pool


class Projection:
    """The cash sector's projection handlers, each event handled in its own transaction,
    as the consumer would; the withdrawals its hook saw."""

    def __init__(self, pool: asyncpg.Pool, outbox: Outbox) -> None:
        self.pool = pool
        self.outbox = outbox
        self.withdrawals_seen: list[ConsentWithdrawn] = []

        async def nothing_to_do(
            need: NeedAssessed, cause: Envelope, household: HouseholdFacts, ctx: HandlerContext
        ) -> None:
            return None

        async def stop_sharing(event: ConsentWithdrawn, ctx: HandlerContext) -> None:
            self.withdrawals_seen.append(event)

        self.handlers: dict[type[Event], Handler] = households.need_handlers(
            Sector.CASH, nothing_to_do, on_consent_withdrawn=stop_sharing
        )

    async def handle(self, event: Event) -> None:
        envelope = new_envelope(event, source=SOURCE, time=datetime.now(UTC))
        async with self.pool.acquire() as conn, conn.transaction():
            ctx = HandlerContext(conn=conn, envelope=envelope, outbox=self.outbox)
            await self.handlers[type(event)](event, ctx)

    async def register(self, *consents: ConsentPurpose) -> UUID:
        payload = example(HouseholdRegistered.event_type)
        payload["household_id"] = str(uuid4())
        payload["consents"] = [c.value for c in consents]
        event = HouseholdRegistered.model_validate(payload)
        await self.handle(event)
        return event.household_id

    async def consents_of(self, household_id: UUID) -> frozenset[str]:
        async with self.pool.acquire() as conn:
            facts = await households.household_facts(conn, household_id)
        assert facts is not None
        return facts.consents


@pytest.fixture
def projection(projection_pool: asyncpg.Pool, outbox: Outbox) -> Projection:
    return Projection(projection_pool, outbox)


def recorded(household_id: UUID, purpose: ConsentPurpose, recipient: str | None) -> ConsentRecorded:
    return ConsentRecorded(
        consent_id=uuid4(),
        household_id=household_id,
        purpose=purpose,
        recipient=recipient,
        recorded_by="IOM-KH",
        recorded_at=datetime.now(UTC),
    )


def withdrawn(
    household_id: UUID, purpose: ConsentPurpose, recipient: str | None
) -> ConsentWithdrawn:
    return ConsentWithdrawn(
        consent_id=uuid4(),
        household_id=household_id,
        purpose=purpose,
        recipient=recipient,
        recorded_by="IOM-KH",
        withdrawn_at=datetime.now(UTC),
    )


async def test_consent_to_share_with_one_provider_is_not_consent_to_share_in_general(
    projection: Projection,
) -> None:
    household_id = await projection.register(ConsentPurpose.REGISTRATION)

    await projection.handle(recorded(household_id, ConsentPurpose.DATA_SHARING, "privatbank"))

    assert await projection.consents_of(household_id) == {"registration"}


async def test_a_general_consent_to_data_sharing_is_projected(projection: Projection) -> None:
    household_id = await projection.register(ConsentPurpose.REGISTRATION)

    await projection.handle(recorded(household_id, ConsentPurpose.DATA_SHARING, None))

    assert await projection.consents_of(household_id) == {"registration", "data_sharing"}


async def test_withdrawing_one_providers_consent_keeps_the_general_one_and_stops_nothing(
    projection: Projection,
) -> None:
    household_id = await projection.register(
        ConsentPurpose.REGISTRATION, ConsentPurpose.DATA_SHARING
    )

    await projection.handle(withdrawn(household_id, ConsentPurpose.DATA_SHARING, "privatbank"))

    assert await projection.consents_of(household_id) == {"registration", "data_sharing"}
    assert projection.withdrawals_seen == []


async def test_withdrawing_the_general_consent_removes_it_and_tells_the_sector(
    projection: Projection,
) -> None:
    household_id = await projection.register(
        ConsentPurpose.REGISTRATION, ConsentPurpose.DATA_SHARING
    )
    withdrawal = withdrawn(household_id, ConsentPurpose.DATA_SHARING, None)

    await projection.handle(withdrawal)

    assert await projection.consents_of(household_id) == {"registration"}
    assert projection.withdrawals_seen == [withdrawal]
