"""`aidmesh`: the operator and developer command line."""

from __future__ import annotations

import asyncio
import random
from datetime import date

import typer
from rich.console import Console

from . import bootstrap

app = typer.Typer(no_args_is_help=True, help="AidMesh operator and developer tools.")
infra = typer.Typer(no_args_is_help=True, help="Topics and databases.")
app.add_typer(infra, name="infra")
console = Console()

@infra.command("bootstrap")
def infra_bootstrap(
    kafka: str = typer.Option(
        "127.0.0.1:9092", envvar="AIDMESH_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    pg_dsn: str = typer.Option(
        "postgresql://postgres@127.0.0.1:5433/postgres",
        envvar="AIDMESH_PG_DSN",
        help="PostgreSQL admin DSN.",
    ),
) -> None:
    """Create the catalogue's topics (with DLQs) and each service's role and database."""
    topics = asyncio.run(bootstrap.ensure_topics(kafka))
    console.print(
        f"[green]topics[/]: {len(topics)} created"
        + (f" ({', '.join(topics)})" if topics else ", all present")
    )
    created = asyncio.run(bootstrap.ensure_databases(pg_dsn))
    console.print("[green]databases[/]: " + (", ".join(created) if created else "all present"))


@app.command("demo")
def demo(
    households: int = typer.Option(36, min=1, max=10_000, help="How many households to register."),
    seed: int | None = typer.Option(
        None,
        help="Seed of the synthetic households (same seed, same day: same households). "
        "Random by default, and printed so a run can be repeated.",
    ),
    registration_url: str = typer.Option("http://127.0.0.1:8101", help="Registration API."),
    shelter_url: str = typer.Option("http://127.0.0.1:8102", help="Shelter API."),
    kafka: str = typer.Option(
        "127.0.0.1:9092", envvar="AIDMESH_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    timeout: float = typer.Option(
        120.0, min=1, help="Seconds to wait for the flows after the last registration."
    ),
) -> None:
    """Register synthetic households and watch them flow through every service.

    Exits 0 when every household's expected events arrived, 1 naming what is missing.
    """
    from .demo import DemoOptions, run_demo  # keeps `aidmesh infra ...` free of Faker's import

    options = DemoOptions(
        households=households,
        seed=seed if seed is not None else random.SystemRandom().randrange(1, 1_000_000),
        registration_url=registration_url.rstrip("/"),
        shelter_url=shelter_url.rstrip("/"),
        kafka=kafka,
        timeout_s=timeout,
        today=date.today(),
    )
    raise typer.Exit(asyncio.run(run_demo(options, console)))
