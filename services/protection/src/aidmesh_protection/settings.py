from __future__ import annotations

from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings


class ProtectionSettings(ServiceSettings):
    service_name: ClassVar[str] = "protection"
    default_http_port: ClassVar[int] = 8104
