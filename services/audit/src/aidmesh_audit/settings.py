from __future__ import annotations

from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    service_name: ClassVar[str] = "audit"
    default_http_port: ClassVar[int] = 8105
