"""The hash chain of the audit ledger. Pure: no database, no Kafka, no clock.

Every entry carries a global sequence number `seq` (1, 2, 3, ...), the hash of the entry
before it (`prev_hash`; the first entry points at GENESIS) and its own hash:

    hash = SHA-256(canonical(seq, prev_hash, content))

`canonical` is JSON with sorted keys, no whitespace, UTF-8, UUIDs as lowercase text and
times as UTC ISO 8601 with microseconds, so the same entry always gives the same bytes, in
any process and after a round trip through PostgreSQL. docs/adr/0005 says why the chain is
global rather than per partition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

GENESIS = "0" * 64
#: How far from its position `verify` looks for the seq an out-of-place entry was written at.
REORDER_PROBE = 1000


@dataclass(frozen=True)
class Content:
    """What one ledger entry records about one event: the envelope, where it was read, the
    payload JSON as text and when the audit service received it."""

    ce_id: UUID
    ce_type: str
    ce_source: str
    ce_subject: str | None
    ce_time: datetime
    correlation_id: UUID
    causation_id: UUID | None
    topic: str
    kafka_partition: int
    kafka_offset: int
    payload: str
    received_at: datetime


@dataclass(frozen=True)
class Entry:
    seq: int
    prev_hash: str
    hash: str
    content: Content


def _time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _uuid(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def canonical(seq: int, prev_hash: str, content: Content) -> bytes:
    """The bytes an entry's hash is computed over. Changing this invalidates every ledger."""
    document: dict[str, Any] = {
        "seq": seq,
        "prev_hash": prev_hash,
        "ce_id": _uuid(content.ce_id),
        "ce_type": content.ce_type,
        "ce_source": content.ce_source,
        "ce_subject": content.ce_subject,
        "ce_time": _time(content.ce_time),
        "correlation_id": _uuid(content.correlation_id),
        "causation_id": _uuid(content.causation_id),
        "topic": content.topic,
        "kafka_partition": content.kafka_partition,
        "kafka_offset": content.kafka_offset,
        "payload": content.payload,
        "received_at": _time(content.received_at),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def entry_hash(seq: int, prev_hash: str, content: Content) -> str:
    return hashlib.sha256(canonical(seq, prev_hash, content)).hexdigest()


def next_entry(previous: Entry | None, content: Content) -> Entry:
    """The entry that appends `content` after `previous` (None: the ledger is empty)."""
    seq = 1 if previous is None else previous.seq + 1
    prev_hash = GENESIS if previous is None else previous.hash
    return Entry(
        seq=seq, prev_hash=prev_hash, hash=entry_hash(seq, prev_hash, content), content=content
    )


def chain(contents: Iterable[Content], *, after: Entry | None = None) -> list[Entry]:
    """Append every content in order (a helper for tests and for rebuilding a ledger)."""
    entries: list[Entry] = []
    previous = after
    for content in contents:
        previous = next_entry(previous, content)
        entries.append(previous)
    return entries


class BreakKind(StrEnum):
    EDITED = "edited"  # the content changed after it was written (its hash no longer matches)
    DELETED = "deleted"  # entries are missing: a gap in seq
    REORDERED = "reordered"  # an intact entry sits at a seq other than the one it was written at
    REWRITTEN = "rewritten"  # an entry changed and its hash recomputed: the next link breaks


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold, named precisely."""

    kind: BreakKind
    seq: int
    ce_id: UUID | None
    detail: str

    def describe(self) -> str:
        who = f"seq {self.seq}" + (f" (ce_id {self.ce_id})" if self.ce_id else "")
        return f"{self.kind.value}: {who}: {self.detail}"


@dataclass(frozen=True)
class Verdict:
    entries: int
    head: Entry | None
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None


def _written_at(entry: Entry) -> int | None:
    """The seq near its position at which this entry's stored hash is valid, if any."""
    for distance in range(1, REORDER_PROBE + 1):
        for seq in (entry.seq + distance, entry.seq - distance):
            if seq >= 1 and entry_hash(seq, entry.prev_hash, entry.content) == entry.hash:
                return seq
    return None


class ChainVerifier:
    """Checks entries one at a time, in seq order; holds only the last good entry, so a
    ledger of any length can be streamed through it."""

    def __init__(self) -> None:
        self.head: Entry | None = None
        self.count = 0
        self.broken: Break | None = None

    def check(self, entry: Entry) -> Break | None:
        """The break this entry reveals (remembered), or None and the entry becomes the head."""
        if self.broken is None:
            self.broken = _first_break(self.head, entry)
            if self.broken is None:
                self.head = entry
                self.count += 1
        return self.broken

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.count, self.head, self.broken)


def verify(entries: Iterable[Entry]) -> Verdict:
    """Walk the chain in seq order; stop at the first break.

    A deletion of the newest entries leaves a valid, shorter chain; only a head recorded
    elsewhere (the seq and hash `verify` prints) can reveal it (see ADR 0005).
    """
    verifier = ChainVerifier()
    for entry in entries:
        if verifier.check(entry) is not None:
            break
    return verifier.verdict


def _first_break(previous: Entry | None, entry: Entry) -> Break | None:
    expected_seq = 1 if previous is None else previous.seq + 1
    expected_prev = GENESIS if previous is None else previous.hash
    ce_id = entry.content.ce_id
    if entry_hash(entry.seq, entry.prev_hash, entry.content) != entry.hash:
        written_at = _written_at(entry)
        if written_at is not None:
            return Break(
                BreakKind.REORDERED,
                entry.seq,
                ce_id,
                f"written as seq {written_at}, found at seq {entry.seq}",
            )
        return Break(BreakKind.EDITED, entry.seq, ce_id, "its content no longer matches its hash")
    if entry.seq != expected_seq:
        missing = (
            f"seq {expected_seq}"
            if entry.seq == expected_seq + 1
            else f"seq {expected_seq}..{entry.seq - 1}"
        )
        return Break(
            BreakKind.DELETED,
            expected_seq,
            None,
            f"{missing} missing before seq {entry.seq} (ce_id {ce_id})",
        )
    if entry.prev_hash != expected_prev:
        if previous is None:
            return Break(
                BreakKind.REWRITTEN,
                entry.seq,
                ce_id,
                "the first entry does not start from the genesis hash",
            )
        return Break(
            BreakKind.REWRITTEN,
            previous.seq,
            previous.content.ce_id,
            f"its hash was recomputed: seq {entry.seq} (ce_id {ce_id}) "
            "was chained to a different hash",
        )
    return None
