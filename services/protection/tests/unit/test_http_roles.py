"""Every endpoint of protection's API takes its caller from a bearer token with one
protection role (no header is believed)."""

from __future__ import annotations

from aidmesh_protection.app import build_app
from aidmesh_protection.crypto import new_data_key
from aidmesh_protection.settings import ProtectionSettings
from aidmesh_runtime.auth import PUBLIC_PATHS
from aidmesh_runtime.testing import isolated_settings


def test_every_endpoint_needs_a_bearer_token_and_takes_no_gateway_header() -> None:
    app = build_app(isolated_settings(ProtectionSettings, data_key=new_data_key("test")))
    spec = app.openapi()

    operations = [
        (path, operation)
        for path, methods in spec["paths"].items()
        if path not in PUBLIC_PATHS
        for operation in methods.values()
    ]
    assert len(operations) >= 14
    for path, operation in operations:
        assert operation["security"] == [{"bearer": []}], path
        assert {"401", "403"} <= set(operation["responses"]), path
        headers = {
            p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
        }
        assert not headers & {"x-aidmesh-user", "x-aidmesh-role"}, path
