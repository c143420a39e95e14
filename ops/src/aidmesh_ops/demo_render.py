"""How the demo looks: rich tables for the plan, the summary and the timelines.

Only ids (short form), codes, counts and money are printed. Names, phones, addresses and
documents stay in registration, even though the demo's people are made up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from .demo_data import OBLAST_BY_PCODE, DemoHousehold
from .demo_flows import (
    Flow,
    FlowTracker,
    assistance_by_sector,
    by_oblast,
    counts_by_type,
    deliveries_elsewhere,
    flow_latencies_ms,
    median,
    sample_flows,
    shelter_totals,
    short,
    timeline,
    uah,
)


def render_plan(console: Console, households: Sequence[DemoHousehold], *, seed: int) -> None:
    persons = sum(h.size for h in households)
    oblasts = Counter(h.adm1_pcode for h in households)
    sectors = Counter(s for h in households for s in h.sectors)
    damage = Counter(h.damage_level for h in households if h.damage_level)
    channels = Counter(h.channel for h in households)
    lines = [
        f"[bold]{len(households)}[/] households, [bold]{persons}[/] persons "
        f"in [bold]{len(oblasts)}[/] oblasts (seed {seed}: `--seed {seed}` repeats them)",
        "needs: " + ", ".join(f"{s} {sectors[s]}" for s in ("shelter", "health", "protection")),
        "shelter damage: "
        + ", ".join(f"{d} {damage[d]}" for d in ("light", "medium", "heavy"))
        + "  (light and medium get repaired; heavy stays open for state compensation)",
        "channels: " + ", ".join(f"{c} {n}" for c, n in channels.most_common()),
    ]
    console.print(Panel("\n".join(lines), title="Households to register", expand=False))


def render_summary(console: Console, tracker: FlowTracker) -> None:
    flows = tracker.flows
    console.print()
    console.rule("[bold]What the platform did")
    console.print(_events_table(flows))
    console.print(_assistance_table(flows))
    console.print(_oblast_table(flows))
    elsewhere = deliveries_elsewhere(flows)
    if elsewhere:
        sources = ", ".join(sorted({e.source for e in elsewhere}))
        console.print(
            f"[yellow]note: {len(elsewhere)} deliveries were reported in another oblast than "
            f"their household's registration (from {sources}); the table counts them where "
            "they were reported[/]"
        )
    latencies = flow_latencies_ms(flows)
    if latencies:
        console.print(
            f"[bold]{tracker.complete}/{len(flows)}[/] flows complete; registration to last "
            f"event: median {median(latencies):.0f} ms, slowest {max(latencies):.0f} ms"
            + (f"; {tracker.duplicates} re-delivered events ignored" if tracker.duplicates else "")
        )
    for flow in sample_flows(flows):
        console.print(_timeline_table(flow, wide=console.width >= 140))


def _events_table(flows: Sequence[Flow]) -> Table:
    table = Table(title="Events by service and type", title_justify="left")
    table.add_column("service (ce_source)")
    table.add_column("event type")
    table.add_column("seen", justify="right")
    table.add_column("expected", justify="right")
    for row in counts_by_type(flows):
        ok = row.expected is None or row.count >= row.expected
        style = "" if ok else "red"
        table.add_row(
            row.source,
            row.name,
            f"[{style}]{row.count}[/]" if style else str(row.count),
            "" if row.expected is None else str(row.expected),
        )
    return table


def _assistance_table(flows: Sequence[Flow]) -> Table:
    table = Table(title="Assistance delivered by sector", title_justify="left")
    table.add_column("sector")
    table.add_column("deliveries", justify="right")
    table.add_column("households", justify="right")
    table.add_column("persons reached", justify="right")
    table.add_column("value", justify="right")
    rows = assistance_by_sector(flows)
    for row in rows:
        table.add_row(
            row.sector,
            str(row.deliveries),
            str(len(row.households)),
            str(row.persons_reached),
            uah(row.value) if row.value else "-",
        )
    if rows:
        table.add_section()
        table.add_row(
            "[bold]total",
            str(sum(r.deliveries for r in rows)),
            str(len(set().union(*(r.households for r in rows)))),
            str(sum(r.persons_reached for r in rows)),
            f"[bold]{uah(sum((r.value for r in rows), start=Decimal(0)))}",
        )
    return table


def _oblast_table(flows: Sequence[Flow]) -> Table:
    table = Table(title="By oblast", title_justify="left")
    table.add_column("P-code")
    table.add_column("oblast")
    table.add_column("households", justify="right")
    table.add_column("persons", justify="right")
    table.add_column("needs", justify="right")
    table.add_column("deliveries", justify="right")
    table.add_column("value", justify="right")
    for row in by_oblast(flows):
        oblast = OBLAST_BY_PCODE.get(row.pcode)
        name = f"{oblast.name_en} / {oblast.name_ua}" if oblast else "?"
        table.add_row(
            row.pcode,
            name,
            str(row.households),
            str(row.persons),
            str(row.needs),
            str(row.deliveries),
            uah(row.value) if row.value else "-",
        )
    return table


def _timeline_table(flow: Flow, *, wide: bool) -> Table:
    """One flow's events under their causes; on a narrow terminal only what fits."""
    household = flow.household
    mix = " + ".join(sorted(household.sectors))
    if household.damage_level:
        mix += f" ({household.damage_level} damage)"
    table = Table(
        title=f"Household {flow.short_id}…: {mix}, correlation {short(flow.correlation_id)}…",
        title_justify="left",
    )
    table.add_column("+ms", justify="right", no_wrap=True)
    if wide:
        table.add_column("service (ce_source)", no_wrap=True)
    table.add_column("event, under its cause", no_wrap=True)
    if wide:
        table.add_column("ce_id", no_wrap=True)
    table.add_column("facts", overflow="fold")
    for row in timeline(flow):
        branch = "   " * (row.depth - 1) + "└─ " if row.depth else ""
        cells = [f"{row.offset_ms:,.0f}", row.source, branch + row.name, row.event_id, row.detail]
        if not wide:
            cells = [cells[0], cells[2], cells[4]]
        table.add_row(*cells)
    missing = flow.missing()
    if missing:
        table.caption = "missing: " + ", ".join(s.label for s in missing)
    return table


def render_shelter(
    console: Console,
    tracker: FlowTracker,
    *,
    awaiting_consent: dict[str, str],
    second_kit: tuple[str, int, str] | None,
) -> None:
    """Shelter's lifecycle at a glance: repairs, heavy damage referred, winterization kits,
    and what shelter answered to a second kit in the same heating season."""
    totals = shelter_totals(tracker.flows)
    table = Table(title="Shelter: repairs, referrals, winterization", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("detail", overflow="fold")
    table.add_row(
        "light and medium repairs: assessed, planned within the cap, completed",
        str(totals.repairs),
        uah(totals.repair_value) if totals.repairs else "-",
    )
    table.add_row(
        "heavy damage referred to external.state_compensation (case open for follow-up)",
        str(totals.referred),
        "",
    )
    reasons = sorted(set(awaiting_consent.values()))
    table.add_row(
        "heavy damage awaiting the household's consent to referral",
        str(len(awaiting_consent)),
        "; ".join(reasons),
    )
    table.add_row("winterization kits delivered", str(totals.kits), "")
    if second_kit is None:
        table.add_row("second kit, same heating season", "-", "not asked")
    else:
        household_id, status, answer = second_kit
        verdict = (
            f"[green]refused, HTTP {status}:[/] {answer}"
            if status != 201
            else "[red]accepted: the duplicate-assistance guard failed[/]"
        )
        table.add_row(f"second kit, same heating season ({short(household_id)}…)", "1", verdict)
    console.print(table)


def render_outcome(console: Console, problems: Sequence[str], *, flows: int) -> None:
    console.print()
    if not problems:
        console.print(f"[bold green]All {flows} household flows completed.[/]")
        return
    console.print("[bold red]Not every flow completed:[/]")
    for problem in problems:
        console.print(f"  [red]•[/] {problem}")
