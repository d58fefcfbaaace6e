"""The `contacts-mcp` command: parse, build, run. stdout belongs to the MCP protocol under stdio.

contacts-mcp [serve]              the MCP server over stdio (what MCP clients start)
contacts-mcp tools [--json]       the tools this configuration serves
contacts-mcp call TOOL [JSON]     one tool call through the real MCP path, for debugging a setup
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import anyio

from server.errors import ConfigurationError
from server.settings import Settings, load_settings

logger = logging.getLogger("contacts_mcp")

EXIT_CONFIGURATION = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contacts-mcp",
        description="An MCP server that gives AI agents typed tools over a company's contacts.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the MCP server over stdio (the default)")
    tools = commands.add_parser("tools", help="print the tools this configuration serves")
    tools.add_argument("--json", action="store_true", help="print the full tools/list result as JSON")
    call = commands.add_parser("call", help="run one tool through the MCP path and print its result")
    call.add_argument("tool", help="tool name, e.g. get_contact")
    call.add_argument("arguments", nargs="?", default="{}", help='arguments as JSON, e.g. \'{"contact_id": "4821"}\'')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `contacts-mcp` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("CONTACTS_MCP_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
        match args.command:
            case "tools":
                return anyio.run(_print_tools, settings, args.json)
            case "call":
                return anyio.run(_call, settings, args.tool, args.arguments)
            case _:
                return _serve(settings)
    except ConfigurationError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIGURATION
    except KeyboardInterrupt:
        return 130


def _serve(settings: Settings) -> int:
    from server.app import build_server

    server = build_server(settings)
    logger.info("contacts-mcp serving over stdio")
    server.run("stdio")
    return 0


async def _print_tools(settings: Settings, as_json: bool) -> int:
    from mcp import Client

    from server.app import build_server, configured_providers
    from server.providers import PROVIDERS

    providers = configured_providers(settings)
    if not providers:
        print(
            "contacts-mcp: no provider is configured; these are the tools every provider would serve.", file=sys.stderr
        )
        providers = list(PROVIDERS.values())
    async with Client(build_server(settings, providers=providers)) as client:
        listed = await client.list_tools()
    if as_json:
        print(json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True)["tools"], indent=2))
        return 0
    for tool in listed.tools:
        hints = tool.annotations
        kind = "read-only" if hints and hints.read_only_hint else "writes"
        print(f"{tool.name}  ({kind})")
        properties: dict[str, Any] = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        for name, schema in properties.items():
            default = "" if name in required else f" = {json.dumps(schema.get('default'))}"
            print(f"    {name}{default}")
        print(textwrap.indent(textwrap.fill(tool.description or "", width=96), "    # "))
        print()
    return 0


async def _call(settings: Settings, tool: str, raw_arguments: str) -> int:
    from mcp import Client

    from server.app import build_server

    try:
        arguments = json.loads(raw_arguments)
    except json.JSONDecodeError as exc:
        print(
            f'contacts-mcp: the arguments are not JSON ({exc.msg}); e.g. \'{{"contact_id": "4821"}}\'', file=sys.stderr
        )
        return EXIT_CONFIGURATION
    if not isinstance(arguments, dict):
        print("contacts-mcp: the arguments must be a JSON object", file=sys.stderr)
        return EXIT_CONFIGURATION
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(tool, arguments)  # pyright: ignore[reportUnknownArgumentType]
    for block in result.content:
        print(getattr(block, "text", block))
    return 1 if result.is_error else 0
