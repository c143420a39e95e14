"""Shelter context: cases, repairs."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime

from .. import topics
from ..base import Event, event
from ..common import Location, Money, Severity
from .assessment import DamageLevel
from .assistance import Modality


class RepairCategory(StrEnum):
    LIGHT = "light"
    MEDIUM = "medium"


@event(type="org.aidmesh.shelter.case.opened.v1", topic=topics.SHELTER_CASE)
class ShelterCaseOpened(Event):
    """A shelter case was opened for a household, from an assessed need."""

    case_id: UUID
    household_id: UUID
    need_assessment_id: UUID | None = None
    severity: Severity
    damage_level: DamageLevel
    location: Location
    opened_at: AwareDatetime


@event(type="org.aidmesh.shelter.repair.completed.v1", topic=topics.SHELTER_CASE)
class RepairCompleted(Event):
    """A light or medium repair of a household's home was completed and checked."""

    case_id: UUID
    household_id: UUID
    category: RepairCategory
    modality: Modality
    value: Money
    completed_at: AwareDatetime
