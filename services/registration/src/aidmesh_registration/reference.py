"""Reference data shipped with the service (copied from the team's reference set)."""

from __future__ import annotations

import csv
import functools
from importlib import resources


@functools.cache
def oblast_pcodes() -> dict[str, str]:
    """Oblast P-code → English name, from the OCHA COD-AB first-level list."""
    text = resources.files(__package__).joinpath("reference/ua_oblasts.csv").read_text("utf-8")
    return {row["adm1_pcode"]: row["adm1_name_en"] for row in csv.DictReader(text.splitlines())}
