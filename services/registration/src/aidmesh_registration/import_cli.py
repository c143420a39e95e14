"""`python -m aidmesh_registration.import_cli FILE --partner ORG`: import a partner's CSV.

Shows a progress bar, writes `<FILE>.errors.csv` (row, column, reason, severity) and
`<FILE>.import.json` (the summary) next to the file, and resumes where it stopped when run
again on the same file; a finished file is not imported twice. The database is the
registration service's (`AIDMESH_REGISTRATION_DB_DSN`, or derived from `AIDMESH_PG_DSN`);
its migrations are applied first, as the service does when it starts, and it needs the
service's key-encryption key (`AIDMESH_REGISTRATION_KEK_FILE` or `_KEK`): personal data is
written sealed.

Exit status: 0 imported (or already imported), 1 an operational problem, 2 the file was
refused as a whole, 3 stopped early on request (`--stop-after-chunks`).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from aidmesh_runtime.db import all_migrations, migrate
from aidmesh_runtime.logging import configure_logging
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .backfill import seal_plaintext_rows
from .bulk_import import ImportOptions, ImportRefused, ImportReport, import_file
from .crypto import KekError
from .settings import RegistrationSettings

cli = typer.Typer(add_completion=False)
_ORG = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")


@cli.command()
def main(
    file: Annotated[Path, typer.Argument(help="The partner's CSV file (see README).")],
    partner: Annotated[str, typer.Option(help="Organisation code of the partner, e.g. NRC.")],
    chunk_rows: Annotated[int, typer.Option(help="Rows per transaction.")] = 20_000,
    workers: Annotated[int, typer.Option(help="Processes preparing chunks (0: none).")] = 2,
    stop_after_chunks: Annotated[
        int | None, typer.Option(help="Stop after this many chunks (testing a resume).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Import a partner's CSV file of households into the registry."""
    console = Console(stderr=True)
    if not _ORG.match(partner):
        console.print("--partner must be an organisation code: upper case letters, digits, - _")
        raise typer.Exit(2)
    if not file.is_file():
        console.print(f"no such file: {file}")
        raise typer.Exit(2)
    settings = RegistrationSettings()
    configure_logging(service=settings.service_name, level="WARNING", fmt=settings.log_format)
    options = ImportOptions(
        partner_org=partner,
        source=settings.source,
        chunk_rows=chunk_rows,
        workers=workers,
        stop_after_chunks=stop_after_chunks,
    )
    try:
        report = asyncio.run(_import(settings, file, options, console=console, quiet=quiet))
    except ImportRefused as refused:
        console.print(f"[red]refused:[/red] {refused}")
        raise typer.Exit(2) from None
    except KekError as exc:
        console.print(f"[red]no key:[/red] {exc}")
        raise typer.Exit(1) from None
    except (OSError, asyncpg.PostgresError) as exc:
        console.print(f"[red]failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    summary = file.with_name(file.name + ".import.json")
    summary.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    console.print(_table(report, summary))
    if report.status == "interrupted":
        raise typer.Exit(3)


async def run_import(
    settings: RegistrationSettings,
    file: Path,
    options: ImportOptions,
    *,
    progress: Progress | None = None,
) -> ImportReport:
    """Migrate the registry's database and import the file (also used by the bench)."""
    from .app import MIGRATIONS  # the service's own migrations, in its composition root

    conn = await asyncpg.connect(settings.database_dsn)
    try:
        vault = settings.vault()
        await migrate(conn, all_migrations(settings.service_name, MIGRATIONS))
        # As the service does when it starts: rows written before 0004 are sealed first.
        await seal_plaintext_rows(conn, vault)
        task = progress.add_task("importing", total=None) if progress else None

        def advance(rows: int) -> None:
            if progress is not None and task is not None:
                progress.advance(task, rows)

        def total(rows: int, done: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, total=rows, completed=done)

        return await import_file(
            conn, file, options, vault=vault, progress=advance, total_rows=total
        )
    finally:
        await conn.close()


async def _import(
    settings: RegistrationSettings,
    file: Path,
    options: ImportOptions,
    *,
    console: Console,
    quiet: bool,
) -> ImportReport:
    if quiet:
        return await run_import(settings, file, options)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        return await run_import(settings, file, options, progress=progress)


def _table(report: ImportReport, summary: Path) -> Table:
    table = Table(title=f"bulk import {report.import_id}: {report.status}", show_header=False)
    for label, value in (
        ("file", report.file),
        ("rows read in this run", f"{report.rows:,}"),
        ("rows done (all runs)", f"{report.rows_done:,}"),
        ("households imported", f"{report.households_imported:,}"),
        ("rows rejected", f"{report.rows_rejected:,}"),
        ("errors", f"{report.errors:,} → {report.error_report}"),
        ("warnings", f"{report.warnings:,} (cells kept as given, unverified; same report)"),
        ("possible duplicates queued", f"{report.suspicions:,}"),
        ("events written to the outbox", f"{report.events:,}"),
        ("seconds", f"{report.seconds:.1f}"),
        ("summary", str(summary)),
    ):
        table.add_row(label, value)
    if report.ignored_columns:
        table.add_row("ignored columns", ", ".join(report.ignored_columns))
    return table


if __name__ == "__main__":
    cli()
