"""End-to-end: the services as real processes on the real broker and database.

Each run gets its own databases, consumer groups and ports, so it can run next to a
`make up` platform without either seeing the other's state.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from aidmesh_ops import tokens
from aidmesh_runtime import auth
from aidmesh_runtime.testing import EventLog, database_dsn, drop_database, fresh_database

SERVICES = {
    "registration": 18101,
    "shelter": 18102,
    "health": 18103,
    "protection": 18104,
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

    def url(self, service: str) -> str:
        return self.urls[service]

    def token(self, *scopes: str, org: str = "IOM", sub: str = "service:e2e") -> dict[str, str]:
        """`Authorization` headers of a token this run's issuer signed."""
        return tokens.bearer(*scopes, org=org, sub=sub, key_file=self.signing_key)

    def dsn(self, service: str) -> str:
        return database_dsn(self.databases[service])


def _env(service: str, port: int, db_name: str, run_id: str, *, public_key: Path) -> dict[str, str]:
    prefix = f"AIDMESH_{service.upper()}_"
    env = dict(os.environ)
    # The services verify bearer tokens with this run's public key, and only with it.
    env.pop("AIDMESH_AUTH_PUBLIC_KEYS", None)
    env["AIDMESH_AUTH_PUBLIC_KEYS_FILE"] = str(public_key)
    env.update(
        {
            prefix + "HTTP_PORT": str(port),
            prefix + "DB_NAME": db_name,
            # Under the prefix the service's Kafka principal may use (ADR 0011).
            prefix + "CONSUMER_GROUP": f"aidmesh-{service}-e2e-{run_id}",
            # A fresh group would otherwise replay the whole history of the topics.
            "AIDMESH_CONSUMER_OFFSET_RESET": "latest",
            "AIDMESH_RELAY_POLL_INTERVAL_S": "0.2",
        }
    )
    if service == "protection":
        # Protection refuses to start without a data key: one made for this run only.
        env[prefix + "DATA_KEY"] = "e2e:" + base64.b64encode(os.urandom(32)).decode()
    if service == "health":
        # Health refuses to start without its clinical key: one made for this run only.
        env[prefix + "CLINICAL_KEY"] = base64.b64encode(os.urandom(32)).decode()
    if service == "registration":
        # Registration refuses to start without its key-encryption key: one for this run only.
        env[prefix + "KEK"] = "e2e:" + base64.b64encode(os.urandom(32)).decode()
    return env


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited at start-up:\n{_tail(log)}")
            try:
                if (await client.get(url + "/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready after 60 s:\n{_tail(log)}")
            await asyncio.sleep(0.2)


@pytest.fixture(scope="session")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    run_id = uuid4().hex[:8]
    logs = tmp_path_factory.mktemp("service-logs")
    # A token key pair made for this run only (aidmesh token keygen does the same).
    keys = tokens.keygen(tmp_path_factory.mktemp("auth"), f"e2e-{run_id}")
    databases = {s: f"aidmesh_e2e_{s}_{run_id}" for s in SERVICES}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for service, db_name in databases.items():
        await fresh_database(db_name, owner=f"aidmesh_{service}")
    try:
        for service, port in SERVICES.items():
            log = (logs / f"{service}.log").open("wb")
            processes[service] = subprocess.Popen(  # noqa: ASYNC220 - started once per session
                [sys.executable, "-m", f"aidmesh_{service}"],
                env=_env(service, port, databases[service], run_id, public_key=keys.public_key),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        urls = {s: f"http://127.0.0.1:{p}" for s, p in SERVICES.items()}
        for service, process in processes.items():
            await _wait_ready(urls[service], process, logs / f"{service}.log")
        yield Platform(
            run_id=run_id,
            urls=urls,
            databases=databases,
            logs=logs,
            signing_key=keys.private_key,
        )
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for service, process in processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                print(f"{service} did not stop within 30 s", file=sys.stderr)
        for db_name in databases.values():
            await drop_database(db_name)


@pytest.fixture(scope="session")
async def events(platform: Platform) -> AsyncIterator[EventLog]:
    log = EventLog()
    await log.start()
    yield log
    await log.stop()


#: What the end-to-end tests do across the services (an operator acting for each team).
E2E_SCOPES = (
    auth.REGISTRATION_READ,
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
