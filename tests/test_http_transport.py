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

from server.app import build_server
from server.errors import ConfigurationError
from server.settings import Rate, Settings
from server.web import HttpOptions, is_loopback, transport_security
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
    assert complaint in finished.stderr
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
