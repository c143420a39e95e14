"""Assistance delivered by any sector: what every donor report is built from."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from .. import topics
from ..base import Event, event
from ..common import Location, Money, OrgCode, Sector

ActivityCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]+\.[a-z0-9_]+$"),
    Field(description="Dotted activity code: sector.activity.", examples=["shelter.light_repair"]),
]


class Modality(StrEnum):
    """How the assistance was given."""

    IN_KIND = "in_kind"
    VOUCHER = "voucher"
    CASH = "cash"
    SERVICE = "service"


@event(type="org.aidmesh.assistance.assistance.delivered.v1", topic=topics.ASSISTANCE_DELIVERED)
class AssistanceDelivered(Event):
    """Assistance reached a household (or a facility). `delivery_id` is stable across retries."""

    subject_description: ClassVar[str] = (
        "The household id (UUID), or the facility id (UUID) for a delivery to a facility."
    )

    delivery_id: UUID = Field(description="Idempotency key of the delivery itself.")
    household_id: UUID | None = Field(
        default=None, description="The household helped; null for a delivery to a facility."
    )
    facility_id: UUID | None = Field(
        default=None,
        description="The facility (e.g. a collective centre) helped, if not a household.",
    )
    sector: Sector = Field(description="The sector that delivered.")
    activity: ActivityCode
    modality: Modality = Field(description="In kind, voucher, cash or service.")
    quantity: Annotated[
        Decimal,
        Field(
            gt=0,
            max_digits=12,
            description="How much, in `unit`s: an exact decimal written as a string.",
            decimal_places=3,
            json_schema_extra={"pattern": r"^\d{1,9}(\.\d{1,3})?$"},
            examples=["1"],
        ),
    ]
    unit: Annotated[
        str,
        StringConstraints(pattern=r"^[a-z_]{1,32}$"),
        Field(description="Unit of `quantity`, e.g. kit, visit, session.", examples=["kit"]),
    ]
    value: Money | None = Field(default=None, description="What it was worth in UAH, if known.")
    persons_reached: Annotated[
        int, Field(ge=0, le=100000, description="People who benefited (household members).")
    ]
    partner_org: OrgCode
    location: Location = Field(description="Where it was delivered.")
    delivered_at: AwareDatetime = Field(description="When it was delivered.")

    @model_validator(mode="after")
    def _one_recipient(self) -> Self:
        if (self.household_id is None) == (self.facility_id is None):
            raise ValueError("exactly one of household_id and facility_id is required")
        if not self.activity.startswith(self.sector.value + "."):
            raise ValueError(f"activity {self.activity} does not belong to sector {self.sector}")
        return self

    def subject(self) -> str:
        return str(self.household_id or self.facility_id)
