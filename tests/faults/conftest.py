"""Fixtures for the fault-injection tests: real services as processes, on the real broker
and database, and the faults themselves (SIGKILL, injected crash points, the broker or the
database stopped and started with the deploy/local scripts).

Each test gets its own databases, consumer groups (committed at the topics' current ends
before the service starts, so a restart resumes where it stopped and never replays the
shared history) and ports 1920x, and stops every process it started. Tests that stop the
infrastructure restart it in a `finally`, on the same state dir and ports as everything
else (AIDMESH_STATE_DIR, and the ports of the instance the tests are pointed at).

Every scenario writes what it measured to var/reports/faults-<scenario>.json; the figures
are also printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
import httpx
import pytest
from aidmesh_contracts.topics import dlq_topic
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.testing import (
    database_dsn,
    drop_database,
    fresh_database,
    session_public_keys,
)
from aidmesh_runtime.topics import MAX_DLQ_MESSAGE_BYTES
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

KAFKA = os.environ.get("AIDMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
ADMIN_DSN = os.environ.get("AIDMESH_PG_DSN", "postgresql://postgres@127.0.0.1:5433/postgres")
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REPORTS = REPO / "var" / "reports"
FIRST_PORT = 19201
READY_TIMEOUT_S = 60.0
#: The cap of the services' retry backoff bounds how long they wait once the infra is
#: back (30 s by default). A few seconds keeps the suite short; the reports say so.
RETRY_MAX_BACKOFF_S = 2.0
#: Health refuses to start without its clinical key: one made for this run only, the same
#: for every (re)start so that what one process sealed the next can open.
HEALTH_CLINICAL_KEY = base64.b64encode(os.urandom(32)).decode()
#: Registration refuses to start without its key-encryption key (ADR 0010): the same for
#: every (re)start of this run, so that what one process sealed the next can open.
REGISTRATION_KEK = "faults:" + base64.b64encode(os.urandom(32)).decode()
TOPIC_CONFIG = {"retention.ms": str(3600 * 1000), "max.message.bytes": str(MAX_DLQ_MESSAGE_BYTES)}

_summaries: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _summaries:
        terminalreporter.section("fault-injection figures (var/reports/faults-*.json)")
        for line in _summaries:
            terminalreporter.write_line(line)


# ---- waiting -------------------------------------------------------------------------


async def eventually(
    condition: Callable[[], Awaitable[Any]],
    *,
    what: str,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
) -> Any:
    """Poll an async condition until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        last = await condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {what} (last: {last!r})"
            )
        await asyncio.sleep(interval_s)


@pytest.fixture
def poll() -> Callable[..., Awaitable[Any]]:
    """`await poll(condition, what=..., timeout_s=...)`: `eventually` as a fixture."""
    return eventually


# ---- databases -------------------------------------------------------------------------


class Databases:
    """Fresh databases for one test, dropped at its end, and queries on them as the admin
    user through one connection per database, opened again after a PostgreSQL restart."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._conns: dict[str, asyncpg.Connection] = {}

    async def create(self, component: str, *, owner: str) -> str:
        name = f"aidmesh_faults_{component}_{uuid4().hex[:10]}"
        await fresh_database(name, owner=owner, admin_dsn=ADMIN_DSN)
        self.names.append(name)
        return name

    async def fetch(self, database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = self._conns.get(database)
        if conn is not None and not conn.is_closed():
            try:
                return await conn.fetch(sql, *args)
            except (
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                asyncpg.PostgresConnectionError,
                ConnectionError,
            ):
                pass  # the server dropped it (a restart): once more on a new connection
        conn = await asyncpg.connect(database_dsn(database, admin_dsn=ADMIN_DSN), timeout=5)
        self._conns[database] = conn
        return await conn.fetch(sql, *args)

    async def fetchval(self, database: str, sql: str, *args: Any) -> Any:
        rows = await self.fetch(database, sql, *args)
        return rows[0][0] if rows else None

    async def drop_all(self) -> None:
        for conn in self._conns.values():
            conn.terminate()
        for name in self.names:
            try:
                await drop_database(name, admin_dsn=ADMIN_DSN)
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"could not drop {name}: {exc!r}", file=sys.stderr)


@pytest.fixture
async def databases() -> AsyncIterator[Databases]:
    dbs = Databases()
    try:
        yield dbs
    finally:
        await dbs.drop_all()


# ---- service processes -----------------------------------------------------------------


@dataclass
class ServiceProcess:
    """One service run as `python -m ...`, as in production; restartable, killable."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, run: int | None = None) -> Path:
        return self.logs / f"{self.name}-run{run or self.runs}.log"

    def start(self, *, without: Iterable[str] = ()) -> None:
        """Start (again); `without` names env vars to drop, e.g. an injected crash point."""
        assert self.process is None or self.process.poll() is not None, "still running"
        for name in without:
            self.env.pop(name, None)
        self.runs += 1
        out = self.log().open("wb")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
        out.close()

    async def wait_ready(self, *, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Poll /readyz until 200; return the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        last = "no answer"
        async with httpx.AsyncClient(timeout=3) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited ({self.process.returncode}):\n{self.tail()}"
                    )
                try:
                    response = await client.get(self.url + "/readyz")
                    if response.status_code == 200:
                        return time.monotonic() - t0
                    last = response.text
                except httpx.TransportError as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.name} not ready after {timeout_s}s: {last}\n{self.tail()}"
                    )
                await asyncio.sleep(0.1)

    def kill(self) -> int:
        """kill -9, as the OOM killer or a lost node would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=10)

    async def wait_exit(self, *, timeout_s: float = 20.0) -> int:
        assert self.process is not None
        process = self.process

        async def exited() -> bool:
            return process.poll() is not None

        await eventually(exited, what=f"{self.name} to exit", timeout_s=timeout_s, interval_s=0.05)
        assert process.returncode is not None
        return process.returncode

    def terminate(self) -> None:
        """SIGTERM: a graceful stop (see `wait_stopped`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, *, timeout_s: float = 30.0) -> None:
        """Wait for the process to end after `terminate`; SIGKILL it after `timeout_s`."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            print(f"{self.name} did not stop within {timeout_s} s", file=sys.stderr)

    def log_events(self, event: str, *, run: int | None = None) -> list[dict[str, Any]]:
        """The structured log lines of one run whose event is `event`."""
        found = []
        runs = [run] if run else range(1, self.runs + 1)
        for n in runs:
            for line in self.log(n).read_text(errors="replace").splitlines():
                if f'"{event}"' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("event") == event:
                        found.append(entry)
        return found

    def tail(self, chars: int = 3000) -> str:
        return self.log().read_text(errors="replace")[-chars:]


class Services:
    """Starts real services (and the test-only effects app) as processes; stops them all."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._next_port = FIRST_PORT
        self.started: list[ServiceProcess] = []

    def _env(self, service: str, port: int, database_env: dict[str, str]) -> dict[str, str]:
        prefix = f"AIDMESH_{service.upper()}_"
        env = dict(os.environ)
        env.update(
            {
                "AIDMESH_KAFKA_BOOTSTRAP": KAFKA,
                "AIDMESH_PG_DSN": ADMIN_DSN,
                prefix + "HTTP_PORT": str(port),
                # The production default. Tests commit a group's offsets at the topics' ends
                # before its service starts, so nothing of the shared history is replayed,
                # and a restarted service resumes exactly where its group stopped.
                "AIDMESH_CONSUMER_OFFSET_RESET": "earliest",
                "AIDMESH_RELAY_POLL_INTERVAL_S": "0.2",
                "AIDMESH_RETRY_MAX_BACKOFF_S": str(RETRY_MAX_BACKOFF_S),
                **database_env,
            }
        )
        # Every service verifies bearer tokens with the test session's public key (only
        # with it); the tests sign theirs with auth_headers().
        env.pop("AIDMESH_AUTH_PUBLIC_KEYS_FILE", None)
        env["AIDMESH_AUTH_PUBLIC_KEYS"] = session_public_keys()
        if service == "health":
            env[prefix + "CLINICAL_KEY"] = HEALTH_CLINICAL_KEY
        if service == "registration":
            env[prefix + "KEK"] = REGISTRATION_KEK
        return env

    def _add(self, name: str, command: list[str], env: dict[str, str], port: int) -> ServiceProcess:
        service = ServiceProcess(name=name, command=command, env=env, port=port, logs=self._logs)
        self.started.append(service)
        return service

    def _port(self) -> int:
        port = self._next_port
        self._next_port += 1
        return port

    async def start(
        self,
        service: str,
        *,
        database: str,
        group: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ServiceProcess:
        """A real AidMesh service (`python -m aidmesh_<service>`) on its own database."""
        port = self._port()
        prefix = f"AIDMESH_{service.upper()}_"
        database_env = {prefix + "DB_NAME": database}
        if group:
            database_env[prefix + "CONSUMER_GROUP"] = group
        else:
            # A group of its own that starts at the end: the service's topics carry other
            # tests' history (registration's intake topic, for one), and the make up
            # services' groups are not the tests' to move.
            database_env[prefix + "CONSUMER_GROUP"] = f"aidmesh-{service}-faults-{uuid4().hex[:10]}"
            database_env[prefix + "CONSUMER_OFFSET_RESET"] = "latest"
        process = self._add(
            service,
            [sys.executable, "-m", f"aidmesh_{service}"],
            self._env(service, port, database_env) | (env or {}),
            port,
        )
        process.start()
        await process.wait_ready()
        return process

    async def start_effects(
        self,
        *,
        database: str,
        group: str,
        burst_topic: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ServiceProcess:
        """The test-only effects app (tests/faults/effects_app.py) on its own database:
        AssistanceDelivered from the assistance topic, or the burst type from `burst_topic`."""
        if burst_topic:
            env = {"AIDMESH_EFFECTS_BURST_TOPIC": burst_topic} | (env or {})
        port = self._port()
        process = self._add(
            "effects",
            [sys.executable, str(HERE / "effects_app.py")],
            self._env(
                "effects",
                port,
                {
                    "AIDMESH_EFFECTS_DB_DSN": database_dsn(database, admin_dsn=ADMIN_DSN),
                    "AIDMESH_EFFECTS_CONSUMER_GROUP": group,
                },
            )
            | (env or {}),
            port,
        )
        process.start()
        await process.wait_ready()
        return process

    def stop_all(self) -> None:
        for service in self.started:
            service.terminate()
        for service in self.started:
            service.wait_stopped()


@pytest.fixture
async def services(databases: Databases, tmp_path: Path) -> AsyncIterator[Services]:
    started = Services(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


# ---- Kafka -----------------------------------------------------------------------------


class Kafka:
    """Consumer-group positions and partition ends, read from the broker the tests use."""

    bootstrap = KAFKA

    def __init__(self) -> None:
        self._admin: AIOKafkaAdminClient | None = None

    async def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, **operator_auth())
            await admin.start()
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()

    async def partitions(self, *topics: str) -> list[TopicPartition]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA, **operator_auth(), enable_auto_commit=False
        )
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()  # as EventLog does
            return [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(cluster.partitions_for_topic(topic) or ())
            ]
        finally:
            await consumer.stop()

    async def group_at_end(self, group: str, *topics: str) -> None:
        """Commit `group`'s offsets at the topics' current ends: a service started in it
        sees what is produced from now on, and after a restart resumes where it was."""
        partitions = await self.partitions(*topics)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA, **operator_auth(), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.commit(await consumer.end_offsets(partitions))
        finally:
            await consumer.stop()

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA, **operator_auth(), enable_auto_commit=False
        )
        await consumer.start()
        try:
            return await consumer.end_offsets(list(partitions))
        finally:
            await consumer.stop()

    async def create_topics(self, *names: str, partitions: int = 6) -> None:
        await (await self.admin()).create_topics(
            [NewTopic(name, partitions, 1, topic_configs=TOPIC_CONFIG) for name in names]
        )

    async def delete_topics(self, *names: str) -> None:
        await (await self.admin()).delete_topics(list(names))

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await (await self.admin()).list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items()}


@pytest.fixture
async def kafka() -> AsyncIterator[Kafka]:
    broker = Kafka()
    try:
        yield broker
    finally:
        await broker.close()


@pytest.fixture
async def own_topic(kafka: Kafka) -> AsyncIterator[str]:
    """A topic (and its dead-letter topic) that only this test uses, deleted at its end.
    Request it before `services`, so the services have stopped when it goes."""
    name = f"aidmesh.faults.burst{uuid4().hex[:10]}.v1"
    await kafka.create_topics(name, dlq_topic(name))
    try:
        yield name
    finally:
        await kafka.delete_topics(name, dlq_topic(name))


# ---- infrastructure control --------------------------------------------------------------


@dataclass
class Outage:
    component: str
    stop_s: float = 0.0  # how long the script took to stop it
    down_at: float = 0.0  # wall clock (time.time) when it was fully down
    start_s: float = 0.0  # how long the script took to start it and see it ready
    back_at: float = 0.0  # wall clock when it was ready again

    @property
    def down_s(self) -> float:
        return self.back_at - self.down_at


class Infra:
    """Stops and starts the broker or the database the tests run on, with the same scripts,
    state dir and ports as `make infra-up`."""

    SCRIPTS = {"kafka": "deploy/local/kafka.sh", "postgres": "deploy/local/postgres.sh"}

    def __init__(self, logs: Path) -> None:
        self.state_dir = Path(os.environ.get("AIDMESH_STATE_DIR") or REPO / "var")
        self._logs = logs
        self._touched: set[str] = set()
        self.env = dict(os.environ, AIDMESH_STATE_DIR=str(self.state_dir))

    async def check(self) -> None:
        """Refuse to stop anything unless the instances the tests use are the ones these
        scripts control (same state dir and ports): never stop someone else's broker."""
        properties = self.state_dir / "kafka" / "server.properties"
        match = re.search(
            r"^listeners=[A-Z_]+://([\d.]+):(\d+),CONTROLLER://[\d.]+:(\d+)$",
            properties.read_text() if properties.exists() else "",
            re.MULTILINE,
        )
        host, _, port = KAFKA.partition(",")[0].rpartition(":")
        if not match or host not in ("127.0.0.1", "localhost") or match.group(2) != port:
            pytest.fail(
                f"the tests use Kafka at {KAFKA}, but {properties} describes "
                f"{match.group(1) + ':' + match.group(2) if match else 'no broker'}: set "
                "AIDMESH_STATE_DIR to the state dir of the broker the tests use"
            )
        self.env["AIDMESH_KAFKA_PORT"] = match.group(2)
        self.env["AIDMESH_KAFKA_CONTROLLER_PORT"] = match.group(3)
        dsn_port = str(urlsplit(ADMIN_DSN).port or 5432)
        self.env["AIDMESH_PG_PORT"] = dsn_port
        status = await self._run("postgres", "status", check=False)
        if f"@127.0.0.1:{dsn_port}/" not in status:
            pytest.fail(
                f"the tests use PostgreSQL at {ADMIN_DSN}, but postgres.sh (state dir "
                f"{self.state_dir}) says: {status.strip()}"
            )
        if "running" not in await self._run("kafka", "status", check=False):
            pytest.fail(f"kafka.sh (state dir {self.state_dir}) reports no running broker")

    async def _run(self, component: str, command: str, *, check: bool = True) -> str:
        log = self._logs / f"{component}-{command}.log"
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                "bash", str(REPO / self.SCRIPTS[component]), command,
                env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
            code = await process.wait()
        text = log.read_text(errors="replace")
        if check and code != 0:
            raise AssertionError(f"{component}.sh {command} failed ({code}):\n{text[-2000:]}")
        return text

    @contextlib.asynccontextmanager
    async def outage(self, component: str) -> AsyncIterator[Outage]:
        """Stop `component` for the body of the block; start it again whatever happens."""
        outage = Outage(component)
        self._touched.add(component)
        t0 = time.monotonic()
        try:
            await self._run(component, "stop")
            outage.stop_s = time.monotonic() - t0
            outage.down_at = time.time()
            yield outage
        finally:
            t0 = time.monotonic()
            await self._run(component, "start")
            outage.start_s = time.monotonic() - t0
            outage.back_at = time.time()

    async def ensure_running(self) -> None:
        for component in sorted(self._touched):
            await self._run(component, "start")


@pytest.fixture
async def infra(services: Services, tmp_path: Path) -> AsyncIterator[Infra]:
    """Control of the shared local infra. Depends on `services`, so on teardown the infra
    is started again before the services are stopped and the databases dropped."""
    control = Infra(tmp_path)
    await control.check()
    try:
        yield control
    finally:
        await control.ensure_running()


# ---- reports -----------------------------------------------------------------------------


@pytest.fixture
def report() -> Callable[..., None]:
    """`report(scenario, **figures)`: var/reports/faults-<scenario>.json and one summary line."""

    def write(scenario: str, **figures: Any) -> None:
        REPORTS.mkdir(parents=True, exist_ok=True)
        document = {"scenario": scenario, "kafka": KAFKA, **figures}
        path = REPORTS / f"faults-{scenario}.json"
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        line = f"faults-{scenario}: " + ", ".join(
            f"{k}={round(v, 2) if isinstance(v, float) else v}"
            for k, v in figures.items()
            if not isinstance(v, dict | list)
        )
        _summaries.append(line)
        print(line)

    return write


# ---- registrations -----------------------------------------------------------------------


_GIVEN = ("Оксана", "Марія", "Ірина", "Наталія", "Олена", "Тетяна", "Світлана", "Галина")
_FAMILY = ("Тестова", "Коваленко", "Бондаренко", "Ткаченко", "Шевченко", "Мельник", "Бойко")


def household_body() -> dict[str, Any]:
    """A registration whose health need the health service meets with one visit: a
    different person each time (the same one again and again is a duplicate to review)."""
    born = date(1950, 1, 1) + timedelta(days=random.randrange(365 * 50))
    return {
        "channel": "field_office",
        "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312"},
        "displacement_status": "idp",
        "size": 1,
        "members": [
            {
                "full_name": f"{random.choice(_GIVEN)} {random.choice(_FAMILY)}",
                "sex": "female",
                "date_of_birth": born.isoformat(),
                "relation": "head",
            }
        ],
        "consents": ["registration", "data_sharing"],
        "needs": [{"sector": "health", "severity": 3, "details": {"services_needed": ["mhpss"]}}],
    }


@pytest.fixture
def household() -> Callable[[], dict[str, Any]]:
    return household_body
