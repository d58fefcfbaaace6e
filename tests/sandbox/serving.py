"""A sandbox served over real loopback HTTP by uvicorn in a thread, for tests of the whole path."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import anyio
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def serve(app: ASGIApp, *, statuses: list[int] | None = None) -> Iterator[str]:
    """Serve `app` on a free 127.0.0.1 port in a thread; yield its root URL, then stop it.

    Args:
        app: The app, served as it is (so the sandbox's `reset` fault can reset the connection).
        statuses: When given, the status of every response sent is appended to it (the app is
            then served through a recording wrapper, and a `reset` closes the connection instead).
    """
    served = app if statuses is None else _recording(app, statuses)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(served, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with anyio.from_thread.start_blocking_portal() as portal:
            portal.call(_wait_started, server)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _recording(app: ASGIApp, statuses: list[int]) -> ASGIApp:
    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        await app(scope, receive, recording)

    return recorded


async def _wait_started(server: uvicorn.Server) -> None:
    with anyio.fail_after(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await anyio.sleep(0.01)
