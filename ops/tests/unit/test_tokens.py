"""`aidmesh token`: key pairs whose private half only the issuer can read, and tokens the
services' verifier accepts with exactly the principal, org and scopes asked for."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from aidmesh_ops import tokens
from aidmesh_ops.cli import app
from aidmesh_runtime.auth import TokenVerifier, keys_from_file
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_signing_key_in_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIDMESH_AUTH_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("AIDMESH_STATE_DIR", str(tmp_path / "state"))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key(tmp_path: Path) -> None:
    pair = tokens.keygen(tmp_path / "auth", "k7")

    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    assert pair.public_key.name == "k7.pem"
    assert list(keys_from_file(pair.public_key)) == ["k7"]


def test_keygen_refuses_to_replace_an_existing_key(tmp_path: Path) -> None:
    tokens.keygen(tmp_path, "k7")

    with pytest.raises(tokens.TokenError, match="exists already"):
        tokens.keygen(tmp_path, "k7")


def test_an_issued_token_is_accepted_by_a_service_holding_the_public_key(tmp_path: Path) -> None:
    pair = tokens.keygen(tmp_path, "k7")

    token = tokens.issue(
        sub="partner:ngo-dobro",
        org="NGO-DOBRO",
        scopes=["registration:intake registration:read"],
        key_file=pair.private_key,
    )

    principal = TokenVerifier(keys_from_file(pair.public_key)).verify(token)
    assert (principal.sub, principal.org) == ("partner:ngo-dobro", "NGO-DOBRO")
    assert principal.scopes == {"registration:intake", "registration:read"}


def test_without_a_configured_key_the_local_development_key_signs(tmp_path: Path) -> None:
    pair = tokens.keygen(tmp_path / "state" / "secrets" / "auth", tokens.LOCAL_KEY_ID)

    token = tokens.issue(sub="service:demo", org="IOM", scopes=["audit:read"])

    assert TokenVerifier(keys_from_file(pair.public_key)).verify(token).org == "IOM"


def test_unknown_scopes_bad_orgs_and_bad_ttls_are_refused() -> None:
    with pytest.raises(tokens.TokenError, match="unknown scope registration:all"):
        tokens.scopes_of(["registration:read registration:all"])
    with pytest.raises(tokens.TokenError, match="not an organisation code"):
        tokens.check_principal(sub="partner:x", org="ngo dobro")
    with pytest.raises(tokens.TokenError, match="TTL"):
        tokens.parse_ttl("1 week")
    assert tokens.parse_ttl("30d") == timedelta(days=30)
    with pytest.raises(tokens.TokenError, match="at most 90d"):
        tokens.parse_ttl("400d")


def test_the_cli_prints_only_the_token(tmp_path: Path) -> None:
    pair = tokens.keygen(tmp_path, "k7")

    result = runner.invoke(
        app,
        [
            *("token", "issue", "--sub", "user:officer-17", "--org", "IOM-REG"),
            *("--scope", "registration:read", "--scope", "registration:write", "--ttl", "15m"),
            *("--key-file", str(pair.private_key)),
        ],
    )

    assert result.exit_code == 0, result.output
    principal = TokenVerifier(keys_from_file(pair.public_key)).verify(result.stdout.strip())
    assert principal.scopes == {"registration:read", "registration:write"}


def test_the_cli_says_what_is_wrong_with_a_usage_error_or_a_missing_key() -> None:
    unknown = runner.invoke(
        app, ["token", "issue", "--sub", "x", "--org", "IOM", "--scope", "everything"]
    )
    no_key = runner.invoke(
        app, ["token", "issue", "--sub", "x", "--org", "IOM", "--scope", "audit:read"]
    )

    assert (unknown.exit_code, no_key.exit_code) == (2, 1)
    assert "unknown scope everything" in unknown.stderr
    assert "cannot read the signing key" in no_key.stderr
