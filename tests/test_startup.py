"""The stdio server imports only what serving over stdio uses, so it starts lean as the code grows.

Each test runs the real `main()` in a child process over the SDK's stdio client, makes the calls a
client makes at start, and reads the child's `sys.modules` as it exits. The controls prove the
check sees an import when a path does need the module.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import COMETLY_KEY

pytestmark = pytest.mark.anyio

LAZY = (
    "contacts_mcp.server.sandbox",
    "contacts_mcp.server.web",
    "contacts_mcp.server.demo",
    "contacts_mcp.server.budgets.redis_backend",
    "redis",
)
"""Modules only some paths need: the sandbox, HTTP transports, the demo, Redis-shared budgets."""

_CHILD = """
import atexit, json, os, sys
def _record():
    with open(os.environ["MODULES_OUT"], "w", encoding="utf-8") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(_record)
from contacts_mcp.server.cli import main
sys.exit(main(sys.argv[1:]))
"""


async def modules_after_serving(tmp_path: Path, *args: str, **env: str) -> set[str]:
    """The modules a `contacts-mcp` child had loaded when it exited after listing tools and one call."""
    out = tmp_path / "modules.json"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "COMETLY_API_KEY": COMETLY_KEY,
        "CONTACTS_MCP_LOG_LEVEL": "WARNING",
        "MODULES_OUT": str(out),
        **env,
    }
    params = StdioServerParameters(command=sys.executable, args=["-c", _CHILD, *args], env=environment)
    with anyio.fail_after(60):
        async with Client(params) as client:
            assert (await client.list_tools()).tools
            info = await client.call_tool("server_info", {})
            assert not info.is_error
    # The stdio client waits for the child to exit when it closes, so the child has written the file.
    return set(json.loads(out.read_text(encoding="utf-8")))


def loaded(modules: set[str], package: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for name in modules)


async def test_the_stdio_server_imports_no_sandbox_http_transport_demo_or_redis(tmp_path: Path) -> None:
    modules = await modules_after_serving(tmp_path, "serve")

    assert "contacts_mcp.server.app" in modules  # the check sees the server's own modules
    assert [package for package in LAZY if loaded(modules, package)] == []


async def test_the_sandbox_is_imported_when_asked_for(tmp_path: Path) -> None:
    modules = await modules_after_serving(tmp_path, "serve", "--sandbox")

    assert loaded(modules, "contacts_mcp.server.sandbox")
    assert not loaded(modules, "contacts_mcp.server.web")


async def test_redis_is_imported_when_budgets_are_shared_through_it(tmp_path: Path, redis_url: str) -> None:
    modules = await modules_after_serving(tmp_path, "serve", CONTACTS_MCP_REDIS_URL=redis_url)

    assert loaded(modules, "redis")
    assert not loaded(modules, "contacts_mcp.server.sandbox")
