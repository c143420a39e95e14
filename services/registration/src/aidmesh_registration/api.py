"""HTTP API of registration (thin: validate, call a use case, answer).

Who calls: a bearer token with the scope each endpoint names (ADR 0009): read, write,
review (duplicates), intake (Kobo). What a call records is attributed to the token's
organisation (`org`): `partner_org` of a partner's registration or Kobo submission,
`recorded_by` of a consent, `decided_by` of a merge; a request naming another organisation
there is refused (403), never believed.

Need to know (issue 19): a partner's token reads, searches and changes the households its
organisation registered, and others only while they consent to data sharing; IOM's
registration staff (`registration:read-all`) read every one. Any other household answers
404, as one that does not exist. Intake submissions likewise: a partner sees its own.

Errors: 401 no valid token, 403 a scope it lacks or another organisation named; 404 an
unknown household, suspicion or submission; 409 a change the current state
does not allow (resolving a resolved suspicion, merging into itself or a merged household,
recording a consent twice); 422 invalid input, naming the field and the reason, never
echoing what was submitted. A merged household still answers GET (200) with
`status: "merged"` and `merged_into`, the household that stays; it cannot be changed.
An erased household (POST /households/{id}/erasure) answers 410 Gone, with when and why,
to GET and to any change, and is never found by search (ADR 0010).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import structlog
from aidmesh_contracts import (
    Channel,
    ConsentPurpose,
    DisplacementStatus,
    DuplicateReason,
    Sector,
)
from aidmesh_runtime.auth import (
    REGISTRATION_ERASE,
    REGISTRATION_INTAKE,
    REGISTRATION_READ,
    REGISTRATION_READ_ALL,
    REGISTRATION_REVIEW,
    REGISTRATION_WRITE,
    Principal,
    attributed,
    require_any_scope,
    require_scope,
)
from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Body, Depends, Header, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from . import intake, kobo, repository, service
from .domain import (
    ConsentIn,
    ConsentWithdrawalIn,
    DismissIn,
    ErasureIn,
    Gone,
    HouseholdIn,
    HouseholdPatch,
    HouseholdStatus,
    MergeIn,
    MergeIntoIn,
    NotFound,
    PartnerRef,
    Refused,
    SuspicionStatus,
    name_keys,
    normalise_document_query,
)
from .phones import normalise_phone

log = structlog.get_logger(__name__)

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; omit for the first.")
]

#: Scopes (aidmesh_runtime.auth): `dependencies=[Reads]`, or a parameter `principal: Writer`.
Reads = require_scope(REGISTRATION_READ)
Reader = Annotated[Principal, Reads]
#: Submissions: a reader's, or a partner's own with the intake token that sent them.
SubmissionReader = Annotated[Principal, require_any_scope(REGISTRATION_READ, REGISTRATION_INTAKE)]
Writer = Annotated[Principal, require_scope(REGISTRATION_WRITE)]
Reviewer = Annotated[Principal, require_scope(REGISTRATION_REVIEW)]
IntakePartner = Annotated[Principal, require_scope(REGISTRATION_INTAKE)]
Eraser = Annotated[Principal, require_scope(REGISTRATION_ERASE)]

households = APIRouter(tags=["households"])
duplicates = APIRouter(tags=["duplicates"])
intake_router = APIRouter(tags=["intake"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not found"},
    409: {"description": "Not allowed in the current state: the reason"},
    410: {"description": "The household was erased: when and why"},
    422: {"description": "Invalid input: the field and the reason"},
}


class EventRef(BaseModel):
    id: UUID
    type: str


def refs(envelopes: list[Any]) -> list[EventRef]:
    return [EventRef(id=e.id, type=e.type) for e in envelopes]


Attributable = TypeVar("Attributable", HouseholdIn, HouseholdPatch)


def _attributed_household(household: Attributable, principal: Principal) -> Attributable:
    """A registration or update with its organisations checked against the token
    (aidmesh_runtime.auth.attributed): `assessed_by`, who assessed its needs (and recorded
    the consents of a registration), is the caller's; so is `partner_org` of a partner's (or
    Kobo's) one, and a `partner_org` given on another channel must be the caller's too."""
    update: dict[str, str] = {}
    if household.partner_org is not None or household.channel in (Channel.PARTNER, Channel.KOBO):
        update["partner_org"] = attributed(principal, household.partner_org, field="partner_org")
    update["assessed_by"] = attributed(principal, household.assessed_by, field="assessed_by")
    return household.model_copy(update=update)


# ---- need to know ------------------------------------------------------------------------


def reader_org(principal: Principal) -> str | None:
    """The organisation whose households (and submissions) a call may see, or None for
    IOM's registration staff (`registration:read-all`), who may see every one."""
    return None if principal.has(REGISTRATION_READ_ALL) else principal.org


async def refuse_unless_readable(conn: Any, household_id: UUID, principal: Principal) -> None:
    """404, the answer for a household that does not exist, unless the caller may read it
    (repository.readable_by): a partner learns nothing of another partner's households."""
    org = reader_org(principal)
    if org is not None and not await repository.readable_by(conn, household_id, org):
        log.info("household_not_readable", household_id=str(household_id))
        raise NotFound(f"household {household_id} not found")


# ---- pagination --------------------------------------------------------------------------


def encode_cursor(*values: Any) -> str:
    text = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[str] | None:
    if not cursor:  # omitted, or `?cursor=` as a form leaves it: the first page
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise Refused(("query", "cursor"), "is not a cursor this list gave out")
    return [str(v) for v in values]


def _time_and_id(cursor: str | None) -> tuple[datetime, UUID] | None:
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    try:
        return datetime.fromisoformat(values[0]), UUID(values[1])
    except ValueError:
        raise Refused(("query", "cursor"), "is not a cursor this list gave out") from None


# ---- households --------------------------------------------------------------------------


class RegistrationOut(BaseModel):
    household_id: UUID
    correlation_id: UUID
    events: list[EventRef]
    suspected_duplicates: list[UUID] = Field(
        default=[], description="Suspicions queued for review (GET /duplicates/{id})."
    )


@households.post(
    "/households",
    status_code=status.HTTP_201_CREATED,
    response_model=RegistrationOut,
    summary="Register a household: HouseholdRegistered, NeedAssessed per need, DuplicateSuspected",
    responses={422: ERRORS[422]},
)
async def create_household(
    household: HouseholdIn,
    runtime: RuntimeDep,
    principal: Writer,
    x_correlation_id: Annotated[UUID | None, Header()] = None,
) -> RegistrationOut:
    household = _attributed_household(household, principal)
    async with service.unit_of_work(runtime, correlation_id=x_correlation_id) as unit:
        result = await service.register(unit, household)
    return RegistrationOut(
        household_id=result.household_id,
        correlation_id=result.correlation_id,
        events=refs(result.events),
        suspected_duplicates=result.suspicions,
    )


class DocumentOut(BaseModel):
    kind: str
    number: str


class MemberOut(BaseModel):
    member_id: UUID
    full_name: str
    family_name: str | None
    given_name: str | None
    patronymic: str | None
    family_name_latin: str | None
    given_name_latin: str | None
    patronymic_latin: str | None
    sex: str
    date_of_birth: date
    relation: str
    document_number: str | None = Field(description="The first document (older clients).")
    documents: list[DocumentOut]
    unverified_documents: list[DocumentOut] = Field(
        default=[],
        description="Numbers a partner's list gave in no known format, kept as given for an"
        " officer to verify (the import reported each as a warning); never searched or matched.",
    )
    vulnerabilities: list[str]


class NeedOut(BaseModel):
    assessment_id: UUID
    sector: Sector
    severity: int
    details: dict[str, Any] | None
    assessed_at: datetime
    assessed_by: str


class HouseholdOut(BaseModel):
    household_id: UUID
    status: HouseholdStatus
    merged_into: UUID | None = Field(description="When merged: the household that stays.")
    merged_at: datetime | None
    registered_at: datetime
    updated_at: datetime | None
    version: int
    channel: Channel
    partner_org: str | None
    partner_ref: str | None = Field(
        default=None, description="The registering organisation's own reference of it."
    )
    adm1_pcode: str
    adm2_pcode: str | None
    adm3_pcode: str | None
    displacement_status: DisplacementStatus
    size: int
    address: str | None
    phone: str | None = Field(description="E.164")
    iban: str | None = Field(
        default=None, description="Its bank account for cash transfers (a Ukrainian IBAN)."
    )
    vulnerabilities: list[str] = Field(description="Flags declared for the household.")
    screening: dict[str, Any] | None = Field(
        description="Screening result: all flags (declared and derived), score and level."
    )
    consents: list[ConsentPurpose] = Field(
        description="The purposes it consents to in general (as the sectors are told)."
    )
    data_sharing_with: list[str] = Field(
        default=[],
        description="The financial service providers it consents to share its details with,"
        " to be paid by them: only their payment files may hold it.",
    )
    correlation_id: UUID
    members: list[MemberOut]
    needs: list[NeedOut] = Field(description="The current need of each sector assessed.")


@households.get(
    "/households/{household_id}",
    response_model=HouseholdOut,
    summary="A household with its members, documents and current needs (also when merged)",
    responses={404: ERRORS[404], 410: ERRORS[410]},
)
async def read_household(
    household_id: UUID, runtime: RuntimeDep, principal: Reader
) -> dict[str, Any]:
    async with runtime.pool.acquire() as conn:
        await refuse_unless_readable(conn, household_id, principal)
        household = await repository.household_view(
            conn, household_id, vault=service.vault_of(runtime)
        )
    if household is None:
        raise NotFound(f"household {household_id} not found")
    refuse_if_erased(household_id, household)
    return household


def refuse_if_erased(household_id: UUID, row: Mapping[str, Any]) -> None:
    """410 Gone, with when and why, for a household that was erased (its row or view)."""
    if row["status"] == HouseholdStatus.ERASED:
        raise Gone(
            f"household {household_id} was erased on {row['erased_at'].isoformat()}"
            f" ({row['erasure_reason']}, requested by {row['erased_by']}):"
            " its personal data no longer exists"
        )


class UpdateOut(BaseModel):
    household_id: UUID
    changed: list[str] = Field(description="Facts that changed (empty: nothing changed).")
    events: list[EventRef]


@households.patch(
    "/households/{household_id}",
    response_model=UpdateOut,
    summary="Update a household: HouseholdUpdated (full shareable state and `changed`)",
    responses=ERRORS,
)
async def update_household(
    household_id: UUID,
    patch: HouseholdPatch,
    runtime: RuntimeDep,
    principal: Writer,
    x_correlation_id: Annotated[UUID | None, Header()] = None,
) -> UpdateOut:
    patch = _attributed_household(patch, principal)
    async with service.unit_of_work(runtime, correlation_id=x_correlation_id) as unit:
        await refuse_unless_readable(unit.conn, household_id, principal)
        result = await service.update(unit, household_id, patch)
    return UpdateOut(
        household_id=household_id, changed=sorted(result.changed), events=refs(result.events)
    )


class HeadOut(BaseModel):
    member_id: UUID | None
    full_name: str | None
    family_name: str | None
    given_name: str | None
    patronymic: str | None
    family_name_latin: str | None
    given_name_latin: str | None
    patronymic_latin: str | None


class HouseholdSummary(BaseModel):
    household_id: UUID
    status: HouseholdStatus
    merged_into: UUID | None
    registered_at: datetime
    channel: Channel
    partner_org: str | None
    partner_ref: str | None = None
    adm1_pcode: str
    adm2_pcode: str | None
    adm3_pcode: str | None
    displacement_status: DisplacementStatus
    size: int
    phone: str | None
    head: HeadOut


class HouseholdPage(BaseModel):
    items: list[HouseholdSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


@households.get(
    "/households",
    response_model=HouseholdPage,
    summary="Search households by name (either script), phone, document number or P-code"
    " (among those the caller may read)",
    responses={422: ERRORS[422]},
)
async def search_households(
    runtime: RuntimeDep,
    principal: Reader,
    name: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Words of a member's names, in Cyrillic or Latin (Коваленко, Kovalenko).",
        ),
    ] = None,
    phone: Annotated[
        str | None, Query(max_length=32, description="Any format; compared as E.164.")
    ] = None,
    document: Annotated[str | None, Query(max_length=32, description="A document number.")] = None,
    pcode: Annotated[
        str | None,
        Query(pattern=r"^UA\d{2}(\d{2}(\d{3})?)?$", description="Oblast, raion or hromada."),
    ] = None,
    partner_ref: Annotated[
        PartnerRef | None,
        Query(description="The caller's own reference of a household (staff: any partner's)."),
    ] = None,
    household_status: Annotated[
        Literal["active", "merged", "any"], Query(alias="status")
    ] = "active",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> HouseholdPage:
    keys: list[str] = []
    if name is not None:
        keys = name_keys(*name.split())
        if not keys:
            raise Refused(("query", "name"), "has no letters to search for")
    if phone is not None:
        try:
            phone = normalise_phone(phone)
        except ValueError as exc:
            raise Refused(("query", "phone"), str(exc)) from None
    query = repository.SearchQuery(
        name_keys=keys,
        phone=phone,
        document=normalise_document_query(document) if document else None,
        pcode=pcode,
        status=None if household_status == "any" else HouseholdStatus(household_status),
        readable_by=reader_org(principal),
        partner_ref=partner_ref,
    )
    async with runtime.pool.acquire() as conn:
        rows = await repository.search(
            conn,
            query,
            vault=service.vault_of(runtime),
            before=_time_and_id(cursor),
            limit=limit + 1,
        )
    page = rows[:limit]
    return HouseholdPage(
        items=[HouseholdSummary.model_validate(r) for r in page],
        next_cursor=(
            encode_cursor(page[-1]["registered_at"], page[-1]["household_id"])
            if len(rows) > limit
            else None
        ),
    )


# ---- consent -----------------------------------------------------------------------------


#: A consent's recipient, as the API shows it.
RECIPIENT = "For data_sharing: the financial service provider it is for; null: in general."


class ConsentOut(BaseModel):
    consent_id: UUID
    household_id: UUID
    purpose: ConsentPurpose
    recipient: str | None = Field(default=None, description=RECIPIENT)
    recorded_by: str
    recorded_at: datetime
    withdrawn_by: str | None = None
    withdrawn_at: datetime | None = None
    ended_reason: str | None = Field(default=None, description="withdrawn, merged or erased")
    active: bool


class ConsentChangeOut(BaseModel):
    consent_id: UUID
    household_id: UUID
    purpose: ConsentPurpose
    recipient: str | None = Field(default=None, description=RECIPIENT)
    recorded_by: str
    at: datetime
    event: EventRef


def _consent_change(result: service.ConsentChanged) -> ConsentChangeOut:
    return ConsentChangeOut(
        consent_id=result.consent_id,
        household_id=result.household_id,
        purpose=result.purpose,
        recipient=result.recipient,
        recorded_by=result.recorded_by,
        at=result.at,
        event=EventRef(id=result.event.id, type=result.event.type),
    )


@households.get(
    "/households/{household_id}/consents",
    response_model=list[ConsentOut],
    summary="Consent records of a household: who recorded each and when, and withdrawals",
    responses={404: ERRORS[404], 410: ERRORS[410]},
)
async def list_consents(
    household_id: UUID, runtime: RuntimeDep, principal: Reader
) -> list[ConsentOut]:
    async with runtime.pool.acquire() as conn:
        await refuse_unless_readable(conn, household_id, principal)
        row = await repository.household_row(conn, household_id)
        if row is None:
            raise NotFound(f"household {household_id} not found")
        refuse_if_erased(household_id, row)
        records = await repository.consent_records(conn, household_id)
    return [ConsentOut(**r.__dict__, active=r.active) for r in records]


@households.post(
    "/households/{household_id}/consents",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentChangeOut,
    summary="Record consent for one purpose (data sharing: in general, or with one provider):"
    " ConsentRecorded",
    responses=ERRORS,
)
async def record_consent(
    household_id: UUID, consent: ConsentIn, runtime: RuntimeDep, principal: Writer
) -> ConsentChangeOut:
    by = attributed(principal, consent.recorded_by, field="recorded_by")
    consent = consent.model_copy(update={"recorded_by": by})
    async with service.unit_of_work(runtime) as unit:
        await refuse_unless_readable(unit.conn, household_id, principal)
        result = await service.record_consent(unit, household_id, consent)
    return _consent_change(result)


@households.post(
    "/households/{household_id}/consents/{purpose}/withdraw",
    response_model=ConsentChangeOut,
    summary="Withdraw consent for one purpose (data sharing: in general, or with the provider"
    " named in the body): ConsentWithdrawn",
    responses=ERRORS,
)
async def withdraw_consent(
    household_id: UUID,
    purpose: ConsentPurpose,
    withdrawal: ConsentWithdrawalIn,
    runtime: RuntimeDep,
    principal: Writer,
) -> ConsentChangeOut:
    by = attributed(principal, withdrawal.recorded_by, field="recorded_by")
    withdrawal = withdrawal.model_copy(update={"recorded_by": by})
    async with service.unit_of_work(runtime) as unit:
        await refuse_unless_readable(unit.conn, household_id, principal)
        result = await service.withdraw_consent(unit, household_id, purpose, withdrawal)
    return _consent_change(result)


# ---- erasure -----------------------------------------------------------------------------


class ErasureOut(BaseModel):
    household_id: UUID
    merged_household_ids: list[UUID] = Field(
        description="Duplicates merged into it earlier, erased with it."
    )
    erased_at: datetime
    event: EventRef


@households.post(
    "/households/{household_id}/erasure",
    response_model=ErasureOut,
    summary="Erase a household's personal data (crypto-shredding): HouseholdErased",
    description=(
        "Destroys the household's data key, so that its personal data (names, dates of"
        " birth, documents, address, phone, intake answers) can never be read again, from"
        " the database or any backup; ids, P-codes, counts and codes stay. Cannot be undone."
        " Afterwards GET answers 410 and search does not find it."
    ),
    responses=ERRORS,
)
async def erase_household(
    household_id: UUID, erasure: ErasureIn, runtime: RuntimeDep, principal: Eraser
) -> ErasureOut:
    by = attributed(principal, erasure.requested_by, field="requested_by")
    erasure = erasure.model_copy(update={"requested_by": by})
    async with service.unit_of_work(runtime) as unit:
        result = await service.erase(unit, household_id, erasure)
    return ErasureOut(
        household_id=result.household_id,
        merged_household_ids=result.merged_household_ids,
        erased_at=result.erased_at,
        event=EventRef(id=result.event.id, type=result.event.type),
    )


# ---- duplicates --------------------------------------------------------------------------


class MergeOut(BaseModel):
    household_id: UUID = Field(description="The household that stays.")
    merged_household_id: UUID
    suspicion_id: UUID | None
    events: list[EventRef]


def _merge_out(result: service.Merged) -> MergeOut:
    return MergeOut(
        household_id=result.household_id,
        merged_household_id=result.merged_household_id,
        suspicion_id=result.suspicion_id,
        events=refs(result.events),
    )


@households.post(
    "/households/{household_id}/merge",
    response_model=MergeOut,
    summary="Merge this household into another (without a suspicion): HouseholdMerged",
    responses=ERRORS,
)
async def merge_household(
    household_id: UUID, merge: MergeIntoIn, runtime: RuntimeDep, principal: Reviewer
) -> MergeOut:
    decided_by = attributed(principal, merge.decided_by, field="decided_by")
    async with service.unit_of_work(runtime) as unit:
        result = await service.merge(
            unit, merged_id=household_id, survivor_id=merge.into, decided_by=decided_by
        )
    return _merge_out(result)


class SuspicionOut(BaseModel):
    suspicion_id: UUID
    household_id: UUID = Field(description="The newer registration.")
    candidate_household_id: UUID = Field(description="The earlier registration it resembles.")
    score: float
    reasons: list[DuplicateReason]
    detected_at: datetime
    status: SuspicionStatus
    resolved_at: datetime | None
    resolved_by: str | None
    survivor_household_id: UUID | None


class SuspicionPage(BaseModel):
    items: list[SuspicionOut]
    next_cursor: str | None


@duplicates.get(
    "/duplicates",
    response_model=SuspicionPage,
    summary="The review queue of possible duplicates, oldest first",
    responses={422: ERRORS[422]},
    dependencies=[require_scope(REGISTRATION_REVIEW)],
)
async def list_duplicates(
    runtime: RuntimeDep,
    suspicion_status: Annotated[
        Literal["open", "merged", "dismissed", "superseded", "erased", "any"],
        Query(alias="status"),
    ] = "open",
    household_id: Annotated[UUID | None, Query(description="Either of the pair.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SuspicionPage:
    async with runtime.pool.acquire() as conn:
        rows = await repository.list_suspicions(
            conn,
            status=None if suspicion_status == "any" else SuspicionStatus(suspicion_status),
            household_id=household_id,
            after=_time_and_id(cursor),
            limit=limit + 1,
        )
    page = rows[:limit]
    return SuspicionPage(
        items=[SuspicionOut(**s.__dict__) for s in page],
        next_cursor=(
            encode_cursor(page[-1].detected_at, page[-1].suspicion_id)
            if len(rows) > limit
            else None
        ),
    )


@duplicates.get(
    "/duplicates/{suspicion_id}",
    response_model=SuspicionOut,
    summary="One suspicion",
    responses={404: ERRORS[404]},
    dependencies=[require_scope(REGISTRATION_REVIEW)],
)
async def read_duplicate(suspicion_id: UUID, runtime: RuntimeDep) -> SuspicionOut:
    async with runtime.pool.acquire() as conn:
        suspicion = await repository.get_suspicion(conn, suspicion_id)
    if suspicion is None:
        raise NotFound(f"suspicion {suspicion_id} not found")
    return SuspicionOut(**suspicion.__dict__)


@duplicates.post(
    "/duplicates/{suspicion_id}/merge",
    response_model=MergeOut,
    summary="Resolve a suspicion by merging the pair: HouseholdMerged",
    responses=ERRORS,
)
async def merge_duplicate(
    suspicion_id: UUID, merge: MergeIn, runtime: RuntimeDep, principal: Reviewer
) -> MergeOut:
    decided_by = attributed(principal, merge.decided_by, field="decided_by")
    async with service.unit_of_work(runtime) as unit:
        result = await service.merge_suspected(
            unit,
            suspicion_id,
            decided_by=decided_by,
            survivor_id=merge.survivor_household_id,
        )
    return _merge_out(result)


@duplicates.post(
    "/duplicates/{suspicion_id}/dismiss",
    response_model=SuspicionOut,
    summary="Resolve a suspicion as two different households",
    responses=ERRORS,
)
async def dismiss_duplicate(
    suspicion_id: UUID, dismissal: DismissIn, runtime: RuntimeDep, principal: Reviewer
) -> SuspicionOut:
    decided_by = attributed(principal, dismissal.decided_by, field="decided_by")
    async with service.unit_of_work(runtime) as unit:
        suspicion = await service.dismiss(unit, suspicion_id, decided_by=decided_by)
    return SuspicionOut(**suspicion.__dict__)


# ---- intake ------------------------------------------------------------------------------


class IntakeOut(BaseModel):
    partner_org: str
    submission_id: str
    status: Literal["registered", "updated", "unchanged", "rejected", "superseded"]
    household_id: UUID | None
    repeated: bool = Field(description="Seen before: nothing new was done.")
    reasons: list[dict[str, str]] = Field(description="Why it was rejected: question and rule.")
    events: list[EventRef]


def _intake_out(result: intake.IntakeOutcome) -> IntakeOut:
    return IntakeOut(
        partner_org=result.partner_org,
        submission_id=result.submission_id,
        status=result.status,  # type: ignore[arg-type]
        household_id=result.household_id,
        repeated=result.repeated,
        reasons=result.reasons,
        events=refs(result.events),
    )


def _intake_response(result: intake.IntakeOutcome) -> JSONResponse:
    out = _intake_out(result)
    if result.status == "rejected":
        code = 422
        body: dict[str, Any] = {
            "detail": [
                {"loc": ["body", r["field"]], "msg": r["reason"], "type": "unmappable"}
                for r in result.reasons
            ],
            **out.model_dump(mode="json"),
        }
    else:
        code = 201 if result.status == "registered" and not result.repeated else 200
        body = out.model_dump(mode="json")
    return JSONResponse(body, status_code=code)


@intake_router.post(
    "/intake/kobo",
    response_model=IntakeOut,
    status_code=status.HTTP_201_CREATED,
    summary="KoboToolbox REST Services endpoint (JSON): register, or update on an edit",
    description=(
        "Point a Kobo project's REST Service (JSON) here. 201 registered; 200 an edit applied"
        " or a submission seen before (nothing new done); 422 kept but not mappable (listed"
        " by GET /intake/submissions?status=rejected). The submission is the token's"
        " organisation's (its `org`): `partner_org` (query) or the `X-Partner-Org` header"
        " may repeat it, and naming another organisation is refused (403), as is a"
        " `meta/assessed_by` naming one. Kobo's REST"
        " Service sends the token as a custom `Authorization: Bearer ...` header."
    ),
    responses={200: {"model": IntakeOut}, 422: ERRORS[422]},
)
async def kobo_submission(
    runtime: RuntimeDep,
    principal: IntakePartner,
    submission: Annotated[dict[str, Any], Body(description="Kobo's submission JSON.")],
    partner_org: Annotated[
        str | None, Query(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$", description="Partner code.")
    ] = None,
    x_partner_org: Annotated[str | None, Header(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$")] = None,
) -> JSONResponse:
    attributed(principal, partner_org, field="partner_org")
    partner = attributed(principal, x_partner_org, field="X-Partner-Org")
    # Who assessed the needs is the token's organisation here too, as in POST /households:
    # another one named in the form is refused before anything is kept.
    named = submission.get(kobo.ASSESSED_BY)
    attributed(
        principal,
        named.strip() or None if isinstance(named, str) else None,
        field=kobo.ASSESSED_BY,
    )
    async with service.unit_of_work(runtime) as unit:
        result = await intake.take_in(unit, intake.from_kobo(submission, partner_org=partner))
    return _intake_response(result)


class SubmissionOut(BaseModel):
    partner_org: str
    submission_id: str
    source: str
    format: str
    form_id: str | None
    replaces: str | None
    submitted_at: datetime | None
    received_at: datetime
    processed_at: datetime
    attempts: int
    status: str
    reasons: list[dict[str, str]]
    household_id: UUID | None


class SubmissionDetail(SubmissionOut):
    answers: dict[str, Any] | None = Field(
        description="As sent: personal data. Null once its household was erased."
    )


class SubmissionPage(BaseModel):
    items: list[SubmissionOut]
    next_cursor: str | None


IntakeStatus = Literal["registered", "updated", "unchanged", "rejected", "superseded"]


@intake_router.get(
    "/intake/submissions",
    response_model=SubmissionPage,
    summary="Submissions received (by status and partner), oldest first: a partner's own",
    description=(
        "Any one of registration:read or registration:intake: a partner's token, its intake"
        " token included, sees its own organisation's submissions only (need to know)."
    ),
    responses={422: ERRORS[422]},
)
async def list_submissions(
    runtime: RuntimeDep,
    principal: SubmissionReader,
    submission_status: Annotated[IntakeStatus | None, Query(alias="status")] = None,
    partner_org: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SubmissionPage:
    if (own := reader_org(principal)) is not None:
        if partner_org not in (None, own):
            return SubmissionPage(items=[], next_cursor=None)  # another partner's: none to see
        partner_org = own
    after = decode_cursor(cursor, 3)
    try:
        position = (datetime.fromisoformat(after[0]), after[1], after[2]) if after else None
    except ValueError:
        raise Refused(("query", "cursor"), "is not a cursor this list gave out") from None
    async with runtime.pool.acquire() as conn:
        rows = await repository.list_submissions(
            conn, status=submission_status, partner_org=partner_org, after=position, limit=limit + 1
        )
    page = rows[:limit]
    return SubmissionPage(
        items=[
            SubmissionOut(**{k: getattr(s, k) for k in SubmissionOut.model_fields}) for s in page
        ],
        next_cursor=(
            encode_cursor(page[-1].received_at, page[-1].partner_org, page[-1].submission_id)
            if len(rows) > limit
            else None
        ),
    )


@intake_router.get(
    "/intake/rejected",
    response_model=SubmissionPage,
    summary="Submissions kept but not mappable (the same as /intake/submissions?status=rejected)",
    description=(
        "Any one of registration:read or registration:intake: a partner's token, its intake"
        " token included, sees its own organisation's submissions only (need to know)."
    ),
)
async def list_rejected(
    runtime: RuntimeDep,
    principal: SubmissionReader,
    partner_org: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SubmissionPage:
    return await list_submissions(
        runtime,
        principal,
        submission_status="rejected",
        partner_org=partner_org,
        limit=limit,
        cursor=cursor,
    )


@intake_router.get(
    "/intake/submissions/{partner_org}/{submission_id}",
    response_model=SubmissionDetail,
    summary="One submission with its answers",
    description=(
        "Any one of registration:read or registration:intake: a partner's token, its intake"
        " token included, sees its own organisation's submissions only (need to know)."
    ),
    responses={404: ERRORS[404]},
)
async def read_submission(
    partner_org: str, submission_id: str, runtime: RuntimeDep, principal: SubmissionReader
) -> SubmissionDetail:
    if reader_org(principal) not in (None, partner_org):
        raise NotFound(f"submission {submission_id} of {partner_org} not found")
    async with runtime.pool.acquire() as conn:
        found = await repository.get_submission(
            conn, partner_org, submission_id, vault=service.vault_of(runtime)
        )
    if found is None:
        raise NotFound(f"submission {submission_id} of {partner_org} not found")
    return SubmissionDetail(**{k: getattr(found, k) for k in SubmissionDetail.model_fields})


@intake_router.post(
    "/intake/submissions/{partner_org}/{submission_id}/retry",
    response_model=IntakeOut,
    summary="Map a rejected submission again (after the cause was fixed)",
    responses={**ERRORS, 200: {"model": IntakeOut}},
    dependencies=[require_scope(REGISTRATION_WRITE)],
)
async def retry_submission(
    partner_org: str, submission_id: str, runtime: RuntimeDep
) -> JSONResponse:
    async with service.unit_of_work(runtime) as unit:
        result = await intake.retry(unit, partner_org, submission_id)
    return _intake_response(result)
