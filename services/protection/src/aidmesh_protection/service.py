"""Protection use cases behind the API, each in one transaction: load the case, check who
asks, decide (domain), save, write the outbox and the access log.

Every access to a case is logged in `case_access_log`, refusals too: the log row commits
even when the use case is refused (the refused change itself is rolled back to a savepoint).
Restricted text is sealed here, before any SQL, and opened here only for callers whose role
may read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar
from uuid import UUID

import structlog
from aidmesh_contracts import ReferralCompleted, ReferralRequested, Urgency
from aidmesh_runtime import rules
from aidmesh_runtime.projections.households import household_facts, lock_household
from aidmesh_runtime.service import Runtime
from aidmesh_runtime.transaction import Tx

from . import domain, repository
from .crypto import DecryptionFailed, Keyring
from .domain import Action, Actor, Case, Forbidden, Invalid, Refused, RiskLevel

log = structlog.get_logger(__name__)

T = TypeVar("T")

SAFE_CONTACT_FIELD = "protection_cases.safe_contact"


def note_field(note_id: UUID) -> str:
    """A note's field name in its associated data: a body opens only as its own note."""
    return f"case_notes.body/{note_id}"


class CaseNotFound(LookupError, rules.NotFound):
    pass


@dataclass(frozen=True)
class Protection:
    """What the use cases need: the running service, the data keys, the team's code."""

    runtime: Runtime
    keyring: Keyring
    team_code: str


@dataclass(frozen=True)
class Note:
    note_id: UUID
    kind: str
    author: str
    author_role: str
    written_at: datetime
    text: str | None  # None when withheld (auditor) or unreadable
    unreadable: bool = False


@dataclass(frozen=True)
class CaseView:
    case: Case
    restricted: bool  # whether notes and the safe contact were opened for the caller
    notes: list[Note]
    safe_contact: str | None
    referrals_out: list[dict[str, Any]]
    referrals_in: list[dict[str, Any]]


# ---- the access-logged frame every case use case runs in ---------------------------------


async def _on_case(
    app: Protection,
    actor: Actor,
    case_ref: str,
    action: Action,
    work: Callable[[Tx, Case], Awaitable[T]],
) -> T:
    """Load the case (locked), check the caller, run `work` and log the access, in one
    transaction. A refusal (no case, not allowed, not now) is logged and committed, then
    raised."""
    runtime = app.runtime
    failure: Exception | None = None
    result: T | None = None
    async with runtime.transaction() as tx:
        case = await repository.case_for_update(tx.conn, case_ref)
        if case is None:
            outcome, failure = "not_found", CaseNotFound(f"no protection case {case_ref}")
        elif (denial := domain.access_denial(actor, action, case)) is not None:
            outcome, failure = "denied", Forbidden(denial)
        else:
            try:
                async with tx.conn.transaction():  # a savepoint: a refusal undoes any write
                    result = await work(tx, case)
                outcome = "granted"
            except Forbidden as exc:
                outcome, failure = "denied", exc
            except (Refused, Invalid) as exc:
                outcome, failure = "refused", exc
        await repository.log_access(
            tx.conn,
            actor=actor,
            action=action,
            case_refs=[case_ref],
            outcome=outcome,
            at=tx.now(),
        )
    _log_outcome(actor, action, case_ref, outcome)
    if failure is not None:
        raise failure
    return result  # type: ignore[return-value]


def _log_outcome(actor: Actor, action: Action, case_ref: str | None, outcome: str) -> None:
    if outcome == "granted":
        return  # the access log has it; the service log is for what needs a look
    log.warning(
        "case_access_not_granted",
        case_ref=case_ref,
        action=action.value,
        outcome=outcome,
        user_id=actor.user_id,
        role=actor.role.value,
    )


async def _deny(app: Protection, actor: Actor, action: Action, reason: str) -> NoReturn:
    async with app.runtime.transaction() as tx:
        await repository.log_access(
            tx.conn,
            actor=actor,
            action=action,
            case_refs=[None],
            outcome="denied",
            at=tx.now(),
        )
    _log_outcome(actor, action, None, "denied")
    raise Forbidden(reason)


def _seal_note(
    app: Protection, case_ref: str, *, kind: str, text: str, actor: Actor
) -> repository.SealedNote:
    note_id = app.runtime.new_id()
    return repository.SealedNote(
        note_id=note_id,
        case_ref=case_ref,
        kind=kind,
        author=actor.user_id,
        author_role=actor.role.value,
        written_at=app.runtime.clock(),
        body=app.keyring.seal(text, case_ref=case_ref, field_name=note_field(note_id)),
    )


async def _transition(
    app: Protection,
    actor: Actor,
    case_ref: str,
    action: Action,
    decide: Callable[[Case], Case],
    *,
    note: str | None = None,
    note_kind: str = "note",
    then: Callable[[Tx, Case], Awaitable[None]] | None = None,
) -> Case:
    async def work(tx: Tx, case: Case) -> Case:
        changed = decide(case)
        await repository.save_case(tx.conn, changed, now=tx.now())
        if note:
            await repository.insert_note(
                tx.conn, _seal_note(app, case_ref, kind=note_kind, text=note, actor=actor)
            )
        if then is not None:
            await then(tx, changed)
        return changed

    return await _on_case(app, actor, case_ref, action, work)


# ---- intake ------------------------------------------------------------------------------


async def take_hotline_call(
    app: Protection,
    actor: Actor,
    *,
    call_id: UUID,
    severity: int,
    concern_codes: frozenset[str],
    narrative: str | None,
    safe_contact: str | None,
    household_id: UUID | None,
) -> tuple[Case, bool]:
    """A hotline call opens a case, anonymous or for a household; (case, whether new).

    The same call submitted again (a retry) returns its case and changes nothing.
    """
    if (denial := domain.access_denial(actor, Action.HOTLINE_INTAKE)) is not None:
        await _deny(app, actor, Action.HOTLINE_INTAKE, denial)
    async with app.runtime.transaction() as tx:
        # Two submissions of one call at once: the second waits, then finds the first.
        await tx.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", str(call_id))
        existing = await repository.case_of_hotline_call(tx.conn, call_id)
        if existing is not None:
            await repository.log_access(
                tx.conn,
                actor=actor,
                action=Action.HOTLINE_INTAKE,
                case_refs=[existing.case_ref],
                outcome="granted",
                at=tx.now(),
            )
            return existing, False
        if household_id is not None:
            await lock_household(tx.conn, household_id)
            household = await household_facts(tx.conn, household_id)
            household_id = household.household_id if household else household_id
        opened = domain.open_case_from_hotline(
            severity=severity,
            concern_codes=concern_codes,
            household_id=household_id,
            random_id=tx.new_id(),
            now=tx.now(),
        )
        case = domain.new_case(opened, caseworker=domain.hotline_caseworker(actor))
        envelope = await tx.publish(opened)
        await repository.insert_case(
            tx.conn,
            case,
            opened_envelope=envelope,
            hotline_call_id=call_id,
            safe_contact=app.keyring.seal(
                safe_contact, case_ref=case.case_ref, field_name=SAFE_CONTACT_FIELD
            )
            if safe_contact
            else None,
        )
        if narrative:
            await repository.insert_note(
                tx.conn, _seal_note(app, case.case_ref, kind="intake", text=narrative, actor=actor)
            )
        await repository.log_access(
            tx.conn,
            actor=actor,
            action=Action.HOTLINE_INTAKE,
            case_refs=[case.case_ref],
            outcome="granted",
            at=tx.now(),
        )
    log.info(
        "protection_case_opened",
        case_ref=case.case_ref,
        source=opened.source.value,
        anonymous=household_id is None,
    )
    return case, True


# ---- reading -----------------------------------------------------------------------------


async def view_case(app: Protection, actor: Actor, case_ref: str) -> CaseView:
    """The case as the caller's role may see it; notes are opened only for case workers
    and supervisors."""
    action = domain.view_for(actor)
    restricted = action is Action.VIEW_CASE

    async def work(tx: Tx, case: Case) -> CaseView:
        notes = [
            _open_note(app, sealed, restricted=restricted)
            for sealed in await repository.notes(tx.conn, case_ref)
        ]
        contact = None
        if restricted and (sealed_contact := await repository.safe_contact(tx.conn, case_ref)):
            contact = _open(app, sealed_contact, case_ref=case_ref, field_name=SAFE_CONTACT_FIELD)
        return CaseView(
            case=case,
            restricted=restricted,
            notes=notes,
            safe_contact=contact,
            referrals_out=await repository.referrals_out_of_case(tx.conn, case_ref),
            referrals_in=await repository.referrals_in_of_case(tx.conn, case_ref),
        )

    return await _on_case(app, actor, case_ref, action, work)


def _open_note(app: Protection, sealed: repository.SealedNote, *, restricted: bool) -> Note:
    text = None
    if restricted:
        text = _open(
            app, sealed.body, case_ref=sealed.case_ref, field_name=note_field(sealed.note_id)
        )
    return Note(
        note_id=sealed.note_id,
        kind=sealed.kind,
        author=sealed.author,
        author_role=sealed.author_role,
        written_at=sealed.written_at,
        text=text,
        unreadable=restricted and text is None,
    )


def _open(app: Protection, token: str, *, case_ref: str, field_name: str) -> str | None:
    """Open a value; an unreadable one (tampered, moved, or under a key not configured)
    is reported and withheld rather than failing the whole case."""
    try:
        return app.keyring.open(token, case_ref=case_ref, field_name=field_name)
    except DecryptionFailed as exc:
        log.error(
            "restricted_field_unreadable", case_ref=case_ref, field=field_name, reason=str(exc)
        )
        return None


async def list_cases(
    app: Protection,
    actor: Actor,
    *,
    status: domain.Status | None,
    unassigned: bool,
    limit: int,
    offset: int,
) -> list[Case]:
    """Cases the caller may see (a caseworker: their own), metadata only; each listed case
    is an access in the log."""
    own_only = actor.role is domain.Role.CASEWORKER
    if own_only and unassigned:
        return []
    async with app.runtime.transaction() as tx:
        cases = await repository.list_cases(
            tx.conn,
            caseworker=actor.user_id if own_only else None,
            status=status,
            unassigned=unassigned,
            limit=limit,
            offset=offset,
        )
        await repository.log_access(
            tx.conn,
            actor=actor,
            action=Action.LIST,
            case_refs=[c.case_ref for c in cases],
            outcome="granted",
            at=tx.now(),
        )
    return cases


async def read_access_log(
    app: Protection,
    actor: Actor,
    *,
    case_ref: str | None,
    user_id: str | None,
    after_id: int,
    limit: int,
) -> list[dict[str, Any]]:
    """The access log, for auditors; reading it is logged too."""
    if (denial := domain.access_denial(actor, Action.READ_ACCESS_LOG)) is not None:
        await _deny(app, actor, Action.READ_ACCESS_LOG, denial)
    async with app.runtime.transaction() as tx:
        await repository.log_access(
            tx.conn,
            actor=actor,
            action=Action.READ_ACCESS_LOG,
            case_refs=[case_ref],
            outcome="granted",
            at=tx.now(),
        )
        return await repository.access_log(
            tx.conn, case_ref=case_ref, user_id=user_id, after_id=after_id, limit=limit
        )


# ---- the lifecycle -----------------------------------------------------------------------


async def assign(app: Protection, actor: Actor, case_ref: str, *, caseworker: str) -> Case:
    return await _transition(
        app, actor, case_ref, Action.ASSIGN, lambda c: domain.assign(c, caseworker=caseworker)
    )


async def link_household(
    app: Protection, actor: Actor, case_ref: str, *, household_id: UUID
) -> Case:
    """An anonymous case gets its household (after a merge, the household that stays)."""

    async def work(tx: Tx, case: Case) -> Case:
        await lock_household(tx.conn, household_id)
        household = await household_facts(tx.conn, household_id)
        linked = domain.link_household(
            case, household_id=household.household_id if household else household_id
        )
        await repository.save_case(tx.conn, linked, now=tx.now())
        return linked

    return await _on_case(app, actor, case_ref, Action.LINK_HOUSEHOLD, work)


async def assess(
    app: Protection, actor: Actor, case_ref: str, *, risk_level: RiskLevel, note: str | None
) -> Case:
    return await _transition(
        app,
        actor,
        case_ref,
        Action.ASSESS,
        lambda c: domain.assess(c, risk_level=risk_level, by=actor),
        note=note,
        note_kind="assessment",
    )


async def propose_plan(app: Protection, actor: Actor, case_ref: str, *, note: str) -> Case:
    return await _transition(
        app,
        actor,
        case_ref,
        Action.PLAN,
        lambda c: domain.propose_plan(c, by=actor),
        note=note,
        note_kind="plan",
    )


async def review_plan(
    app: Protection, actor: Actor, case_ref: str, *, approve: bool, note: str | None
) -> Case:
    return await _transition(
        app,
        actor,
        case_ref,
        Action.REVIEW_PLAN,
        lambda c: domain.review_plan(c, approve=approve, by=actor),
        note=note,
        note_kind="plan_review",
    )


async def record_follow_up(app: Protection, actor: Actor, case_ref: str, *, note: str) -> Case:
    return await _transition(
        app,
        actor,
        case_ref,
        Action.FOLLOW_UP,
        domain.record_follow_up,
        note=note,
        note_kind="follow_up",
    )


async def add_note(app: Protection, actor: Actor, case_ref: str, *, note: str) -> Case:
    def decide(case: Case) -> Case:
        domain.can_take_note(case)
        return case

    return await _transition(app, actor, case_ref, Action.ADD_NOTE, decide, note=note)


async def request_closure(
    app: Protection, actor: Actor, case_ref: str, *, closure_code: str, note: str | None
) -> Case:
    return await _transition(
        app,
        actor,
        case_ref,
        Action.REQUEST_CLOSURE,
        lambda c: domain.request_closure(c, closure_code=closure_code, by=actor),
        note=note,
        note_kind="closure_request",
    )


async def review_closure(
    app: Protection, actor: Actor, case_ref: str, *, approve: bool, note: str | None
) -> Case:
    """A supervisor closes the case (ProtectionCaseClosed, and the referrals that brought
    the case to protection are completed) or sends it back where it was."""
    runtime = app.runtime

    def decide(case: Case) -> Case:
        reviewed, _ = domain.review_closure(case, approve=approve, by=actor, now=runtime.clock())
        return reviewed

    async def publish(tx: Tx, case: Case) -> None:
        if case.status is not domain.Status.CLOSED:
            return
        opened = await repository.opened_envelope(tx.conn, case_ref)
        await tx.publish(domain.closed_event(case), caused_by=opened)
        for row in await repository.accepted_referrals_in(tx.conn, case_ref):
            completed = ReferralCompleted(
                referral_id=row["referral_id"],
                household_id=row["household_id"],
                completed_by="protection",
                outcome_code="case_closed",
                completed_at=tx.now(),
            )
            await tx.publish(completed, caused_by=repository.envelope_of(row["envelope"]))
            await repository.complete_referral_in(tx.conn, row["referral_id"])

    return await _transition(
        app,
        actor,
        case_ref,
        Action.REVIEW_CLOSURE,
        decide,
        note=note,
        note_kind="closure_review",
        then=publish,
    )


# ---- referrals out -----------------------------------------------------------------------


async def refer(
    app: Protection,
    actor: Actor,
    case_ref: str,
    *,
    to: str,
    reason_code: str,
    urgency: Urgency,
) -> ReferralRequested:
    """Refer the case's household to another sector, with its consent to be referred."""

    async def work(tx: Tx, case: Case) -> ReferralRequested:
        household = None
        if case.household_id is not None:
            await lock_household(tx.conn, case.household_id)
            household = await household_facts(tx.conn, case.household_id)
        referral = domain.refer(
            case,
            household_id=household.household_id if household else None,
            household_consents=household.consents if household else None,
            to=to,
            reason_code=reason_code,
            urgency=urgency,
            referral_id=tx.new_id(),
            requested_by=app.team_code,
            now=tx.now(),
        )
        opened = await repository.opened_envelope(tx.conn, case_ref)
        envelope = await tx.publish(referral, caused_by=opened)
        await repository.insert_referral_out(
            tx.conn,
            case_ref=case_ref,
            referral=referral,
            requested_by=actor.user_id,
            envelope=envelope,
        )
        return referral

    referral = await _on_case(app, actor, case_ref, Action.REFER, work)
    log.info("referral_requested", case_ref=case_ref, referral_id=str(referral.referral_id), to=to)
    return referral
