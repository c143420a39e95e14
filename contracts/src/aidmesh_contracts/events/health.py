"""Health context: visits by mobile medical teams. Never diagnoses or clinical notes."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, Field

from .. import topics
from ..base import Event, event
from ..common import Code, Location, OrgCode


@event(type="org.aidmesh.health.visit.completed.v1", topic=topics.HEALTH_VISIT)
class VisitCompleted(Event):
    """A mobile medical team completed a visit to a household."""

    visit_id: UUID = Field(description="This visit.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    team_code: OrgCode
    services_delivered: frozenset[Code] = Field(
        min_length=1, description="Service codes delivered, e.g. primary_consultation."
    )
    persons_seen: int = Field(ge=1, le=99, description="Household members the team saw.")
    location: Location = Field(description="Where the visit took place.")
    completed_at: AwareDatetime = Field(description="When the visit ended.")


@event(type="org.aidmesh.health.visit.scheduled.v1", topic=topics.HEALTH_VISIT)
class VisitScheduled(Event):
    """A mobile medical team visit was scheduled (or rescheduled) for a household."""

    visit_id: UUID = Field(description="This visit.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    team_code: OrgCode
    scheduled_for: date = Field(description="The day of the visit (Kyiv time).")
    services_planned: frozenset[Code] = Field(
        default=frozenset(), description="Service codes planned, e.g. primary_consultation."
    )
    priority: Annotated[
        int, Field(ge=1, le=100, description="1 is served first (severity and vulnerability).")
    ]
    rescheduled_from: UUID | None = Field(
        default=None, description="The visit this one replaces (after a no-show or a change)."
    )
    location: Location = Field(description="Where the visit takes place.")
    scheduled_at: AwareDatetime = Field(description="When it was scheduled.")


@event(type="org.aidmesh.health.visit.missed.v1", topic=topics.HEALTH_VISIT)
class VisitMissed(Event):
    """A scheduled visit did not happen (no-show, access, team unavailable)."""

    visit_id: UUID = Field(description="The visit.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    team_code: OrgCode
    reason_code: Code = Field(description="no_show, no_access, team_unavailable, ...")
    recorded_at: AwareDatetime = Field(description="When it was recorded.")
