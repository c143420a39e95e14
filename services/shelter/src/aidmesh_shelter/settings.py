from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings


class ShelterSettings(ServiceSettings):
    service_name: ClassVar[str] = "shelter"
    default_http_port: ClassVar[int] = 8102

    #: The organisation recorded on deliveries when a completion does not name one.
    partner_org: str = "IOM"
    #: Caps per repair category in UAH (light and medium repairs are done by us; heavy
    #: damage goes to the state compensation programme).
    light_repair_cap_uah: Decimal = Decimal("30000.00")
    medium_repair_cap_uah: Decimal = Decimal("100000.00")
