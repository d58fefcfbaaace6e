"""The HTTP side of OAuth: the gate, Protected Resource Metadata, 401/403/503 answers, tools per scope, audit lines.

The server runs in this process under uvicorn on a free loopback port, as `serve --transport http`
builds it, with the in-process sandbox as its upstream (every request to it counted) and a fake
verifier in place of the issuer: a table of tokens and what each grants. The real issuer and the
SDK's OAuth client are tests/test_oauth_e2e.py's.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from contacts_mcp.server.app import build_server
from contacts_mcp.server.errors import ConfigurationError
from contacts_mcp.server.oauth import IssuerUnavailable, OAuthConfig
from contacts_mcp.server.sandbox import create_app, sandbox_settings
from contacts_mcp.server.web import HttpOptions, allowed_authorities, http_app
from tests.conftest import make_settings, text_of
from tests.http_support import TOKEN, uvicorn_on

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.example.com"
READ, WRITE = "contacts:read", "contacts:write"
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
NEW_CONTACT = {"emails": ["ada@example.com"], "names": ["Ada Lovelace"]}
TOKENS: dict[str, tuple[str, list[str]]] = {
    "reader-token-aaaaaaaaaaaaaaaa": ("alice", [READ]),
    "writer-token-bbbbbbbbbbbbbbbb": ("bob", [READ, WRITE]),
    "write-only-token-cccccccccccc": ("carol", [WRITE]),
    "no-scope-token-dddddddddddddd": ("dave", ["openid"]),
}
READER, WRITER, WRITE_ONLY, NO_SCOPE = TOKENS
DOWN = "issuer-is-down-eeeeeeeeeeeeeee"


@dataclass
class FakeVerifier:
    """The verifier's interface (server.oauth.OAuthVerifier) over a table of tokens: anything else is invalid."""

    config: OAuthConfig
    asked: list[str] = field(default_factory=list[str])

    async def verify_token(self, token: str) -> AccessToken | None:
        self.asked.append(token)
        if token == DOWN:
            raise IssuerUnavailable("the issuer's JWKS cannot be fetched")
        if token not in TOKENS:
            return None
        subject, scopes = TOKENS[token]
        return AccessToken(
            token=token,
            client_id=f"{subject}-client",
            scopes=scopes,
            subject=subject,
            resource=self.config.resource,
            claims={"iss": ISSUER},
        )


class Counted:
    """ASGI middleware counting the requests that reach the upstream (the sandbox)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


@dataclass
class Running:
    url: str
    upstream: Counted
    verifier: FakeVerifier

    @property
    def root(self) -> str:
        return self.url.rsplit("/", 1)[0]


def free_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    return listener


def oauth_settings(public_url: str, **overrides: Any) -> Any:
    return make_settings(
        **{
            **sandbox_settings("http://sandbox"),
            "oauth_issuer": ISSUER,
            "public_url": public_url,
            "http_token": SecretStr(TOKEN),
            **overrides,
        }
    )


@asynccontextmanager
async def running(options: HttpOptions | None = None, **overrides: Any) -> AsyncGenerator[Running]:
    """The OAuth-served app on a free loopback port, its lifespan entered; stopped on exit."""
    options = options or HttpOptions()
    listener = free_socket()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}{options.path}"
    settings = oauth_settings(url, **overrides)
    upstream = Counted(create_app(contacts=20))
    server = build_server(settings, transport=lambda: httpx.ASGITransport(app=upstream), sandbox=True)
    config = OAuthConfig.from_settings(settings)
    assert config is not None
    verifier = FakeVerifier(config)
    app = http_app(server, settings, options, verifier=verifier)  # pyright: ignore[reportArgumentType]
    async with uvicorn_on(app, listener):
        yield Running(url=url, upstream=upstream, verifier=verifier)


def bearer(token: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}"}


async def session(http: httpx.AsyncClient, url: str, token: str) -> dict[str, str]:
    """Open a session (the 2025-11-25 handshake) as `token`'s holder; the headers that continue it."""
    opened = await http.post(url, json=INITIALIZE, headers=bearer(token))
    assert opened.status_code == 200, opened.text
    headers = {
        **bearer(token),
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    initialized = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert initialized.status_code == 202, initialized.text
    return headers


def call(name: str, arguments: Mapping[str, Any], *, id: int = 2) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def sse_result(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a streamable HTTP answer (one SSE event, or a JSON body)."""
    if response.headers["content-type"].startswith("application/json"):
        return response.json()
    [data] = [line.removeprefix("data:").strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(data)


def challenge(response: httpx.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer k="v", ...` challenge."""
    scheme, _, rest = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer"
    params: dict[str, str] = {}
    for part in rest.split('", '):
        key, _, value = part.partition("=")
        params[key.strip()] = value.strip().strip('"')
    return params


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "contacts_mcp.audit"]


async def test_the_resource_metadata_is_served_at_the_path_suffixed_and_the_root_well_known_urls() -> None:
    async with running() as served, httpx.AsyncClient() as http:
        suffixed = await http.get(served.root + "/.well-known/oauth-protected-resource/mcp")
        root = await http.get(served.root + "/.well-known/oauth-protected-resource")
        elsewhere = await http.get(served.root + "/.well-known/oauth-authorization-server")

    for response in (suffixed, root):
        assert response.status_code == 200
        assert response.json()["resource"] == served.url
        assert response.json()["authorization_servers"] == [ISSUER]
        assert response.json()["scopes_supported"] == [READ, WRITE]
    assert elsewhere.status_code == 404  # the issuer's metadata is the issuer's to serve
    assert served.verifier.asked == []


async def test_a_request_without_a_token_gets_401_pointing_at_the_metadata_without_an_error_code() -> None:
    async with running() as served, httpx.AsyncClient() as http:
        response = await http.post(served.url, json=INITIALIZE, headers=MCP_HEADERS)

    assert response.status_code == 401
    params = challenge(response)
    assert params["resource_metadata"] == served.root + "/.well-known/oauth-protected-resource/mcp"
    assert "error" not in params  # RFC 6750 §3.1: no error code when no credentials were sent
    assert served.upstream.requests == 0


@pytest.mark.parametrize("authorization", ["Bearer not-a-token-at-all", "Bearer a.b.c", f"Basic {READER}", "Bearer"])
async def test_an_invalid_token_gets_401_invalid_token_with_the_metadata(authorization: str) -> None:
    async with running() as served, httpx.AsyncClient() as http:
        response = await http.post(served.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": authorization})

    assert response.status_code == 401
    params = challenge(response)
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    assert params.get("error", "invalid_token") == "invalid_token"
    assert READER not in response.text
    assert served.upstream.requests == 0


async def test_an_issuer_that_cannot_be_reached_for_a_needed_key_is_503_with_retry_after() -> None:
    async with running() as served, httpx.AsyncClient() as http:
        response = await http.post(served.url, json=INITIALIZE, headers=bearer(DOWN))

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"] == "temporarily_unavailable"
    assert served.upstream.requests == 0


async def test_the_static_token_still_works_beside_oauth_with_every_tool() -> None:
    async with (
        running() as served,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
        Client(streamable_http_client(served.url, http_client=http)) as client,
    ):
        tools = await client.list_tools()

    assert {"create_contact", "update_contact", "get_contact"} <= {tool.name for tool in tools.tools}
    assert TOKEN not in served.verifier.asked  # matched before any verifier is asked


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_list_shows_each_caller_only_the_tools_its_scopes_reach(mode: Any) -> None:
    listed: dict[str, set[str]] = {}
    async with running() as served:
        for token in (READER, WRITER, WRITE_ONLY):
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
                Client(streamable_http_client(served.url, http_client=http), mode=mode) as client,
            ):
                listed[token] = {tool.name for tool in (await client.list_tools()).tools}

    assert "get_contact" in listed[READER]
    assert not {"create_contact", "update_contact"} & listed[READER]
    assert {"create_contact", "update_contact", "get_contact"} <= listed[WRITER]
    assert listed[WRITE_ONLY] == {"create_contact", "update_contact"}


@pytest.mark.parametrize("tool", ["create_contact", "update_contact"])
async def test_a_write_call_without_the_write_scope_is_403_insufficient_scope_and_reaches_nothing(
    tool: str, caplog: pytest.LogCaptureFixture
) -> None:
    arguments = NEW_CONTACT if tool == "create_contact" else {"contact_id": "1", "fields": {"source": "x"}}
    caplog.set_level(logging.INFO)
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        headers = await session(http, served.url, READER)
        before = served.upstream.requests
        response = await http.post(served.url, json=call(tool, arguments), headers=headers)
        read = await http.post(served.url, json=call("list_contacts", {"per_page": 1}, id=3), headers=headers)

    assert response.status_code == 403
    params = challenge(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == WRITE
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    assert served.upstream.requests > before  # the read that followed went through; the write sent nothing
    assert not sse_result(read)["result"].get("isError"), read.text
    [refused] = [line for line in audit_lines(caplog) if line["tool"] == tool]
    assert refused == {
        "event": "tool_call",
        "subject": "alice",
        "client_id": "alice-client",
        "tool": tool,
        "provider": None,
        "outcome": "insufficient_scope",
    }


async def test_a_write_call_refused_upstream_of_the_tool_sends_no_request_to_the_upstream() -> None:
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        headers = await session(http, served.url, READER)
        before = served.upstream.requests
        response = await http.post(served.url, json=call("create_contact", NEW_CONTACT), headers=headers)
        after = served.upstream.requests

    assert response.status_code == 403
    assert after == before


async def test_a_batch_hiding_a_write_call_among_reads_is_refused_whole() -> None:
    batch = [call("list_contacts", {"per_page": 1}, id=2), call("create_contact", NEW_CONTACT, id=3)]
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        headers = await session(http, served.url, READER)
        before = served.upstream.requests
        response = await http.post(served.url, json=batch, headers=headers)

    assert response.status_code == 403
    assert served.upstream.requests == before


async def test_a_read_call_without_the_read_scope_is_403_naming_the_read_scope() -> None:
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        headers = await session(http, served.url, WRITE_ONLY)
        response = await http.post(served.url, json=call("list_contacts", {"per_page": 1}), headers=headers)

    assert response.status_code == 403
    assert challenge(response)["scope"] == READ
    assert served.upstream.requests == 0


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_a_token_with_neither_scope_is_403_on_every_request(method: str) -> None:
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        response = await http.request(method, served.url, json=INITIALIZE, headers=bearer(NO_SCOPE))

    assert response.status_code == 403
    params = challenge(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == f"{READ} {WRITE}"


async def test_each_tool_call_logs_one_audit_line_with_who_what_where_and_the_contact_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        running() as served,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {WRITER}"}, timeout=30) as http,
        Client(streamable_http_client(served.url, http_client=http)) as client,
    ):
        created = await client.call_tool("create_contact", NEW_CONTACT)
        missing = await client.call_tool("get_contact", {"contact_id": "999999999"})

    assert not created.is_error, text_of(created)
    assert created.structured_content is not None
    lines = audit_lines(caplog)
    assert lines == [
        {
            "event": "tool_call",
            "subject": "bob",
            "client_id": "bob-client",
            "tool": "create_contact",
            "provider": "cometly",
            "outcome": "ok",
            "contact_id": created.structured_content["id"],
        },
        {
            "event": "tool_call",
            "subject": "bob",
            "client_id": "bob-client",
            "tool": "get_contact",
            "provider": "cometly",
            "outcome": text_of(missing).split("]")[0].removeprefix("["),
        },
    ]
    assert lines[1]["outcome"] == "not_found"
    for token in TOKENS:
        assert token not in caplog.text


async def test_the_static_tokens_calls_are_audited_as_the_static_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with (
        running() as served,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
        Client(streamable_http_client(served.url, http_client=http)) as client,
    ):
        await client.call_tool("list_contacts", {"per_page": 1})

    [line] = audit_lines(caplog)
    assert (line["subject"], line["client_id"], line["outcome"]) == ("static-token", "static-token", "ok")
    assert TOKEN not in caplog.text


async def test_a_session_opened_by_one_caller_is_not_found_for_another() -> None:
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        headers = await session(http, served.url, WRITER)
        stolen = {**headers, "Authorization": f"Bearer {READER}"}
        response = await http.post(served.url, json=call("list_contacts", {"per_page": 1}), headers=stolen)

    assert response.status_code == 404  # the SDK's ownership check saw the gate's caller
    assert served.upstream.requests == 0


def test_oauth_settings_without_a_started_verifier_are_refused() -> None:
    settings = oauth_settings("http://127.0.0.1:8000/mcp")
    server = build_server(settings, transport=lambda: httpx.ASGITransport(app=create_app(contacts=1)), sandbox=True)

    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_OAUTH_ISSUER"):
        http_app(server, settings, HttpOptions())


def test_oauth_alone_may_serve_off_loopback_and_its_public_host_is_answered() -> None:
    settings = oauth_settings("https://contacts.example.com/mcp", http_token=None)

    allowed = allowed_authorities(settings, HttpOptions(host="10.0.0.5"))

    assert allowed.host("contacts.example.com")
    assert not allowed.host("other.example.com")


async def test_a_write_call_that_got_past_the_gate_is_still_refused_before_the_tool() -> None:
    """The gate answers 403 first; the server refuses too, so no other path to a tool skips the scope."""
    upstream = Counted(create_app(contacts=5))
    settings = oauth_settings("http://127.0.0.1:8000/mcp")
    server = build_server(settings, transport=lambda: httpx.ASGITransport(app=upstream), sandbox=True)
    reader = AccessToken(token="t", client_id="alice-client", scopes=[READ], subject="alice")
    signed_in = auth_context_var.set(AuthenticatedUser(reader))
    try:
        async with Client(server) as client:
            refused = await client.call_tool("create_contact", NEW_CONTACT)
            listed = {tool.name for tool in (await client.list_tools()).tools}
    finally:
        auth_context_var.reset(signed_in)

    assert text_of(refused).startswith("[permission_error]")
    assert WRITE in text_of(refused)
    assert "create_contact" not in listed
    assert upstream.requests == 0


async def test_sse_serves_the_same_gate_metadata_and_scopes() -> None:
    async with running(HttpOptions(transport="sse")) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            metadata = await http.get(served.root + "/.well-known/oauth-protected-resource/sse")
            anonymous = await http.get(served.url)
            write = await http.post(
                served.root + "/messages/?session_id=0123456789abcdef0123456789abcdef",
                json=call("create_contact", NEW_CONTACT),
                headers=bearer(READER),
            )
        async with Client(sse_client(served.url, headers={"Authorization": f"Bearer {READER}"})) as client:
            listed = {tool.name for tool in (await client.list_tools()).tools}
            read = await client.call_tool("list_contacts", {"per_page": 1})

    assert metadata.json()["resource"] == served.url
    assert anonymous.status_code == 401
    assert challenge(anonymous)["resource_metadata"].endswith("/.well-known/oauth-protected-resource/sse")
    assert write.status_code == 403
    assert challenge(write)["scope"] == WRITE
    assert "list_contacts" in listed
    assert not {"create_contact", "update_contact"} & listed
    assert not read.is_error, text_of(read)


async def test_a_tool_name_built_to_break_the_challenge_header_stays_out_of_it() -> None:
    name = 'create_contact" , scope="contacts:read'
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        headers = await session(http, served.url, WRITE_ONLY)
        response = await http.post(served.url, json=call(name, {}), headers=headers)

    assert response.status_code == 403
    assert challenge(response)["scope"] == READ  # an unknown tool needs the read scope
    assert name not in response.headers["WWW-Authenticate"]
