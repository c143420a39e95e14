"""The type checker `make lint` runs is strict on the shared packages: it fails on a planted
mistake in code that uses them, with the configuration of the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PLANTED = """
from aidmesh_runtime.params import BIGINT_MAX


def rows_to_skip(page):  # no annotations: strict mode refuses it
    return page * BIGINT_MAX


LIMIT: str = BIGINT_MAX  # an int where a str is declared
"""


def test_mypy_refuses_a_planted_mistake(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(PLANTED)

    found = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(planted)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )

    assert found.returncode == 1, found.stdout + found.stderr
    assert "Function is missing a type annotation" in found.stdout
    assert (
        'Incompatible types in assignment (expression has type "int", variable has type "str")'
        in found.stdout
    )
