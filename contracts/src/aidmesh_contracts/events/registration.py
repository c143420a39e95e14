"""Registration context: who a household is, in ids, counts, codes and flags only.

Names, phone numbers, documents and addresses stay in the registration database.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from .. import topics
from ..base import Event, event
from ..common import FrozenModel, Location, OrgCode


class Channel(StrEnum):
    """How the household was registered."""

    FIELD_OFFICE = "field_office"
    HOTLINE = "hotline"
    PARTNER = "partner"
    KOBO = "kobo"
    BULK_IMPORT = "bulk_import"


class DisplacementStatus(StrEnum):
    """Displacement status of the household."""

    IDP = "idp"
    RETURNEE = "returnee"
    NON_DISPLACED = "non_displaced"
    HOST_COMMUNITY = "host_community"


class Vulnerability(StrEnum):
    """Vulnerability flags screened at registration."""

    DISABILITY = "disability"
    CHRONIC_ILLNESS = "chronic_illness"
    ELDERLY_HEADED = "elderly_headed"
    FEMALE_HEADED = "female_headed"
    CHILD_HEADED = "child_headed"
    PREGNANT_OR_LACTATING = "pregnant_or_lactating"
    UNACCOMPANIED_MINOR = "unaccompanied_minor"
    LARGE_FAMILY = "large_family"


class ConsentPurpose(StrEnum):
    """What the household agreed its data may be used for."""

    REGISTRATION = "registration"
    DATA_SHARING = "data_sharing"
    REFERRAL = "referral"


Count = Annotated[int, Field(ge=0, le=99, description="Members of this sex and age band.")]


class Composition(FrozenModel):
    """Household members counted by sex and age band (0-17, 18-59, 60+)."""

    female_0_17: Count = 0
    female_18_59: Count = 0
    female_60_plus: Count = 0
    male_0_17: Count = 0
    male_18_59: Count = 0
    male_60_plus: Count = 0

    def total(self) -> int:
        return (
            self.female_0_17
            + self.female_18_59
            + self.female_60_plus
            + self.male_0_17
            + self.male_18_59
            + self.male_60_plus
        )


@event(type="org.aidmesh.registration.household.registered.v1", topic=topics.HOUSEHOLD)
class HouseholdRegistered(Event):
    """A household was registered. Carries no personal data."""

    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    registered_at: AwareDatetime = Field(description="When the household was registered.")
    channel: Channel = Field(description="How the household was registered.")
    partner_org: OrgCode | None = Field(
        default=None, description="The partner that registered it, if not IOM itself."
    )
    location: Location = Field(description="Where the household lives now (P-codes only).")
    displacement_status: DisplacementStatus = Field(description="IDP, returnee, and so on.")
    size: Annotated[int, Field(ge=1, le=99, description="Number of members, at least 1.")]
    composition: Composition = Field(description="Members by sex and age band; sums to size.")
    vulnerabilities: frozenset[Vulnerability] = Field(
        default=frozenset(), description="Vulnerability flags screened at registration."
    )
    consents: frozenset[ConsentPurpose] = Field(
        default=frozenset(), description="Purposes the household consented to."
    )

    @model_validator(mode="after")
    def _composition_matches_size(self) -> Self:
        if self.composition.total() != self.size:
            raise ValueError(
                f"composition counts {self.composition.total()} members but size is {self.size}"
            )
        return self


__all__ = [
    "Channel",
    "Composition",
    "ConsentPurpose",
    "DisplacementStatus",
    "HouseholdRegistered",
    "Vulnerability",
]
