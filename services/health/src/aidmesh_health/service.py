"""Health use cases: load, decide (domain), save + outbox, in one transaction.

Handlers run them in the consumer's transaction (their `ctx` is a `Tx`), endpoints in their own
(`runtime.transaction()`). Planning takes one advisory lock per database, so two replicas (or a handler and
an endpoint) never give away the same slot on a team's day.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from aidmesh_contracts import (
    ConsentPurpose,
    ConsentWithdrawn,
    Envelope,
    HouseholdMerged,
    HouseholdUpdated,
    NeedAssessed,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    Sector,
    Urgency,
    VisitScheduled,
)
from aidmesh_runtime import rules
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.projections.households import (
    HouseholdFacts,
    NeedAction,
    household_facts,
    lock_household,
)
from aidmesh_runtime.service import Runtime
from aidmesh_runtime.settings import required_secret
from aidmesh_runtime.transaction import Tx

from . import domain, repository
from .clinical import MISSING_KEY, ClinicalCipher, ClinicalRecord
from .domain import ReferralAnswer, Team
from .repository import RequestRow
from .settings import HealthSettings, TeamSeed

log = structlog.get_logger(__name__)

#: Advisory lock key of the scheduler ("HLTH"); one per database is enough.
SCHEDULING_LOCK = 0x48_4C_54_48
HEALTH = Sector.HEALTH.value


class VisitNotFound(LookupError, rules.NotFound):
    pass


class NoSlot(domain.HealthRuleError, rules.Conflict):
    """No team has room for the visit within the planning horizon."""


@dataclass(frozen=True)
class Health:
    """What health's use cases need from the settings."""

    lead_days: int
    horizon_days: int
    max_missed_visits: int
    timezone: ZoneInfo
    cipher: ClinicalCipher
    oblasts: frozenset[str]  # that teams may cover

    @classmethod
    def from_settings(cls, settings: HealthSettings) -> Health:
        return cls(
            lead_days=settings.scheduling_lead_days,
            horizon_days=settings.scheduling_horizon_days,
            max_missed_visits=settings.max_missed_visits,
            timezone=ZoneInfo(settings.timezone),
            oblasts=domain.OBLASTS | frozenset(settings.extra_oblasts),
            cipher=ClinicalCipher(
                required_secret(settings, "clinical_key", why=MISSING_KEY),
                previous=tuple(k.get_secret_value() for k in settings.clinical_previous_keys),
            ),
        )

    def today(self, now: datetime) -> date:
        return now.astimezone(self.timezone).date()

    def first_day(self, now: datetime) -> date:
        """The first day visits are planned for (teams plan their route ahead)."""
        return self.today(now) + timedelta(days=self.lead_days)


def team_from_seed(seed: TeamSeed) -> Team:
    return Team(
        team_code=seed.team_code,
        home_oblast=seed.home_oblast,
        oblasts=frozenset({seed.home_oblast, *seed.oblasts}),
        daily_capacity=seed.daily_capacity,
        services=frozenset(seed.services),
    )


# ---- scheduling ------------------------------------------------------------------------


async def schedule_backlog(tx: Tx, health: Health) -> list[VisitScheduled]:
    """Plan every waiting request, most urgent first; VisitScheduled for those that fit.

    Requests where no active team works are not planned at all (they only get their
    reason): a large backlog in uncovered oblasts costs nothing per new request."""
    await tx.conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEDULING_LOCK)
    covered = sorted(
        {o for team in await repository.teams(tx.conn) if team.active for o in team.oblasts}
    )
    await repository.note_uncovered(tx.conn, covered=covered)
    waiting = await repository.backlog(tx.conn, oblasts=covered)
    if not waiting:
        return []
    return await _plan_and_book(tx, health, waiting)


async def _plan_and_book(tx: Tx, health: Health, rows: list[RequestRow]) -> list[VisitScheduled]:
    now = tx.now()
    first_day = health.first_day(now)
    plan = domain.plan_visits(
        [row.request for row in rows],
        teams=await repository.teams(tx.conn),
        booked=await repository.booked(
            tx.conn, first_day, first_day + timedelta(days=health.horizon_days - 1)
        ),
        first_day=first_day,
        horizon_days=health.horizon_days,
    )
    by_id = {row.request.request_id: row for row in rows}
    scheduled = []
    for assignment in plan.assignments:
        row = by_id[assignment.request_id]
        visit = domain.visit_scheduled(
            assignment,
            visit_id=tx.new_id(),
            household_id=row.household_id,
            priority=row.request.priority,
            location=row.location,
            rescheduled_from=row.visit_id,
            now=now,
        )
        envelope = await tx.publish(visit, caused_by=row.cause)
        await repository.insert_visit(tx.conn, visit, envelope, request=row)
        scheduled.append(visit)
        log.info(
            "visit_scheduled",
            visit_id=str(visit.visit_id),
            household_id=str(visit.household_id),
            team_code=visit.team_code,
            scheduled_for=visit.scheduled_for.isoformat(),
            priority=visit.priority,
            rescheduled_from=str(visit.rescheduled_from) if visit.rescheduled_from else None,
        )
    await repository.note_backlog_reasons(tx.conn, plan.backlog)
    if plan.backlog:
        log.info("visit_requests_waiting", waiting=len(plan.backlog))
    return scheduled


async def run_scheduling(runtime: Runtime, health: Health) -> list[VisitScheduled]:
    """Plan the backlog now (POST /scheduling/run, the periodic run, a team added)."""
    async with runtime.transaction() as tx:
        return await schedule_backlog(tx, health)


class UnknownOblast(domain.HealthRuleError):
    pass


def check_oblasts(health: Health, team: Team) -> None:
    if team.home_oblast not in health.oblasts:
        raise UnknownOblast("unknown oblast P-code", field="home_oblast")
    if team.oblasts - health.oblasts:
        raise UnknownOblast("unknown oblast P-code", field="oblasts")


async def save_team(runtime: Runtime, health: Health, team: Team) -> tuple[bool, int]:
    """Add or replace a team, then plan the backlog with it: (created, visits scheduled)."""
    check_oblasts(health, team)
    async with runtime.transaction() as tx:
        created = await repository.save_team(tx.conn, team, now=runtime.clock())
        scheduled = await schedule_backlog(tx, health)
    log.info(
        "team_saved",
        team_code=team.team_code,
        created=bool(created),
        daily_capacity=team.daily_capacity,
        visits_scheduled=len(scheduled),
    )
    return bool(created), len(scheduled)


async def seed_teams(runtime: Runtime, health: Health, seeds: tuple[TeamSeed, ...]) -> None:
    """Teams from the settings, added when missing (the API's later changes stay)."""
    for seed in seeds:
        check_oblasts(health, team_from_seed(seed))
    async with runtime.transaction() as tx:
        added = [
            seed.team_code
            for seed in seeds
            if await repository.save_team(
                tx.conn, team_from_seed(seed), now=runtime.clock(), replace=False
            )
        ]
        if added:
            await schedule_backlog(tx, health)
    if added:
        log.info("teams_seeded", teams=added)


# ---- needs and households ---------------------------------------------------------------


def need_to_visit_request(health: Health) -> NeedAction:
    async def request_visit(
        need: NeedAssessed, cause: Envelope, household: HouseholdFacts, ctx: HandlerContext
    ) -> None:
        """A health need, its household known, asks for a visit; planned at once if a team
        has room, else it waits in the backlog."""
        await repository.insert_request(
            ctx.conn,
            request_id=ctx.new_id(),
            household_id=household.household_id,
            location=household.location,
            services=domain.services_for_need(need),
            priority=domain.visit_priority(
                severity=need.severity, vulnerabilities=household.vulnerabilities
            ),
            received_at=need.assessed_at,
            cause=cause,
            need_assessment_id=need.assessment_id,
        )
        await schedule_backlog(ctx, health)

    return request_visit


async def follow_household_move(
    event: HouseholdUpdated, ctx: HandlerContext, health: Health
) -> None:
    """Waiting requests follow a household that moved (planned visits keep their place)."""
    if "location" not in event.changed:
        return
    moved = await ctx.conn.execute(
        """UPDATE visit_requests SET adm1_pcode = $2, adm2_pcode = $3, adm3_pcode = $4
           WHERE household_id = $1 AND status = 'backlog'""",
        event.household_id,
        event.location.adm1_pcode,
        event.location.adm2_pcode,
        event.location.adm3_pcode,
    )
    if moved != "UPDATE 0":
        await schedule_backlog(ctx, health)


async def on_household_merged(event: HouseholdMerged, ctx: HandlerContext, health: Health) -> None:
    """What health holds for the merged household moves to the one that stays; a visit the
    household now has twice (same services, later day) is cancelled."""
    survivor = event.household_id
    await repository.repoint_household(
        ctx.conn, merged=event.merged_household_id, survivor=survivor
    )
    now = ctx.now()
    for duplicate in domain.duplicate_visits(
        await repository.scheduled_visits_of(ctx.conn, survivor)
    ):
        await ctx.publish(domain.cancel_duplicate(duplicate, now=now))
        await repository.mark_visit(
            ctx.conn, duplicate.visit_id, "cancelled", reason=domain.DUPLICATE_AFTER_MERGE, at=now
        )
        if duplicate.request_id is not None:
            await repository.set_request_status(
                ctx.conn, duplicate.request_id, "closed", reason=domain.DUPLICATE_AFTER_MERGE
            )
        log.info(
            "visit_cancelled", visit_id=str(duplicate.visit_id), reason=domain.DUPLICATE_AFTER_MERGE
        )
    await decide_waiting_referrals(ctx, health, survivor)


async def on_consent_withdrawn(event: ConsentWithdrawn, ctx: HandlerContext) -> None:
    """Referral consent withdrawn: health's open referrals for the household are withdrawn,
    and the targets told so (ReferralDeclined, consent_withdrawn, from the referrer's side).
    The projection no longer lists the consent, so nothing further is referred."""
    if event.purpose is not ConsentPurpose.REFERRAL:
        return
    household = await household_facts(ctx.conn, event.household_id)
    household_id = household.household_id if household else event.household_id
    now = ctx.now()
    open_referrals = await repository.referrals_of(
        ctx.conn, household_id, direction="outgoing", statuses=("requested", "accepted")
    )
    for referral in open_referrals:
        await ctx.publish(
            ReferralDeclined(
                referral_id=referral.referral_id,
                household_id=household_id,
                declined_by=HEALTH,
                reason_code="consent_withdrawn",
                declined_at=now,
            )
        )
        await repository.set_referral_status(
            ctx.conn, referral.referral_id, "withdrawn", reason="consent_withdrawn", at=now
        )
        log.info("referral_withdrawn", referral_id=str(referral.referral_id))


# ---- referrals to health ---------------------------------------------------------------


async def receive_referral(event: ReferralRequested, ctx: HandlerContext, health: Health) -> None:
    """A referral to health: accepted (a visit is requested) or declined with the reason,
    once its household is known."""
    if event.to != HEALTH:
        return  # to another sector, or health's own referral coming back
    await lock_household(ctx.conn, event.household_id)
    household = await household_facts(ctx.conn, event.household_id)
    inserted = await repository.insert_referral(
        ctx.conn,
        referral_id=event.referral_id,
        direction="incoming",
        household_id=household.household_id if household else event.household_id,
        from_sector=event.from_sector.value,
        to_target=event.to,
        reason_code=event.reason_code,
        urgency=event.urgency.value,
        status="received",
        requested_at=event.requested_at,
        envelope=ctx.envelope,
    )
    if inserted and household is not None:
        await decide_waiting_referrals(ctx, health, household.household_id)


async def decide_waiting_referrals(tx: Tx, health: Health, household_id: UUID) -> None:
    """Answer the referrals to health that waited for this household's facts."""
    household = await household_facts(tx.conn, household_id)
    if household is None:
        return
    waiting = await repository.referrals_of(
        tx.conn, household.household_id, direction="incoming", statuses=("received",)
    )
    if not waiting:
        return
    teams = await repository.teams(tx.conn)
    accepted = False
    for referral in waiting:
        now = tx.now()
        services = domain.services_for_referral(referral.reason_code)
        decline = domain.incoming_referral_decline(
            consents=household.consents,
            teams=teams,
            oblast=household.location.adm1_pcode,
            services=services,
        )
        if decline is not None:
            await tx.publish(
                ReferralDeclined(
                    referral_id=referral.referral_id,
                    household_id=household.household_id,
                    declined_by=HEALTH,
                    reason_code=decline,
                    declined_at=now,
                ),
                caused_by=referral.envelope,
            )
            await repository.set_referral_status(
                tx.conn, referral.referral_id, "declined", reason=decline, at=now
            )
            log.info("referral_declined", referral_id=str(referral.referral_id), reason=decline)
            continue
        request_id = tx.new_id()
        await repository.insert_request(
            tx.conn,
            request_id=request_id,
            household_id=household.household_id,
            location=household.location,
            services=services,
            priority=domain.visit_priority(
                severity=domain.REFERRAL_SEVERITY,
                vulnerabilities=household.vulnerabilities,
                urgency=referral.urgency,
            ),
            received_at=referral.requested_at,
            cause=referral.envelope,
            referral_id=referral.referral_id,
        )
        await tx.publish(
            ReferralAccepted(
                referral_id=referral.referral_id,
                household_id=household.household_id,
                accepted_by=HEALTH,
                accepted_at=now,
            ),
            caused_by=referral.envelope,
        )
        await repository.set_referral_status(
            tx.conn, referral.referral_id, "accepted", at=now, request_id=request_id
        )
        log.info("referral_accepted", referral_id=str(referral.referral_id))
        accepted = True
    if accepted:
        await schedule_backlog(tx, health)


# ---- answers to health's referrals -----------------------------------------------------


async def track_referral_answer(
    event: ReferralAccepted | ReferralDeclined | ReferralCompleted, ctx: HandlerContext
) -> None:
    """The target's answer to a referral health made moves its status on."""
    referral = await repository.referral_for_update(
        ctx.conn, event.referral_id, direction="outgoing"
    )
    if referral is None:
        return  # not a referral health made
    if isinstance(event, ReferralAccepted):
        answer, by, reason = ReferralAnswer.ACCEPTED, event.accepted_by, None
    elif isinstance(event, ReferralDeclined):
        answer, by, reason = ReferralAnswer.DECLINED, event.declined_by, event.reason_code
    else:
        answer, by, reason = ReferralAnswer.COMPLETED, event.completed_by, event.outcome_code
    bound = log.bind(referral_id=str(referral.referral_id), answer=answer.value)
    if by != referral.to_target:
        bound.info("referral_answer_ignored", why="not_from_the_target")  # e.g. our own decline
        return
    status = domain.answered_status(referral.status, answer)
    if status is None:
        bound.info("referral_answer_ignored", why="status_final", status=referral.status)
        return
    await repository.set_referral_status(
        ctx.conn, referral.referral_id, status, reason=reason, at=ctx.now()
    )
    bound.info("referral_answered", status=status)


# ---- the team's reports (HTTP) ---------------------------------------------------------


async def _visit(conn: asyncpg.Connection, visit_id: UUID) -> repository.VisitRow:
    found = await repository.visit_for_update(conn, visit_id)
    if found is None:
        raise VisitNotFound(f"visit {visit_id} not found")
    return found


async def complete_visit(
    runtime: Runtime,
    health: Health,
    visit_id: UUID,
    *,
    services_delivered: frozenset[str],
    persons_seen: int,
    clinical: ClinicalRecord,
    partner_org: str,
) -> list[UUID]:
    """VisitCompleted and one AssistanceDelivered per service; the clinical record sealed
    in this database only. Returns the delivery ids."""
    async with runtime.transaction() as tx:
        found = await _visit(tx.conn, visit_id)
        visit = found.visit
        team = await repository.team(tx.conn, visit.team_code)
        now = runtime.clock()
        completed, deliveries = domain.complete_visit(
            visit,
            services_delivered=services_delivered,
            persons_seen=persons_seen,
            team_services=team.services if team else frozenset(),
            partner_org=partner_org,
            new_id=runtime.new_id,
            now=now,
        )
        envelope = await tx.publish(completed, caused_by=found.last_envelope)
        for delivered in deliveries:
            await tx.publish(delivered, caused_by=envelope)
        await repository.mark_completed(
            tx.conn,
            visit_id,
            services_delivered=services_delivered,
            persons_seen=persons_seen,
            completed_at=now,
            envelope=envelope,
            deliveries=[(d.delivery_id, d.activity.removeprefix("health.")) for d in deliveries],
        )
        if clinical.notes or clinical.diagnoses:
            sealed = health.cipher.seal(visit_id, clinical)
            await repository.save_clinical_record(tx.conn, visit_id, sealed, at=now)
        if visit.request_id is not None:
            await repository.set_request_status(tx.conn, visit.request_id, "completed")
            await _close_referral_to_health(tx, visit, outcome="service_provided", cause=envelope)
    log.info(
        "visit_completed",
        visit_id=str(visit_id),
        team_code=visit.team_code,
        services=sorted(services_delivered),
        deliveries=len(deliveries),
        clinical_record=bool(clinical.notes or clinical.diagnoses),  # whether, never what
    )
    return [d.delivery_id for d in deliveries]


async def _close_referral_to_health(
    tx: Tx,
    visit: domain.Visit,
    *,
    outcome: str,
    cause: Envelope,
) -> None:
    """Tell the referring sector its referral to health is done, while the household's
    referral consent lasts (without it, health stops sharing about the referral)."""
    assert visit.request_id is not None
    referral = await repository.referral_for_request(tx.conn, visit.request_id)
    if referral is None or referral.status != "accepted":
        return
    now = tx.now()
    household = await household_facts(tx.conn, visit.household_id)
    if household is not None and ConsentPurpose.REFERRAL.value in household.consents:
        await tx.publish(
            ReferralCompleted(
                referral_id=referral.referral_id,
                household_id=visit.household_id,
                completed_by=HEALTH,
                outcome_code=outcome,
                completed_at=now,
            ),
            caused_by=cause,
        )
    await repository.set_referral_status(
        tx.conn, referral.referral_id, "completed", reason=outcome, at=now
    )


@dataclass(frozen=True)
class MissedOutcome:
    visit_id: UUID
    outcome: Literal["rescheduled", "backlog", "closed"]
    new_visit: VisitScheduled | None


async def record_missed_visit(
    runtime: Runtime, health: Health, visit_id: UUID, *, reason_code: str
) -> MissedOutcome:
    """VisitMissed; the household gets another visit (VisitScheduled, rescheduled_from),
    or waits in the backlog, until `max_missed_visits` are missed: then the request closes."""
    async with runtime.transaction() as tx:
        await tx.conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEDULING_LOCK)
        found = await _visit(tx.conn, visit_id)
        visit = found.visit
        now = runtime.clock()
        missed = domain.miss_visit(visit, reason_code=reason_code, now=now)
        envelope = await tx.publish(missed, caused_by=found.last_envelope)
        await repository.mark_visit(tx.conn, visit_id, "missed", reason=reason_code, at=now)
        log.info("visit_missed", visit_id=str(visit_id), reason=reason_code)
        if visit.request_id is None:
            return MissedOutcome(visit_id, "closed", None)
        request = await repository.request_for_update(tx.conn, visit.request_id)
        assert request is not None
        missed_visits = request.missed_visits + 1
        if not domain.reschedule_after_miss(
            missed_so_far=missed_visits, max_missed=health.max_missed_visits
        ):
            await repository.set_request_status(
                tx.conn,
                request.request.request_id,
                "closed",
                reason=domain.NOT_REACHED,
                missed_visits=missed_visits,
            )
            await _close_referral_to_health(tx, visit, outcome=domain.NOT_REACHED, cause=envelope)
            log.info("visit_request_closed", visit_id=str(visit_id), reason=domain.NOT_REACHED)
            return MissedOutcome(visit_id, "closed", None)
        day_after = (visit.scheduled_for or health.today(now)) + timedelta(days=1)
        await repository.requeue_request(
            tx.conn,
            request.request.request_id,
            missed_visits=missed_visits,
            not_before=day_after,
            cause=envelope,
        )
        scheduled = await schedule_backlog(tx, health)
        again = next((v for v in scheduled if v.rescheduled_from == visit_id), None)
        return MissedOutcome(visit_id, "rescheduled" if again else "backlog", again)


async def reschedule_visit(
    runtime: Runtime,
    health: Health,
    visit_id: UUID,
    *,
    reason_code: str,
    on_or_after: date | None,
) -> VisitScheduled:
    """Move a scheduled visit to the earliest day with room (from `on_or_after`): a new
    VisitScheduled with rescheduled_from. No room within the horizon: NoSlot, nothing moves."""
    async with runtime.transaction() as tx:
        await tx.conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEDULING_LOCK)
        found = await _visit(tx.conn, visit_id)
        visit = found.visit
        domain.require_scheduled(visit)
        request = (
            await repository.request_for_update(tx.conn, visit.request_id)
            if visit.request_id is not None
            else None
        )
        if request is None or found.last_envelope is None:
            raise domain.VisitNotOpen(f"visit {visit_id} was not scheduled by this service")
        await repository.mark_visit(
            tx.conn, visit_id, "rescheduled", reason=reason_code, at=runtime.clock()
        )
        moved = dataclasses.replace(
            request,
            request=dataclasses.replace(request.request, not_before=on_or_after),
            visit_id=visit_id,
            cause=found.last_envelope,
        )
        scheduled = await _plan_and_book(tx, health, [moved])
        if not scheduled:
            raise NoSlot(
                f"no team serving {visit.location.adm1_pcode} has room within "
                f"{health.horizon_days} days"
            )
    log.info("visit_rescheduled", visit_id=str(visit_id), reason=reason_code)
    return scheduled[0]


async def refer_from_visit(
    runtime: Runtime,
    visit_id: UUID,
    *,
    to: str,
    reason_code: str,
    urgency: Urgency,
) -> UUID:
    """ReferralRequested to another sector or an external service, if the household
    consented to referral; otherwise ConsentMissing and nothing is published."""
    async with runtime.transaction() as tx:
        found = await _visit(tx.conn, visit_id)
        visit = found.visit
        household = await household_facts(tx.conn, visit.household_id)
        referral = domain.refer(
            referral_id=runtime.new_id(),
            household_id=household.household_id if household else visit.household_id,
            to=to,
            reason_code=reason_code,
            urgency=urgency,
            consents=household.consents if household else frozenset(),
            requested_by=visit.team_code,
            now=runtime.clock(),
        )
        envelope = await tx.publish(referral, caused_by=found.last_envelope)
        await repository.insert_referral(
            tx.conn,
            referral_id=referral.referral_id,
            direction="outgoing",
            household_id=referral.household_id,
            from_sector=HEALTH,
            to_target=to,
            reason_code=reason_code,
            urgency=urgency.value,
            status="requested",
            requested_at=referral.requested_at,
            envelope=envelope,
            visit_id=visit_id,
        )
    log.info("referral_requested", referral_id=str(referral.referral_id), to=to, reason=reason_code)
    return referral.referral_id


# ---- capacity --------------------------------------------------------------------------


async def capacity(runtime: Runtime, *, day_from: date, day_to: date) -> dict[str, object]:
    """Per team and day, visits booked against capacity; the backlog by oblast."""
    async with runtime.pool.acquire() as conn:
        teams = await repository.teams(conn)
        booked = await repository.booked(conn, day_from, day_to)
        backlog = await repository.backlog_by_oblast(conn)
    days = [day_from + timedelta(days=n) for n in range((day_to - day_from).days + 1)]
    return {
        "from": day_from,
        "to": day_to,
        "teams": [
            {
                "team_code": team.team_code,
                "home_oblast": team.home_oblast,
                "oblasts": sorted(team.oblasts),
                "services": sorted(team.services),
                "active": team.active,
                "days": [
                    {
                        "date": day,
                        "scheduled": booked.get((team.team_code, day), 0),
                        "capacity": team.daily_capacity if team.active else 0,
                        "free": max(
                            0,
                            (team.daily_capacity if team.active else 0)
                            - booked.get((team.team_code, day), 0),
                        ),
                    }
                    for day in days
                ],
            }
            for team in teams
        ],
        "backlog": backlog,
    }
