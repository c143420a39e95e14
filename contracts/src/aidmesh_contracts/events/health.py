"""Health context: visits by mobile medical teams. Never diagnoses or clinical notes."""

from __future__ import annotations

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
