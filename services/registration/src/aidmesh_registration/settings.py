from __future__ import annotations

from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings


class RegistrationSettings(ServiceSettings):
    service_name: ClassVar[str] = "registration"
    default_http_port: ClassVar[int] = 8101

    #: Team code recorded as `assessed_by` when an intake does not name one.
    default_assessor: str = "IOM-REG"
