"""Fixtures shared by the contract tests. Nothing here touches a broker or a database."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aidmesh_contracts.schemas import SCHEMA_DIR


@pytest.fixture
def committed_schema() -> Callable[[str], dict[str, Any]]:
    """The JSON Schema of an event type exactly as committed (aidmesh_contracts/json_schemas)."""

    def load(event_type: str) -> dict[str, Any]:
        return json.loads((SCHEMA_DIR / f"{event_type}.json").read_text(encoding="utf-8"))

    return load


@pytest.fixture
def schema_dir_copy(tmp_path: Path) -> Path:
    """A scratch copy of the committed schemas, to break without touching the real ones."""
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    return copy
