"""How `aidmesh dlq` looks: rich tables for listings, one dead letter, replay and purge.

Dead letters are untrusted input by definition: every header, key and value shown is
stripped of terminal control characters, and a value is previewed, never dumped whole.
"""

from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from aidmesh_contracts.topics import DLQ_SUFFIX
from rich import box
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .dlq import DeadLetter, Listing, PurgePlan, ReplayPlan, ReplayReport, Skipped, offset_ranges

REASON_CHARS = 50
HEADER_CHARS = 2000
PREVIEW_CHARS = 8000
PRETTY_JSON_MAX_BYTES = 1024 * 1024
HEX_BYTES = 256
DRY_RUN_ROWS = 50
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


# ---- making untrusted bytes printable --------------------------------------------------


def printable(text: str) -> str:
    """`text` with control characters (and bidi overrides) shown as escapes, so a hostile
    record cannot move the cursor, recolour the terminal or reverse what is read."""
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if (unicodedata.category(ch) == "Cc" and ch not in "\n\t") or ch in _BIDI_CONTROLS:
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    return ch


def shown_bytes(data: bytes | None, *, limit: int = HEADER_CHARS) -> str:
    """Text if it is UTF-8, else a bytes literal; cut to `limit` characters."""
    if data is None:
        return "(none)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = repr(data[:limit])
    else:
        text = printable(text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + f"… ({len(data):,} bytes)"


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def records(count: int) -> str:
    return f"{count} record" if count == 1 else f"{count} records"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ValuePreview:
    kind: str  # json, text, binary, empty
    text: str
    note: str  # size, and what part is shown


def preview_value(
    value: bytes | None, *, max_chars: int = PREVIEW_CHARS, hex_bytes: int = HEX_BYTES
) -> ValuePreview:
    """Pretty JSON, text, or a hex dump plus an escaped preview; never all of a big value."""
    if value is None:
        return ValuePreview("empty", "", "no value (null)")
    size = f"{len(value):,} bytes"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        head = value[:hex_bytes]
        shown = f"the first {len(head):,}" if len(head) < len(value) else "all"
        body = hexdump(head) + "\n\nescaped: " + repr(head)
        return ValuePreview("binary", body, f"{size}, not UTF-8; {shown} shown")
    kind = "text"
    if len(value) <= PRETTY_JSON_MAX_BYTES:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            kind = "json"
        except ValueError:
            pass
    elif text.lstrip().startswith(("{", "[")):
        kind = "json"  # too big to parse just to indent it: the start, as it is
    if len(text) <= max_chars:
        return ValuePreview(kind, printable(text), size)
    head = text[:max_chars]
    if "\n" in head:
        head = head[: head.rindex("\n")]
    return ValuePreview(kind, printable(head), f"{size}; the first {len(head):,} characters shown")


def hexdump(data: bytes) -> str:
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        chars = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{start:08x}  {hexes:<47}  |{chars}|")
    return "\n".join(lines)


def _text(value: str | None) -> Text:
    return Text(printable(value) if value is not None else "")


def _origin(letter: DeadLetter, *, short: bool = False) -> str:
    """`topic[partition]@offset` of the original record; `short` leaves out the topic
    when it is the one this DLQ belongs to."""
    topic = letter.original_topic or "?"
    partition = "?" if letter.original_partition is None else letter.original_partition
    offset = "?" if letter.original_offset is None else letter.original_offset
    if short and topic + DLQ_SUFFIX == letter.topic:
        return f"[{partition}]@{offset}"
    return f"{topic}[{partition}]@{offset}"


def _time(letter: DeadLetter) -> str:
    return letter.timestamp.strftime("%Y-%m-%d %H:%M:%S") if letter.timestamp else ""


# ---- list ------------------------------------------------------------------------------


def render_listing(console: Console, listing: Listing, *, service: str | None) -> None:
    topics = Table(title="Dead-letter topics", title_justify="left")
    topics.add_column("topic", no_wrap=True)
    for name in ("records", "pending", "replayed"):
        topics.add_column(name, justify="right")
    topics.add_column("held")
    for stats in listing.stats:
        pending = f"[yellow]{stats.pending}[/]" if stats.pending else "0"
        topics.add_row(
            Text(stats.topic), str(stats.records), pending, str(stats.replayed), stats.span()
        )
    for name in listing.missing:
        topics.add_row(Text(name), "-", "-", "-", "[red]missing: run `aidmesh infra bootstrap`[/]")
    console.print(topics)

    whose = f" from service {printable(service)}" if service else ""
    if not listing.matched:
        console.print(Text(f"No dead letters{whose}."))
        return
    reasons = " · ".join(f"{reason} {count}" for reason, count in listing.reasons.most_common())
    console.print(Text(f"Reasons ({records(listing.matched)}{whose}): {reasons}"))

    shown = len(listing.letters)
    title = (
        f"Latest {shown} of {records(listing.matched)}"
        if shown < listing.matched
        else records(shown).capitalize()
    )
    # A dead letter's original topic is its DLQ's name without .dlq: the table names only
    # the partition and offset (and the topic if a record says otherwise).
    single = len(listing.stats) == 1
    if single:
        dlq = listing.stats[0].topic
        title += f" of {dlq} (original topic {dlq.removesuffix(DLQ_SUFFIX)})"
    table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD)
    if not single:
        table.add_column("dlq topic", overflow="fold")
    table.add_column("offset", justify="right")
    table.add_column("original\n[partition]@offset", overflow="fold")
    table.add_column("service\nexception", overflow="fold")
    table.add_column("reason", overflow="fold", ratio=2)
    table.add_column("ce_type\nce_id", overflow="fold", ratio=3)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for letter in listing.letters:
        cells: list[Text | str] = [] if single else [Text(letter.topic)]
        cells += [
            str(letter.offset),
            _text(_origin(letter, short=True)),
            _text(f"{letter.service or '?'}\n{letter.exception or '?'}"),
            _text(cut(letter.reason or "", REASON_CHARS)),
            _text("\n".join(v for v in (letter.ce_type, letter.ce_id) if v)),
            human_size(letter.size),
            _time(letter),
            "[green]replayed[/]" if letter.replayed else "[yellow]pending[/]",
        ]
        table.add_row(*cells)
    console.print(table)


# ---- show ------------------------------------------------------------------------------


def render_letter(console: Console, letter: DeadLetter) -> None:
    console.rule(Text(f"{letter.topic} @ {letter.offset}"))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    facts.add_row("status", "[green]replayed[/]" if letter.replayed else "[yellow]pending[/]")
    facts.add_row("reason class", str(letter.reason_class))
    facts.add_row("dead-lettered", _time(letter) + (" UTC" if letter.timestamp else ""))
    facts.add_row("from", _text(_origin(letter)))
    facts.add_row("key", Text(shown_bytes(letter.key)))
    facts.add_row("value size", f"{letter.size:,} bytes")
    console.print(facts)

    headers = Table(title="Headers", title_justify="left")
    headers.add_column("name", no_wrap=True)
    headers.add_column("value", overflow="fold")
    for name, value in letter.headers:
        headers.add_row(_text(name), Text(shown_bytes(value)))
    console.print(headers)

    preview = preview_value(letter.value)
    console.print(Text(f"Value ({preview.kind}): {preview.note}", style="bold"))
    if preview.kind == "json":
        console.print(Syntax(preview.text, "json", word_wrap=True, theme="ansi_dark"))
    elif preview.text:
        console.print(Text(preview.text))


# ---- replay ----------------------------------------------------------------------------


def render_dry_run(console: Console, report: ReplayReport) -> None:
    if not report.replayed:
        return
    table = Table(title=f"Would replay from {report.topic} (dry run)", title_justify="left")
    table.add_column("offset", justify="right")
    table.add_column("to", overflow="fold")
    table.add_column("ce_type", overflow="fold")
    table.add_column("ce_id", overflow="fold")
    table.add_column("key", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    for letter in report.replayed[:DRY_RUN_ROWS]:
        table.add_row(
            str(letter.offset),
            _text(letter.original_topic),
            _text(letter.ce_type),
            _text(letter.ce_id),
            Text(shown_bytes(letter.key, limit=80)),
            human_size(letter.size),
        )
    console.print(table)
    if len(report.replayed) > DRY_RUN_ROWS:
        console.print(Text(f"… and {len(report.replayed) - DRY_RUN_ROWS} more"))


def render_replay_summary(console: Console, plan: ReplayPlan, report: ReplayReport) -> None:
    original = plan.stats.topic.removesuffix(".dlq")
    verb = "would replay" if report.dry_run else "replayed"
    head = Text(f"{verb} {len(report.replayed)}", style="bold green")
    head.append(f" from {report.topic} to {original}", style="")
    if report.skipped:
        head.append(f", skipped {len(report.skipped)}", style="bold yellow")
    if report.failed:
        head.append(f", failed {len(report.failed)}", style="bold red")
    console.print(head)
    for style, group in (("yellow", report.skipped), ("red", report.failed)):
        for reason, offsets in _by_reason(group):
            console.print(Text(f"  {reason}: offsets {offset_ranges(offsets)}", style=style))
    if report.dry_run and report.replayed:
        console.print(Text("nothing was published (--dry-run)"))


def _by_reason(skipped: Iterable[Skipped]) -> list[tuple[str, list[int]]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for s in skipped:
        groups[s.reason].append(s.offset)
    return sorted(groups.items(), key=lambda item: min(item[1]))


# ---- purge -----------------------------------------------------------------------------


def render_purge_plan(console: Console, plan: PurgePlan) -> None:
    stats = plan.stats
    console.print(
        Text(
            f"{stats.topic}: {records(stats.records)} ({stats.span()}); purging before "
            f"{plan.before} deletes {plan.deleting} (offsets {stats.low}-{plan.before - 1})"
        )
    )
