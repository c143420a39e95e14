"""The hash chain: stable canonical bytes, and verify names the first broken entry."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

from aidmesh_audit.ledger import (
    GENESIS,
    BreakKind,
    ChainVerifier,
    Content,
    Entry,
    canonical,
    chain,
    entry_hash,
    next_entry,
    verify,
)

NOW = datetime(2026, 1, 15, 13, 30, tzinfo=UTC)
HOUSEHOLD = UUID("6f1c7a52-8e0e-4c35-9d3b-1f2a3b4c5d6e")


def content(n: int = 0, **overrides: Any) -> Content:
    ce_id = UUID(int=n + 1)
    return Content(
        **{
            "ce_id": ce_id,
            "ce_type": "org.aidmesh.registration.household.registered.v1",
            "ce_source": "/aidmesh/registration",
            "ce_subject": str(HOUSEHOLD),
            "ce_time": NOW + timedelta(seconds=n),
            "correlation_id": UUID(int=1),
            "causation_id": None,
            "topic": "aidmesh.registration.household.v1",
            "kafka_partition": 3,
            "kafka_offset": 100 + n,
            "payload": '{"household_id":"' + str(HOUSEHOLD) + '","size":4}',
            "received_at": NOW + timedelta(seconds=n, milliseconds=5),
        }
        | overrides
    )


def ledger(n: int) -> list[Entry]:
    return chain(content(i) for i in range(n))


def edited(entry: Entry, **changes: Any) -> Entry:
    """The entry with its content changed and its stored hash left as it was."""
    return replace(entry, content=replace(entry.content, **changes))


def test_the_first_entry_has_seq_1_and_chains_to_the_genesis_hash() -> None:
    first = next_entry(None, content())

    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert first.hash == hashlib.sha256(canonical(1, GENESIS, content())).hexdigest()


def test_each_entry_chains_to_the_hash_of_the_one_before() -> None:
    entries = ledger(3)

    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash


def test_canonical_bytes_are_sorted_compact_json_in_utc() -> None:
    assert canonical(7, GENESIS, content()) == (
        b'{"causation_id":null,"ce_id":"00000000-0000-0000-0000-000000000001",'
        b'"ce_source":"/aidmesh/registration","ce_subject":"' + str(HOUSEHOLD).encode() + b'",'
        b'"ce_time":"2026-01-15T13:30:00.000000+00:00",'
        b'"ce_type":"org.aidmesh.registration.household.registered.v1",'
        b'"correlation_id":"00000000-0000-0000-0000-000000000001",'
        b'"kafka_offset":100,"kafka_partition":3,'
        b'"payload":"{\\"household_id\\":\\"' + str(HOUSEHOLD).encode() + b'\\",\\"size\\":4}",'
        b'"prev_hash":"' + GENESIS.encode() + b'",'
        b'"received_at":"2026-01-15T13:30:00.005000+00:00","seq":7,'
        b'"topic":"aidmesh.registration.household.v1"}'
    )


def test_the_same_instant_in_another_time_zone_hashes_the_same() -> None:
    kyiv = timezone(timedelta(hours=2))

    in_kyiv = content(
        ce_time=NOW.astimezone(kyiv), received_at=content().received_at.astimezone(kyiv)
    )

    assert entry_hash(1, GENESIS, in_kyiv) == entry_hash(1, GENESIS, content())


def test_non_ascii_payload_text_is_hashed_as_utf8() -> None:
    payload = '{"note":"Харків"}'

    assert "Харків".encode() in canonical(1, GENESIS, content(payload=payload))


def test_every_field_of_the_content_is_covered_by_the_hash() -> None:
    base = entry_hash(1, GENESIS, content())
    changes: dict[str, Any] = {
        "ce_id": uuid4(),
        "ce_type": "org.aidmesh.shelter.case.opened.v1",
        "ce_source": "/aidmesh/shelter",
        "ce_subject": str(uuid4()),
        "ce_time": NOW + timedelta(microseconds=1),
        "correlation_id": uuid4(),
        "causation_id": uuid4(),
        "topic": "aidmesh.shelter.case.v1",
        "kafka_partition": 4,
        "kafka_offset": 101,
        "payload": '{"size":5}',
        "received_at": NOW,
    }
    for field, value in changes.items():
        assert entry_hash(1, GENESIS, content(**{field: value})) != base, field
    assert entry_hash(2, GENESIS, content()) != base
    assert entry_hash(1, "1" * 64, content()) != base


def test_an_intact_ledger_verifies_with_its_count_and_head() -> None:
    entries = ledger(5)

    verdict = verify(entries)

    assert verdict.intact
    assert verdict.entries == 5
    assert verdict.head == entries[-1]


def test_an_empty_ledger_is_intact() -> None:
    verdict = verify([])

    assert verdict.intact
    assert (verdict.entries, verdict.head) == (0, None)


def test_an_edited_payload_is_reported_at_its_seq_and_ce_id() -> None:
    entries = ledger(5)
    entries[2] = edited(entries[2], payload='{"household_id":"x","size":9}')

    verdict = verify(entries)

    assert verdict.broken is not None
    assert verdict.broken.kind is BreakKind.EDITED
    assert (verdict.broken.seq, verdict.broken.ce_id) == (3, entries[2].content.ce_id)
    assert verdict.entries == 2


def test_an_edited_envelope_attribute_is_reported() -> None:
    entries = ledger(4)
    entries[1] = edited(entries[1], ce_source="/aidmesh/someone-else")

    broken = verify(entries).broken

    assert broken is not None
    assert (broken.kind, broken.seq) == (BreakKind.EDITED, 2)


def test_a_deleted_entry_is_reported_as_the_missing_seq_before_the_next_entry() -> None:
    entries = ledger(5)
    deleted = entries.pop(2)

    broken = verify(entries).broken

    assert broken is not None
    assert broken.kind is BreakKind.DELETED
    assert broken.seq == deleted.seq == 3
    assert str(entries[2].content.ce_id) in broken.detail
    assert "seq 3 missing before seq 4" in broken.describe()


def test_several_deleted_entries_are_reported_as_a_range() -> None:
    entries = ledger(6)
    del entries[1:4]

    broken = verify(entries).broken

    assert broken is not None
    assert (broken.kind, broken.seq) == (BreakKind.DELETED, 2)
    assert "seq 2..4 missing" in broken.detail


def test_deleting_the_first_entry_is_reported() -> None:
    broken = verify(ledger(3)[1:]).broken

    assert broken is not None
    assert (broken.kind, broken.seq) == (BreakKind.DELETED, 1)


def test_two_swapped_entries_are_reported_as_reordered_at_the_first_position() -> None:
    entries = ledger(5)
    third, fourth = entries[2], entries[3]
    entries[2] = replace(fourth, seq=3)
    entries[3] = replace(third, seq=4)

    broken = verify(entries).broken

    assert broken is not None
    assert broken.kind is BreakKind.REORDERED
    assert (broken.seq, broken.ce_id) == (3, fourth.content.ce_id)
    assert "written as seq 4, found at seq 3" in broken.detail


def test_an_entry_moved_back_is_reported_as_reordered() -> None:
    entries = ledger(6)
    moved = entries.pop(1)
    entries = [replace(e, seq=i + 1) for i, e in enumerate([*entries[:3], moved, *entries[3:]])]

    broken = verify(entries).broken

    assert broken is not None
    assert broken.kind is BreakKind.REORDERED
    assert broken.seq == 2
    assert "written as seq 3" in broken.detail


def test_an_entry_rewritten_with_a_recomputed_hash_is_named_by_the_next_link() -> None:
    entries = ledger(5)
    forged = replace(entries[1].content, payload='{"size":1}')
    entries[1] = Entry(2, entries[1].prev_hash, entry_hash(2, entries[1].prev_hash, forged), forged)

    broken = verify(entries).broken

    assert broken is not None
    assert broken.kind is BreakKind.REWRITTEN
    assert (broken.seq, broken.ce_id) == (2, entries[1].content.ce_id)
    assert str(entries[2].content.ce_id) in broken.detail


def test_only_the_first_break_is_reported() -> None:
    entries = ledger(6)
    entries[4] = edited(entries[4], kafka_offset=1)
    entries[1] = edited(entries[1], kafka_offset=1)

    broken = verify(entries).broken

    assert broken is not None
    assert broken.seq == 2


def test_the_verifier_checks_a_stream_one_entry_at_a_time() -> None:
    verifier = ChainVerifier()
    entries = ledger(3)

    assert [verifier.check(e) for e in entries] == [None, None, None]
    assert verifier.verdict.entries == 3
    assert verifier.check(edited(next_entry(entries[-1], content(3)), payload="{}")) is not None
    assert verifier.verdict.entries == 3
