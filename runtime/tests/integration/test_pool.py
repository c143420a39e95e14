"""The service pool (aidmesh_runtime.db.create_pool): a connection goes back without the
reset round trip, unless it said it took session state; then it goes back reset."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from aidmesh_runtime.db import create_pool, holds_session_state

pytestmark = pytest.mark.integration

LOCK = 4242


@pytest.fixture
async def pool(new_database: Callable[[], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(await new_database(), size=1)  # one connection: always the same
    yield pool
    await pool.close()


def queries_sent(conn: asyncpg.Connection) -> list[str]:
    sent: list[str] = []
    conn.add_query_logger(lambda record: sent.append(record.query))
    return sent


async def test_a_connection_used_in_transactions_goes_back_without_a_reset_query(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        sent = queries_sent(conn)
        async with conn.transaction():
            await conn.execute("SET LOCAL statement_timeout = '5s'")
            await conn.fetchval("SELECT pg_advisory_xact_lock($1)", LOCK)
    assert not any("RESET ALL" in query for query in sent)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "0"


async def test_a_transaction_left_open_is_rolled_back_when_its_connection_goes_back(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("BEGIN; CREATE TABLE left_open (id int)")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('left_open')") is None


async def test_a_connection_that_held_session_state_goes_back_reset(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        holds_session_state(conn)
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
        await conn.execute("SET statement_timeout = '5s'")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "0"
        # The session lock went with the reset: the same session cannot see it as its own.
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
            "AND pid = pg_backend_pid()",
            LOCK,
        )
        assert held == 0


async def test_the_reset_is_for_that_use_only(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        holds_session_state(conn)
        await conn.execute("SET statement_timeout = '5s'")
    async with pool.acquire() as conn:
        sent = queries_sent(conn)
        await conn.fetchval("SELECT 1")
    assert not any("RESET ALL" in query for query in sent)
