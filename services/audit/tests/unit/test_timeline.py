"""A household timeline: ledger order, causation parents, and a causation tree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aidmesh_audit.ledger import Content, chain
from aidmesh_audit.timeline import causation_tree, timeline_document

NOW = datetime(2026, 1, 15, 13, 30, tzinfo=UTC)
HOUSEHOLD = "6f1c7a52-8e0e-4c35-9d3b-1f2a3b4c5d6e"


def content(
    n: int, *, caused_by: int | None, topic: str = "aidmesh.shelter.case.v1", **more: Any
) -> Content:
    return Content(
        **{
            "ce_id": UUID(int=n),
            "ce_type": f"org.aidmesh.test.thing.happened{n}.v1",
            "ce_source": "/aidmesh/tests",
            "ce_subject": HOUSEHOLD,
            "ce_time": NOW + timedelta(seconds=n),
            "correlation_id": UUID(int=1),
            "causation_id": UUID(int=caused_by) if caused_by else None,
            "topic": topic,
            "kafka_partition": 0,
            "kafka_offset": n,
            "payload": '{"n":' + str(n) + "}",
            "received_at": NOW + timedelta(seconds=n),
        }
        | more
    )


def test_the_tree_nests_each_event_under_the_event_that_caused_it_in_ledger_order() -> None:
    # 1 registered → 2 need, 3 need; 2 → 4 case opened; 3 → 5 visit
    entries = chain(
        [
            content(1, caused_by=None),
            content(2, caused_by=1),
            content(3, caused_by=1),
            content(4, caused_by=2),
            content(5, caused_by=3),
        ]
    )

    [root] = causation_tree(entries)

    assert root.entry.content.ce_id == UUID(int=1)
    assert [c.entry.content.ce_id.int for c in root.children] == [2, 3]
    assert [c.entry.content.ce_id.int for c in root.children[0].children] == [4]
    assert [c.entry.content.ce_id.int for c in root.children[1].children] == [5]


def test_an_event_whose_cause_is_not_in_the_timeline_is_a_root() -> None:
    entries = chain([content(1, caused_by=None), content(2, caused_by=99)])

    assert [r.entry.content.ce_id.int for r in causation_tree(entries)] == [1, 2]


def test_the_document_lists_events_in_seq_order_with_their_causation_parent() -> None:
    entries = chain([content(1, caused_by=None), content(2, caused_by=1)])

    document = timeline_document(HOUSEHOLD, list(reversed(entries)))

    assert [e["seq"] for e in document["events"]] == [1, 2]
    assert document["events"][1]["causation_id"] == str(UUID(int=1))
    assert document["events"][0]["data"] == {"n": 1}
    assert document["causation_tree"][0]["caused"][0]["ce_id"] == str(UUID(int=2))


def test_payloads_of_restricted_topics_are_withheld() -> None:
    entries = chain([content(1, caused_by=None, topic="aidmesh.protection.case.v1")])

    [event] = timeline_document(HOUSEHOLD, entries)["events"]

    assert event["restricted"] is True
    assert event["data"] is None
