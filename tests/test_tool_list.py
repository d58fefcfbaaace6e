"""The public contract: tools/list is snapshotted, annotations are asserted, read-only mode hides writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.errors import ConfigurationError
from server.settings import Settings, load_settings
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
        assert tool["inputSchema"]["properties"]["provider"]["enum"]


PROVIDER_COMBINATIONS = [
    (
        "cometly",
        {"cometly": True},
        {
            "get_contact": ["cometly"],
            "list_contacts": ["cometly"],
            "filter_by_custom_field": ["cometly"],
            "create_contact": ["cometly"],
        },
    ),
    (
        "highlevel",
        {"highlevel": True},
        {"get_contact": ["highlevel"], "find_contact": ["highlevel"], "create_contact": ["highlevel"]},
    ),
    (
        "clemta",
        {"clemta": True},
        {"get_contact": ["clemta"], "list_contacts": ["clemta"], "create_contact": ["clemta"]},
    ),
    (
        "cometly and highlevel",
        {"cometly": True, "highlevel": True},
        {
            "get_contact": ["cometly", "highlevel"],
            "list_contacts": ["cometly"],
            "filter_by_custom_field": ["cometly"],
            "find_contact": ["highlevel"],
            "create_contact": ["cometly", "highlevel"],
        },
    ),
    (
        "highlevel and clemta",
        {"highlevel": True, "clemta": True},
        {
            "get_contact": ["highlevel", "clemta"],
            "list_contacts": ["clemta"],
            "find_contact": ["highlevel"],
            "create_contact": ["highlevel", "clemta"],
        },
    ),
    (
        "all three",
        {"cometly": True, "highlevel": True, "clemta": True},
        {
            "get_contact": ["cometly", "highlevel", "clemta"],
            "list_contacts": ["cometly", "clemta"],
            "filter_by_custom_field": ["cometly"],
            "find_contact": ["highlevel"],
            "create_contact": ["cometly", "highlevel", "clemta"],
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

    tools = await tools_of(settings)

    assert {tool["name"]: tool["inputSchema"]["properties"]["provider"]["enum"] for tool in tools} == expected
    for tool in tools:
        provider = tool["inputSchema"]["properties"]["provider"]
        assert provider["default"] == provider["enum"][0]


async def test_read_only_mode_does_not_list_create_contact_at_all() -> None:
    names = [tool["name"] for tool in await listed_tools(read_only=True)]

    assert names == ["get_contact", "list_contacts", "filter_by_custom_field"]
    all_names = [tool["name"] for tool in await tools_of(make_all_settings(read_only=True))]
    assert all_names == ["get_contact", "list_contacts", "filter_by_custom_field", "find_contact"]


async def test_read_only_mode_refuses_a_create_call_as_not_supported() -> None:
    async with Client(build_server(make_settings(read_only=True))) as client:
        result = await client.call_tool("create_contact", {"emails": ["a@example.com"]})

    assert result.is_error
    assert text_of(result).startswith("[not_supported]")


async def test_the_default_provider_setting_puts_that_provider_first() -> None:
    tools = await tools_of(make_all_settings(default_provider="clemta"))

    providers = {tool["name"]: tool["inputSchema"]["properties"]["provider"] for tool in tools}
    assert providers["get_contact"]["default"] == "clemta"
    assert providers["list_contacts"]["default"] == "clemta"
    assert providers["filter_by_custom_field"]["default"] == "cometly"


async def test_asking_a_provider_for_what_it_cannot_do_is_not_supported_and_names_who_can() -> None:
    async with Client(build_server(make_all_settings())) as client:
        result = await client.call_tool(
            "list_contacts", {"start_date": "2024-01-01", "end_date": "2024-01-02", "provider": "highlevel"}
        )

    assert text_of(result).startswith("[not_supported]")
    assert "cometly, clemta" in text_of(result)


def test_a_default_provider_that_is_not_configured_stops_the_server() -> None:
    from server.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CONTACTS_MCP_DEFAULT_PROVIDER"):
        build_server(make_settings(default_provider="highlevel"))


async def test_the_tools_allow_list_serves_exactly_the_tools_named() -> None:
    tools = await tools_of(make_all_settings(tools=["get_contact", "find_contact"]))

    assert [tool["name"] for tool in tools] == ["get_contact", "find_contact"]


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
