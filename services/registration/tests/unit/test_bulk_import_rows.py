"""Bulk import rows, without infrastructure: how a file is cut into households, which rows
are refused and why, and the fast phone path agreeing with the registry's normaliser.

(Pure tests: no broker or database.)"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from aidmesh_registration.bulk_import import (
    COLUMNS,
    Context,
    ImportRefused,
    fast_phone,
    prepare_chunk,
    read_chunks,
    read_header,
)
from aidmesh_registration.crypto import Vault, new_kek
from aidmesh_registration.phones import normalise_phone

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
VAULT = Vault.from_config(new_kek("test"))


def write(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def head(ref: str, **values: str) -> dict[str, str]:
    return {
        "household_ref": ref,
        "relation": "head",
        "family_name": "Коваленко",
        "given_name": "Олена",
        "sex": "female",
        "date_of_birth": "1984-05-03",
        "adm1_pcode": "UA63",
        "displacement_status": "idp",
        "consents": "registration",
    } | values


def member(ref: str, **values: str) -> dict[str, str]:
    return {
        "household_ref": ref,
        "relation": "child",
        "family_name": "Коваленко",
        "given_name": "Іван",
        "sex": "male",
        "date_of_birth": "2015-01-09",
    } | values


def prepare(path: Path) -> tuple[list, list]:
    columns = read_header(path)
    context = Context(
        import_id=uuid4(),
        partner_org="NRC",
        now=NOW,
        source="/aidmesh/registration",
        columns=columns,
        vault=VAULT,
    )
    prepared, stray = [], []
    for households, errors, _ in read_chunks(path, columns=columns, skip_rows=0, chunk_rows=1000):
        prepared.append(prepare_chunk(households, context))
        stray += errors
    return prepared, stray


def test_rows_of_a_household_are_consecutive_and_chunks_end_between_households(
    tmp_path: Path,
) -> None:
    rows = []
    for i in range(10):
        rows += [head(f"H{i}"), member(f"H{i}"), member(f"H{i}", given_name="Марія", sex="female")]
    path = write(tmp_path / "f.csv", rows)

    chunks = list(read_chunks(path, columns=read_header(path), skip_rows=0, chunk_rows=7))

    assert [len(households) for households, _, _ in chunks] == [3, 3, 3, 1]
    assert sum(rows for _, _, rows in chunks) == 30
    first_rows = [h[0][0] for households, _, _ in chunks for h in households]
    assert first_rows == list(range(2, 32, 3))


def test_a_resumed_read_skips_the_rows_already_done(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", [head(f"H{i}") for i in range(6)])

    chunks = list(read_chunks(path, columns=read_header(path), skip_rows=4, chunk_rows=100))

    assert [h[0][0] for h in chunks[0][0]] == [6, 7]


def test_a_household_ref_that_comes_back_later_is_an_error_on_that_row(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", [head("A"), head("B"), member("A")])

    prepared, stray = prepare(path)

    assert [(e.row, e.field) for e in stray] == [(4, "household_ref")]
    assert "consecutive" in stray[0].reason
    assert len(prepared[0].households) == 2


def test_a_household_with_one_bad_row_is_refused_whole_and_every_problem_is_named(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "f.csv",
        [
            head("A", sex="жінка", passport="7777"),
            member("A", date_of_birth="31.02.2015", member_vulnerabilities="female_headed"),
            head("B"),
        ],
    )

    (chunk,), _ = prepare(path)

    assert len(chunk.households) == 1
    assert chunk.rejected_rows == 2
    problems = {(e.row, e.field) for e in chunk.errors}
    assert problems == {
        (2, "sex"),
        (2, "passport"),
        (3, "date_of_birth"),
        (3, "member_vulnerabilities"),
    }
    assert all("жінка" not in e.reason and "7777" not in e.reason for e in chunk.errors)


def test_a_prepared_household_has_its_rows_events_and_blocking_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.csv",
        [head("A", needs="shelter:4", phone="0501234567"), member("A", id_card="123456789")],
    )

    (chunk,), _ = prepare(path)

    (household,) = chunk.households
    (household_id, wrapped, kek_id, _) = chunk.household_keys[0]
    key = VAULT.open_household_key(household_id, wrapped, kek_id=kek_id)
    assert household[8] == 2  # size
    assert key.open("household", household[9])["phone"] == "+380501234567"
    assert household[10] == VAULT.index("phone", "+380501234567")
    assert [m[3] for m in chunk.members] == ["head", "child"]
    child = key.open("member", chunk.members[1][7], row=chunk.members[1][0])
    assert (child["given_name"], child["documents"]) == ("Іван", [["id_card", "123456789"]])
    assert chunk.documents[0][2:] == ("id_card", VAULT.index("document", "123456789"), None, None)
    assert len(chunk.needs) == 1
    assert len(chunk.outbox) == 2  # HouseholdRegistered and NeedAssessed
    blocks = {block for block, _ in chunk.blocking}
    assert VAULT.index("block", "t:+380501234567") in blocks
    assert VAULT.index("block", "d:id_card:123456789") in blocks


def test_a_prepared_household_holds_no_personal_data_in_clear(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.csv",
        [
            head("A", phone="0501234567", address="вул. Сумська, 12", passport="ЕК123456"),
            member("A", id_card="123456789"),
        ],
    )

    (chunk,), _ = prepare(path)

    rows = repr(
        (chunk.households, chunk.members, chunk.documents, chunk.blocking, chunk.outbox)
    ).encode("unicode_escape")
    for value in (
        "Коваленко",
        "Kovalenko",
        "Олена",
        "Сумська",
        "501234567",
        "ЕК123456",
        "123456789",
        "1984-05-03",
    ):
        assert value.encode("unicode_escape") not in rows, value


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("household_ref,relation,family_name\n", "required columns missing"),
        ("", "empty"),
    ],
)
def test_a_file_without_the_required_columns_is_refused(
    tmp_path: Path, header: str, reason: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_text(header, encoding="utf-8")

    with pytest.raises(ImportRefused, match=reason):
        read_header(path)


def test_the_fast_phone_path_agrees_with_the_registry_normaliser_for_every_prefix() -> None:
    rng = random.Random(7)
    numbers = [f"0{prefix:04}{rng.randrange(10**5):05}" for prefix in range(0, 10_000, 7)]
    numbers += [f"+380 {n[1:3]} {n[3:6]} {n[6:]}" for n in numbers[::5]]
    numbers += ["+38 (050) 123-45-67", "380671234567", "+48 601 234 567", "12345", "0800123456"]

    for number in numbers:
        try:
            expected = normalise_phone(number)
        except ValueError:
            with pytest.raises(ValueError):
                fast_phone(number)
        else:
            assert fast_phone(number) == expected, number
