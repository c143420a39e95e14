"""Intake: registrations that partners and KoboToolbox send, by HTTP or on the intake topic.

Both ways go through `take_in`, which
- is idempotent on (partner_org, submission_id): a resent submission does nothing new;
- keeps every submission (`intake_submissions`), mapped or not: one that cannot be mapped
  is stored as `rejected` with its reasons (questions and rules, never values), logged
  without personal data, listed by `GET /intake/submissions?status=rejected`, and can be
  re-mapped (`POST .../retry`, or resent with the same id) once fixed;
- applies an edit (`replaces`: Kobo's `meta/deprecatedID`) to the household the original
  submission registered, instead of registering it again (an edit that cannot be mapped
  stays linked to that household); an original that arrives after its edit is `superseded`;
- seals the answers once, with the outcome, under the key of the household the submission
  registered or edits (ADR 0010), so that erasing the household shreds them too.

On the topic, an unmappable submission is kept as `rejected` rather than dead-lettered:
it holds personal data (the DLQ would copy it into another topic) and it is fixed and
re-mapped here, where it is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from aidmesh_contracts import Channel, ConsentPurpose, IntakeSource, IntakeSubmitted
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.errors import validation_message
from pydantic import ValidationError

from . import kobo, repository, service
from .crypto import Vault
from .domain import (
    Conflict,
    ConsentIn,
    ConsentWithdrawalIn,
    Gone,
    Household,
    HouseholdIn,
    HouseholdPatch,
    HouseholdStatus,
    NotFound,
    same_person,
)
from .kobo import Reason, Unmappable
from .repository import Submission

log = structlog.get_logger(__name__)

KOBO_FORMAT = "kobo_json"
HOUSEHOLD_FORMAT = "aidmesh_household_v1"


@dataclass(frozen=True)
class Incoming:
    """A submission as received, before anything is decided about it."""

    partner_org: str
    submission_id: str
    source: IntakeSource
    format: str
    answers: dict[str, Any]
    form_id: str | None = None
    replaces: str | None = None
    submitted_at: datetime | None = None


@dataclass(frozen=True)
class IntakeOutcome:
    partner_org: str
    submission_id: str
    status: str  # registered, updated, unchanged, rejected, superseded
    household_id: UUID | None
    reasons: list[dict[str, str]] = field(default_factory=list)
    #: True when this submission had been handled before: nothing new was done.
    repeated: bool = False
    events: list[Any] = field(default_factory=list)


def from_kobo(answers: dict[str, Any], *, partner_org: str) -> Incoming:
    meta = kobo.meta(answers)
    return Incoming(
        partner_org=partner_org,
        submission_id=meta.submission_id,
        source=IntakeSource.KOBO,
        format=KOBO_FORMAT,
        answers=answers,
        form_id=meta.form_id or kobo.FORM_ID,
        replaces=meta.replaces,
        submitted_at=meta.submitted_at,
    )


def from_event(event: IntakeSubmitted) -> Incoming:
    return Incoming(
        partner_org=event.partner_org,
        submission_id=event.submission_id,
        source=event.source,
        format=event.format,
        answers=dict(event.answers),
        form_id=event.form_id,
        replaces=event.replaces,
        submitted_at=event.submitted_at,
    )


def map_submission(incoming: Incoming) -> HouseholdIn:
    """The registration a submission describes, or Unmappable with the reasons."""
    if incoming.format == KOBO_FORMAT:
        household = kobo.to_household(incoming.answers, partner_org=incoming.partner_org)
        _refuse_another_organisation(incoming, {"assessed_by": kobo.ASSESSED_BY})
        return household
    _refuse_another_organisation(
        incoming, {"partner_org": "partner_org", "assessed_by": "assessed_by"}
    )
    channel = Channel.KOBO if incoming.source is IntakeSource.KOBO else Channel.PARTNER
    body = {**incoming.answers, "channel": channel.value, "partner_org": incoming.partner_org}
    try:
        return HouseholdIn.model_validate(body)
    except ValidationError as exc:
        reasons = [
            Reason(".".join(str(p) for p in e["loc"]) or "answers", validation_message(e))
            for e in exc.errors()
        ]
        raise Unmappable(list(dict.fromkeys(reasons))) from None


def _refuse_another_organisation(incoming: Incoming, fields: dict[str, str]) -> None:
    """A submission's answers attribute its work to the organisation that submitted it, at
    every door (issue 19): the endpoint refuses another one with 403 before this; on the
    intake topic such a submission is kept as rejected, naming the answer."""
    reasons = [
        Reason(
            question,
            f"names {named} but the submission is {incoming.partner_org}'s: a submission is"
            " attributed to the organisation that sends it",
        )
        for question in fields.values()
        if isinstance(named := incoming.answers.get(question), str)
        and named.strip()
        and named.strip() != incoming.partner_org
    ]
    if reasons:
        raise Unmappable(reasons)


async def take_in(unit: service.Unit, incoming: Incoming) -> IntakeOutcome:
    """Register, update or keep as rejected: once per submission id."""
    stored = await repository.claim_submission(
        unit.conn,
        Submission(
            partner_org=incoming.partner_org,
            submission_id=incoming.submission_id,
            source=incoming.source.value,
            format=incoming.format,
            form_id=incoming.form_id,
            replaces=incoming.replaces,
            submitted_at=incoming.submitted_at,
            received_at=unit.now(),
            answers=None,  # written with the outcome, sealed with the key it calls for
            status="rejected",  # until decided below, in this same transaction
            reasons=[],
            household_id=None,
            processed_at=unit.now(),
            attempts=1,
        ),
    )
    if stored is not None and stored.status != "rejected":
        log.info(
            "intake_repeated",
            partner_org=incoming.partner_org,
            submission_id=incoming.submission_id,
            status=stored.status,
        )
        return IntakeOutcome(
            partner_org=stored.partner_org,
            submission_id=stored.submission_id,
            status=stored.status,
            household_id=stored.household_id,
            repeated=True,
        )
    # New, or rejected before and sent again (perhaps fixed): map it now.
    return await _process(unit, incoming, retry=stored is not None)


async def retry(unit: service.Unit, partner_org: str, submission_id: str) -> IntakeOutcome:
    """Map a rejected submission again (after the form, the mapping or reference data was
    fixed)."""
    stored = await repository.get_submission(
        unit.conn, partner_org, submission_id, vault=unit.vault, for_update=True
    )
    if stored is None:
        raise NotFound(f"submission {submission_id} of {partner_org} not found")
    if stored.status != "rejected":
        raise Conflict(
            f"submission {submission_id} is {stored.status}; only a rejected one is re-mapped"
        )
    if stored.answers is None:
        raise Conflict(f"submission {submission_id} edits an erased household: nothing to map")
    incoming = Incoming(
        partner_org=stored.partner_org,
        submission_id=stored.submission_id,
        source=IntakeSource(stored.source),
        format=stored.format,
        answers=stored.answers,
        form_id=stored.form_id,
        replaces=stored.replaces,
        submitted_at=stored.submitted_at,
    )
    return await _process(unit, incoming, retry=True)


async def _process(unit: service.Unit, incoming: Incoming, *, retry: bool) -> IntakeOutcome:
    async def outcome(
        status: str,
        household_id: UUID | None,
        reasons: Sequence[Reason] = (),
        *,
        keep_answers: bool = True,
    ) -> IntakeOutcome:
        reasons_json = [r.as_json() for r in reasons]
        # Sealed once, for the outcome: with the key of the household it registered or
        # edited, so that erasing the household shreds the submission too.
        sealed = (
            repository.seal_answers(
                unit.vault,
                await unit.key(household_id) if household_id else None,
                partner_org=incoming.partner_org,
                submission_id=incoming.submission_id,
                answers=incoming.answers,
            )
            if keep_answers
            else None
        )
        await repository.record_outcome(
            unit.conn,
            partner_org=incoming.partner_org,
            submission_id=incoming.submission_id,
            status=status,
            reasons=reasons_json,
            household_id=household_id,
            processed_at=unit.now(),
            answers_sealed=sealed,
            retry=retry,
        )
        return IntakeOutcome(
            partner_org=incoming.partner_org,
            submission_id=incoming.submission_id,
            status=status,
            household_id=household_id,
            reasons=reasons_json,
            events=list(unit.events),
        )

    # An edit concerns the household its original registered, mappable or not.
    try:
        target = (
            await _household_of(unit, incoming.partner_org, incoming.replaces)
            if incoming.replaces
            else None
        )
    except Gone:
        return await _for_erased(incoming, outcome)

    try:
        household_in = map_submission(incoming)
    except Unmappable as exc:
        # Questions and rules only: the answers are personal data.
        log.warning(
            "intake_rejected",
            partner_org=incoming.partner_org,
            submission_id=incoming.submission_id,
            source=incoming.source.value,
            fields=sorted({r.field for r in exc.reasons}),
        )
        # An edit stays linked to its household: its answers are sealed with that
        # household's key, so erasing the household shreds them too.
        return await outcome("rejected", target.household_id if target else None, exc.reasons)

    if target is not None:
        status = await _apply_edit(unit, target, household_in)
        log.info(
            "intake_edit_applied",
            partner_org=incoming.partner_org,
            submission_id=incoming.submission_id,
            household_id=str(target.household_id),
            status=status,
        )
        return await outcome(status, target.household_id)

    later = await repository.replaced_by(unit.conn, incoming.partner_org, incoming.submission_id)
    if later is not None:
        # Its edit came first and registered the household already.
        try:
            edited = await _household_of(unit, incoming.partner_org, later)
        except Gone:
            return await _for_erased(incoming, outcome)
        return await outcome("superseded", edited.household_id if edited else None)

    registered = await service.register(unit, household_in)
    return await outcome("registered", registered.household_id)


async def _household_of(
    unit: service.Unit, partner_org: str, submission_id: str
) -> Household | None:
    """The household a submission registered (or updated), followed through merges; Gone
    when it was erased."""
    household_id = await repository.household_of_submission(unit.conn, partner_org, submission_id)
    seen: set[UUID] = set()
    while household_id is not None and household_id not in seen:
        seen.add(household_id)
        household = await repository.load_household(
            unit.conn, household_id, vault=unit.vault, for_update=True, keys=unit.keys
        )
        if household is None:
            return None
        service.refuse_if_erased(household)
        if household.status is HouseholdStatus.ACTIVE:
            return household
        household_id = household.merged_into
    return None


async def _for_erased(incoming: Incoming, outcome: Any) -> IntakeOutcome:
    """A submission about a household that was erased (an edit sent afterwards, or its
    original arriving late) must not bring its personal data back: it is kept as rejected,
    without its answers, so that the partner is told."""
    log.warning(
        "intake_for_erased_household",
        partner_org=incoming.partner_org,
        submission_id=incoming.submission_id,
    )
    reason = Reason("replaces", "the household it concerns was erased; its answers are not kept")
    result: IntakeOutcome = await outcome("rejected", None, [reason], keep_answers=False)
    return result


async def _apply_edit(unit: service.Unit, before: Household, edited: HouseholdIn) -> str:
    """An edited submission restates the whole household: update what differs, keeping
    each member's id when the edit still lists that person, and follow its consent answers."""
    survivor_members = list(before.members)
    members = []
    for member_in in edited.members:
        fresh = member_in.to_member(unit.new_id())
        same = next((m for m in survivor_members if same_person(m, fresh)), None)
        if same is not None:
            survivor_members.remove(same)
        members.append(member_in.model_copy(update={"member_id": same.member_id if same else None}))
    patch = HouseholdPatch(
        channel=edited.channel,
        partner_org=edited.partner_org,
        assessed_by=edited.assessed_by,
        location=edited.location,
        displacement_status=edited.displacement_status,
        address=edited.address,
        phone=edited.phone,
        members=members,
        vulnerabilities=edited.vulnerabilities,
        needs=edited.needs,
    )
    updated = await service.update(unit, before.household_id, patch, before=before)
    consents_changed = await _follow_consents(unit, before, edited)
    if updated.changed or updated.needs_changed or consents_changed:
        return "updated"
    return "unchanged"


async def _follow_consents(unit: service.Unit, before: Household, edited: HouseholdIn) -> bool:
    by = edited.partner_org or unit.default_assessor
    changed = False
    for purpose in ConsentPurpose:
        had, has = purpose in before.consents, purpose in edited.consents
        if has and not had:
            await service.record_consent(
                unit, before.household_id, ConsentIn(purpose=purpose, recorded_by=by)
            )
            changed = True
        elif had and not has:
            await service.withdraw_consent(
                unit, before.household_id, purpose, ConsentWithdrawalIn(recorded_by=by)
            )
            changed = True
    return changed


def intake_handler(*, default_assessor: str, vault: Vault) -> Any:
    """The handler of IntakeSubmitted on the intake topic (through the runtime's inbox)."""

    async def on_intake_submitted(event: IntakeSubmitted, ctx: HandlerContext) -> None:
        unit = service.Unit(
            conn=ctx.conn,
            outbox=ctx.outbox,
            at=ctx.now(),
            default_assessor=default_assessor,
            vault=vault,
            cause=ctx.envelope,
        )
        result = await take_in(unit, from_event(event))
        log.info(
            "intake_handled",
            partner_org=result.partner_org,
            submission_id=result.submission_id,
            status=result.status,
            repeated=result.repeated,
        )

    return on_intake_submitted
