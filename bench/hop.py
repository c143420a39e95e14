"""The ceiling and one AidMesh hop, measured in the same run (issue 10, items 1 and 2).

Raw aiokafka on our topic layout and message sizes (HouseholdRegistered events as the
registration service encodes them: CloudEvents headers, JSON value, key = household id,
six partitions):
- produce: an idempotent producer (acks=all), sends in flight together;
- consume: a consumer reading them back with getmany;
- relay: consume-then-produce (each record to the need topic), offsets committed per batch.

One AidMesh hop: the runtime's inbox consumer (a transaction per batch with the inbox rows),
a handler that publishes one NeedAssessed through the outbox, and the outbox relay that
publishes it. Like the raw relay, it relays a backlog already on the topic (its consumer
group starts where the backlog does): events per second from the service being ready to
the last output acknowledged by Kafka, and its ratio to the raw relay's (target 0.5 or
more). Before 2026-12-07 the backlog was produced while the hop ran, by this same process:
the hop then shared its event loop with the producer, which the raw relay did not.

Settings: BENCH_EVENTS (20000). Needs the local Kafka and PostgreSQL and no other consumer
of the household topic doing work (make bench stops the make up services, as make test does).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
from _stages import breakdown, profiled
from aidmesh_contracts import (
    Composition,
    HouseholdRegistered,
    Location,
    NeedAssessed,
    Sector,
    encode,
)
from aidmesh_contracts.envelope import new_envelope
from aidmesh_contracts.topics import HOUSEHOLD, NEED
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.kafka import operator, operator_auth
from aidmesh_runtime.service import create_service_app
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import (
    ADMIN_DSN,
    KAFKA,
    drop_database,
    fresh_database,
    running_app,
    unique,
)
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import Producer as ConfluentProducer
from confluent_kafka import TopicPartition as ConfluentPartition

TARGET_RATIO = 0.5
#: The share of flows traced by default (ServiceSettings.trace_sample_ratio).
DEFAULT_RATIO: float = ServiceSettings.model_fields["trace_sample_ratio"].default


class BenchSettings(ServiceSettings):
    service_name = "bench"
    #: Not a catalogue service: it has no principal of its own, so it runs as the operator.
    kafka_username: str | None = "admin"


def records(
    n: int, *, traced: float = DEFAULT_RATIO
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """n HouseholdRegistered records (key, value, headers), encoded by the contracts, as
    registration publishes them: each flow started by its API, which traced a share
    `traced` of them (the traceparent's sampled flag; later services follow it)."""
    now = datetime.now(UTC)
    chance = random.Random(n)  # noqa: S311 - which flows are traced, not a secret
    out = []
    for _ in range(n):
        flags = "01" if chance.random() < traced else "00"
        traceparent = (
            f"00-{chance.getrandbits(128) | 1:032x}-{chance.getrandbits(64) | 1:016x}-{flags}"
        )
        event = HouseholdRegistered(
            household_id=uuid4(),
            registered_at=now,
            channel="bulk_import",
            location=Location(adm1_pcode="UA63", adm2_pcode="UA6312", adm3_pcode="UA6312001"),
            displacement_status="idp",
            size=4,
            composition=Composition(female_18_59=1, female_60_plus=1, male_0_17=2),
            vulnerabilities=frozenset({"female_headed", "chronic_illness"}),
            consents=frozenset({"registration", "data_sharing", "referral"}),
        )
        envelope = new_envelope(
            event, source="/aidmesh/registration", time=now, traceparent=traceparent
        )
        out.append((event.subject().encode(), encode(event), envelope.to_headers()))
    return out


async def produce_all(producer: AIOKafkaProducer, topic: str, batch: list[Any]) -> float:
    """Send every record with up to 1000 in flight; seconds taken."""
    started = time.perf_counter()
    pending = []
    for key, value, headers in batch:
        pending.append(await producer.send(topic, key=key, value=value, headers=headers))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return time.perf_counter() - started


async def end_offsets(topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA, **operator_auth(), enable_auto_commit=False
    )
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic))]
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def consume_from(
    start: dict[TopicPartition, int], n: int, *, group: str | None = None
) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA,
        **operator_auth(),
        group_id=group,
        enable_auto_commit=False,
        max_poll_records=500,
    )
    await consumer.start()
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    return consumer


async def raw_consume(start: dict[TopicPartition, int], n: int) -> float:
    consumer = await consume_from(start, n)
    try:
        seen = 0
        started = time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(b) for b in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def raw_relay(start: dict[TopicPartition, int], n: int, producer: AIOKafkaProducer) -> float:
    """Consume each record and produce one to the need topic; commit offsets per batch."""
    consumer = await consume_from(start, n, group=unique("bench-raw-relay"))
    try:
        relayed = 0
        started = time.perf_counter()
        while relayed < n:
            batches = await consumer.getmany(timeout_ms=1000)
            sends = []
            for batch in batches.values():
                for record in batch:
                    sends.append(
                        await producer.send(
                            NEED, key=record.key, value=record.value, headers=list(record.headers)
                        )
                    )
            await asyncio.gather(*sends)
            if batches:
                await consumer.commit(
                    {tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch}
                )
            relayed += len(sends)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def assess(event: HouseholdRegistered, ctx: HandlerContext) -> None:
    """The benchmark's handler: one NeedAssessed through the outbox per household."""
    await ctx.outbox.add(
        ctx.conn,
        NeedAssessed(
            assessment_id=ctx.new_id(),
            household_id=event.household_id,
            sector=Sector.SHELTER,
            severity=3,
            assessed_at=ctx.now(),
            assessed_by="BENCH",
        ),
        caused_by=ctx.envelope,
    )


def bench_settings(
    *,
    group: str,
    offset_reset: str = "latest",
    trace_sample_ratio: float = DEFAULT_RATIO,
    roles: str = "api,consumer,relay",
) -> BenchSettings:
    return BenchSettings(
        roles=roles,
        trace_sample_ratio=trace_sample_ratio,
        db_name=unique("aidmesh_bench"),
        consumer_group=group,
        consumer_offset_reset=offset_reset,
        relay_poll_interval_s=0.1,
        otlp_endpoint="",  # no export: measure the guarantees, not the exporter (spans are made)
        log_level="WARNING",
    )


RELAY = Path(__file__).with_name("_relay.py")
RELAY_PORT = 19301


@contextlib.asynccontextmanager
async def relay_process(settings: BenchSettings) -> AsyncIterator[int]:
    """The service's relay as a process of its own (bench/_relay.py); yields its pid."""
    env = os.environ | {
        "AIDMESH_BENCH_DB_NAME": settings.db_name,
        "AIDMESH_BENCH_ROLES": "relay",
        "AIDMESH_BENCH_HTTP_PORT": str(RELAY_PORT),
        "AIDMESH_BENCH_RELAY_POLL_INTERVAL_S": str(settings.relay_poll_interval_s),
        "AIDMESH_OTLP_ENDPOINT": "",
        "AIDMESH_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, str(RELAY), env=env)
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    ready = await http.get(f"http://127.0.0.1:{RELAY_PORT}/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("the bench relay process did not get ready in 60 s")
                await asyncio.sleep(0.2)
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=30)


def child_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of another process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def hop_service(
    settings: BenchSettings, *, relay_apart: bool = False
) -> AsyncIterator[tuple[asyncpg.Connection, int | None]]:
    """The one-hop service running in-process on a fresh database (dropped afterwards),
    its relay in it or (`relay_apart`) in a process of its own started first; yields a
    connection to that database and the relay process's pid (None when in-process)."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(
            "DO $$ BEGIN CREATE ROLE aidmesh_bench LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    finally:
        await admin.close()
    await fresh_database(settings.database, owner="aidmesh_bench")
    try:
        async with contextlib.AsyncExitStack() as stack:
            relay_pid = (
                await stack.enter_async_context(relay_process(settings)) if relay_apart else None
            )
            empty = stack.enter_context(tempfile.TemporaryDirectory())
            app = create_service_app(
                settings=settings,
                migrations=Path(empty),
                handlers={HouseholdRegistered: assess},
                title="bench",
                description="one hop",
            )
            await stack.enter_async_context(running_app(app))
            conn = await asyncpg.connect(settings.database_dsn)
            stack.push_async_callback(conn.close)
            yield conn, relay_pid
    finally:
        await drop_database(settings.database)


async def wait_count(conn: asyncpg.Connection, query: str, n: int) -> float:
    """Poll until `query` counts n; the perf_counter time it did."""
    while True:
        if await conn.fetchval(query) >= n:
            return time.perf_counter()
        await asyncio.sleep(0.05)


SENT = "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL"


async def commit_at(group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `group`'s offsets: a service joining it resumes from there, as a stopped
    service would."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA, **operator_auth(), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def aidmesh_hop(
    batch: list[Any],
    producer: AIOKafkaProducer,
    *,
    trace_sample_ratio: float = 1.0,
    profile: tuple[Path, Path] | None = None,
    relay_apart: bool = False,
) -> dict[str, float]:
    """The runtime's consumer → handler publishing via the outbox → relay → Kafka, relaying
    a backlog already on the topic, as the raw relay does: from the moment the service is
    ready (partitions assigned) to the last outbox row acknowledged by Kafka."""
    group = unique("bench-hop")
    n = len(batch)
    start = await end_offsets(HOUSEHOLD)
    produce_s = await produce_all(producer, HOUSEHOLD, batch)
    # Not kept while the hop runs: a service holds no such list, and its ~15 objects per
    # record would be traversed by every full collection of the garbage collector.
    batch.clear()
    await commit_at(group, start)
    settings = bench_settings(
        group=group,
        trace_sample_ratio=trace_sample_ratio,
        roles="api,consumer" if relay_apart else "api,consumer,relay",
    )
    async with hop_service(settings, relay_apart=relay_apart) as (conn, relay_pid):
        with (
            profiled(*profile) if profile else contextlib.nullcontext(),
            collector_time() as collecting,
        ):
            cpu = process_cpu_seconds()
            main_thread = time.thread_time()
            relay_cpu = child_cpu_seconds(relay_pid) if relay_pid else 0.0
            others = infrastructure_cpu_seconds()
            started = time.perf_counter()
            total = await wait_count(conn, SENT, n) - started
            cpu = process_cpu_seconds() - cpu
            main_thread = time.thread_time() - main_thread
            relay_cpu = child_cpu_seconds(relay_pid) - relay_cpu if relay_pid else 0.0
            others = {k: v - others[k] for k, v in infrastructure_cpu_seconds().items()}
    return {
        "seconds": total,
        "produce_seconds": produce_s,
        "cpu_us_per_event": (cpu + relay_cpu) / n * 1e6,
        "cpu_share": cpu / total,
        # The event loop's thread (py-spy's samples are of it) and the others (librdkafka's).
        "main_thread_cpu_us_per_event": main_thread / n * 1e6,
        "other_threads_cpu_us_per_event": (cpu - main_thread) / n * 1e6,
        "relay_process_cpu_us_per_event": relay_cpu / n * 1e6,
        "relay_process_cpu_share": relay_cpu / total,
        "gc_us_per_event": collecting["seconds"] / n * 1e6,
        "gc_collections": collecting["collections"],
        "postgres_cpu_us_per_event": others["postgres"] / n * 1e6,
        "broker_cpu_us_per_event": others["broker"] / n * 1e6,
    }


@contextlib.contextmanager
def collector_time() -> Iterator[dict[str, float]]:
    """Time this process's cyclic garbage collector spent while the block ran, and how many
    collections it made (gc.callbacks)."""
    spent = {"seconds": 0.0, "collections": 0}
    began = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent["seconds"] += time.perf_counter() - began[0]
            spent["collections"] += 1

    gc.callbacks.append(note)
    try:
        yield spent
    finally:
        gc.callbacks.remove(note)


def infrastructure_cpu_seconds() -> dict[str, float]:
    """CPU time so far of the local PostgreSQL (every postgres process, and the backends
    that already ended, counted in the postmaster's children time) and of the Kafka broker
    (the java process running kafka.Kafka): they share the machine's two cores with the
    hop."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {"postgres": 0.0, "broker": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        if name == "postgres":
            found["postgres"] += (own + children) / ticks
        elif b"kafka.Kafka" in command:
            found["broker"] += own / ticks
    return found


def process_cpu_seconds() -> float:
    """CPU time (user + system) of this process so far: the hop's consumer, handler and
    relay all run in it, so the CPU it used per event bounds the hop's rate."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raw_confluent_relay(start: dict[TopicPartition, int], n: int) -> float:
    """The raw relay on librdkafka (confluent-kafka) alone: consume each record and produce
    one to the need topic (idempotent, acks=all), offsets committed per batch; seconds."""
    connection = operator()
    consumer = ConfluentConsumer(
        connection.confluent()
        | {"group.id": unique("bench-raw-confluent"), "enable.auto.commit": False}
    )
    producer = ConfluentProducer(
        connection.confluent() | {"enable.idempotence": True, "partitioner": "murmur2_random"}
    )
    try:
        consumer.assign(
            [ConfluentPartition(tp.topic, tp.partition, offset) for tp, offset in start.items()]
        )
        relayed = 0
        started = time.perf_counter()
        while relayed < n:
            batch = consumer.consume(num_messages=500, timeout=1.0)
            for record in batch:
                producer.produce(
                    NEED, value=record.value(), key=record.key(), headers=record.headers()
                )
            producer.flush(30)
            if batch:
                consumer.commit(asynchronous=False)
            relayed += len(batch)
        return time.perf_counter() - started
    finally:
        consumer.close()


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run whose time is the median of the runs' (the upper one of an even count)."""
    return sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]


def row(figure: str, value: str, **more: Any) -> dict[str, Any]:
    return {"figure": figure, "value": value, **more}


async def run(env: Any) -> dict[str, Any]:
    n = env.setting("events", 20_000)
    traced_all = env.setting("sampled_ratio", 1.0)  # what tracing every flow costs
    repeat = env.setting("repeat", 3)
    default = DEFAULT_RATIO
    batch = records(n)
    value_bytes = sum(len(v) for _, v, _ in batch) / n
    header_bytes = sum(sum(len(k) + len(v) for k, v in h) for _, _, h in batch) / n
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, **operator_auth(), enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    today = datetime.now(UTC).date().isoformat()
    flame = env.root / "bench" / "results" / f"{today}-hop-flame.svg"
    stacks = env.work / f"{today}-hop-stacks.txt"
    try:
        start = await end_offsets(HOUSEHOLD)
        produce_s = await produce_all(producer, HOUSEHOLD, batch)
        consume_s = await raw_consume(start, n)
        cpu = process_cpu_seconds()
        confluent_s = await asyncio.to_thread(raw_confluent_relay, start, n)
        confluent_cpu = process_cpu_seconds() - cpu
        # The machine's speed drifts by tens of percent from minute to minute: the raw relay
        # and the hops run in turns, `repeat` times, and the median run of each is reported.
        relays, hops, aparts = [], [], []
        for _ in range(repeat):
            cpu, others = process_cpu_seconds(), infrastructure_cpu_seconds()
            seconds = await raw_relay(start, n, producer)
            broker = infrastructure_cpu_seconds()["broker"] - others["broker"]
            relays.append(
                {"seconds": seconds, "cpu": process_cpu_seconds() - cpu, "broker": broker}
            )
            hops.append(
                await aidmesh_hop(records(n, traced=default), producer, trace_sample_ratio=default)
            )
            aparts.append(
                await aidmesh_hop(
                    records(n, traced=default),
                    producer,
                    trace_sample_ratio=default,
                    relay_apart=True,
                )
            )
        relay_s, relay_cpu = median_run(relays)["seconds"], median_run(relays)["cpu"]
        relay_broker = median_run(relays)["broker"]
        hop, apart = median_run(hops), median_run(aparts)
        all_traced = await aidmesh_hop(
            records(n, traced=traced_all), producer, trace_sample_ratio=traced_all
        )
        # Once more under py-spy, for the stage breakdown and the flame graph only: the
        # sampler pauses the process 200 times a second, so this run's rate is not reported.
        await aidmesh_hop(
            records(n, traced=default),
            producer,
            trace_sample_ratio=default,
            profile=(flame, stacks),
        )
    finally:
        await producer.stop()
    # The samples are of the event loop's thread: its stages are scaled to that thread's CPU
    # in the unprofiled run; librdkafka's threads are a line of their own.
    stages = breakdown(stacks, hop["main_thread_cpu_us_per_event"])
    stages.append(
        {
            "stage": "produce: librdkafka's own threads (C, not sampled)",
            "share": None,
            "cpu_us_per_event": round(hop["other_threads_cpu_us_per_event"], 1),
        }
    )
    rates = {
        "raw_produce_per_s": n / produce_s,
        "raw_consume_per_s": n / consume_s,
        "raw_relay_per_s": n / relay_s,
        "raw_confluent_relay_per_s": n / confluent_s,
        "aidmesh_hop_per_s": n / hop["seconds"],
        "aidmesh_hop_relay_apart_per_s": n / apart["seconds"],
        "aidmesh_hop_all_traced_per_s": n / all_traced["seconds"],
    }
    raw = rates["raw_relay_per_s"]
    ratio = rates["aidmesh_hop_per_s"] / raw
    apart_ratio = rates["aidmesh_hop_relay_apart_per_s"] / raw
    met = {"target": f">= {TARGET_RATIO}"}
    return {
        "events": n,
        "mean_value_bytes": round(value_bytes),
        "mean_header_bytes": round(header_bytes),
        **{k: round(v) for k, v in rates.items()},
        "hop_to_raw_relay_ratio": round(ratio, 3),
        "hop_relay_apart_to_raw_relay_ratio": round(apart_ratio, 3),
        "hop_to_raw_confluent_relay_ratio": round(
            rates["aidmesh_hop_per_s"] / rates["raw_confluent_relay_per_s"], 3
        ),
        "raw_relay_cpu_us_per_event": round(relay_cpu / n * 1e6),
        "raw_confluent_relay_cpu_us_per_event": round(confluent_cpu / n * 1e6),
        "raw_relay_broker_cpu_us_per_event": round(relay_broker / n * 1e6),
        "hop": {k: round(v, 2) for k, v in hop.items()},
        "hop_relay_apart": {k: round(v, 2) for k, v in apart.items()},
        "hop_all_traced": {k: round(v, 2) for k, v in all_traced.items()},
        "stages": stages,
        "runs_per_s": {
            "raw_relay": [round(n / r["seconds"]) for r in relays],
            "aidmesh_hop": [round(n / r["seconds"]) for r in hops],
            "aidmesh_hop_relay_apart": [round(n / r["seconds"]) for r in aparts],
        },
        "summary": {k: round(v) for k, v in rates.items()}
        | {"ratio": round(ratio, 3), "ratio_relay_apart": round(apart_ratio, 3)},
        "table": [
            row("raw aiokafka produce (acks=all)", f"{rates['raw_produce_per_s']:,.0f} events/s"),
            row("raw aiokafka consume", f"{rates['raw_consume_per_s']:,.0f} events/s"),
            row(
                "raw aiokafka consume-then-produce relay",
                f"{raw:,.0f} events/s, {relay_cpu / n * 1e6:,.0f} µs CPU per event",
            ),
            row(
                "raw confluent-kafka (librdkafka) relay",
                f"{rates['raw_confluent_relay_per_s']:,.0f} events/s,"
                f" {confluent_cpu / n * 1e6:,.0f} µs CPU per event",
            ),
            row(
                f"AidMesh hop, one process, {default:.0%} of flows traced (the default)",
                f"{rates['aidmesh_hop_per_s']:,.0f} events/s,"
                f" {hop['cpu_us_per_event']:,.0f} µs CPU per event",
            ),
            row("hop / raw aiokafka relay", f"{ratio:.3f}", **met, met=ratio >= TARGET_RATIO),
            row(
                "hop / raw confluent-kafka relay",
                f"{rates['aidmesh_hop_per_s'] / rates['raw_confluent_relay_per_s']:.3f}",
            ),
            row(
                f"AidMesh hop, relay as its own process, {default:.0%} traced",
                f"{rates['aidmesh_hop_relay_apart_per_s']:,.0f} events/s,"
                f" {apart['cpu_us_per_event']:,.0f} µs CPU per event (consumer"
                f" {apart['cpu_us_per_event'] - apart['relay_process_cpu_us_per_event']:,.0f},"
                f" relay {apart['relay_process_cpu_us_per_event']:,.0f})",
            ),
            row(
                "hop (relay apart) / raw aiokafka relay",
                f"{apart_ratio:.3f}",
                **met,
                met=apart_ratio >= TARGET_RATIO,
            ),
            row(
                "CPU per event across the machine: raw aiokafka relay",
                f"relay {relay_cpu / n * 1e6:,.0f} µs + broker {relay_broker / n * 1e6:,.0f} µs",
            ),
            row(
                "CPU per event across the machine: hop, one process",
                f"hop {hop['cpu_us_per_event']:,.0f} µs + PostgreSQL"
                f" {hop['postgres_cpu_us_per_event']:,.0f} µs + broker"
                f" {hop['broker_cpu_us_per_event']:,.0f} µs",
            ),
            row(
                "garbage collector in the hop (one process)",
                f"{hop['gc_us_per_event']:.1f} µs per event ({hop['gc_collections']:.0f}"
                f" collections for {n:,} events)",
            ),
            row(
                f"AidMesh hop, one process, {traced_all:.0%} of flows traced",
                f"{rates['aidmesh_hop_all_traced_per_s']:,.0f} events/s,"
                f" {all_traced['cpu_us_per_event']:,.0f} µs CPU per event",
            ),
            *(
                row(
                    f"stage: {stage['stage']}",
                    f"{stage['cpu_us_per_event']:.1f} µs per event"
                    + (f" ({stage['share']:.1%} of the samples)" if stage["share"] else ""),
                )
                for stage in stages
            ),
        ],
        "notes": [
            f"{n:,} HouseholdRegistered events, {value_bytes:.0f} B value + {header_bytes:.0f} B"
            " headers on average, 6 partitions; trace export off (spans are still made). Each"
            " event carries the traceparent registration's API gave its flow, sampled at the"
            f" share traced ({default:.0%} by default, AIDMESH_TRACE_SAMPLE_RATIO; later"
            " services follow it). The event loop is uvloop's, for the raw relays too.",
            f"The raw aiokafka relay and the two hops ran in turns, {repeat} times each; the"
            " median run of each is reported (every run's rate is in the JSON, runs_per_s).",
            "Every relay runs over a backlog already on the topic. The raw relays and the"
            " one-process hop each run in one Python process, busy nearly all the time: the"
            " rate is that process's CPU per event. With the relay apart (roles, ADR 0012), the"
            " hop's consumer runs in this process and its relay in bench/_relay.py; CPU per"
            " event is both processes'.",
            "CPU across the machine: PostgreSQL is every postgres process's CPU (ended backends"
            " through the postmaster's children time), the broker the java process running"
            " kafka.Kafka, both read from /proc over the same run; with the hop's process they"
            " share the machine's two cores (the kernel's own writeback is not counted). The"
            " garbage collector's time is measured with gc.callbacks in the hop's process.",
            f"Stages: a fourth run of the hop (one process, {default:.0%} traced) under py-spy"
            " at 200 Hz; each sample is given to the stage of its innermost frame that names"
            " one (bench/_stages.py), and a stage's CPU per event is its share of the samples"
            " times the event loop thread's CPU per event in the unprofiled run"
            f" ({hop['main_thread_cpu_us_per_event']:.0f} µs); librdkafka's C threads"
            f" ({hop['other_threads_cpu_us_per_event']:.0f} µs) are not sampled."
            f" Flame graph: [{flame.name}]({flame.name}).",
        ],
    }
