"""Every endpoint of health's API declares the scope it needs (none is open by mistake)."""

from __future__ import annotations

from aidmesh_health.app import build_app
from aidmesh_health.clinical import new_key
from aidmesh_health.settings import HealthSettings
from aidmesh_runtime.auth import unscoped_operations
from aidmesh_runtime.testing import isolated_settings


def test_every_endpoint_needs_a_scope() -> None:
    settings = isolated_settings(HealthSettings, clinical_key=new_key())

    assert unscoped_operations(build_app(settings)) == []
