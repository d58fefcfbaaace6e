"""OAuth end to end: a real issuer (oidc-provider), the server on real loopback HTTP, the MCP SDK's own OAuth client.

The issuer (tests/oauth_support.py) runs for the module on a free port. Each test serves the MCP
server under uvicorn on one fixed loopback port (the resource URL the issuer knows), its upstream
the in-process sandbox with every request counted, its verifier started against the issuer as
`serve` starts it. The SDK's `OAuthClientProvider` discovers everything from the first 401,
registers, signs in (code + PKCE, consent automated), calls tools and refreshes. The negative
matrix forges tokens with the issuer's own key (or another) and checks each answer and that no
tool ran and the upstream saw nothing. The start-up refusals run the installed entry point.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import subprocess
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl, SecretStr

from contacts_mcp.server.app import build_server
from contacts_mcp.server.oauth import open_verifier
from contacts_mcp.server.sandbox import create_app, sandbox_settings
from contacts_mcp.server.web import HttpOptions, http_app
from tests.conftest import make_settings, text_of
from tests.http_support import ENTRY_POINT, TOKEN, server_environment, uvicorn_on
from tests.oauth_support import REDIRECT_URI, MemoryTokenStorage, RunningIssuer, running_issuer
from tests.test_oauth_http import INITIALIZE, MCP_HEADERS, NEW_CONTACT, Counted, bearer, call, challenge, sse_result

pytestmark = pytest.mark.anyio

READ, WRITE = "contacts:read", "contacts:write"
OTHER_RESOURCE = "http://127.0.0.1:9/other-mcp"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "http.md"


@dataclass
class Site:
    """The issuer and the one loopback port every test's server listens on (the resource it knows)."""

    issuer: RunningIssuer
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_issuer(resource=f"http://127.0.0.1:{port}/mcp") as issuer:
        yield Site(issuer=issuer, port=port)


@dataclass
class Served:
    url: str
    upstream: Counted


def listen_on(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.setblocking(False)
    return listener


@asynccontextmanager
async def serving(site: Site) -> AsyncGenerator[Served]:
    """The server as `serve --transport http` builds it with OAuth on (introspection too), on the site's port."""
    client_id, client_secret = site.issuer.resource_server_credentials()
    settings = make_settings(
        **{
            **sandbox_settings("http://sandbox"),
            "oauth_issuer": site.issuer.url,
            "public_url": site.url,
            "oauth_client_id": client_id,
            "oauth_client_secret": SecretStr(client_secret),
            "http_token": SecretStr(TOKEN),
        }
    )
    upstream = Counted(create_app(contacts=20))
    server = build_server(settings, transport=lambda: httpx.ASGITransport(app=upstream), sandbox=True)
    async with open_verifier(settings) as verifier:
        app = http_app(server, settings, HttpOptions(), verifier=verifier)
        async with uvicorn_on(app, listen_on(site.port)):
            yield Served(url=site.url, upstream=upstream)


def oauth_client(site: Site, storage: MemoryTokenStorage) -> OAuthClientProvider:
    redirect_handler, callback_handler = site.issuer.sdk_handlers()
    metadata = OAuthClientMetadata(
        client_name="contacts-mcp e2e",
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        site.url, metadata, storage, redirect_handler=redirect_handler, callback_handler=callback_handler
    )


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "contacts_mcp.audit"]


async def test_the_sdk_client_discovers_registers_signs_in_calls_tools_and_refreshes(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    storage = MemoryTokenStorage()
    provider = oauth_client(site, storage)
    with anyio.fail_after(60):
        async with (
            serving(site) as served,
            httpx2.AsyncClient(auth=provider, timeout=30) as http,
            Client(streamable_http_client(served.url, http_client=http)) as client,
        ):
            tools = {tool.name for tool in (await client.list_tools()).tools}
            read = await client.call_tool("list_contacts", {"per_page": 1})
            created = await client.call_tool("create_contact", NEW_CONTACT)
            assert storage.tokens is not None
            first = storage.tokens
            provider.context.token_expiry_time = time.time() - 1  # due now: the next request refreshes first
            assert created.structured_content is not None
            again = await client.call_tool("get_contact", {"contact_id": created.structured_content["id"]})

    assert storage.client is not None
    assert storage.client.client_id  # registered dynamically
    assert {"create_contact", "update_contact", "list_contacts"} <= tools
    assert not read.is_error, text_of(read)
    assert not created.is_error, text_of(created)
    assert not again.is_error, text_of(again)
    assert storage.tokens is not None
    assert storage.tokens.access_token != first.access_token  # refreshed
    assert first.refresh_token is not None
    lines = audit_lines(caplog)
    assert [line["tool"] for line in lines] == ["list_contacts", "create_contact", "get_contact"]
    assert {line["subject"] for line in lines} == {"test-user"}
    assert {line["client_id"] for line in lines} == {storage.client.client_id}
    assert lines[1]["contact_id"] == created.structured_content["id"]
    for secret in (first.access_token, first.refresh_token, storage.tokens.access_token, TOKEN):
        assert secret not in caplog.text
        assert secret not in text_of(read) + text_of(created) + text_of(again)


def claims(site: Site, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": site.issuer.url,
        "aud": site.url,
        "sub": "forger",
        "client_id": "forged-client",
        "scope": f"{READ} {WRITE}",
        "iat": now,
        "exp": now + 600,
    }
    return {name: value for name, value in {**base, **changes}.items() if value is not None}


def signed(site: Site, payload: dict[str, Any], *, key: Any = None, kid: str | None = None) -> str:
    jwk = site.issuer.signing_key()
    private = key if key is not None else jwt.PyJWK(jwk).key
    return jwt.encode(payload, private, algorithm="RS256", headers={"kid": kid or jwk["kid"], "typ": "at+jwt"})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(site: Site) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': site.issuer.kid})}.{_b64(claims(site))}."


def bad_signature(site: Site) -> str:
    head, body, signature = signed(site, claims(site)).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{body}.{flipped}"


def stranger_key(site: Site) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return signed(site, claims(site), key=key, kid="not-in-the-jwks")


def revoked(site: Site) -> str:
    token = site.issuer.token(resource=None)  # opaque: checked by introspection
    site.issuer.revoke(token)
    return token


MATRIX: dict[str, Callable[[Site], str | None]] = {
    "no token": lambda site: None,
    "malformed": lambda site: "definitely-not-a-token",
    "malformed JWT": lambda site: "eyJhbGciOi.bad.shape",
    "bad signature": bad_signature,
    "alg none": unsigned,
    "a key not in the JWKS": stranger_key,
    "wrong issuer": lambda site: signed(site, claims(site, iss="http://127.0.0.1:9/evil")),
    "wrong audience": lambda site: signed(site, claims(site, aud="http://127.0.0.1:9/not-this-one")),
    "expired": lambda site: signed(site, claims(site, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
    "not yet valid": lambda site: signed(site, claims(site, nbf=int(time.time()) + 3600)),
    "no exp": lambda site: signed(site, claims(site, exp=None)),
    "revoked (introspection)": revoked,
    "a token for another resource server": lambda site: site.issuer.token(resource=OTHER_RESOURCE),
}


@pytest.mark.parametrize("case", list(MATRIX))
async def test_a_bad_token_is_401_with_the_challenge_and_reaches_no_tool_or_upstream(
    site: Site, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    good = site.issuer.token(resource=site.url)
    bad = MATRIX[case](site)
    async with serving(site) as served, httpx.AsyncClient(timeout=30) as http:
        opened = await http.post(served.url, json=INITIALIZE, headers=bearer(good))
        assert opened.status_code == 200, opened.text
        headers = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        headers |= bearer(bad) if bad is not None else MCP_HEADERS
        before = served.upstream.requests
        response = await http.post(served.url, json=call("create_contact", NEW_CONTACT), headers=headers)

    assert response.status_code == 401, response.text
    params = challenge(response)
    assert params["resource_metadata"] == f"http://127.0.0.1:{site.port}/.well-known/oauth-protected-resource/mcp"
    assert params.get("error") == (None if bad is None else "invalid_token")
    assert served.upstream.requests == before
    assert audit_lines(caplog) == []
    if bad is not None:
        assert bad not in caplog.text


@pytest.mark.parametrize("tool", ["create_contact", "update_contact"])
async def test_a_read_only_grant_calling_a_write_tool_is_403_insufficient_scope(
    site: Site, tool: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader = site.issuer.token(resource=site.url, scope=READ)
    arguments = NEW_CONTACT if tool == "create_contact" else {"contact_id": "1", "fields": {"source": "x"}}
    async with serving(site) as served, httpx.AsyncClient(timeout=30) as http:
        opened = await http.post(served.url, json=INITIALIZE, headers=bearer(reader))
        headers = {**bearer(reader), "mcp-session-id": opened.headers["mcp-session-id"]}
        headers["mcp-protocol-version"] = "2025-11-25"
        before = served.upstream.requests
        response = await http.post(served.url, json=call(tool, arguments), headers=headers)

    assert response.status_code == 403
    params = challenge(response)
    assert (params["error"], params["scope"]) == ("insufficient_scope", WRITE)
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    assert served.upstream.requests == before
    assert [line["outcome"] for line in audit_lines(caplog)] == ["insufficient_scope"]


async def test_a_read_only_grant_lists_no_write_tools(site: Site) -> None:
    reader = site.issuer.token(resource=site.url, scope=READ)
    async with (
        serving(site) as served,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {reader}"}, timeout=30) as http,
        Client(streamable_http_client(served.url, http_client=http)) as client,
    ):
        listed = {tool.name for tool in (await client.list_tools()).tools}
        read = await client.call_tool("list_contacts", {"per_page": 1})

    assert "list_contacts" in listed
    assert not {"create_contact", "update_contact"} & listed
    assert not read.is_error, text_of(read)


async def test_an_opaque_token_is_accepted_through_introspection(site: Site) -> None:
    opaque = site.issuer.token(resource=None)
    async with serving(site) as served, httpx.AsyncClient(timeout=30) as http:
        response = await http.post(served.url, json=INITIALIZE, headers=bearer(opaque))

    assert response.status_code == 200, response.text


async def test_keys_rotated_at_the_issuer_are_taken_up_without_a_restart(site: Site) -> None:
    before = site.issuer.token(resource=site.url)
    async with serving(site) as served, httpx.AsyncClient(timeout=30) as http:
        first = await http.post(served.url, json=INITIALIZE, headers=bearer(before))
        site.issuer.rotate_keys()
        after = site.issuer.token(resource=site.url)
        second = await http.post(served.url, json=INITIALIZE, headers=bearer(after))

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]


async def test_with_the_issuer_down_cached_keys_keep_serving_and_a_key_it_must_fetch_is_503(site: Site) -> None:
    valid = site.issuer.token(resource=site.url)
    opaque = site.issuer.token(resource=None)
    unknown_kid = stranger_key(site)
    async with serving(site) as served, httpx.AsyncClient(timeout=30) as http:
        site.issuer.stop()
        try:
            cached = await http.post(served.url, json=INITIALIZE, headers=bearer(valid))
            needs_key = await http.post(served.url, json=INITIALIZE, headers=bearer(unknown_kid))
            needs_introspection = await http.post(served.url, json=INITIALIZE, headers=bearer(opaque))
        finally:
            site.issuer.start()
        upstream = served.upstream.requests

    assert cached.status_code == 200, cached.text
    for refused in (needs_key, needs_introspection):
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) > 0
    assert upstream == 0


async def test_the_static_token_still_works_beside_oauth(site: Site) -> None:
    async with serving(site) as served, httpx.AsyncClient(timeout=30) as http:
        response = await http.post(served.url, json=INITIALIZE, headers=bearer(TOKEN))

    assert response.status_code == 200, response.text


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(ENTRY_POINT), "serve", "--sandbox", "--contacts", "5", "--transport", "http", "--port", "0"]
    return subprocess.run(command, env=server_environment(env), capture_output=True, text=True, timeout=60, check=False)


def test_start_up_refuses_an_issuer_that_does_not_answer_in_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens once the probe closes
    finished = start(
        {
            "CONTACTS_MCP_OAUTH_ISSUER": f"http://127.0.0.1:{closed}",
            "CONTACTS_MCP_PUBLIC_URL": "http://127.0.0.1:8000/mcp",
        }
    )

    assert finished.returncode == 2, finished.stderr
    [line] = finished.stderr.splitlines()
    assert "CONTACTS_MCP_OAUTH_ISSUER" in line
    assert "serving MCP" not in finished.stderr
    assert finished.stdout == ""


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CONTACTS_MCP_PUBLIC_URL": "http://contacts.example.com/mcp"}, "CONTACTS_MCP_PUBLIC_URL"),
        ({}, "CONTACTS_MCP_PUBLIC_URL"),
        ({"CONTACTS_MCP_PUBLIC_URL": "https://contacts.example.com/mcp",
          "CONTACTS_MCP_OAUTH_ISSUER": "http://issuer.example.com"}, "CONTACTS_MCP_OAUTH_ISSUER"),
    ],
)  # fmt: skip
def test_start_up_refuses_an_inconsistent_oauth_configuration_in_one_line(env: dict[str, str], named: str) -> None:
    finished = start({"CONTACTS_MCP_OAUTH_ISSUER": "https://issuer.example.com", **env})

    assert finished.returncode == 2, finished.stderr
    [line] = finished.stderr.splitlines()
    assert named in line
    assert finished.stdout == ""


def documented_oauth_settings() -> dict[str, str]:
    """The `export NAME=value` lines of docs/http.md's worked example (step 2), by name."""
    text = DOCS.read_text(encoding="utf-8")
    block = next(block for block in text.split("```sh")[1:] if "CONTACTS_MCP_OAUTH_ISSUER=" in block)
    exports = re.findall(r"^export (\w+)=(\S+)", block.split("```")[0], flags=re.MULTILINE)
    return dict(exports)


def test_the_entry_point_serves_oauth_with_the_documented_settings_pointed_at_the_issuer(site: Site) -> None:
    """`serve` itself, configured as docs/http.md's example says: discovery at start, metadata, tokens accepted."""
    documented = documented_oauth_settings()
    assert set(documented) == {
        "COMETLY_API_KEY",
        "CONTACTS_MCP_OAUTH_ISSUER",
        "CONTACTS_MCP_PUBLIC_URL",
        "CONTACTS_MCP_ALLOWED_HOSTS",
    }
    ours = {"CONTACTS_MCP_OAUTH_ISSUER": site.issuer.url, "CONTACTS_MCP_PUBLIC_URL": site.url}
    env = server_environment(
        {
            **{name: ours.get(name, value) for name, value in documented.items() if name.startswith("CONTACTS_MCP_")},
            "CONTACTS_MCP_HTTP_TOKEN": TOKEN,
            "CONTACTS_MCP_LOG_LEVEL": "DEBUG",
        }
    )
    command = [str(ENTRY_POINT), "serve", "--sandbox", "--contacts", "5", "--transport", "http"]
    process = subprocess.Popen(
        [*command, "--port", str(site.port)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )  # fmt: skip
    token = site.issuer.token(resource=site.url)
    reader = site.issuer.token(resource=site.url, scope=READ)
    forged = bad_signature(site)
    started: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # bounded: the server exits (closing stderr) if it cannot start
            started.append(line)
            if "serving MCP over" in line:
                break
        with httpx.Client(timeout=30) as http:
            metadata = http.get(f"http://127.0.0.1:{site.port}/.well-known/oauth-protected-resource/mcp")
            refused = http.post(site.url, json=INITIALIZE, headers=MCP_HEADERS)
            invalid = http.post(site.url, json=INITIALIZE, headers=bearer(forged))
            accepted = http.post(site.url, json=INITIALIZE, headers=bearer(token))
            static = http.post(site.url, json=INITIALIZE, headers=bearer(TOKEN))
            opened = http.post(site.url, json=INITIALIZE, headers=bearer(reader))
            session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            listed = http.post(
                site.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=bearer(reader) | session
            )
            write = http.post(site.url, json=call("create_contact", NEW_CONTACT), headers=bearer(reader) | session)
    finally:
        process.terminate()
        _, rest = process.communicate(timeout=10)
    stderr = "".join(started) + rest

    assert metadata.json()["authorization_servers"] == [site.issuer.url]
    assert refused.status_code == 401
    assert invalid.status_code == 401
    assert accepted.status_code == 200, accepted.text
    assert static.status_code == 200, static.text
    names = {tool["name"] for tool in sse_result(listed)["result"]["tools"]}
    assert "list_contacts" in names
    assert not {"create_contact", "update_contact"} & names
    assert write.status_code == 403
    assert "OAuth: tokens of" in stderr
    assert '"outcome": "insufficient_scope"' in stderr
    for secret in (token, reader, forged, TOKEN, *(part for part in forged.split(".") if len(part) > 40)):
        assert secret not in stderr  # not even at DEBUG
