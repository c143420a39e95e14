"""Health rules. Pure: no database, no Kafka, no clock.

Mobile medical teams serve the oblasts they cover, up to a number of visits a day, with the
services they offer. Health needs and referrals become visit requests; `plan_visits` gives
them days and teams, most urgent first. What a team sees and writes about a person's health
(clinical notes, diagnoses) never enters these events: they carry service codes only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from aidmesh_contracts import (
    AssistanceDelivered,
    ConsentPurpose,
    HealthNeedDetails,
    Location,
    Modality,
    NeedAssessed,
    ReferralRequested,
    Sector,
    Urgency,
    VisitCompleted,
    VisitMissed,
    VisitScheduled,
)
from aidmesh_runtime.rules import Conflict, RuleRefused

DEFAULT_SERVICE = "primary_consultation"

#: Service codes a mobile medical team may offer (and a need may ask for).
SERVICES: frozenset[str] = frozenset(
    {
        "primary_consultation",
        "ncd_followup",
        "chronic_disease_care",
        "srh",
        "maternal_care",
        "child_health",
        "vaccination",
        "mhpss",
        "rehabilitation",
    }
)

#: Coarse reasons health may refer for. A closed list, so that a diagnosis can never be
#: smuggled onto the referral topic as a "reason code".
REFERRAL_REASONS: frozenset[str] = frozenset(
    {
        "specialist_care",
        "rehabilitation",
        "mhpss",
        "suspected_violence",
        "gbv_support",
        "child_protection",
        "disability_support",
        "maternal_care",
        "social_support",
    }
)

#: Oblast P-codes (OCHA COD-AB first level): a team covers some of these.
OBLASTS: frozenset[str] = frozenset(
    [
        "UA01",
        "UA05",
        "UA07",
        "UA12",
        "UA14",
        "UA18",
        "UA21",
        "UA23",
        "UA26",
        "UA32",
        "UA35",
        "UA44",
        "UA46",
        "UA48",
        "UA51",
        "UA53",
        "UA56",
        "UA59",
        "UA61",
        "UA63",
        "UA65",
        "UA68",
        "UA71",
        "UA73",
        "UA74",
        "UA80",
        "UA85",
    ]
)

#: Reasons a visit is recorded as missed through the API.
MISSED_REASONS: frozenset[str] = frozenset({"no_show", "no_access", "team_unavailable"})
#: A visit cancelled because the household merged into one that has the same visit.
DUPLICATE_AFTER_MERGE = "duplicate_after_merge"
#: Why a request stops being scheduled after repeated missed visits.
NOT_REACHED = "household_not_reached"

# ---- priority --------------------------------------------------------------------------

#: Priority (1 is served first) by JIAF severity: one severity level is 15 points.
SEVERITY_BASE: Mapping[int, int] = {5: 10, 4: 25, 3: 40, 2: 55, 1: 70}
#: Points off for vulnerabilities that make a health visit more urgent.
VULNERABILITY_POINTS: Mapping[str, int] = {
    "pregnant_or_lactating": 6,
    "chronic_illness": 6,
    "disability": 5,
    "elderly_headed": 4,
    "child_headed": 4,
    "unaccompanied_minor": 4,
    "female_headed": 2,
    "large_family": 2,
}
#: Less than one severity level: vulnerability orders households within a severity level,
#: it never puts a less severe need before a more severe one.
MAX_VULNERABILITY_POINTS = 14
URGENCY_POINTS: Mapping[Urgency, int] = {
    Urgency.ROUTINE: 0,
    Urgency.PRIORITY: 10,
    Urgency.EMERGENCY: 30,
}
#: A referral names no severity; it counts as a severe (3) need, its urgency on top.
REFERRAL_SEVERITY = 3


def visit_priority(
    *, severity: int, vulnerabilities: Iterable[str], urgency: Urgency | None = None
) -> int:
    """1 (first) to 100: higher severity, more vulnerability and more urgency come first."""
    vulnerability = min(
        sum(VULNERABILITY_POINTS.get(v, 0) for v in set(vulnerabilities)),
        MAX_VULNERABILITY_POINTS,
    )
    urgent = URGENCY_POINTS[urgency] if urgency is not None else 0
    return max(1, min(100, SEVERITY_BASE[severity] - vulnerability - urgent))


def services_for_need(need: NeedAssessed) -> frozenset[str]:
    """The services a need asks for that teams can offer; a primary consultation otherwise
    (a need for something no team offers still deserves a visit)."""
    details = need.details
    asked = details.services_needed if isinstance(details, HealthNeedDetails) else frozenset()
    return (asked & SERVICES) or frozenset({DEFAULT_SERVICE})


def services_for_referral(reason_code: str) -> frozenset[str]:
    """A referral for a service we offer asks for it; any other for a primary consultation."""
    return frozenset({reason_code}) if reason_code in SERVICES else frozenset({DEFAULT_SERVICE})


# ---- teams and planning ----------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    team_code: str
    home_oblast: str
    oblasts: frozenset[str]  # always includes the home oblast
    daily_capacity: int
    services: frozenset[str]
    active: bool = True


@dataclass(frozen=True)
class VisitRequest:
    """A household waiting for a visit: from a health need or a referral to health."""

    request_id: UUID
    oblast: str
    services: frozenset[str]
    priority: int
    received_at: datetime
    not_before: date | None = None


@dataclass(frozen=True)
class Assignment:
    request_id: UUID
    team_code: str
    day: date
    services: frozenset[str]  # what the team will bring: the request's services it offers


class BacklogReason(StrEnum):
    NO_TEAM_FOR_AREA = "no_team_for_area"
    NO_TEAM_FOR_SERVICE = "no_team_for_service"
    NO_CAPACITY = "no_capacity"


@dataclass(frozen=True)
class Plan:
    assignments: tuple[Assignment, ...]
    backlog: Mapping[UUID, BacklogReason] = field(default_factory=dict)


def queue_order(request: VisitRequest) -> tuple[int, datetime, UUID]:
    """Most urgent first; among equals, who asked first; the id settles the rest."""
    return (request.priority, request.received_at, request.request_id)


def teams_for(
    teams: Iterable[Team], *, oblast: str, services: frozenset[str]
) -> tuple[list[Team], BacklogReason | None]:
    """Active teams that cover the oblast and bring the most of the services asked for."""
    covering = [t for t in teams if t.active and oblast in t.oblasts]
    if not covering:
        return [], BacklogReason.NO_TEAM_FOR_AREA
    best = max(len(t.services & services) for t in covering)
    if best == 0:
        return [], BacklogReason.NO_TEAM_FOR_SERVICE
    return [t for t in covering if len(t.services & services) == best], None


def plan_visits(
    requests: Iterable[VisitRequest],
    *,
    teams: Sequence[Team],
    booked: Mapping[tuple[str, date], int],
    first_day: date,
    horizon_days: int,
) -> Plan:
    """Give each request the earliest day with room, most urgent request first.

    A team serves only the oblasts it covers and must offer a service asked for (the team
    offering the most of them wins); `booked` counts visits already on a team's day. Among
    teams free on the same day the household's home-oblast team goes first (less travel),
    then the team code. A request with no team or no room within the horizon stays in the
    backlog, with the reason.
    """
    load = dict(booked)
    assignments: list[Assignment] = []
    backlog: dict[UUID, BacklogReason] = {}
    last_day = first_day + timedelta(days=horizon_days - 1)
    for request in sorted(requests, key=queue_order):
        candidates, reason = teams_for(teams, oblast=request.oblast, services=request.services)
        if reason is not None:
            backlog[request.request_id] = reason
            continue
        chosen = _earliest_free(
            candidates,
            load,
            oblast=request.oblast,
            start=max(first_day, request.not_before or first_day),
            end=last_day,
        )
        if chosen is None:
            backlog[request.request_id] = BacklogReason.NO_CAPACITY
            continue
        team, day = chosen
        load[(team.team_code, day)] = load.get((team.team_code, day), 0) + 1
        assignments.append(
            Assignment(request.request_id, team.team_code, day, request.services & team.services)
        )
    return Plan(tuple(assignments), backlog)


def _earliest_free(
    teams: list[Team], load: Mapping[tuple[str, date], int], *, oblast: str, start: date, end: date
) -> tuple[Team, date] | None:
    preference = sorted(teams, key=lambda t: (t.home_oblast != oblast, t.team_code))
    day = start
    while day <= end:
        for team in preference:
            if load.get((team.team_code, day), 0) < team.daily_capacity:
                return team, day
        day += timedelta(days=1)
    return None


# ---- visits ----------------------------------------------------------------------------


class HealthRuleError(ValueError, RuleRefused):
    """A request that health's rules refuse; the message says why (no personal data) and
    `field` names the input at fault, when one is."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class VisitNotOpen(HealthRuleError, Conflict):
    """The visit is no longer scheduled (completed, missed, rescheduled or cancelled)."""


class ConsentMissing(HealthRuleError, Conflict):
    """The household has not consented to referral (or withdrew it)."""

    code = "consent_missing"


@dataclass(frozen=True)
class Visit:
    visit_id: UUID
    household_id: UUID
    request_id: UUID | None
    team_code: str
    status: str
    scheduled_for: date | None
    services_planned: frozenset[str]
    priority: int
    location: Location


def visit_scheduled(
    assignment: Assignment,
    *,
    visit_id: UUID,
    household_id: UUID,
    priority: int,
    location: Location,
    rescheduled_from: UUID | None,
    now: datetime,
) -> VisitScheduled:
    return VisitScheduled(
        visit_id=visit_id,
        household_id=household_id,
        team_code=assignment.team_code,
        scheduled_for=assignment.day,
        services_planned=assignment.services,
        priority=priority,
        rescheduled_from=rescheduled_from,
        location=location,
        scheduled_at=now,
    )


def require_scheduled(visit: Visit) -> None:
    if visit.status != "scheduled":
        raise VisitNotOpen(f"visit {visit.visit_id} is {visit.status}, not scheduled")


def complete_visit(
    visit: Visit,
    *,
    services_delivered: frozenset[str],
    persons_seen: int,
    team_services: frozenset[str],
    partner_org: str,
    new_id: Callable[[], UUID],
    now: datetime,
) -> tuple[VisitCompleted, list[AssistanceDelivered]]:
    """A completed visit, and one delivery per service given (activity health.<service>,
    one visit each): the 5W counts consultations by service."""
    require_scheduled(visit)
    not_offered = sorted(services_delivered - team_services)
    if not_offered:
        raise HealthRuleError(
            f"team {visit.team_code} does not offer {', '.join(not_offered)}",
            field="services_delivered",
        )
    completed = VisitCompleted(
        visit_id=visit.visit_id,
        household_id=visit.household_id,
        team_code=visit.team_code,
        services_delivered=services_delivered,
        persons_seen=persons_seen,
        location=visit.location,
        completed_at=now,
    )
    deliveries = [
        AssistanceDelivered(
            delivery_id=new_id(),
            household_id=visit.household_id,
            sector=Sector.HEALTH,
            activity=f"health.{service}",
            modality=Modality.SERVICE,
            quantity=Decimal(1),
            unit="visit",
            persons_reached=persons_seen,
            partner_org=partner_org,
            location=visit.location,
            delivered_at=now,
        )
        for service in sorted(services_delivered)
    ]
    return completed, deliveries


def miss_visit(visit: Visit, *, reason_code: str, now: datetime) -> VisitMissed:
    require_scheduled(visit)
    return VisitMissed(
        visit_id=visit.visit_id,
        household_id=visit.household_id,
        team_code=visit.team_code,
        reason_code=reason_code,
        recorded_at=now,
    )


def cancel_duplicate(visit: Visit, *, now: datetime) -> VisitMissed:
    """A duplicate cancelled after a merge: VisitMissed says the slot will not be used."""
    return miss_visit(visit, reason_code=DUPLICATE_AFTER_MERGE, now=now)


def reschedule_after_miss(*, missed_so_far: int, max_missed: int) -> bool:
    """Whether a request whose visit was just missed gets another visit (bounded)."""
    return missed_so_far < max_missed


def duplicate_visits(visits: Iterable[Visit]) -> list[Visit]:
    """After a merge, the scheduled visits a household no longer needs: those whose planned
    services an earlier visit of the same household already brings (the earliest stays)."""
    covered: set[str] = set()
    duplicates = []
    ordered = sorted(
        (v for v in visits if v.status == "scheduled"),
        key=lambda v: (v.scheduled_for or date.max, v.priority, str(v.visit_id)),
    )
    for visit in ordered:
        if visit.services_planned <= covered:
            duplicates.append(visit)
        else:
            covered |= visit.services_planned
    return duplicates


# ---- referrals -------------------------------------------------------------------------

SECTORS = frozenset(s.value for s in Sector)


def check_referral_target(to: str) -> None:
    """Health refers to another sector or to an external service."""
    if not to.startswith("external.") and to not in SECTORS:
        raise HealthRuleError(
            f"unknown referral target {to}: a sector or external.<service>", field="to"
        )
    if to == Sector.HEALTH.value:
        raise HealthRuleError(
            "health does not refer to itself: schedule a visit instead", field="to"
        )


def check_referral_reason(reason_code: str) -> None:
    """Only coarse, known reasons: a diagnosis never passes for a reason code."""
    if reason_code not in REFERRAL_REASONS:
        raise HealthRuleError(
            f"unknown referral reason; one of {', '.join(sorted(REFERRAL_REASONS))}",
            field="reason_code",
        )


def refer(
    *,
    referral_id: UUID,
    household_id: UUID,
    to: str,
    reason_code: str,
    urgency: Urgency,
    consents: frozenset[str],
    requested_by: str,
    now: datetime,
) -> ReferralRequested:
    check_referral_target(to)
    check_referral_reason(reason_code)
    if ConsentPurpose.REFERRAL.value not in consents:
        raise ConsentMissing("the household has not consented to referral")
    return ReferralRequested(
        referral_id=referral_id,
        household_id=household_id,
        from_sector=Sector.HEALTH,
        to=to,
        reason_code=reason_code,
        urgency=urgency,
        consent_purpose=ConsentPurpose.REFERRAL,
        requested_by=requested_by,
        requested_at=now,
    )


class ReferralAnswer(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    COMPLETED = "completed"


#: Where an outgoing referral may go from each status on the target's answer. `withdrawn`
#: (our side, consent gone), `declined` and `completed` are final.
_OUTGOING_NEXT: Mapping[str, frozenset[ReferralAnswer]] = {
    "requested": frozenset(ReferralAnswer),
    "accepted": frozenset({ReferralAnswer.DECLINED, ReferralAnswer.COMPLETED}),
}


def answered_status(current: str, answer: ReferralAnswer) -> str | None:
    """The outgoing referral's new status after the target's answer; None if it stays."""
    return answer.value if answer in _OUTGOING_NEXT.get(current, frozenset()) else None


def incoming_referral_decline(
    *, consents: frozenset[str], teams: Iterable[Team], oblast: str, services: frozenset[str]
) -> str | None:
    """Why health declines a referral to it (None: accepted). Consent first: without it
    nothing else is looked at."""
    if ConsentPurpose.REFERRAL.value not in consents:
        return "consent_missing"
    _, reason = teams_for(teams, oblast=oblast, services=services)
    return reason.value if reason is not None else None
