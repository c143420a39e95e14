"""HTTP API of health: teams, visits, the mobile team's reports, referrals, capacity.

Clinical notes and diagnoses come in with a completion and never go out: no answer holds
them, and a refused request never echoes them (the runtime's 422 names field and reason).

Who delivered a completed visit's services (`partner_org`, the 5W "who") is the token's
organisation (ADR 0009); a body naming another one is refused (403 naming the field)
unless the token also holds `health:record-for-partners`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from aidmesh_contracts import Urgency
from aidmesh_contracts.common import Adm1PCode, Code, OrgCode
from aidmesh_contracts.events.referral import ReferralTarget
from aidmesh_runtime.auth import (
    HEALTH_READ,
    HEALTH_RECORD_FOR_PARTNERS,
    HEALTH_WRITE,
    Principal,
    attributed,
    require_scope,
)
from aidmesh_runtime.params import Day, Offset
from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from . import domain, repository, service
from .clinical import ClinicalRecord
from .service import Health, VisitNotFound

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]

#: Every endpoint needs a scope (ADR 0009): reading, or changing.
Reads = require_scope(HEALTH_READ)
Writes = require_scope(HEALTH_WRITE)
#: A change that records who did the work (the token's org, see `complete`).
Writer = Annotated[Principal, require_scope(HEALTH_WRITE)]

#: An ICD-10 code (e.g. F43.1): stored sealed with the clinical record, never published.
DiagnosisCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")]
MAX_CAPACITY_DAYS = 92


def _known_services(services: list[str]) -> list[str]:
    unknown = sorted(set(services) - domain.SERVICES)
    if unknown:
        raise ValueError(
            f"unknown service code {', '.join(unknown)}; one of {', '.join(sorted(domain.SERVICES))}"
        )
    return services


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_code: OrgCode
    home_oblast: Adm1PCode
    oblasts: list[Adm1PCode] = Field(
        default_factory=list, description="Other oblasts the team covers (home is implied)."
    )
    daily_capacity: Annotated[int, Field(ge=1, le=200, description="Visits a day.")]
    services: Annotated[list[Code], Field(min_length=1)]
    active: bool = True

    _services = field_validator("services")(_known_services)

    def team(self) -> domain.Team:
        return domain.Team(
            team_code=self.team_code,
            home_oblast=self.home_oblast,
            oblasts=frozenset({self.home_oblast, *self.oblasts}),
            daily_capacity=self.daily_capacity,
            services=frozenset(self.services),
            active=self.active,
        )


class TeamOut(BaseModel):
    team_code: str
    home_oblast: str
    oblasts: list[str]
    daily_capacity: int
    services: list[str]
    active: bool


class TeamSaved(TeamOut):
    created: bool
    visits_scheduled: int = Field(description="Waiting requests planned once the team was saved.")


class VisitOut(BaseModel):
    """A visit as coordinators and teams see it: codes and counts, never clinical data."""

    visit_id: UUID
    household_id: UUID
    request_id: UUID | None = None
    need_assessment_id: UUID | None = None
    team_code: str
    status: str
    scheduled_for: date | None = None
    services_planned: list[str] | None = None
    priority: int | None = None
    rescheduled_from: UUID | None = None
    adm1_pcode: str
    adm2_pcode: str | None = None
    adm3_pcode: str | None = None
    scheduled_at: datetime | None = None
    services_delivered: list[str] | None = None
    persons_seen: int | None = None
    completed_at: datetime | None = None
    missed_reason: str | None = None
    closed_at: datetime | None = None
    delivery_ids: list[UUID] = Field(default_factory=list)


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    services_delivered: Annotated[list[Code], Field(min_length=1, max_length=len(domain.SERVICES))]
    persons_seen: Annotated[int, Field(ge=1, le=99)]
    clinical_notes: Annotated[str, Field(max_length=20_000)] | None = Field(
        default=None, description="Free text for the clinical record; kept sealed, never shared."
    )
    diagnoses: Annotated[list[DiagnosisCode], Field(max_length=30)] = Field(
        default_factory=list, description="ICD-10 codes for the clinical record; never shared."
    )
    partner_org: OrgCode | None = Field(
        default=None,
        description="Who delivered the services (5W). Left out: the caller's organisation"
        " (the token's `org`). Another one needs the scope health:record-for-partners"
        " (else 403).",
    )

    _services = field_validator("services_delivered")(_known_services)


class CompletionOut(BaseModel):
    visit_id: UUID
    delivery_ids: list[UUID]


class MissedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason_code: Literal["no_show", "no_access", "team_unavailable"] = "no_show"


class MissedOut(BaseModel):
    visit_id: UUID
    outcome: Literal["rescheduled", "backlog", "closed"]
    new_visit_id: UUID | None = None
    scheduled_for: date | None = None


class RescheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason_code: Code = Field(examples=["household_request", "team_unavailable", "access"])
    on_or_after: date | None = Field(default=None, description="The earliest acceptable day.")


class ScheduledOut(BaseModel):
    visit_id: UUID
    rescheduled_from: UUID | None
    team_code: str
    scheduled_for: date


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: ReferralTarget
    reason_code: Code
    urgency: Urgency = Urgency.ROUTINE

    @field_validator("to")
    @classmethod
    def _target(cls, value: str) -> str:
        domain.check_referral_target(value)
        return value

    @field_validator("reason_code")
    @classmethod
    def _reason(cls, value: str) -> str:
        domain.check_referral_reason(value)
        return value


class ReferralOut(BaseModel):
    referral_id: UUID
    direction: str
    household_id: UUID
    visit_id: UUID | None = None
    request_id: UUID | None = None
    from_sector: str
    to: str
    reason_code: str
    urgency: str
    status: str
    status_reason: str | None = None
    requested_at: datetime
    updated_at: datetime


class SchedulingRunOut(BaseModel):
    visits_scheduled: int


def _team_out(team: domain.Team) -> dict[str, Any]:
    return {
        "team_code": team.team_code,
        "home_oblast": team.home_oblast,
        "oblasts": sorted(team.oblasts),
        "daily_capacity": team.daily_capacity,
        "services": sorted(team.services),
        "active": team.active,
    }


def build_router(health: Health) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/teams",
        dependencies=[Writes],
        response_model=TeamSaved,
        status_code=201,
        tags=["teams"],
        summary="Add a mobile medical team, or replace one (200); the backlog is planned again",
    )
    async def save_team(body: TeamIn, runtime: RuntimeDep, response: Response) -> dict[str, Any]:
        team = body.team()
        created, scheduled = await service.save_team(runtime, health, team)
        if not created:
            response.status_code = 200
        return _team_out(team) | {"created": created, "visits_scheduled": scheduled}

    @router.get(
        "/teams",
        dependencies=[Reads],
        response_model=list[TeamOut],
        tags=["teams"],
        summary="Mobile medical teams",
    )
    async def list_teams(runtime: RuntimeDep) -> list[dict[str, Any]]:
        async with runtime.pool.acquire() as conn:
            return [_team_out(t) for t in await repository.teams(conn)]

    @router.get(
        "/visits",
        dependencies=[Reads],
        response_model=list[VisitOut],
        tags=["visits"],
        summary="Visits, by day and priority",
    )
    async def list_visits(
        runtime: RuntimeDep,
        status: Literal["scheduled", "completed", "missed", "rescheduled", "cancelled"]
        | None = None,
        team_code: Annotated[OrgCode | None, Query()] = None,
        household_id: UUID | None = None,
        adm1_pcode: Annotated[Adm1PCode | None, Query()] = None,
        day_from: Annotated[Day | None, Query(alias="from")] = None,
        day_to: Annotated[Day | None, Query(alias="to")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        async with runtime.pool.acquire() as conn:
            return await repository.list_visits(
                conn,
                status=status,
                team_code=team_code,
                household_id=household_id,
                adm1_pcode=adm1_pcode,
                day_from=day_from,
                day_to=day_to,
                limit=limit,
                offset=offset,
            )

    @router.get(
        "/visits/{visit_id}",
        dependencies=[Reads],
        response_model=VisitOut,
        tags=["visits"],
        summary="One visit",
        responses={404: {"description": "No such visit"}},
    )
    async def get_visit(visit_id: UUID, runtime: RuntimeDep) -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            visit = await repository.get_visit(conn, visit_id)
        if visit is None:
            raise VisitNotFound(f"visit {visit_id} not found")
        return visit

    @router.post(
        "/visits/{visit_id}/completion",
        response_model=CompletionOut,
        tags=["visits"],
        summary="The team reports a visit done: VisitCompleted and AssistanceDelivered per service",
        responses={404: {"description": "No such visit"}, 409: {"description": "Not scheduled"}},
    )
    async def complete(
        visit_id: UUID, body: CompletionIn, runtime: RuntimeDep, principal: Writer
    ) -> CompletionOut:
        partner_org = attributed(
            principal,
            body.partner_org,
            field="partner_org",
            for_partners=HEALTH_RECORD_FOR_PARTNERS,
        )
        delivery_ids = await service.complete_visit(
            runtime,
            health,
            visit_id,
            services_delivered=frozenset(body.services_delivered),
            persons_seen=body.persons_seen,
            clinical=ClinicalRecord(notes=body.clinical_notes, diagnoses=tuple(body.diagnoses)),
            partner_org=partner_org,
        )
        return CompletionOut(visit_id=visit_id, delivery_ids=delivery_ids)

    @router.post(
        "/visits/{visit_id}/no-show",
        dependencies=[Writes],
        response_model=MissedOut,
        tags=["visits"],
        summary="The team found no one (or could not go): VisitMissed, and a new visit if allowed",
        responses={404: {"description": "No such visit"}, 409: {"description": "Not scheduled"}},
    )
    async def no_show(
        visit_id: UUID, runtime: RuntimeDep, body: MissedIn | None = None
    ) -> MissedOut:
        reason = (body or MissedIn()).reason_code
        outcome = await service.record_missed_visit(runtime, health, visit_id, reason_code=reason)
        again = outcome.new_visit
        return MissedOut(
            visit_id=visit_id,
            outcome=outcome.outcome,
            new_visit_id=again.visit_id if again else None,
            scheduled_for=again.scheduled_for if again else None,
        )

    @router.post(
        "/visits/{visit_id}/reschedule",
        dependencies=[Writes],
        response_model=ScheduledOut,
        tags=["visits"],
        summary="Move a scheduled visit: a new VisitScheduled with rescheduled_from",
        responses={
            404: {"description": "No such visit"},
            409: {"description": "Not scheduled, or no team has room within the horizon"},
        },
    )
    async def reschedule(visit_id: UUID, body: RescheduleIn, runtime: RuntimeDep) -> ScheduledOut:
        moved = await service.reschedule_visit(
            runtime,
            health,
            visit_id,
            reason_code=body.reason_code,
            on_or_after=body.on_or_after,
        )
        return ScheduledOut(
            visit_id=moved.visit_id,
            rescheduled_from=moved.rescheduled_from,
            team_code=moved.team_code,
            scheduled_for=moved.scheduled_for,
        )

    @router.post(
        "/visits/{visit_id}/referrals",
        dependencies=[Writes],
        response_model=ReferralOut,
        status_code=201,
        tags=["referrals"],
        summary="Refer the household (consent checked): ReferralRequested on the referral topic",
        responses={
            404: {"description": "No such visit"},
            409: {"description": "The household has not consented to referral: nothing sent"},
        },
    )
    async def refer(visit_id: UUID, body: ReferralIn, runtime: RuntimeDep) -> Any:
        referral_id = await service.refer_from_visit(
            runtime, visit_id, to=body.to, reason_code=body.reason_code, urgency=body.urgency
        )
        async with runtime.pool.acquire() as conn:
            [referral] = await repository.list_referrals(
                conn,
                direction=None,
                status=None,
                household_id=None,
                limit=1,
                offset=0,
                referral_id=referral_id,
            )
        return referral

    @router.get(
        "/referrals",
        dependencies=[Reads],
        response_model=list[ReferralOut],
        tags=["referrals"],
        summary="Referrals health made (outgoing) and received (incoming), with their status",
    )
    async def list_referrals(
        runtime: RuntimeDep,
        direction: Literal["outgoing", "incoming"] | None = None,
        status: Literal["received", "requested", "accepted", "declined", "completed", "withdrawn"]
        | None = None,
        household_id: UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        async with runtime.pool.acquire() as conn:
            return await repository.list_referrals(
                conn,
                direction=direction,
                status=status,
                household_id=household_id,
                limit=limit,
                offset=offset,
            )

    @router.get(
        "/capacity",
        dependencies=[Reads],
        tags=["scheduling"],
        summary="Visits booked against capacity per team and day; the backlog by oblast",
    )
    async def capacity(
        runtime: RuntimeDep,
        day_from: Annotated[Day | None, Query(alias="from")] = None,
        day_to: Annotated[Day | None, Query(alias="to")] = None,
    ) -> Any:
        start = day_from or health.first_day(runtime.clock())
        end = day_to or start + timedelta(days=6)
        if end < start:
            return _query_refused("to", "must not be before from")
        if (end - start).days >= MAX_CAPACITY_DAYS:
            return _query_refused("to", f"at most {MAX_CAPACITY_DAYS} days from from")
        return await service.capacity(runtime, day_from=start, day_to=end)

    @router.post(
        "/scheduling/run",
        dependencies=[Writes],
        response_model=SchedulingRunOut,
        tags=["scheduling"],
        summary="Plan the backlog now (also done periodically and when a team is saved)",
    )
    async def run_scheduling(runtime: RuntimeDep) -> SchedulingRunOut:
        scheduled = await service.run_scheduling(runtime, health)
        return SchedulingRunOut(visits_scheduled=len(scheduled))

    return router


def _query_refused(field: str, reason: str) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"loc": ["query", field], "msg": reason, "type": "value_error"}]},
        status_code=422,
    )
