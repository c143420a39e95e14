"""`python -m aidmesh_audit [verify | timeline HOUSEHOLD_ID]` (or `aidmesh-audit ...`).

Without a command it serves the audit service. The commands read the ledger directly from
the audit database (AIDMESH_AUDIT_DB_DSN, or the local default), read-only.

Exit codes: 0 done (verify: the chain is intact), 1 verify found a break, 2 usage error,
3 the database could not be read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, NoReturn, TypeVar
from uuid import UUID

import asyncpg
import typer
from aidmesh_runtime.service import serve
from rich.console import Console
from rich.tree import Tree

from . import repository
from .app import build_app
from .ledger import ChainVerifier, Entry, Verdict
from .settings import AuditSettings
from .timeline import RESTRICTED_TOPICS, Node, causation_tree

app = typer.Typer(
    help="AidMesh audit: serve the ledger, verify its hash chain, show a household timeline."
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")
DsnOption = Annotated[
    str | None,
    typer.Option(help="The audit database DSN (default: from AIDMESH_AUDIT_* settings)."),
]


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context) -> None:
    """Without a command: run the audit service."""
    if ctx.invoked_subcommand is None:
        serve(build_app, AuditSettings)


def _dsn(dsn: str | None) -> str:
    return dsn or AuditSettings().database_dsn


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"cannot read the audit ledger: {type(exc).__name__}: {exc}")


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]error[/]: {message}", highlight=False)
    raise typer.Exit(3)


async def verify_ledger(dsn: str) -> Verdict:
    """Recompute the whole chain from the database, streaming it in seq order."""
    conn = await asyncpg.connect(dsn)
    try:
        verifier = ChainVerifier()
        async for entry in repository.entries(conn):
            if verifier.check(entry) is not None:
                break
        return verifier.verdict
    finally:
        await conn.close()


async def read_timeline(dsn: str, household_id: UUID) -> list[Entry]:
    conn = await asyncpg.connect(dsn)
    try:
        return await repository.household_entries(conn, str(household_id))
    finally:
        await conn.close()


@app.command("verify")
def verify_command(dsn: DsnOption = None) -> None:
    """Recompute the hash chain; name the first edited, deleted or reordered entry (exit 1)."""
    verdict = _run(verify_ledger(_dsn(dsn)))
    if verdict.broken is not None:
        console.print(f"[red]BROKEN[/] after {verdict.entries} intact entries", highlight=False)
        console.print(verdict.broken.describe(), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    head = verdict.head
    console.print(f"[green]intact[/]: {verdict.entries} entries", highlight=False)
    if head is not None:
        # Record the head elsewhere: a deletion of the newest entries is only visible
        # against a head seen before (ADR 0005).
        console.print(f"head: seq {head.seq} hash {head.hash}", highlight=False, soft_wrap=True)


@app.command("timeline")
def timeline_command(household_id: UUID, dsn: DsnOption = None) -> None:
    """Every event about a household in ledger order, as a causation tree."""
    entries = _run(read_timeline(_dsn(dsn), household_id))
    if not entries:
        console.print(f"no events about household {household_id} in the ledger")
        return
    console.print(render_timeline(household_id, entries))


def render_timeline(household_id: UUID, entries: list[Entry]) -> Tree:
    tree = Tree(f"[bold]household {household_id}[/]: {len(entries)} events", highlight=False)
    for root in causation_tree(entries):
        _add(tree, root)
    return tree


def _add(parent: Tree, node: Node) -> None:
    c = node.entry.content
    label = (
        f"[dim]#{node.entry.seq}[/] {c.ce_time:%Y-%m-%d %H:%M:%S} "
        f"[bold]{_short_type(c.ce_type)}[/] [cyan]{c.ce_source}[/]"
        + (" [yellow](restricted)[/]" if c.topic in RESTRICTED_TOPICS else "")
        + f" [dim]{c.ce_id}[/]"
    )
    branch = parent.add(label, highlight=False)
    for child in node.children:
        _add(branch, child)


def _short_type(ce_type: str) -> str:
    """org.aidmesh.shelter.case.opened.v1 -> shelter.case.opened.v1"""
    return ce_type.removeprefix("org.aidmesh.")


def main() -> None:
    app()
