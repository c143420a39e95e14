"""The rules behind `aidmesh dlq` that need no broker: what was replayed, why a record was
dead-lettered, and how an untrusted value is shown."""

from __future__ import annotations

import json

import pytest
from aidmesh_ops.dlq import (
    MAX_METADATA_CHARS,
    ReasonClass,
    ReplayMark,
    offset_ranges,
    reason_class,
)
from aidmesh_ops.dlq_render import preview_value, printable, shown_bytes

# ---- the replay mark -------------------------------------------------------------------


def test_nothing_is_replayed_before_the_first_commit() -> None:
    mark = ReplayMark.from_commit(-1, "")

    assert not mark.covers(0)
    assert mark.pending(0, 5) == 5


def test_replaying_from_the_start_moves_the_committed_offset() -> None:
    mark = ReplayMark().with_replayed([0, 1, 2])

    assert mark == ReplayMark(committed=3)
    assert mark.metadata() == ""


def test_a_record_replayed_alone_is_remembered_above_the_committed_offset() -> None:
    mark = ReplayMark(committed=2).with_replayed([5, 7, 8, 9])

    assert [o for o in range(12) if mark.covers(o)] == [0, 1, 5, 7, 8, 9]
    assert mark.metadata() == "also=5,7-9"
    assert ReplayMark.from_commit(mark.committed, mark.metadata()) == mark
    assert mark.pending(0, 12) == 6


def test_the_committed_offset_catches_up_when_the_gap_is_replayed() -> None:
    mark = ReplayMark(committed=2, also=frozenset({3, 4, 6})).with_replayed([2])

    assert mark == ReplayMark(committed=5, also=frozenset({6}))


def test_purged_offsets_count_as_replayed() -> None:
    mark = ReplayMark(committed=0, also=frozenset({10})).with_replayed([11], low=10)

    assert mark == ReplayMark(committed=12)


def test_metadata_written_by_someone_else_is_ignored() -> None:
    assert ReplayMark.from_commit(4, "owned by kafka-consumer-groups") == ReplayMark(4)
    assert ReplayMark.from_commit(4, "also=x-y") == ReplayMark(4)


def test_too_many_scattered_offsets_forget_the_highest_never_the_committed_offset() -> None:
    scattered = range(10, 10 + 4000, 2)
    mark = ReplayMark(committed=3).with_replayed(scattered)

    metadata = mark.metadata()
    remembered = ReplayMark.from_commit(mark.committed, metadata)

    assert len(metadata) <= MAX_METADATA_CHARS
    assert remembered.committed == 3
    assert remembered.covers(10) and not remembered.covers(10 + 3998)


def test_offsets_read_as_ranges() -> None:
    assert offset_ranges([9, 0, 1, 2, 7, 10, 2]) == "0-2, 7, 9-10"


# ---- reason classes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exception", "reason", "value", "expected"),
    [
        ("PayloadError", "x payload invalid: (root): Invalid JSON", b"\xff\xfe", "bad bytes"),
        ("PayloadError", "x payload invalid: (root): Invalid JSON", b"a=1", "invalid JSON"),
        ("PayloadError", "x payload invalid: persons: Input should be", b"{}", "schema violation"),
        ("PayloadError", "record has no value", None, "no value"),
        ("UnknownEventType", "unknown event type 'org.x.v1'", b"{}", "unknown type"),
        ("EnvelopeError", "missing CloudEvents headers: ce_id", b"{}", "bad headers"),
        ("Rejected", "kit already delivered", b"{}", "business rule"),
        ("KeyError", "handler failed: KeyError('caps')", b"{}", "handler error"),
        (None, "", b"{}", "no dlq headers"),
    ],
)
def test_a_dead_letter_is_classed_by_its_exception_and_value(
    exception: str | None, reason: str, value: bytes | None, expected: str
) -> None:
    assert reason_class(exception=exception, reason=reason, value=value) == ReasonClass(expected)


# ---- showing untrusted bytes -----------------------------------------------------------


def test_json_is_pretty_printed() -> None:
    preview = preview_value(json.dumps({"household_id": "h-1", "persons": 4}).encode())

    assert preview.kind == "json"
    assert preview.text == '{\n  "household_id": "h-1",\n  "persons": 4\n}'


def test_a_big_text_value_is_cut_at_a_line() -> None:
    value = ("line of text\n" * 100_000).encode()

    preview = preview_value(value, max_chars=100)

    assert preview.kind == "text"
    assert preview.text == "\n".join(["line of text"] * 7)
    assert preview.note == "1,300,000 bytes; the first 90 characters shown"


def test_a_binary_value_is_shown_as_hex_and_escaped_bytes() -> None:
    preview = preview_value(b"\x00\xffPK" * 1000, hex_bytes=16)

    assert preview.kind == "binary"
    assert preview.text.startswith("00000000  00 ff 50 4b 00 ff 50 4b")
    assert "escaped: b'\\x00\\xffPK" in preview.text
    assert preview.note == "4,000 bytes, not UTF-8; the first 16 shown"


def test_terminal_control_characters_are_escaped() -> None:
    hostile = "ok\x1b[2J\x07\u202edenied\n"

    assert printable(hostile) == "ok\\x1b[2J\\x07\\u202edenied\n"
    assert shown_bytes(b"kobo\xff") == "b'kobo\\xff'"
    assert shown_bytes("Київ\x1b".encode()) == "Київ\\x1b"
