"""Shelter context: cases, repairs."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime, Field

from .. import topics
from ..base import Event, event
from ..common import Location, Money, Severity
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
