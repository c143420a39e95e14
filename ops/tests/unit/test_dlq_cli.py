"""`aidmesh dlq` refuses what it cannot do before touching the broker, and says why."""

from __future__ import annotations

from pathlib import Path

from aidmesh_ops.cli import app
from typer.testing import CliRunner

runner = CliRunner()
NO_BROKER = "127.0.0.1:1"


def test_replay_needs_offsets_or_all() -> None:
    result = runner.invoke(app, ["dlq", "replay", "aidmesh.need.v1.dlq", "--kafka", NO_BROKER])

    assert result.exit_code == 2
    assert "give --offset (one or more) or --all" in result.output


def test_replay_cannot_take_offsets_and_all() -> None:
    result = runner.invoke(
        app, ["dlq", "replay", "x.dlq", "--offset", "1", "--all", "--kafka", NO_BROKER]
    )

    assert result.exit_code == 2


def test_replay_all_without_a_terminal_refuses_without_yes() -> None:
    result = runner.invoke(app, ["dlq", "replay", "x.dlq", "--all", "--kafka", NO_BROKER])

    assert result.exit_code == 2
    assert "no terminal to ask on: add --yes" in result.stderr


def test_purge_without_a_terminal_refuses_without_yes() -> None:
    result = runner.invoke(app, ["dlq", "purge", "x.dlq", "--before", "3", "--kafka", NO_BROKER])

    assert result.exit_code == 2
    assert "no terminal to ask on: add --yes" in result.stderr


def test_an_unreachable_broker_is_named_with_how_to_start_the_local_one() -> None:
    env = {"AIDMESH_KAFKA_BOOTSTRAP": NO_BROKER}
    env["AIDMESH_OPS_KAFKA_PASSWORD"] = "unused"  # not a secret: the broker is never reached
    result = runner.invoke(app, ["dlq", "list"], env=env)

    assert result.exit_code == 1
    assert f"Kafka is not reachable at {NO_BROKER}" in result.stderr
    assert "`make infra-up` starts the local one" in result.stderr


def test_a_missing_kafka_password_is_named_with_where_it_was_looked_for(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["dlq", "list"],
        env={"AIDMESH_KAFKA_SECRETS_DIR": str(tmp_path), "AIDMESH_OPS_KAFKA_PASSWORD": ""},
    )

    assert result.exit_code == 1
    assert "no Kafka password for principal 'admin'" in result.stderr
    assert "AIDMESH_OPS_KAFKA_PASSWORD" in result.stderr
