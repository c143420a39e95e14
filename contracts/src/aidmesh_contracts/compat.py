"""Are today's contracts backward compatible with the last release? Contracts only grow.

    python -m aidmesh_contracts.compat                   # exit 1 on a breaking change
    python -m aidmesh_contracts.compat snapshot 0.2.0    # at a release: freeze today's schemas

Each released JSON Schema (`aidmesh_contracts/released/v<version>/<event type>.json` in the
package, so the check runs from an installed wheel too; the newest version) is compared with the schema the models give today. Breaking, because a consumer
of either side would refuse or misread what the other side writes (topics keep history, so
new consumers read old events too):

- an event type removed (retire a type deliberately, with a new release, not by accident);
- a field removed, a field made required, a required field added;
- a type changed or narrowed: another JSON type, enum values or union variants removed, a
  pattern or format added or changed, a minimum raised or a maximum lowered, nullable made
  non-null, a const changed, unknown fields refused where they were allowed.

Compatible, and reported as such: a new event type (a new `.v2` next to `.v1` included), an
optional field added, and widenings (enum values or variants added, bounds relaxed, non-null
made nullable). A widening still reaches consumers whose models are strict before they
upgrade: release the contracts package to them first.
Annotations (title, description, examples, default) are not compared.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .schemas import expected_files

RELEASED_DIR = Path(__file__).resolve().parent / "released"
_VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")

Schema = dict[str, Any]

#: Bounds whose increase narrows what is accepted, and those whose decrease does.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


@dataclass(frozen=True)
class Change:
    event_type: str
    path: str
    kind: str
    detail: str
    breaking: bool

    def __str__(self) -> str:
        where = f"{self.event_type} {self.path}".rstrip()
        mark = "BREAKING" if self.breaking else "compatible"
        return f"{mark}: {where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


def compare(released: dict[str, Schema], current: dict[str, Schema]) -> list[Change]:
    """Every difference that matters between two sets of schemas keyed by event type."""
    changes = []
    for event_type in sorted(released.keys() | current.keys()):
        if event_type not in current:
            changes.append(Change(event_type, "", "event type removed", "", True))
        elif event_type not in released:
            changes.append(Change(event_type, "", "event type added", "", False))
        else:
            changes += compare_schema(event_type, released[event_type], current[event_type])
    return changes


def compare_schema(event_type: str, old: Schema, new: Schema) -> list[Change]:
    walker = _Walker(event_type, old, new)
    walker.node(old, new, "")
    return walker.changes


class _Walker:
    def __init__(self, event_type: str, old_root: Schema, new_root: Schema) -> None:
        self.event_type = event_type
        self.old_root = old_root
        self.new_root = new_root
        self.changes: list[Change] = []
        self._seen: set[tuple[str, str, str]] = set()

    def report(self, path: str, kind: str, detail: str = "", *, breaking: bool) -> None:
        self.changes.append(Change(self.event_type, path, kind, detail, breaking))

    def node(self, old: Any, new: Any, path: str) -> None:
        refs = (old.get("$ref", ""), new.get("$ref", ""), path)
        if refs[0] and refs[1]:
            if refs in self._seen:
                return  # a recursive model: this pair is being compared further up
            self._seen.add(refs)
        old, old_nullable = _split_null(_resolve(self.old_root, old), self.old_root)
        new, new_nullable = _split_null(_resolve(self.new_root, new), self.new_root)
        if old_nullable and not new_nullable:
            self.report(path, "nullable made non-null", breaking=True)
        elif new_nullable and not old_nullable:
            self.report(path, "non-null made nullable", breaking=False)
        if _variants(old) or _variants(new):
            self.union(old, new, path)
            return
        if not self.types(old, new, path):
            return
        self.constraints(old, new, path)
        if "properties" in old or "properties" in new:
            self.object(old, new, path)
        if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
            self.node(old["items"], new["items"], path + "[]")

    def types(self, old: Schema, new: Schema, path: str) -> bool:
        """False when the JSON type changed (nothing below it can be compared)."""
        old_types, new_types = _types(old), _types(new)
        if old_types is None or new_types is None or old_types <= new_types:
            if new_types is not None and old_types is None:
                self.report(path, "type narrowed", f"any -> {_show(new_types)}", breaking=True)
            return True
        if old_types == {"integer"} and new_types >= {"number"}:
            return True
        detail = f"{_show(old_types)} -> {_show(new_types)}"
        self.report(path, "type changed", detail, breaking=True)
        return False

    def constraints(self, old: Schema, new: Schema, path: str) -> None:
        if "const" in new and old.get("const", object()) != new["const"]:
            was = json.dumps(old["const"]) if "const" in old else "any value"
            self.report(
                path, "const changed", f"{was} -> {json.dumps(new['const'])}", breaking=True
            )
        self.enum(old, new, path)
        for keyword in ("pattern", "format", "multipleOf"):
            if keyword in new and old.get(keyword) != new[keyword]:
                detail = f"{old.get(keyword, 'none')} -> {new[keyword]}"
                self.report(path, f"{keyword} changed", detail, breaking=True)
            elif keyword in old and keyword not in new:
                self.report(path, f"{keyword} removed", str(old[keyword]), breaking=False)
        for keyword in _LOWER_BOUNDS:
            self.bound(old, new, path, keyword, narrower=lambda a, b: b > a)
        for keyword in _UPPER_BOUNDS:
            self.bound(old, new, path, keyword, narrower=lambda a, b: b < a)
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            self.report(path, "items made unique", breaking=True)

    def enum(self, old: Schema, new: Schema, path: str) -> None:
        if "enum" not in new:
            return
        if "enum" not in old:
            self.report(path, "enum added", ", ".join(map(str, new["enum"])), breaking=True)
            return
        removed = [v for v in old["enum"] if v not in new["enum"]]
        added = [v for v in new["enum"] if v not in old["enum"]]
        if removed:
            self.report(path, "enum values removed", ", ".join(map(str, removed)), breaking=True)
        if added:
            self.report(path, "enum values added", ", ".join(map(str, added)), breaking=False)

    def bound(self, old: Schema, new: Schema, path: str, keyword: str, *, narrower: Any) -> None:
        if keyword in new and (keyword not in old or narrower(old[keyword], new[keyword])):
            detail = f"{old.get(keyword, 'none')} -> {new[keyword]}"
            self.report(path, f"{keyword} narrowed", detail, breaking=True)
        elif keyword in old and old.get(keyword) != new.get(keyword):
            detail = f"{old[keyword]} -> {new.get(keyword, 'none')}"
            self.report(path, f"{keyword} relaxed", detail, breaking=False)

    def object(self, old: Schema, new: Schema, path: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        for name in old_props:
            field = f"{path}.{name}" if path else name
            if name not in new_props:
                self.report(field, "field removed", breaking=True)
                continue
            if name in new_required and name not in old_required:
                self.report(field, "field made required", breaking=True)
            self.node(old_props[name], new_props[name], field)
        for name in new_props:
            if name not in old_props:
                field = f"{path}.{name}" if path else name
                if name in new_required:
                    self.report(field, "required field added", breaking=True)
                else:
                    self.report(field, "optional field added", breaking=False)
        if (
            new.get("additionalProperties") is False
            and old.get("additionalProperties") is not False
        ):
            self.report(path, "unknown fields refused", breaking=True)

    def union(self, old: Schema, new: Schema, path: str) -> None:
        old_variants = {_variant_key(self.old_root, v): v for v in _variants(old) or [old]}
        new_variants = {_variant_key(self.new_root, v): v for v in _variants(new) or [new]}
        for key, variant in old_variants.items():
            if key not in new_variants:
                self.report(path, "variant removed", key, breaking=True)
            else:
                self.node(variant, new_variants[key], f"{path}<{key}>" if path else f"<{key}>")
        for key in new_variants.keys() - old_variants.keys():
            self.report(path, "variant added", key, breaking=False)


def _resolve(root: Schema, node: Any) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _split_null(node: Schema, root: Schema) -> tuple[Schema, bool]:
    """(the schema of a present value, whether null is also accepted)."""
    for keyword in ("anyOf", "oneOf"):
        options = node.get(keyword)
        if not options:
            continue
        others = [o for o in options if _resolve(root, o).get("type") != "null"]
        if len(others) == len(options):
            continue
        rest = {k: v for k, v in node.items() if k != keyword}
        if len(others) == 1:
            return {**rest, **_resolve(root, others[0])}, True
        return {**rest, keyword: others}, True
    types = node.get("type")
    if isinstance(types, list) and "null" in types:
        remaining = [t for t in types if t != "null"]
        return {**node, "type": remaining[0] if len(remaining) == 1 else remaining}, True
    return node, False


def _variants(node: Schema) -> list[Any]:
    return list(node.get("oneOf") or node.get("anyOf") or [])


def _variant_key(root: Schema, variant: Any) -> str:
    """How a union variant is recognised across versions: its discriminator const, or title."""
    resolved = _resolve(root, variant)
    for name, prop in resolved.get("properties", {}).items():
        prop = _resolve(root, prop)
        if "const" in prop:
            return f"{name}={prop['const']}"
    if "title" in resolved:
        return str(resolved["title"])
    return "|".join(sorted(_types(resolved) or {"any"}))


def _types(node: Schema) -> set[str] | None:
    kind = node.get("type")
    if kind is None:
        return (
            {"string"} if "enum" in node and all(isinstance(v, str) for v in node["enum"]) else None
        )
    return set(kind) if isinstance(kind, list) else {kind}


def _show(types: set[str]) -> str:
    return "|".join(sorted(types))


# ---- files and command -------------------------------------------------------------------


def released_versions(directory: Path = RELEASED_DIR) -> list[Path]:
    """Release snapshot folders, oldest first."""
    found = {}
    for path in directory.iterdir():
        match = _VERSION_DIR.match(path.name)
        if match and path.is_dir():
            found[tuple(int(n) for n in match.groups())] = path
    return [found[v] for v in sorted(found)]


def load_schemas(directory: Path) -> dict[str, Schema]:
    return {
        p.name.removesuffix(".json"): json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(directory.glob("*.json"))
    }


def current_schemas() -> dict[str, Schema]:
    return {name.removesuffix(".json"): json.loads(text) for name, text in expected_files().items()}


def check(directory: Path = RELEASED_DIR) -> tuple[str, list[Change]]:
    """(the release compared with, the changes since) against the newest release."""
    newest = released_versions(directory)[-1]
    return newest.name, compare(load_schemas(newest), current_schemas())


def snapshot(version: str, directory: Path = RELEASED_DIR) -> Path:
    target = directory / f"v{version.removeprefix('v')}"
    if not _VERSION_DIR.match(target.name):
        raise ValueError(f"{version!r} is not a version like 0.2.0")
    if target.exists():
        raise FileExistsError(f"{target} exists: a release is never rewritten")
    target.mkdir(parents=True)
    for name, text in expected_files().items():
        (target / name).write_text(text, encoding="utf-8")
    return target


def main(argv: list[str]) -> int:
    if len(argv) > 2 and argv[1] == "snapshot":
        print(f"wrote {snapshot(argv[2])}")
        return 0
    release, changes = check(RELEASED_DIR)
    breaking = [c for c in changes if c.breaking]
    for change in changes:
        print(change, file=sys.stderr if change.breaking else sys.stdout)
    if breaking:
        print(
            f"{len(breaking)} breaking change(s) since {release}: add a new .vN event type "
            "instead (both published during migration)",
            file=sys.stderr,
        )
        return 1
    print(f"contracts are backward compatible with {release} ({len(changes)} compatible change(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
