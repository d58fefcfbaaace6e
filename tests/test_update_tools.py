"""update_contact on the tool list: its annotations, and read-only mode and the allow-list leave it out."""

from __future__ import annotations

import pytest
from mcp import Client

from contacts_mcp.server.app import build_server
from contacts_mcp.server.errors import ConfigurationError
from tests.conftest import make_all_settings, make_settings, text_of

pytestmark = pytest.mark.anyio


async def test_update_contact_is_listed_for_every_provider_as_an_idempotent_destructive_write() -> None:
    async with Client(build_server(make_all_settings())) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    tool = tools["update_contact"]
    annotations = tool.annotations
    assert annotations is not None
    assert (annotations.read_only_hint, annotations.destructive_hint) == (False, True)
    assert (annotations.idempotent_hint, annotations.open_world_hint) == (True, True)
    assert tool.input_schema["properties"]["provider"]["enum"] == ["cometly", "highlevel", "clemta"]


async def test_read_only_mode_leaves_update_contact_out_and_refuses_a_call() -> None:
    async with Client(build_server(make_all_settings(read_only=True))) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("update_contact", {"contact_id": "1", "custom_fields": {"Plan": "x"}})

    assert "update_contact" not in names
    assert "create_contact" not in names
    assert text_of(result).startswith("[not_supported] update_contact is not served here: this server runs read-only")
    assert "CONTACTS_MCP_READ_ONLY" in text_of(result)


async def test_the_allow_list_serves_update_contact_only_when_named() -> None:
    async with Client(build_server(make_settings(tools=["get_contact"]))) as client:
        left_out = [tool.name for tool in (await client.list_tools()).tools]
        refused = await client.call_tool("update_contact", {"contact_id": "1", "custom_fields": {"Plan": "x"}})
    async with Client(build_server(make_settings(tools=["get_contact", "update_contact"]))) as client:
        named = [tool.name for tool in (await client.list_tools()).tools]

    assert left_out == ["get_contact"]
    assert text_of(refused).startswith("[not_supported] update_contact is not served here: the operator's allow-list")
    assert named == ["get_contact", "update_contact"]


def test_an_allow_list_naming_update_contact_in_read_only_mode_stops_the_server() -> None:
    with pytest.raises(ConfigurationError, match=r"update_contact.*CONTACTS_MCP_READ_ONLY"):
        build_server(make_settings(tools=["update_contact"], read_only=True))


async def test_an_empty_update_is_a_validation_error_and_sends_nothing() -> None:
    async with Client(build_server(make_settings())) as client:  # Cometly is mocked: any request would fail
        result = await client.call_tool("update_contact", {"contact_id": "4821"})

    assert text_of(result).startswith("[validation_error]")
