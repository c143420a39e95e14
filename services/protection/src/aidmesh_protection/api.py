"""HTTP API for protection caseworkers, supervisors and auditors.

Who calls: the subject of a signed bearer token (aidmesh_runtime.auth, ADR 0009), in the
one protection role its scopes give: `protection:caseworker`, `protection:supervisor` or
`protection:auditor`. The subject is the user id the access log records and assignments
name. A token with none of the three, or with more than one, is refused (403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from aidmesh_contracts import CaseSource, Urgency
from aidmesh_contracts.common import Code, Severity
from aidmesh_contracts.events.referral import ReferralTarget
from aidmesh_runtime.auth import (
    PROTECTION_AUDITOR,
    PROTECTION_CASEWORKER,
    PROTECTION_SUPERVISOR,
    Principal,
    authenticate,
    forbidden,
)
from aidmesh_runtime.params import AfterId, EachOnce, Offset
from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from . import service
from .domain import (
    USER_ID,
    Actor,
    Case,
    RiskLevel,
    Role,
    Status,
)
from .service import CaseView, Protection

router = APIRouter()

CASE_REF_PATTERN = r"^PRT-[0-9A-HJKMNP-TV-Z]{10}$"
CaseRefPath = Annotated[str, Path(pattern=CASE_REF_PATTERN, description="The case reference.")]
#: Free text of a narrative or note: sealed before it is stored, never logged or published.
Narrative = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
UserId = Annotated[str, StringConstraints(pattern=USER_ID.pattern)]


#: The protection roles, one scope each.
ROLE_SCOPES = {
    PROTECTION_CASEWORKER: Role.CASEWORKER,
    PROTECTION_SUPERVISOR: Role.SUPERVISOR,
    PROTECTION_AUDITOR: Role.AUDITOR,
}


async def caller(principal: Annotated[Principal, Depends(authenticate)]) -> Actor:
    """The caller: the token's subject, in the protection role its scopes give.

    A token with two or three protection roles is refused rather than narrowed or widened:
    which role the person acts in would be a guess, and the access log must say it exactly
    (a supervisor who also holds the auditor role asks for a token per role)."""
    roles = [role for scope, role in ROLE_SCOPES.items() if principal.has(scope)]
    if not roles:
        raise forbidden(f"this call needs one of the scopes {', '.join(ROLE_SCOPES)}")
    if len(roles) > 1:
        raise forbidden(
            f"this token carries {len(roles)} protection roles"
            f" ({', '.join(r.value for r in roles)}): protection needs a token with one"
        )
    if not USER_ID.fullmatch(principal.sub):
        raise forbidden("the token's subject is not a user id protection can record")
    return Actor(user_id=principal.sub, role=roles[0])


async def protection_of(
    request: Request, runtime: Annotated[Runtime, Depends(runtime_of)]
) -> Protection:
    return Protection(
        runtime=runtime,
        keyring=request.app.state.keyring,
        team_code=request.app.state.team_code,
    )


ActorDep = Annotated[Actor, Depends(caller)]
ProtectionDep = Annotated[Protection, Depends(protection_of)]

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No bearer token, or one refused: `detail` says why"},
    403: {
        "description": "The token has no protection role (protection:caseworker,"
        " protection:supervisor or protection:auditor) or more than one, or the role or"
        " assignment does not allow it"
    },
    404: {"description": "No such case"},
    409: {"description": "The case's state does not allow it; `reason` says why"},
    422: {"description": "A field is refused; the field and the reason, never its value"},
}


# ---- bodies and answers ------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HotlineCallIn(Body):
    call_id: UUID = Field(
        description="The hotline system's id of this call: submitting it again opens no second case."
    )
    severity: Severity
    concern_codes: Annotated[frozenset[Code], EachOnce] = Field(
        default=frozenset(), description="Coarse codes only, each once."
    )
    narrative: Narrative | None = Field(
        default=None, description="What the caller said. Stored encrypted; never shared."
    )
    safe_contact: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None, description="How to reach the caller safely. Stored encrypted."
    )
    household_id: UUID | None = Field(
        default=None,
        description="The caller's household if registered; none for an anonymous call.",
    )


class HouseholdLinkIn(Body):
    household_id: UUID


class AssignmentIn(Body):
    caseworker: UserId


class AssessmentIn(Body):
    risk_level: RiskLevel
    note: Narrative | None = None


class PlanIn(Body):
    note: Narrative = Field(description="The case plan. Stored encrypted.")


class ReviewIn(Body):
    decision: Literal["approve", "reject"]
    note: Narrative | None = None


class FollowUpIn(Body):
    note: Narrative


class NoteIn(Body):
    note: Narrative


class ClosureIn(Body):
    closure_code: Code = Field(
        description="goals_met, referred, lost_contact, declined_services, relocated, duplicate,"
        " consent_withdrawn"
    )
    note: Narrative | None = None


class ReferralIn(Body):
    to: ReferralTarget
    reason_code: Code = Field(description="The service needed (e.g. safe_shelter, medical_care).")
    urgency: Urgency


class CaseOut(BaseModel):
    """A case's metadata. `household_id` is withheld from auditors (`has_household` says
    whether there is one)."""

    case_ref: str
    source: CaseSource
    status: Status
    severity: int
    concern_codes: list[str]
    risk_level: RiskLevel | None
    caseworker: str | None
    has_household: bool
    household_id: UUID | None
    plan_approved_by: str | None
    review_requested_by: str | None
    closure_code: str | None
    opened_at: datetime
    closed_at: datetime | None


class NoteOut(BaseModel):
    note_id: UUID
    kind: str
    author: str
    author_role: str
    written_at: datetime
    text: str | None = Field(description="Withheld (null) for auditors.")
    unreadable: bool = False


class CaseDetailOut(CaseOut):
    withheld: list[str] = Field(description="What the caller's role may not read.")
    notes: list[NoteOut]
    safe_contact: str | None
    referrals_out: list[dict[str, Any]]
    referrals_in: list[dict[str, Any]]


class HotlineCallOut(BaseModel):
    case_ref: str
    status: Status
    created: bool


class ReferralOut(BaseModel):
    referral_id: UUID
    household_id: UUID
    to: str
    status: str = "requested"


class AccessLogEntry(BaseModel):
    id: int
    at: datetime
    user_id: str
    role: str
    case_ref: str | None
    action: str
    outcome: str


def _case_out(case: Case, actor: Actor) -> dict[str, Any]:
    sees_household = actor.role is not Role.AUDITOR
    return {
        "case_ref": case.case_ref,
        "source": case.source,
        "status": case.status,
        "severity": case.severity,
        "concern_codes": sorted(case.concern_codes),
        "risk_level": case.risk_level,
        "caseworker": case.caseworker,
        "has_household": case.household_id is not None,
        "household_id": case.household_id if sees_household else None,
        "plan_approved_by": case.plan_approved_by,
        "review_requested_by": case.review_requested_by,
        "closure_code": case.closure_code,
        "opened_at": case.opened_at,
        "closed_at": case.closed_at,
    }


def _detail_out(view: CaseView, actor: Actor) -> dict[str, Any]:
    withheld = [] if view.restricted else ["household_id", "notes.text", "safe_contact"]
    return _case_out(view.case, actor) | {
        "withheld": withheld,
        "notes": [vars(n) for n in view.notes],
        "safe_contact": view.safe_contact,
        "referrals_out": view.referrals_out,
        "referrals_in": view.referrals_in,
    }


# ---- endpoints ---------------------------------------------------------------------------


@router.post(
    "/hotline/calls",
    tags=["intake"],
    response_model=HotlineCallOut,
    status_code=201,
    summary="Take a hotline call: opens a case, anonymous or for a household",
    responses={200: {"description": "This call was recorded already: its case"}} | REFUSALS,
)
async def take_hotline_call(
    body: HotlineCallIn, actor: ActorDep, app: ProtectionDep, response: Response
) -> HotlineCallOut:
    case, created = await service.take_hotline_call(
        app,
        actor,
        call_id=body.call_id,
        severity=body.severity,
        concern_codes=body.concern_codes,
        narrative=body.narrative,
        safe_contact=body.safe_contact,
        household_id=body.household_id,
    )
    if not created:
        response.status_code = 200
    return HotlineCallOut(case_ref=case.case_ref, status=case.status, created=created)


@router.get(
    "/cases",
    tags=["cases"],
    response_model=list[CaseOut],
    summary="Cases the caller may see (a caseworker: their own), most severe first",
    responses=REFUSALS,
)
async def list_cases(
    actor: ActorDep,
    app: ProtectionDep,
    status: Status | None = None,
    unassigned: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    cases = await service.list_cases(
        app, actor, status=status, unassigned=unassigned, limit=limit, offset=offset
    )
    return [_case_out(c, actor) for c in cases]


@router.get(
    "/cases/{case_ref}",
    tags=["cases"],
    response_model=CaseDetailOut,
    summary="One case: notes opened for its caseworker and supervisors, metadata for auditors",
    responses=REFUSALS,
)
async def get_case(case_ref: CaseRefPath, actor: ActorDep, app: ProtectionDep) -> dict[str, Any]:
    view = await service.view_case(app, actor, case_ref)
    return _detail_out(view, actor)


async def _run(call: Any, actor: Actor) -> dict[str, Any]:
    case = await call
    return _case_out(case, actor)


@router.post(
    "/cases/{case_ref}/household",
    tags=["cases"],
    response_model=CaseOut,
    summary="Link an anonymous case to the caller's household",
    responses=REFUSALS,
)
async def link_household(
    case_ref: CaseRefPath, body: HouseholdLinkIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(
        service.link_household(app, actor, case_ref, household_id=body.household_id), actor
    )


@router.post(
    "/cases/{case_ref}/assignment",
    tags=["cases"],
    response_model=CaseOut,
    summary="Assign the case to a caseworker (supervisors)",
    responses=REFUSALS,
)
async def assign(
    case_ref: CaseRefPath, body: AssignmentIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(service.assign(app, actor, case_ref, caseworker=body.caseworker), actor)


@router.post(
    "/cases/{case_ref}/assessment",
    tags=["cases"],
    response_model=CaseOut,
    summary="Record the risk assessment",
    responses=REFUSALS,
)
async def assess(
    case_ref: CaseRefPath, body: AssessmentIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(
        service.assess(app, actor, case_ref, risk_level=body.risk_level, note=body.note), actor
    )


@router.post(
    "/cases/{case_ref}/plan",
    tags=["cases"],
    response_model=CaseOut,
    summary="Propose the case plan (high and critical risk: to supervisor review)",
    responses=REFUSALS,
)
async def propose_plan(
    case_ref: CaseRefPath, body: PlanIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(service.propose_plan(app, actor, case_ref, note=body.note), actor)


@router.post(
    "/cases/{case_ref}/plan/review",
    tags=["cases"],
    response_model=CaseOut,
    summary="Approve or reject the case plan (supervisors)",
    responses=REFUSALS,
)
async def review_plan(
    case_ref: CaseRefPath, body: ReviewIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(
        service.review_plan(
            app, actor, case_ref, approve=body.decision == "approve", note=body.note
        ),
        actor,
    )


@router.post(
    "/cases/{case_ref}/follow-ups",
    tags=["cases"],
    response_model=CaseOut,
    summary="Record a follow-up",
    responses=REFUSALS,
)
async def follow_up(
    case_ref: CaseRefPath, body: FollowUpIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(service.record_follow_up(app, actor, case_ref, note=body.note), actor)


@router.post(
    "/cases/{case_ref}/notes",
    tags=["cases"],
    response_model=CaseOut,
    summary="Add a case note",
    responses=REFUSALS,
)
async def add_note(
    case_ref: CaseRefPath, body: NoteIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(service.add_note(app, actor, case_ref, note=body.note), actor)


@router.post(
    "/cases/{case_ref}/closure",
    tags=["cases"],
    response_model=CaseOut,
    summary="Ask to close the case (a supervisor reviews)",
    responses=REFUSALS,
)
async def request_closure(
    case_ref: CaseRefPath, body: ClosureIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(
        service.request_closure(
            app, actor, case_ref, closure_code=body.closure_code, note=body.note
        ),
        actor,
    )


@router.post(
    "/cases/{case_ref}/closure/review",
    tags=["cases"],
    response_model=CaseOut,
    summary="Approve (close) or reject the closure (supervisors)",
    responses=REFUSALS,
)
async def review_closure(
    case_ref: CaseRefPath, body: ReviewIn, actor: ActorDep, app: ProtectionDep
) -> dict[str, Any]:
    return await _run(
        service.review_closure(
            app, actor, case_ref, approve=body.decision == "approve", note=body.note
        ),
        actor,
    )


@router.post(
    "/cases/{case_ref}/referrals",
    tags=["referrals"],
    response_model=ReferralOut,
    status_code=201,
    summary="Refer the household to another sector, with its consent (no narrative travels)",
    responses=REFUSALS,
)
async def refer(
    case_ref: CaseRefPath, body: ReferralIn, actor: ActorDep, app: ProtectionDep
) -> ReferralOut:
    referral = await service.refer(
        app, actor, case_ref, to=body.to, reason_code=body.reason_code, urgency=body.urgency
    )
    return ReferralOut(
        referral_id=referral.referral_id, household_id=referral.household_id, to=referral.to
    )


@router.get(
    "/access-log",
    tags=["audit"],
    response_model=list[AccessLogEntry],
    summary="Who accessed which case, when, to do what (auditors)",
    responses=REFUSALS,
)
async def access_log(
    actor: ActorDep,
    app: ProtectionDep,
    case_ref: Annotated[str | None, Query(pattern=CASE_REF_PATTERN)] = None,
    user_id: Annotated[str | None, Query(pattern=USER_ID.pattern)] = None,
    after_id: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    return await service.read_access_log(
        app, actor, case_ref=case_ref, user_id=user_id, after_id=after_id, limit=limit
    )
