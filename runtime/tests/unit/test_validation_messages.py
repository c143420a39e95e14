"""Validation reasons read as a person should read them, in every service."""

from __future__ import annotations

from aidmesh_runtime.errors import validation_message


def test_a_validation_reason_reads_without_pydantics_prefix() -> None:
    assert validation_message({"msg": "Value error, size is 7 but 2 members are listed"}) == (
        "size is 7 but 2 members are listed"
    )
    assert validation_message({"msg": "Assertion failed, too many"}) == "too many"
    assert validation_message({"msg": "Field required"}) == "Field required"
