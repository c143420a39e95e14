"""Every endpoint of registration's API declares the scope it needs (none is open by
mistake), and a partner's intake scope opens nothing else."""

from __future__ import annotations

from typing import Any

from aidmesh_registration.app import build_app
from aidmesh_registration.crypto import new_kek
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_runtime.auth import unscoped_operations
from aidmesh_runtime.testing import isolated_settings
from fastapi import FastAPI


def app() -> FastAPI:
    return build_app(isolated_settings(RegistrationSettings, kek=new_kek("test")))


def test_every_endpoint_needs_a_scope() -> None:
    assert unscoped_operations(app()) == []


def test_the_intake_scope_opens_only_the_kobo_endpoint() -> None:
    spec: dict[str, Any] = app().openapi()

    opened = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if {"bearer": ["registration:intake"]} in operation.get("security", [])
    ]

    assert opened == ["POST /intake/kobo"]
