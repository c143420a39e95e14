"""Needs assessed per sector, with sector-specific details (coarse codes only)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from .. import topics
from ..base import Event, event
from ..common import Code, FrozenModel, OrgCode, Sector, Severity


class DamageLevel(StrEnum):
    LIGHT = "light"
    MEDIUM = "medium"
    HEAVY = "heavy"
    UNKNOWN = "unknown"


class Tenure(StrEnum):
    OWNER = "owner"
    TENANT = "tenant"
    COLLECTIVE_CENTRE = "collective_centre"
    HOSTED = "hosted"


class ShelterNeedDetails(FrozenModel):
    kind: Literal["shelter"] = "shelter"
    damage_level: DamageLevel = DamageLevel.UNKNOWN
    tenure: Tenure | None = None
    heating_available: bool | None = None


class HealthNeedDetails(FrozenModel):
    kind: Literal["health"] = "health"
    services_needed: frozenset[Code] = Field(
        default=frozenset(),
        description="Service codes such as primary_consultation or mhpss; never a diagnosis.",
    )


class ProtectionNeedDetails(FrozenModel):
    kind: Literal["protection"] = "protection"
    concern_codes: frozenset[Code] = Field(
        default=frozenset(), description="Coarse concern codes only; never a narrative."
    )


NeedDetails = Annotated[
    ShelterNeedDetails | HealthNeedDetails | ProtectionNeedDetails,
    Field(discriminator="kind"),
]


@event(type="org.aidmesh.assessment.need.assessed.v1", topic=topics.NEED)
class NeedAssessed(Event):
    """A household's need in one sector was assessed."""

    assessment_id: UUID
    household_id: UUID
    sector: Sector
    severity: Severity
    assessed_at: AwareDatetime
    assessed_by: OrgCode
    details: NeedDetails | None = None

    @model_validator(mode="after")
    def _details_match_sector(self) -> Self:
        if self.details is not None and self.details.kind != self.sector.value:
            raise ValueError(f"details of kind {self.details.kind} given for sector {self.sector}")
        return self
