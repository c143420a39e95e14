"""5W rows from deliveries: grouped, de-duplicated, summed exactly, HXL-tagged, nothing lost."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import pytest
from aidmesh_contracts import AssistanceDelivered, HouseholdRegistered
from aidmesh_contracts.envelope import new_envelope
from aidmesh_contracts.examples import example
from aidmesh_ops.fivew import (
    COLUMNS,
    Record,
    RowKey,
    aggregate,
    deliveries_from_records,
    write_csv,
    write_delivery_ids,
)

NAMESPACE = UUID("6f1c0c2e-0b7a-4b57-9a53-3f0f1d2c4e88")
KYIV = timezone(timedelta(hours=2))


def delivery(n: int, **changes: Any) -> AssistanceDelivered:
    """The example delivery with its own ids (n), changed as asked."""
    fields = example(AssistanceDelivered.event_type) | {
        "delivery_id": str(uuid5(NAMESPACE, f"delivery-{n}")),
        "household_id": str(uuid5(NAMESPACE, f"household-{n}")),
    }
    return AssistanceDelivered.model_validate(fields | changes)


def kit(n: int, amount: str | None = "4200.00", **changes: Any) -> AssistanceDelivered:
    value = {"amount": amount, "currency": "UAH"} if amount is not None else None
    return delivery(n, value=value, **changes)


# ---- aggregation ---------------------------------------------------------------------------


def test_deliveries_of_one_org_activity_raion_and_month_make_one_row() -> None:
    report = aggregate([kit(1), kit(2, persons_reached=3), kit(3, persons_reached=1)])

    (row,) = report.rows
    assert row.key == RowKey(
        "NRC", "shelter", "shelter.winterization_kit", "UA63", "UA6312", "2026-01"
    )
    assert row.persons_reached == 4 + 3 + 1
    assert row.deliveries == 3


@pytest.mark.parametrize(
    "changes",
    [
        {"partner_org": "DRC"},
        {"activity": "shelter.light_repair"},
        {"location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6314"}},
        {"location": {"adm1_pcode": "UA80"}},
        {"delivered_at": "2026-02-01T09:00:00+02:00"},
        {"sector": "health", "activity": "health.primary_consultation", "modality": "service"},
    ],
)
def test_each_w_that_differs_makes_another_row(changes: dict[str, Any]) -> None:
    assert len(aggregate([kit(1), kit(2, **changes)]).rows) == 2


def test_rows_are_in_a_stable_order_whatever_the_order_of_the_events() -> None:
    deliveries = [
        kit(1, partner_org="NRC"),
        kit(2, partner_org="DRC"),
        kit(3, partner_org="IOM", delivered_at="2026-03-02T10:00:00+02:00"),
        kit(4, partner_org="IOM"),
    ]

    forward = aggregate(deliveries).rows
    backward = aggregate(reversed(deliveries)).rows

    assert forward == backward
    assert [(r.key.org, r.key.month) for r in forward] == [
        ("DRC", "2026-01"),
        ("IOM", "2026-01"),
        ("IOM", "2026-03"),
        ("NRC", "2026-01"),
    ]


def test_a_delivery_without_raion_has_an_empty_adm2_cell() -> None:
    (row,) = aggregate([kit(1, location={"adm1_pcode": "UA80"})]).rows

    assert (row.key.adm1_pcode, row.key.adm2_pcode) == ("UA80", "")


def test_a_delivery_to_a_facility_counts_like_any_other() -> None:
    facility = kit(2, household_id=None, facility_id=str(uuid5(NAMESPACE, "facility")))

    (row,) = aggregate([kit(1), facility]).rows

    assert row.deliveries == 2
    assert row.persons_reached == 8


# ---- money -------------------------------------------------------------------------------


def test_values_are_summed_exactly_as_decimals() -> None:
    amounts = ["0.10", "0.20", "1000000000.01", "4200.00"]

    (row,) = aggregate([kit(n, amount) for n, amount in enumerate(amounts)]).rows

    assert row.value_uah == Decimal("1000004200.31")
    assert row.cells()[COLUMNS.index(("value_uah", "#value+total+uah"))] == "1000004200.31"


def test_a_delivery_without_value_counts_and_says_so() -> None:
    (row,) = aggregate([kit(1, "150.50"), kit(2, None)]).rows

    assert row.deliveries == 2
    assert row.value_uah == Decimal("150.50")
    assert row.deliveries_without_value == 1


def test_a_row_with_no_value_at_all_is_written_as_zero_with_two_decimals() -> None:
    (row,) = aggregate([kit(1, None)]).rows

    assert row.cells()[7] == "0.00"


# ---- de-duplication --------------------------------------------------------------------


def test_a_delivery_seen_twice_counts_once() -> None:
    report = aggregate([kit(1), kit(2), kit(1)])

    (row,) = report.rows
    assert row.deliveries == 2
    assert row.value_uah == Decimal("8400.00")
    assert row.persons_reached == 8
    assert report.duplicates == 1
    assert report.conflicts == 0


def test_a_second_copy_with_other_content_is_a_conflict_and_the_first_copy_wins() -> None:
    report = aggregate([kit(1, "100.00"), kit(1, "999.00")])

    (row,) = report.rows
    assert row.value_uah == Decimal("100.00")
    assert (report.duplicates, report.conflicts) == (0, 1)


def test_the_delivery_ids_of_a_row_are_listed_sorted_with_a_stable_fingerprint() -> None:
    ids = sorted(str(kit(n).delivery_id) for n in (1, 2, 3))

    one = aggregate([kit(3), kit(1), kit(2)]).rows[0]
    other = aggregate([kit(2), kit(3), kit(1), kit(2)]).rows[0]

    assert one.delivery_ids == tuple(ids)
    assert one.delivery_ids_sha256 == other.delivery_ids_sha256
    assert one.delivery_ids_sha256 != aggregate([kit(1)]).rows[0].delivery_ids_sha256


# ---- time ----------------------------------------------------------------------------------


def test_the_month_is_taken_in_utc_unless_told_otherwise() -> None:
    # 00:30 on 1 February in Kyiv is still 31 January in UTC.
    early = kit(1, delivered_at="2026-02-01T00:30:00+02:00")

    assert aggregate([early]).rows[0].key.month == "2026-01"
    assert aggregate([early], tz=KYIV).rows[0].key.month == "2026-02"


def test_deliveries_before_since_are_left_out_and_counted() -> None:
    old = kit(1, delivered_at="2025-12-31T10:00:00+00:00")

    report = aggregate([old, kit(2), old], since=date(2026, 1, 1))

    assert [r.deliveries for r in report.rows] == [1]
    assert report.before_since == 1
    assert report.duplicates == 1


# ---- the CSV -----------------------------------------------------------------------------


def test_the_csv_has_a_header_row_then_the_hxl_row_then_the_data(tmp_path: Path) -> None:
    out = tmp_path / "5w.csv"

    write_csv(aggregate([kit(1, "4200.00"), kit(2, None)]).rows, out)

    header, hxl, *data = list(csv.reader(out.open(encoding="utf-8")))
    assert header[:8] == [
        "org", "sector", "activity", "adm1_pcode", "adm2_pcode", "month", "persons_reached",
        "value_uah",
    ]  # fmt: skip
    assert hxl == [
        "#org",
        "#sector",
        "#activity",
        "#adm1+code",
        "#adm2+code",
        "#date",
        "#reached+ind",
        "#value+total+uah",
        "#output+deliveries+num",
        "#output+deliveries+no_value+num",
        "#meta+delivery_ids+sha256",
    ]
    (row,) = data
    assert dict(zip(header, row, strict=True)) | {"delivery_ids_sha256": "-"} == {
        "org": "NRC",
        "sector": "shelter",
        "activity": "shelter.winterization_kit",
        "adm1_pcode": "UA63",
        "adm2_pcode": "UA6312",
        "month": "2026-01",
        "persons_reached": "8",
        "value_uah": "4200.00",
        "deliveries": "2",
        "deliveries_without_value": "1",
        "delivery_ids_sha256": "-",
    }


def test_the_companion_file_lists_every_delivery_of_every_row(tmp_path: Path) -> None:
    out = tmp_path / "5w-deliveries.csv"
    rows = aggregate([kit(1), kit(2), kit(3, partner_org="DRC")]).rows

    write_delivery_ids(rows, out)

    header, hxl, *lines = list(csv.reader(out.open(encoding="utf-8")))
    assert header[-2:] == ["delivery_ids_sha256", "delivery_id"]
    assert hxl[-1] == "#meta+delivery_id"
    assert [(line[0], line[-2], line[-1]) for line in lines] == [
        ("DRC", rows[0].delivery_ids_sha256, str(kit(3).delivery_id)),
        *[("NRC", rows[1].delivery_ids_sha256, i) for i in rows[1].delivery_ids],
    ]


def test_an_export_of_nothing_is_the_two_header_rows(tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"

    write_csv([], out)

    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


# ---- records from the topic ----------------------------------------------------------------


def record(offset: int, event: Any = None, **overrides: Any) -> Record:
    event = event or kit(offset)
    envelope = new_envelope(
        event, source="/aidmesh/shelter", time=datetime(2026, 1, 20, tzinfo=UTC)
    )
    fields = {
        "partition": 0,
        "offset": offset,
        "headers": tuple(envelope.to_headers()),
        "value": event.model_dump_json().encode(),
    }
    return Record(**(fields | overrides))


def test_records_decode_to_deliveries() -> None:
    deliveries, skipped = deliveries_from_records([record(1), record(2)])

    assert [d.delivery_id for d in deliveries] == [kit(1).delivery_id, kit(2).delivery_id]
    assert skipped == []


def test_every_record_that_is_not_a_countable_delivery_is_reported_with_why() -> None:
    household = HouseholdRegistered.model_validate(example(HouseholdRegistered.event_type))
    broken = json.loads(kit(5).model_dump_json()) | {"quantity": "0"}
    records = [
        record(1),
        record(2, headers=()),
        record(3, value=b"not json"),
        record(4, event=household),
        record(5, value=json.dumps(broken).encode()),
    ]

    deliveries, skipped = deliveries_from_records(records)

    assert len(deliveries) == 1
    assert [(s.offset, s.reason) for s in skipped] == [
        (2, "EnvelopeError"),
        (3, "PayloadError"),
        (4, f"not a delivery: {HouseholdRegistered.event_type}"),
        (5, "PayloadError"),
    ]
