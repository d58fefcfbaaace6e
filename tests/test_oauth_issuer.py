"""The tests' OAuth issuer (tests/oauth_support.py, npm oidc-provider) does what the OAuth tests rely on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import httpx2
import jwt
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.oauth_support import (
    DEFAULT_SUBJECT,
    AuthorizationRefused,
    MemoryTokenStorage,
    RunningIssuer,
    new_pkce,
    running_issuer,
)

RESOURCE = "https://contacts.example.com/mcp"
OTHER_RESOURCE = "https://other.example.com/mcp"
LOOPBACK_REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture(scope="module")
def issuer() -> Iterator[RunningIssuer]:
    with running_issuer(resource=RESOURCE) as running:
        yield running


def jwks(issuer: RunningIssuer) -> dict[str, Any]:
    response = httpx.get(str(issuer.metadata()["jwks_uri"]))
    response.raise_for_status()
    return cast(dict[str, Any], response.json())


def verified_claims(issuer: RunningIssuer, token: str, *, audience: str) -> dict[str, Any]:
    """The claims of a JWT access token, its signature checked against the issuer's published JWKS."""
    key = jwt.PyJWKSet.from_dict(jwks(issuer))[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key=key, algorithms=["RS256"], audience=audience, issuer=issuer.url)


def authorization_url(issuer: RunningIssuer, client_id: str, challenge: str | None, **extra: str) -> str:
    parameters = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": LOOPBACK_REDIRECT,
        "scope": "contacts:read contacts:write",
        "state": "state-1",
        "resource": RESOURCE,
        **extra,
    }
    if challenge is not None:
        parameters |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return f"{issuer.endpoint('authorization')}?{urlencode(parameters)}"


def test_discovery_names_the_issuer_and_every_endpoint_the_server_and_its_clients_use(issuer: RunningIssuer) -> None:
    metadata = issuer.metadata()

    assert issuer.url.startswith("http://127.0.0.1:")
    assert metadata["issuer"] == issuer.url
    for name in ("authorization", "token", "registration", "introspection", "revocation"):
        assert str(metadata[f"{name}_endpoint"]).startswith(f"{issuer.url}/"), name
    assert str(metadata["jwks_uri"]).startswith(f"{issuer.url}/")
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert {"contacts:read", "contacts:write"} <= set(metadata["scopes_supported"])
    rfc8414 = httpx.get(f"{issuer.url}/.well-known/oauth-authorization-server")
    assert rfc8414.json()["issuer"] == issuer.url


def test_a_public_client_registers_dynamically_with_a_loopback_redirect(issuer: RunningIssuer) -> None:
    registered = issuer.register_client(redirect_uris=[LOOPBACK_REDIRECT])

    assert registered["client_id"]
    assert registered["token_endpoint_auth_method"] == "none"
    assert registered["redirect_uris"] == [LOOPBACK_REDIRECT]
    assert "client_secret" not in registered


def redeem(issuer: RunningIssuer, client_id: str, code: str, verifier: str) -> httpx.Response:
    """The token endpoint's answer to `code` with the PKCE `verifier`, for the resource server's resource."""
    return httpx.post(
        issuer.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": LOOPBACK_REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": RESOURCE,
        },
    )


def test_code_flow_with_pkce_and_a_resource_gives_a_jwt_for_that_resource_with_what_was_granted(
    issuer: RunningIssuer,
) -> None:
    client_id = str(issuer.register_client(redirect_uris=[LOOPBACK_REDIRECT])["client_id"])
    verifier, challenge = new_pkce()

    code, state = issuer.authorize(authorization_url(issuer, client_id, challenge), subject="alice")
    response = redeem(issuer, client_id, code, verifier)

    assert state == "state-1"
    assert response.status_code == 200, response.text
    token = str(response.json()["access_token"])
    assert jwt.get_unverified_header(token)["kid"] == issuer.kid
    claims = verified_claims(issuer, token, audience=RESOURCE)
    assert claims["aud"] == RESOURCE
    assert claims["iss"] == issuer.url
    assert claims["sub"] == "alice"
    assert claims["client_id"] == client_id
    assert set(str(claims["scope"]).split()) == {"contacts:read", "contacts:write"}
    assert claims["exp"] > claims["iat"]


def test_a_user_granting_only_the_read_scope_gets_a_token_with_only_that_scope(issuer: RunningIssuer) -> None:
    token = issuer.token(resource=RESOURCE, grant_scopes="contacts:read")

    assert verified_claims(issuer, token, audience=RESOURCE)["scope"] == "contacts:read"


def test_an_authorization_without_pkce_is_refused_and_a_wrong_verifier_gets_no_token(issuer: RunningIssuer) -> None:
    client_id = str(issuer.register_client(redirect_uris=[LOOPBACK_REDIRECT])["client_id"])
    with pytest.raises(AuthorizationRefused, match="invalid_request"):
        issuer.authorize(authorization_url(issuer, client_id, challenge=None))

    _, challenge = new_pkce()
    code, _ = issuer.authorize(authorization_url(issuer, client_id, challenge))
    response = redeem(issuer, client_id, code, new_pkce()[0])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_token_for_another_resource_server_has_that_audience(issuer: RunningIssuer) -> None:
    token = issuer.token(resource=OTHER_RESOURCE)

    assert verified_claims(issuer, token, audience=OTHER_RESOURCE)["aud"] == OTHER_RESOURCE
    with pytest.raises(jwt.InvalidAudienceError):
        verified_claims(issuer, token, audience=RESOURCE)


def test_without_a_resource_the_token_is_opaque_and_introspects_active_until_revoked(issuer: RunningIssuer) -> None:
    token = issuer.token(resource=None)

    assert token.count(".") != 2  # not a JWT
    introspected = issuer.introspect(token)
    assert introspected["active"] is True
    assert introspected["iss"] == issuer.url
    assert introspected["aud"] == RESOURCE
    assert introspected["sub"] == DEFAULT_SUBJECT
    assert set(str(introspected["scope"]).split()) == {"contacts:read", "contacts:write"}

    issuer.revoke(token)

    assert issuer.introspect(token) == {"active": False}


def test_a_refresh_token_gives_a_new_access_token_for_the_resource(issuer: RunningIssuer) -> None:
    first = issuer.tokens(resource=RESOURCE)

    refreshed = issuer.refresh(str(first["refresh_token"]), resource=RESOURCE)

    assert refreshed["access_token"] != first["access_token"]
    claims = verified_claims(issuer, str(refreshed["access_token"]), audience=RESOURCE)
    assert set(str(claims["scope"]).split()) == {"contacts:read", "contacts:write"}


@pytest.mark.anyio
async def test_the_mcp_sdks_oauth_client_signs_in_from_a_401_with_the_automated_consent(issuer: RunningIssuer) -> None:
    """Discovery from a 401, registration, code + PKCE, token: the SDK's client against this issuer.

    A stand-in resource server (ASGI, never a socket) answers 401 with `resource_metadata` until a
    bearer token comes, and serves the protected resource metadata naming the issuer.
    """
    resource_server = "http://resource.test"
    resource = f"{resource_server}/mcp"
    bearers: list[str] = []

    async def mcp(request: Request) -> Response:
        authorization = request.headers.get("authorization")
        if authorization is None:
            metadata = f"{resource_server}/.well-known/oauth-protected-resource/mcp"
            return Response(status_code=401, headers={"WWW-Authenticate": f'Bearer resource_metadata="{metadata}"'})
        bearers.append(authorization.removeprefix("Bearer "))
        return JSONResponse({})

    async def protected_resource_metadata(request: Request) -> Response:
        return JSONResponse(
            {"resource": resource, "authorization_servers": [issuer.url], "scopes_supported": list(issuer.scopes)}
        )

    app = Starlette(
        routes=[
            Route("/mcp", mcp, methods=["POST"]),
            Route("/.well-known/oauth-protected-resource/mcp", protected_resource_metadata),
        ]
    )
    redirect_handler, callback_handler = issuer.sdk_handlers(scopes="contacts:read", subject="bob")
    storage = MemoryTokenStorage()
    auth = OAuthClientProvider(
        resource,
        OAuthClientMetadata(redirect_uris=[AnyUrl("http://localhost:3030/callback")]),
        storage,
        redirect_handler,
        callback_handler,
    )

    async with httpx2.AsyncClient(auth=auth, mounts={resource_server: httpx2.ASGITransport(app)}) as client:
        response = await client.post(resource, json={})

    assert response.status_code == 200
    assert storage.client is not None
    claims = verified_claims(issuer, bearers[-1], audience=resource)
    assert claims["sub"] == "bob"
    assert claims["scope"] == "contacts:read"
    assert claims["client_id"] == storage.client.client_id


def test_a_forged_token_signed_with_the_published_signing_key_verifies(issuer: RunningIssuer) -> None:
    """Tests forge tokens with bad claims from `signing_key()`: it is the key the JWKS publishes."""
    key = jwt.PyJWK.from_dict(issuer.signing_key())
    forged = jwt.encode(
        {"iss": issuer.url, "aud": RESOURCE, "sub": "mallory", "exp": 4102444800},
        key.key,
        algorithm="RS256",
        headers={"kid": issuer.kid},
    )

    assert verified_claims(issuer, forged, audience=RESOURCE)["sub"] == "mallory"


def test_rotated_keys_replace_the_published_key_and_stop_start_keep_every_client_and_token() -> None:
    with running_issuer(resource=RESOURCE) as issuer:
        before = issuer.tokens(resource=RESOURCE)
        old_kid = issuer.kid
        opaque = issuer.token(resource=None)

        issuer.rotate_keys()

        assert issuer.kid != old_kid
        assert [key["kid"] for key in jwks(issuer)["keys"]] == [issuer.kid]
        assert "d" not in jwks(issuer)["keys"][0]  # public only
        after = issuer.token(resource=RESOURCE)
        assert jwt.get_unverified_header(after)["kid"] == issuer.kid
        verified_claims(issuer, after, audience=RESOURCE)
        with pytest.raises(KeyError):
            verified_claims(issuer, str(before["access_token"]), audience=RESOURCE)

        issuer.stop()

        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{issuer.url}/.well-known/openid-configuration")

        issuer.start()

        assert httpx.get(f"{issuer.url}/.well-known/openid-configuration").json()["issuer"] == issuer.url
        assert issuer.introspect(opaque)["active"] is True
        refreshed = issuer.refresh(str(before["refresh_token"]), resource=RESOURCE)
        assert jwt.get_unverified_header(str(refreshed["access_token"]))["kid"] == issuer.kid


@pytest.mark.anyio
async def test_authorize_async_runs_the_flow_from_inside_an_event_loop(issuer: RunningIssuer) -> None:
    client_id = str(issuer.register_client(redirect_uris=[LOOPBACK_REDIRECT])["client_id"])
    _, challenge = new_pkce()

    result = await issuer.authorize_async(authorization_url(issuer, client_id, challenge))

    assert result.code
    assert result.state == "state-1"
    assert result.iss == issuer.url  # RFC 9207: the SDK's client checks it
