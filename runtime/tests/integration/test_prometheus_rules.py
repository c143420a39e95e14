"""The alert rules as Prometheus reads them: promtool, from Debian's prometheus package
(which `make infra-up` installs), checks them and runs their unit tests
(deploy/local/prometheus-rules.test.yml: each alert fires when it should, and only then)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

LOCAL = Path(__file__).resolve().parents[3] / "deploy" / "local"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    assert path, "promtool not found: `make infra-up` installs Debian's prometheus package"
    return subprocess.run(
        [path, *args], capture_output=True, text=True, cwd=LOCAL, timeout=60, check=False
    )


def test_the_alert_rules_are_valid_for_prometheus() -> None:
    result = promtool("check", "rules", "prometheus-rules.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_alert_fires_when_its_condition_holds_and_not_before() -> None:
    result = promtool("test", "rules", "prometheus-rules.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
