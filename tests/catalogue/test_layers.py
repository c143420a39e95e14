"""The layers contract `make lint` checks (pyproject.toml: a sector service's rooms) breaks
on a planted violation: a domain module that imports its service layer."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def repository_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return list(contract["layers"])


def check(tmp_path: Path, imports_of_domain: str) -> subprocess.CompletedProcess[str]:
    """lint-imports with the repository's layers, on a service package `planted` whose
    domain module has `imports_of_domain`."""
    package = tmp_path / "planted"
    package.mkdir()
    for module in ("__init__", "__main__", "app", "api", "handlers", "service", "repository"):
        (package / f"{module}.py").write_text("")
    (package / "domain.py").write_text(imports_of_domain)
    layers = ", ".join(f'"{layer}"' for layer in repository_layers())
    config = tmp_path / "importlinter.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["planted"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "layers"\ntype = "layers"\ncontainers = ["planted"]\n'
        f"layers = [{layers}]\n"
    )
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(tmp_path)},
        timeout=120,
    )


def test_a_domain_importing_its_service_layer_breaks_the_contract(tmp_path: Path) -> None:
    found = check(tmp_path, "from planted import service\n")

    assert found.returncode == 1, found.stdout + found.stderr
    assert "BROKEN" in found.stdout
    assert "planted.domain -> planted.service" in found.stdout


def test_a_pure_domain_keeps_it(tmp_path: Path) -> None:
    found = check(tmp_path, "from datetime import date\n")

    assert found.returncode == 0, found.stdout + found.stderr
