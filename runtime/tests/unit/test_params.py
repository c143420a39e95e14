"""Shared query parameter types: bounded where PostgreSQL and date arithmetic are."""

from __future__ import annotations

from datetime import date

import pytest
from aidmesh_runtime.params import Day
from pydantic import TypeAdapter, ValidationError

DAY = TypeAdapter(Day)


def test_a_day_is_read_from_its_iso_form() -> None:
    assert DAY.validate_python("2026-12-07") == date(2026, 12, 7)


@pytest.mark.parametrize(
    "text", ["0", "1700000000", "20261207", "2026-12-07T00:00:00", "9999-12-31"]
)
def test_a_unix_time_another_form_or_a_far_day_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        DAY.validate_python(text)
