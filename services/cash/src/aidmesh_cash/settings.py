from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings
from pydantic import Field

from .domain import CashRules, PriorityWeights


class CashSettings(ServiceSettings):
    """Environment: `AIDMESH_CASH_<NAME>` (or `AIDMESH_<NAME>`), e.g.
    `AIDMESH_CASH_TRANSFER_VALUE_UAH=3600.00`. Sets are JSON, e.g.
    `AIDMESH_CASH_ELIGIBLE_DISPLACEMENT='["idp"]'`."""

    service_name: ClassVar[str] = "cash"
    default_http_port: ClassVar[int] = 8106

    #: A provider's report of 100,000 payments is a few MB of CSV in one JSON body.
    http_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)

    #: The Cash Working Group's transfer value per person per month.
    transfer_value_uah: Decimal = Decimal("3600.00")
    #: Members paid for (larger households get this many persons' value).
    household_size_cap: int = 5
    #: Months a cycle covers when the officer does not say, and the most it may.
    default_months: int = 3
    max_months: int = 6
    #: The least JIAF severity of a cash need that makes a household eligible.
    min_severity: int = 3
    eligible_displacement: frozenset[str] = frozenset({"idp", "returnee"})
    #: Priority points per vulnerability flag (flags not listed count 0).
    vulnerability_weights: dict[str, int] | None = None
    #: Local time decides which month a delivery by another sector counts for.
    timezone: str = "Europe/Kyiv"

    def rules(self) -> CashRules:
        """The decision rules these settings configure (defaults: domain.CashRules)."""
        weights = PriorityWeights()
        if self.vulnerability_weights is not None:
            weights = PriorityWeights(vulnerability=dict(self.vulnerability_weights))
        return CashRules(
            transfer_value=self.transfer_value_uah,
            household_size_cap=self.household_size_cap,
            default_months=self.default_months,
            max_months=self.max_months,
            min_severity=self.min_severity,
            eligible_displacement=frozenset(self.eligible_displacement),
            priority=weights,
        )
