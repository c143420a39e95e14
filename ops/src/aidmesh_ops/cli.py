"""`aidmesh`: the operator and developer command line."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from aidmesh_runtime.kafka import DEFAULT_SECRETS_DIR, KafkaCredentialsMissing, operator
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from . import bootstrap, dlq, kafka_acl
from .dlq_render import (
    records,
    render_dry_run,
    render_letter,
    render_listing,
    render_purge_plan,
    render_replay_summary,
)

app = typer.Typer(no_args_is_help=True, help="AidMesh operator and developer tools.")
infra = typer.Typer(no_args_is_help=True, help="Topics and databases.")
app.add_typer(infra, name="infra")
dead_letters = typer.Typer(
    no_args_is_help=True,
    help="Dead letters: list, inspect, replay to their original topic, purge.",
)
app.add_typer(dead_letters, name="dlq")
kafka_app = typer.Typer(
    no_args_is_help=True,
    help="Kafka principals and ACLs derived from the topic catalogue (ADR 0011).",
)
app.add_typer(kafka_app, name="kafka")
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")


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
    """Create the catalogue's topics (with DLQs), the Kafka principals and their grants,
    and each service's role and database."""
    topics = asyncio.run(bootstrap.ensure_topics(kafka))
    console.print(
        f"[green]topics[/]: {len(topics)} created"
        + (f" ({', '.join(topics)})" if topics else ", all present")
    )
    connection = operator(kafka)
    if connection.authenticated:
        _print_applied(kafka_acl.apply(connection, secrets_dir=_secrets_dir()))
    created = asyncio.run(bootstrap.ensure_databases(pg_dsn))
    console.print("[green]databases[/]: " + (", ".join(created) if created else "all present"))


def _secrets_dir() -> Path:
    return Path(os.environ.get("AIDMESH_KAFKA_SECRETS_DIR", DEFAULT_SECRETS_DIR))


def _print_applied(applied: kafka_acl.Applied) -> None:
    if applied.users:
        console.print(f"[green]kafka principals[/]: {', '.join(applied.users)}")
    console.print(
        f"[green]kafka ACLs[/]: {len(applied.created)} created, {len(applied.deleted)} revoked,"
        f" {applied.kept} kept"
    )
    for grant in applied.deleted:
        console.print(f"  revoked {grant}")


@kafka_app.command("grants")
def kafka_grants() -> None:
    """Print every grant the topic catalogue implies, per principal."""
    for principal in kafka_acl.principals():
        console.print(f"[bold]User:{principal}[/]")
        for grant in kafka_acl.grants():
            if grant.principal == principal:
                star = "*" if grant.pattern == "prefixed" else ""
                console.print(f"  {grant.operation:<8} {grant.resource} {grant.name}{star}")


@kafka_app.command("apply")
def kafka_apply(
    kafka: str = typer.Option(
        "127.0.0.1:9092", envvar="AIDMESH_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    users: bool = typer.Option(
        True,
        help="Also create or update the principals' SCRAM credentials, with the passwords in"
        " AIDMESH_KAFKA_SECRETS_DIR/<principal>.password (generated when missing). --no-users"
        " on a cluster whose users are managed elsewhere.",
    ),
) -> None:
    """Make the cluster's ACLs (and principals) match the catalogue, as the operator
    (AIDMESH_OPS_KAFKA_USERNAME, default admin). Idempotent; revokes grants our principals
    hold that the catalogue no longer gives them."""
    _print_applied(kafka_acl.apply(operator(kafka), secrets_dir=_secrets_dir() if users else None))


@infra.command("skip-test-traffic")
def infra_skip_test_traffic(
    kafka: str = typer.Option(
        "127.0.0.1:9092", envvar="AIDMESH_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
) -> None:
    """Move the `make up` services' consumer groups to the end of their topics.

    `make test` runs this after the tests: their traffic was not meant for the local
    services, and replaying it would hold up the next `make up` demo. Development only.
    """
    skipped = asyncio.run(bootstrap.skip_to_end(kafka, bootstrap.dev_groups()))
    total = sum(skipped.values())
    console.print(
        f"[green]local service groups[/]: skipped {total:,} test records"
        + (f" ({', '.join(f'{g} {n:,}' for g, n in skipped.items() if n)})" if total else "")
    )


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
    health_url: str = typer.Option("http://127.0.0.1:8103", help="Health API."),
    cash_url: str = typer.Option("http://127.0.0.1:8106", help="Cash API."),
    kafka: str = typer.Option(
        "127.0.0.1:9092", envvar="AIDMESH_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    timeout: float = typer.Option(
        120.0, min=1, help="Seconds to wait for the flows after the last registration."
    ),
    signing_key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="AIDMESH_AUTH_SIGNING_KEY_FILE",
            help="The token issuer's key (default: the local one in var/secrets/auth/).",
        ),
    ] = None,
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
        health_url=health_url.rstrip("/"),
        cash_url=cash_url.rstrip("/"),
        kafka=kafka,
        timeout_s=timeout,
        today=date.today(),
        signing_key_file=signing_key_file,
    )
    raise typer.Exit(asyncio.run(run_demo(options, console)))


# ---- dead letters ----------------------------------------------------------------------
# Exit codes: 0 done, 1 an operational problem (said on stderr), 2 a usage error.


def _kafka_option() -> Any:
    return typer.Option(
        "127.0.0.1:9092",
        "--kafka",
        envvar="AIDMESH_KAFKA_BOOTSTRAP",
        help="Kafka bootstrap servers.",
    )


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run the command's Kafka work; an operational problem ends it with exit code 1."""
    try:
        return asyncio.run(work)
    except (dlq.DlqError, KafkaCredentialsMissing) as exc:
        _fail(str(exc))
    except KafkaError as exc:
        _fail(f"Kafka error: {exc!r}")


def _fail(message: str, *, code: int = 1) -> NoReturn:
    errors.print(Text(message, style="red"), soft_wrap=True)  # one line, for logs and grep
    raise typer.Exit(code)


def _can_ask() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _needs_yes(what: str) -> None:
    _fail(f"{what} asks for confirmation, and there is no terminal to ask on: add --yes", code=2)


@dead_letters.command("list")
def dlq_list(
    topic: str | None = typer.Option(
        None, "--topic", help="One dead-letter topic (default: every DLQ of the catalogue)."
    ),
    service: str | None = typer.Option(
        None, "--service", help="Only records dead-lettered by this service."
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="Records to show."),
    kafka: str = _kafka_option(),
) -> None:
    """Record counts per DLQ, counts per reason, and the newest dead letters."""

    async def work() -> dlq.Listing:
        async with dlq.connect(kafka) as client:
            topics = [await client.check(topic)] if topic else dlq.catalogue_dlqs()
            return await client.listing(topics, service=service, limit=limit)

    render_listing(console, _run(work()), service=service)


@dead_letters.command("show")
def dlq_show(
    topic: str = typer.Argument(..., metavar="DLQ_TOPIC", help="e.g. aidmesh.need.v1.dlq"),
    offset: int = typer.Argument(..., min=0, help="The record's offset in the DLQ."),
    kafka: str = _kafka_option(),
) -> None:
    """One dead letter in full: headers, key, and a preview of the value."""

    async def work() -> dlq.DeadLetter:
        async with dlq.connect(kafka) as client:
            return await client.get(await client.check(topic), offset)

    render_letter(console, _run(work()))


@dead_letters.command("replay")
def dlq_replay(
    topic: str = typer.Argument(..., metavar="DLQ_TOPIC"),
    offsets: Annotated[
        list[int] | None,
        typer.Option("--offset", min=0, help="A record to replay; repeat for several."),
    ] = None,
    everything: bool = typer.Option(False, "--all", help="Every record not replayed yet."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be replayed; publish nothing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(False, "--force", help="Replay records already replayed, too."),
    kafka: str = _kafka_option(),
) -> None:
    """Publish dead letters again to their original topic (original key, value, headers;
    plus aidmesh_replayed_from). Fix the cause first: the consumer handles them afresh."""
    if bool(offsets) == everything:
        raise typer.BadParameter(
            "give --offset (one or more) or --all", param_hint="--offset/--all"
        )
    if everything and not (dry_run or yes or _can_ask()):
        _needs_yes("replay --all")

    async def work() -> tuple[dlq.ReplayPlan, dlq.ReplayReport | None]:
        async with dlq.connect(kafka) as client:
            plan = await client.plan_replay(
                await client.check(topic), offsets=None if everything else offsets, force=force
            )
            if not plan.offsets:
                return plan, None
            if everything and not (dry_run or yes):
                original = plan.stats.topic.removesuffix(".dlq")
                if not typer.confirm(
                    f"Replay {records(len(plan.offsets))} of {plan.stats.topic} to {original}?"
                ):
                    _fail("nothing replayed")
            if dry_run or len(plan.offsets) == 1:
                return plan, await client.replay(plan, dry_run=dry_run)
            with _progress() as progress:
                task = progress.add_task(f"replaying {topic}", total=len(plan.offsets))
                report = await client.replay(
                    plan, on_progress=lambda done: progress.advance(task, done)
                )
            return plan, report

    plan, report = _run(work())
    if report is None:
        report = dlq.ReplayReport(topic=plan.stats.topic, dry_run=dry_run, skipped=plan.skipped)
        if not plan.skipped:
            console.print(Text(f"nothing to replay: every record of {topic} was replayed"))
            return
    if dry_run:
        render_dry_run(console, report)
    render_replay_summary(console, plan, report)
    if not report.ok:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@dead_letters.command("purge")
def dlq_purge(
    topic: str = typer.Argument(..., metavar="DLQ_TOPIC"),
    before: int = typer.Option(
        ..., "--before", min=0, help="Delete the records below this offset."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(False, "--force", help="Delete records never replayed, too."),
    kafka: str = _kafka_option(),
) -> None:
    """Delete dead letters below an offset (Kafka DeleteRecords). Refuses to delete records
    that were never replayed, unless --force."""
    if not (yes or _can_ask()):
        _needs_yes("purge")

    async def work() -> tuple[dlq.PurgePlan, int | None]:
        async with dlq.connect(kafka) as client:
            plan = await client.plan_purge(await client.check(topic), before=before)
            if plan.deleting == 0:
                return plan, None
            if plan.unreplayed and not force:
                await client.purge(plan)  # raises PurgeRefused, naming the records
            render_purge_plan(console, plan)
            if not yes and not typer.confirm("Delete them? This cannot be undone."):
                _fail("nothing purged")
            return plan, await client.purge(plan, force=force)

    plan, low = _run(work())
    if low is None:
        console.print(Text(f"nothing to purge: {topic} starts at offset {plan.stats.low}"))
        return
    console.print(
        Text(f"purged {records(plan.deleting)} from {topic}; it now starts at offset {low}")
    )


report = typer.Typer(no_args_is_help=True, help="Reports for coordination and donors.")
app.add_typer(report, name="report")


@report.command("5w")
def report_5w(
    out: Annotated[Path, typer.Option("--out", help="CSV to write.")] = Path("var/reports/5w.csv"),
    ids_out: Annotated[
        Path | None,
        typer.Option("--ids-out", help="Also write every delivery id of every row to this CSV."),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Only deliveries on or after this day."),
    ] = None,
    kafka: str = _kafka_option(),
) -> None:
    """5W (who, what, where, when, for whom) from AssistanceDelivered: one row per org,
    sector, activity, oblast, raion and month, HXL-tagged, de-duplicated by delivery id."""
    from .fivew import export_5w

    try:
        summary = export_5w(kafka, out, since=since.date() if since else None, ids_out=ids_out)
    except KafkaError as exc:
        _fail(f"cannot read {kafka}: {exc} (make infra-up starts the local broker)")
    console.print(
        f"wrote {summary.rows} rows ({summary.deliveries} deliveries from {summary.records} "
        f"records) to {summary.out}"
    )
    if summary.duplicates or summary.conflicts:
        console.print(
            f"  {summary.duplicates} duplicate records counted once, {summary.conflicts} of them "
            "with different content (first copy kept)"
        )
    if summary.before_since:
        console.print(f"  {summary.before_since} deliveries before --since left out")
    for reason, count in summary.skipped_reasons.most_common():
        console.print(f"  [yellow]{count} records skipped[/]: {reason}")


# ---- bearer tokens ----------------------------------------------------------------------
# Exit codes: 0 done, 2 a usage error (unknown scope, bad TTL), 1 no usable signing key.

tokens_app = typer.Typer(
    no_args_is_help=True,
    help="Bearer tokens for the services' HTTP APIs: key pairs, issue, the scopes (ADR 0009).",
)
app.add_typer(tokens_app, name="token")


@tokens_app.command("issue")
def token_issue(
    sub: Annotated[
        str, typer.Option(help="Who the token is for: partner:<name>, user:<id>, service:<name>.")
    ],
    org: Annotated[
        str, typer.Option(help="Organisation code its calls are attributed to (e.g. NGO-DOBRO).")
    ],
    scope: Annotated[
        list[str],
        typer.Option(
            help="A scope (repeat, or space-separated); `aidmesh token scopes` lists them."
        ),
    ],
    ttl: Annotated[str, typer.Option(help="How long it is valid: 90s, 15m, 1h, 30d.")] = "1h",
    key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="AIDMESH_AUTH_SIGNING_KEY_FILE",
            help="The issuer's private key, <kid>.key (default: the local one in var/secrets/auth/).",
        ),
    ] = None,
) -> None:
    """Print a signed token (only the token, for `$(aidmesh token issue ...)`)."""
    from . import tokens

    try:
        tokens.check_principal(sub=sub, org=org)
        scopes, lifetime = tokens.scopes_of(scope), tokens.parse_ttl(ttl)
    except tokens.TokenError as exc:
        _fail(str(exc), code=2)
    try:
        token = tokens.issue(sub=sub, org=org, scopes=scopes, ttl=lifetime, key_file=key_file)
    except tokens.TokenError as exc:
        _fail(str(exc))
    print(token)


@tokens_app.command("keygen")
def token_keygen(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to write <kid>.key and <kid>.pem.")
    ],
    kid: Annotated[str, typer.Option(help="The key id (new ids rotate keys).")] = "local1",
) -> None:
    """Write a new Ed25519 key pair: <kid>.key (private, mode 600: the issuer's only) and
    <kid>.pem (public: give it to the services as AIDMESH_AUTH_PUBLIC_KEYS_FILE)."""
    from . import tokens

    try:
        pair = tokens.keygen(directory, kid)
    except tokens.TokenError as exc:
        _fail(str(exc), code=2)
    console.print(f"private key (issuer only, mode 600): {pair.private_key}")
    console.print(f"public key (services): {pair.public_key}")
    console.print(f"or inline, AIDMESH_AUTH_PUBLIC_KEYS={pair.public_line}", soft_wrap=True)


@tokens_app.command("scopes")
def token_scopes() -> None:
    """The scopes a token may carry, and what each one allows."""
    from aidmesh_runtime.auth import SCOPES

    for name, meaning in SCOPES.items():
        console.print(f"{name:24} {meaning}", highlight=False, soft_wrap=True)
