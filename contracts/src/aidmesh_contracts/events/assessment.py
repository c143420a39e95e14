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
    """Damage to the home, from a shelter technical assessment."""

    LIGHT = "light"
    MEDIUM = "medium"
    HEAVY = "heavy"
    UNKNOWN = "unknown"


class Tenure(StrEnum):
    """How the household occupies its home."""

    OWNER = "owner"
    TENANT = "tenant"
    COLLECTIVE_CENTRE = "collective_centre"
    HOSTED = "hosted"


class ShelterNeedDetails(FrozenModel):
    """Shelter facts of a need."""

    kind: Literal["shelter"] = Field(default="shelter", description="Which details these are.")
    damage_level: DamageLevel = Field(
        default=DamageLevel.UNKNOWN, description="Damage to the home."
    )
    tenure: Tenure | None = Field(
        default=None, description="Owner, tenant, collective centre, hosted."
    )
    heating_available: bool | None = Field(
        default=None, description="Whether the home can be heated; null when not asked."
    )


class HealthNeedDetails(FrozenModel):
    """Health facts of a need: services, never diagnoses."""

    kind: Literal["health"] = Field(default="health", description="Which details these are.")
    services_needed: frozenset[Code] = Field(
        default=frozenset(),
        description="Service codes such as primary_consultation or mhpss; never a diagnosis.",
    )


class ProtectionNeedDetails(FrozenModel):
    """Protection facts of a need: coarse concern codes only."""

    kind: Literal["protection"] = Field(
        default="protection", description="Which details these are."
    )
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

    assessment_id: UUID = Field(description="This assessment; a sector case refers to it.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    sector: Sector = Field(description="The sector whose need was assessed.")
    severity: Severity
    assessed_at: AwareDatetime = Field(description="When the need was assessed.")
    assessed_by: OrgCode
    details: NeedDetails | None = Field(
        default=None, description="Sector-specific facts; `kind` equals `sector`."
    )

    @model_validator(mode="after")
    def _details_match_sector(self) -> Self:
        if self.details is not None and self.details.kind != self.sector.value:
            raise ValueError(f"details of kind {self.details.kind} given for sector {self.sector}")
        return self
