"""End-to-end: the services as real processes on the real broker and database.

Each run gets its own databases, consumer groups and ports, so it can run next to a
`make up` platform without either seeing the other's state.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from aidmesh_ops import tokens
from aidmesh_runtime import auth
from aidmesh_runtime.service_processes import running_services
from aidmesh_runtime.testing import EventLog, database_dsn

SERVICES = {
    "registration": 18101,
    "shelter": 18102,
    "health": 18103,
    "protection": 18104,
    "cash": 18106,
    "audit": 18105,
}
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Platform:
    run_id: str
    urls: dict[str, str]
    databases: dict[str, str]
    logs: Path
    #: The issuer's key of this run: the services hold only its public half.
    signing_key: Path
    #: The key registration shares with "other agencies" in this run (base64).
    interagency_key: str

    def url(self, service: str) -> str:
        return self.urls[service]

    def token(self, *scopes: str, org: str = "IOM", sub: str = "service:e2e") -> dict[str, str]:
        """`Authorization` headers of a token this run's issuer signed."""
        return tokens.bearer(*scopes, org=org, sub=sub, key_file=self.signing_key)

    def dsn(self, service: str) -> str:
        return database_dsn(self.databases[service])


@pytest.fixture(scope="session")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    run_id = uuid4().hex[:8]
    # A token key pair made for this run only (aidmesh token keygen does the same).
    keys = tokens.keygen(tmp_path_factory.mktemp("auth"), f"e2e-{run_id}")
    interagency_key = base64.b64encode(os.urandom(32)).decode()
    async with running_services(
        name="e2e",
        ports=SERVICES,
        logs=tmp_path_factory.mktemp("service-logs"),
        public_keys=keys.public_key,
        cwd=REPO,
        run_id=run_id,
        settings={"AIDMESH_REGISTRATION_INTERAGENCY_KEY": interagency_key},
    ) as services:
        yield Platform(
            run_id=services.run_id,
            urls=services.urls,
            databases=services.databases,
            logs=services.logs,
            signing_key=keys.private_key,
            interagency_key=interagency_key,
        )


@pytest.fixture(scope="session")
async def events(platform: Platform) -> AsyncIterator[EventLog]:
    log = EventLog()
    await log.start()
    yield log
    await log.stop()


#: What the end-to-end tests do across the services (an operator acting for each team).
E2E_SCOPES = (
    auth.REGISTRATION_READ,
    auth.REGISTRATION_READ_ALL,
    auth.REGISTRATION_WRITE,
    auth.SHELTER_READ,
    auth.SHELTER_WRITE,
    auth.HEALTH_READ,
    auth.HEALTH_WRITE,
    auth.AUDIT_READ,
)


@pytest.fixture
async def http(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, headers=platform.token(*E2E_SCOPES)) as client:
        yield client
