"""Bearer tokens: the verifier accepts only tokens signed by a trusted key, for AidMesh, in
time and with the claims it needs; endpoints answer 401 naming why and 403 naming the
scope; a service without a public key refuses to start. No infrastructure."""

from __future__ import annotations

import base64
import hmac
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, ClassVar

import httpx
import jwt
import pytest
import structlog
from aidmesh_runtime import auth
from aidmesh_runtime.auth import (
    AuthConfigError,
    InvalidToken,
    Principal,
    TokenVerifier,
    attributed,
    keys_from_file,
    keys_from_line,
    private_key_pem,
    public_key_line,
    public_key_pem,
    require_scope,
    sign_token,
    unscoped_operations,
)
from aidmesh_runtime.service import create_service_app, serve
from aidmesh_runtime.settings import ServiceSettings
from aidmesh_runtime.testing import bearer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, FastAPI, HTTPException

NOW = datetime.now(UTC)
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


@pytest.fixture(autouse=True)
def no_aidmesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AIDMESH_"):
            monkeypatch.delenv(name)


def token(**overrides: object) -> str:
    values: dict[str, object] = {
        "key": KEY,
        "kid": "k1",
        "sub": "partner:ngo-dobro",
        "org": "NGO-DOBRO",
        "scopes": ["registration:intake"],
        "now": NOW,
        "ttl": timedelta(hours=1),
    }
    return sign_token(**(values | overrides))  # type: ignore[arg-type]


def verifier() -> TokenVerifier:
    return TokenVerifier({"k1": KEY.public_key()})


def refusal(token_text: str, trusted: TokenVerifier | None = None) -> str:
    with pytest.raises(InvalidToken) as refused:
        (trusted or verifier()).verify(token_text)
    return str(refused.value)


# ---- the verifier ----------------------------------------------------------------------


def test_a_token_signed_by_a_trusted_key_names_its_principal_org_and_scopes() -> None:
    principal = verifier().verify(token(scopes=["registration:intake", "registration:read"]))

    assert (principal.sub, principal.org) == ("partner:ngo-dobro", "NGO-DOBRO")
    assert principal.scopes == {"registration:intake", "registration:read"}
    assert principal.has("registration:read") and not principal.has("registration:erase")


def test_an_expired_token_is_refused() -> None:
    expired = token(now=NOW - timedelta(hours=2), ttl=timedelta(hours=1))

    assert refusal(expired) == "token expired"


def test_a_token_valid_longer_than_the_cap_is_neither_signed_nor_accepted() -> None:
    claims = jwt.decode(token(), options={"verify_signature": False})
    long_lived = claims | {"exp": claims["iat"] + int(timedelta(days=400).total_seconds())}

    with pytest.raises(ValueError, match="at most 90 days"):
        token(ttl=timedelta(days=91))
    assert refusal(jwt.encode(long_lived, KEY, algorithm="EdDSA", headers={"kid": "k1"})) == (
        "token valid for more than 90 days"
    )
    assert verifier().verify(token(ttl=timedelta(days=90))).org == "NGO-DOBRO"


def test_a_token_signed_by_another_key_under_a_trusted_key_id_is_refused() -> None:
    assert refusal(token(key=OTHER_KEY)) == "bad signature"


def test_a_token_whose_claims_were_changed_after_signing_is_refused() -> None:
    header, payload, signature = token().split(".")
    forged_claims = jwt.encode(
        {"org": "IOM", "scope": "registration:erase"}, OTHER_KEY, algorithm="EdDSA"
    ).split(".")[1]

    assert refusal(f"{header}.{forged_claims}.{signature}") == "bad signature"
    assert payload != forged_claims


def test_a_token_with_an_unknown_key_id_or_none_is_refused() -> None:
    claims = jwt.decode(token(), options={"verify_signature": False})

    assert refusal(token(kid="retired-2025")) == "unknown key id"
    assert refusal(jwt.encode(claims, KEY, algorithm="EdDSA")) == "unknown key id"


def test_a_token_for_another_audience_or_issuer_is_refused() -> None:
    claims = jwt.decode(token(), options={"verify_signature": False})

    for changed, reason in (
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "x"}, "wrong issuer"),
    ):
        forged = jwt.encode(claims | changed, KEY, algorithm="EdDSA", headers={"kid": "k1"})
        assert refusal(forged) == reason


def test_a_token_with_another_algorithm_is_refused_even_keyed_with_the_public_key() -> None:
    # The classic confusion: HMAC "signed" with the public key, which every service knows.
    # (PyJWT refuses to make that token, so it is made by hand.)
    claims = jwt.decode(token(), options={"verify_signature": False})
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(public_key_pem(KEY.public_key()), f"{header}.{body}".encode(), "sha256")
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})

    assert refusal(f"{header}.{body}.{_b64(mac.digest())}") == "unsupported algorithm"
    assert refusal(unsigned) == "unsupported algorithm"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_token_without_an_org_or_with_a_bad_one_is_refused() -> None:
    claims = jwt.decode(token(), options={"verify_signature": False})
    without_org = {k: v for k, v in claims.items() if k != "org"}

    def signed(c: dict[str, object]) -> str:
        return jwt.encode(c, KEY, algorithm="EdDSA", headers={"kid": "k1"})

    assert refusal(signed(without_org)) == "missing claim org"
    assert refusal(signed(claims | {"org": "ngo dobro"})).startswith("invalid claim org")


def test_a_token_issued_in_the_future_is_refused() -> None:
    assert refusal(token(now=NOW + timedelta(minutes=10))) == "token not yet valid"


def test_garbage_is_a_malformed_token() -> None:
    assert refusal("not-a-token") == "malformed token"


def test_keys_rotate_by_id_tokens_of_both_keys_are_accepted_while_both_are_trusted() -> None:
    both = TokenVerifier({"k1": KEY.public_key(), "k2": OTHER_KEY.public_key()})

    assert both.verify(token()).org == "NGO-DOBRO"
    assert both.verify(token(key=OTHER_KEY, kid="k2")).org == "NGO-DOBRO"


# ---- keys from configuration -----------------------------------------------------------


def test_a_service_without_a_public_key_refuses_to_start() -> None:
    with pytest.raises(AuthConfigError, match="AIDMESH_AUTH_PUBLIC_KEYS_FILE"):
        TokenVerifier.from_settings(DemoSettings())


def test_public_keys_come_from_a_directory_of_kid_pem_files(tmp_path: Path) -> None:
    (tmp_path / "k1.pem").write_bytes(public_key_pem(KEY.public_key()))
    (tmp_path / "k2.pem").write_bytes(public_key_pem(OTHER_KEY.public_key()))

    settings = DemoSettings(auth_public_keys_file=tmp_path)

    assert TokenVerifier.from_settings(settings).key_ids == ["k1", "k2"]


def test_public_keys_come_from_the_environment_file_or_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "k1.pem").write_bytes(public_key_pem(KEY.public_key()))
    monkeypatch.setenv("AIDMESH_AUTH_PUBLIC_KEYS_FILE", str(tmp_path / "k1.pem"))
    monkeypatch.setenv("AIDMESH_AUTH_PUBLIC_KEYS", public_key_line("k2", OTHER_KEY.public_key()))

    trusted = TokenVerifier.from_settings(DemoSettings())

    assert trusted.key_ids == ["k1", "k2"]
    assert trusted.verify(token(key=OTHER_KEY, kid="k2")).sub == "partner:ngo-dobro"


def test_a_private_key_given_as_a_public_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "k1.pem").write_bytes(private_key_pem(KEY))

    with pytest.raises(AuthConfigError, match="holds a private key"):
        keys_from_file(tmp_path / "k1.pem")


def test_unusable_key_configuration_is_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="does not exist"):
        keys_from_file(tmp_path / "missing.pem")
    with pytest.raises(AuthConfigError, match=r"no <kid>\.pem"):
        keys_from_file(tmp_path)
    with pytest.raises(AuthConfigError, match="base64 of 32 bytes"):
        keys_from_line("k1:bm90IGEga2V5")
    with pytest.raises(AuthConfigError, match="'<kid>:<base64>'"):
        keys_from_line("just-a-key")
    with pytest.raises(AuthConfigError, match="listed twice"):
        keys_from_line(
            f"{public_key_line('k1', KEY.public_key())},{public_key_line('k1', OTHER_KEY.public_key())}"
        )
    (tmp_path / "k1.pem").write_bytes(public_key_pem(KEY.public_key()))
    with pytest.raises(AuthConfigError, match="two different public keys"):
        TokenVerifier.from_settings(
            DemoSettings(
                auth_public_keys_file=tmp_path / "k1.pem",
                auth_public_keys=public_key_line("k1", OTHER_KEY.public_key()),
            )
        )


# ---- endpoints -------------------------------------------------------------------------


def demo_app() -> FastAPI:
    """An app wired as create_service_app wires a service's router."""
    router = APIRouter()

    @router.get("/things")
    async def read_things(
        principal: Annotated[Principal, require_scope("shelter:read")],
    ) -> dict[str, str]:
        return {"sub": principal.sub, "org": principal.org}

    @router.post("/things", dependencies=[require_scope("shelter:write")])
    async def write_thing() -> dict[str, str]:
        return {"done": "yes"}

    @router.get("/log-context", dependencies=[require_scope("shelter:read")])
    async def log_context() -> dict[str, object]:
        return structlog.contextvars.get_contextvars()

    @router.get("/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    auth.install(app, DemoSettings(auth_public_keys=public_key_line("k1", KEY.public_key())))
    app.include_router(
        router, dependencies=[Depends(auth.authenticate)], responses=auth.AUTH_RESPONSES
    )
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=demo_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        yield client


async def test_a_call_without_a_token_gets_401_with_a_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/things")

    assert response.status_code == 401
    assert response.json() == {"detail": "missing bearer token"}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_call_with_a_refused_token_gets_401_naming_why(client: httpx.AsyncClient) -> None:
    expired = token(scopes=["shelter:read"], now=NOW - timedelta(days=1))

    response = await client.get("/things", headers=bearer(expired))

    assert response.status_code == 401
    assert response.json() == {"detail": "token expired"}
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_call_without_the_scope_it_needs_gets_403_naming_the_scope(
    client: httpx.AsyncClient,
) -> None:
    reader = bearer(token(scopes=["shelter:read"]))

    assert (await client.get("/things", headers=reader)).json() == {
        "sub": "partner:ngo-dobro",
        "org": "NGO-DOBRO",
    }
    response = await client.post("/things", headers=reader)
    assert response.status_code == 403
    assert response.json() == {"detail": "this call needs scope shelter:write"}
    assert 'scope="shelter:write"' in response.headers["www-authenticate"]


async def test_every_route_of_the_router_needs_a_token_even_one_without_a_scope(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/forgotten")).status_code == 401
    assert (await client.get("/healthz")).status_code == 200


def test_the_openapi_document_lists_the_scheme_the_scopes_and_the_401_and_403() -> None:
    spec = demo_app().openapi()

    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    read = spec["paths"]["/things"]["get"]
    assert read["security"] == [{"bearer": ["shelter:read"]}]
    assert {"401", "403"} <= set(read["responses"])
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_unscoped_operations_names_the_routes_that_forgot_their_scope() -> None:
    assert unscoped_operations(demo_app()) == ["GET /forgotten"]


def test_a_scope_outside_the_catalogue_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="catalogue"):
        require_scope("shelter:everything")


async def test_the_request_logs_name_the_principal_and_never_the_token(
    client: httpx.AsyncClient,
) -> None:
    good = token(scopes=["shelter:read"])
    bad = token(scopes=["shelter:read"], key=OTHER_KEY)

    with structlog.testing.capture_logs() as logs:
        context = (await client.get("/log-context", headers=bearer(good))).json()
        refused = await client.get("/log-context", headers=bearer(bad))

    assert (context["principal"], context["org"]) == ("partner:ngo-dobro", "NGO-DOBRO")
    assert refused.status_code == 401
    assert {"event": "http_unauthenticated", "reason": "bad signature"}.items() <= logs[-1].items()
    assert good not in str(logs) and bad not in str(logs)
    assert "principal" not in structlog.contextvars.get_contextvars()  # unbound afterwards


def test_a_service_with_an_api_and_no_public_key_refuses_to_start(tmp_path: Path) -> None:
    def build(settings: DemoSettings) -> FastAPI:
        return create_service_app(
            settings=settings,
            migrations=tmp_path,
            router=APIRouter(),
            title="demo",
            description="an API",
        )

    with pytest.raises(AuthConfigError, match="never serves its API unauthenticated"):
        build(DemoSettings())
    with pytest.raises(SystemExit, match=r"^demo: no public key to verify bearer tokens"):
        serve(build, DemoSettings)


# ---- attribution -----------------------------------------------------------------------

IOM_OFFICER = Principal(
    sub="user:officer-17", org="IOM", scopes=frozenset({"shelter:write"}), token_id="t1"
)
IOM_COORDINATOR = Principal(
    sub="user:coordinator-3",
    org="IOM",
    scopes=frozenset({"shelter:write", "shelter:record-for-partners"}),
    token_id="t2",
)


def test_a_field_left_out_or_naming_the_caller_s_own_organisation_is_the_token_s_org() -> None:
    assert attributed(IOM_OFFICER, None, field="partner_org") == "IOM"
    assert attributed(IOM_OFFICER, "IOM", field="partner_org") == "IOM"
    assert (
        attributed(
            IOM_OFFICER, None, field="assessed_by", for_partners=auth.SHELTER_RECORD_FOR_PARTNERS
        )
        == "IOM"
    )


def test_a_body_naming_another_organisation_is_refused_naming_the_field() -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(HTTPException) as refused:
        attributed(IOM_OFFICER, "NRC", field="recorded_by")

    assert refused.value.status_code == 403
    assert refused.value.detail == (
        "recorded_by is NRC but the token is for IOM: a call is attributed to its token's"
        " organisation"
    )
    assert refused.value.headers is None
    assert {"event": "http_org_refused", "field": "recorded_by", "claimed": "NRC"}.items() <= (
        logs[-1].items()
    )


def test_without_the_record_for_partners_scope_a_partner_cannot_be_named() -> None:
    with pytest.raises(HTTPException) as refused:
        attributed(
            IOM_OFFICER, "NRC", field="partner_org", for_partners=auth.SHELTER_RECORD_FOR_PARTNERS
        )

    assert refused.value.status_code == 403
    assert refused.value.detail == (
        "partner_org is NRC but the token is for IOM: a call is attributed to its token's"
        " organisation (naming another one needs scope shelter:record-for-partners)"
    )
    assert refused.value.headers == {
        "WWW-Authenticate": 'Bearer realm="aidmesh", error="insufficient_scope",'
        ' scope="shelter:record-for-partners"'
    }


def test_a_coordinator_with_the_scope_records_the_work_of_an_implementing_partner() -> None:
    with structlog.testing.capture_logs() as logs:
        org = attributed(
            IOM_COORDINATOR,
            "NRC",
            field="partner_org",
            for_partners=auth.SHELTER_RECORD_FOR_PARTNERS,
        )

    assert org == "NRC"
    assert {
        "event": "http_recorded_for_partner",
        "field": "partner_org",
        "named": "NRC",
    }.items() <= (logs[-1].items())


def test_the_scope_only_counts_where_the_endpoint_allows_recording_for_partners() -> None:
    with pytest.raises(HTTPException) as refused:
        attributed(IOM_COORDINATOR, "NRC", field="decided_by")

    assert refused.value.status_code == 403


def test_a_record_for_partners_scope_outside_the_catalogue_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="catalogue"):
        attributed(IOM_COORDINATOR, None, field="partner_org", for_partners="shelter:anything")
