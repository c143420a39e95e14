"""Every endpoint of the audit API declares the scope it needs (none is open by mistake)."""

from __future__ import annotations

from aidmesh_audit.app import build_app
from aidmesh_audit.settings import AuditSettings
from aidmesh_runtime.auth import unscoped_operations
from aidmesh_runtime.testing import isolated_settings


def test_every_endpoint_needs_a_scope() -> None:
    assert unscoped_operations(build_app(isolated_settings(AuditSettings))) == []
