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
    sys.modules[spec.name] = module  # dataclasses (and pickling) look their module up there
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
    chart = RESULTS / f"{today}.png"
    render_chart(document, chart, day=today)
    print(
        f"results: {target.relative_to(ROOT)}, {markdown.relative_to(ROOT)}, {chart.relative_to(ROOT)}"
    )
    return 0


def render_chart(document: dict[str, Any], path: Path, *, day: str) -> None:
    """One PNG: throughput of raw aiokafka against AidMesh (hop, catch-up, pipeline, import),
    and the latency percentiles at each fixed rate. Panels without results are left out."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    results = document["results"]
    bars: list[tuple[str, float, str]] = []  # label, events/s, colour
    raw, ours = "#8c8c8c", "#1f6fb4"
    if hop := results.get("hop"):
        bars += [
            ("raw produce", hop["raw_produce_per_s"], raw),
            ("raw consume", hop["raw_consume_per_s"], raw),
            ("raw relay", hop["raw_relay_per_s"], raw),
            *(
                [("raw librdkafka relay", hop["raw_confluent_relay_per_s"], raw)]
                if "raw_confluent_relay_per_s" in hop
                else []
            ),
            ("AidMesh hop", hop["aidmesh_hop_per_s"], ours),
            *(
                [("AidMesh hop, relay apart", hop["aidmesh_hop_relay_apart_per_s"], ours)]
                if "aidmesh_hop_relay_apart_per_s" in hop
                else []
            ),
        ]
    if catchup := results.get("catchup"):
        bars += [
            ("raw catch-up", catchup["raw_catch_up_per_s"], raw),
            ("AidMesh catch-up", catchup["aidmesh_consumed_per_s"], ours),
        ]
    households = results.get("registration_import") or results.get("pipeline")
    panels = [
        name
        for name, present in (
            ("throughput", bars),
            ("latency", results.get("latency")),
            ("households", households),
        )
        if present
    ]
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "throughput":
            ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
            ax.set_xscale("log")
            ax.set_xlim(left=100)  # bars start at 100/s, so short ones stay visible
            ax.set_xlabel("events per second (log scale)")
            ax.set_title("Throughput: raw aiokafka (grey) vs AidMesh (blue)")
            ax.invert_yaxis()
            for i, (_, value, _) in enumerate(bars):
                ax.text(value, i, f" {value:,.0f}", va="center", fontsize=8)
        elif panel == "latency":
            rates = results["latency"]["rates"]
            labels = [f"{r['rate_wanted']:,}/s\n(got {r['rate_achieved']:,})" for r in rates]
            width = 0.25
            for k, (q, colour) in enumerate(
                (("p50_ms", "#9ecae1"), ("p95_ms", "#4292c6"), ("p99_ms", "#08519c"))
            ):
                xs = [i + (k - 1) * width for i in range(len(rates))]
                ax.bar(xs, [r[q] for r in rates], width, label=q.removesuffix("_ms"), color=colour)
            ax.axhline(50, color="#d62728", linestyle="--", linewidth=1, label="p99 target 50 ms")
            ax.set_xticks(range(len(rates)), labels)
            ax.set_ylabel("commit → commit, ms")
            ax.set_title("Latency of one hop at fixed rates")
            ax.legend(fontsize=8)
        else:
            items = []
            if imported := results.get("registration_import"):
                summary = imported["summary"]
                items.append(
                    (f"bulk import\n({summary['households']:,})", summary["households_per_second"])
                )
            if pipeline := results.get("pipeline"):
                items.append(
                    (
                        f"registration → delivered\n({pipeline['summary'].get('households', '?')})",
                        pipeline["summary"]["households_per_second"],
                    )
                )
            ax.bar([i[0] for i in items], [i[1] for i in items], color=ours)
            for i, (_, value) in enumerate(items):
                ax.text(i, value, f"{value:,.1f}", ha="center", va="bottom", fontsize=8)
            ax.set_ylabel("households per second")
            ax.set_title("Households")
    m = document["machine"]
    figure.suptitle(
        f"AidMesh benchmarks {day} — {m['cores']} cores, Kafka {m['kafka']}, commit {m['git_commit']}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def render_markdown(document: dict[str, Any], *, day: str) -> str:
    m = document["machine"]
    lines = [
        f"# AidMesh benchmarks, {day}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']};"
        f" Python {m['python']}; {m['postgresql']}; Kafka {m['kafka']};"
        f" load average at start {m['load_average_at_start']}; commit {m['git_commit']}"
        f"{' (uncommitted changes)' if m['git_dirty'] else ''}.",
    ]
    by_commit: dict[str, list[str]] = {}
    for name, result in sorted(document["results"].items()):
        ran = result.get("machine", m)
        dirty = " (uncommitted changes)" if ran["git_dirty"] else ""
        by_commit.setdefault(f"{ran['git_commit']}{dirty}", []).append(name)
    if len(by_commit) > 1:
        runs = "; ".join(f"{', '.join(names)} at {commit}" for commit, names in by_commit.items())
        lines += ["", f"The benchmarks ran at different commits: {runs}."]
    lines += [
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
    lines += ["", f"![AidMesh benchmarks {day}]({day}.png)", ""]
    for name, result in sorted(document["results"].items()):
        if result.get("notes"):
            lines += [f"## {name}", "", *result["notes"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    # The event loop the services run on (uvicorn picks uvloop when it is installed), for
    # the raw baselines and AidMesh alike.
    import uvloop

    sys.exit(uvloop.run(main(sys.argv[1:])))
