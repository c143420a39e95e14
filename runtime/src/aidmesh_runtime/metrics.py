"""Prometheus metrics every service exposes at `GET /metrics`.

Each app gets its own `CollectorRegistry` (built in `create_service_app`), never the
process-wide default one: tests run several apps in one process, and two apps must neither
share counters nor collide registering them.

Counters and the handling-time histogram are updated as records and outbox rows go by.
The outbox backlog and the consumer lag are read when Prometheus scrapes (one small SQL
query, one ListOffsets request), so they are right whichever replica leads the relay and
cost nothing between scrapes.

Every label value comes from a bounded set: event types are the registered ones (anything
else a producer writes into `ce_type` is counted as "unknown"), topics are the ones the
service subscribes to or publishes on, HTTP routes are templates ("/households/{id}"), not
paths, and no label ever carries an id or personal data.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import asyncpg
import structlog
from aidmesh_contracts.base import EVENT_TYPES, Event
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

#: Handling times from 1 ms (an inbox duplicate) to 10 s (a handler waiting on a slow
#: database); anything slower lands in +Inf and shows in the p99.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: End states of a record of a type the service handles (consumer.py; the other one,
#: "ignored", is for types it does not handle). Their series start at 0 before the first
#: record, so that rate() and increase() see the first one.
HANDLED_TYPE_OUTCOMES = ("handled", "duplicate", "dead_lettered")
UNKNOWN_TYPE = "unknown"
#: A scrape never waits longer than this on the database or the broker.
SCRAPE_TIMEOUT_S = 2.0
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceMetrics:
    """One service's metrics, in a registry of its own."""

    def __init__(self, *, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        registry = self.registry
        self.events_consumed = Counter(
            "aidmesh_events_consumed",
            "Records consumed, by topic, event type and outcome "
            "(handled, duplicate, ignored, dead_lettered).",
            ["service", "topic", "type", "outcome"],
            registry=registry,
        )
        self.events_produced = Counter(
            "aidmesh_events_produced",
            "Events published to Kafka by the outbox relay, by topic and event type.",
            ["service", "topic", "type"],
            registry=registry,
        )
        self.events_dead_lettered = Counter(
            "aidmesh_events_dead_lettered",
            "Records this service's consumer sent to <topic>.dlq, by original topic and type.",
            ["service", "topic", "type"],
            registry=registry,
        )
        self._handling_children: dict[tuple[str, str], Any] = {}
        self.handling_seconds = Histogram(
            "aidmesh_event_handling_seconds",
            "Time from taking a record to its end state: decode, inbox, handler and commit "
            "(or dead-lettering), retries of transient failures included.",
            ["service", "type", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.http_requests = Counter(
            "aidmesh_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["service", "route", "method", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "aidmesh_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["service", "route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._scraped = _ScrapedState(service)
        registry.register(self._scraped)
        # CPU, memory, open files, GC of this process. The collectors are stateless, so the
        # same instances serve every registry in the process.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)

    # ---- updated as things happen ---------------------------------------------------------

    def expect_consumed(self, models: Iterable[type[Event]]) -> None:
        """Create the series of the types this service handles at 0, before any arrives."""
        for model in models:
            for outcome in HANDLED_TYPE_OUTCOMES:
                self.events_consumed.labels(self.service, model.topic, model.event_type, outcome)
            self.events_dead_lettered.labels(self.service, model.topic, model.event_type)

    def consumed(self, record: ConsumerRecord, *, outcome: str, seconds: float) -> None:
        """One record reached its end state (consumer.py)."""
        self.consumed_batch([record], [(outcome, seconds)])

    def consumed_batch(
        self, records: Sequence[ConsumerRecord], results: Sequence[tuple[str, float]]
    ) -> None:
        """A batch's records reached their end states (`consumed` for each, the counters
        added once per label set)."""
        counts: Tally[tuple[str, str, str]] = Tally()
        children = self._handling_children
        for record, (outcome, seconds) in zip(records, results, strict=True):
            event_type = _event_type(
                value for name, value in (record.headers or ()) if name == "ce_type"
            )
            counts[record.topic, event_type, outcome] += 1
            # labels() builds and locks on every call: its children are kept per label set.
            child = children.get((event_type, outcome))
            if child is None:
                child = children[event_type, outcome] = self.handling_seconds.labels(
                    self.service, event_type, outcome
                )
            child.observe(seconds)
        for (topic, event_type, outcome), count in counts.items():
            self.events_consumed.labels(self.service, topic, event_type, outcome).inc(count)
            if outcome == "dead_lettered":
                self.events_dead_lettered.labels(self.service, topic, event_type).inc(count)

    def published(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Outbox rows (topic, headers as stored, or already parsed) the relay has just
        published."""
        tally: Tally[tuple[str, str]] = Tally()
        for row in rows:
            headers = row["headers"]
            if isinstance(headers, str):
                headers = json.loads(headers)
            tally[row["topic"], _event_type(v for n, v in headers if n == "ce_type")] += 1
        for (topic, event_type), count in tally.items():
            self.events_produced.labels(self.service, topic, event_type).inc(count)

    def http_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in _HTTP_METHODS else "OTHER"
        self.http_requests.labels(self.service, route, method, str(status)).inc()
        self.http_seconds.labels(self.service, route, method).observe(seconds)

    # ---- read at scrape time ----------------------------------------------------------------

    async def refresh(
        self, *, pool: asyncpg.Pool | None, consumer: AIOKafkaConsumer | None
    ) -> None:
        """Read the outbox backlog and the consumer lag now, for the scrape in progress.

        What cannot be read in time (database or broker down) is left out of this scrape
        rather than reported stale; the counters and /readyz still say what is wrong.
        """
        backlog = await _outbox_backlog(pool) if pool is not None else None
        lag = await _consumer_lag(consumer) if consumer is not None else {}
        self._scraped.update(backlog=backlog, lag=lag)

    def render(self, *, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper asked for (OpenMetrics or text 0.0.4)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _ScrapedState(Collector):
    """The gauges read at scrape time: outbox backlog and age, consumer lag per partition."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._backlog: tuple[int, float] | None = None
        self._lag: dict[tuple[str, int], int] = {}

    def update(
        self, *, backlog: tuple[int, float] | None, lag: Mapping[tuple[str, int], int]
    ) -> None:
        # Replaced whole, so a partition no longer assigned here stops being reported.
        self._backlog = backlog
        self._lag = dict(lag)

    def describe(self) -> Iterator[Metric]:
        return self._families(backlog=None, lag={})

    def collect(self) -> Iterator[Metric]:
        return self._families(backlog=self._backlog, lag=self._lag)

    def _families(
        self, *, backlog: tuple[int, float] | None, lag: Mapping[tuple[str, int], int]
    ) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "aidmesh_outbox_backlog",
            "Outbox rows committed but not yet published to Kafka.",
            labels=["service"],
        )
        age = GaugeMetricFamily(
            "aidmesh_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none is waiting).",
            labels=["service"],
        )
        if backlog is not None:
            rows.add_metric([self._service], backlog[0])
            age.add_metric([self._service], backlog[1])
        lags = GaugeMetricFamily(
            "aidmesh_consumer_lag",
            "Records on an assigned partition this consumer has not taken yet "
            "(log end offset minus position).",
            labels=["service", "topic", "partition"],
        )
        for (topic, partition), records in sorted(lag.items()):
            lags.add_metric([self._service, topic, str(partition)], records)
        yield rows
        yield age
        yield lags


def _event_type(values: Iterable[bytes | str]) -> str:
    """The first ce_type value if it is a registered event type, else "unknown"."""
    for value in values:
        name = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return name if name in EVENT_TYPES else UNKNOWN_TYPE
    return UNKNOWN_TYPE


async def _outbox_backlog(pool: asyncpg.Pool) -> tuple[int, float] | None:
    try:
        async with pool.acquire(timeout=SCRAPE_TIMEOUT_S) as conn:
            # The database's clock on both sides: created_at is its now() at insert.
            row = await conn.fetchrow(
                "SELECT count(*) AS rows, "
                "coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age "
                "FROM outbox WHERE sent_at IS NULL",
                timeout=SCRAPE_TIMEOUT_S,
            )
    except Exception as exc:  # database unavailable: leave the backlog out of this scrape
        log.debug("metrics_outbox_unreadable", error=repr(exc))
        return None
    assert row is not None  # an aggregate always returns its one row
    return int(row["rows"]), max(0.0, float(row["age"]))


async def _consumer_lag(consumer: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
    partitions = list(consumer.assignment())
    if not partitions:
        return {}
    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT_S):
            # The broker's log end offsets, not the last fetch's highwater: a partition
            # whose records are buffered is not fetched again, so its highwater goes stale.
            ends = await consumer.end_offsets(partitions)
            positions = {tp: await consumer.position(tp) for tp in partitions}
    except Exception as exc:  # rebalancing or broker unavailable: no lag this scrape
        log.debug("metrics_lag_unreadable", error=repr(exc))
        return {}
    return {
        (tp.topic, tp.partition): max(0, ends[tp] - positions[tp])
        for tp in partitions
        if tp in ends
    }


class HttpMetricsMiddleware:
    """Counts and times HTTP requests by route template (ASGI middleware)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_noting_status)
        finally:
            # The router puts the matched route in the scope; unmatched paths (404s, scans)
            # share one label so they cannot grow the number of series.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self._metrics.http_request(
                route=route,
                method=scope["method"],
                status=status,
                seconds=time.perf_counter() - started,
            )
