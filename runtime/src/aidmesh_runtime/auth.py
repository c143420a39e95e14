"""Who is calling: signed bearer tokens and a scope per endpoint ([ADR 0009]).

A token is a JWT signed with Ed25519 (`alg: EdDSA`) by the issuer (`aidmesh token issue`,
aidmesh_ops.tokens), the only holder of the private key. Services hold only public keys,
by key id (`kid` in the token's header), so a compromised service cannot mint a token and
keys rotate by adding a new kid before retiring the old one.

Claims: `iss` and `aud` "aidmesh"; `sub` the principal (`partner:ngo-dobro`,
`user:officer-17`, `service:demo`); `org` the organisation code its calls are attributed to;
`scope` space-separated (OAuth style); `iat`, `exp`, `jti`.

Endpoints declare what they need with `require_scope(...)`; every route of a service's
router needs at least a valid token (create_service_app adds `authenticate` to all of
them). A missing or invalid token answers 401 naming the reason, a missing scope 403 naming
the scope. The token itself is never logged; the principal's `sub` and `org` are bound to
the request's log lines.

What a call records is attributed to the token's `org`: `attributed(...)` gives the org of
a body field naming who did or recorded the work, and refuses (403) a body naming another
one, unless the token holds the service's `...:record-for-partners` scope.

[ADR 0009]: docs/adr/0009-http-auth-signed-tokens.md
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import uuid4

import jwt
import structlog
from aidmesh_contracts.common import OrgCode
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from pydantic import TypeAdapter, ValidationError

if TYPE_CHECKING:
    from .settings import ServiceSettings

log = structlog.get_logger(__name__)

ISSUER = "aidmesh"
AUDIENCE = "aidmesh"
ALGORITHM = "EdDSA"
#: Clock skew tolerated between the issuer and a service (on `exp` and `iat`).
LEEWAY_S = 30

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ORG_CODE: TypeAdapter[str] = TypeAdapter(OrgCode)

# ---- scopes ---------------------------------------------------------------------------
# The catalogue of scopes, least privilege: each endpoint needs one; the issuer refuses
# names not listed here (a typo would otherwise make a token that opens nothing).

REGISTRATION_READ = "registration:read"
REGISTRATION_READ_ALL = "registration:read-all"
REGISTRATION_WRITE = "registration:write"
REGISTRATION_INTAKE = "registration:intake"
REGISTRATION_REVIEW = "registration:review"
REGISTRATION_ERASE = "registration:erase"
REGISTRATION_PAYMENT_FILES = "registration:payment-files"
REGISTRATION_ASSISTANCE_LISTS = "registration:assistance-lists"
SHELTER_READ = "shelter:read"
SHELTER_WRITE = "shelter:write"
SHELTER_RECORD_FOR_PARTNERS = "shelter:record-for-partners"
HEALTH_READ = "health:read"
HEALTH_WRITE = "health:write"
HEALTH_RECORD_FOR_PARTNERS = "health:record-for-partners"
PROTECTION_CASEWORKER = "protection:caseworker"
PROTECTION_SUPERVISOR = "protection:supervisor"
PROTECTION_AUDITOR = "protection:auditor"
CASH_READ = "cash:read"
CASH_WRITE = "cash:write"
CASH_APPROVE = "cash:approve"
AUDIT_READ = "audit:read"

SCOPES: Mapping[str, str] = {
    REGISTRATION_READ: "Read households, consents and intake submissions (personal data):"
    " those the token's org registered or submitted, and households that consented to data"
    " sharing.",
    REGISTRATION_READ_ALL: "With registration:read: every household and submission, whoever"
    " registered it (IOM's registration staff; never a partner's token).",
    REGISTRATION_WRITE: "Register and update households, record and withdraw consent,"
    " re-map a rejected submission.",
    REGISTRATION_INTAKE: "Send KoboToolbox submissions, attributed to the token's org, and"
    " read what became of the org's own submissions.",
    REGISTRATION_REVIEW: "Read the duplicate review queue; merge and dismiss.",
    REGISTRATION_ERASE: "Erase a household's personal data.",
    REGISTRATION_PAYMENT_FILES: "Download a financial service provider's payment file for an"
    " approved cash cycle (payees' personal data: names, documents, bank accounts).",
    REGISTRATION_ASSISTANCE_LISTS: "Submit another agency's list of assisted people (keyed"
    " hashes of document numbers) to find the households it overlaps.",
    SHELTER_READ: "Read shelter cases, facilities, deliveries and monitoring.",
    SHELTER_WRITE: "Assess, plan and complete repairs; deliver kits and rent; monitor.",
    SHELTER_RECORD_FOR_PARTNERS: "With shelter:write: name another organisation or team"
    " (partner_org, assessed_by, monitored_by) as the one that did the work.",
    HEALTH_READ: "Read teams, visits, referrals and capacity.",
    HEALTH_WRITE: "Create teams; complete, miss and reschedule visits; refer; schedule.",
    HEALTH_RECORD_FOR_PARTNERS: "With health:write: name another organisation (partner_org)"
    " as the one that delivered a visit's services.",
    PROTECTION_CASEWORKER: "Protection: a caseworker (their own cases).",
    PROTECTION_SUPERVISOR: "Protection: a supervisor (every case, approvals).",
    PROTECTION_AUDITOR: "Protection: an auditor (metadata and the access log only).",
    CASH_READ: "Read cash entitlements (with their explanation), cycles, their lists and"
    " providers' reports.",
    CASH_WRITE: "Open payment cycles and import providers' reports (a programme officer).",
    CASH_APPROVE: "Approve a payment cycle another person opened (four-eyes rule).",
    AUDIT_READ: "Read the audit ledger's household timelines.",
}

#: What answers without a token, on purpose: probes, metrics and the API's description.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)


class AuthConfigError(Exception):
    """The service cannot verify tokens (no public key, or an unusable one): it does not
    start, rather than serve its API unauthenticated."""


class InvalidToken(Exception):
    """A token this service does not accept; the message is the reason the caller gets."""


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    sub: str
    org: str
    scopes: frozenset[str]
    token_id: str

    def has(self, scope: str) -> bool:
        return scope in self.scopes


# ---- keys -----------------------------------------------------------------------------


def public_key_line(kid: str, key: Ed25519PublicKey) -> str:
    """`<kid>:<base64 of the 32-byte public key>`, the inline form of AIDMESH_AUTH_PUBLIC_KEYS."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{kid}:{base64.b64encode(raw).decode()}"


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _kid(kid: str, where: str) -> str:
    if not KEY_ID.fullmatch(kid):
        raise AuthConfigError(f"{where}: key id {kid!r} is not letters, digits, '.', '_', '-'")
    return kid


def _read_public_pem(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the public key file {path}: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        raise AuthConfigError(
            f"{path} holds a private key: services hold only public keys (the issuer alone"
            " signs); give the <kid>.pem written next to it by `aidmesh token keygen`"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise AuthConfigError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuthConfigError(f"{path} is not an Ed25519 public key")
    return key


def keys_from_file(path: Path) -> dict[str, Ed25519PublicKey]:
    """A `<kid>.pem` public key file, or a directory of them (every `*.pem`; the file name
    without `.pem` is the key id)."""
    if path.is_dir():
        files = sorted(path.glob("*.pem"))
        if not files:
            raise AuthConfigError(f"no <kid>.pem public key in the directory {path}")
    elif path.exists():
        files = [path]
    else:
        raise AuthConfigError(f"the public key file {path} does not exist")
    return {_kid(f.name.removesuffix(".pem"), str(f)): _read_public_pem(f) for f in files}


def keys_from_line(line: str) -> dict[str, Ed25519PublicKey]:
    """`<kid>:<base64 of 32 bytes>[,<kid>:<base64>...]` (AIDMESH_AUTH_PUBLIC_KEYS)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for item in filter(None, (part.strip() for part in line.split(","))):
        kid, sep, encoded = item.partition(":")
        if not sep:
            raise AuthConfigError("AIDMESH_AUTH_PUBLIC_KEYS: expected '<kid>:<base64>' items")
        if kid in keys:
            raise AuthConfigError(f"AIDMESH_AUTH_PUBLIC_KEYS: key id {kid!r} is listed twice")
        try:
            raw = base64.b64decode(encoded, validate=True)
            keys[_kid(kid, "AIDMESH_AUTH_PUBLIC_KEYS")] = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise AuthConfigError(
                f"AIDMESH_AUTH_PUBLIC_KEYS: key {kid!r} is not the base64 of 32 bytes"
            ) from None
    return keys


MISSING_KEYS = (
    "no public key to verify bearer tokens: set AIDMESH_AUTH_PUBLIC_KEYS_FILE (a <kid>.pem"
    " file, or a directory of them) or AIDMESH_AUTH_PUBLIC_KEYS ('<kid>:<base64 of the"
    " 32-byte Ed25519 public key>', comma-separated); `aidmesh token keygen` makes a pair,"
    " and deploy/local/services.sh generates a local one into var/secrets/auth/. A service"
    " never serves its API unauthenticated."
)


# ---- tokens ---------------------------------------------------------------------------


def is_org_code(value: object) -> bool:
    """An organisation code (OrgCode: `NGO-DOBRO`, `IOM`), as partner_org is everywhere."""
    try:
        _ORG_CODE.validate_python(value)
    except ValidationError:
        return False
    return True


#: The longest a token may be valid: a token that leaks is good for at most this long. The
#: issuer refuses to sign a longer one and services refuse one whose `exp - iat` is longer
#: (another issuer, or a hand-made token with the signing key).
MAX_TOKEN_LIFETIME = timedelta(days=90)


def sign_token(
    *,
    key: Ed25519PrivateKey,
    kid: str,
    sub: str,
    org: str,
    scopes: Iterable[str],
    now: datetime,
    ttl: timedelta,
    token_id: str | None = None,
) -> str:
    """A token for `sub`, attributed to `org`, with these scopes, valid for `ttl` (at most
    MAX_TOKEN_LIFETIME)."""
    if not timedelta(0) < ttl <= MAX_TOKEN_LIFETIME:
        raise ValueError(
            f"a token is valid for more than 0 and at most {MAX_TOKEN_LIFETIME.days} days"
        )
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "org": org,
        "scope": " ".join(sorted(set(scopes))),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": token_id or uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


_REQUIRED = ["iss", "aud", "sub", "org", "scope", "iat", "exp", "jti"]
_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm"),
    (jwt.InvalidSignatureError, "bad signature"),
]


class TokenVerifier:
    """Checks a token's signature (by its kid), issuer, audience, times and claims."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        if not keys:
            raise AuthConfigError(MISSING_KEYS)
        self._keys = dict(keys)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TokenVerifier:
        keys: dict[str, Ed25519PublicKey] = {}
        sources = []
        if settings.auth_public_keys_file is not None:
            sources.append(keys_from_file(settings.auth_public_keys_file))
        if settings.auth_public_keys:
            sources.append(keys_from_line(settings.auth_public_keys))
        for source in sources:
            for kid, key in source.items():
                if kid in keys and public_key_pem(keys[kid]) != public_key_pem(key):
                    raise AuthConfigError(f"two different public keys have the key id {kid!r}")
                keys[kid] = key
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token, or InvalidToken with the reason."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unsupported algorithm")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown key id")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": _REQUIRED},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim}") from None
        except jwt.PyJWTError as exc:
            reason = next((r for kind, r in _REASONS if isinstance(exc, kind)), "malformed token")
            raise InvalidToken(reason) from None
        lifetime = claims["exp"] - claims["iat"]
        if not isinstance(lifetime, int | float) or lifetime > MAX_TOKEN_LIFETIME.total_seconds():
            raise InvalidToken(f"token valid for more than {MAX_TOKEN_LIFETIME.days} days")
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    sub, org, scope = claims["sub"], claims["org"], claims["scope"]
    if not isinstance(sub, str) or not sub.strip():
        raise InvalidToken("invalid claim sub")
    if not is_org_code(org):
        raise InvalidToken("invalid claim org: not an organisation code")
    if not isinstance(scope, str):
        raise InvalidToken("invalid claim scope")
    return Principal(sub=sub, org=org, scopes=frozenset(scope.split()), token_id=str(claims["jti"]))


# ---- FastAPI --------------------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description=(
        "A token signed by the AidMesh issuer (`aidmesh token issue --sub ... --org ..."
        " --scope ...`). The scopes each call needs are listed under its security"
        " requirement; 401 names why a token was refused, 403 the scope it lacks."
    ),
)

#: The answers every authenticated route may give (listed in its OpenAPI entry).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No bearer token, or one refused: `detail` says why"},
    403: {
        "description": "The token lacks a scope this call needs, or the body names another"
        " organisation than the token's: `detail` names the scope or the field"
    },
}


def _unauthenticated(reason: str) -> HTTPException:
    challenge = 'Bearer realm="aidmesh"'
    if reason != "missing bearer token":  # RFC 6750 §3.1: no error code when none was sent
        challenge += f', error="invalid_token", error_description="{reason}"'
    return HTTPException(status_code=401, detail=reason, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str, *, scope: str | None = None) -> HTTPException:
    """403 with the reason (and RFC 6750's insufficient_scope challenge when a scope lacks)."""
    headers = (
        {"WWW-Authenticate": f'Bearer realm="aidmesh", error="insufficient_scope", scope="{scope}"'}
        if scope
        else None
    )
    return HTTPException(status_code=403, detail=detail, headers=headers)


def attributed(
    principal: Principal, named: str | None, *, field: str, for_partners: str | None = None
) -> str:
    """The organisation a call records in `field` (who did or recorded the work): the
    token's `org`, also when the body leaves the field out or repeats it.

    A body naming another organisation is refused (403 naming the field), never believed,
    unless `for_partners` is given and the token holds that scope: a coordinator (a UN
    agency) recording the work of an implementing partner or of one of its teams; then the
    organisation named is recorded, and the request's log line says who named it."""
    if for_partners is not None and for_partners not in SCOPES:
        raise ValueError(f"{for_partners} is not in the scope catalogue")
    if named is None or named == principal.org:
        return principal.org
    if for_partners is not None and principal.has(for_partners):
        log.info("http_recorded_for_partner", field=field, named=named)
        return named
    log.info("http_org_refused", field=field, claimed=named)
    detail = (
        f"{field} is {named} but the token is for {principal.org}: a call is attributed to"
        " its token's organisation"
    )
    if for_partners is not None:
        detail += f" (naming another one needs scope {for_partners})"
    raise forbidden(detail, scope=for_partners)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AsyncIterator[Principal]:
    """FastAPI dependency: the caller's verified principal, bound to the request's log
    lines (sub and org; never the token), or 401."""
    if credentials is None:
        log.info("http_unauthenticated", reason="missing bearer token", path=request.url.path)
        raise _unauthenticated("missing bearer token")
    verifier: TokenVerifier = request.app.state.auth
    try:
        principal = verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        log.info("http_unauthenticated", reason=str(exc), path=request.url.path)
        raise _unauthenticated(str(exc)) from None
    with structlog.contextvars.bound_contextvars(principal=principal.sub, org=principal.org):
        yield principal


async def _scoped(
    security_scopes: SecurityScopes, principal: Annotated[Principal, Depends(authenticate)]
) -> Principal:
    for scope in security_scopes.scopes:
        if not principal.has(scope):
            log.info("http_forbidden", needs=scope)
            raise forbidden(f"this call needs scope {scope}", scope=scope)
    return principal


def require_scope(scope: str) -> Any:
    """`principal: Annotated[Principal, require_scope("shelter:write")]`, or in a route's
    `dependencies=[...]`: the caller's principal if its token carries `scope`; else 401/403.
    The scope appears in the operation's security requirement in the OpenAPI document."""
    if scope not in SCOPES:
        raise ValueError(f"{scope} is not in the scope catalogue (aidmesh_runtime.auth.SCOPES)")
    return Security(_scoped, scopes=[scope])


def require_any_scope(*scopes: str) -> Any:
    """As require_scope, for an endpoint that any one of `scopes` opens (a partner's intake
    token reading its own submissions, as a reader does). The OpenAPI document lists them
    all on the operation; its description should say "any one of"."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"{unknown or scopes} not in the scope catalogue (auth.SCOPES)")

    async def any_of(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not any(principal.has(scope) for scope in scopes):
            log.info("http_forbidden", needs=" or ".join(scopes))
            raise forbidden(f"this call needs scope {' or '.join(scopes)}", scope=scopes[0])
        return principal

    return Security(any_of, scopes=list(scopes))


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Make the app able to verify tokens, or refuse (AuthConfigError) before it starts."""
    app.state.auth = TokenVerifier.from_settings(settings)


def unscoped_operations(app: FastAPI) -> list[str]:
    """`METHOD path` of every operation outside PUBLIC_PATHS whose OpenAPI entry requires
    no scope: each one of them is a route someone forgot to protect."""
    missing = []
    for path, operations in app.openapi().get("paths", {}).items():
        if path in PUBLIC_PATHS:
            continue
        for method, operation in operations.items():
            scopes = [
                s for r in operation.get("security", []) for s in r.get(bearer.scheme_name, [])
            ]
            if not scopes:
                missing.append(f"{method.upper()} {path}")
    return missing
