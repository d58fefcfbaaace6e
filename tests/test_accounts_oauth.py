"""Account scopes end to end: a real issuer (oidc-provider) grants a user one account, and the MCP SDK's own OAuth
client, signing in the way Claude's connectors do, gets a tools/list and answers of that account alone.

The client asks for what the resource metadata advertises (the tool scopes and every account's); the user
grants the read scope and `contacts:account:cometly-2` only. The server is `serve --transport http` as built
with OAuth and an accounts file, on loopback, against the routing tests' sandbox.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from contacts_mcp.server.app import build_server
from contacts_mcp.server.oauth import open_verifier
from contacts_mcp.server.web import HttpOptions, http_app
from tests import test_accounts_routing as routing
from tests.conftest import text_of
from tests.http_support import uvicorn_on
from tests.oauth_support import MemoryTokenStorage, running_issuer
from tests.test_accounts_access import account_names
from tests.test_accounts_routing import ALIAS, settings_for
from tests.test_oauth_e2e import Site, listen_on, oauth_client

pytestmark = pytest.mark.anyio

READ, WRITE = "contacts:read", "contacts:write"
ACCOUNTS = ["default", "cometly-2", ALIAS, "highlevel-2", "clemta-2"]
"""The accounts the routing tests' file and environment give the server, in its order."""
ACCOUNT_SCOPES = [*(f"contacts:account:{name}" for name in ACCOUNTS), "contacts:account:*"]

app = routing.app
accounts_file = routing.accounts_file


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_issuer(
        resource=f"http://127.0.0.1:{port}/mcp",
        scopes=[READ, WRITE, *ACCOUNT_SCOPES],
        grant_scopes=[READ, "contacts:account:cometly-2"],
    ) as issuer:
        yield Site(issuer=issuer, port=port)


@asynccontextmanager
async def serving(site: Site, app: Starlette, accounts_file: Path) -> AsyncGenerator[str]:
    settings = settings_for(accounts_file, oauth_issuer=site.issuer.url, public_url=site.url)
    server = build_server(settings, transport=lambda: httpx.ASGITransport(app=app), sandbox=True)
    async with open_verifier(settings) as verifier:
        served = http_app(server, settings, HttpOptions(), verifier=verifier)
        async with uvicorn_on(served, listen_on(site.port)):
            yield site.url


async def test_a_user_granted_one_account_sees_and_reaches_that_account_alone(
    site: Site, app: Starlette, accounts_file: Path
) -> None:
    storage = MemoryTokenStorage()
    with anyio.fail_after(60):
        async with (
            serving(site, app, accounts_file) as url,
            httpx2.AsyncClient(auth=oauth_client(site, storage), timeout=30) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            tools = {
                tool.name: tool.model_dump(mode="json", by_alias=True) for tool in (await client.list_tools()).tools
            }
            listed = await client.call_tool("list_contacts", {"per_page": 3})
            refused = await client.call_tool("list_contacts", {"per_page": 3, "account": "default"})
            counted = await client.call_tool("list_contacts", {"account": "*", "count_only": True})

    assert storage.tokens is not None
    granted = (storage.tokens.scope or "").split()
    assert sorted(granted) == sorted([READ, "contacts:account:cometly-2"])  # asked for all, granted these
    assert "create_contact" not in tools
    assert account_names(tools["get_contact"]) == ["cometly-2"]
    assert account_names(tools["list_contacts"]) == ["cometly-2", "*", "list:cometly-2"]
    assert listed.structured_content is not None
    assert listed.structured_content["account"] == "cometly-2"
    assert text_of(refused).startswith("[validation_error] Invalid arguments: account must be one of: cometly-2;")
    assert counted.structured_content is not None
    assert [row["account"] for row in counted.structured_content["accounts"]["rows"]] == ["cometly-2"]
    assert "highlevel-2" not in json.dumps(tools)
