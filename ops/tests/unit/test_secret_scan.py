"""The repository holds no secrets, and the scanner that says so finds planted ones.

The planted secrets are made while the tests run (random keys, a PEM header put together),
so that this file itself holds none.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from aidmesh_ops.secret_scan import (
    REPO_ROOT,
    is_ignored,
    scan_repository,
    scan_text,
    tracked_files,
)

PEM_HEADER = "-----BEGIN " + "PRIVATE KEY-----"
# Variable names and a password put together, so that no line of this file assigns one.
DATA_KEY = "AIDMESH_PROTECTION" + "_DATA_KEY"
KEK = "AIDMESH_REGISTRATION" + "_KEK"
CLINICAL_KEY = "AIDMESH_HEALTH" + "_CLINICAL_KEY"
SASL_PASSWORD = "AIDMESH_KAFKA_SASL" + "_PASSWORD"
DSN = "postgresql://app:" + "Tr0ub4dor3@db:5432/app"


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def found(text: str, path: str = "planted.txt") -> list[str]:
    return [f.what for f in scan_text(text, path)]


# ---- the repository ----------------------------------------------------------------------


def test_the_repository_holds_no_secrets() -> None:
    findings = scan_repository()

    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize(
    "path",
    [
        "var/secrets/protection-data-key",
        "var/secrets/registration-kek",
        "var/secrets/health-clinical-key",
        "var/secrets/auth/local1.key",
    ],
)
def test_where_deploy_local_writes_its_keys_is_ignored_by_git(path: str) -> None:
    assert is_ignored(REPO_ROOT, path)


def test_nothing_under_var_is_tracked() -> None:
    assert [p for p in tracked_files(REPO_ROOT) if p.startswith("var/")] == []


# ---- the scanner finds what is planted ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (f"{PEM_HEADER}\nMC4CAQAwBQYDK2VwBCIEI...\n", "a private key (PEM)"),
        (f"{DATA_KEY}=k1:{random_key()}", "a literal value"),
        (f"{SASL_PASSWORD}='hunter2hunter2'", "a literal value"),
        (f'  {KEK}: "kek1:abc"', "a literal value"),
        (f"${{{CLINICAL_KEY}:-abc}}", "a literal value"),
        (f"DATA_KEY = 'local1:{random_key()}'", "a 32-byte key"),
        (random_key(), "a 32-byte key"),
        (base64.urlsafe_b64encode(os.urandom(32)).decode(), "a 32-byte key"),
        (f"dsn = '{DSN}'", "a password in a URL"),
    ],
)
def test_a_planted_secret_is_found(text: str, what: str) -> None:
    findings = found(text)

    assert len(findings) >= 1, text
    assert findings[0].startswith(what)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (f'monkeypatch.setenv("{DATA_KEY}", "e2e:abc")', "test_x.py"),
        (f'env["{DATA_KEY}"] = "k1:abc"', "conftest.py"),
    ],
)
def test_a_literal_set_from_python_is_found(text: str, path: str) -> None:
    assert found(text, path) == ["a literal value for AIDMESH_PROTECTION_DATA_KEY"]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("export AIDMESH_PROTECTION_DATA_KEY_FILE=/run/secrets/data-key", "run.sh"),
        ("[[ -z ${AIDMESH_PROTECTION_DATA_KEY:-} ]] || return 0", "run.sh"),
        ("AIDMESH_PROTECTION_DATA_KEY=$(cat var/secrets/protection-data-key)", "run.sh"),
        ("AIDMESH_REGISTRATION_KEK=<kek id>:<base64 of 32 bytes>", "README.md"),
        ("| `AIDMESH_PROTECTION_DATA_KEY` (or `_FILE`) | none |", "README.md"),
        ('print(f"AIDMESH_AUTH_PUBLIC_KEYS={pair.public_line}")', "cli.py"),
        ('env[prefix + "DATA_KEY"] = key', "conftest.py"),
        ('"AIDMESH_PROTECTION_DATA_KEY": data_key,', "conftest.py"),
        ("postgresql://aidmesh_shelter:<password>@<host>:5432/aidmesh_shelter", "README.md"),
        ("postgresql://postgres@127.0.0.1:5433/postgres", "README.md"),
        ("sha256 = 'c2f8f0a1'; id = 550e8400-e29b-41d4-a716-446655440000", "uv.lock"),
        (base64.b64encode(os.urandom(33)).decode(), "x.txt"),  # not 32 bytes
    ],
)
def test_names_paths_placeholders_and_references_are_not_secrets(text: str, path: str) -> None:
    assert found(text, path) == []


def test_a_made_up_test_value_marked_not_a_secret_is_kept() -> None:
    assert found("dsn = 'postgresql://app:pw@db/app'  # not a secret: made up") == []
    assert found("# not a secret: made up\ndsn = 'postgresql://app:pw@db/app'") == []


def test_a_finding_names_the_file_and_line_never_the_value() -> None:
    key = random_key()

    [finding] = scan_text(f"line one\nAIDMESH_X_KEY={key}\n", "deploy/env")

    assert str(finding) == "deploy/env:2: a literal value for AIDMESH_X_KEY"
    assert key not in str(finding)


def test_the_repository_scan_finds_a_key_added_to_a_repository(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("/var/\n")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "env").write_text(f"{DATA_KEY}=k1:{random_key()}\n")
    (tmp_path / "signing.pem").write_text(f"{PEM_HEADER}\nabc\n")  # new, not yet added
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "key").write_text(random_key())  # ignored: never committed
    git("add", ".gitignore", "deploy/env")

    findings = sorted(str(f) for f in scan_repository(tmp_path))

    assert findings == [
        "deploy/env:1: a 32-byte key in base64 (a data key or KEK)",
        "deploy/env:1: a literal value for AIDMESH_PROTECTION_DATA_KEY",
        "signing.pem:1: a private key (PEM)",
    ]
