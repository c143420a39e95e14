"""What a service's /metrics holds, and the dashboard and alert rules that read it.

The dashboard (deploy/grafana/aidmesh-dashboard.json) and the alert rules
(deploy/local/prometheus-rules.yml) refer to metrics by name, in PromQL strings nothing
else checks: a renamed metric or label would leave an empty panel or an alert that never
fires. These tests compare every query with what the runtime exports.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aidmesh_contracts import NeedAssessed
from aidmesh_runtime.metrics import ServiceMetrics
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "deploy" / "grafana" / "aidmesh-dashboard.json"
RULES = REPO / "deploy" / "local" / "prometheus-rules.yml"
#: Labels Prometheus adds to every series it scrapes (deploy/local/prometheus.sh).
TARGET_LABELS = {"job", "instance", "service"}
#: Series Prometheus makes itself, per target.
SYNTHETIC = {"up": set()}
TOPIC = NeedAssessed.topic


# ---- fakes for what a scrape reads ------------------------------------------------------


class FakePool:
    """The database as the scrape sees it: one answer about the outbox, or an outage."""

    def __init__(self, *, unsent: int = 0, age_s: float = 0.0, down: bool = False) -> None:
        self.unsent, self.age_s, self.down = unsent, age_s, down

    @contextlib.asynccontextmanager
    async def acquire(self, *, timeout: float) -> AsyncIterator[FakePool]:  # noqa: ASYNC109 - asyncpg's signature
        if self.down:
            raise ConnectionRefusedError("database down")
        yield self

    async def fetchrow(self, query: str, *, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 - asyncpg's signature
        assert "FROM outbox WHERE sent_at IS NULL" in query
        return {"rows": self.unsent, "age": self.age_s}


class FakeConsumer:
    """An aiokafka consumer's view: assigned partitions, their log ends and positions."""

    def __init__(self, partitions: dict[TopicPartition, tuple[int, int]]) -> None:
        self.partitions = partitions

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.partitions[tp][0] for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        return self.partitions[tp][1]


def record(event_type: str = NeedAssessed.event_type) -> ConsumerRecord:
    return ConsumerRecord(
        topic=TOPIC,
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=[("ce_id", b"x"), ("ce_type", event_type.encode())],
    )


def samples(metrics: ServiceMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.render(accept=None)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


# ---- counting --------------------------------------------------------------------------


def test_a_handled_type_is_exported_at_zero_before_its_first_record() -> None:
    metrics = ServiceMetrics(service="shelter")
    metrics.expect_consumed([NeedAssessed])

    labels = {"service": "shelter", "topic": TOPIC, "type": NeedAssessed.event_type}
    assert value(metrics, "aidmesh_events_consumed_total", **labels, outcome="handled") == 0
    assert value(metrics, "aidmesh_events_dead_lettered_total", **labels) == 0


def test_a_dead_lettered_record_counts_as_consumed_and_as_dead_lettered() -> None:
    metrics = ServiceMetrics(service="shelter")

    metrics.consumed(record(), outcome="dead_lettered", seconds=0.004)

    labels = {"service": "shelter", "topic": TOPIC, "type": NeedAssessed.event_type}
    assert value(metrics, "aidmesh_events_consumed_total", **labels, outcome="dead_lettered") == 1
    assert value(metrics, "aidmesh_events_dead_lettered_total", **labels) == 1
    handling = {"service": "shelter", "type": NeedAssessed.event_type, "outcome": "dead_lettered"}
    assert value(metrics, "aidmesh_event_handling_seconds_bucket", **handling, le="0.005") == 1
    assert value(metrics, "aidmesh_event_handling_seconds_bucket", **handling, le="0.0025") == 0


def test_a_batch_counts_each_record_under_its_outcome() -> None:
    metrics = ServiceMetrics(service="shelter")

    metrics.consumed_batch(
        [record(), record(), record()],
        [("handled", 0.001), ("duplicate", 0.0001), ("handled", 0.002)],
    )

    labels = {"service": "shelter", "topic": TOPIC, "type": NeedAssessed.event_type}
    assert value(metrics, "aidmesh_events_consumed_total", **labels, outcome="handled") == 2
    assert value(metrics, "aidmesh_events_consumed_total", **labels, outcome="duplicate") == 1
    assert value(metrics, "aidmesh_events_dead_lettered_total", **labels) is None
    handled = {"service": "shelter", "type": NeedAssessed.event_type, "outcome": "handled"}
    assert value(metrics, "aidmesh_event_handling_seconds_count", **handled) == 2


def test_a_type_no_contract_defines_is_counted_as_unknown() -> None:
    metrics = ServiceMetrics(service="shelter")

    metrics.consumed(record("org.aidmesh.made.up.thing.v1"), outcome="dead_lettered", seconds=0.1)

    labels = {"service": "shelter", "topic": TOPIC, "type": "unknown"}
    assert value(metrics, "aidmesh_events_dead_lettered_total", **labels) == 1


def test_published_outbox_rows_are_counted_by_topic_and_type() -> None:
    metrics = ServiceMetrics(service="shelter")
    headers = json.dumps([["ce_id", "x"], ["ce_type", NeedAssessed.event_type]])

    metrics.published([{"topic": TOPIC, "headers": headers}] * 3)

    labels = {"service": "shelter", "topic": TOPIC, "type": NeedAssessed.event_type}
    assert value(metrics, "aidmesh_events_produced_total", **labels) == 3


# ---- read at scrape time ----------------------------------------------------------------


async def test_a_scrape_reports_the_outbox_backlog_and_the_age_of_its_oldest_row() -> None:
    metrics = ServiceMetrics(service="shelter")

    await metrics.refresh(pool=FakePool(unsent=4, age_s=75.5), consumer=None)

    assert value(metrics, "aidmesh_outbox_backlog", service="shelter") == 4
    assert value(metrics, "aidmesh_outbox_oldest_unsent_age_seconds", service="shelter") == 75.5


async def test_a_scrape_while_the_database_is_down_leaves_the_backlog_out_rather_than_stale() -> (
    None
):
    metrics = ServiceMetrics(service="shelter")
    await metrics.refresh(pool=FakePool(unsent=4, age_s=1.0), consumer=None)

    await metrics.refresh(pool=FakePool(down=True), consumer=None)

    assert value(metrics, "aidmesh_outbox_backlog", service="shelter") is None


async def test_lag_is_the_log_end_minus_the_position_of_each_assigned_partition() -> None:
    metrics = ServiceMetrics(service="audit")
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)

    await metrics.refresh(pool=None, consumer=FakeConsumer({p0: (120, 100), p1: (50, 50)}))

    assert value(metrics, "aidmesh_consumer_lag", service="audit", topic=TOPIC, partition="0") == 20
    assert value(metrics, "aidmesh_consumer_lag", service="audit", topic=TOPIC, partition="1") == 0


async def test_a_partition_no_longer_assigned_stops_being_reported() -> None:
    metrics = ServiceMetrics(service="audit")
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    await metrics.refresh(pool=None, consumer=FakeConsumer({p0: (9, 1), p1: (9, 1)}))

    await metrics.refresh(pool=None, consumer=FakeConsumer({p0: (9, 9)}))

    assert (
        value(metrics, "aidmesh_consumer_lag", service="audit", topic=TOPIC, partition="1") is None
    )


# ---- the dashboard and the alert rules ---------------------------------------------------


async def exported() -> dict[str, set[str]]:
    """Every sample name a service exports, with its labels: a ServiceMetrics that has
    seen one of everything."""
    metrics = ServiceMetrics(service="shelter")
    metrics.expect_consumed([NeedAssessed])
    metrics.consumed(record(), outcome="handled", seconds=0.01)
    headers = json.dumps([["ce_type", NeedAssessed.event_type]])
    metrics.published([{"topic": TOPIC, "headers": headers}])
    metrics.http_request(route="/cases/{case_id}", method="GET", status=200, seconds=0.01)
    partition = TopicPartition(TOPIC, 0)
    await metrics.refresh(
        pool=FakePool(unsent=1, age_s=1.0), consumer=FakeConsumer({partition: (2, 1)})
    )
    names: dict[str, set[str]] = dict(SYNTHETIC)
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_NAME = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset"}  # fmt: skip


def problems(expr: str, known: dict[str, set[str]]) -> list[str]:
    """What in a PromQL expression the runtime does not export: unknown metric names,
    labels a metric does not have, grouping labels none of its metrics has."""
    used: dict[str, set[str]] = {}

    def selector(match: re.Match[str]) -> str:
        used.setdefault(match.group(1), set()).update(_MATCHER.findall(match.group(2)))
        return " "

    rest = _SELECTOR.sub(selector, expr)
    grouping = {label.strip() for group in _GROUPING.findall(rest) for label in group.split(",")}
    rest = _GROUPING.sub(" ", rest)
    rest = re.sub(r"\[[^\]]*\]|\"[^\"]*\"", " ", rest)  # ranges, strings
    for name, call in _NAME.findall(rest):
        if not call and name not in _KEYWORDS:
            used.setdefault(name, set())  # a bare metric name
    found = []
    if not used:
        found.append(f"{expr!r} reads no metric")
    for name, labels in used.items():
        if name not in known:
            found.append(f"{expr!r}: no metric {name}")
        elif unknown := labels - known[name] - TARGET_LABELS:
            found.append(f"{expr!r}: {name} has no label {sorted(unknown)}")
    available = set().union(*(known.get(n, set()) for n in used)) | TARGET_LABELS
    if unknown := grouping - {""} - available:
        found.append(f"{expr!r}: groups by {sorted(unknown)}, which its metrics do not have")
    return found


def dashboard_queries() -> Iterator[str]:
    dashboard = json.loads(DASHBOARD.read_text())

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                yield node["expr"]
            for child in node.values():
                yield from walk(child)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)

    yield from walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        # label_values(<selector>, <label>): Grafana's, not PromQL; check it as `by (label)`.
        selector, label = re.fullmatch(
            r"label_values\((.*),\s*(\w+)\)", variable["definition"]
        ).groups()
        yield f"count by ({label}) ({selector})"


def rule_queries() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


async def test_every_dashboard_query_reads_only_metrics_and_labels_the_runtime_exports() -> None:
    known = await exported()
    queries = list(dashboard_queries())

    assert len(queries) >= 10
    assert [p for q in queries for p in problems(q, known)] == []


async def test_every_alert_rule_reads_only_metrics_and_labels_the_runtime_exports() -> None:
    known = await exported()
    queries = rule_queries()

    assert len(queries) >= 4
    assert [p for q in queries for p in problems(q, known)] == []


def test_the_dashboard_shows_events_latency_outbox_and_lag() -> None:
    queries = " ".join(dashboard_queries())

    for metric in (
        "aidmesh_events_consumed_total",
        "aidmesh_events_produced_total",
        "aidmesh_events_dead_lettered_total",
        "aidmesh_event_handling_seconds_bucket",
        "aidmesh_outbox_backlog",
        "aidmesh_outbox_oldest_unsent_age_seconds",
        "aidmesh_consumer_lag",
    ):
        assert metric in queries, f"no panel shows {metric}"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, " in queries


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("rate(aidmesh_events_consumd_total[5m])", "no metric aidmesh_events_consumd_total"),
        (
            'aidmesh_consumer_lag{event_type="x"}',
            "aidmesh_consumer_lag has no label ['event_type']",
        ),
        ("sum by (outcome) (aidmesh_outbox_backlog)", "groups by ['outcome']"),
        ("vector(1)", "reads no metric"),
    ],
)
async def test_the_query_check_names_what_the_runtime_does_not_export(
    query: str, problem: str
) -> None:
    [found] = problems(query, await exported())

    assert problem in found
