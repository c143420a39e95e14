"""Where a hop's CPU goes, stage by stage: py-spy samples of this process, each sample
given to the stage of the innermost frame that names one.

`profiled(svg)` samples the current process with py-spy (non-blocking, so the process is
not paused) while the block runs, writing a flame graph to `svg`; `breakdown(samples,
cpu_us_per_event)` turns the samples into CPU microseconds per event for each stage.

py-spy counts a sample only while a thread is running (not waiting in epoll), so the
shares are shares of the process's CPU. Time inside C code (asyncpg's protocol, pydantic's
core, aiokafka's record builder) counts for the Python frame that called it; socket reads
the event loop does outside any of our frames land in "event loop and socket I/O".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

#: (stage, function, file): a frame matches when its function is `function` (any, if None)
#: and its file path contains `file` (any, if None). A sample belongs to the stage of its
#: innermost frame that matches (so a span started inside the handler is tracing, and the
#: handler's own code is the handler). Stages are listed in the order of an event's path.
RULES: list[tuple[str, str | None, str | None]] = [
    ("fetch", None, "aiokafka/consumer/fetcher.py"),
    ("fetch", "getmany", None),
    ("decode and validation (envelope + payload)", "decode", "aidmesh_runtime/consumer.py"),
    ("decode and validation (envelope + payload)", "from_headers", None),
    ("decode and validation (envelope + payload)", "decode", "aidmesh_contracts/envelope.py"),
    ("inbox claim", "_claim", None),
    ("handler", "assess", None),
    ("handler", "_run_handler", None),
    ("new event + envelope", "new_envelope", None),
    ("new event + envelope", "encode", "aidmesh_contracts/envelope.py"),
    ("new event + envelope", "to_headers", None),
    ("new event + envelope", "header_pairs", None),
    ("new event + envelope", "model_dump_json", None),  # only events are dumped in a hop
    ("new event + envelope", "prepare", "aidmesh_runtime/outbox.py"),
    ("outbox write", "flush", "aidmesh_runtime/consumer.py"),
    ("outbox write", "add_prepared", None),
    ("batch transaction (pool, begin, commit)", "_handle_batch", None),
    ("batch transaction (pool, begin, commit)", "_handle_batch_in_transaction", None),
    ("batch transaction (pool, begin, commit)", None, "asyncpg/transaction.py"),
    ("batch transaction (pool, begin, commit)", None, "asyncpg/pool.py"),
    ("relay read", "_unsent", None),
    ("produce", "_send", None),
    ("produce", None, "aiokafka/producer/"),
    ("produce", None, "aidmesh_runtime/producer.py"),
    ("produce", None, "confluent_kafka/"),
    ("relay mark sent", "_mark_sent", None),
    ("offset commit", "commit", "aiokafka/consumer/consumer.py"),
    ("offset commit", None, "aiokafka/consumer/group_coordinator.py"),
    ("tracing", None, "opentelemetry/"),
    # The API and SDK are one namespace package: py-spy may name their files without it.
    ("tracing", None, "trace/__init__.py"),
    ("tracing", None, "trace/span.py"),
    ("tracing", None, "trace/sampling.py"),
    ("tracing", None, "context/__init__.py"),
    ("tracing", None, "context/contextvars_context.py"),
    ("tracing", None, "aidmesh_runtime/telemetry.py"),
    ("logging", None, "structlog/"),
    ("logging", None, "aidmesh_runtime/logging.py"),
    ("logging", None, "aidmesh_runtime/scrubbing.py"),
    ("metrics", None, "aidmesh_runtime/metrics.py"),
    ("metrics", None, "prometheus_client/"),
]
#: For samples no rule above claims, tier by tier: our modules' other code, then the Kafka
#: client shared by fetch and produce, then the event loop (a socket write counts for
#: whoever wrote, when a frame says who).
FALLBACK: list[list[tuple[str, str | None, str | None]]] = [
    [
        ("consumer bookkeeping", None, "aidmesh_runtime/consumer.py"),
        ("relay loop", None, "aidmesh_runtime/outbox.py"),
    ],
    [
        ("Kafka client I/O (fetch or produce)", None, "aiokafka/conn.py"),
        ("Kafka client I/O (fetch or produce)", None, "aiokafka/client.py"),
    ],
    [
        ("event loop and socket I/O", None, "asyncio/"),
        ("event loop and socket I/O", None, "uvloop/"),
        ("event loop and socket I/O", None, "selectors.py"),
    ],
]
#: The database instrumentation wraps every query: it is tracing only when the sample is in
#: the wrapper's own code, not in the query it wraps.
_DB_WRAPPER = "opentelemetry/instrumentation/asyncpg"
#: More specific rules first within a frame (offset commit before fetch, since aiokafka's
#: consumer does both; tracing before the runtime module that called it).
_PRIORITY = ["offset commit", "tracing", "logging", "metrics"]
STAGES = list(
    dict.fromkeys(stage for stage, _, _ in RULES + [rule for tier in FALLBACK for rule in tier])
)
OTHER = "other"


def stage_of(stack: str) -> str:
    """The stage of one collapsed stack ("outer (file:line);...;inner (file:line)")."""
    fallback: list[str | None] = [None] * len(FALLBACK)
    inside_query = False  # a frame below is not tracing code
    for frame in reversed(stack.split(";")):
        function, _, where = frame.partition(" (")
        if _DB_WRAPPER in where and inside_query:
            continue
        stage = _match(RULES, function, where)
        if stage is not None:
            return stage
        for tier, rules in enumerate(FALLBACK):
            fallback[tier] = fallback[tier] or _match(rules, function, where)
        inside_query = inside_query or "opentelemetry/" not in where
    return next((stage for stage in fallback if stage), OTHER)


def _match(
    rules: list[tuple[str, str | None, str | None]], function: str, where: str
) -> str | None:
    # py-spy names functions with their class (Outbox.prepare, _send.<locals>.<listcomp>).
    names = function.split(".")
    matched = {
        stage
        for stage, name, path in rules
        if (name is None or name in names) and (path is None or path in where)
    }
    if not matched:
        return None
    return next((s for s in _PRIORITY if s in matched), min(matched, key=STAGES.index))


def breakdown(raw: Path, cpu_us_per_event: float) -> list[dict[str, object]]:
    """CPU µs per event of each stage (its share of the samples × the CPU per event)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[stage_of(stack)] += int(n)
    total = sum(counts.values()) or 1
    order = [*STAGES, OTHER]
    return [
        {
            "stage": stage,
            "share": round(counts[stage] / total, 3),
            "cpu_us_per_event": round(counts[stage] / total * cpu_us_per_event, 1),
        }
        for stage in order
        if counts[stage]
    ]


@contextlib.contextmanager
def profiled(svg: Path, raw: Path, *, rate: int = 200) -> Iterator[None]:
    """Sample this process with py-spy while the block runs: a flame graph to `svg` and
    collapsed stacks to `raw`. py-spy writes one format per run, so two samplers run."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    svg.parent.mkdir(parents=True, exist_ok=True)
    raw.parent.mkdir(parents=True, exist_ok=True)
    samplers = [
        subprocess.Popen(  # noqa: S603 - our own tool on our own pid
            [
                py_spy,
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                str(rate),
                "--nonblocking",
                "--format",
                fmt,
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for fmt, out in (("flamegraph", svg), ("raw", raw))
    ]
    time.sleep(0.5)  # attached before the work starts
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for sampler in samplers:
            _, err = sampler.communicate(timeout=60)
            if (
                sampler.returncode not in (0, -signal.SIGINT)
                and not Path(svg if sampler is samplers[0] else raw).exists()
            ):
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
