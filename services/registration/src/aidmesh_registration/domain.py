"""Registration rules: what a valid registration is, and what it tells the other sectors.

Pure: no database, no Kafka, no clock (today's date is passed in).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self
from uuid import UUID

from aidmesh_contracts import (
    Channel,
    Composition,
    ConsentPurpose,
    DisplacementStatus,
    HouseholdRegistered,
    Location,
    NeedAssessed,
    Sector,
    Vulnerability,
)
from aidmesh_contracts.common import OrgCode, Severity
from aidmesh_contracts.events.assessment import NeedDetails
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PastDate,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .reference import oblast_pcodes


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"


class Relation(StrEnum):
    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    SIBLING = "sibling"
    GRANDCHILD = "grandchild"
    OTHER_RELATIVE = "other_relative"
    NON_RELATIVE = "non_relative"


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MemberIn(Input):
    full_name: Annotated[str, StringConstraints(min_length=2, max_length=200)] = Field(
        examples=["Олена Петрівна Коваленко"]
    )
    sex: Sex
    date_of_birth: PastDate
    relation: Relation
    document_number: Annotated[
        str, StringConstraints(pattern=r"^[A-ZА-ЯІЇЄҐ0-9-]{6,20}$")
    ] | None = Field(default=None, examples=["ЕК123456"])


class LocationIn(Location):
    """A location whose oblast must be one of the official first-level P-codes."""

    @field_validator("adm1_pcode")
    @classmethod
    def _known_oblast(cls, code: str) -> str:
        if code not in oblast_pcodes():
            raise ValueError(f"unknown oblast P-code {code!r} (see the OCHA COD-AB list)")
        return code


class NeedIn(Input):
    sector: Sector
    severity: Severity
    details: NeedDetails | None = None

    @model_validator(mode="before")
    @classmethod
    def _details_kind_from_sector(cls, data: Any) -> Any:
        # Clients need not repeat the sector inside details: it is implied.
        if isinstance(data, dict) and isinstance(data.get("details"), dict):
            details = data["details"]
            if "kind" not in details and "sector" in data:
                data = {**data, "details": {"kind": data["sector"], **details}}
        return data

    @model_validator(mode="after")
    def _details_match_sector(self) -> Self:
        if self.details is not None and self.details.kind != self.sector.value:
            raise ValueError(f"details are for {self.details.kind}, not {self.sector}")
        return self


class HouseholdIn(Input):
    """A registration as a field office, hotline or partner submits it."""

    channel: Channel
    partner_org: OrgCode | None = None
    location: LocationIn
    displacement_status: DisplacementStatus
    size: Annotated[int, Field(ge=1, le=99, description="Number of household members.")]
    address: Annotated[str, StringConstraints(max_length=500)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{7,20}$")] | None = None
    members: list[MemberIn] = Field(min_length=1, max_length=99)
    vulnerabilities: set[Vulnerability] = set()
    consents: set[ConsentPurpose] = Field(min_length=1)
    needs: list[NeedIn] = []
    assessed_by: OrgCode | None = None

    # Field validators (not one model validator) so that a refusal names its field.
    @field_validator("members")
    @classmethod
    def _members_fit_household(cls, members: list[MemberIn], info: ValidationInfo) -> list[MemberIn]:
        size = info.data.get("size")
        if size is not None and len(members) != size:
            raise ValueError(f"size is {size} but {len(members)} members are listed")
        heads = sum(1 for m in members if m.relation is Relation.HEAD)
        if heads != 1:
            raise ValueError(f"exactly one member must be the head of household, found {heads}")
        return members

    @field_validator("consents")
    @classmethod
    def _registration_consented(cls, consents: set[ConsentPurpose]) -> set[ConsentPurpose]:
        if ConsentPurpose.REGISTRATION not in consents:
            raise ValueError("consent for 'registration' is required to register a household")
        return consents

    @field_validator("needs")
    @classmethod
    def _one_need_per_sector(cls, needs: list[NeedIn]) -> list[NeedIn]:
        sectors = [n.sector for n in needs]
        if len(sectors) != len(set(sectors)):
            raise ValueError("at most one need per sector")
        return needs


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def composition(members: list[MemberIn], *, today: date) -> Composition:
    counts: dict[str, int] = {}
    for member in members:
        age = age_on(member.date_of_birth, today)
        band = "0_17" if age < 18 else "18_59" if age < 60 else "60_plus"
        key = f"{member.sex.value}_{band}"
        counts[key] = counts.get(key, 0) + 1
    return Composition(**counts)


def household_registered(
    household: HouseholdIn, *, household_id: UUID, now: datetime
) -> HouseholdRegistered:
    """The shareable facts of a registration: ids, counts, codes and flags. No names."""
    return HouseholdRegistered(
        household_id=household_id,
        registered_at=now,
        channel=household.channel,
        partner_org=household.partner_org,
        location=Location(**household.location.model_dump()),
        displacement_status=household.displacement_status,
        size=household.size,
        composition=composition(household.members, today=now.date()),
        vulnerabilities=frozenset(household.vulnerabilities),
        consents=frozenset(household.consents),
    )


def needs_assessed(
    household: HouseholdIn,
    *,
    household_id: UUID,
    assessment_ids: list[UUID],
    now: datetime,
    default_assessor: str,
) -> list[NeedAssessed]:
    return [
        NeedAssessed(
            assessment_id=assessment_id,
            household_id=household_id,
            sector=need.sector,
            severity=need.severity,
            assessed_at=now,
            assessed_by=household.assessed_by or household.partner_org or default_assessor,
            details=need.details,
        )
        for need, assessment_id in zip(household.needs, assessment_ids, strict=True)
    ]
