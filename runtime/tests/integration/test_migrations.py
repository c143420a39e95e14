"""Migrations on a real PostgreSQL: applied once, forward only, each file all or nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from aidmesh_runtime.db import RUNTIME_MIGRATIONS, MigrationError, load_migrations, migrate

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(new_database: Callable[[], Awaitable[str]]) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database of its own: nothing applied yet."""
    conn = await asyncpg.connect(await new_database())
    yield conn
    await conn.close()


def service_migrations(directory: Path, **files: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql, encoding="utf-8")
    return directory


async def table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)


async def test_applying_the_migrations_twice_applies_nothing_the_second_time(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    directory = service_migrations(
        tmp_path / "m",
        **{
            "0001_cases.sql": "CREATE TABLE cases (id uuid PRIMARY KEY);",
            "0002_case_events.sql": "CREATE TABLE case_events (id bigserial PRIMARY KEY);",
        },
    )
    migrations = load_migrations("runtime", RUNTIME_MIGRATIONS) + load_migrations(
        "shelter", directory
    )

    first = await migrate(conn, migrations)
    second = await migrate(conn, migrations)

    assert first == [
        "runtime/0001_outbox_inbox.sql",
        "shelter/0001_cases.sql",
        "shelter/0002_case_events.sql",
    ]
    assert second == []
    assert await table_exists(conn, "outbox") and await table_exists(conn, "cases")


async def test_a_new_migration_is_applied_after_the_old_ones(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    directory = service_migrations(
        tmp_path / "m", **{"0001_cases.sql": "CREATE TABLE cases (id uuid PRIMARY KEY);"}
    )
    await migrate(conn, load_migrations("shelter", directory))
    service_migrations(directory, **{"0002_case_size.sql": "ALTER TABLE cases ADD size int;"})

    applied = await migrate(conn, load_migrations("shelter", directory))

    assert applied == ["shelter/0002_case_size.sql"]


async def test_a_migration_changed_after_it_was_applied_is_refused(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    directory = service_migrations(
        tmp_path / "m", **{"0001_cases.sql": "CREATE TABLE cases (id uuid PRIMARY KEY);"}
    )
    await migrate(conn, load_migrations("shelter", directory))
    service_migrations(
        directory,
        **{
            "0001_cases.sql": "CREATE TABLE cases (id uuid PRIMARY KEY, size int);",
            "0002_repairs.sql": "CREATE TABLE repairs (id uuid PRIMARY KEY);",
        },
    )

    with pytest.raises(MigrationError, match=r"0001_cases\.sql changed after it was applied"):
        await migrate(conn, load_migrations("shelter", directory))

    assert not await table_exists(conn, "repairs")


async def test_a_failing_migration_leaves_nothing_half_applied(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    directory = service_migrations(
        tmp_path / "m",
        **{
            "0001_cases.sql": "CREATE TABLE cases (id uuid PRIMARY KEY);",
            "0002_broken.sql": "CREATE TABLE repairs (id uuid); ALTER TABLE nowhere ADD x int;",
        },
    )

    with pytest.raises(asyncpg.UndefinedTableError):
        await migrate(conn, load_migrations("shelter", directory))

    assert await table_exists(conn, "cases")
    assert not await table_exists(conn, "repairs")
    assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1


async def test_the_same_numbers_in_two_components_do_not_collide(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    shelter = service_migrations(tmp_path / "s", **{"0001_init.sql": "CREATE TABLE a (x int);"})
    health = service_migrations(tmp_path / "h", **{"0001_init.sql": "CREATE TABLE b (x int);"})

    applied = await migrate(
        conn, load_migrations("shelter", shelter) + load_migrations("health", health)
    )

    assert applied == ["shelter/0001_init.sql", "health/0001_init.sql"]


async def test_replicas_migrating_a_new_database_at_once_apply_each_migration_once(
    new_database: Callable[[], Awaitable[str]],
) -> None:
    dsn = await new_database()
    replicas = [await asyncpg.connect(dsn) for _ in range(3)]
    migrations = load_migrations("runtime", RUNTIME_MIGRATIONS)
    try:
        results = await asyncio.gather(
            *(migrate(conn, migrations) for conn in replicas), return_exceptions=True
        )
    finally:
        for conn in replicas:
            await conn.close()

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sorted(results) == [[], [], ["runtime/0001_outbox_inbox.sql"]]  # type: ignore[type-var]
