from __future__ import annotations

from decimal import Decimal
from typing import ClassVar
from zoneinfo import ZoneInfo

from aidmesh_contracts import Modality, RepairCategory
from aidmesh_runtime.settings import ServiceSettings

from .domain import PriorityWeights, ShelterRules


class ShelterSettings(ServiceSettings):
    """Environment: `AIDMESH_SHELTER_<NAME>` (or `AIDMESH_<NAME>`), e.g.
    `AIDMESH_SHELTER_LIGHT_REPAIR_CAP_UAH=35000`. Mappings are JSON, e.g.
    `AIDMESH_SHELTER_VULNERABILITY_WEIGHTS='{"disability": 12}'`."""

    service_name: ClassVar[str] = "shelter"
    default_http_port: ClassVar[int] = 8102

    #: The organisation that requests a referral when the case names no assessor. (Who
    #: did a delivery is the caller's token's org, ADR 0009: no default.)
    partner_org: str = "IOM"
    #: Caps per repair category in UAH (light and medium repairs are done by us; heavy
    #: damage goes to the state compensation programme).
    light_repair_cap_uah: Decimal = Decimal("30000.00")
    medium_repair_cap_uah: Decimal = Decimal("100000.00")
    #: The modality a repair plan gets when the coordinator does not choose one.
    light_repair_modality: Modality = Modality.VOUCHER
    medium_repair_modality: Modality = Modality.IN_KIND
    #: Where heavy damage is referred (`external.<service>`).
    compensation_programme: str = "external.state_compensation"
    #: Priority points per flag (flags not listed count 0); see domain.PriorityWeights.
    vulnerability_weights: dict[str, int] | None = None
    #: Local time decides which heating season a delivery counts for.
    timezone: str = "Europe/Kyiv"
    #: The last month of the heating season (October to April by default).
    last_winter_month: int = 4
    winterization_kit_value_uah: Decimal = Decimal("4500.00")
    winterization_max_kits: int = 3
    rental_monthly_cap_uah: Decimal = Decimal("6000.00")
    rental_max_months: int = 6
    #: A collective centre's refurbishment is capped per place it offers.
    centre_cap_per_place_uah: Decimal = Decimal("15000.00")

    def rules(self) -> ShelterRules:
        """The decision rules these settings configure (defaults: domain.ShelterRules)."""
        weights = PriorityWeights()
        if self.vulnerability_weights is not None:
            weights = PriorityWeights(vulnerability=dict(self.vulnerability_weights))
        return ShelterRules(
            repair_caps={
                RepairCategory.LIGHT: self.light_repair_cap_uah,
                RepairCategory.MEDIUM: self.medium_repair_cap_uah,
            },
            default_repair_modality={
                RepairCategory.LIGHT: self.light_repair_modality,
                RepairCategory.MEDIUM: self.medium_repair_modality,
            },
            priority=weights,
            compensation_programme=self.compensation_programme,
            organisation=self.partner_org,
            timezone=ZoneInfo(self.timezone),
            last_winter_month=self.last_winter_month,
            winterization_kit_value=self.winterization_kit_value_uah,
            winterization_max_kits=self.winterization_max_kits,
            rental_monthly_cap=self.rental_monthly_cap_uah,
            rental_max_months=self.rental_max_months,
            centre_cap_per_place=self.centre_cap_per_place_uah,
        )
