"""`aidmesh dlq`: list, inspect, replay and purge dead letters. The Kafka side; no printing.

A dead letter is the original record (value, key and headers untouched) plus the
`aidmesh_dlq_*` headers the runtime adds to say why it was refused (runtime/dlq.py).
Replaying one publishes the original record again, to its original topic, without the
`aidmesh_dlq_*` headers and with `aidmesh_replayed_from: <dlq-topic>:<offset>`, so the
fixed consumer handles it like the first time and an operator can trace where it came from.
The ce_id is unchanged, so a consumer's inbox still handles a replayed event once.

Which records were replayed is kept in Kafka: the committed offset of the consumer group
`aidmesh-dlq-replay` on each DLQ partition. Every offset below it was replayed; offsets
replayed one by one above it (`replay --offset 7` before `replay --all`) are listed in the
commit's metadata. Commits happen after each published batch, so an interrupted replay
replays at most one batch again next time, and the inbox skips those.

Every DLQ has one partition (runtime/topics.py), so a dead letter is named by its topic
and offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from aidmesh_contracts.catalogue import CATALOGUE
from aidmesh_contracts.topics import DLQ_SUFFIX, dlq_topic
from aidmesh_runtime.dlq import DLQ_HEADER_PREFIX
from aidmesh_runtime.kafka import operator_auth
from aidmesh_runtime.topics import MAX_MESSAGE_BYTES
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

REPLAY_GROUP = "aidmesh-dlq-replay"
REPLAYED_FROM_HEADER = "aidmesh_replayed_from"
DLQ_PARTITION = 0
#: A replayed record is its dead letter minus a few headers, and the DLQ topic accepted
#: that, so the topic's own limit plus room for the request's framing is always enough.
MAX_REQUEST_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
REPLAY_BATCH_RECORDS = 100
FETCH_RECORDS = 500
REPLAY_BATCH_BYTES = 32 * 1024 * 1024
CONNECT_TIMEOUT_S = 15.0
#: Reading gives up when no record arrives for this long although more are expected.
READ_STALL_S = 30.0
START_HINT = "`make infra-up` starts the local one"


class DlqError(Exception):
    """An operational problem, with a message written for the operator."""


class BrokerUnreachable(DlqError):
    pass


class UnknownTopic(DlqError):
    def __init__(self, name: str, *, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        hint = ""
        if not name.endswith(DLQ_SUFFIX) and dlq_topic(name) in known:
            hint = f" (did you mean {dlq_topic(name)}?)"
        listed = ", ".join(known) if known else "none; run `aidmesh infra bootstrap`"
        super().__init__(f"{name} is not a dead-letter topic{hint}. Dead-letter topics: {listed}")


class NotFound(DlqError):
    pass


class PurgeRefused(DlqError):
    pass


def catalogue_dlqs() -> list[str]:
    return [entry.dlq for entry in CATALOGUE]


# ---- what a dead letter is -------------------------------------------------------------


class ReasonClass(StrEnum):
    """Why a record was dead-lettered, coarsely, from its exception header (and value)."""

    BAD_BYTES = "bad bytes"
    INVALID_JSON = "invalid JSON"
    NO_VALUE = "no value"
    SCHEMA_VIOLATION = "schema violation"
    UNKNOWN_TYPE = "unknown type"
    BAD_HEADERS = "bad headers"
    REJECTED = "business rule"
    HANDLER_ERROR = "handler error"
    NOT_A_DEAD_LETTER = "no dlq headers"


def reason_class(*, exception: str | None, reason: str, value: bytes | None) -> ReasonClass:
    if exception is None:
        return ReasonClass.NOT_A_DEAD_LETTER
    if exception == "Rejected":
        return ReasonClass.REJECTED
    if exception == "UnknownEventType":
        return ReasonClass.UNKNOWN_TYPE
    if exception == "EnvelopeError":
        return ReasonClass.BAD_HEADERS
    if exception == "PayloadError":
        if value is None:
            return ReasonClass.NO_VALUE
        if not _is_utf8(value):
            return ReasonClass.BAD_BYTES
        if "Invalid JSON" in reason:
            return ReasonClass.INVALID_JSON
        return ReasonClass.SCHEMA_VIOLATION
    return ReasonClass.HANDLER_ERROR


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class DeadLetter:
    """One record of a DLQ topic. In listings `value` is not kept (None); `size` is."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    value: bytes | None
    size: int
    headers: Headers
    reason_class: ReasonClass
    replayed: bool

    @classmethod
    def of(cls, record: ConsumerRecord, *, replayed: bool, keep_value: bool = True) -> DeadLetter:
        headers = tuple((name, value or b"") for name, value in (record.headers or ()))
        found = dict(headers)
        exception = found.get("aidmesh_dlq_exception")
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=(
                datetime.fromtimestamp(record.timestamp / 1000, UTC)
                if record.timestamp is not None and record.timestamp >= 0
                else None
            ),
            key=record.key,
            value=record.value if keep_value else None,
            size=len(record.value) if record.value is not None else 0,
            headers=headers,
            reason_class=reason_class(
                exception=exception.decode("utf-8", "replace") if exception is not None else None,
                reason=found.get("aidmesh_dlq_reason", b"").decode("utf-8", "replace"),
                value=record.value,
            ),
            replayed=replayed,
        )

    def header(self, name: str) -> str | None:
        """The last value of a header, as text (undecodable bytes replaced)."""
        for header, value in reversed(self.headers):
            if header == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def reason(self) -> str | None:
        return self.header("aidmesh_dlq_reason")

    @property
    def exception(self) -> str | None:
        return self.header("aidmesh_dlq_exception")

    @property
    def service(self) -> str | None:
        return self.header("aidmesh_dlq_service")

    @property
    def original_topic(self) -> str | None:
        return self.header("aidmesh_dlq_topic")

    @property
    def original_partition(self) -> int | None:
        return _int(self.header("aidmesh_dlq_partition"))

    @property
    def original_offset(self) -> int | None:
        return _int(self.header("aidmesh_dlq_offset"))

    @property
    def ce_type(self) -> str | None:
        return self.header("ce_type")

    @property
    def ce_id(self) -> str | None:
        return self.header("ce_id")

    @property
    def replayed_from(self) -> str:
        return f"{self.topic}:{self.offset}"

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the original record had (the runtime only appended its own)."""
        return [(n, v) for n, v in self.headers if not n.startswith(DLQ_HEADER_PREFIX)]

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers plus where this replay came from. A record dead-lettered
        again after an earlier replay names only its latest DLQ position."""
        kept = [(n, v) for n, v in self.original_headers() if n != REPLAYED_FROM_HEADER]
        return [*kept, (REPLAYED_FROM_HEADER, self.replayed_from.encode())]

    def without_value(self) -> DeadLetter:
        return replace(self, value=None)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# ---- which records were replayed -------------------------------------------------------


#: The broker refuses commit metadata over `offset.metadata.max.bytes` (4096 by default).
MAX_METADATA_CHARS = 3000
_ALSO = "also="


@dataclass(frozen=True)
class ReplayMark:
    """Offsets of one DLQ partition already replayed: all below `committed`, and `also`."""

    committed: int = 0
    also: frozenset[int] = frozenset()

    def covers(self, offset: int) -> bool:
        return offset < self.committed or offset in self.also

    def with_replayed(self, offsets: Iterable[int], *, low: int = 0) -> ReplayMark:
        """This mark plus `offsets`. Offsets below `low` (purged) count as replayed."""
        committed = max(self.committed, low)
        also = {o for o in (*self.also, *offsets) if o >= committed}
        while committed in also:
            also.remove(committed)
            committed += 1
        return ReplayMark(committed, frozenset(also))

    def pending(self, low: int, high: int) -> int:
        """How many offsets in [low, high) are not replayed."""
        start = max(low, self.committed)
        return max(0, high - start) - sum(1 for o in self.also if start <= o < high)

    def metadata(self) -> str:
        """`also` as offset ranges. If they do not fit the broker's limit, the highest are
        forgotten: at worst `replay --all` publishes those again, and inboxes skip them."""
        runs = _runs(sorted(self.also))
        text = ",".join(_run_text(run) for run in runs)
        while len(text) > MAX_METADATA_CHARS - len(_ALSO):
            runs.pop()
            text = ",".join(_run_text(run) for run in runs)
        return _ALSO + text if text else ""

    @classmethod
    def from_commit(cls, offset: int, metadata: str | None) -> ReplayMark:
        """The mark a commit stands for; -1 (never committed) is "nothing replayed".
        Metadata we did not write is ignored."""
        also: set[int] = set()
        if metadata and metadata.startswith(_ALSO):
            try:
                for part in metadata.removeprefix(_ALSO).split(","):
                    first, _, last = part.partition("-")
                    also.update(range(int(first), int(last or first) + 1))
            except ValueError:
                also = set()
        return cls(committed=max(offset, 0)).with_replayed(also)


def _runs(offsets: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and offset == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], offset)
        elif not runs or offset != runs[-1][1]:
            runs.append((offset, offset))
    return runs


def _run_text(run: tuple[int, int]) -> str:
    return str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}"


def offset_ranges(offsets: Iterable[int]) -> str:
    """`0-3, 7, 9-10`: offsets the way an operator reads them."""
    return ", ".join(_run_text(run) for run in _runs(sorted(set(offsets))))


# ---- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DlqStats:
    topic: str
    low: int  # the first offset still stored
    high: int  # the offset the next dead letter gets
    mark: ReplayMark

    @property
    def records(self) -> int:
        return self.high - self.low

    @property
    def pending(self) -> int:
        return self.mark.pending(self.low, self.high)

    @property
    def replayed(self) -> int:
        return self.records - self.pending

    def holds(self, offset: int) -> bool:
        return self.low <= offset < self.high

    def span(self) -> str:
        return f"offsets {self.low}-{self.high - 1}" if self.records else "no records"


@dataclass(frozen=True)
class Listing:
    stats: list[DlqStats]
    missing: list[str]  # asked-for DLQ topics that do not exist on the broker
    reasons: Counter[ReasonClass]  # over every record matching the filter
    matched: int
    letters: list[DeadLetter]  # the newest of them (at most `limit`), oldest first


@dataclass(frozen=True)
class Skipped:
    offset: int
    reason: str
    #: Nothing is wrong (the record was replayed before); it does not make a replay fail.
    harmless: bool = False


@dataclass(frozen=True)
class ReplayPlan:
    stats: DlqStats
    offsets: list[int]  # to read and, if they are replayable, publish
    skipped: list[Skipped]  # known before reading anything
    everything: bool  # --all


@dataclass
class ReplayReport:
    topic: str
    dry_run: bool
    replayed: list[DeadLetter] = field(default_factory=list)  # without values
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    mark: ReplayMark | None = None

    @property
    def ok(self) -> bool:
        """Every selected record is now replayed (or was already)."""
        return not self.failed and all(s.harmless for s in self.skipped)


@dataclass(frozen=True)
class PurgePlan:
    stats: DlqStats
    before: int
    unreplayed: list[int]

    @property
    def deleting(self) -> int:
        return max(0, self.before - self.stats.low)


# ---- the broker ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connect(
    bootstrap: str,
    *,
    replay_group: str = REPLAY_GROUP,
    timeout_s: float = CONNECT_TIMEOUT_S,
    read_stall_s: float = READ_STALL_S,
) -> AsyncIterator[DlqClient]:
    """A client on the broker for the DLQ topics; BrokerUnreachable if there is none."""
    client = DlqClient(bootstrap, replay_group=replay_group, read_stall_s=read_stall_s)
    await client.start(timeout_s=timeout_s)
    try:
        yield client
    finally:
        await client.stop()


class DlqClient:
    def __init__(self, bootstrap: str, *, replay_group: str, read_stall_s: float) -> None:
        self._bootstrap = bootstrap
        self._group = replay_group
        self._read_stall_s = read_stall_s
        # One consumer reads (no subscription, no group membership) and, as a member of
        # nothing, commits the replay group's offsets; the admin client reads them back
        # with their metadata and deletes records.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            **operator_auth(),
            client_id="aidmesh-dlq",
            group_id=replay_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a purge under our feet moves us to what is left
            fetch_max_wait_ms=100,  # other requests on the connection queue behind a fetch
            max_partition_fetch_bytes=MAX_REQUEST_BYTES,
            fetch_max_bytes=2 * MAX_REQUEST_BYTES,
        )
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, **operator_auth(), client_id="aidmesh-dlq"
        )
        self._producer: AIOKafkaProducer | None = None

    async def start(self, *, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self._consumer.start()
                await self._admin.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.stop()
            raise BrokerUnreachable(
                f"Kafka is not reachable at {self._bootstrap} "
                f"({str(exc) or type(exc).__name__}). Is the broker running? {START_HINT}."
            ) from exc

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        await self._consumer.stop()
        await self._admin.close()

    # -- topics --

    async def _cluster(self) -> ClusterMetadata:
        # Fresh metadata of every topic; the consumer's own cache holds only assigned ones.
        return await self._consumer._client.fetch_all_metadata()  # type: ignore[no-any-return]

    async def _topics(self) -> set[str]:
        return set((await self._cluster()).topics())

    async def check(self, topic: str) -> str:
        """`topic` if it is a dead-letter topic on the broker; UnknownTopic otherwise."""
        cluster = await self._cluster()
        existing = cluster.topics()
        if not topic.endswith(DLQ_SUFFIX) or topic not in existing:
            raise UnknownTopic(topic, known=sorted(t for t in existing if t.endswith(DLQ_SUFFIX)))
        partitions = cluster.partitions_for_topic(topic) or set()
        if partitions != {DLQ_PARTITION}:
            raise DlqError(
                f"{topic} has {len(partitions)} partitions; dead-letter topics have one "
                "(as `aidmesh infra bootstrap` creates them)"
            )
        return topic

    async def stats(self, topic: str) -> DlqStats:
        tp = TopicPartition(topic, DLQ_PARTITION)
        low = (await self._consumer.beginning_offsets([tp]))[tp]
        high = (await self._consumer.end_offsets([tp]))[tp]
        return DlqStats(topic=topic, low=low, high=high, mark=await self._mark(tp))

    # -- reading --

    async def listing(
        self, topics: Sequence[str], *, service: str | None = None, limit: int = 20
    ) -> Listing:
        """Counts for each topic; reasons and the newest `limit` records matching `service`."""
        existing = await self._topics()
        present = [await self.check(t) for t in topics if t in existing]
        stats, reasons, matched = [], Counter[ReasonClass](), 0
        newest: list[DeadLetter] = []
        for topic in present:
            topic_stats = await self.stats(topic)
            stats.append(topic_stats)
            kept: deque[DeadLetter] = deque(maxlen=limit)
            async for record in self._scan(topic, topic_stats.low, topic_stats.high):
                letter = DeadLetter.of(
                    record, replayed=topic_stats.mark.covers(record.offset), keep_value=False
                )
                if service is not None and letter.service != service:
                    continue
                matched += 1
                reasons[letter.reason_class] += 1
                kept.append(letter)
            newest.extend(kept)
        newest.sort(key=lambda d: (d.timestamp or datetime.min.replace(tzinfo=UTC), d.topic))
        return Listing(
            stats=stats,
            missing=[t for t in topics if t not in existing],
            reasons=reasons,
            matched=matched,
            letters=newest[-limit:],
        )

    async def get(self, topic: str, offset: int) -> DeadLetter:
        stats = await self.stats(topic)
        if stats.holds(offset):
            async with contextlib.aclosing(self._fetch(topic, [offset])) as fetched:
                async for found, record in fetched:
                    if found == offset and record is not None:
                        return DeadLetter.of(record, replayed=stats.mark.covers(offset))
        raise NotFound(f"no record at offset {offset} of {topic} ({stats.span()})")

    async def _scan(self, topic: str, start: int, end: int) -> AsyncIterator[ConsumerRecord]:
        """Every record of the DLQ in [start, end), in order."""
        async for _, record in self._fetch(topic, range(start, end)):
            if record is not None:
                yield record

    async def _fetch(
        self, topic: str, offsets: Sequence[int]
    ) -> AsyncIterator[tuple[int, ConsumerRecord | None]]:
        """Each wanted offset (ascending) with its record, or None if there is none."""
        tp = TopicPartition(topic, DLQ_PARTITION)
        wanted = deque(offsets) if isinstance(offsets, range) else deque(sorted(set(offsets)))
        if not wanted:
            return
        self._consumer.assign([tp])
        try:
            async for found in self._fetch_assigned(tp, wanted):
                yield found
        finally:
            # An idle assignment keeps long-polling, and offset look-ups queue behind it.
            if tp in self._consumer.assignment():
                self._consumer.pause(tp)

    async def _fetch_assigned(
        self, tp: TopicPartition, wanted: deque[int]
    ) -> AsyncIterator[tuple[int, ConsumerRecord | None]]:
        topic = tp.topic
        position: int | None = None
        last_progress = time.monotonic()
        while wanted:
            target = wanted[0]
            if position is None or target < position or target - position > FETCH_RECORDS:
                self._consumer.seek(tp, target)
                position = target
            batch = await self._consumer.getmany(tp, timeout_ms=500, max_records=FETCH_RECORDS)
            records = batch.get(tp, [])
            if not records:
                position = await self._consumer.position(tp)
                if position > target:  # nothing at target (purged meanwhile)
                    while wanted and wanted[0] < position:
                        yield wanted.popleft(), None
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self._read_stall_s:
                    raise DlqError(
                        f"reading {topic} at offset {target} made no progress in "
                        f"{self._read_stall_s:.0f} s"
                    )
                continue
            last_progress = time.monotonic()
            for record in records:
                while wanted and wanted[0] < record.offset:
                    yield wanted.popleft(), None
                if wanted and wanted[0] == record.offset:
                    yield wanted.popleft(), record
                if not wanted:
                    break
            position = records[-1].offset + 1

    # -- replaying --

    async def plan_replay(
        self, topic: str, *, offsets: Sequence[int] | None = None, force: bool = False
    ) -> ReplayPlan:
        """What `replay` would read: `offsets`, or (None) every record not replayed yet.
        With `force`, records already replayed are replayed again."""
        stats = await self.stats(topic)
        selected: list[int] = []
        skipped: list[Skipped] = []
        if offsets is None:
            selected = [
                o for o in range(stats.low, stats.high) if force or not stats.mark.covers(o)
            ]
        else:
            for offset in sorted(set(offsets)):
                if not stats.holds(offset):
                    skipped.append(Skipped(offset, f"not in {topic} ({stats.span()})"))
                elif stats.mark.covers(offset) and not force:
                    skipped.append(Skipped(offset, "already replayed", harmless=True))
                else:
                    selected.append(offset)
        return ReplayPlan(
            stats=stats, offsets=selected, skipped=skipped, everything=offsets is None
        )

    async def replay(
        self,
        plan: ReplayPlan,
        *,
        dry_run: bool = False,
        on_progress: Callable[[int], None] = lambda done: None,
    ) -> ReplayReport:
        """Publish each planned record to its original topic; remember what was published.

        Stops after the first batch with a publish failure (what was published is still
        remembered), so a broker outage is not met with thousands of doomed sends.
        """
        topic = plan.stats.topic
        report = ReplayReport(topic=topic, dry_run=dry_run, skipped=list(plan.skipped))
        report.mark = plan.stats.mark
        existing = await self._topics()
        batch: list[DeadLetter] = []
        batch_bytes = 0
        attempted: set[int] = set()
        async with contextlib.aclosing(self._fetch(topic, plan.offsets)) as fetched:
            async for offset, record in fetched:
                attempted.add(offset)
                if record is None:
                    report.skipped.append(Skipped(offset, "no record at this offset"))
                    on_progress(1)
                    continue
                letter = DeadLetter.of(record, replayed=plan.stats.mark.covers(offset))
                problem = _unreplayable(letter, existing)
                if problem is not None:
                    report.skipped.append(Skipped(offset, problem))
                    on_progress(1)
                elif dry_run:
                    report.replayed.append(letter.without_value())
                    on_progress(1)
                else:
                    batch.append(letter)
                    batch_bytes += letter.size
                    if len(batch) >= REPLAY_BATCH_RECORDS or batch_bytes >= REPLAY_BATCH_BYTES:
                        await self._publish(batch, plan, report, on_progress)
                        batch, batch_bytes = [], 0
                        if report.failed:
                            break
        if batch:
            await self._publish(batch, plan, report, on_progress)
        for offset in plan.offsets:
            if offset not in attempted:
                report.failed.append(Skipped(offset, "not attempted after a publish failure"))
        return report

    async def _publish(
        self,
        batch: list[DeadLetter],
        plan: ReplayPlan,
        report: ReplayReport,
        on_progress: Callable[[int], None],
    ) -> None:
        producer = await self._replay_producer()
        sent: list[tuple[DeadLetter, asyncio.Future[object]]] = []
        for letter in batch:
            assert letter.original_topic is not None  # _unreplayable checked it
            try:
                future = await producer.send(
                    letter.original_topic,
                    value=letter.value,
                    key=letter.key,
                    headers=letter.replay_headers(),
                )
            except KafkaError as exc:
                report.failed.append(Skipped(letter.offset, f"publish failed: {exc!r}"))
                continue
            sent.append((letter, future))
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        done = []
        for (letter, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                report.failed.append(Skipped(letter.offset, f"publish failed: {result!r}"))
            else:
                done.append(letter.offset)
                report.replayed.append(letter.without_value())
        if done:
            assert report.mark is not None
            mark = report.mark.with_replayed(done, low=plan.stats.low)
            try:
                await self._commit(plan.stats.topic, mark)
            except KafkaError as exc:
                raise DlqError(
                    f"published {len(done)} records from {plan.stats.topic} "
                    f"(offsets {offset_ranges(done)}) but could not record that they were "
                    f"replayed ({exc!r}); `replay --all` would publish them again (consumers' "
                    "inboxes skip what they already handled)"
                ) from exc
            report.mark = mark
        on_progress(len(batch))

    async def _replay_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                **operator_auth(),
                client_id="aidmesh-dlq-replay",
                enable_idempotence=True,  # acks=all; a retried send is never duplicated
                max_request_size=MAX_REQUEST_BYTES,
                linger_ms=5,
                request_timeout_ms=30_000,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def _mark(self, tp: TopicPartition) -> ReplayMark:
        offsets = await self._admin.list_consumer_group_offsets(self._group, partitions=[tp])
        committed = offsets.get(tp)
        if committed is None:
            return ReplayMark()
        return ReplayMark.from_commit(committed.offset, committed.metadata)

    async def _commit(self, topic: str, mark: ReplayMark) -> None:
        tp = TopicPartition(topic, DLQ_PARTITION)
        if tp not in self._consumer.assignment():  # never reassign: it would lose our place
            self._consumer.assign([tp])
            self._consumer.pause(tp)
        await self._consumer.commit({tp: OffsetAndMetadata(mark.committed, mark.metadata())})

    # -- purging --

    async def plan_purge(self, topic: str, *, before: int) -> PurgePlan:
        stats = await self.stats(topic)
        if before > stats.high:
            raise DlqError(
                f"--before {before} is past the end of {topic}: "
                f"the next dead letter will get offset {stats.high}"
            )
        unreplayed = [o for o in range(stats.low, before) if not stats.mark.covers(o)]
        return PurgePlan(stats=stats, before=before, unreplayed=unreplayed)

    async def purge(self, plan: PurgePlan, *, force: bool = False) -> int:
        """Delete the records before `plan.before`; return the first offset left."""
        if plan.unreplayed and not force:
            raise PurgeRefused(
                f"refusing to purge {plan.stats.topic} before offset {plan.before}: "
                f"{len(plan.unreplayed)} of those records were never replayed (offsets "
                f"{offset_ranges(plan.unreplayed)}). Replay them first, or add --force to "
                "delete them anyway."
            )
        if plan.deleting == 0:
            return plan.stats.low
        tp = TopicPartition(plan.stats.topic, DLQ_PARTITION)
        low_watermarks = await self._admin.delete_records({tp: RecordsToDelete(plan.before)})
        return low_watermarks[tp]


def _unreplayable(letter: DeadLetter, existing: set[str]) -> str | None:
    """Why a dead letter cannot go back where it came from, or None if it can."""
    original = letter.original_topic
    if original is None:
        return "no aidmesh_dlq_topic header: not written by an AidMesh consumer"
    if dlq_topic(original) != letter.topic:
        return f"its aidmesh_dlq_topic {original!r} does not belong to {letter.topic}"
    if original not in existing:
        return f"its original topic {original} does not exist"
    return None
