"""Every endpoint of shelter's API declares the scope it needs (none is open by mistake)."""

from __future__ import annotations

from aidmesh_runtime.auth import unscoped_operations
from aidmesh_runtime.testing import isolated_settings
from aidmesh_shelter.app import build_app
from aidmesh_shelter.settings import ShelterSettings


def test_every_endpoint_needs_a_scope() -> None:
    app = build_app(isolated_settings(ShelterSettings))

    assert unscoped_operations(app) == []


def test_reading_and_changing_need_different_scopes() -> None:
    spec = build_app(isolated_settings(ShelterSettings)).openapi()

    assert spec["paths"]["/cases"]["get"]["security"] == [{"bearer": ["shelter:read"]}]
    assert spec["paths"]["/facilities"]["post"]["security"] == [{"bearer": ["shelter:write"]}]
