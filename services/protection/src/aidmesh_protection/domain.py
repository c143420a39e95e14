"""Protection rules. Pure: no database, no Kafka, no clock, no keys.

A case moves through intake → assessment (risk level) → case plan → follow-up(s) →
closure. A plan for a high or critical risk, and every closure, waits for a supervisor's
review, by a supervisor other than the person who asked for it (four eyes). Who may do
what to a case is decided here too (`access_denial`), so the rules are tested without a
database or HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from aidmesh_contracts import (
    CaseSource,
    ConsentPurpose,
    NeedAssessed,
    ProtectionCaseClosed,
    ProtectionCaseOpened,
    ProtectionNeedDetails,
    ReferralRequested,
    Sector,
    Urgency,
)
from aidmesh_runtime import rules
from aidmesh_runtime.rules import RuleRefused

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CASE_REF = re.compile(r"^PRT-[0-9A-HJKMNP-TV-Z]{10}$")
#: Who a caller is: a staff account id (never a beneficiary), the subject of their bearer
#: token (`user:olena.k`, or a bare id), as the access log and assignments record it.
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")


def case_ref(random_id: UUID) -> str:
    """A pseudonymous reference, derived from a random id (never from the household id),
    so it reveals nothing about who the case is about."""
    # The low 50 bits: in a version-4 UUID all of them are random (the version and variant
    # bits sit higher up), so every one of the 32^10 references is possible.
    bits = random_id.int & ((1 << 50) - 1)
    chars = [CROCKFORD[(bits >> shift) & 0x1F] for shift in range(45, -1, -5)]
    return "PRT-" + "".join(chars)


# ---- who ---------------------------------------------------------------------------------


class Role(StrEnum):
    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Actor:
    user_id: str
    role: Role


class Action(StrEnum):
    """What a caller does with a case; also what the access log records."""

    LIST = "list"
    VIEW_METADATA = "view_metadata"
    VIEW_CASE = "view_case"  # metadata, decrypted notes and safe contact
    HOTLINE_INTAKE = "hotline_intake"
    ASSIGN = "assign"
    LINK_HOUSEHOLD = "link_household"
    ASSESS = "assess"
    PLAN = "plan"
    REVIEW_PLAN = "review_plan"
    FOLLOW_UP = "follow_up"
    ADD_NOTE = "add_note"
    REQUEST_CLOSURE = "request_closure"
    REVIEW_CLOSURE = "review_closure"
    REFER = "refer"
    READ_ACCESS_LOG = "read_access_log"


AUDITOR_ACTIONS = frozenset({Action.LIST, Action.VIEW_METADATA, Action.READ_ACCESS_LOG})
SUPERVISOR_ACTIONS = frozenset({Action.ASSIGN, Action.REVIEW_PLAN, Action.REVIEW_CLOSURE})


class Forbidden(rules.Forbidden):
    """The caller may not do this (403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="forbidden")
        self.reason = reason


class Refused(rules.Conflict):
    """The case's state does not allow it (409), with a code and a reason for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, code=code)
        self.reason = reason


class Invalid(RuleRefused):
    """The request names something a rule does not accept (422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason, field=field)
        self.reason = reason


def view_for(actor: Actor) -> Action:
    """What reading a case means for this caller: auditors see metadata only."""
    return Action.VIEW_METADATA if actor.role is Role.AUDITOR else Action.VIEW_CASE


def access_denial(actor: Actor, action: Action, case: Case | None = None) -> str | None:
    """Why `actor` may not do `action` (on `case`), or None when they may.

    Auditors read case metadata and the access log, nothing else (no narratives, no notes,
    no household ids). Supervisors do everything, on every case. Caseworkers work only on
    the cases assigned to them, and neither assign nor review.
    """
    if actor.role is Role.AUDITOR:
        if action in AUDITOR_ACTIONS:
            return None
        return "an auditor reads case metadata and the access log only"
    if action is Action.READ_ACCESS_LOG:
        return "the access log is read by auditors"
    if actor.role is Role.SUPERVISOR:
        return None
    if action in SUPERVISOR_ACTIONS:
        return f"{action.value} is a supervisor's decision"
    if case is not None and case.caseworker != actor.user_id:
        return "the case is not assigned to you"
    return None


# ---- the case ----------------------------------------------------------------------------


class Status(StrEnum):
    INTAKE = "intake"
    ASSESSED = "assessed"
    PLAN_IN_REVIEW = "plan_in_review"
    CASE_PLAN = "case_plan"
    FOLLOW_UP = "follow_up"
    CLOSURE_IN_REVIEW = "closure_in_review"
    CLOSED = "closed"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


#: Plans for these risks go into effect only once a supervisor approved them.
REVIEWED_RISKS = frozenset({RiskLevel.HIGH, RiskLevel.CRITICAL})

CLOSURE_CODES = frozenset(
    {
        "goals_met",
        "referred",
        "lost_contact",
        "declined_services",
        "relocated",
        "duplicate",
        "consent_withdrawn",
    }
)

#: Reasons a protection case may give when it refers a household elsewhere. They name the
#: service needed, never the protection concern: a referral travels on a topic every sector
#: reads, and "gbv_survivor" there would disclose what the survivor told us.
REFERRAL_REASONS = frozenset(
    {
        "safe_shelter",
        "emergency_shelter",
        "medical_care",
        "mhpss",
        "cash_assistance",
        "legal_assistance",
        "civil_documentation",
        "nfi",
        "livelihoods",
    }
)

#: The severity of a case opened from a referral, which carries an urgency instead.
URGENCY_SEVERITY = {Urgency.ROUTINE: 3, Urgency.PRIORITY: 4, Urgency.EMERGENCY: 5}


@dataclass(frozen=True)
class Case:
    case_ref: str
    household_id: UUID | None
    source: CaseSource
    severity: int
    concern_codes: frozenset[str]
    status: Status
    opened_at: datetime
    caseworker: str | None = None
    risk_level: RiskLevel | None = None
    plan_approved_by: str | None = None
    #: Who asked for the pending review (plan or closure): they may not approve it.
    review_requested_by: str | None = None
    closure_code: str | None = None
    #: Where a rejected closure returns the case.
    resume_status: Status | None = None
    closed_at: datetime | None = None


def new_case(opened: ProtectionCaseOpened, *, caseworker: str | None = None) -> Case:
    return Case(
        case_ref=opened.case_ref,
        household_id=opened.household_id,
        source=opened.source,
        severity=opened.severity,
        concern_codes=frozenset(opened.concern_codes),
        status=Status.INTAKE,
        opened_at=opened.opened_at,
        caseworker=caseworker,
    )


def open_case_from_need(
    need: NeedAssessed, *, random_id: UUID, now: datetime, household_id: UUID | None = None
) -> ProtectionCaseOpened:
    """A protection need opens a case (for `household_id` when the household was merged)."""
    details = need.details
    concerns = details.concern_codes if isinstance(details, ProtectionNeedDetails) else frozenset()
    return ProtectionCaseOpened(
        case_ref=case_ref(random_id),
        household_id=household_id or need.household_id,
        source=CaseSource.NEED_ASSESSMENT,
        severity=need.severity,
        concern_codes=concerns,
        opened_at=now,
    )


def open_case_from_referral(
    referral: ReferralRequested, *, household_id: UUID, random_id: UUID, now: datetime
) -> ProtectionCaseOpened:
    return ProtectionCaseOpened(
        case_ref=case_ref(random_id),
        household_id=household_id,
        source=CaseSource.REFERRAL,
        severity=URGENCY_SEVERITY[referral.urgency],
        concern_codes=frozenset({referral.reason_code}),
        opened_at=now,
    )


def open_case_from_hotline(
    *,
    severity: int,
    concern_codes: frozenset[str],
    household_id: UUID | None,
    random_id: UUID,
    now: datetime,
) -> ProtectionCaseOpened:
    """A hotline call opens a case, with or without a household (an anonymous caller)."""
    return ProtectionCaseOpened(
        case_ref=case_ref(random_id),
        household_id=household_id,
        source=CaseSource.HOTLINE,
        severity=severity,
        concern_codes=concern_codes,
        opened_at=now,
    )


def hotline_caseworker(actor: Actor) -> str | None:
    """A caseworker who takes a call keeps the case; a supervisor's call waits to be assigned."""
    return actor.user_id if actor.role is Role.CASEWORKER else None


def incoming_referral_decline(
    referral: ReferralRequested, household_consents: Set[str] | None
) -> str | None:
    """Why protection declines a referral to it, or None to accept it.

    Protection takes a case on only with consent to be referred. A household this service
    does not know yet (the household topic may lag the referral topic) is taken on trust in
    the referring sector's check, so that nobody at risk waits on event ordering.
    """
    if referral.consent_purpose is not ConsentPurpose.REFERRAL:
        return "consent_purpose_not_referral"
    if household_consents is not None and ConsentPurpose.REFERRAL not in household_consents:
        return "no_referral_consent"
    return None


# ---- transitions -------------------------------------------------------------------------


def _refuse_if_closed(case: Case) -> None:
    if case.status is Status.CLOSED:
        raise Refused("case_closed", "the case is closed")


def assign(case: Case, *, caseworker: str) -> Case:
    _refuse_if_closed(case)
    if not USER_ID.fullmatch(caseworker):
        raise Invalid("caseworker", "not a user id")
    return replace(case, caseworker=caseworker)


def link_household(case: Case, *, household_id: UUID) -> Case:
    """An anonymous hotline case gets its household once the caller is registered."""
    _refuse_if_closed(case)
    if case.household_id == household_id:
        return case  # a retried request
    if case.household_id is not None:
        raise Refused("household_already_linked", "the case already has a household")
    return replace(case, household_id=household_id)


def assess(case: Case, *, risk_level: RiskLevel, by: Actor) -> Case:
    """Record the risk level. A reassessment during the plan that raises the risk to high
    or critical sends a plan no supervisor approved to review."""
    _refuse_if_closed(case)
    if case.status in (Status.INTAKE, Status.ASSESSED):
        return replace(case, status=Status.ASSESSED, risk_level=risk_level)
    if case.status in (Status.CASE_PLAN, Status.FOLLOW_UP):
        if risk_level in REVIEWED_RISKS and case.plan_approved_by is None:
            return replace(
                case,
                status=Status.PLAN_IN_REVIEW,
                risk_level=risk_level,
                review_requested_by=by.user_id,
            )
        return replace(case, risk_level=risk_level)
    raise Refused("invalid_transition", f"a case in {case.status.value} cannot be assessed")


def propose_plan(case: Case, *, by: Actor) -> Case:
    """A case plan (or a revised one) follows an assessment."""
    _refuse_if_closed(case)
    if case.status not in (Status.ASSESSED, Status.CASE_PLAN, Status.FOLLOW_UP):
        raise Refused(
            "invalid_transition",
            f"a case in {case.status.value} cannot get a plan: assess the risk first"
            if case.status is Status.INTAKE
            else f"a case in {case.status.value} cannot get a plan",
        )
    if case.risk_level in REVIEWED_RISKS:
        return replace(
            case,
            status=Status.PLAN_IN_REVIEW,
            plan_approved_by=None,
            review_requested_by=by.user_id,
        )
    return replace(case, status=Status.CASE_PLAN, plan_approved_by=None, review_requested_by=None)


def review_plan(case: Case, *, approve: bool, by: Actor) -> Case:
    """A supervisor approves the plan (it goes into effect) or rejects it (back to a new
    plan after the assessment)."""
    if case.status is not Status.PLAN_IN_REVIEW:
        raise Refused("nothing_to_review", "no plan of this case waits for review")
    _four_eyes(case, by)
    if approve:
        return replace(
            case, status=Status.CASE_PLAN, plan_approved_by=by.user_id, review_requested_by=None
        )
    return replace(case, status=Status.ASSESSED, plan_approved_by=None, review_requested_by=None)


def record_follow_up(case: Case) -> Case:
    _refuse_if_closed(case)
    if case.status not in (Status.CASE_PLAN, Status.FOLLOW_UP):
        raise Refused(
            "invalid_transition",
            f"a case in {case.status.value} cannot be followed up: it needs a case plan in effect",
        )
    return replace(case, status=Status.FOLLOW_UP)


def can_take_note(case: Case) -> None:
    _refuse_if_closed(case)


def request_closure(case: Case, *, closure_code: str, by: Actor) -> Case:
    if closure_code not in CLOSURE_CODES:
        raise Invalid("closure_code", "one of " + ", ".join(sorted(CLOSURE_CODES)))
    _refuse_if_closed(case)
    if case.status in (Status.PLAN_IN_REVIEW, Status.CLOSURE_IN_REVIEW):
        raise Refused("review_pending", f"the case waits for a supervisor ({case.status.value})")
    if closure_code == "goals_met" and case.status is not Status.FOLLOW_UP:
        raise Refused("no_follow_up", "goals are met only after at least one follow-up")
    return replace(
        case,
        status=Status.CLOSURE_IN_REVIEW,
        closure_code=closure_code,
        review_requested_by=by.user_id,
        resume_status=case.status,
    )


def review_closure(
    case: Case, *, approve: bool, by: Actor, now: datetime
) -> tuple[Case, ProtectionCaseClosed | None]:
    """A supervisor closes the case (ProtectionCaseClosed) or sends it back to where it was."""
    if case.status is not Status.CLOSURE_IN_REVIEW:
        raise Refused("nothing_to_review", "no closure of this case waits for review")
    _four_eyes(case, by)
    if not approve:
        resumed = replace(
            case,
            status=case.resume_status or Status.INTAKE,
            closure_code=None,
            review_requested_by=None,
            resume_status=None,
        )
        return resumed, None
    closed = replace(
        case, status=Status.CLOSED, review_requested_by=None, resume_status=None, closed_at=now
    )
    return closed, closed_event(closed)


def closed_event(case: Case) -> ProtectionCaseClosed:
    """What the restricted topic learns of a closed case: its reference and a coarse code."""
    if case.status is not Status.CLOSED or case.closure_code is None or case.closed_at is None:
        raise ValueError(f"case {case.case_ref} is not closed")
    return ProtectionCaseClosed(
        case_ref=case.case_ref,
        household_id=case.household_id,
        closure_code=case.closure_code,
        closed_at=case.closed_at,
    )


def _four_eyes(case: Case, by: Actor) -> None:
    if case.review_requested_by == by.user_id:
        raise Forbidden("a review is made by another supervisor than the one who asked for it")


# ---- referrals out -----------------------------------------------------------------------


class ReferralStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"  # consent withdrawn: protection declined it itself


OPEN_REFERRALS = frozenset({ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED})


def refer(
    case: Case,
    *,
    household_id: UUID | None,
    household_consents: Set[str] | None,
    to: str,
    reason_code: str,
    urgency: Urgency,
    referral_id: UUID,
    requested_by: str,
    now: datetime,
) -> ReferralRequested:
    """A referral to another sector, only with the household's consent to be referred.

    `household_id` is the household as the projection knows it now (after a merge, the one
    that stays); None when the projection does not know the household.
    """
    if to == Sector.PROTECTION.value:
        raise Invalid("to", "protection does not refer to itself")
    if reason_code not in REFERRAL_REASONS:
        raise Invalid(
            "reason_code", "name the service needed: one of " + ", ".join(sorted(REFERRAL_REASONS))
        )
    _refuse_if_closed(case)
    if case.household_id is None:
        raise Refused(
            "no_household",
            "an anonymous case cannot be referred: link it to a registered household first",
        )
    if household_id is None or household_consents is None:
        raise Refused(
            "household_unknown",
            "the household is not known to protection yet, so its consent cannot be checked",
        )
    if ConsentPurpose.REFERRAL not in household_consents:
        raise Refused("no_referral_consent", "the household has not consented to referrals")
    return ReferralRequested(
        referral_id=referral_id,
        household_id=household_id,
        from_sector=Sector.PROTECTION,
        to=to,
        reason_code=reason_code,
        urgency=urgency,
        consent_purpose=ConsentPurpose.REFERRAL,
        requested_by=requested_by,
        requested_at=now,
    )


def referral_answered(current: ReferralStatus, answer: ReferralStatus) -> ReferralStatus | None:
    """The status after the target's answer, or None when the answer changes nothing (the
    referral is already settled, or the answer repeats)."""
    if current not in OPEN_REFERRALS or current is answer:
        return None
    if answer is ReferralStatus.ACCEPTED and current is not ReferralStatus.REQUESTED:
        return None
    return answer
