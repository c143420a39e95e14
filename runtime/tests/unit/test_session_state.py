"""A pooled connection is reset on release only when it says it took session state
(aidmesh_runtime.db.ServiceConnection). This finds session-level SQL in the product's code
— a session advisory lock, LISTEN, a session SET, a temporary table, a prepared statement
or a cursor kept past its transaction — in a function that does not say so."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [
    ROOT / "runtime" / "src",
    *sorted((ROOT / "services").glob("*/src")),
    ROOT / "ops" / "src",
]

SESSION_LEVEL = re.compile(
    r"pg_(try_)?advisory_lock(_shared)?\s*\("  # the xact_ variants end with the transaction
    r"|add_listener\s*\(|\bLISTEN\s"
    r"|(^|;)\s*SET\s+(SESSION\s+)?(?!LOCAL\b)[a-z_.]+\s*(=|TO\b)"
    r"|set_config\([^)]*\bfalse\b"
    r"|\bCREATE\s+(TEMP|TEMPORARY)\s"
    r"|\bPREPARE\s+\w+\s+AS\b|\bWITH\s+HOLD\b",
    re.IGNORECASE | re.MULTILINE,
)
MARK = "holds_session_state("


def session_level_functions_without_the_mark() -> list[str]:
    found = []
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            if not SESSION_LEVEL.search(source):
                continue
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                body = ast.get_source_segment(source, node) or ""
                docstrings = {
                    id(n.value) for n in ast.walk(node) if isinstance(n, ast.Expr)
                }  # prose, not SQL
                texts = [
                    n.value
                    for n in ast.walk(node)
                    if isinstance(n, ast.Constant)
                    and isinstance(n.value, str)
                    and id(n) not in docstrings
                ] + [line for line in body.splitlines() if "add_listener" in line]
                if any(SESSION_LEVEL.search(text) for text in texts) and MARK not in body:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    return found


def test_every_function_taking_session_state_marks_its_connection() -> None:
    assert session_level_functions_without_the_mark() == []


def test_the_check_finds_session_level_sql(tmp_path: Path) -> None:
    assert SESSION_LEVEL.search("SELECT pg_try_advisory_lock(21062, hashtext($1))")
    assert SESSION_LEVEL.search("SET statement_timeout = 0")
    assert SESSION_LEVEL.search("SET SESSION work_mem TO '64MB'")
    assert SESSION_LEVEL.search("await conn.add_listener(CHANNEL, cb)")
    assert not SESSION_LEVEL.search("SET LOCAL synchronous_commit = off")
    assert not SESSION_LEVEL.search("SELECT pg_advisory_xact_lock(hashtext($1))")
    assert not SESSION_LEVEL.search("UPDATE outbox SET sent_at = now()")
