"""The SDK floor for start-up: a minimal `MCPServer` with four trivial tools, served over stdio.

    python -m bench.floor_server
    python bench/floor_server.py

What any server built on the SDK pays before it can answer tools/list: starting the interpreter,
importing `mcp.server.mcpserver`, registering a few typed tools. `bench/cold_start.py` times the
contacts-mcp server against it. It imports nothing from this project, so it runs as a plain file too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field


def build_server() -> MCPServer:
    """The floor server: four tools with typed arguments and returns, no lifespan, no state."""
    server = MCPServer("floor", version="0.0.0")

    @server.tool()
    def echo(text: Annotated[str, Field(description="Text to send back.")]) -> str:
        """Return `text` unchanged."""
        return text

    @server.tool()
    def add(
        a: Annotated[int, Field(description="First addend.")], b: Annotated[int, Field(description="Second addend.")]
    ) -> int:
        """Return `a + b`."""
        return a + b

    @server.tool()
    def now() -> str:
        """Return the current time in UTC, ISO 8601."""
        return datetime.now(UTC).isoformat()

    @server.tool()
    def upper(text: Annotated[str, Field(description="Text to upper-case.")]) -> str:
        """Return `text` in upper case."""
        return text.upper()

    return server


def main() -> None:
    """Serve the floor server over stdio until stdin closes."""
    build_server().run("stdio")


if __name__ == "__main__":
    main()
