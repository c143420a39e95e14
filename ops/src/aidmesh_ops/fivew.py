"""5W export: who did what, where, when, for how many — from AssistanceDelivered events.

Rows aggregate deliveries by organisation, sector, activity, oblast and raion P-code and
month, and the CSV carries an HXL hashtag row under its header row, so HDX and HXL tools
read it as is. Rules:

- a delivery counts once: events are de-duplicated by `delivery_id` (a redelivered or
  re-published event is not a second delivery); a duplicate whose content differs from the
  first copy is counted as a conflict in the summary and the first copy is kept;
- nothing is dropped silently: deliveries to facilities count (with their persons
  reached), deliveries without a value count (the `deliveries_without_value` column says how
  many), deliveries before `since`, records that are not AssistanceDelivered events and
  records that cannot be decoded are all counted in the `Summary`;
- money is summed as `Decimal` and written with two decimals; persons reached are summed
  per delivery (a household helped twice in one row counts twice, as in 5W templates);
- the month is the calendar month of `delivered_at` in `tz` (UTC unless told otherwise).

`aggregate` and `write_csv` are pure; `read_deliveries` reads the topic once, group-less, from
the beginning to the end offsets it finds when it starts; `export_5w` does all three.
Each row carries a fingerprint of its delivery ids; the ids themselves go to a companion
file (`write_delivery_ids`), one per line, because a row can hold thousands of them.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, tzinfo
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from aidmesh_contracts import AssistanceDelivered, Envelope, decode
from aidmesh_contracts.topics import ASSISTANCE_DELIVERED
from aidmesh_runtime.kafka import operator_auth
from aiokafka import AIOKafkaConsumer, TopicPartition

CENTS = Decimal("0.01")

#: (header, HXL hashtag) of every column, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("org", "#org"),
    ("sector", "#sector"),
    ("activity", "#activity"),
    ("adm1_pcode", "#adm1+code"),
    ("adm2_pcode", "#adm2+code"),
    ("month", "#date"),
    ("persons_reached", "#reached+ind"),
    ("value_uah", "#value+total+uah"),
    ("deliveries", "#output+deliveries+num"),
    ("deliveries_without_value", "#output+deliveries+no_value+num"),
    ("delivery_ids_sha256", "#meta+delivery_ids+sha256"),
)

#: Columns of the companion file that lists every delivery of every row.
ID_COLUMNS: tuple[tuple[str, str], ...] = (
    *COLUMNS[:6],
    ("delivery_ids_sha256", "#meta+delivery_ids+sha256"),
    ("delivery_id", "#meta+delivery_id"),
)


@dataclass(frozen=True, order=True)
class RowKey:
    org: str
    sector: str
    activity: str
    adm1_pcode: str
    adm2_pcode: str
    month: str


@dataclass(frozen=True)
class Row:
    key: RowKey
    persons_reached: int
    value_uah: Decimal
    deliveries: int
    deliveries_without_value: int
    delivery_ids: tuple[str, ...]

    @property
    def delivery_ids_sha256(self) -> str:
        """A short, stable fingerprint of the row's deliveries (to compare two exports)."""
        return hashlib.sha256(" ".join(self.delivery_ids).encode()).hexdigest()[:16]

    def cells(self) -> list[str]:
        return [
            self.key.org,
            self.key.sector,
            self.key.activity,
            self.key.adm1_pcode,
            self.key.adm2_pcode,
            self.key.month,
            str(self.persons_reached),
            str(self.value_uah.quantize(CENTS)),
            str(self.deliveries),
            str(self.deliveries_without_value),
            self.delivery_ids_sha256,
        ]

    def id_lines(self) -> list[list[str]]:
        where = [*self.cells()[:6], self.delivery_ids_sha256]
        return [[*where, delivery_id] for delivery_id in self.delivery_ids]


@dataclass(frozen=True)
class Skipped:
    """A record of the topic that is not a delivery we can count, and why."""

    partition: int
    offset: int
    reason: str


@dataclass(frozen=True)
class Report:
    rows: tuple[Row, ...]
    deliveries: int  # distinct delivery ids counted in the rows
    duplicates: int  # further copies of a delivery already counted (identical content)
    conflicts: int  # further copies whose content differs from the first (first kept)
    before_since: int  # distinct deliveries left out because they precede `since`


@dataclass(frozen=True)
class Summary:
    """What an export did, so that nothing it left out goes unnoticed."""

    out: Path
    records: int  # records read from the topic
    rows: int
    deliveries: int
    duplicates: int
    conflicts: int
    before_since: int
    skipped: tuple[Skipped, ...] = field(default=())

    @property
    def skipped_reasons(self) -> Counter[str]:
        return Counter(s.reason for s in self.skipped)


def aggregate(
    deliveries: Iterable[AssistanceDelivered], *, since: date | None = None, tz: tzinfo = UTC
) -> Report:
    """5W rows from deliveries, de-duplicated by delivery id, in a stable order."""
    first: dict[UUID, AssistanceDelivered] = {}
    duplicates = conflicts = 0
    for delivery in deliveries:
        seen = first.get(delivery.delivery_id)
        if seen is None:
            first[delivery.delivery_id] = delivery
        elif seen == delivery:
            duplicates += 1
        else:
            conflicts += 1
    groups: dict[RowKey, list[AssistanceDelivered]] = {}
    before_since = 0
    for delivery in first.values():
        local = delivery.delivered_at.astimezone(tz)
        if since is not None and local.date() < since:
            before_since += 1
            continue
        key = RowKey(
            org=delivery.partner_org,
            sector=str(delivery.sector),
            activity=delivery.activity,
            adm1_pcode=delivery.location.adm1_pcode,
            adm2_pcode=delivery.location.adm2_pcode or "",
            month=f"{local.year:04d}-{local.month:02d}",
        )
        groups.setdefault(key, []).append(delivery)
    rows = tuple(_row(key, groups[key]) for key in sorted(groups))
    return Report(
        rows=rows,
        deliveries=sum(r.deliveries for r in rows),
        duplicates=duplicates,
        conflicts=conflicts,
        before_since=before_since,
    )


def _row(key: RowKey, deliveries: list[AssistanceDelivered]) -> Row:
    return Row(
        key=key,
        persons_reached=sum(d.persons_reached for d in deliveries),
        value_uah=sum((d.value.amount for d in deliveries if d.value), Decimal("0")),
        deliveries=len(deliveries),
        deliveries_without_value=sum(1 for d in deliveries if d.value is None),
        delivery_ids=tuple(sorted(str(d.delivery_id) for d in deliveries)),
    )


def write_csv(rows: Iterable[Row], out: Path) -> None:
    """Header row, HXL hashtag row, then one line per row (UTF-8, `\\n` line ends)."""
    _write(out, COLUMNS, (row.cells() for row in rows))


def write_delivery_ids(rows: Iterable[Row], out: Path) -> None:
    """The companion file: every delivery id of every row, one per line, same key columns.

    A row of a large response holds thousands of deliveries: too many for one spreadsheet
    cell, so the main file carries their fingerprint and this file the list.
    """
    _write(out, ID_COLUMNS, (line for row in rows for line in row.id_lines()))


def _write(out: Path, columns: tuple[tuple[str, str], ...], lines: Iterable[list[str]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow([name for name, _ in columns])
        writer.writerow([tag for _, tag in columns])
        writer.writerows(lines)


# ---- reading the topic -------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What the reader needs of a Kafka record (so decoding is testable without a broker)."""

    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...]
    value: bytes | None


def deliveries_from_records(
    records: Iterable[Record],
) -> tuple[list[AssistanceDelivered], list[Skipped]]:
    """The AssistanceDelivered events among the records, and every other record with why."""
    deliveries: list[AssistanceDelivered] = []
    skipped: list[Skipped] = []
    for record in records:
        try:
            event = decode(Envelope.from_headers(record.headers), record.value)
        except ValueError as exc:  # EnvelopeError, UnknownEventType, PayloadError
            skipped.append(Skipped(record.partition, record.offset, type(exc).__name__))
            continue
        if isinstance(event, AssistanceDelivered):
            deliveries.append(event)
        else:
            skipped.append(
                Skipped(record.partition, record.offset, f"not a delivery: {event.event_type}")
            )
    return deliveries, skipped


async def read_records(
    kafka: str, *, topic: str = ASSISTANCE_DELIVERED, timeout_s: float = 120.0
) -> list[Record]:
    """Every record of the topic from the beginning to the end offsets found at the start.

    Group-less (no offsets committed, no consumer group to clean up); records published
    while it reads are left for the next export.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, **operator_auth(), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        # aiokafka has no public call for a topic's partitions without a consumer group.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [
            TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            raise LookupError(f"topic {topic} does not exist on {kafka}")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s} s")
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, batch in batches.items():
                records += [
                    Record(r.partition, r.offset, tuple(r.headers), r.value)
                    for r in batch
                    if r.offset < ends[tp]
                ]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()


def export_5w(
    kafka: str,
    out: Path,
    *,
    since: date | None,
    ids_out: Path | None = None,
    tz: tzinfo = UTC,
    topic: str = ASSISTANCE_DELIVERED,
    timeout_s: float = 300.0,
) -> Summary:
    """Read every AssistanceDelivered from Kafka, aggregate, and write the HXL-tagged CSV
    (and, with `ids_out`, the companion list of every delivery id of every row)."""
    records = asyncio.run(read_records(kafka, topic=topic, timeout_s=timeout_s))
    deliveries, skipped = deliveries_from_records(records)
    report = aggregate(deliveries, since=since, tz=tz)
    write_csv(report.rows, out)
    if ids_out is not None:
        write_delivery_ids(report.rows, ids_out)
    return Summary(
        out=out,
        records=len(records),
        rows=len(report.rows),
        deliveries=report.deliveries,
        duplicates=report.duplicates,
        conflicts=report.conflicts,
        before_since=report.before_since,
        skipped=tuple(skipped),
    )
