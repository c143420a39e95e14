"""JSON Schema per event type, generated from the models and committed in the package
(`aidmesh_contracts/json_schemas/`, under contracts/src/ here): the wheel ships them.

python -m aidmesh_contracts.schemas write   # regenerate after changing a model
python -m aidmesh_contracts.schemas check   # exit 1 if the committed files are stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .base import EVENT_TYPES, Event
from .catalogue import CATALOGUE  # noqa: F401 - importing registers every event type
from .envelope import schema_uri

SCHEMA_DIR = Path(__file__).resolve().parent / "json_schemas"


def payload_schema(model: type[Event], **options: Any) -> dict[str, Any]:
    """The model's JSON Schema as code generators read it: Pydantic writes a `default` next
    to the `const` of a literal with a default (a variant's `kind`, Money's `currency`), and
    generators turn the pair into invalid code (`default=None, default='UAH'`). The const
    says it all, so the default goes (an annotation: validation is the same)."""
    schema: dict[str, Any] = _without_default_beside_const(
        model.model_json_schema(mode="serialization", **options)
    )
    return schema


def _without_default_beside_const(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_default_beside_const(value)
            for key, value in node.items()
            if not (key == "default" and "const" in node)
        }
    if isinstance(node, list):
        return [_without_default_beside_const(value) for value in node]
    return node


def render(event_type: str) -> str:
    model = EVENT_TYPES[event_type]
    schema = payload_schema(model)
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(event_type),
        "x-aidmesh-topic": model.topic,
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    return {f"{t}.json": render(t) for t in sorted(EVENT_TYPES)}


def stale_files(directory: Path = SCHEMA_DIR) -> list[str]:
    expected = expected_files()
    stale = [n for n, text in expected.items() if _read(directory / n) != text]
    orphans = [p.name for p in directory.glob("*.json") if p.name not in expected]
    return sorted(stale + orphans)


def write(directory: Path = SCHEMA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    expected = expected_files()
    for orphan in directory.glob("*.json"):
        if orphan.name not in expected:
            orphan.unlink()
    for name, text in expected.items():
        (directory / name).write_text(text, encoding="utf-8")


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "write":
        write()
        print(f"wrote {len(EVENT_TYPES)} schemas to {SCHEMA_DIR}")
        return 0
    stale = stale_files()
    if stale:
        print("stale JSON Schemas (run `make schemas`): " + ", ".join(stale), file=sys.stderr)
        return 1
    print(f"{len(EVENT_TYPES)} JSON Schemas are current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
