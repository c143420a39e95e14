from __future__ import annotations

from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings


class HealthSettings(ServiceSettings):
    service_name: ClassVar[str] = "health"
    default_http_port: ClassVar[int] = 8103

    partner_org: str = "IOM"
