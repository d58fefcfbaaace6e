"""The public contract: tools/list is snapshotted, annotations are asserted, read-only mode hides writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from contacts_mcp.server.app import build_server
from contacts_mcp.server.errors import ConfigurationError
from contacts_mcp.server.settings import Settings, load_settings
from tests.conftest import clemta_settings, highlevel_settings, make_all_settings, make_settings, text_of

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"


async def listed_tools(**settings: Any) -> list[dict[str, Any]]:
    return await tools_of(make_settings(**settings))


async def tools_of(settings: Settings) -> list[dict[str, Any]]:
    async with Client(build_server(settings)) as client:
        result = await client.list_tools()
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in result.tools]


async def test_tools_list_matches_the_snapshot_of_the_public_contract() -> None:
    """On purpose changes: `UPDATE_SNAPSHOTS=1 uv run pytest tests/test_tool_list.py`, then review the diff."""
    tools = await tools_of(make_all_settings())

    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(tools, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert tools == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


async def test_every_tool_sets_its_annotations_deliberately() -> None:
    hints = {tool["name"]: tool["annotations"] for tool in await tools_of(make_all_settings())}

    read = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": True}
    assert hints["get_contact"] == read
    assert hints["list_contacts"] == read
    assert hints["filter_by_custom_field"] == read
    assert hints["find_contact"] == read
    assert hints["describe_custom_fields"] == read
    assert hints["server_info"] == {**read, "openWorldHint": False}  # asks no upstream: only the server's own state
    assert hints["create_contact"] == {
        "readOnlyHint": False,
        "destructiveHint": False,
        "idempotentHint": False,
        "openWorldHint": True,
    }


async def test_every_tool_has_a_valid_name_a_description_and_structured_output() -> None:
    for tool in await tools_of(make_all_settings()):
        assert tool["name"].isidentifier()
        assert tool["name"] == tool["name"].lower()
        assert len(tool["description"]) > 200
        assert tool["outputSchema"]["type"] == "object"
        assert "anyOf" not in tool["inputSchema"]
        assert "oneOf" not in tool["inputSchema"]
        if tool["name"] != "server_info":  # about the whole server, so no provider to choose
            assert tool["inputSchema"]["properties"]["provider"]["enum"]


async def test_server_info_takes_no_arguments_and_no_provider() -> None:
    tools = {tool["name"]: tool for tool in await tools_of(make_all_settings())}

    assert tools["server_info"]["inputSchema"]["properties"] == {}
    assert "required" not in tools["server_info"]["inputSchema"]


async def test_describe_custom_fields_offers_every_configured_provider_and_a_refresh_flag() -> None:
    tools = {tool["name"]: tool for tool in await tools_of(make_all_settings())}

    arguments = tools["describe_custom_fields"]["inputSchema"]["properties"]
    assert set(arguments) == {"refresh", "provider"}
    assert arguments["refresh"]["type"] == "boolean"
    assert arguments["refresh"]["default"] is False
    assert arguments["provider"]["enum"] == ["cometly", "highlevel", "clemta"]
    assert "required" not in tools["describe_custom_fields"]["inputSchema"]


async def test_the_custom_fields_resource_is_listed_as_json() -> None:
    async with Client(build_server(make_all_settings())) as client:
        result = await client.list_resources()

    [resource] = result.resources
    assert str(resource.uri) == "contacts://custom-fields"
    assert resource.mime_type == "application/json"


PROVIDER_COMBINATIONS = [
    (
        "cometly",
        {"cometly": True},
        {
            "get_contact": ["cometly"],
            "list_contacts": ["cometly"],
            "filter_by_custom_field": ["cometly"],
            "find_contact": ["cometly"],
            "create_contact": ["cometly"],
            "update_contact": ["cometly"],
            "describe_custom_fields": ["cometly"],
        },
    ),
    (
        "highlevel",
        {"highlevel": True},
        {
            "get_contact": ["highlevel"],
            "find_contact": ["highlevel"],
            "create_contact": ["highlevel"],
            "update_contact": ["highlevel"],
            "describe_custom_fields": ["highlevel"],
        },
    ),
    (
        "clemta",
        {"clemta": True},
        {
            "get_contact": ["clemta"],
            "list_contacts": ["clemta"],
            "find_contact": ["clemta"],
            "create_contact": ["clemta"],
            "update_contact": ["clemta"],
            "describe_custom_fields": ["clemta"],
        },
    ),
    (
        "cometly and highlevel",
        {"cometly": True, "highlevel": True},
        {
            "get_contact": ["cometly", "highlevel"],
            "list_contacts": ["cometly"],
            "filter_by_custom_field": ["cometly"],
            "find_contact": ["cometly", "highlevel"],
            "create_contact": ["cometly", "highlevel"],
            "update_contact": ["cometly", "highlevel"],
            "describe_custom_fields": ["cometly", "highlevel"],
        },
    ),
    (
        "highlevel and clemta",
        {"highlevel": True, "clemta": True},
        {
            "get_contact": ["highlevel", "clemta"],
            "list_contacts": ["clemta"],
            "find_contact": ["highlevel", "clemta"],
            "create_contact": ["highlevel", "clemta"],
            "update_contact": ["highlevel", "clemta"],
            "describe_custom_fields": ["highlevel", "clemta"],
        },
    ),
    (
        "all three",
        {"cometly": True, "highlevel": True, "clemta": True},
        {
            "get_contact": ["cometly", "highlevel", "clemta"],
            "list_contacts": ["cometly", "clemta"],
            "filter_by_custom_field": ["cometly"],
            "find_contact": ["cometly", "highlevel", "clemta"],
            "create_contact": ["cometly", "highlevel", "clemta"],
            "update_contact": ["cometly", "highlevel", "clemta"],
            "describe_custom_fields": ["cometly", "highlevel", "clemta"],
        },
    ),
]


@pytest.mark.parametrize(
    ("configured", "expected"), [case[1:] for case in PROVIDER_COMBINATIONS], ids=[c[0] for c in PROVIDER_COMBINATIONS]
)
async def test_each_tool_is_listed_for_exactly_the_configured_providers_that_serve_it(
    configured: dict[str, bool], expected: dict[str, list[str]]
) -> None:
    settings = make_settings() if "cometly" in configured else Settings()
    if "highlevel" in configured:
        settings = settings.model_copy(update={"highlevel": highlevel_settings()})
    if "clemta" in configured:
        settings = settings.model_copy(update={"clemta": clemta_settings()})

    tools = {tool["name"]: tool for tool in await tools_of(settings)}

    server_info = tools.pop("server_info")  # listed whichever providers are configured, without a provider argument
    assert "provider" not in server_info["inputSchema"]["properties"]
    assert {name: tool["inputSchema"]["properties"]["provider"]["enum"] for name, tool in tools.items()} == expected
    for tool in tools.values():
        provider = tool["inputSchema"]["properties"]["provider"]
        assert provider["default"] == provider["enum"][0]


async def test_read_only_mode_does_not_list_create_contact_at_all() -> None:
    names = [tool["name"] for tool in await listed_tools(read_only=True)]

    assert names == [
        "get_contact",
        "list_contacts",
        "filter_by_custom_field",
        "find_contact",
        "describe_custom_fields",
        "server_info",
    ]
    all_names = [tool["name"] for tool in await tools_of(make_all_settings(read_only=True))]
    assert all_names == [
        "get_contact",
        "list_contacts",
        "filter_by_custom_field",
        "find_contact",
        "describe_custom_fields",
        "server_info",
    ]


async def test_read_only_mode_refuses_a_create_call_as_not_supported() -> None:
    async with Client(build_server(make_settings(read_only=True))) as client:
        result = await client.call_tool("create_contact", {"emails": ["a@example.com"]})

    assert result.is_error
    assert text_of(result).startswith("[not_supported]")


async def test_the_default_provider_setting_puts_that_provider_first() -> None:
    tools = await tools_of(make_all_settings(default_provider="clemta"))

    providers = {tool["name"]: tool["inputSchema"]["properties"].get("provider") for tool in tools}
    assert providers["get_contact"]["default"] == "clemta"
    assert providers["list_contacts"]["default"] == "clemta"
    assert providers["filter_by_custom_field"]["default"] == "cometly"
    assert providers["describe_custom_fields"]["default"] == "clemta"
    assert providers["describe_custom_fields"]["enum"][0] == "clemta"
    assert providers["server_info"] is None


async def test_asking_a_provider_for_what_it_cannot_do_is_not_supported_and_names_who_can() -> None:
    async with Client(build_server(make_all_settings())) as client:
        result = await client.call_tool(
            "list_contacts", {"start_date": "2024-01-01", "end_date": "2024-01-02", "provider": "highlevel"}
        )

    assert text_of(result).startswith("[not_supported]")
    assert "cometly, clemta" in text_of(result)
    assert "find_contact" in text_of(result)  # what to do instead on HighLevel itself


async def test_a_provider_without_custom_fields_says_what_to_do_instead_of_filtering() -> None:
    async with Client(build_server(make_all_settings())) as client:
        result = await client.call_tool(
            "filter_by_custom_field",
            {
                "start_date": "2024-01-01",
                "conditions": [{"field": "Plan", "operator": "any"}],
                "provider": "clemta",
            },
        )

    assert text_of(result).startswith("[not_supported]")
    assert "list_contacts over a date range" in text_of(result)


async def test_the_provider_argument_names_its_default_for_each_tool() -> None:
    tools = {tool["name"]: tool for tool in await tools_of(make_all_settings(default_provider="clemta"))}

    described = {
        name: tool["inputSchema"]["properties"]["provider"]["description"]
        for name, tool in tools.items()
        if "provider" in tool["inputSchema"]["properties"]
    }
    assert "Left out, clemta" in described["get_contact"]
    assert "Left out, cometly" in described["filter_by_custom_field"]  # the only provider that filters


def test_a_default_provider_that_is_not_configured_stops_the_server() -> None:
    from contacts_mcp.server.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_DEFAULT_PROVIDER"):
        build_server(make_settings(default_provider="highlevel"))


async def test_the_tools_allow_list_serves_exactly_the_tools_named() -> None:
    tools = await tools_of(make_all_settings(tools=["get_contact", "find_contact"]))

    assert [tool["name"] for tool in tools] == ["get_contact", "find_contact"]


async def test_the_tools_allow_list_knows_the_tools_about_the_server() -> None:
    tools = await tools_of(make_all_settings(tools=["get_contact", "describe_custom_fields", "server_info"]))

    assert [tool["name"] for tool in tools] == ["get_contact", "describe_custom_fields", "server_info"]


async def test_an_allow_list_without_describe_custom_fields_lists_neither_it_nor_its_resource() -> None:
    async with Client(build_server(make_all_settings(tools=["get_contact", "server_info"]))) as client:
        tools = await client.list_tools()
        resources = await client.list_resources()

    assert [tool.name for tool in tools.tools] == ["get_contact", "server_info"]
    assert resources.resources == []


async def test_a_tool_left_off_the_allow_list_is_refused_as_not_supported() -> None:
    async with Client(build_server(make_settings(tools=["get_contact"]))) as client:
        result = await client.call_tool("create_contact", {"emails": ["a@example.com"]})

    assert text_of(result).startswith("[not_supported]")


def test_the_allow_list_parses_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTS_MCP_TOOLS", " get_contact , list_contacts,")

    assert load_settings(env_file=None).tools == ["get_contact", "list_contacts"]


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"tools": ["get_contacts"]}, "unknown tools: get_contacts"),
        ({"tools": ["create_contact"], "read_only": True}, "CONTACTS_MCP_READ_ONLY"),
    ],
)
def test_a_contradictory_allow_list_stops_the_server(overrides: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        build_server(make_settings(**overrides))


async def test_the_filter_says_what_cometlys_operators_mean_where_counts_would_go_wrong() -> None:
    tools = {tool["name"]: tool for tool in await tools_of(make_all_settings())}
    described = tools["filter_by_custom_field"]["description"]
    operator = tools["filter_by_custom_field"]["inputSchema"]["$defs"]["FilterCondition"]["properties"]["operator"]

    for text in (described, operator["description"]):
        assert "greater than 0" in text  # a number field's `any`
        assert "unset" in text  # not_equal_to / not_contains leave unset contacts out
    assert "whole calendar day" in described or "whole day" in operator["description"]


async def test_the_contact_schema_says_which_provider_gives_no_creation_time() -> None:
    tools = {tool["name"]: tool for tool in await tools_of(make_all_settings())}
    created_at = tools["get_contact"]["outputSchema"]["properties"]["created_at"]["description"]

    assert "Cometly" in created_at
    assert "no creation time" in created_at
    assert "dateAdded" in created_at
