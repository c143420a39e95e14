"""Contracts only grow: every breaking change against the release is found and named."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aidmesh_contracts import EVENT_TYPES, compat
from aidmesh_contracts.compat import (
    RELEASED_DIR,
    Change,
    check,
    compare,
    current_schemas,
    load_schemas,
    released_versions,
    snapshot,
)

HOUSEHOLD = "org.aidmesh.registration.household.registered.v1"
NEED = "org.aidmesh.assessment.need.assessed.v1"
REPAIR = "org.aidmesh.shelter.repair.completed.v1"
DELIVERED = "org.aidmesh.assistance.assistance.delivered.v1"

Schemas = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def released() -> Schemas:
    return load_schemas(released_versions()[-1])


@pytest.fixture
def current(released: Schemas) -> Schemas:
    """Today's schemas as a scratch copy of the release, to change."""
    return copy.deepcopy(released)


def breaking(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.event_type, c.path, c.kind) for c in changes if c.breaking]


def test_the_releases_are_0_1_0_and_0_2_0_which_holds_every_event_type() -> None:
    assert [p.name for p in released_versions()] == ["v0.1.0", "v0.2.0"]
    assert len(load_schemas(RELEASED_DIR / "v0.1.0")) == 7
    assert set(load_schemas(RELEASED_DIR / "v0.2.0")) == set(EVENT_TYPES)


def test_todays_contracts_are_compatible_with_the_last_release() -> None:
    release, changes = check()

    assert release == "v0.2.0"
    assert breaking(changes) == []


def test_identical_schemas_have_no_changes(released: Schemas, current: Schemas) -> None:
    assert compare(released, current) == []


# ---- each kind of breaking change is found and named ---------------------------------------


def remove_event_type(s: Schemas) -> None:
    del s[REPAIR]


def remove_a_field(s: Schemas) -> None:
    del s[HOUSEHOLD]["properties"]["displacement_status"]
    s[HOUSEHOLD]["required"].remove("displacement_status")


def add_a_required_field(s: Schemas) -> None:
    s[HOUSEHOLD]["properties"]["priority"] = {"type": "integer"}
    s[HOUSEHOLD]["required"].append("priority")


def make_an_optional_field_required(s: Schemas) -> None:
    s[HOUSEHOLD]["required"].append("partner_org")


def change_a_type(s: Schemas) -> None:
    s[HOUSEHOLD]["properties"]["size"]["type"] = "string"


def remove_an_enum_value(s: Schemas) -> None:
    s[HOUSEHOLD]["$defs"]["Channel"]["enum"].remove("kobo")


def change_a_pattern(s: Schemas) -> None:
    s[HOUSEHOLD]["$defs"]["Location"]["properties"]["adm1_pcode"]["pattern"] = "^UA\\d{3}$"


def lower_a_maximum(s: Schemas) -> None:
    s[HOUSEHOLD]["properties"]["size"]["maximum"] = 50


def raise_a_minimum(s: Schemas) -> None:
    s[DELIVERED]["properties"]["persons_reached"]["minimum"] = 1


def make_a_nullable_field_non_null(s: Schemas) -> None:
    s[HOUSEHOLD]["properties"]["partner_org"] = s[HOUSEHOLD]["properties"]["partner_org"]["anyOf"][
        0
    ]


def change_a_const(s: Schemas) -> None:
    s[REPAIR]["$defs"]["Money"]["properties"]["currency"]["const"] = "EUR"


def remove_a_union_variant(s: Schemas) -> None:
    details = s[NEED]["properties"]["details"]["anyOf"][0]
    details["oneOf"] = [v for v in details["oneOf"] if "Protection" not in v["$ref"]]


def add_a_format(s: Schemas) -> None:
    s[DELIVERED]["properties"]["unit"]["format"] = "email"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (remove_event_type, [(REPAIR, "", "event type removed")]),
        (remove_a_field, [(HOUSEHOLD, "displacement_status", "field removed")]),
        (add_a_required_field, [(HOUSEHOLD, "priority", "required field added")]),
        (make_an_optional_field_required, [(HOUSEHOLD, "partner_org", "field made required")]),
        (change_a_type, [(HOUSEHOLD, "size", "type changed")]),
        (remove_an_enum_value, [(HOUSEHOLD, "channel", "enum values removed")]),
        (change_a_pattern, [(HOUSEHOLD, "location.adm1_pcode", "pattern changed")]),
        (lower_a_maximum, [(HOUSEHOLD, "size", "maximum narrowed")]),
        (raise_a_minimum, [(DELIVERED, "persons_reached", "minimum narrowed")]),
        (make_a_nullable_field_non_null, [(HOUSEHOLD, "partner_org", "nullable made non-null")]),
        (change_a_const, [(REPAIR, "value.currency", "const changed")]),
        (remove_a_union_variant, [(NEED, "details", "variant removed")]),
        (add_a_format, [(DELIVERED, "unit", "format changed")]),
    ],
    ids=lambda v: v.__name__ if callable(v) else "",
)
def test_a_breaking_change_is_found_and_named(
    released: Schemas,
    current: Schemas,
    change: Callable[[Schemas], None],
    expected: list[tuple[str, str, str]],
) -> None:
    change(current)

    assert breaking(compare(released, current)) == expected


def test_refusing_unknown_fields_that_were_allowed_is_breaking() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string"}}}
    new = old | {"additionalProperties": False}

    assert breaking(compare({"t": old}, {"t": new})) == [("t", "", "unknown fields refused")]


def test_a_change_inside_a_union_variant_names_the_variant(
    released: Schemas, current: Schemas
) -> None:
    current[NEED]["$defs"]["ShelterNeedDetails"]["properties"]["damage_level"] = {
        "type": "string",
        "enum": ["light", "heavy"],
    }

    assert breaking(compare(released, current)) == [
        (NEED, "details<kind=shelter>.damage_level", "enum values removed")
    ]


def test_the_breaking_change_is_printed_in_words(released: Schemas, current: Schemas) -> None:
    remove_an_enum_value(current)

    (change,) = compare(released, current)

    assert str(change) == f"BREAKING: {HOUSEHOLD} channel: enum values removed (kobo)"


# ---- growth is fine --------------------------------------------------------------------


def test_a_new_event_type_is_compatible(released: Schemas, current: Schemas) -> None:
    current["org.aidmesh.example.thing.added.v1"] = {"type": "object"}

    assert compare(released, current) == [
        Change("org.aidmesh.example.thing.added.v1", "", "event type added", "", False)
    ]


def test_a_v2_next_to_the_v1_it_replaces_is_compatible(released: Schemas, current: Schemas) -> None:
    v2 = copy.deepcopy(current[HOUSEHOLD])
    del v2["properties"]["composition"]
    current[HOUSEHOLD.replace(".v1", ".v2")] = v2

    assert breaking(compare(released, current)) == []


def test_an_optional_field_added_is_compatible(released: Schemas, current: Schemas) -> None:
    current[HOUSEHOLD]["properties"]["hromada_name_en"] = {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
    }

    assert [(c.path, c.kind, c.breaking) for c in compare(released, current)] == [
        ("hromada_name_en", "optional field added", False)
    ]


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda s: s[HOUSEHOLD]["$defs"]["Channel"]["enum"].append("sms"), "enum values added"),
        (lambda s: s[HOUSEHOLD]["properties"]["size"].update(maximum=150), "maximum relaxed"),
        (
            lambda s: s[HOUSEHOLD]["properties"].update(
                size={"anyOf": [s[HOUSEHOLD]["properties"]["size"], {"type": "null"}]}
            ),
            "non-null made nullable",
        ),
        (lambda s: s[HOUSEHOLD]["properties"]["size"].pop("maximum"), "maximum relaxed"),
    ],
)
def test_a_widening_is_compatible_and_reported(
    released: Schemas, current: Schemas, change: Callable[[Schemas], None], kind: str
) -> None:
    change(current)

    changes = compare(released, current)

    assert [(c.kind, c.breaking) for c in changes] == [(kind, False)]


def test_annotations_are_not_compared(released: Schemas, current: Schemas) -> None:
    size = current[HOUSEHOLD]["properties"]["size"]
    size["description"] = "Members of the household."
    size["title"] = "Household size"
    size["examples"] = [3]

    assert compare(released, current) == []


# ---- releases and the command ------------------------------------------------------------


def test_the_newest_release_is_chosen_by_version_not_by_name(tmp_path: Path) -> None:
    for name in ("v0.9.0", "v0.10.0", "v0.2.1", "notes"):
        (tmp_path / name).mkdir()

    assert [p.name for p in released_versions(tmp_path)] == ["v0.2.1", "v0.9.0", "v0.10.0"]


def test_a_snapshot_freezes_todays_schemas_and_is_never_rewritten(tmp_path: Path) -> None:
    target = snapshot("0.2.0", tmp_path)

    assert target.name == "v0.2.0"
    assert load_schemas(target) == current_schemas()
    with pytest.raises(FileExistsError):
        snapshot("0.2.0", tmp_path)


def test_the_command_fails_on_a_breaking_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release = tmp_path / "v0.1.0"
    shutil.copytree(RELEASED_DIR / "v0.1.0", release)
    path = release / f"{HOUSEHOLD}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["properties"]["marital_status"] = {"type": "string"}  # released, gone today
    path.write_text(json.dumps(schema), encoding="utf-8")
    monkeypatch.setattr(compat, "RELEASED_DIR", tmp_path)

    assert compat.main(["compat"]) == 1
    assert f"BREAKING: {HOUSEHOLD} marital_status: field removed" in capsys.readouterr().err


def test_the_command_passes_today(capsys: pytest.CaptureFixture[str]) -> None:
    assert compat.main(["compat"]) == 0
    assert "backward compatible with v0.2.0" in capsys.readouterr().out
