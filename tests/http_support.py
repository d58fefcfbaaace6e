"""Servers on free loopback ports: the installed `contacts-mcp serve --transport http|sse`, and stub upstreams."""

from __future__ import annotations

import os
import re
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import uvicorn
from starlette.types import ASGIApp

ENTRY_POINT = Path(sys.executable).parent / "contacts-mcp"
TOKEN = "test-token-0123456789abcdefghij"
START_SECONDS = 30.0

_ANNOUNCED = re.compile(r"serving MCP over .* at (http://\S+?)(/mcp|/sse)")


@dataclass
class Served:
    """A running server: where it listens, its process, and every line it wrote to stderr so far."""

    root: str
    path: str
    process: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list[str])

    @property
    def url(self) -> str:
        return self.root + self.path


@asynccontextmanager
async def uvicorn_on(app: ASGIApp, listener: socket.socket) -> AsyncGenerator[None]:
    """`app` served in this process by uvicorn (its lifespan on) on `listener`, a bound, listening socket,
    until the context exits; the listener is closed then. Connections made before it serves wait in the backlog."""
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="on"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [listener])
        try:
            yield
        finally:
            server.should_exit = True
    listener.close()


def server_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without provider or server settings, the contact index off, plus `extra`.

    The index is off as in every in-process test (tests/conftest.py): on, it would sync against the
    stub upstream in the background and keep its file in the user's data directory.
    """
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COMETLY_", "HIGHLEVEL_", "CLEMTA_", "CONTACTS_MCP_"))
    }
    return {**keep, "CONTACTS_MCP_INDEX": "off", **extra}


@contextmanager
def serve_http(
    arguments: Sequence[str], env: Mapping[str, str], *, descriptors: int | None = None
) -> Generator[Served]:
    """Start `contacts-mcp serve <arguments> --port 0` and yield it once it listens; stop it afterwards.

    With `descriptors`, the server runs with its RLIMIT_NOFILE (soft and hard) lowered to that many.

    Raises:
        AssertionError: If it exits or does not announce its address within `START_SECONDS`.
    """
    process = subprocess.Popen(
        [str(ENTRY_POINT), "serve", *arguments, "--port", "0"],
        env=server_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        preexec_fn=None if descriptors is None else lambda: _limit_descriptors(descriptors),
    )
    lines: list[str] = []
    announced = threading.Event()
    found: list[tuple[str, str]] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            match = _ANNOUNCED.search(line)
            if match and not found:
                found.append((match.group(1), match.group(2)))
                announced.set()
        announced.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        announced.wait(START_SECONDS)
        assert found, f"the server did not start within {START_SECONDS:.0f} s:\n{''.join(lines)}"
        root, path = found[0]
        yield Served(root=root, path=path, process=process, stderr=lines)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _limit_descriptors(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


@contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Generator[str]:
    """Serve `handler` on a free 127.0.0.1 port, a thread per request; yield its root URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
