"""The services as real processes (`python -m aidmesh_<service>`) for end-to-end tests and
benchmarks: each on a fresh database, consumer groups and an HTTP port of its own.

A run can go on next to a `make up` platform (or another run) without either seeing the
other's state. The services are started by module name, never imported: the runtime
depends on no service.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from uuid import uuid4

import httpx

from .testing import database_dsn, drop_database, fresh_database

SERVICES = ("registration", "shelter", "health", "protection", "cash", "audit")
READY_S = 60.0
STOP_S = 30.0
#: Settings every run gets unless it says otherwise: a fresh group must not replay the
#: whole history of the topics, and a quick relay fallback poll.
DEFAULT_SETTINGS = {
    "AIDMESH_CONSUMER_OFFSET_RESET": "latest",
    "AIDMESH_RELAY_POLL_INTERVAL_S": "0.2",
    # Every flow traced, as under make up: the tests follow a flow's trace end to end.
    "AIDMESH_TRACE_SAMPLE_RATIO": "1",
}


@dataclass
class RunningServices:
    run_id: str
    urls: dict[str, str]
    databases: dict[str, str]
    logs: Path
    processes: dict[str, asyncio.subprocess.Process] = field(repr=False)

    def url(self, service: str) -> str:
        return self.urls[service]

    def dsn(self, service: str) -> str:
        """The service's database, as the admin user."""
        return database_dsn(self.databases[service])

    def exited(self) -> dict[str, int]:
        """Services whose process has ended, with its exit code."""
        return {s: p.returncode for s, p in self.processes.items() if p.returncode is not None}

    def log_tail(self, service: str, chars: int = 3000) -> str:
        return (self.logs / f"{service}.log").read_text(errors="replace")[-chars:]


def service_env(
    service: str,
    *,
    port: int,
    db_name: str,
    group: str,
    public_keys: str | Path,
    key_id: str,
    settings: Mapping[str, str],
) -> dict[str, str]:
    """The process environment of one service: this run's database, group, port and keys."""
    prefix = f"AIDMESH_{service.upper()}_"
    env = dict(os.environ)
    # The services verify bearer tokens with this run's public keys, and only with them.
    env.pop("AIDMESH_AUTH_PUBLIC_KEYS", None)
    env.pop("AIDMESH_AUTH_PUBLIC_KEYS_FILE", None)
    if isinstance(public_keys, Path):
        env["AIDMESH_AUTH_PUBLIC_KEYS_FILE"] = str(public_keys)
    else:
        env["AIDMESH_AUTH_PUBLIC_KEYS"] = public_keys
    env.update(DEFAULT_SETTINGS)
    env.update(
        {
            prefix + "HTTP_PORT": str(port),
            prefix + "DB_NAME": db_name,
            # Under the prefix the service's Kafka principal may use (ADR 0011).
            prefix + "CONSUMER_GROUP": group,
        }
    )
    # Each of these refuses to start without its key: one made for this run only.
    if service == "protection":
        env[prefix + "DATA_KEY"] = f"{key_id}:{_random_key()}"
    if service == "health":
        env[prefix + "CLINICAL_KEY"] = _random_key()
    if service == "registration":
        env[prefix + "KEK"] = f"{key_id}:{_random_key()}"
    env.update(settings)
    return env


def _log_file(logs: Path, service: str) -> BinaryIO:
    logs.mkdir(parents=True, exist_ok=True)
    return (logs / f"{service}.log").open("wb")


def _random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@asynccontextmanager
async def running_services(
    *,
    name: str,
    ports: Mapping[str, int],
    logs: Path,
    public_keys: str | Path,
    settings: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    run_id: str | None = None,
    ready_s: float = READY_S,
) -> AsyncIterator[RunningServices]:
    """Start the services of `ports` on databases `aidmesh_<name>_<service>_<run>` and groups
    `aidmesh-<service>-<name>-<run>`, wait until each is ready (its partitions assigned,
    so nothing published afterwards is missed), and stop them and drop the databases after.

    `public_keys`: the token issuer's public keys the services trust, as a
    `<kid>:<base64>` line or a file. `settings`: more environment, applied last.
    """
    run_id = run_id or uuid4().hex[:8]
    databases = {s: f"aidmesh_{name}_{s}_{run_id}" for s in ports}
    processes: dict[str, asyncio.subprocess.Process] = {}
    for service, db_name in databases.items():
        await fresh_database(db_name, owner=f"aidmesh_{service}")
    try:
        for service, port in ports.items():
            env = service_env(
                service,
                port=port,
                db_name=databases[service],
                group=f"aidmesh-{service}-{name}-{run_id}",
                public_keys=public_keys,
                key_id=name,
                settings=settings or {},
            )
            with _log_file(logs, service) as log:
                processes[service] = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    f"aidmesh_{service}",
                    env=env,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=cwd,
                )
        running = RunningServices(
            run_id=run_id,
            urls={s: f"http://127.0.0.1:{p}" for s, p in ports.items()},
            databases=databases,
            logs=logs,
            processes=processes,
        )
        for service in ports:
            await _wait_ready(running, service, ready_s)
        yield running
    finally:
        await _stop(processes)
        for db_name in databases.values():
            await drop_database(db_name)


async def _wait_ready(running: RunningServices, service: str, wait_s: float) -> None:
    url = running.url(service)
    deadline = time.monotonic() + wait_s
    async with httpx.AsyncClient() as client:
        while True:
            if service in running.exited():
                raise RuntimeError(f"{url} exited at start-up:\n{running.log_tail(service)}")
            try:
                if (await client.get(url + "/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{url} not ready after {wait_s:.0f} s:\n{running.log_tail(service)}"
                )
            await asyncio.sleep(0.2)


async def _stop(processes: Mapping[str, asyncio.subprocess.Process]) -> None:
    """SIGTERM all at once (they drain in parallel), then wait; kill what hangs."""
    for process in processes.values():
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for service, process in processes.items():
        try:
            await asyncio.wait_for(process.wait(), timeout=STOP_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            print(f"{service} did not stop within {STOP_S:.0f} s", file=sys.stderr)
