"""`aidmesh`: the operator and developer command line."""

from __future__ import annotations

import asyncio
import os

import typer
from rich.console import Console

from . import bootstrap

app = typer.Typer(no_args_is_help=True, help="AidMesh operator and developer tools.")
infra = typer.Typer(no_args_is_help=True, help="Topics and databases.")
app.add_typer(infra, name="infra")
console = Console()

KAFKA = os.environ.get("AIDMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PG_ADMIN = os.environ.get("AIDMESH_PG_DSN", "postgresql://postgres@127.0.0.1:5433/postgres")


@infra.command("bootstrap")
def infra_bootstrap(
    kafka: str = typer.Option(KAFKA, help="Kafka bootstrap servers."),
    pg_dsn: str = typer.Option(PG_ADMIN, help="PostgreSQL admin DSN."),
) -> None:
    """Create the catalogue's topics (with DLQs) and each service's role and database."""
    topics = asyncio.run(bootstrap.ensure_topics(kafka))
    console.print(f"[green]topics[/]: {len(topics)} created" + (f" ({', '.join(topics)})" if topics else ", all present"))
    created = asyncio.run(bootstrap.ensure_databases(pg_dsn))
    console.print(f"[green]databases[/]: " + (", ".join(created) if created else "all present"))
