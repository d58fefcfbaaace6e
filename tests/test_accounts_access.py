"""Who may use which account over HTTP: a token's account scopes (`contacts:account:NAME`, `contacts:account:*`)
or the static token's list (`CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS`) decide the accounts a caller sees and reaches.

An account a caller may not use is absent from every enum, default and description of its tools/list, from
server_info and the resources, and a call naming it is refused before any request, with a message naming only
the caller's accounts. Against the routing tests' sandbox (a further Space, location and company, and an alias
of the default Space), in memory with the caller set where the HTTP gate puts it, and over real HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp_types import ReadResourceResult, TextResourceContents
from pydantic import SecretStr
from starlette.applications import Starlette

from contacts_mcp.server.app import build_server
from contacts_mcp.server.errors import ConfigurationError
from contacts_mcp.server.oauth import OAuthConfig
from contacts_mcp.server.web import HttpOptions, http_app
from tests import test_accounts_routing as routing
from tests.conftest import text_of
from tests.http_support import TOKEN, uvicorn_on
from tests.startup_support import assert_refused_in_one_line, run_entry_point
from tests.test_accounts_routing import ALIAS, settings_for
from tests.test_oauth_http import ISSUER, Counted, free_socket

pytestmark = pytest.mark.anyio

READ, WRITE = "contacts:read", "contacts:write"
MINE = ["cometly-2", "highlevel-2"]
"""The accounts the restricted caller may use: a further Space and a further location."""
NOT_MINE = ["default", "clemta-2", ALIAS]
"""The accounts it may not use."""
NOT_MINE_TEXT = ["clemta-2", ALIAS, "the default Space again", "; default: ", "account to use: default", "out, default"]
"""What shows an account it may not use: its name, its description (the file's; `default: ...` for the
environment's), or being the default."""

app = routing.app
accounts_file = routing.accounts_file


def scopes_for(*accounts: str) -> list[str]:
    return [READ, WRITE, *(f"contacts:account:{name}" for name in accounts)]


@contextmanager
def signed_in(scopes: Sequence[str]) -> Generator[None]:
    """Requests from here on come from a caller holding `scopes`, put where the HTTP gate puts it."""
    caller = AccessToken(token="t", client_id="agency-client", scopes=list(scopes), subject="ann")
    token = auth_context_var.set(AuthenticatedUser(caller))
    try:
        yield
    finally:
        auth_context_var.reset(token)


@asynccontextmanager
async def client_as(
    app: Starlette, accounts_file: Path | None, scopes: Sequence[str] | None
) -> AsyncGenerator[tuple[Client, Counted]]:
    """An in-memory client of the accounts server, signed in with `scopes` (None: nobody, as under stdio)."""
    upstream = Counted(app)
    server = build_server(
        settings_for(accounts_file), transport=lambda: httpx.ASGITransport(app=upstream), sandbox=True
    )
    with signed_in(scopes) if scopes is not None else nullcontext():
        async with Client(server) as client:
            yield client, upstream


def resource_text(read: ReadResourceResult) -> str:
    [contents] = read.contents
    assert isinstance(contents, TextResourceContents)
    return contents.text


async def tools_of(client: Client) -> dict[str, dict[str, Any]]:
    return {tool.name: tool.model_dump(mode="json", by_alias=True) for tool in (await client.list_tools()).tools}


def account_names(schema: dict[str, Any]) -> list[str]:
    """Every name the `account` argument's schema offers (each branch's, for a fan-out tool)."""
    account = schema["inputSchema"]["properties"]["account"]
    if "enum" in account:
        return account["enum"]
    single, many = account["anyOf"]
    return [*single["enum"], *(f"list:{name}" for name in many["items"]["enum"])]


async def test_tools_list_offers_only_the_accounts_the_callers_scopes_name(app: Starlette, accounts_file: Path) -> None:
    async with client_as(app, accounts_file, scopes_for(*MINE)) as (client, _):
        tools = await tools_of(client)

    for name in ("get_contact", "find_contact", "describe_custom_fields", "update_contact"):
        properties = tools[name]["inputSchema"]["properties"]
        assert account_names(tools[name]) == MINE, name
        assert properties["account"]["default"] == "cometly-2"
        assert properties["provider"]["enum"] == ["cometly", "highlevel"]
        assert properties["provider"]["default"] == "cometly"
    # HighLevel lists no contacts: the caller's only listing account is the further Space.
    assert account_names(tools["list_contacts"]) == ["cometly-2", "*", "list:cometly-2"]
    assert tools["list_contacts"]["inputSchema"]["properties"]["provider"]["enum"] == ["cometly"]
    listed = json.dumps(tools)
    for shown in NOT_MINE_TEXT:
        assert shown not in listed, shown


async def test_the_every_account_scope_and_no_token_see_every_account(app: Starlette, accounts_file: Path) -> None:
    async with client_as(app, accounts_file, None) as (client, _):
        everything = await tools_of(client)
    async with client_as(app, accounts_file, [READ, WRITE, "contacts:account:*"]) as (client, _):
        every_account = await tools_of(client)

    assert every_account == everything
    assert set(account_names(everything["get_contact"])) == {"default", "cometly-2", "highlevel-2", "clemta-2", ALIAS}


async def test_a_caller_with_no_account_scope_sees_only_server_info_and_reaches_no_upstream(
    app: Starlette, accounts_file: Path
) -> None:
    async with client_as(app, accounts_file, [READ, WRITE]) as (client, upstream):
        tools = await tools_of(client)
        refused = await client.call_tool("list_contacts", {"per_page": 1})
        info = await client.call_tool("server_info", {})

    assert list(tools) == ["server_info"]  # listed so the model can learn why from its answer
    for answer in (refused, info):
        assert text_of(answer).startswith("[permission_error] This sign-in may use none of the accounts")
        assert "contacts:account:NAME" in text_of(answer)  # what the user must be granted
    assert upstream.requests == 0


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_contact", {"contact_id": "1", "account": "clemta-2"}),
        ("get_contact", {"contact_id": "1", "account": "default"}),
        ("list_contacts", {"account": ALIAS, "per_page": 1}),
        ("list_contacts", {"account": ["cometly-2", ALIAS], "count_only": True}),
        ("update_contact", {"contact_id": "1", "account": "default", "add_tags": ["vip"]}),
    ],
)
async def test_a_call_naming_an_account_the_caller_may_not_use_is_refused_unsent_naming_only_its_own(
    app: Starlette, accounts_file: Path, tool: str, arguments: dict[str, Any]
) -> None:
    async with client_as(app, accounts_file, scopes_for(*MINE)) as (client, upstream):
        refused = await client.call_tool(tool, arguments)

    message = text_of(refused)
    assert message.startswith("[validation_error] Invalid arguments: account must be one of: cometly-2"), message
    for shown in ("clemta-2", ALIAS, "default"):
        assert shown not in message
    assert upstream.requests == 0


async def test_a_call_leaving_the_account_out_goes_to_the_callers_first_account_of_the_provider(
    app: Starlette, accounts_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="contacts_mcp.audit")
    space = routing.served(app, "cometly-2")
    async with client_as(app, accounts_file, scopes_for(*MINE)) as (client, upstream):
        listed = await client.call_tool("list_contacts", {"per_page": 5})
        by_provider = await client.call_tool("describe_custom_fields", {"provider": "highlevel"})
        refused = await client.call_tool("get_contact", {"contact_id": "1", "provider": "clemta"})
        before = upstream.requests
        unknown = await client.call_tool("get_contact", {"contact_id": "1", "provider": "nope"})

    assert listed.structured_content is not None
    assert listed.structured_content["account"] == "cometly-2"  # not the default Space, the tools' default
    assert all(int(row["id"]) >= space.first_id for row in listed.structured_content["contacts"])
    assert by_provider.structured_content is not None
    assert by_provider.structured_content["account"] == "highlevel-2"
    assert text_of(refused).startswith("[permission_error] This sign-in may use no clemta account")
    assert "use provider cometly, highlevel" in text_of(refused)
    assert text_of(unknown).startswith("[validation_error]")
    assert upstream.requests == before
    audited = [json.loads(record.getMessage()) for record in caplog.records if record.name == "contacts_mcp.audit"]
    assert [(line["tool"], line["account"], line["outcome"]) for line in audited] == [
        ("list_contacts", "cometly-2", "ok"),
        ("describe_custom_fields", "highlevel-2", "ok"),
        ("get_contact", None, "permission_error"),
        ("get_contact", None, "validation_error"),
    ]


async def test_counting_every_account_counts_only_the_callers(
    app: Starlette, accounts_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="contacts_mcp.audit")
    async with client_as(app, accounts_file, scopes_for("cometly-2", "clemta-2", "highlevel-2")) as (client, _):
        counted = await client.call_tool("list_contacts", {"account": "*", "count_only": True})

    assert counted.structured_content is not None
    rows = counted.structured_content["accounts"]["rows"]
    assert [(row["account"], row["provider"]) for row in rows] == [("cometly-2", "cometly"), ("clemta-2", "clemta")]
    assert all(row.get("total") for row in rows)
    [audited] = [json.loads(record.getMessage()) for record in caplog.records if record.name == "contacts_mcp.audit"]
    assert (audited["account"], audited["provider"]) == ("*", None)  # each row names its own provider
    note = counted.structured_content["accounts"].get("note") or ""
    assert "default" not in note
    assert ALIAS not in note


async def test_server_info_and_the_resources_show_only_the_callers_accounts(
    app: Starlette, accounts_file: Path
) -> None:
    async with client_as(app, accounts_file, scopes_for("highlevel-2")) as (client, _):
        info = await client.call_tool("server_info", {})
        listed = await client.read_resource("contacts://accounts")
        fields = await client.read_resource("contacts://custom-fields")

    assert info.structured_content is not None
    assert [account["name"] for account in info.structured_content["accounts"]] == ["highlevel-2"]
    assert [provider["name"] for provider in info.structured_content["providers"]] == ["highlevel"]
    assert info.structured_content["default_provider"] == "highlevel"
    assert {budget["name"].split(".")[0] for budget in info.structured_content["budgets"]} == {"highlevel"}
    assert "index" not in info.structured_content  # the index is a Cometly Space's
    assert "1 of the server's 7 accounts" in info.structured_content["account_access"]
    assert [account["name"] for account in json.loads(resource_text(listed))] == ["highlevel-2"]
    assert [found["provider"] for found in json.loads(resource_text(fields))] == ["highlevel"]


async def test_without_an_accounts_file_account_scopes_change_nothing(app: Starlette) -> None:
    async with client_as(app, None, [READ, WRITE]) as (client, _):
        restricted = await tools_of(client)
        info = await client.call_tool("server_info", {})
    async with client_as(app, None, None) as (client, _):
        everything = await tools_of(client)

    assert restricted == everything
    assert info.structured_content is not None
    assert "account_access" not in info.structured_content


# Over HTTP: the OAuth token's scopes, the static token's list, and the resource metadata.

AGENCY_TOKEN = "agency-token-ffffffffffffffffff"


@dataclass
class TableVerifier:
    """The verifier's interface over one token holding the read scope and the further location's scope."""

    config: OAuthConfig

    async def verify_token(self, token: str) -> AccessToken | None:
        if token != AGENCY_TOKEN:
            return None
        return AccessToken(
            token=token, client_id="agency", scopes=[READ, "contacts:account:highlevel-2"], subject="ann"
        )


@asynccontextmanager
async def serving_http(app: Starlette, accounts_file: Path, **overrides: Any) -> AsyncGenerator[str]:
    """The accounts server over streamable HTTP with OAuth and the static token, on a free loopback port."""
    listener = free_socket()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    settings = settings_for(
        accounts_file, oauth_issuer=ISSUER, public_url=url, http_token=SecretStr(TOKEN), **overrides
    )
    server = build_server(settings, transport=lambda: httpx.ASGITransport(app=app), sandbox=True)
    config = OAuthConfig.from_settings(settings)
    assert config is not None
    served = http_app(server, settings, HttpOptions(), verifier=TableVerifier(config))  # pyright: ignore[reportArgumentType]
    async with uvicorn_on(served, listener):
        yield url


async def http_tools(url: str, token: str) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return {tool.name: tool.model_dump(mode="json", by_alias=True) for tool in (await client.list_tools()).tools}


async def test_over_http_the_oauth_token_and_the_static_token_each_see_their_accounts(
    app: Starlette, accounts_file: Path
) -> None:
    async with serving_http(app, accounts_file, http_token_accounts=["cometly-2", "clemta-2"]) as url:
        oauth = await http_tools(url, AGENCY_TOKEN)
        static = await http_tools(url, TOKEN)
        async with httpx.AsyncClient(timeout=30) as http:
            metadata = (await http.get(url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))).json()

    assert account_names(oauth["get_contact"]) == ["highlevel-2"]
    assert "list_contacts" not in oauth  # HighLevel lists no contacts: none of its accounts serve the tool
    assert "create_contact" not in oauth  # the read scope alone, as without accounts
    assert account_names(static["get_contact"]) == ["cometly-2", "clemta-2"]
    assert "create_contact" in static
    assert metadata["scopes_supported"] == [
        READ,
        WRITE,
        *(f"contacts:account:{name}" for name in ["default", "cometly-2", ALIAS, "highlevel-2", "clemta-2"]),
        "contacts:account:*",
    ]


async def test_the_static_tokens_account_list_must_name_accounts_of_the_file(
    app: Starlette, accounts_file: Path
) -> None:
    with pytest.raises(ConfigurationError, match=r"names accounts there are not: nope; the accounts are: default, "):
        build_server(settings_for(accounts_file, http_token=SecretStr(TOKEN), http_token_accounts=["nope"]))
    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_ACCOUNTS_FILE is not set"):
        build_server(settings_for(None, http_token=SecretStr(TOKEN), http_token_accounts=["cometly-2"]))
    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_HTTP_TOKEN is not set"):
        build_server(settings_for(accounts_file, http_token_accounts=["cometly-2"]))


def test_an_unknown_account_in_the_static_tokens_list_stops_the_http_server_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(
        '[accounts.acme-space]\nprovider = "cometly"\ndescription = "Acme"\napi_key_env = "ACME_KEY"\n',
        encoding="utf-8",
    )
    result = run_entry_point(
        tmp_path,
        "serve",
        "--transport",
        "http",
        "--port",
        "0",
        COMETLY_API_KEY="a-cometly-key-for-the-test",
        ACME_KEY="another-cometly-key-for-the-test",
        CONTACTS_MCP_ACCOUNTS_FILE=str(path),
        CONTACTS_MCP_HTTP_TOKEN=TOKEN,
        CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS="acme-space,acme",
    )
    line = assert_refused_in_one_line(result, "CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS names accounts there are not: acme;")
    assert TOKEN not in line
