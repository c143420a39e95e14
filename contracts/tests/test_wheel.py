"""The contracts wheel stands alone: integrators install it without any other AidMesh package.

Everything runs offline: uv builds with the cached build backend and installs the locked
wheels of the dependencies from its cache (filled by `uv sync`, which `make` runs first).
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFLINE = os.environ | {"UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}

DECODE_AN_EXAMPLE = """
import json
from datetime import datetime, timezone
from aidmesh_contracts import AssistanceDelivered, Envelope, decode
from aidmesh_contracts.envelope import new_envelope
from aidmesh_contracts.examples import example

payload = example(AssistanceDelivered.event_type)
event = AssistanceDelivered.model_validate(payload)
envelope = new_envelope(event, source="/partner/test", time=datetime.now(timezone.utc))
headers = Envelope.from_headers(envelope.to_headers())
decoded = decode(headers, json.dumps(payload).encode())
print(type(decoded).__name__, decoded.value.amount)
try:
    import aidmesh_runtime
except ModuleNotFoundError:
    print("no runtime")
"""


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def run(*args: str, cwd: Path = REPO_ROOT) -> str:
    done = subprocess.run(
        list(args), cwd=cwd, env=OFFLINE, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(*uv(), "build", "--package", "aidmesh-contracts", "--wheel", "-o", str(out), "-q")
    (built,) = out.glob("aidmesh_contracts-*.whl")
    return built


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_string(archive.read(name).decode())


def requirement_names(wheel: Path) -> set[str]:
    requirements = metadata(wheel).get_all("Requires-Dist") or []
    return {
        r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip()
        for r in requirements
    }


def test_the_wheel_depends_on_pydantic_and_pyyaml_only(wheel: Path) -> None:
    names = requirement_names(wheel)

    assert names == {"pydantic", "pyyaml"}
    assert not any(n.startswith("aidmesh") for n in names)


def test_the_wheel_holds_the_contracts_package_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packages = {n.split("/")[0] for n in archive.namelist() if not n.endswith("/")}

    assert {p for p in packages if not p.endswith(".dist-info")} == {"aidmesh_contracts"}


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The python of a fresh venv holding the wheel and its locked dependencies only."""
    work = tmp_path_factory.mktemp("installed")
    venv = work / "venv"
    # The locked dependencies as a PEP 751 lock: each wheel by its URL, which `uv sync`
    # cached. (A requirements file would name versions only, which offline needs the
    # index's pages in the cache for, and `uv sync --frozen` never fetches those.)
    locked = work / "pylock.toml"
    run(*uv(), "venv", "-q", "--python", sys.executable, str(venv))
    run(
        *uv(),
        "export",
        "--frozen",
        "--package",
        "aidmesh-contracts",
        "--no-dev",
        "--no-emit-workspace",
        "--format",
        "pylock.toml",
        "-q",
        "-o",
        str(locked),
    )
    python = str(venv / "bin" / "python")
    run(*uv(), "pip", "install", "-q", "--python", python, "-r", str(locked))
    run(*uv(), "pip", "install", "-q", "--python", python, "--no-deps", str(wheel))
    return python


def test_the_wheel_installs_alone_in_a_fresh_venv_and_decodes_an_example(
    installed: str, tmp_path: Path
) -> None:
    output = run(installed, "-c", DECODE_AN_EXAMPLE, cwd=tmp_path)

    assert output.splitlines() == ["AssistanceDelivered 4200.00", "no runtime"]


def test_the_installed_wheel_checks_compatibility_against_its_own_release(
    installed: str, tmp_path: Path
) -> None:
    # Away from the repository: nothing but the installed wheel can be imported.
    output = run(installed, "-m", "aidmesh_contracts.compat", cwd=tmp_path)

    assert "contracts are backward compatible with v" in output


LIST_SHIPPED = """
import importlib.resources, json
root = importlib.resources.files("aidmesh_contracts")
releases = sorted(p.name for p in (root / "released").iterdir())
newest = max(releases, key=lambda v: tuple(int(n) for n in v[1:].split(".")))
print(json.dumps({
    "schemas": sorted(p.name for p in (root / "json_schemas").iterdir()),
    "released": sorted(p.name for p in (root / "released" / newest).iterdir()),
}))
"""


def test_the_wheel_ships_every_schema_and_a_release_of_every_event_type(
    installed: str, tmp_path: Path
) -> None:
    from aidmesh_contracts import EVENT_TYPES

    shipped = json.loads(run(installed, "-c", LIST_SHIPPED, cwd=tmp_path))

    every_type = sorted(f"{event_type}.json" for event_type in EVENT_TYPES)
    assert shipped["released"] == every_type
    assert set(every_type) <= set(shipped["schemas"])
