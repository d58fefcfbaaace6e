"""The shipped entry point: `contacts-mcp` spawned over stdio, calling a real (local) HTTP upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import COMETLY_KEY, text_of
from tests.http_support import ENTRY_POINT, local_http_server

pytestmark = pytest.mark.anyio


class _Cometly(BaseHTTPRequestHandler):
    """A stand-in for Cometly's get endpoint, answering over real loopback HTTP."""

    def do_GET(self) -> None:
        authorized = self.headers.get("Authorization") == f"Bearer {COMETLY_KEY}"
        status, body = (200, {"id": 4821, "emails": [{"email": "jane@example.com"}]}) if authorized else (401, {})
        if authorized and not self.path.startswith("/public-api/v1/contacts/4821?"):
            status, body = 404, {"message": "Contact not found."}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    with local_http_server(_Cometly) as root:
        yield f"{root}/public-api/v1"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_installed_entry_point_serves_tools_over_stdio(upstream: str, mode: str) -> None:
    params = StdioServerParameters(
        command=str(ENTRY_POINT),
        env={"COMETLY_API_KEY": COMETLY_KEY, "COMETLY_BASE_URL": upstream, "CONTACTS_MCP_LOG_LEVEL": "WARNING"},
    )

    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:
            tools = await client.list_tools()
            found = await client.call_tool("get_contact", {"contact_id": "4821"})
            missing = await client.call_tool("get_contact", {"contact_id": "1"})
            info = await client.call_tool("server_info", {})

    assert [tool.name for tool in tools.tools] == [
        "get_contact",
        "list_contacts",
        "filter_by_custom_field",
        "create_contact",
        "describe_custom_fields",
        "server_info",
    ]
    assert found.structured_content == {"id": "4821", "provider": "cometly", "emails": ["jane@example.com"]}
    assert text_of(missing).startswith("[not_found]")
    assert not info.is_error, text_of(info)
    assert info.structured_content is not None
    assert info.structured_content["default_provider"] == "cometly"


async def test_the_entry_point_exits_2_naming_the_variables_when_no_provider_is_configured(tmp_path: Path) -> None:
    result = await anyio.run_process([str(ENTRY_POINT)], cwd=tmp_path, check=False, env={"PATH": "/usr/bin:/bin"})

    assert result.returncode == 2
    assert b"COMETLY_API_KEY" in result.stderr
    assert result.stdout == b""
