"""Migration files: named NNNN_snake_case.sql, numbered 1..N without gaps."""

from __future__ import annotations

from pathlib import Path

import pytest
from aidmesh_runtime.db import RUNTIME_MIGRATIONS, MigrationError, load_migrations


def write(directory: Path, *names: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / name).write_text(f"-- {name}\nSELECT 1;\n", encoding="utf-8")
    return directory


def test_migrations_load_in_number_order(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", "0002_add_cases.sql", "0001_init.sql", "0010_x.sql")
    for n in range(3, 10):
        write(directory, f"{n:04d}_step_{n}.sql")

    migrations = load_migrations("shelter", directory)

    assert [m.version for m in migrations] == list(range(1, 11))
    assert migrations[0].name == "0001_init.sql"
    assert {m.component for m in migrations} == {"shelter"}


def test_files_other_than_sql_are_not_migrations(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", "0001_init.sql")
    (directory / "README.md").write_text("how to write a migration", encoding="utf-8")

    assert [m.name for m in load_migrations("shelter", directory)] == ["0001_init.sql"]


@pytest.mark.parametrize(
    "bad_name", ["1_init.sql", "0001-init.sql", "0001_Init.sql", "init.sql", "0001_.sql"]
)
def test_a_migration_file_with_a_bad_name_is_refused(tmp_path: Path, bad_name: str) -> None:
    directory = write(tmp_path / "m", bad_name)

    with pytest.raises(MigrationError, match=r"NNNN_snake_case\.sql"):
        load_migrations("shelter", directory)


def test_a_gap_in_the_numbers_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", "0001_init.sql", "0003_add_cases.sql")

    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations("shelter", directory)


def test_numbers_must_start_at_one(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", "0002_init.sql")

    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations("shelter", directory)


def test_two_migrations_with_the_same_number_are_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", "0001_init.sql", "0001_also_init.sql")

    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations("shelter", directory)


def test_a_changed_file_has_a_different_checksum(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", "0001_init.sql")
    before = load_migrations("shelter", directory)[0].checksum
    (directory / "0001_init.sql").write_text("SELECT 2;\n", encoding="utf-8")

    assert load_migrations("shelter", directory)[0].checksum != before


def test_the_runtimes_own_migrations_follow_the_rules() -> None:
    migrations = load_migrations("runtime", RUNTIME_MIGRATIONS)

    assert [m.name for m in migrations][:1] == ["0001_outbox_inbox.sql"]
