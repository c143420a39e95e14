"""Service defaults: every AidMesh service is built the same way.

`create_service_app(...)` returns a FastAPI app whose lifespan opens the database pool,
applies the runtime's and the service's migrations, starts the Kafka producer, the outbox
relay and the consumers, and on shutdown (SIGTERM) stops fetching, lets in-flight handlers
finish, drains the relay and closes everything. Liveness, readiness and Prometheus
metrics (metrics.py) are built in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import asyncpg
import structlog
from aidmesh_contracts.base import Event
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import Scope

from . import auth
from .bodies import BODY_RESPONSES, RequestBodyLimits
from .consumer import EventConsumer, Handler
from .db import all_migrations, create_pool, migrate
from .dlq import DeadLetters
from .errors import validation_message
from .kafka import KafkaCredentialsMissing
from .librdkafka import LibrdkafkaProducer
from .logging import configure_logging
from .metrics import HttpMetricsMiddleware, ServiceMetrics
from .outbox import Outbox, OutboxRelay
from .params import known_query_only
from .rules import Refusal
from .settings import SecretSettingError, ServiceSettings
from .telemetry import Telemetry
from .topics import MAX_DLQ_MESSAGE_BYTES
from .transaction import Tx, transaction

if TYPE_CHECKING:
    from .db import Connection

log = structlog.get_logger(__name__)

#: The cyclic garbage collector's thresholds while a service runs (see the lifespan).
GC_THRESHOLDS = (50_000, 20, 100)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What the composition root hands to use cases and endpoints."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    outbox: Outbox
    clock: Callable[[], datetime]
    new_id: Callable[[], UUID]
    relay: OutboxRelay | None  # None in a process without the relay role
    consumer: EventConsumer | None
    extras: dict[str, Any] = field(default_factory=dict)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]:
        """One transaction for a use case, with its outbox (transaction.py)."""
        return transaction(self.pool, self.outbox)


async def rules_of(request: Request) -> Any:
    """FastAPI dependency: the rules a sector's app was built with (`app.state.rules`, set by
    its composition root from its settings); async, so not run in the thread pool."""
    return request.app.state.rules


async def runtime_of(request: Request) -> Runtime:
    """FastAPI dependency: the running service's Runtime (async: FastAPI would run a plain
    function in its thread pool, a thread hop on every request)."""
    return request.app.state.runtime  # type: ignore[no-any-return]


def create_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **settings.kafka_connection().aiokafka(),
        client_id=f"aidmesh-{settings.service_name}",
        enable_idempotence=True,  # implies acks=all; no duplicates or reordering on retry
        linger_ms=settings.kafka_linger_ms,
        max_request_size=MAX_DLQ_MESSAGE_BYTES,  # it also sends dead letters
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


def create_relay_producer(settings: ServiceSettings) -> LibrdkafkaProducer:
    """The producer of the relay and the dead letters (librdkafka: ADR 0012)."""
    return LibrdkafkaProducer(
        settings.kafka_connection().confluent()
        | {
            "client.id": f"aidmesh-{settings.service_name}",
            "linger.ms": settings.kafka_linger_ms,
            "message.max.bytes": MAX_DLQ_MESSAGE_BYTES,  # it also sends dead letters
            # A record not acknowledged by then fails (its batch is retried by the relay,
            # which says so in /readyz), as aiokafka's request timeout did.
            "message.timeout.ms": settings.kafka_request_timeout_ms,
            "request.timeout.ms": min(settings.kafka_request_timeout_ms, 30_000),
        }
    )


def create_service_app(
    *,
    settings: ServiceSettings,
    migrations: Path,
    extra_migrations: Sequence[tuple[str, Path]] = (),
    handlers: Mapping[type[Event], Handler] | None = None,
    router: APIRouter | None = None,
    title: str,
    description: str,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid4,
    extras: Mapping[str, Any] | None = None,
    after_migrations: Callable[[Connection], Awaitable[None]] | None = None,
) -> FastAPI:
    """The one way a service is assembled. Nothing connects until the app starts."""
    name = settings.service_name
    # Per app, not the process-wide default registry: tests run several apps in one process.
    metrics = ServiceMetrics(service=name)
    metrics.expect_consumed(handlers or ())
    # Its own tracer provider (service.name aidmesh-<name>), exporting once the app starts.
    telemetry = Telemetry(service=name, sample_ratio=settings.trace_sample_ratio)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service=name, level=settings.log_level, fmt=settings.log_format)
        # Everything started is registered for shutdown at once, so a failure half-way
        # through start-up still closes what was opened (in reverse order).
        async with contextlib.AsyncExitStack() as stack:
            # Closed last, so the spans of the shutdown itself (the relay's drain) go out too.
            telemetry.start(endpoint=settings.otlp_endpoint)
            stack.push_async_callback(telemetry.shutdown)
            pool = await create_pool(settings.database_dsn, size=settings.db_pool_size)
            stack.push_async_callback(pool.close)
            async with pool.acquire() as conn:
                await migrate(conn, all_migrations(name, migrations, extra=extra_migrations))
                # A data step SQL cannot do (registration encrypts rows written before
                # 0004): done before the consumer and the API start.
                if after_migrations is not None:
                    await after_migrations(conn)
            handles = bool(handlers) and settings.runs("consumer")
            # One producer for the relay and the dead letters, renewed if a fatal error
            # breaks it for good (librdkafka.py).
            producer = None
            if handles or settings.runs("relay"):
                producer = create_relay_producer(settings)
                await producer.start()
                stack.push_async_callback(producer.stop)
            outbox = Outbox(source=settings.source, clock=clock, new_id=new_id)
            relay = None
            if producer is not None and settings.runs("relay"):
                relay = OutboxRelay(
                    pool=pool,
                    producer=producer,
                    batch_size=settings.relay_batch_size,
                    poll_interval_s=settings.relay_poll_interval_s,
                    retention_hours=settings.outbox_retention_hours,
                    max_backoff_s=settings.retry_max_backoff_s,
                    crash_at=settings.fault_crash_point,
                    metrics=metrics,
                    tracer=telemetry.tracer,
                )
                relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
                stack.push_async_callback(_stop_relay, relay, relay_task)
            consumer = None
            if handles and handlers and producer is not None:
                consumer = EventConsumer(
                    name=name,
                    pool=pool,
                    outbox=outbox,
                    dead_letters=DeadLetters(producer=producer, service=name),
                    handlers=handlers,
                    retry_attempts_before_unready=settings.retry_attempts_before_unready,
                    max_backoff_s=settings.retry_max_backoff_s,
                    max_batch=settings.consumer_max_batch,
                    metrics=metrics,
                    tracer=telemetry.tracer,
                )
                await consumer.start(
                    kafka=settings.kafka_connection().aiokafka(),
                    group_id=settings.group_id,
                    offset_reset=settings.consumer_offset_reset,
                    client_id=f"aidmesh-{name}",
                )
                # Stops fetching first; the batch in hand completes before the relay drains
                # and the producer and pool close.
                stack.push_async_callback(consumer.stop)
            runtime = Runtime(
                settings=settings,
                pool=pool,
                outbox=outbox,
                clock=clock,
                new_id=new_id,
                relay=relay,
                consumer=consumer,
                extras=dict(extras or {}),
            )
            app.state.runtime = runtime
            # What start-up made (modules, models, schemas, clients) lives as long as the
            # service: the cyclic collector need not go through it again on every full
            # collection (on this machine ~12% of a hop's CPU, bench/hop.py). Unfrozen at
            # shutdown, so several services in one process (tests) release theirs.
            gc.freeze()
            stack.callback(gc.unfreeze)
            # A consumer batch keeps ~15-20k objects alive until it commits: with the default
            # threshold (700) the young generation was collected ~70 times per 1,000 events,
            # each time going through the whole batch (25-35 µs of CPU per event measured in
            # the hop, bench/hop.py). Collections now start once 50,000 more objects live.
            previous = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
            stack.callback(gc.set_threshold, *previous)
            log.info(
                "service_started",
                port=settings.port,
                roles=settings.roles,
                topics=consumer.topics if consumer else [],
                group_id=settings.group_id,
            )
            yield
            log.info("service_stopping")
        log.info("service_stopped", published=relay.published if relay else None)

    # /docs and /redoc with their scripts served by the service itself (fastapi-offline's
    # copy of Swagger UI 5), not from a CDN: field offices and offline deployments see
    # working docs (issue 19).
    app = FastAPIOffline(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.metrics = metrics
    #: What the service handles (tests compare it with the topic catalogue's consumers).
    app.state.handlers = dict(handlers or {})
    app.state.telemetry = telemetry
    # Innermost, so metrics and traces see its 413s and 415s too.
    app.add_middleware(RequestBodyLimits, max_bytes=settings.http_max_body_bytes)
    telemetry.instrument(app)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The field and the reason, never the submitted values: they may be personal data
        # (FastAPI's default echoes the whole input back, and proxies log responses).
        errors = [
            {"loc": list(e["loc"]), "msg": validation_message(e), "type": e["type"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        # Every service's use cases refuse in the same shapes (rules.py, ADR 0014).
        return JSONResponse({"detail": exc.detail()}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route on the path only; a
            # path served by several routes (GET and POST /households) allows them all.
            allowed = _methods_on_path(request.app, request.scope)
            headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
            return JSONResponse({"detail": exc.detail}, status_code=405, headers=headers)
        return await http_exception_handler(request, exc)

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process is running")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/readyz", tags=["ops"], summary="Readiness: database, relay and consumer are healthy")
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        checks: dict[str, Any] = {}
        if runtime is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            async with runtime.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"failing: {type(exc).__name__}"
        if runtime.relay is not None:
            checks["outbox_relay"] = "ok" if runtime.relay.healthy else runtime.relay.last_error
        if runtime.consumer is not None:
            checks["consumer"] = "ok" if runtime.consumer.healthy else runtime.consumer.last_error
            assigned = await _positioned_partitions(request.app)
            checks["assigned_partitions"] = assigned
            if not assigned:
                checks["consumer"] = "waiting for partition assignment"
        ready = all(v == "ok" for k, v in checks.items() if k != "assigned_partitions")
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "service": name, "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics(request: Request) -> Response:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        await metrics.refresh(
            pool=runtime.pool if runtime else None,
            consumer=runtime.consumer.kafka if runtime and runtime.consumer else None,
        )
        body, content_type = metrics.render(accept=request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    if router is not None and settings.runs("api"):
        # Every route of the service's API needs a valid token (routes add their scope);
        # without a key to verify tokens the service refuses to start (auth.py).
        auth.install(app, settings)
        app.include_router(
            router,
            dependencies=[Depends(auth.authenticate), Depends(known_query_only)],
            responses=auth.AUTH_RESPONSES | BODY_RESPONSES,
        )
    return app


def _methods_on_path(app: FastAPI, scope: Scope) -> set[str]:
    """The methods the API documents for the request's path (FastAPI's included routers
    do not expose their routes' methods; its OpenAPI document does)."""
    paths = getattr(app.state, "methods_by_path", None)
    if paths is None:
        paths = app.state.methods_by_path = [
            (compile_path(path)[0], {method.upper() for method in operations})
            for path, operations in app.openapi().get("paths", {}).items()
        ]
    methods: set[str] = set()
    for pattern, documented in paths:
        if pattern.match(scope["path"]):
            methods |= documented
    if "GET" in methods:
        methods.add("HEAD")
    return methods


async def _stop_relay(relay: OutboxRelay, task: asyncio.Task[None]) -> None:
    relay.stop()
    await task


async def _positioned_partitions(app: FastAPI) -> int:
    """Partitions assigned to this consumer whose start position is known (0 if none).

    Assignment alone is not enough: with offset reset "latest" the position is looked up
    just after, and an event published in between would be skipped.
    """
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    consumer = runtime.consumer.kafka if runtime and runtime.consumer else None
    if consumer is None:
        return 0
    assignment = consumer.assignment()
    try:
        for partition in assignment:
            await asyncio.wait_for(consumer.position(partition), timeout=2)
    except Exception:  # rebalancing or broker unavailable: not ready yet
        return 0
    return len(assignment)


def run(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve the app; uvicorn turns SIGTERM/SIGINT into a graceful lifespan shutdown."""
    import uvicorn

    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )


def serve(build_app: Callable[[Any], FastAPI], settings_class: type[ServiceSettings]) -> None:
    """`python -m aidmesh_<service>`: read settings from the environment, build, run."""
    try:
        settings = settings_class()
        app = build_app(settings)
        settings.kafka_connection()  # no password: say so now, not in a start-up traceback
    except (auth.AuthConfigError, SecretSettingError, KafkaCredentialsMissing) as exc:
        raise SystemExit(f"{settings_class.service_name}: {exc}") from None
    run(app, settings)
