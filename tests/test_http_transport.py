"""`contacts-mcp serve --transport http|sse` over real loopback: token, Host and Origin checks, health, stateless.

Each server runs as the installed entry point with the in-process sandbox behind it, and is reached
by the SDK's own HTTP clients (streamable HTTP and SSE) or by plain HTTP requests for what a client
library would never send.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import respx
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr

from contacts_mcp.server.app import build_server
from contacts_mcp.server.errors import ConfigurationError
from contacts_mcp.server.settings import Rate, Settings
from contacts_mcp.server.web import (
    Allowed,
    Authority,
    HttpOptions,
    allowed_authorities,
    binds_every_address,
    is_loopback,
    parse_authority,
    parse_origin,
    transport_security,
)
from tests.conftest import make_settings, text_of
from tests.http_support import ENTRY_POINT, TOKEN, Served, serve_http, server_environment

pytestmark = pytest.mark.anyio

ALLOWED_ORIGIN = "https://agents.example.com"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def http_server() -> Iterator[Served]:
    env = {"CONTACTS_MCP_HTTP_TOKEN": TOKEN, "CONTACTS_MCP_ALLOWED_ORIGINS": ALLOWED_ORIGIN}
    with serve_http(["--sandbox", "--contacts", "20", "--transport", "http"], env) as served:
        yield served


@pytest.fixture(scope="module")
def sse_server() -> Iterator[Served]:
    with serve_http(
        ["--sandbox", "--contacts", "20", "--transport", "sse"], {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}
    ) as served:
        yield served


def authorized(token: str = TOKEN) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def first_contact_id(client: Client) -> str:
    page = await client.call_tool(
        "list_contacts", {"start_date": "2000-01-01", "end_date": "2100-01-01", "per_page": 1}
    )
    assert not page.is_error, text_of(page)
    assert page.structured_content is not None
    return str(page.structured_content["contacts"][0]["id"])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_with_the_token_lists_and_calls_tools_over_streamable_http(
    http_server: Served, mode: Any
) -> None:
    with anyio.fail_after(60):
        async with (
            authorized() as http,
            Client(streamable_http_client(http_server.url, http_client=http), mode=mode) as client,
        ):
            tools = await client.list_tools()
            contact_id = await first_contact_id(client)
            contact = await client.call_tool("get_contact", {"contact_id": contact_id})

    assert {tool.name for tool in tools.tools} >= {"get_contact", "list_contacts", "create_contact"}
    assert not contact.is_error, text_of(contact)
    assert contact.structured_content is not None
    assert contact.structured_content["id"] == contact_id


async def test_a_request_without_a_token_gets_401_with_a_bearer_challenge(http_server: Served) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(http_server.url, json=INITIALIZE, headers=MCP_HEADERS)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "CONTACTS_MCP_HTTP_TOKEN" in response.json()["error_description"]


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN.upper()}"],
)
async def test_a_wrong_token_gets_401_and_never_reaches_the_server(http_server: Served, authorization: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            http_server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": authorization}
        )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="contacts-mcp"')
    assert TOKEN not in response.text


async def test_the_sdk_client_with_a_wrong_token_fails_to_connect(http_server: Served) -> None:
    with anyio.fail_after(30), pytest.raises(ExceptionGroup) as raised:
        async with (
            authorized("not-the-token-0123456789") as http,
            Client(streamable_http_client(http_server.url, http_client=http)),
        ):
            pass

    assert raised.group_contains(MCPError)  # the SDK client turns the 401 into a failed connect


async def test_a_foreign_host_is_refused_even_with_the_token(http_server: Served) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            http_server.url,
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Host": "attacker.example:8000"},
        )

    assert response.status_code == 421


async def test_a_foreign_origin_is_refused_and_a_configured_one_accepted(http_server: Served) -> None:
    async with httpx.AsyncClient() as http:
        refused = await http.post(
            http_server.url,
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Origin": "https://attacker.example"},
        )
        accepted = await http.post(
            http_server.url,
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Origin": ALLOWED_ORIGIN},
        )

    assert refused.status_code == 403
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}@evil.com", "localhost:1.evil.com", "127.0.0.1:{port}/x", "127.0.0.1.evil.com:{port}",
     "evil.com", "127.0.0.1:99999", "127.0.0.1:", "[::1", "[::1]{port}", "localhost:{port}:{port}"],
)  # fmt: skip
async def test_a_host_that_only_begins_like_an_allowed_one_is_refused_with_421(http_server: Served, host: str) -> None:
    port = http_server.root.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as http:
        response = await http.post(
            http_server.url,
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Host": host.format(port=port)},
        )

    assert response.status_code == 421


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:1.evil.com", "http://127.0.0.1:8000@evil.com", "http://localhost.evil.com",
     "http://localhost:5173/", "null", f"{ALLOWED_ORIGIN}.evil.com", f"{ALLOWED_ORIGIN}/path",
     ALLOWED_ORIGIN.replace("https", "http"), f"{ALLOWED_ORIGIN}:8443", "https://localhost:5173"],
)  # fmt: skip
async def test_an_origin_that_only_begins_like_an_allowed_one_is_refused_with_403(
    http_server: Served, origin: str
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            http_server.url,
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Origin": origin},
        )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("host", "origin"),
    [("localhost", "http://localhost"), ("127.0.0.1:{port}", "http://localhost:5173"),
     ("localhost:{port}", f"{ALLOWED_ORIGIN}:443"), ("[::1]:{port}", "http://[::1]:{port}")],
)  # fmt: skip
async def test_loopback_hosts_and_allowed_origins_are_answered_in_every_exact_form(
    http_server: Served, host: str, origin: str
) -> None:
    port = http_server.root.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as http:
        response = await http.post(
            http_server.url,
            json=INITIALIZE,
            headers={
                **MCP_HEADERS,
                "Authorization": f"Bearer {TOKEN}",
                "Host": host.format(port=port),
                "Origin": origin.format(port=port),
            },
        )

    assert response.status_code == 200, response.text


async def test_healthz_answers_without_a_token_and_reveals_nothing(http_server: Served) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(http_server.root + "/healthz")

    assert response.status_code == 200
    assert response.text == "ok"
    assert "contacts-mcp" not in str(response.headers).lower()


async def test_sse_serves_the_same_tools_behind_the_same_token(sse_server: Served) -> None:
    with anyio.fail_after(60):
        async with Client(sse_client(sse_server.url, headers={"Authorization": f"Bearer {TOKEN}"})) as client:
            contact_id = await first_contact_id(client)
            contact = await client.call_tool("get_contact", {"contact_id": contact_id})

    assert not contact.is_error, text_of(contact)


@pytest.mark.parametrize("path", ["/sse", "/messages/?session_id=0123456789abcdef0123456789abcdef"])
async def test_sse_paths_need_the_token(sse_server: Served, path: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.request("GET" if path == "/sse" else "POST", sse_server.root + path, json=INITIALIZE)

    assert response.status_code == 401


async def test_stateless_http_answers_each_request_on_its_own() -> None:
    env = {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}
    with serve_http(["--sandbox", "--contacts", "20", "--transport", "http", "--stateless"], env) as served:
        with anyio.fail_after(60):
            async with (
                authorized() as http,
                Client(streamable_http_client(served.url, http_client=http), mode="legacy") as client,
            ):
                contact_id = await first_contact_id(client)
                contact = await client.call_tool("get_contact", {"contact_id": contact_id})

    assert not contact.is_error, text_of(contact)


@pytest.mark.parametrize(
    ("arguments", "env", "complaint"),
    [
        (["--host", "0.0.0.0"], {}, "CONTACTS_MCP_HTTP_TOKEN"),
        (["--host", "::"], {}, "CONTACTS_MCP_HTTP_TOKEN"),
        (["--host", "0.0.0.0"], {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}, "CONTACTS_MCP_ALLOWED_HOSTS"),
        (["--host", "0"], {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}, "CONTACTS_MCP_ALLOWED_HOSTS"),
        (["--host", "[::]"], {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}, "CONTACTS_MCP_ALLOWED_HOSTS"),
        (["--host", "0000::"], {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}, "CONTACTS_MCP_ALLOWED_HOSTS"),
        (
            ["--host", "0.0.0.0"],
            {"CONTACTS_MCP_HTTP_TOKEN": TOKEN, "CONTACTS_MCP_ALLOWED_HOSTS": "contacts.example.com:8000@evil.com"},
            "CONTACTS_MCP_ALLOWED_HOSTS",
        ),
        (["--stateless", "--transport", "sse"], {}, "--stateless"),
        ([], {"CONTACTS_MCP_HTTP_TOKEN": "short"}, "CONTACTS_MCP_HTTP_TOKEN"),
    ],
)
def test_an_unsafe_http_setup_refuses_to_start(arguments: list[str], env: dict[str, str], complaint: str) -> None:
    command = [str(ENTRY_POINT), "serve", "--sandbox", "--contacts", "5", "--transport", "http", "--port", "0"]
    finished = subprocess.run(
        [*command, *arguments], env=server_environment(env), capture_output=True, text=True, timeout=60, check=False
    )

    assert finished.returncode == 2, finished.stderr
    [line] = finished.stderr.splitlines()
    assert complaint in line
    assert finished.stdout == ""
    assert TOKEN not in finished.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("contacts.internal", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_specific_address_with_a_token_accepts_its_own_host_and_the_configured_names() -> None:
    settings = Settings(http_token=SecretStr(TOKEN), allowed_hosts=["contacts.example.com", "lb.internal:8443"])

    security = transport_security(settings, HttpOptions(host="10.0.0.5", port=8000))

    assert security.enable_dns_rebinding_protection
    assert {"10.0.0.5:*", "contacts.example.com", "contacts.example.com:*", "lb.internal:8443"} <= set(
        security.allowed_hosts
    )
    assert "lb.internal:*" not in security.allowed_hosts


@pytest.mark.parametrize(
    "host",
    ["0", "0.0", "0x0", "000.000.000.000", "0.0.0.0", "::", "[::]", "0000::", "0:0:0:0:0:0:0:0", "::0",
     "::ffff:0.0.0.0", "[::ffff:0:0]", ""],
)  # fmt: skip
def test_every_spelling_of_the_wildcard_address_counts_as_every_address(host: str) -> None:
    assert binds_every_address(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "10.0.0.5", "localhost", "0.0.0.1", "::2"])
def test_a_specific_address_is_not_every_address(host: str) -> None:
    assert not binds_every_address(host)


def test_a_bracketed_ipv6_address_is_bound_without_its_brackets() -> None:
    assert HttpOptions(host="[::]").bind_host == "::"
    assert HttpOptions(host="0.0.0.0").bind_host == "0.0.0.0"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("localhost:8000", Authority("localhost", 8000)), ("LocalHost", Authority("localhost", None)),
     ("[::1]:80", Authority("::1", 80)), ("[0:0::1]", Authority("::1", None)),
     ("127.0.0.1:18001@evil.com", None), ("localhost:1.evil.com", None), ("::1", None), ("[::1]x", None),
     ("host:0", None), ("host:65536", None), ("a b", None), ("", None), ("host:", None), ("[fe80::1%eth0]", None)],
)  # fmt: skip
def test_a_host_header_is_parsed_exactly_or_not_at_all(text: str, parsed: Authority | None) -> None:
    assert parse_authority(text) == parsed


def test_an_origin_is_parsed_with_its_default_port_and_nothing_after_it() -> None:
    assert parse_origin("https://Agents.Example.com") == ("https", Authority("agents.example.com", 443))
    assert parse_origin("http://localhost:5173") == ("http", Authority("localhost", 5173))
    assert parse_origin("http://localhost:1.evil.com") is None
    assert parse_origin("https://agents.example.com/") is None
    assert parse_origin("ftp://agents.example.com") is None
    assert parse_origin("null") is None


def test_configured_hosts_allow_any_port_unless_one_is_given_and_never_a_prefix() -> None:
    settings = Settings(http_token=SecretStr(TOKEN), allowed_hosts=["contacts.example.com", "lb.internal:8443"])
    allowed: Allowed = allowed_authorities(settings, HttpOptions(host="0.0.0.0"))

    assert allowed.host("contacts.example.com:443")
    assert allowed.host("lb.internal:8443")
    assert not allowed.host("lb.internal:8444")
    assert not allowed.host("lb.internal")
    assert not allowed.host("contacts.example.com:443@evil.com")
    assert not allowed.host("0.0.0.0:8000")  # the wildcard is not a name clients use


def test_a_configured_host_or_origin_that_cannot_be_parsed_is_refused_at_start() -> None:
    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_ALLOWED_HOSTS"):
        transport_security(Settings(allowed_hosts=["a.example.com/path"]), HttpOptions())
    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_ALLOWED_ORIGINS"):
        transport_security(Settings(allowed_origins=["agents.example.com"]), HttpOptions())


def test_a_specific_address_without_a_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_HTTP_TOKEN"):
        transport_security(Settings(), HttpOptions(host="10.0.0.5"))


async def test_sessions_of_one_server_share_one_budget_however_many_connect(cometly: respx.MockRouter) -> None:
    """SSE and in-memory clients enter the lifespan per connection; they must not get a budget each."""
    cometly.get("/contacts/4821").respond(200, json={"id": 4821})
    server = build_server(make_settings(rate_limits={"cometly.get_contact": (Rate(1, 60),)}, max_wait_seconds=0))

    async with Client(server) as first, Client(server) as second:
        sent = await first.call_tool("get_contact", {"contact_id": "4821"})
        refused = await second.call_tool("get_contact", {"contact_id": "4821"})

    assert not sent.is_error, text_of(sent)
    assert text_of(refused).startswith("[rate_limited]")
    assert cometly.calls.call_count == 1
