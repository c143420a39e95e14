"""A household's timeline: its events in ledger order and the causation tree between them.
Pure: built from ledger entries already read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aidmesh_contracts.catalogue import CATALOGUE, Sensitivity

from .ledger import Entry

#: Topics whose payloads the timeline withholds: who may read them is decided by the
#: protection service's access rules (not built yet), not by whoever can call audit.
RESTRICTED_TOPICS = frozenset(t.name for t in CATALOGUE if t.sensitivity is Sensitivity.RESTRICTED)


@dataclass
class Node:
    entry: Entry
    children: list[Node] = field(default_factory=list)


def causation_tree(entries: Sequence[Entry]) -> list[Node]:
    """Roots (events caused by nothing in `entries`) with what each caused, in ledger order."""
    nodes = {e.content.ce_id: Node(e) for e in entries}
    roots: list[Node] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        node = nodes[entry.content.ce_id]
        parent = nodes.get(entry.content.causation_id) if entry.content.causation_id else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    return roots


def describe_event(entry: Entry) -> dict[str, Any]:
    """One timeline item, as the API returns it."""
    content = entry.content
    restricted = content.topic in RESTRICTED_TOPICS
    return {
        "seq": entry.seq,
        "ce_id": str(content.ce_id),
        "type": content.ce_type,
        "source": content.ce_source,
        "subject": content.ce_subject,
        "time": content.ce_time.isoformat(),
        "correlation_id": str(content.correlation_id),
        "causation_id": str(content.causation_id) if content.causation_id else None,
        "topic": content.topic,
        "partition": content.kafka_partition,
        "offset": content.kafka_offset,
        "received_at": content.received_at.isoformat(),
        "restricted": restricted,
        "data": None if restricted else json.loads(content.payload),
    }


def tree_document(roots: Sequence[Node]) -> list[dict[str, Any]]:
    return [
        {
            "seq": node.entry.seq,
            "ce_id": str(node.entry.content.ce_id),
            "type": node.entry.content.ce_type,
            "source": node.entry.content.ce_source,
            "caused": tree_document(node.children),
        }
        for node in roots
    ]


def timeline_document(household_id: str, entries: Sequence[Entry]) -> dict[str, Any]:
    ordered = sorted(entries, key=lambda e: e.seq)
    return {
        "household_id": household_id,
        "events": [describe_event(e) for e in ordered],
        "causation_tree": tree_document(causation_tree(ordered)),
    }
