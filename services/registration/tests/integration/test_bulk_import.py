"""Bulk import of a partner's CSV on the real PostgreSQL and Kafka: rows and events,
the error report, duplicates, an interrupted import resumed, a finished file re-run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aidmesh_registration.bulk_import import COLUMNS, ImportOptions, ImportRefused
from aidmesh_registration.import_cli import run_import
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_registration.synthetic import generate, write_csv
from aidmesh_runtime.testing import EventLog
from httpx import AsyncClient

pytestmark = pytest.mark.integration

HOUSEHOLD_TYPE = "org.aidmesh.registration.household.registered.v1"
NEED_TYPE = "org.aidmesh.assessment.need.assessed.v1"
DUPLICATE_TYPE = "org.aidmesh.registration.duplicate.suspected.v1"


def row(
    ref: str, relation: str = "head", *, first: bool | None = None, **values: str
) -> dict[str, str]:
    """A member's row; the household's first row (the head's, by default) has its columns."""
    base = {
        "household_ref": ref,
        "relation": relation,
        "family_name": "Коваленко",
        "given_name": "Олена",
        "patronymic": "Петрівна",
        "sex": "female",
        "date_of_birth": "1984-05-03",
    }
    if first if first is not None else relation == "head":
        base |= {
            "adm1_pcode": "UA63",
            "adm3_pcode": "UA6302001",
            "displacement_status": "idp",
            "phone": "050 123 45 67",
            "consents": "registration;data_sharing",
        }
    return base | values


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def report_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


async def imported(database: asyncpg.Connection, import_id: Any) -> list[asyncpg.Record]:
    return await database.fetch(
        "SELECT household_id, import_row, size FROM households WHERE import_id = $1"
        " ORDER BY import_row",
        import_id,
    )


async def test_good_rows_are_imported_and_bad_rows_are_reported_by_row_and_reason(
    settings: RegistrationSettings,
    database: asyncpg.Connection,
    registration: AsyncClient,
    events: EventLog,
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "partner.csv",
        [
            row("A1", needs="shelter:4;health:3", passport="ек 123456"),  # row 2
            row("A1", "child", given_name="Максим", sex="male", date_of_birth="03.11.2015"),
            row("B2", family_name="Бондар", given_name="Іван", sex="male", phone=""),  # row 4
            row("C3", date_of_birth="2999-01-01", phone="+380 11"),  # row 5: two errors
            row("D4", family_name="Kоваленко"),  # row 6: a Latin K in a Cyrillic name
            row("E5", adm1_pcode="UA99", adm3_pcode=""),  # row 7: unknown oblast
            row("F6", relation="child", first=True),  # row 8: no head
            row("G7", needs="shelter:9"),  # row 9
            row("H8", family_name="Шевченко", given_name="Петро", sex="male"),  # row 10
            row("H8", "spouse", adm1_pcode="UA80"),  # row 11: contradicts its first row
        ],
    )
    options = ImportOptions(partner_org="NRC", source=settings.source, workers=0)

    report = await run_import(settings, path, options)

    assert report.status == "finished"
    assert report.households_imported == 2
    assert report.rows_rejected == 7
    households = await imported(database, report.import_id)
    # Read back through the service: the database holds them sealed (ADR 0010).
    views = [
        (await registration.get(f"/households/{h['household_id']}")).json() for h in households
    ]
    assert [
        (h["import_row"], h["size"], v["phone"]) for h, v in zip(households, views, strict=True)
    ] == [
        (2, 2, "+380501234567"),
        (4, 1, None),
    ]
    errors = {
        (int(r["row"]), r["column"]): r["reason"] for r in report_rows(Path(report.error_report))
    }
    assert set(errors) == {
        (5, "date_of_birth"),
        (5, "phone"),
        (6, "family_name"),
        (7, "adm1_pcode"),
        (8, "relation"),
        (9, "needs"),
        (11, "adm1_pcode"),
    }
    assert "past" in errors[(5, "date_of_birth")]
    assert "Cyrillic" in errors[(6, "family_name")]
    assert "head" in errors[(8, "relation")]
    text = "".join(",".join(r.values()) for r in report_rows(Path(report.error_report)))
    assert "Kоваленко" not in text and "+380 11" not in text and "2999" not in text
    members = views[0]["members"]
    assert [d for m in members for d in m["documents"]] == [
        {"kind": "passport", "number": "ЕК123456"}
    ]
    assert next(m for m in members if m["relation"] == "child")["given_name_latin"] == "Maksym"

    ids = {str(h["household_id"]) for h in households}
    seen = await events.wait_for(
        lambda found: (
            {r.envelope.subject for r in found if r.envelope.type == HOUSEHOLD_TYPE} == ids
            and sum(r.envelope.type == NEED_TYPE for r in found) == 2
        ),
        select=lambda r: r.envelope is not None and r.envelope.subject in ids,
        what="HouseholdRegistered for each imported household and its two needs",
    )
    registered = [r.event() for r in seen if r.envelope.type == HOUSEHOLD_TYPE]
    assert {e.channel.value for e in registered} == {"bulk_import"}
    assert {e.partner_org for e in registered} == {"NRC"}


async def test_a_mistyped_document_keeps_the_family_and_is_reported_as_a_warning(
    settings: RegistrationSettings,
    database: asyncpg.Connection,
    registration: AsyncClient,
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "typos.csv",
        [
            row("T1", family_name="Ткачук", passport="ЕК12З456"),  # row 2: a З for a 3
            row("T1", "child", given_name="Марія", date_of_birth="03.11.2015", id_card="12345"),
        ],
    )
    options = ImportOptions(partner_org="NRC", source=settings.source, workers=0)

    report = await run_import(settings, path, options)

    assert (report.households_imported, report.rows_rejected) == (1, 0)
    assert (report.errors, report.warnings) == (0, 2)
    reported = report_rows(Path(report.error_report))
    assert [(r["row"], r["column"], r["severity"]) for r in reported] == [
        ("2", "passport", "warning"),
        ("3", "id_card", "warning"),
    ]
    assert all(r["reason"].endswith("kept as given, unverified") for r in reported)
    assert "ЕК12З456" not in "".join(",".join(r.values()) for r in reported)
    [household] = await imported(database, report.import_id)
    view = (await registration.get(f"/households/{household['household_id']}")).json()
    head, child = view["members"]
    assert (head["documents"], head["unverified_documents"]) == (
        [],
        [{"kind": "passport", "number": "ЕК12З456"}],
    )
    assert child["unverified_documents"] == [{"kind": "id_card", "number": "12345"}]
    assert view["partner_ref"] == "T1"  # the file's household_ref, to find it again


async def test_a_repeat_within_the_file_and_of_an_earlier_import_is_queued_for_review(
    settings: RegistrationSettings,
    database: asyncpg.Connection,
    registration: AsyncClient,
    events: EventLog,
    tmp_path: Path,
) -> None:
    earlier = write(
        tmp_path / "earlier.csv",
        [row("X1", family_name="Ткачук", given_name="Тарас", sex="male", phone="0671112233")],
    )
    first = await run_import(settings, earlier, ImportOptions(partner_org="DRC", workers=0))
    later = write(
        tmp_path / "later.csv",
        [
            # The same man, his day and month of birth swapped, another phone format.
            row("Y1", family_name="Ткачук", given_name="Тарас", sex="male",
                date_of_birth="1984-03-05", phone="+38 (067) 111-22-33"),
            # A woman registered twice in this file, with the same passport.
            row("Y2", family_name="Гнатюк", given_name="Ірина", passport="АА000111", phone=""),
            row("Y3", family_name="Гнатюк", given_name="Ірина", patronymic="",
                passport="АА000111", phone=""),
        ],
    )  # fmt: skip

    second = await run_import(settings, later, ImportOptions(partner_org="DRC", workers=0))

    assert second.suspicions == 2
    first_id = (await imported(database, first.import_id))[0]["household_id"]
    y1, y2, y3 = (h["household_id"] for h in await imported(database, second.import_id))
    queue = await database.fetch(
        "SELECT household_id, candidate_household_id, reasons, status FROM duplicate_suspicions"
        " WHERE household_id = ANY($1::uuid[])",
        [y1, y2, y3],
    )
    pairs = {(s["household_id"], s["candidate_household_id"]): set(s["reasons"]) for s in queue}
    assert "swapped_day_month" in pairs[(y1, first_id)]
    assert "same_phone_similar_name" in pairs[(y1, first_id)]
    assert "same_document" in pairs[(y3, y2)]
    assert {s["status"] for s in queue} == {"open"}
    await events.wait_for(
        lambda found: len(found) == 2,
        select=lambda r: (
            r.envelope is not None
            and r.envelope.type == DUPLICATE_TYPE
            and r.envelope.subject in {str(y1), str(y3)}
        ),
        what="DuplicateSuspected for the two repeats",
    )


async def test_an_interrupted_import_resumes_where_it_stopped_without_duplicates(
    settings: RegistrationSettings,
    database: asyncpg.Connection,
    registration: AsyncClient,
    tmp_path: Path,
) -> None:
    records = generate(240, seed=11, latin=False)
    path = tmp_path / "big.csv"
    rows = write_csv(records, path)
    options = ImportOptions(partner_org="UNHCR", chunk_rows=150, workers=1, stop_after_chunks=2)

    stopped = await run_import(settings, path, options)

    assert stopped.status == "interrupted"
    assert 0 < stopped.rows_done < rows
    halfway = await imported(database, stopped.import_id)
    assert 0 < len(halfway) < len(records)

    options.stop_after_chunks = None
    resumed = await run_import(settings, path, options)

    assert resumed.import_id == stopped.import_id
    assert resumed.status == "finished"
    assert resumed.resumed_from_row == stopped.rows_done
    assert resumed.rows_done == rows
    households = await imported(database, resumed.import_id)
    assert len(households) == len(records) == resumed.households_imported
    assert len({h["import_row"] for h in households}) == len(records)
    events_written = await database.fetchval(
        "SELECT count(*) FROM outbox WHERE key = ANY($1::text[]) AND headers @> $2::jsonb",
        [str(h["household_id"]) for h in households],
        f'[["ce_type", "{HOUSEHOLD_TYPE}"]]',
    )
    assert events_written == len(records)
    blocked = await database.fetchval(
        "SELECT count(DISTINCT household_id) FROM blocking_keys WHERE household_id = ANY($1::uuid[])",
        [h["household_id"] for h in households],
    )
    assert blocked == len(records)


async def test_importing_a_finished_file_again_changes_nothing(
    settings: RegistrationSettings,
    database: asyncpg.Connection,
    registration: AsyncClient,
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "once.csv", [row("Z1", family_name="Мороз", passport="КМ765432")])
    options = ImportOptions(partner_org="IRC", workers=0)
    first = await run_import(settings, path, options)
    outbox_before = await database.fetchval("SELECT count(*) FROM outbox")

    again = await run_import(settings, path, options)

    assert (first.status, again.status) == ("finished", "already_imported")
    assert again.import_id == first.import_id
    assert len(await imported(database, first.import_id)) == 1
    assert await database.fetchval("SELECT count(*) FROM outbox") == outbox_before


async def test_a_file_without_the_required_columns_is_refused_before_anything_is_written(
    settings: RegistrationSettings, database: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("name,phone\nОлена,0501234567\n", encoding="utf-8")
    imports_before = await database.fetchval("SELECT count(*) FROM bulk_imports")

    with pytest.raises(ImportRefused, match="household_ref"):
        await run_import(settings, path, ImportOptions(partner_org="IRC", workers=0))

    assert await database.fetchval("SELECT count(*) FROM bulk_imports") == imports_before
