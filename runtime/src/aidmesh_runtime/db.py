"""PostgreSQL plumbing: connection pools and numbered, forward-only SQL migrations."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import structlog

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection, pooled or not: a pool hands out proxies of its connections.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

log = structlog.get_logger(__name__)

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works: it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x41_49_44_4D  # "AIDM"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(component: str, directory: Path) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_snake_case.sql")
        migrations.append(
            Migration(component, int(match.group(1)), path.name, path.read_text(encoding="utf-8"))
        )
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"{directory}: migration numbers must be 1..N without gaps")
    return migrations


async def migrate(conn: Connection, migrations: list[Migration]) -> list[str]:
    """Apply what is not applied yet, each file in its own transaction; return what ran.

    A file already applied whose text changed is refused: migrations are forward-only.
    """
    applied_now = []
    # The lock comes first: replicas starting together on a new database would otherwise
    # race on CREATE TABLE IF NOT EXISTS (not atomic in PostgreSQL).
    holds_session_state(conn)
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   component text NOT NULL, version integer NOT NULL, name text NOT NULL,
                   checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (component, version))"""
        )
        rows = await conn.fetch("SELECT component, version, checksum FROM schema_migrations")
        applied = {(r["component"], r["version"]): r["checksum"] for r in rows}
        for migration in migrations:
            key = (migration.component, migration.version)
            if key in applied:
                if applied[key] != migration.checksum:
                    raise MigrationError(
                        f"{migration.component}/{migration.name} changed after it was applied; "
                        "write a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, checksum) "
                    "VALUES ($1, $2, $3, $4)",
                    migration.component,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(f"{migration.component}/{migration.name}")
            log.info("migration_applied", migration=f"{migration.component}/{migration.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


def all_migrations(
    service: str, service_dir: Path, *, extra: Sequence[tuple[str, Path]] = ()
) -> list[Migration]:
    """Runtime tables first, then shared components the service opts into, then its own."""
    migrations = load_migrations("runtime", RUNTIME_MIGRATIONS)
    for component, directory in extra:
        migrations += load_migrations(component, directory)
    return migrations + load_migrations(service, service_dir)


class ServiceConnection(asyncpg.Connection):
    """A pooled connection that is reset on release only if it took session state.

    asyncpg's pool sends a reset query (advisory unlock all, CLOSE ALL, UNLISTEN *, RESET
    ALL) every time a connection goes back: one more round trip per use case, ~100-140 µs
    of CPU on this machine (bench/commit_path.py), although our use cases keep their state
    in transactions (SET LOCAL, transaction-level advisory locks) and the pool rolls back
    any transaction left open anyway. The few places that take session state (a
    session-level advisory lock, LISTEN, a session SET) say so with `holds_session_state`;
    the connection is then reset as before. runtime/tests/unit/test_session_state.py
    finds session-level SQL that does not say so.
    """

    __slots__ = ("_aidmesh_session_state",)

    def hold_session_state(self) -> None:
        self._aidmesh_session_state = True

    def get_reset_query(self) -> str:
        if not getattr(self, "_aidmesh_session_state", False):
            return ""
        self._aidmesh_session_state = False
        return str(super().get_reset_query())


def holds_session_state(conn: Connection) -> None:
    """Mark `conn` as holding session state (a session-level advisory lock, LISTEN, a
    session SET): released to its pool, it is reset in full. Call before taking it; a
    connection not from a service pool needs nothing (it is closed, not reused)."""
    mark = getattr(conn, "hold_session_state", None)
    if mark is not None:
        mark()


async def create_pool(dsn: str, *, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, command_timeout=30, connection_class=ServiceConnection
    )
    assert pool is not None
    return pool
