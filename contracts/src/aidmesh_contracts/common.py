"""Value types shared by every event: P-codes, sectors, severity, money.

Everything here is a fact that may travel on a shared topic, so nothing here may
describe a person: only ids, codes, counts and flags.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

#: OCHA P-codes for Ukraine: UA + 2 digits (oblast), + 2 more (raion), + 3 more (hromada).
Adm1PCode = Annotated[
    str,
    StringConstraints(pattern=r"^UA\d{2}$"),
    Field(description="Oblast P-code (OCHA COD-AB), e.g. UA80 for Kyiv city.", examples=["UA63"]),
]
Adm2PCode = Annotated[
    str,
    StringConstraints(pattern=r"^UA\d{4}$"),
    Field(description="Raion P-code; starts with its oblast's code.", examples=["UA6312"]),
]
Adm3PCode = Annotated[
    str,
    StringConstraints(pattern=r"^UA\d{7}$"),
    Field(description="Hromada P-code; starts with its raion's code.", examples=["UA6312001"]),
]

#: Short organisation or team codes (never a person's name).
OrgCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$"),
    Field(description="Organisation or team code, upper case.", examples=["IOM", "MMT-KH-01"]),
]

#: Coarse codes (`snake_case`), used for reasons, outcomes, services and concerns.
Code = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$"),
    Field(examples=["primary_consultation"]),
]

#: A financial service provider (a bank, a money-transfer operator), as a code.
FspCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$"),
    Field(description="The financial service provider, as a code.", examples=["ukrposhta"]),
]

#: JIAF severity scale: 1 none/minimal, 2 stress, 3 severe, 4 extreme, 5 catastrophic.
Severity = Annotated[
    int,
    Field(ge=1, le=5, description="JIAF severity, 1 (none/minimal) to 5 (catastrophic)."),
]


class FrozenModel(BaseModel):
    """Base for every contract model: unknown fields are refused, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Sector(StrEnum):
    """Humanitarian sector (cluster) of a need or an activity."""

    SHELTER = "shelter"
    HEALTH = "health"
    PROTECTION = "protection"
    WASH = "wash"
    CASH = "cash"
    NFI = "nfi"
    LIVELIHOODS = "livelihoods"


class Location(FrozenModel):
    """Where something is, as P-codes only (never a street address)."""

    adm1_pcode: Adm1PCode
    adm2_pcode: Adm2PCode | None = None
    adm3_pcode: Adm3PCode | None = None

    @model_validator(mode="after")
    def _codes_nest(self) -> Self:
        if self.adm2_pcode and not self.adm2_pcode.startswith(self.adm1_pcode):
            raise ValueError(f"adm2_pcode {self.adm2_pcode} is not inside {self.adm1_pcode}")
        if self.adm3_pcode:
            if not self.adm2_pcode:
                raise ValueError("adm3_pcode needs adm2_pcode")
            if not self.adm3_pcode.startswith(self.adm2_pcode):
                raise ValueError(f"adm3_pcode {self.adm3_pcode} is not inside {self.adm2_pcode}")
        return self


class Money(FrozenModel):
    """An amount of money. Always a Decimal with at most 2 decimal places, never a float."""

    amount: Annotated[
        Decimal,
        Field(
            ge=0,
            max_digits=14,
            decimal_places=2,
            description="Exact decimal amount, written as a string.",
            # JSON carries a Decimal as a string: say its shape, or validators accept any text.
            json_schema_extra={"pattern": r"^\d{1,12}(\.\d{1,2})?$"},
            examples=["12500.00"],
        ),
    ]
    currency: Literal["UAH"] = Field(default="UAH", description="ISO 4217 code; always UAH.")
