"""The token issuer: key pairs and signed bearer tokens for the services' HTTP APIs.

Only the issuer holds a private key (`<kid>.key`, mode 600); services are given the public
key (`<kid>.pem`) and verify tokens with it (aidmesh_runtime.auth, ADR 0009). The key id
is the file name, so a new pair with a new kid rotates keys: services trust both while the
old tokens run out, then the old `.pem` is removed.

The signing key is `AIDMESH_AUTH_SIGNING_KEY_FILE`, else the local development key that
deploy/local/services.sh generates (`var/secrets/auth/local1.key`, under
AIDMESH_STATE_DIR when set). The demo and the end-to-end tests mint their tokens here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aidmesh_runtime import auth
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

LOCAL_KEY_ID = "local1"
_TTL = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class TokenError(Exception):
    """A token cannot be issued (no signing key, an unknown scope, a bad TTL): the reason."""


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_key: Path
    public_key: Path
    public_line: str  # the AIDMESH_AUTH_PUBLIC_KEYS form


def local_signing_key_file() -> Path:
    state = Path(os.environ.get("AIDMESH_STATE_DIR", "var"))
    return state / "secrets" / "auth" / f"{LOCAL_KEY_ID}.key"


def keygen(directory: Path, kid: str = LOCAL_KEY_ID) -> KeyPair:
    """Write a new Ed25519 pair: `<kid>.key` (private, mode 600) and `<kid>.pem` (public).
    Refuses to overwrite: replacing a key silently would invalidate every token of it."""
    if not auth.KEY_ID.fullmatch(kid):
        raise TokenError(f"key id {kid!r}: letters, digits, '.', '_', '-' only")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path, public_path = directory / f"{kid}.key", directory / f"{kid}.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise TokenError(f"{path} exists already: choose another --kid to rotate")
    key = Ed25519PrivateKey.generate()
    # Created 600 from the start (not chmod afterwards): never readable by others.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(auth.private_key_pem(key))
    public_path.write_bytes(auth.public_key_pem(key.public_key()))
    return KeyPair(
        kid=kid,
        private_key=private_path,
        public_key=public_path,
        public_line=auth.public_key_line(kid, key.public_key()),
    )


def signing_key(key_file: Path | None = None) -> tuple[str, Ed25519PrivateKey]:
    """The issuer's key and its id (the file name without `.key`)."""
    configured = key_file or os.environ.get("AIDMESH_AUTH_SIGNING_KEY_FILE")
    path = Path(configured) if configured else local_signing_key_file()
    try:
        data = path.read_bytes()
    except OSError as exc:
        hint = (
            ""
            if configured
            else " (set AIDMESH_AUTH_SIGNING_KEY_FILE, or run `deploy/local/services.sh start`,"
            " which generates the local key)"
        )
        raise TokenError(f"cannot read the signing key {path}: {exc.strerror}{hint}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise TokenError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TokenError(f"{path} is not an Ed25519 private key")
    kid = path.name.removesuffix(".key")
    if not auth.KEY_ID.fullmatch(kid):
        raise TokenError(f"{path}: the file name must be <kid>.key")
    return kid, key


def parse_ttl(text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `30d`."""
    match = _TTL.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise TokenError(f"TTL {text!r}: a number and s, m, h or d (e.g. 1h, 30d)")
    ttl = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if ttl > auth.MAX_TOKEN_LIFETIME:
        raise TokenError(f"TTL {text!r}: at most {auth.MAX_TOKEN_LIFETIME.days}d")
    return ttl


def scopes_of(values: Iterable[str]) -> list[str]:
    """Scopes given as repeated options or space-separated; each one from the catalogue."""
    scopes = sorted({s for value in values for s in value.split()})
    unknown = [s for s in scopes if s not in auth.SCOPES]
    if unknown:
        raise TokenError(
            f"unknown scope {', '.join(unknown)}; the scopes are: {', '.join(auth.SCOPES)}"
        )
    if not scopes:
        raise TokenError("a token needs at least one scope")
    return scopes


def check_principal(*, sub: str, org: str) -> None:
    if not sub.strip():
        raise TokenError("the subject (--sub) is empty")
    if not auth.is_org_code(org):
        raise TokenError(f"org {org!r} is not an organisation code (upper case, e.g. NGO-DOBRO)")


def issue(
    *,
    sub: str,
    org: str,
    scopes: Iterable[str],
    ttl: timedelta = timedelta(hours=1),
    key_file: Path | None = None,
    now: datetime | None = None,
) -> str:
    """A signed token for `sub`, attributed to `org`."""
    check_principal(sub=sub, org=org)
    kid, key = signing_key(key_file)
    return auth.sign_token(
        key=key,
        kid=kid,
        sub=sub,
        org=org,
        scopes=scopes_of(scopes),
        now=now or datetime.now(UTC),
        ttl=ttl,
    )


def bearer(
    *scopes: str, org: str = "IOM", sub: str = "service:demo", key_file: Path | None = None
) -> dict[str, str]:
    """`Authorization: Bearer <token>` headers, valid for an hour."""
    return {"Authorization": f"Bearer {issue(sub=sub, org=org, scopes=scopes, key_file=key_file)}"}
