"""Registration use cases: each one transaction of domain rows plus outbox rows.

A use case gets a `Unit`: the transaction's connection, the outbox, the time and the id
factory, and what caused it (an HTTP request starts a flow; an intake event continues the
partner's). It loads, decides with the domain, saves and adds its events, all in that one
transaction, so that a change and its events commit together or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

import structlog
from aidmesh_contracts import (
    ConsentPurpose,
    ConsentRecorded,
    ConsentWithdrawn,
    DuplicateReason,
    DuplicateSuspected,
    Envelope,
    HouseholdErased,
    HouseholdMerged,
)
from aidmesh_contracts.base import Event
from aidmesh_runtime.service import Runtime
from aidmesh_runtime.transaction import Tx

from . import dedup, repository
from .crypto import HouseholdKey, Vault
from .domain import (
    Conflict,
    ConsentIn,
    ConsentRecord,
    ConsentWithdrawalIn,
    ErasureIn,
    Gone,
    Household,
    HouseholdIn,
    HouseholdPatch,
    HouseholdStatus,
    NotFound,
    SuspicionStatus,
    apply_patch,
    changed_needs,
    changes,
    consents_after_merge,
    documents_to_carry,
    household_registered,
    household_updated,
    needs_assessed,
    screening_of,
)

log = structlog.get_logger(__name__)


@dataclass(kw_only=True)
class Unit(Tx):
    """One transaction of a use case (the runtime's `Tx`: its connection, outbox and cause,
    the IntakeSubmitted that caused it, if any), with what registration adds: one time for
    the whole unit, the vault, and the events it emitted (the first one causes the rest)."""

    #: The unit's time: every record and event of the unit says the same instant.
    at: datetime
    default_assessor: str
    #: Seals and opens personal data, computes blind indexes (crypto.py).
    vault: Vault
    #: The flow to join when nothing caused this work (an HTTP X-Correlation-ID).
    correlation_id: UUID | None = None
    events: list[Envelope] = field(default_factory=list)
    #: Data keys of the households this unit opened (loaded or registered).
    keys: dict[UUID, HouseholdKey] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.at

    async def key(self, household_id: UUID) -> HouseholdKey:
        """The household's data key (KeyDestroyed if it was erased)."""
        found = self.keys.get(household_id)
        if found is None:
            found = await repository.household_key(self.conn, self.vault, household_id)
            self.keys[household_id] = found
        return found

    async def load(self, household_ids: list[UUID]) -> list[Household]:
        return await repository.load_households(
            self.conn, household_ids, vault=self.vault, keys=self.keys
        )

    async def emit(self, event: Event, *, caused_by: Envelope | None = None) -> Envelope:
        """Add an event to the outbox. Without an explicit cause, the first event of the
        unit (or what caused the unit) is the cause, so one unit is one flow."""
        cause = caused_by or self.cause or (self.events[0] if self.events else None)
        envelope = await self.publish(
            event, caused_by=cause, correlation_id=None if cause else self.correlation_id
        )
        self.events.append(envelope)
        return envelope


@contextlib.asynccontextmanager
async def unit_of_work(
    runtime: Runtime, *, correlation_id: UUID | None = None
) -> AsyncIterator[Unit]:
    """A Unit on a fresh transaction of the runtime's pool: commit on success, roll back
    on any exception (nothing stored, nothing published)."""
    async with runtime.transaction() as tx:
        yield Unit(
            conn=tx.conn,
            outbox=tx.outbox,
            at=tx.now(),
            default_assessor=runtime.settings.default_assessor,  # type: ignore[attr-defined]
            vault=vault_of(runtime),
            correlation_id=correlation_id,
        )


def vault_of(runtime: Runtime) -> Vault:
    """The service's vault, which the composition root put in the runtime (app.py)."""
    vault: Vault = runtime.extras["vault"]
    return vault


# ---- register ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    household_id: UUID
    correlation_id: UUID
    events: list[Envelope]
    #: Suspicions of duplication queued for review.
    suspicions: list[UUID]


async def register(unit: Unit, household_in: HouseholdIn) -> Registered:
    """Store a household; publish HouseholdRegistered, one NeedAssessed per need, and a
    DuplicateSuspected per household it may duplicate.

    The HouseholdRegistered event starts the flow (unless the work was caused by an intake
    event): every later event about this registration, in any service, carries its
    correlation id and a causation chain to it.
    """
    household = household_in.to_household(
        household_id=unit.new_id(),
        member_ids=[unit.new_id() for _ in household_in.members],
        registered_at=unit.now(),
    )
    keys = repository.block_index(unit.vault, household.blocking_keys())
    await repository.lock_blocking_keys(unit.conn, keys)
    registered = await unit.emit(
        household_registered(household, household_id=household.household_id, now=unit.now())
    )
    key, wrapped = unit.vault.new_household_key(household.household_id)
    unit.keys[household.household_id] = key
    await repository.insert_household_key(
        unit.conn, household.household_id, wrapped, kek_id=unit.vault.kek_id, at=unit.now()
    )
    await repository.insert_household(
        unit.conn,
        household,
        key=key,
        vault=unit.vault,
        screening=screening_of(household, today=unit.now().date()),
        correlation_id=registered.correlationid,
    )
    # Over HTTP both are the caller's token's org (api._attributed_household); from intake,
    # the submitting partner's.
    recorded_by = household_in.partner_org or household_in.assessed_by or unit.default_assessor
    await repository.insert_consents(
        unit.conn,
        [
            ConsentRecord(
                consent_id=unit.new_id(),
                household_id=household.household_id,
                purpose=purpose,
                recorded_by=recorded_by,
                recorded_at=unit.now(),
            )
            for purpose in sorted(household.consents)
        ],
    )
    # Consent to sharing with a provider is not in HouseholdRegistered's `consents` (the
    # purposes in general): each is its own ConsentRecorded, naming the provider.
    for fsp in sorted(household.data_sharing_with):
        await _record(
            unit,
            ConsentRecord(
                consent_id=unit.new_id(),
                household_id=household.household_id,
                purpose=ConsentPurpose.DATA_SHARING,
                recipient=fsp,
                recorded_by=recorded_by,
                recorded_at=unit.now(),
            ),
            caused_by=registered,
        )
    needs = needs_assessed(
        household_in,
        household_id=household.household_id,
        assessment_ids=[unit.new_id() for _ in household_in.needs],
        now=unit.now(),
        default_assessor=unit.default_assessor,
    )
    await repository.insert_needs(unit.conn, needs)
    for need in needs:
        await unit.emit(need, caused_by=registered)
    suspicions = await check_duplicates(unit, household, keys=keys, caused_by=registered)
    log.info(
        "household_registered",
        household_id=str(household.household_id),
        channel=household.channel.value,
        size=household.size,
    )
    return Registered(
        household_id=household.household_id,
        correlation_id=registered.correlationid,
        events=list(unit.events),
        suspicions=suspicions,
    )


# ---- deduplicate -------------------------------------------------------------------------


async def check_duplicates(
    unit: Unit,
    household: Household,
    *,
    keys: frozenset[str] | None = None,
    caused_by: Envelope | None = None,
) -> list[UUID]:
    """Store the household's blocking keys, compare it with the households sharing one,
    queue each new suspicion for review and publish it (reasons only, never values).

    `keys` are blind indexes of the blocking keys (repository.block_index): the table
    holds no name or date; the candidates are decrypted to be scored."""
    if keys is None:
        keys = repository.block_index(unit.vault, household.blocking_keys())
    await repository.lock_blocking_keys(unit.conn, keys)
    await repository.set_blocking_keys(unit.conn, household.household_id, keys)
    ids = await repository.candidate_ids(unit.conn, keys, excluding=household.household_id)
    if not ids:
        return []
    candidates = await unit.load(ids)
    by_id = {c.household_id: c for c in candidates}
    found = []
    matches = dedup.find_duplicates(household.candidate(), [c.candidate() for c in candidates])
    for match in matches[: dedup.MAX_SUSPICIONS]:
        other = by_id[match.candidate_household_id]
        # The newer registration is the suspect; the earlier one its candidate.
        newer, earlier = (
            (household, other)
            if (household.registered_at, str(household.household_id))
            >= (other.registered_at, str(other.household_id))
            else (other, household)
        )
        suspicion_id = unit.new_id()
        inserted = await repository.insert_suspicion(
            unit.conn,
            suspicion_id=suspicion_id,
            household_id=newer.household_id,
            candidate_household_id=earlier.household_id,
            score=match.score,
            reasons=[r.value for r in match.reasons],
            detected_at=unit.now(),
        )
        if not inserted:
            continue  # this pair is already queued, or was dismissed or resolved
        await unit.emit(
            DuplicateSuspected(
                suspicion_id=suspicion_id,
                household_id=newer.household_id,
                candidate_household_id=earlier.household_id,
                score=match.score,
                reasons=frozenset(DuplicateReason(r) for r in match.reasons),
                detected_at=unit.now(),
            ),
            caused_by=caused_by,
        )
        found.append(suspicion_id)
        log.info(
            "duplicate_suspected",
            suspicion_id=str(suspicion_id),
            household_id=str(newer.household_id),
            candidate_household_id=str(earlier.household_id),
            score=match.score,
            reasons=sorted(r.value for r in match.reasons),
        )
    return found


# ---- update ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Updated:
    household_id: UUID
    changed: frozenset[str]
    needs_changed: int
    events: list[Envelope]


async def active_household(unit: Unit, household_id: UUID) -> Household:
    await repository.lock_households(unit.conn, [household_id])
    found = await unit.load([household_id])
    if not found:
        raise NotFound(f"household {household_id} not found")
    household = found[0]
    refuse_unless_active(household)
    return household


def refuse_unless_active(household: Household) -> None:
    """Gone when erased, Conflict when merged: neither can be changed."""
    refuse_if_erased(household)
    if household.status is HouseholdStatus.MERGED:
        raise Conflict(
            f"household {household.household_id} was already merged into {household.merged_into}"
        )


def refuse_if_erased(household: Household) -> None:
    if household.status is HouseholdStatus.ERASED:
        raise Gone(f"household {household.household_id} was erased")


async def update(
    unit: Unit,
    household_id: UUID,
    patch: HouseholdPatch,
    *,
    before: Household | None = None,
) -> Updated:
    """Apply a change; publish HouseholdUpdated with the whole shareable state and what
    changed, a NeedAssessed per need that changed, and DuplicateSuspected for new matches.
    Nothing changed: nothing is written or published."""
    before = before or await active_household(unit, household_id)
    after = apply_patch(before, patch, new_member_id=unit.new_id)
    today = unit.now().date()
    changed = changes(before, after, today=today)
    needs_in = changed_needs(
        patch.needs or [], await repository.current_needs(unit.conn, household_id)
    )
    if not changed and not needs_in:
        return Updated(household_id=household_id, changed=changed, needs_changed=0, events=[])
    cause = None
    if changed:
        await repository.update_household(
            unit.conn,
            after,
            key=await unit.key(household_id),
            vault=unit.vault,
            screening=screening_of(after, today=today),
            updated_at=unit.now(),
            members_changed="members" in changed,
        )
        cause = await unit.emit(
            household_updated(
                after,
                changed=changed,
                now=unit.now(),
                channel=patch.channel,
                partner_org=patch.partner_org,
            )
        )
    needs = needs_assessed(
        patch,
        household_id=household_id,
        assessment_ids=[unit.new_id() for _ in needs_in],
        now=unit.now(),
        default_assessor=unit.default_assessor,
        needs=needs_in,
    )
    await repository.insert_needs(unit.conn, needs)
    for need in needs:
        await unit.emit(need, caused_by=cause)
    if changed & {"members", "contact", "location"}:
        await check_duplicates(unit, after, caused_by=cause)
    log.info(
        "household_updated",
        household_id=str(household_id),
        changed=sorted(changed),
        needs=len(needs),
    )
    return Updated(
        household_id=household_id,
        changed=changed,
        needs_changed=len(needs),
        events=list(unit.events),
    )


# ---- consent -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentChanged:
    consent_id: UUID
    household_id: UUID
    purpose: ConsentPurpose
    recorded_by: str
    at: datetime
    event: Envelope

    recipient: str | None = None


def _consented_to(purpose: ConsentPurpose, recipient: str | None) -> str:
    return purpose.value if recipient is None else f"{purpose.value} with {recipient}"


def _active(
    records: Sequence[ConsentRecord], purpose: ConsentPurpose, recipient: str | None
) -> ConsentRecord | None:
    """The active record of a consent: to the purpose in general (no recipient), or to
    data sharing with one provider; each is given and withdrawn on its own."""
    return next(
        (r for r in records if r.purpose is purpose and r.recipient == recipient and r.active),
        None,
    )


async def _record(
    unit: Unit, record: ConsentRecord, *, caused_by: Envelope | None = None
) -> Envelope:
    """Store a consent record and publish ConsentRecorded (with its recipient, if any)."""
    await repository.insert_consents(unit.conn, [record])
    return await unit.emit(
        ConsentRecorded(
            consent_id=record.consent_id,
            household_id=record.household_id,
            purpose=record.purpose,
            recipient=record.recipient,
            recorded_by=record.recorded_by,
            recorded_at=record.recorded_at,
        ),
        caused_by=caused_by,
    )


async def record_consent(unit: Unit, household_id: UUID, consent: ConsentIn) -> ConsentChanged:
    await active_household(unit, household_id)
    records = await repository.consent_records(unit.conn, household_id)
    if _active(records, consent.purpose, consent.recipient) is not None:
        what = _consented_to(consent.purpose, consent.recipient)
        raise Conflict(f"consent for {what} is already recorded")
    record = ConsentRecord(
        consent_id=unit.new_id(),
        household_id=household_id,
        purpose=consent.purpose,
        recipient=consent.recipient,
        recorded_by=consent.recorded_by,
        recorded_at=unit.now(),
    )
    event = await _record(unit, record)
    log.info(
        "consent_recorded",
        household_id=str(household_id),
        purpose=consent.purpose.value,
        recipient=consent.recipient,
    )
    return ConsentChanged(
        record.consent_id,
        household_id,
        record.purpose,
        record.recorded_by,
        unit.now(),
        event,
        record.recipient,
    )


async def withdraw_consent(
    unit: Unit,
    household_id: UUID,
    purpose: ConsentPurpose,
    withdrawal: ConsentWithdrawalIn,
) -> ConsentChanged:
    await active_household(unit, household_id)
    records = await repository.consent_records(unit.conn, household_id)
    recipient = withdrawal.recipient
    active = _active(records, purpose, recipient)
    if active is None:
        raise Conflict(f"there is no consent for {_consented_to(purpose, recipient)} to withdraw")
    await repository.end_consent(
        unit.conn, active.consent_id, by=withdrawal.recorded_by, at=unit.now(), reason="withdrawn"
    )
    event = await unit.emit(
        ConsentWithdrawn(
            consent_id=active.consent_id,
            household_id=household_id,
            purpose=purpose,
            recipient=recipient,
            recorded_by=withdrawal.recorded_by,
            withdrawn_at=unit.now(),
        )
    )
    log.info(
        "consent_withdrawn",
        household_id=str(household_id),
        purpose=purpose.value,
        recipient=recipient,
    )
    return ConsentChanged(
        active.consent_id,
        household_id,
        purpose,
        withdrawal.recorded_by,
        unit.now(),
        event,
        recipient,
    )


# ---- duplicates: merge or dismiss -------------------------------------------------------


@dataclass(frozen=True)
class Merged:
    household_id: UUID  # the survivor
    merged_household_id: UUID
    suspicion_id: UUID | None
    events: list[Envelope]


async def merge(
    unit: Unit,
    *,
    merged_id: UUID,
    survivor_id: UUID,
    decided_by: str,
    suspicion_id: UUID | None = None,
) -> Merged:
    """Merge a duplicate into the household that stays; publish HouseholdMerged.

    The merged household keeps its record (GET says where it went) but leaves dedup and
    search; documents of its members who are the survivor's members too move over; the
    household's latest consent decision per purpose holds for the survivor (ConsentRecorded
    or ConsentWithdrawn on the survivor when that changes its consents); other open
    suspicions about it are superseded and the survivor is checked again.
    """
    if merged_id == survivor_id:
        raise Conflict("a household cannot be merged into itself")
    await repository.lock_households(unit.conn, [merged_id, survivor_id])
    households = {h.household_id: h for h in await unit.load([merged_id, survivor_id])}
    for household_id in (merged_id, survivor_id):
        household = households.get(household_id)
        if household is None:
            raise NotFound(f"household {household_id} not found")
        refuse_unless_active(household)
    merged, survivor = households[merged_id], households[survivor_id]

    merged_event = await unit.emit(
        HouseholdMerged(
            household_id=survivor_id,
            merged_household_id=merged_id,
            suspicion_id=suspicion_id,
            decided_by=decided_by,
            merged_at=unit.now(),
        )
    )
    await repository.mark_merged(
        unit.conn, merged=merged_id, survivor=survivor_id, merged_at=unit.now()
    )
    await repository.set_blocking_keys(unit.conn, merged_id, [])

    carried = documents_to_carry(survivor, merged)

    await _merge_consents(
        unit,
        merged_id=merged_id,
        survivor_id=survivor_id,
        decided_by=decided_by,
        cause=merged_event,
    )

    if suspicion_id is not None:
        await repository.resolve_suspicion(
            unit.conn,
            suspicion_id,
            status=SuspicionStatus.MERGED,
            by=decided_by,
            at=unit.now(),
            survivor=survivor_id,
        )
    await repository.supersede_suspicions(unit.conn, merged_id, by=decided_by, at=unit.now())
    if carried:
        # The survivor's members who are the merged household's too gain its documents:
        # sealed again with the survivor's key (the merged household keeps its own).
        survivor = replace(
            survivor,
            members=tuple(
                replace(
                    m,
                    documents=m.documents
                    + tuple(d for o, d in carried if o.member_id == m.member_id),
                )
                for m in survivor.members
            ),
        )
        gaining = {member.member_id for member, _ in carried}
        await repository.add_documents(
            unit.conn,
            key=await unit.key(survivor_id),
            vault=unit.vault,
            members=[m for m in survivor.members if m.member_id in gaining],
            new=[(member.member_id, document) for member, document in carried],
        )
    await check_duplicates(unit, survivor, caused_by=merged_event)
    log.info(
        "household_merged",
        household_id=str(survivor_id),
        merged_household_id=str(merged_id),
        documents_carried=len(carried),
    )
    return Merged(
        household_id=survivor_id,
        merged_household_id=merged_id,
        suspicion_id=suspicion_id,
        events=list(unit.events),
    )


async def _merge_consents(
    unit: Unit, *, merged_id: UUID, survivor_id: UUID, decided_by: str, cause: Envelope
) -> None:
    survivor_records = await repository.consent_records(unit.conn, survivor_id)
    merged_records = await repository.consent_records(unit.conn, merged_id)
    plan = consents_after_merge(survivor_records, merged_records)
    for given in plan.record:
        record = replace(given, consent_id=unit.new_id(), household_id=survivor_id)
        await _record(unit, record, caused_by=cause)
    for active, withdrawal in plan.withdraw:
        assert withdrawal.withdrawn_at is not None
        by = withdrawal.withdrawn_by or decided_by
        await repository.end_consent(
            unit.conn, active.consent_id, by=by, at=withdrawal.withdrawn_at, reason="withdrawn"
        )
        await unit.emit(
            ConsentWithdrawn(
                consent_id=active.consent_id,
                household_id=survivor_id,
                purpose=active.purpose,
                recipient=active.recipient,
                recorded_by=by,
                withdrawn_at=withdrawal.withdrawn_at,
            ),
            caused_by=cause,
        )
    for record in merged_records:
        if record.active:
            await repository.end_consent(
                unit.conn, record.consent_id, by=decided_by, at=unit.now(), reason="merged"
            )


async def open_suspicion(unit: Unit, suspicion_id: UUID) -> repository.Suspicion:
    suspicion = await repository.get_suspicion(unit.conn, suspicion_id, for_update=True)
    if suspicion is None:
        raise NotFound(f"suspicion {suspicion_id} not found")
    if suspicion.status is not SuspicionStatus.OPEN:
        raise Conflict(f"suspicion {suspicion_id} is already {suspicion.status.value}")
    return suspicion


async def merge_suspected(
    unit: Unit, suspicion_id: UUID, *, decided_by: str, survivor_id: UUID | None
) -> Merged:
    """Resolve a suspicion by merging: by default the earlier registration stays."""
    suspicion = await open_suspicion(unit, suspicion_id)
    pair = (suspicion.household_id, suspicion.candidate_household_id)
    survivor_id = survivor_id or suspicion.candidate_household_id
    if survivor_id not in pair:
        raise Conflict("the household that stays must be one of the suspected pair")
    merged_id = pair[0] if survivor_id == pair[1] else pair[1]
    return await merge(
        unit,
        merged_id=merged_id,
        survivor_id=survivor_id,
        decided_by=decided_by,
        suspicion_id=suspicion_id,
    )


async def dismiss(unit: Unit, suspicion_id: UUID, *, decided_by: str) -> repository.Suspicion:
    """Not the same household: the pair leaves the queue and is not raised again."""
    await open_suspicion(unit, suspicion_id)
    await repository.resolve_suspicion(
        unit.conn, suspicion_id, status=SuspicionStatus.DISMISSED, by=decided_by, at=unit.now()
    )
    log.info("duplicate_dismissed", suspicion_id=str(suspicion_id))
    suspicion = await repository.get_suspicion(unit.conn, suspicion_id)
    assert suspicion is not None
    return suspicion


# ---- erasure -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Erased:
    household_id: UUID
    #: Duplicates merged into it earlier, erased with it.
    merged_household_ids: list[UUID]
    erased_at: datetime
    event: Envelope


async def erase(unit: Unit, household_id: UUID, erasure: ErasureIn) -> Erased:
    """Erase a household's personal data by crypto-shredding; publish HouseholdErased.

    One transaction: its data key is destroyed (with the keys of the duplicates merged
    into it: the same people), so every sealed copy of its personal data (rows, WAL,
    backups) can never be read again; its blind indexes and blocking keys go, its consents
    end, open suspicions about it close, and it is marked erased. Ids, P-codes, counts,
    codes and timestamps stay, so the history told by the events stays whole. GET answers
    410 from then on; changes are refused with 410.
    """
    await repository.lock_households(unit.conn, [household_id])
    row = await repository.household_row(unit.conn, household_id)
    if row is None:
        raise NotFound(f"household {household_id} not found")
    if row["status"] == HouseholdStatus.ERASED.value:
        raise Gone(f"household {household_id} was already erased")
    merged = await repository.merged_into(unit.conn, household_id)
    await repository.lock_households(unit.conn, merged)
    event = await unit.emit(
        HouseholdErased(
            household_id=household_id,
            merged_household_ids=frozenset(merged),
            reason_code=erasure.reason_code.value,
            requested_by=erasure.requested_by,
            erased_at=unit.now(),
        )
    )
    await repository.erase(
        unit.conn,
        [household_id, *merged],
        at=unit.now(),
        by=erasure.requested_by,
        reason=erasure.reason_code.value,
    )
    for erased in (household_id, *merged):
        unit.keys.pop(erased, None)
    log.info(
        "household_erased",
        household_id=str(household_id),
        merged_households=len(merged),
        reason_code=erasure.reason_code.value,
        requested_by=erasure.requested_by,
    )
    return Erased(
        household_id=household_id,
        merged_household_ids=merged,
        erased_at=unit.now(),
        event=event,
    )
