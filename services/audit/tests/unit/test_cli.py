"""The audit command line: a readable timeline tree, and clear exit codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from aidmesh_audit.cli import app, render_timeline
from aidmesh_audit.ledger import Content, chain
from rich.console import Console
from typer.testing import CliRunner

NOW = datetime(2026, 1, 15, 13, 30, tzinfo=UTC)
HOUSEHOLD = UUID("6f1c7a52-8e0e-4c35-9d3b-1f2a3b4c5d6e")


def content(n: int, ce_type: str, source: str, topic: str, caused_by: int | None) -> Content:
    return Content(
        ce_id=UUID(int=n),
        ce_type=ce_type,
        ce_source=source,
        ce_subject=str(HOUSEHOLD),
        ce_time=NOW + timedelta(minutes=n),
        correlation_id=UUID(int=1),
        causation_id=UUID(int=caused_by) if caused_by else None,
        topic=topic,
        kafka_partition=0,
        kafka_offset=n,
        payload="{}",
        received_at=NOW + timedelta(minutes=n),
    )


def test_the_timeline_prints_an_indented_causation_tree() -> None:
    entries = chain(
        [
            content(
                1,
                "org.aidmesh.registration.household.registered.v1",
                "/aidmesh/registration",
                "aidmesh.registration.household.v1",
                None,
            ),
            content(
                2,
                "org.aidmesh.assessment.need.assessed.v1",
                "/aidmesh/registration",
                "aidmesh.assessment.need.v1",
                1,
            ),
            content(
                3,
                "org.aidmesh.protection.case.opened.v1",
                "/aidmesh/protection",
                "aidmesh.protection.case.v1",
                2,
            ),
        ]
    )
    console = Console(width=200, record=True, color_system=None)

    console.print(render_timeline(HOUSEHOLD, entries))
    lines = console.export_text().splitlines()

    assert lines[0] == f"household {HOUSEHOLD}: 3 events"
    assert "registration.household.registered.v1 /aidmesh/registration" in lines[1]
    assert "assessment.need.assessed.v1" in lines[2]
    assert "protection.case.opened.v1 /aidmesh/protection (restricted)" in lines[3]
    indents = [len(line) - len(line.lstrip("│└├─ ")) for line in lines[1:]]
    assert indents == sorted(indents) and len(set(indents)) == 3  # each one level deeper


def test_verify_exits_3_when_the_database_cannot_be_reached() -> None:
    result = CliRunner().invoke(app, ["verify", "--dsn", "postgresql://nobody@127.0.0.1:1/none"])

    assert result.exit_code == 3
    assert "cannot read the audit ledger" in result.output
