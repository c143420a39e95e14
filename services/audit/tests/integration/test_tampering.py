"""The issue's check: tamper with the ledger directly in SQL, as a superuser can (bypassing
the append-only trigger), and `verify` names exactly the entry that was touched.

Each test tampers inside `tampered(...)`, which puts the row back afterwards, so the
ledger is intact again for the next test.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest
from aidmesh_audit.cli import app
from aidmesh_contracts import Composition, HouseholdRegistered, Location
from aidmesh_runtime.testing import publish
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def household_registered() -> HouseholdRegistered:
    return HouseholdRegistered(
        household_id=uuid4(),
        registered_at=datetime.now(UTC),
        channel="hotline",
        location=Location(adm1_pcode="UA80"),
        displacement_status="idp",
        size=2,
        composition=Composition(female_18_59=1, female_60_plus=1),
        consents=frozenset({"registration"}),
    )


@pytest.fixture(scope="module")
async def rows(audit, producer, ledger) -> list[asyncpg.Record]:
    """Five events of ours in the ledger."""
    envelopes = [await publish(producer, household_registered()) for _ in range(5)]
    return await ledger.entries_of([e.id for e in envelopes])


@contextlib.asynccontextmanager
async def superuser_writes(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Bypass the trigger as only a superuser can: ordinary triggers do not fire in replica mode."""
    await conn.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        await conn.execute("SET session_replication_role = origin")


@contextlib.asynccontextmanager
async def tampered(
    conn: asyncpg.Connection, *statements: tuple[str, *tuple[object, ...]]
) -> AsyncIterator[None]:
    """Run each (sql, *args) against the ledger; put every row back as it was afterwards."""
    before = await conn.fetch("SELECT * FROM audit_ledger ORDER BY seq")
    async with superuser_writes(conn), conn.transaction():
        for sql, *args in statements:
            await conn.execute(sql, *args)
    try:
        yield
    finally:
        async with superuser_writes(conn), conn.transaction():
            await conn.execute("DELETE FROM audit_ledger WHERE seq <= $1", before[-1]["seq"])
            await conn.copy_records_to_table(
                "audit_ledger",
                records=[tuple(r.values()) for r in before],
                columns=list(before[0].keys()),
            )


async def verify(settings) -> tuple[int, str]:
    """`aidmesh-audit verify` as an operator runs it, as the audit service's own role."""
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["verify", "--dsn", settings.database_dsn]
    )
    return result.exit_code, result.output


async def test_an_intact_ledger_verifies_and_exits_0(settings, rows) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aidmesh_audit",
        "verify",
        "--dsn",
        settings.database_dsn,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()

    assert process.returncode == 0, output.decode()
    assert "intact" in output.decode()
    assert "head: seq" in output.decode()


async def test_an_entry_edited_in_sql_is_reported_exactly(settings, ledger, rows) -> None:
    target = rows[2]

    async with tampered(
        ledger.conn,
        (
            "UPDATE audit_ledger SET payload = replace(payload, '\"size\":2', '\"size\":7') "
            "WHERE seq = $1",
            target["seq"],
        ),
    ):
        code, output = await verify(settings)

    assert code == 1, output
    assert f"edited: seq {target['seq']} (ce_id {target['ce_id']})" in output
    assert output.count("ce_id") == 1  # that entry, and no other
    code, output = await verify(settings)
    assert code == 0, output  # and put back, it is intact again


async def test_an_edited_envelope_attribute_is_reported(settings, ledger, rows) -> None:
    target = rows[1]

    async with tampered(
        ledger.conn,
        ("UPDATE audit_ledger SET ce_source = '/aidmesh/somebody' WHERE seq = $1", target["seq"]),
    ):
        code, output = await verify(settings)

    assert code == 1
    assert f"edited: seq {target['seq']} (ce_id {target['ce_id']})" in output


async def test_a_deleted_entry_is_reported_by_its_seq(settings, ledger, rows) -> None:
    target = rows[3]

    async with tampered(ledger.conn, ("DELETE FROM audit_ledger WHERE seq = $1", target["seq"])):
        code, output = await verify(settings)

    assert code == 1
    assert f"deleted: seq {target['seq']}: seq {target['seq']} missing" in output


async def test_two_swapped_entries_are_reported_as_reordered(settings, ledger, rows) -> None:
    # Two neighbours in the chain: ours if nothing landed between them, else the entry that
    # did (other tests' events are ledgered here too; an entry is an entry).
    first, second = await ledger.conn.fetch(
        "SELECT seq, ce_id FROM audit_ledger WHERE seq >= $1 ORDER BY seq LIMIT 2", rows[0]["seq"]
    )
    a, b = first["seq"], second["seq"]
    assert b == a + 1
    aside = 10**12  # the primary key is checked row by row: swap through free numbers

    async with tampered(
        ledger.conn,
        ("UPDATE audit_ledger SET seq = seq + $1 WHERE seq IN ($2, $3)", aside, a, b),
        ("UPDATE audit_ledger SET seq = $2 WHERE seq = $1", a + aside, b),
        ("UPDATE audit_ledger SET seq = $2 WHERE seq = $1", b + aside, a),
    ):
        code, output = await verify(settings)

    assert code == 1
    assert f"reordered: seq {a} (ce_id {second['ce_id']})" in output
    assert f"written as seq {b}" in output
