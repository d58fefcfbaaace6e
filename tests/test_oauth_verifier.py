"""The OAuth verifier (`server/oauth.py`) against an issuer of the test's own: its keys, its metadata, its outages.

The issuer is an `httpx.MockTransport` under the verifier's one HTTP client (no socket, except the
start-up test that dials a closed port on 127.0.0.1): it serves RFC 8414 or OpenID Connect metadata,
a JWKS and an RFC 7662 introspection endpoint, records every request, and can go down. Tokens are
signed here with keys made per test run; the attacks (alg none, HS256 keyed with the public key)
are built by hand, since no JOSE library will make them. The verifier's clock is a counter the
tests advance, so cache lifetimes and the refetch interval are crossed without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import anyio.to_thread
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mcp.server.auth.provider import AccessToken, TokenVerifier
from pydantic import SecretStr

from contacts_mcp.server.errors import ConfigurationError
from contacts_mcp.server.oauth import IssuerUnavailable, OAuthConfig, OAuthVerifier, open_verifier
from contacts_mcp.server.settings import Settings
from tests.oauth_support import running_issuer

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:9443/realms/team"
RESOURCE = "http://127.0.0.1:8000/mcp"
CLIENT_ID = "contacts-mcp-rs"
CLIENT_SECRET = "introspection-secret-0123456789"
OPAQUE = "opaque-token-of-the-issuer-0123456789"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Key:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algorithm = jwt.get_algorithm_by_name(self.alg)
        return {**json.loads(algorithm.to_jwk(public)), "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def ec_key(kid: str) -> Key:
    return Key(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


RSA_KEY = Key("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


class Clock:
    """The verifier's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Issuer:
    """A local authorization server: metadata, JWKS and introspection, with switches for what can go wrong."""

    url: str = ISSUER
    discovery: str = "rfc8414"  # or "oidc"
    metadata_issuer: str | None = None  # what the metadata claims; default: `url`
    keys: list[Key] = field(default_factory=lambda: [ec_key("ec-1"), RSA_KEY])
    jwks_headers: dict[str, str] = field(default_factory=dict[str, str])
    down: bool = False
    introspection: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    requests: list[httpx.Request] = field(default_factory=list[httpx.Request])

    @property
    def origin(self) -> str:
        return self.url.split("/realms/")[0]

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.metadata_issuer or self.url,
            "authorization_endpoint": f"{self.url}/auth",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "introspection_endpoint": f"{self.url}/introspect",
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        rfc8414 = "/.well-known/oauth-authorization-server/realms/team"
        oidc = "/realms/team/.well-known/openid-configuration"
        if (path == rfc8414 and self.discovery == "rfc8414") or (path == oidc and self.discovery == "oidc"):
            return httpx.Response(200, json=self.metadata())
        if path == "/realms/team/jwks":
            return httpx.Response(200, json={"keys": [key.jwk() for key in self.keys]}, headers=self.jwks_headers)
        if path == "/realms/team/introspect" and request.method == "POST":
            return self._introspect(request)
        return httpx.Response(404, json={"error": "not_found"})

    def _introspect(self, request: httpx.Request) -> httpx.Response:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return httpx.Response(401, json={"error": "invalid_client"})
        form = parse_qs(request.content.decode())
        [token] = form["token"]
        return httpx.Response(200, json=self.introspection.get(unquote_plus(token), {"active": False}))

    def fetches(self, path: str) -> int:
        return sum(1 for request in self.requests if request.url.path.endswith(path))

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        without: tuple[str, ...] = (),
        key: Key | None = None,
        **header: Any,
    ) -> str:
        """A token of this issuer's claims, with `claims` changed and `without` left out, signed by `key`."""
        signer = key or self.keys[0]
        payload = {**self.claims(), **(claims or {})}
        for name in without:
            del payload[name]
        return jwt.encode(
            payload,
            signer.private,
            algorithm=signer.alg,
            headers={name: value for name, value in {"kid": signer.kid, "typ": "at+jwt", **header}.items() if value},
        )

    def claims(self) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.url,
            "aud": RESOURCE,
            "sub": "user-42",
            "client_id": "claude-connector",
            "scope": "contacts:read contacts:write",
            "iat": now,
            "exp": now + 300,
            "jti": "jti-1",
        }


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"oauth_issuer": ISSUER, "public_url": RESOURCE, **overrides}
    return Settings.model_validate(values)


@asynccontextmanager
async def verifying(issuer: Issuer, clock: Clock | None = None, **overrides: Any) -> AsyncGenerator[OAuthVerifier]:
    async with open_verifier(
        settings(**overrides), transport=httpx.MockTransport(issuer.handle), clock=clock or Clock()
    ) as verifier:
        assert verifier is not None
        yield verifier


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """`header.claims.` (no signature): the shape an `alg` of none has."""
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


# ---- what a valid token gives ------------------------------------------------------------------------


async def test_a_valid_jwt_gives_its_subject_client_scopes_expiry_and_the_matched_audience(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        exp = int(time.time()) + 300
        token = issuer.sign({"aud": ["https://other.example", RESOURCE], "exp": exp})
        as_the_sdk_takes_it: TokenVerifier = verifier  # pyright checks the protocol (it is not runtime-checkable)
        access = await as_the_sdk_takes_it.verify_token(token)

    assert isinstance(access, AccessToken)
    assert access.token == token
    assert access.subject == "user-42"
    assert access.client_id == "claude-connector"
    assert access.scopes == ["contacts:read", "contacts:write"]
    assert access.resource == RESOURCE
    assert access.expires_at == exp
    assert access.claims is not None
    assert access.claims["iss"] == ISSUER


async def test_scopes_may_come_as_an_scp_list_and_the_client_as_azp(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        token = issuer.sign({"scp": ["contacts:read"], "azp": "cursor"}, without=("scope", "client_id"))
        access = await verifier.verify_token(token)

    assert access is not None
    assert (access.scopes, access.client_id) == (["contacts:read"], "cursor")


async def test_an_rsa_signed_token_and_a_token_typed_jwt_are_accepted(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        rsa_signed = await verifier.verify_token(issuer.sign(key=RSA_KEY))
        typed_jwt = await verifier.verify_token(issuer.sign(typ="JWT"))

    assert rsa_signed is not None
    assert typed_jwt is not None


async def test_a_token_without_kid_is_checked_with_each_published_key_that_fits_its_algorithm(issuer: Issuer) -> None:
    second = ec_key("ec-2")
    async with verifying(issuer) as verifier:
        one_fits = await verifier.verify_token(issuer.sign(kid=None))
        issuer.keys.append(second)
        await verifier.verify_token(issuer.sign(key=ec_key("ec-3")))  # an unknown kid: the JWKS is refetched
        by_the_first = await verifier.verify_token(issuer.sign(kid=None))
        by_the_second = await verifier.verify_token(issuer.sign(kid=None, key=second))
        by_neither = await verifier.verify_token(issuer.sign(kid=None, key=ec_key("forged")))
        expired = await verifier.verify_token(issuer.sign({"exp": int(time.time()) - 600}, kid=None, key=second))

    assert one_fits is not None
    assert by_the_first is not None
    assert by_the_second is not None
    assert by_neither is None
    assert expired is None


async def test_the_audience_setting_replaces_the_public_url_as_the_aud_required(issuer: Issuer) -> None:
    async with verifying(issuer, oauth_audience="api://contacts") as verifier:
        for_public_url = await verifier.verify_token(issuer.sign())
        for_audience = await verifier.verify_token(issuer.sign({"aud": "api://contacts"}))

    assert for_public_url is None
    assert for_audience is not None
    assert for_audience.resource == "api://contacts"


# ---- the negative matrix -----------------------------------------------------------------------------


async def test_malformed_tokens_are_invalid(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        for token in ("", "not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.", "x" * 20_000, "a.b.c.d.e"):
            assert await verifier.verify_token(token) is None, token


async def test_a_token_signed_by_another_key_under_the_issuers_kid_is_invalid(issuer: Issuer) -> None:
    forger = ec_key("ec-1")
    async with verifying(issuer) as verifier:
        assert await verifier.verify_token(issuer.sign(key=forger)) is None


async def test_a_tampered_payload_is_invalid(issuer: Issuer) -> None:
    header, _, signature = issuer.sign().split(".")
    payload = _b64(json.dumps({**issuer.claims(), "scope": "contacts:read contacts:write admin"}).encode())
    async with verifying(issuer) as verifier:
        assert await verifier.verify_token(f"{header}.{payload}.{signature}") is None


async def test_alg_none_is_invalid_with_or_without_a_kid(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        for header in ({"alg": "none"}, {"alg": "none", "kid": "ec-1"}, {"alg": "None", "typ": "JWT"}):
            assert await verifier.verify_token(unsigned(issuer.claims(), header)) is None


async def test_hs256_keyed_with_the_issuers_public_key_is_invalid(issuer: Issuer) -> None:
    # The classic confusion: the public key, which anyone has, used as an HMAC secret.
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': RSA_KEY.kid}).encode())}."
    signing_input += _b64(json.dumps(issuer.claims()).encode())
    signature = hmac.new(RSA_KEY.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    async with verifying(issuer) as verifier:
        assert await verifier.verify_token(f"{signing_input}.{_b64(signature)}") is None


async def test_hs256_with_a_symmetric_key_the_jwks_carries_is_invalid(issuer: Issuer) -> None:
    secret = b"a-shared-secret-a-misconfigured-issuer-publishes"
    published = {"kty": "oct", "kid": "shared", "k": _b64(secret), "alg": "HS256", "use": "sig"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jwks"):
            return httpx.Response(200, json={"keys": [published, *(key.jwk() for key in issuer.keys)]})
        return issuer.handle(request)

    token = jwt.encode(issuer.claims(), secret, algorithm="HS256", headers={"kid": "shared"})
    async with open_verifier(settings(), transport=httpx.MockTransport(handle), clock=Clock()) as verifier:
        assert verifier is not None
        assert await verifier.verify_token(token) is None


async def test_a_kid_the_issuer_does_not_publish_is_invalid_after_one_refetch(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        before = issuer.fetches("/jwks")
        access = await verifier.verify_token(issuer.sign(key=ec_key("unknown-kid")))

    assert access is None
    assert issuer.fetches("/jwks") == before + 1


async def test_a_token_of_another_issuer_is_invalid(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        for iss in ("http://127.0.0.1:9443/realms/other", ISSUER + "/", ISSUER.upper()):
            assert await verifier.verify_token(issuer.sign({"iss": iss})) is None, iss
        assert await verifier.verify_token(issuer.sign(without=("iss",))) is None


async def test_a_token_for_another_audience_or_none_is_invalid(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        for aud in ("http://127.0.0.1:8001/mcp", [RESOURCE + "/"], [], "", {"aud": RESOURCE}):
            assert await verifier.verify_token(issuer.sign({"aud": aud})) is None, aud
        assert await verifier.verify_token(issuer.sign(without=("aud",))) is None


async def test_an_expired_token_is_invalid_beyond_the_skew_and_valid_within_it(issuer: Issuer) -> None:
    now = int(time.time())
    async with verifying(issuer) as verifier:
        long_expired = await verifier.verify_token(issuer.sign({"exp": now - 120, "iat": now - 600}))
        just_expired = await verifier.verify_token(issuer.sign({"exp": now - 10, "iat": now - 600}))

    assert long_expired is None
    assert just_expired is not None


async def test_a_token_not_yet_valid_is_invalid_beyond_the_skew_and_valid_within_it(issuer: Issuer) -> None:
    now = int(time.time())
    async with verifying(issuer) as verifier:
        beyond = await verifier.verify_token(issuer.sign({"nbf": now + 120}))
        within = await verifier.verify_token(issuer.sign({"nbf": now + 20}))
        issued_later = await verifier.verify_token(issuer.sign({"iat": now + 120}))

    assert beyond is None
    assert within is not None
    assert issued_later is None


async def test_a_token_without_exp_is_invalid(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        assert await verifier.verify_token(issuer.sign(without=("exp",))) is None
        assert await verifier.verify_token(issuer.sign({"exp": "tomorrow"})) is None


async def test_a_jwt_of_another_type_is_invalid(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        assert await verifier.verify_token(issuer.sign(typ="logout+jwt")) is None


async def test_refusals_are_logged_in_words_without_the_token(issuer: Issuer, caplog: pytest.LogCaptureFixture) -> None:
    expired = issuer.sign({"exp": int(time.time()) - 600})
    wrong_audience = issuer.sign({"aud": "http://127.0.0.1:8001/mcp"})
    caplog.set_level(logging.INFO, logger="contacts_mcp")
    async with verifying(issuer) as verifier:
        await verifier.verify_token(expired)
        await verifier.verify_token(wrong_audience)

    assert "refused a bearer token: expired" in caplog.messages
    assert "refused a bearer token: wrong audience" in caplog.messages
    for token in (expired, wrong_audience):
        assert all(token.split(".")[2][:16] not in message for message in caplog.messages)


# ---- keys over time ----------------------------------------------------------------------------------


async def test_a_key_rotated_in_at_the_issuer_is_accepted_without_a_restart(issuer: Issuer) -> None:
    clock = Clock()
    async with verifying(issuer, clock) as verifier:
        assert await verifier.verify_token(issuer.sign()) is not None
        issuer.keys = [ec_key("ec-2")]  # the old key is dropped from the JWKS
        clock.advance(5)

        rotated = await verifier.verify_token(issuer.sign())

    assert rotated is not None


async def test_a_flood_of_unknown_kids_refetches_the_jwks_once_per_interval(issuer: Issuer) -> None:
    clock = Clock()
    async with verifying(issuer, clock) as verifier:
        start = issuer.fetches("/jwks")
        for number in range(50):
            assert await verifier.verify_token(issuer.sign(key=ec_key(f"forged-{number}"))) is None
        flood = issuer.fetches("/jwks") - start

        issuer.keys = [ec_key("ec-2")]
        clock.advance(10)
        within_interval = await verifier.verify_token(issuer.sign())
        clock.advance(25)
        after_interval = await verifier.verify_token(issuer.sign())

    assert flood == 1
    assert within_interval is None  # the refetch a rotation needs waits for the interval
    assert after_interval is not None
    assert issuer.fetches("/jwks") - start == 2


async def test_the_jwks_is_refetched_when_its_max_age_ends(issuer: Issuer) -> None:
    issuer.jwks_headers = {"Cache-Control": "public, max-age=120"}
    clock = Clock()
    async with verifying(issuer, clock) as verifier:
        start = issuer.fetches("/jwks")
        await verifier.verify_token(issuer.sign())
        clock.advance(100)
        await verifier.verify_token(issuer.sign())
        kept = issuer.fetches("/jwks") - start
        clock.advance(30)
        await verifier.verify_token(issuer.sign())

    assert kept == 0
    assert issuer.fetches("/jwks") - start == 1


async def test_with_the_issuer_down_its_cached_keys_keep_verifying(issuer: Issuer) -> None:
    clock = Clock()
    async with verifying(issuer, clock) as verifier:
        issuer.down = True
        clock.advance(3600)  # past the JWKS's lifetime: a refetch is tried, fails, and the keys stay

        first = await verifier.verify_token(issuer.sign())
        again = await verifier.verify_token(issuer.sign(key=RSA_KEY))

    assert first is not None
    assert again is not None


async def test_with_the_issuer_down_a_key_not_held_is_issuer_unavailable(issuer: Issuer) -> None:
    clock = Clock()
    async with verifying(issuer, clock) as verifier:
        issuer.down = True
        new_key = ec_key("ec-2")
        with pytest.raises(IssuerUnavailable):
            await verifier.verify_token(issuer.sign(key=new_key))
        clock.advance(1)
        with pytest.raises(IssuerUnavailable):  # within the interval too: it still cannot tell
            await verifier.verify_token(issuer.sign(key=new_key))

        issuer.down = False
        issuer.keys.append(new_key)
        clock.advance(60)
        back = await verifier.verify_token(issuer.sign(key=new_key))

    assert back is not None


async def test_issuer_unavailable_says_what_failed_without_the_token(issuer: Issuer) -> None:
    async with verifying(issuer) as verifier:
        issuer.down = True
        token = issuer.sign(key=ec_key("ec-2"))
        with pytest.raises(IssuerUnavailable) as caught:
            await verifier.verify_token(token)

    assert "JWKS" in str(caught.value)
    assert token.split(".")[1][:16] not in str(caught.value)


# ---- opaque tokens -----------------------------------------------------------------------------------


def introspecting(issuer: Issuer, clock: Clock | None = None) -> AbstractAsyncContextManager[OAuthVerifier]:
    return verifying(issuer, clock, oauth_client_id=CLIENT_ID, oauth_client_secret=SecretStr(CLIENT_SECRET))


async def test_an_active_opaque_token_is_introspected_with_basic_credentials(issuer: Issuer) -> None:
    exp = int(time.time()) + 300
    issuer.introspection[OPAQUE] = {
        "active": True,
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "user-7",
        "client_id": "vscode",
        "scope": "contacts:read",
        "exp": exp,
    }
    async with introspecting(issuer) as verifier:
        access = await verifier.verify_token(OPAQUE)

    assert access is not None
    assert (access.subject, access.client_id, access.scopes, access.expires_at) == (
        "user-7",
        "vscode",
        ["contacts:read"],
        exp,
    )
    *_, request = [request for request in issuer.requests if request.url.path.endswith("/introspect")]
    assert parse_qs(request.content.decode()) == {"token": [OPAQUE], "token_type_hint": ["access_token"]}


async def test_an_inactive_opaque_token_is_invalid(issuer: Issuer) -> None:
    issuer.introspection[OPAQUE] = {"active": False}
    async with introspecting(issuer) as verifier:
        assert await verifier.verify_token(OPAQUE) is None
        assert await verifier.verify_token("never-issued-token-0123456789") is None


async def test_an_introspected_token_of_another_audience_issuer_or_past_exp_is_invalid(issuer: Issuer) -> None:
    now = int(time.time())
    answers = {
        "other-audience-token-0123": {"active": True, "aud": "http://127.0.0.1:8001/mcp", "exp": now + 300},
        "other-issuer-token-01234": {"active": True, "iss": "http://127.0.0.1:9443/realms/x", "exp": now + 300},
        "expired-token-0123456789": {"active": True, "aud": RESOURCE, "exp": now - 600},
        "refresh-token-0123456789": {"active": True, "token_type": "refresh_token"},
    }
    issuer.introspection.update(answers)
    async with introspecting(issuer) as verifier:
        for token in answers:
            assert await verifier.verify_token(token) is None, token


async def test_introspection_answers_are_reused_briefly(issuer: Issuer) -> None:
    issuer.introspection[OPAQUE] = {"active": True, "aud": RESOURCE, "exp": int(time.time()) + 300}
    clock = Clock()
    async with introspecting(issuer, clock) as verifier:
        start = issuer.fetches("/introspect")  # the start-up check of the credentials
        await verifier.verify_token(OPAQUE)
        await verifier.verify_token(OPAQUE)
        reused = issuer.fetches("/introspect") - start
        issuer.introspection[OPAQUE] = {"active": False}  # revoked
        clock.advance(31)
        revoked = await verifier.verify_token(OPAQUE)

    assert reused == 1
    assert revoked is None


async def test_introspection_with_the_issuer_down_is_issuer_unavailable(issuer: Issuer) -> None:
    async with introspecting(issuer) as verifier:
        issuer.down = True
        with pytest.raises(IssuerUnavailable):
            await verifier.verify_token(OPAQUE)


async def test_introspection_credentials_the_issuer_refuses_stop_the_start(issuer: Issuer) -> None:
    with pytest.raises(ConfigurationError) as caught:
        async with verifying(
            issuer, oauth_client_id=CLIENT_ID, oauth_client_secret=SecretStr("wrong-secret-0123456789")
        ):
            pass

    assert_one_line_naming(caught.value, "CONTACTS_MCP_OAUTH_CLIENT_SECRET")
    assert "wrong-secret" not in str(caught.value)


async def test_an_opaque_token_without_introspection_configured_is_invalid(issuer: Issuer) -> None:
    issuer.introspection[OPAQUE] = {"active": True}
    async with verifying(issuer) as verifier:
        assert await verifier.verify_token(OPAQUE) is None

    assert issuer.fetches("/introspect") == 0


# ---- discovery and start-up --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discovery", "asked"),
    [
        ("rfc8414", "/.well-known/oauth-authorization-server/realms/team"),
        ("oidc", "/realms/team/.well-known/openid-configuration"),
    ],
)
async def test_the_issuer_is_discovered_by_rfc_8414_or_openid_connect(discovery: str, asked: str) -> None:
    issuer = Issuer(discovery=discovery)
    async with verifying(issuer) as verifier:
        access = await verifier.verify_token(issuer.sign())

    assert access is not None
    assert verifier.jwks_uri == f"{ISSUER}/jwks"
    assert issuer.requests[0].url.path == "/.well-known/oauth-authorization-server/realms/team"
    assert asked in [request.url.path for request in issuer.requests]


async def test_a_page_that_is_not_metadata_is_passed_over_for_the_next_place() -> None:
    issuer = Issuer(discovery="oidc")

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/.well-known/oauth-authorization-server"):
            return httpx.Response(200, text="<html>sign in</html>", headers={"Content-Type": "text/html"})
        return issuer.handle(request)

    async with open_verifier(settings(), transport=httpx.MockTransport(handle)) as verifier:
        assert verifier is not None
        assert await verifier.verify_token(issuer.sign()) is not None


async def test_metadata_naming_another_issuer_is_refused_at_start() -> None:
    issuer = Issuer(metadata_issuer="http://127.0.0.1:9443/realms/other")
    with pytest.raises(ConfigurationError) as caught:
        async with verifying(issuer):
            pass

    assert_one_line_naming(caught.value, "CONTACTS_MCP_OAUTH_ISSUER")


async def test_an_issuer_that_does_not_answer_is_refused_at_start() -> None:
    issuer = Issuer(down=True)
    with pytest.raises(ConfigurationError) as caught:
        async with verifying(issuer):
            pass

    assert_one_line_naming(caught.value, "CONTACTS_MCP_OAUTH_ISSUER")


async def test_an_answer_too_large_to_read_is_refused_at_start_and_unavailable_later() -> None:
    huge: dict[str, Any] = {"keys": [], "padding": "x" * (1024 * 1024)}
    issuer = Issuer()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jwks") and issuer.jwks_headers.get("x-huge"):
            return httpx.Response(200, json=huge)
        return issuer.handle(request)

    issuer.jwks_headers["x-huge"] = "1"
    with pytest.raises(ConfigurationError) as caught:
        async with open_verifier(settings(), transport=httpx.MockTransport(handle)):
            pass
    assert_one_line_naming(caught.value, "CONTACTS_MCP_OAUTH_ISSUER")

    del issuer.jwks_headers["x-huge"]
    async with open_verifier(settings(), transport=httpx.MockTransport(handle), clock=Clock()) as verifier:
        assert verifier is not None
        issuer.jwks_headers["x-huge"] = "1"
        with pytest.raises(IssuerUnavailable):
            await verifier.verify_token(issuer.sign(key=ec_key("ec-2")))


async def test_an_issuer_on_a_closed_port_is_refused_at_start() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigurationError) as caught:
        async with open_verifier(settings(oauth_issuer=f"http://127.0.0.1:{port}")):
            pass

    assert_one_line_naming(caught.value, "CONTACTS_MCP_OAUTH_ISSUER")


def assert_one_line_naming(error: BaseException, variable: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert variable in message
    assert CLIENT_SECRET not in message


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"public_url": None}, "CONTACTS_MCP_PUBLIC_URL"),
        ({"public_url": "http://contacts.example.com/mcp"}, "CONTACTS_MCP_PUBLIC_URL"),
        ({"oauth_issuer": "http://issuer.example.com"}, "CONTACTS_MCP_OAUTH_ISSUER"),
        ({"oauth_audience": "   "}, "CONTACTS_MCP_OAUTH_AUDIENCE"),
        ({"oauth_client_id": CLIENT_ID}, "CONTACTS_MCP_OAUTH_CLIENT_SECRET"),
        ({"oauth_client_secret": SecretStr(CLIENT_SECRET)}, "CONTACTS_MCP_OAUTH_CLIENT_ID"),
        ({"oauth_issuer": None, "oauth_audience": "api://contacts"}, "CONTACTS_MCP_OAUTH_ISSUER"),
    ],
)
def test_an_inconsistent_configuration_is_refused_in_one_line_naming_the_setting(
    overrides: dict[str, Any], variable: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        OAuthConfig.from_settings(settings(**overrides))

    assert_one_line_naming(caught.value, variable)


@pytest.mark.parametrize(
    "public_url", ["http://127.0.0.1:8000/mcp", "http://localhost:8000/mcp", "http://[::1]:8000/mcp", RESOURCE]
)
def test_http_is_accepted_for_a_loopback_public_url(public_url: str) -> None:
    config = OAuthConfig.from_settings(settings(public_url=public_url))

    assert config is not None
    assert (config.resource, config.audience) == (public_url, public_url)


def test_without_an_issuer_oauth_is_off() -> None:
    assert OAuthConfig.from_settings(Settings()) is None


def test_the_client_secret_is_not_in_the_configs_repr() -> None:
    config = OAuthConfig.from_settings(
        settings(oauth_client_id=CLIENT_ID, oauth_client_secret=SecretStr(CLIENT_SECRET))
    )

    assert config is not None
    assert config.client_secret == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(config)


async def test_open_verifier_yields_none_without_an_issuer() -> None:
    async with open_verifier(Settings()) as verifier:
        assert verifier is None


# ---- against a certified issuer ----------------------------------------------------------------------


async def test_against_oidc_provider_jwts_opaque_tokens_rotation_and_an_outage_are_judged_as_above() -> None:
    resource = "http://127.0.0.1:8765/mcp"
    with running_issuer(resource=resource) as real:
        client_id, secret = real.resource_server_credentials()
        configured = settings(
            oauth_issuer=real.url, public_url=resource, oauth_client_id=client_id, oauth_client_secret=SecretStr(secret)
        )

        def token(resource_asked: str | None = resource, scope: str = "contacts:read contacts:write") -> str:
            return real.token(resource=resource_asked, scope=scope)

        async with open_verifier(configured) as verifier:
            assert verifier is not None
            signed = await verifier.verify_token(await anyio.to_thread.run_sync(token))
            read_only = await verifier.verify_token(
                await anyio.to_thread.run_sync(lambda: token(scope="contacts:read"))
            )
            elsewhere = await verifier.verify_token(
                await anyio.to_thread.run_sync(lambda: token("http://127.0.0.1:8766/other"))
            )
            opaque = await anyio.to_thread.run_sync(lambda: token(None))
            introspected = await verifier.verify_token(opaque)
            revoked = await anyio.to_thread.run_sync(lambda: token(None))
            await anyio.to_thread.run_sync(real.revoke, revoked)
            after_revocation = await verifier.verify_token(revoked)

            await anyio.to_thread.run_sync(real.rotate_keys)
            rotated = await anyio.to_thread.run_sync(token)
            after_rotation = await verifier.verify_token(rotated)
            never_seen = await anyio.to_thread.run_sync(lambda: token(None))
            await anyio.to_thread.run_sync(real.stop)
            while_down = await verifier.verify_token(rotated)
            with pytest.raises(IssuerUnavailable):
                await verifier.verify_token(never_seen)

    assert signed is not None
    assert (signed.subject, signed.resource, signed.scopes) == (
        "test-user",
        resource,
        ["contacts:read", "contacts:write"],
    )
    assert signed.client_id
    assert read_only is not None
    assert read_only.scopes == ["contacts:read"]
    assert elsewhere is None
    assert introspected is not None
    assert introspected.scopes == ["contacts:read", "contacts:write"]
    assert after_revocation is None
    assert after_rotation is not None
    assert while_down is not None
