"""Every running service answers GET /metrics, and the local Prometheus (started by
`make infra-up`) scrapes every service at its port and has loaded the alert rules.

What the counters say is tested in detail in runtime/tests/integration/test_metrics.py.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import httpx
import pytest
from aidmesh_ops.bootstrap import SERVICES
from aidmesh_runtime.settings import ServiceSettings
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e

PROMETHEUS = f"http://127.0.0.1:{os.environ.get('AIDMESH_PROMETHEUS_PORT', '9090')}"


def default_port(service: str) -> int:
    """The port a service listens on under `make up` (its settings' default)."""
    module = importlib.import_module(f"aidmesh_{service}.settings")
    [settings] = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value.service_name == service
    ]
    return settings.default_http_port


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_exposes_its_metrics_in_prometheus_text_format(
    platform: Any, http: httpx.AsyncClient, service: str
) -> None:
    response = await http.get(platform.url(service) + "/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, s.labels.get("service"))
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    # Read from the service's database at the scrape.
    assert ("aidmesh_outbox_backlog", service) in samples
    # This very request is counted only after it is answered; the readiness polls before it.
    assert ("aidmesh_http_requests_total", service) in samples


async def test_the_local_prometheus_scrapes_every_service_at_its_port(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(PROMETHEUS + "/api/v1/targets")
    assert response.status_code == 200, "is Prometheus running? make infra-up starts it"

    targets = {
        t["labels"]["service"]: t["scrapeUrl"]
        for t in response.json()["data"]["activeTargets"]
        if t["labels"].get("job") == "aidmesh"
    }
    assert targets == {s: f"http://127.0.0.1:{default_port(s)}/metrics" for s in SERVICES}


async def test_the_local_prometheus_has_loaded_the_alert_rules(http: httpx.AsyncClient) -> None:
    response = await http.get(PROMETHEUS + "/api/v1/rules")
    assert response.status_code == 200, "is Prometheus running? make infra-up starts it"

    alerts = {
        rule["name"]
        for group in response.json()["data"]["groups"]
        for rule in group["rules"]
        if rule["type"] == "alerting"
    }
    assert {"AidMeshDeadLettersGrowing", "AidMeshOutboxStuck", "AidMeshConsumerLagHigh"} <= alerts
