"""Shelter context: household cases (assessment, repair plan, repair), facility cases."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from .. import topics
from ..base import Event, event
from ..common import Code, Location, Money, OrgCode, Severity
from .assessment import DamageLevel
from .assistance import Modality


class RepairCategory(StrEnum):
    """Repairs done by shelter teams (heavy damage goes to state compensation)."""

    LIGHT = "light"
    MEDIUM = "medium"


@event(type="org.aidmesh.shelter.case.opened.v1", topic=topics.SHELTER_CASE)
class ShelterCaseOpened(Event):
    """A shelter case was opened for a household, from an assessed need."""

    case_id: UUID = Field(description="This shelter case.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    need_assessment_id: UUID | None = Field(
        default=None, description="The NeedAssessed `assessment_id` the case was opened from."
    )
    severity: Severity
    damage_level: DamageLevel = Field(description="Damage to the home, as assessed.")
    location: Location = Field(description="Where the home is.")
    opened_at: AwareDatetime = Field(description="When the case was opened.")


@event(type="org.aidmesh.shelter.repair.completed.v1", topic=topics.SHELTER_CASE)
class RepairCompleted(Event):
    """A light or medium repair of a household's home was completed and checked."""

    case_id: UUID = Field(description="The shelter case.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    category: RepairCategory = Field(description="Light or medium repair.")
    modality: Modality = Field(description="In kind, voucher, cash or service.")
    value: Money = Field(description="What the repair cost, in UAH.")
    completed_at: AwareDatetime = Field(description="When the repair was completed and checked.")


@event(type="org.aidmesh.shelter.damage.assessed.v1", topic=topics.SHELTER_CASE)
class DamageAssessed(Event):
    """A field engineer assessed the damage to a household's home, with a bill of quantities."""

    case_id: UUID = Field(description="The shelter case.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    damage_level: DamageLevel = Field(description="Light, medium or heavy.")
    estimated_cost: Money = Field(description="The bill of quantities' total, in UAH.")
    boq_lines: int = Field(ge=0, le=1000, description="Lines in the bill of quantities.")
    assessed_by: OrgCode = Field(description="The engineer's team code (never a person's name).")
    assessed_at: AwareDatetime = Field(description="When the damage was assessed.")


@event(type="org.aidmesh.shelter.repair.planned.v1", topic=topics.SHELTER_CASE)
class RepairPlanned(Event):
    """A light or medium repair was planned, in kind or by voucher, within its category's cap."""

    case_id: UUID = Field(description="The shelter case.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    category: RepairCategory = Field(description="Light or medium repair.")
    modality: Modality = Field(description="In kind or voucher.")
    budget: Money = Field(description="Planned value, at most the category's cap, in UAH.")
    cap: Money = Field(description="The cap per household of this category when planned.")
    priority: Annotated[
        int, Field(ge=1, le=100, description="1 is served first (vulnerability and severity).")
    ]
    planned_at: AwareDatetime = Field(description="When the repair was planned.")


@event(type="org.aidmesh.shelter.case.closed.v1", topic=topics.SHELTER_CASE)
class ShelterCaseClosed(Event):
    """A shelter case was closed."""

    case_id: UUID = Field(description="The shelter case.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    reason_code: Code = Field(
        description="Why: repaired, compensated, merged, consent_withdrawn, not_eligible, ..."
    )
    closed_at: AwareDatetime = Field(description="When the case was closed.")


@event(type="org.aidmesh.shelter.facility.opened.v1", topic=topics.SHELTER_CASE)
class FacilityCaseOpened(Event):
    """A collective centre was taken on for refurbishment: a facility case, not a household's."""

    subject_description: ClassVar[str] = "The facility id (UUID) of the collective centre."

    case_id: UUID = Field(description="This facility case.")
    facility_id: UUID = Field(description="The collective centre (also the Kafka key).")
    capacity: int = Field(ge=1, le=100000, description="Places the centre has.")
    location: Location = Field(description="Where the centre is (P-codes only).")
    opened_at: AwareDatetime = Field(description="When the case was opened.")

    def subject(self) -> str:
        return str(self.facility_id)
