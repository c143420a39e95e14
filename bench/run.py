"""Run AidMesh benchmarks and record the results: `make bench` (or `python bench/run.py`).

Each benchmark is a module `bench/<name>.py` with `async def run(env: Env) -> dict`. The
runner records the machine, versions and settings with the figures in
`bench/results/<date>.json` (merged by benchmark name, so several runs in a day keep the
latest of each) and a markdown table next to it. Needs the local Kafka and PostgreSQL
(`make infra-up`). Not part of `make test`: it takes minutes and measures, not checks.

    python bench/run.py                       # every benchmark
    python bench/run.py registration_import   # only these
    BENCH_HOUSEHOLDS=100000 python bench/run.py registration_import
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
#: Large generated inputs live outside git.
WORK = ROOT / "var" / "bench"


@dataclass
class Env:
    """What every benchmark gets: where to put files, and the settings it ran with."""

    root: Path = ROOT
    work: Path = WORK
    settings: dict[str, Any] = field(default_factory=dict)

    def setting(self, name: str, default: Any) -> Any:
        """A setting from the environment (`BENCH_<NAME>`), recorded with the result."""
        raw = os.environ.get(f"BENCH_{name.upper()}")
        value = type(default)(raw) if raw is not None else default
        self.settings[name] = value
        return value


def benchmarks() -> list[str]:
    return sorted(
        p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_") and p.stem != "run"
    )


def machine() -> dict[str, Any]:
    def command(*args: str) -> str:
        try:
            found = subprocess.run(args, capture_output=True, text=True, timeout=10)  # noqa: S603
            return found.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    packages = {}
    for name in ("asyncpg", "aiokafka", "rapidfuzz", "numpy", "pydantic", "faker", "phonenumbers"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": command("psql", "--version"),
        "kafka": _kafka_version(),
        "packages": packages,
        "git_commit": command("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(command("git", "-C", str(ROOT), "status", "--porcelain")),
    }


def _kafka_version() -> str:
    jars = sorted((ROOT / "var" / "kafka").glob("**/kafka_2.13-*.jar"))
    return jars[0].stem.removeprefix("kafka_2.13-") if jars else "unknown"


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(benchmarks()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(benchmarks())}")
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).date().isoformat()
    target = RESULTS / f"{today}.json"
    document = json.loads(target.read_text()) if target.exists() else {"results": {}}
    document["machine"] = machine()
    for name in names or benchmarks():
        env = Env()
        print(f"==> bench {name}", flush=True)
        started = time.perf_counter()
        figures = await load(name).run(env)
        document["results"][name] = {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "settings": env.settings,
            "machine": document["machine"],
            **figures,
        }
        target.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(
            f"==> {name}: {json.dumps(figures.get('summary', {}), ensure_ascii=False)}", flush=True
        )
    markdown = RESULTS / f"{today}.md"
    markdown.write_text(render_markdown(document, day=today), encoding="utf-8")
    print(f"results: {target.relative_to(ROOT)}, {markdown.relative_to(ROOT)}")
    return 0


def render_markdown(document: dict[str, Any], *, day: str) -> str:
    m = document["machine"]
    lines = [
        f"# AidMesh benchmarks, {day}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']};"
        f" Python {m['python']}; {m['postgresql']}; Kafka {m['kafka']};"
        f" load average at start {m['load_average_at_start']}; commit {m['git_commit']}"
        f"{' (uncommitted changes)' if m['git_dirty'] else ''}.",
        "",
        "| benchmark | figure | value | target | met |",
        "|---|---|---|---|---|",
    ]
    for name, result in sorted(document["results"].items()):
        for row in result.get("table", []):
            met = {True: "yes", False: "no", None: ""}[row.get("met")]
            lines.append(
                f"| {name} | {row['figure']} | {row['value']} | {row.get('target', '')} | {met} |"
            )
    lines.append("")
    for name, result in sorted(document["results"].items()):
        if result.get("notes"):
            lines += [f"## {name}", "", *result["notes"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
