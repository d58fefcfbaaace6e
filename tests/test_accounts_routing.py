"""Named accounts served by one server (`CONTACTS_MCP_ACCOUNTS_FILE`), against a sandbox serving several accounts.

Each call goes to the account it names (or its provider's first), answers with that account's contacts and
says which account answered; two accounts on one key share its budget, two keys never do; a fault on one
account leaves the others answering; no account's key shows anywhere.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from starlette.applications import Starlette

from contacts_mcp.server import cli
from contacts_mcp.server.app import ContactsServer, build_server
from contacts_mcp.server.sandbox import (
    SANDBOX_KEYS,
    Faults,
    ServedAccount,
    create_app,
    extra_accounts,
    sandbox_accounts,
    sandbox_of,
    sandbox_settings,
)
from contacts_mcp.server.settings import Settings, parse_rate_limits
from tests.conftest import make_settings
from tests.sandbox.support import CONTACTS_PATH, NOW, SEED, UNLIMITED, client_for
from tests.startup_support import assert_refused_in_one_line, run_entry_point

pytestmark = pytest.mark.anyio

ROOT = "http://sandbox"
ALIAS = "cometly-alias"
"""A further account on the default Space's own key: it shares that key's budgets."""


@pytest.fixture(scope="module")
def app() -> Generator[Starlette]:
    """Default data plus one more Space, location and company, each with its own contacts."""
    made = create_app(contacts=60, seed=SEED, now=NOW, rate_limits=UNLIMITED, accounts=extra_accounts(1))
    yield made
    for account in sandbox_accounts(made):
        sandbox_of(made, account.name).store.close()


def served(app: Starlette, name: str) -> ServedAccount:
    return next(item for item in sandbox_accounts(app) if item.name == name)


def key_variable(name: str) -> str:
    return f"KEY_{name.upper().replace('-', '_')}"


def accounts_toml(app: Starlette) -> str:
    """An accounts file for the sandbox's further accounts (not `default`), and one more on the default key."""
    tables: list[str] = []
    for account in sandbox_accounts(app):
        if account.name == "default":
            continue
        scope = (
            f'location_id = "{account.location_id}"\n'
            if account.location_id
            else f'company_id = "{account.company_id}"\n'
            if account.company_id
            else ""
        )
        zone = f'timezone = "{account.timezone}"\n' if account.provider != "highlevel" else ""
        tables.append(
            f'[accounts.{account.name}]\nprovider = "{account.provider}"\n'
            f'description = "{account.description}"\napi_key_env = "{key_variable(account.name)}"\n'
            f'base_url = "{account.base_url(ROOT)}"\n{scope}{zone}'
        )
    tables.append(
        f'[accounts.{ALIAS}]\nprovider = "cometly"\ndescription = "the default Space again"\n'
        f'api_key_env = "{key_variable(ALIAS)}"\nbase_url = "{ROOT}/cometly/public-api/v1"\n'
    )
    return "\n".join(tables)


@pytest.fixture
def accounts_file(app: Starlette, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(app), encoding="utf-8")
    for account in sandbox_accounts(app):
        monkeypatch.setenv(key_variable(account.name), account.key)
    monkeypatch.setenv(key_variable(ALIAS), SANDBOX_KEYS["cometly"])
    return path


def settings_for(accounts_file: Path | None, **overrides: Any) -> Settings:
    """The sandbox's settings (index off) with `accounts_file`, as the server reads them."""
    return make_settings(**{**sandbox_settings(ROOT), "index": "off", "accounts_file": accounts_file, **overrides})


def server_for(app: Starlette, accounts_file: Path | None, **overrides: Any) -> ContactsServer:
    settings = settings_for(accounts_file, **overrides)
    return build_server(settings, transport=lambda: httpx.ASGITransport(app=app), sandbox=True)


@pytest.fixture
async def client(app: Starlette, accounts_file: Path) -> AsyncGenerator[Client]:
    async with Client(server_for(app, accounts_file)) as connected:
        yield connected


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return "".join(getattr(block, "text", "") for block in result.content)


async def ids(client: Client, arguments: dict[str, Any]) -> set[str]:
    page = await call(client, "list_contacts", {"per_page": 500, **arguments})
    return {contact["id"] for contact in page["contacts"]}


async def matches(client: Client, arguments: dict[str, Any]) -> set[str]:
    found = await call(client, "find_contact", {"name": "a", "limit": 25, **arguments})
    return {contact["id"] for contact in found["contacts"]}


async def test_each_cometly_space_and_highlevel_location_answers_with_its_own_contacts(
    app: Starlette, client: Client
) -> None:
    space = served(app, "cometly-2")
    default_space, other_space = await ids(client, {}), await ids(client, {"account": "cometly-2"})
    assert default_space
    assert other_space
    assert not default_space & other_space
    assert str(space.first_id) in other_space

    default_location = await matches(client, {"provider": "highlevel"})
    other_location = await matches(client, {"account": "highlevel-2"})
    assert default_location
    assert other_location
    assert not default_location & other_location

    found = await call(client, "get_contact", {"contact_id": str(space.first_id), "account": "cometly-2"})
    assert (found["id"], found["account"]) == (str(space.first_id), "cometly-2")
    assert "[not_found]" in await error(client, "get_contact", {"contact_id": str(space.first_id)})


async def test_results_say_which_account_answered(client: Client) -> None:
    assert (await call(client, "list_contacts", {"per_page": 1}))["account"] == "default"
    assert (await call(client, "list_contacts", {"per_page": 1, "provider": "clemta"}))["account"] == "default"
    page = await call(client, "list_contacts", {"per_page": 1, "account": "clemta-2"})
    assert (page["account"], page["contacts"][0]["provider"]) == ("clemta-2", "clemta")
    found = await call(client, "find_contact", {"name": "a", "account": "highlevel-2"})
    assert (found["account"], found["contacts"][0]["provider"]) == ("highlevel-2", "highlevel")
    fields = await call(client, "describe_custom_fields", {"account": "cometly-2"})
    assert (fields["provider"], fields["account"]) == ("cometly", "cometly-2")


async def test_the_account_argument_lists_the_accounts_of_the_tools_providers_described_for_the_model(
    client: Client,
) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    argument = tools["list_contacts"].input_schema["properties"]["account"]
    one, several = argument["anyOf"]  # list_contacts also counts across accounts (tests/test_accounts_fanout.py)
    assert one["enum"] == ["default", "cometly-2", ALIAS, "clemta-2", "*"]  # HighLevel lists no contacts
    assert several["items"]["enum"] == ["default", "cometly-2", ALIAS, "clemta-2"]
    assert argument["default"] == "default"
    assert "cometly-2: sandbox cometly account 2 (cometly)" in argument["description"]
    assert "clemta-2: sandbox clemta account 2 (clemta)" in argument["description"]
    located = tools["find_contact"].input_schema["properties"]["account"]
    assert located["enum"] == ["default", "cometly-2", ALIAS, "highlevel-2", "clemta-2"]
    assert "highlevel-2: sandbox highlevel account 2 (highlevel)" in located["description"]
    # filter_by_custom_field is Cometly's alone: only Cometly's accounts are offered.
    only_cometly = tools["filter_by_custom_field"].input_schema["properties"]["account"]
    assert set(only_cometly["anyOf"][1]["items"]["enum"]) == {"default", "cometly-2", ALIAS}
    assert "account" not in tools["server_info"].input_schema.get("properties", {})


async def test_an_account_of_another_provider_than_the_one_named_is_refused_unsent(client: Client) -> None:
    text = await error(client, "find_contact", {"name": "a", "provider": "cometly", "account": "highlevel-2"})
    assert text.startswith("[validation_error]")
    assert "highlevel-2" in text
    text = await error(client, "list_contacts", {"account": "no-such-account"})
    assert text.startswith("[validation_error]")
    agreed = await call(client, "find_contact", {"name": "a", "provider": "highlevel", "account": "highlevel-2"})
    assert agreed["account"] == "highlevel-2"


def budget(info: dict[str, Any], account: str, name: str) -> dict[str, Any]:
    provider = name.split(".")[0]
    listed = next(item for item in info["accounts"] if (item["name"], item["provider"]) == (account, provider))
    return next(item for item in listed["budgets"] if item["name"] == name)


async def test_two_accounts_on_one_key_share_its_budget_and_two_keys_do_not(
    app: Starlette, accounts_file: Path
) -> None:
    limited = create_app(contacts=5, seed=SEED, now=NOW, rate_limits=UNLIMITED, accounts=extra_accounts(1))
    try:
        async with Client(
            server_for(limited, accounts_file, rate_limits=parse_rate_limits("cometly.get_contact=3/3600"))
        ) as client:
            before = await call(client, "server_info", {})
            await call(client, "get_contact", {"contact_id": "10001"})
            after = await call(client, "server_info", {})
            alias_calls = await client.call_tool("get_contact", {"contact_id": "10001", "account": ALIAS})
            assert not alias_calls.is_error
            last = await call(client, "server_info", {})
    finally:
        for account in sandbox_accounts(limited):
            sandbox_of(limited, account.name).store.close()
    name = "cometly.get_contact"
    assert budget(before, "default", name)["remaining"] == budget(before, ALIAS, name)["remaining"] == 3
    assert budget(after, "default", name)["remaining"] == budget(after, ALIAS, name)["remaining"] == 2
    assert budget(last, "default", name)["remaining"] == budget(last, ALIAS, name)["remaining"] == 1
    # Its own key: untouched, and the environment's override is the `default` account's, not its.
    assert budget(last, "cometly-2", name)["remaining"] == budget(before, "cometly-2", name)["remaining"] == 15


async def test_a_fault_on_one_account_leaves_the_others_answering(app: Starlette, client: Client) -> None:
    plan = sandbox_of(app).faults
    try:
        plan.set(Faults(kinds=("500",), account="cometly-2"))
        failed = await error(client, "list_contacts", {"per_page": 1, "account": "cometly-2"})
        assert failed.startswith("[upstream_unavailable]")
        assert (await call(client, "list_contacts", {"per_page": 1}))["account"] == "default"
        assert (await call(client, "find_contact", {"name": "a", "account": "highlevel-2"}))["contacts"]
    finally:
        plan.clear()


async def test_server_info_and_the_accounts_resource_list_the_accounts_with_their_budgets(client: Client) -> None:
    info = await call(client, "server_info", {})
    listed = {(item["provider"], item["name"]): item for item in info["accounts"]}
    assert list(listed) == [
        ("cometly", "default"),
        ("cometly", "cometly-2"),
        ("cometly", ALIAS),
        ("highlevel", "default"),
        ("highlevel", "highlevel-2"),
        ("clemta", "default"),
        ("clemta", "clemta-2"),
    ]
    assert listed["highlevel", "highlevel-2"]["description"] == "sandbox highlevel account 2"
    for (provider, _), item in listed.items():
        assert item["budgets"]
        assert all(each["name"].startswith(f"{provider}.") for each in item["budgets"])

    resource = await client.read_resource("contacts://accounts")
    text = "".join(getattr(block, "text", "") for block in resource.contents)
    assert [item["name"] for item in json.loads(text)] == [item["name"] for item in info["accounts"]]


async def test_without_an_accounts_file_there_is_no_account_argument_field_or_resource(app: Starlette) -> None:
    async with Client(server_for(app, None)) as client:
        tools = (await client.list_tools()).tools
        assert all("account" not in tool.input_schema.get("properties", {}) for tool in tools)
        assert all("account" not in (tool.output_schema or {}).get("properties", {}) for tool in tools)
        page = await call(client, "list_contacts", {"per_page": 1})
        info = await call(client, "server_info", {})
        resources = [str(resource.uri) for resource in (await client.list_resources()).resources]
    assert "account" not in page
    assert "account" not in page["contacts"][0]
    assert "accounts" not in info
    assert "contacts://accounts" not in resources


async def test_no_accounts_key_appears_in_a_result_an_error_or_a_log_line(
    app: Starlette, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [account.key for account in sandbox_accounts(app) if account.name != "default"]
    caplog.set_level(logging.DEBUG)
    plan = sandbox_of(app).faults
    texts: list[str] = []
    try:
        plan.set(Faults(kinds=("500",), account="highlevel-2"))
        texts.append(await error(client, "find_contact", {"name": "a", "account": "highlevel-2"}))
    finally:
        plan.clear()
    for tool, arguments in [
        ("list_contacts", {"account": "cometly-2", "per_page": 3}),
        ("server_info", {}),
        ("describe_custom_fields", {"account": "highlevel-2"}),
    ]:
        result = await client.call_tool(tool, arguments)
        texts += [getattr(block, "text", "") for block in result.content]
    echoed = await client.call_tool("find_contact", {"query": keys[0], "account": "cometly-2"})
    assert echoed.is_error
    texts += [getattr(block, "text", "") for block in echoed.content]
    seen = "\n".join([*texts, caplog.text])
    for key in keys:
        assert key not in seen
        assert key[:12] not in seen


async def test_an_accounts_file_alone_configures_the_server_and_a_tool_one_account_serves_takes_no_account(
    app: Starlette, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = [served(app, "cometly-2"), served(app, "highlevel-2")]
    tables = [
        f'[accounts.{account.name}]\nprovider = "{account.provider}"\ndescription = "{account.description}"\n'
        f'api_key_env = "{key_variable(account.name)}"\nbase_url = "{account.base_url(ROOT)}"\n'
        + (f'location_id = "{account.location_id}"\n' if account.location_id else "")
        for account in chosen
    ]
    path = tmp_path / "accounts.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    for account in chosen:
        monkeypatch.setenv(key_variable(account.name), account.key)
    settings = Settings.model_validate({"index": "off", "accounts_file": path})
    server = build_server(settings, transport=lambda: httpx.ASGITransport(app=app), sandbox=True)
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert "account" not in tools["list_contacts"].input_schema["properties"]
        assert tools["find_contact"].input_schema["properties"]["account"]["enum"] == ["cometly-2", "highlevel-2"]
        page = await call(client, "list_contacts", {"per_page": 1})
        assert page["account"] == "cometly-2"
        found = await call(client, "find_contact", {"name": "a", "account": "highlevel-2"})
        assert found["account"] == "highlevel-2"


async def test_an_upstream_answer_holding_another_accounts_key_is_redacted_in_the_result(
    app: Starlette, client: Client
) -> None:
    space, other = served(app, "cometly-2"), served(app, "highlevel-2").key
    async with client_for(app) as http:
        made = await http.post(
            CONTACTS_PATH,
            json={"emails": ["echo@example.com"], "names": [f"Echo {other}"]},
            headers={"Authorization": f"Bearer {space.key}"},
        )
    assert made.status_code in (200, 201), made.text
    result = await client.call_tool("get_contact", {"contact_id": str(made.json()["id"]), "account": "cometly-2"})
    assert not result.is_error
    seen = "".join(getattr(block, "text", "") for block in result.content) + json.dumps(result.structured_content)
    assert "echo@example.com" in seen
    assert other[:12] not in seen


async def test_the_sandbox_command_serves_further_accounts_and_prints_what_an_accounts_file_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served_apps: list[Starlette] = []

    def run_uvicorn(app: Starlette, **options: Any) -> None:
        served_apps.append(app)
        options["announce"](ROOT)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_run_uvicorn", run_uvicorn)
    assert cli.main(["sandbox", "--port", "0", "--contacts", "20", "--accounts", "1"]) == 0
    [sandbox] = served_apps
    try:
        printed = re.findall(r"\[accounts\.([a-z0-9-]+)\] (.*)", capsys.readouterr().out)
        assert [name for name, _ in printed] == ["cometly-2", "highlevel-2", "clemta-2"]
        tables: list[str] = []
        for name, rest in printed:
            values = dict(item.split("=", 1) for item in rest.split())
            monkeypatch.setenv(key_variable(name), values.pop("key"))
            lines = "".join(f'{key} = "{value}"\n' for key, value in values.items())
            tables.append(f'[accounts.{name}]\ndescription = "{name}"\napi_key_env = "{key_variable(name)}"\n{lines}')
        path = tmp_path / "accounts.toml"
        path.write_text("\n".join(tables), encoding="utf-8")
        async with Client(server_for(sandbox, path)) as client:
            page = await call(client, "list_contacts", {"per_page": 1, "account": "clemta-2"})
            found = await call(client, "find_contact", {"name": "a", "account": "highlevel-2"})
        assert (page["account"], found["account"]) == ("clemta-2", "highlevel-2")
        assert page["contacts"]
    finally:
        for account in sandbox_accounts(sandbox):
            sandbox_of(sandbox, account.name).store.close()


def test_a_bad_accounts_file_stops_the_start_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(
        '[accounts.acme-hl]\nprovider = "highlevel"\ndescription = "Acme"\napi_key_env = "ACME_HL_KEY"\n',
        encoding="utf-8",
    )
    result = run_entry_point(
        tmp_path, "serve", COMETLY_API_KEY="a-cometly-key-for-the-test", CONTACTS_MCP_ACCOUNTS_FILE=str(path)
    )
    assert_refused_in_one_line(result, "accounts.toml")

    path.write_text(
        '[accounts.acme-hl]\nprovider = "highlevel"\ndescription = "Acme"\napi_key_env = "ACME_HL_KEY"\n'
        'location_id = "loc-1"\n',
        encoding="utf-8",
    )
    result = run_entry_point(
        tmp_path, "serve", COMETLY_API_KEY="a-cometly-key-for-the-test", CONTACTS_MCP_ACCOUNTS_FILE=str(path)
    )
    assert "ACME_HL_KEY" in assert_refused_in_one_line(result, "accounts.toml:4")
