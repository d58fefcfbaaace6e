"""`server.connections` in process: uvicorn with the guarded protocol on a loopback socket, and the log filter.

Each server here has tiny limits (two connections, deadlines of a fraction of a second), so what a
flood would take seconds to show happens at once. The floods against the real entry point are in
`tests/test_http_floods.py`.
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio
import pytest
import uvicorn
from anyio.abc import SocketStream
from starlette.types import Message, Receive, Scope, Send

from contacts_mcp.server.connections import Limits, RepeatCollapse, raise_descriptor_limit, uvicorn_options

pytestmark = pytest.mark.anyio

SMALL = Limits(descriptors=256, connections=2, backlog=16, head_seconds=0.3, body_seconds=0.3)
WAIT_SECONDS = 5.0
"""The bound on any wait below: the deadlines are 0.3 s, so this is generous on a loaded machine."""


class App:
    """Answers `ok`; on `/wait` first waits for `release`; records what each request received."""

    def __init__(self, *, waiting: int = 0) -> None:
        self.release = anyio.Event()
        self.all_waiting = anyio.Event()
        self._to_wait = waiting
        self.received: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["method"] == "POST":
            while True:
                message = await receive()
                self.received.append(message)
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    break
        if scope["path"] == "/wait":
            self._to_wait -= 1
            if self._to_wait == 0:
                self.all_waiting.set()
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def guarded(app: App, limits: Limits = SMALL) -> AsyncGenerator[int]:
    """Serve `app` with the guarded protocol on a free loopback port (listening before this yields)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(limits.backlog)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        **uvicorn_options(limits),
    )
    server = uvicorn.Server(config)
    with sock:  # asyncio closes it when the server stops; this covers a server that never started
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield sock.getsockname()[1]
            finally:
                app.release.set()
                server.should_exit = True


async def read_all(stream: SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    try:
        while True:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        return data


async def test_a_request_head_that_never_finishes_gets_408_and_the_connection_is_closed() -> None:
    async with guarded(App()) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with anyio.fail_after(WAIT_SECONDS):
            answer = await read_all(stream)

    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_deadline() -> None:
    async with guarded(App()) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        with anyio.fail_after(WAIT_SECONDS):
            answer = await read_all(stream)

    assert answer == b""


async def test_a_second_request_head_dribbled_on_a_kept_alive_connection_is_cut_off_too() -> None:
    async with guarded(App()) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with anyio.fail_after(WAIT_SECONDS):
            first = await stream.receive()
            await stream.send(b"GET / HTTP/1.1\r\n")  # this clears uvicorn's keep-alive timer
            rest = await read_all(stream)

    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 408 ")


async def test_a_body_that_never_arrives_closes_the_connection_and_the_app_reads_a_disconnect() -> None:
    app = App()
    async with guarded(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789")
        with anyio.fail_after(WAIT_SECONDS):
            answer = await read_all(stream)

    assert not answer.startswith(b"HTTP/1.1 200 ")
    assert app.received[-1]["type"] == "http.disconnect"


async def test_past_the_cap_the_oldest_idle_connection_makes_room_for_a_request() -> None:
    async with (
        guarded(App()) as port,
        await anyio.connect_tcp("127.0.0.1", port) as oldest,
        await anyio.connect_tcp("127.0.0.1", port) as newer,
    ):
        await newer.send(b"GET / HTTP/1.1\r\nHost")  # part of a head: idle, but newer than `oldest`
        async with await anyio.connect_tcp("127.0.0.1", port) as third:
            with anyio.fail_after(WAIT_SECONDS):
                await third.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                answered = await read_all(third)
                closed = await read_all(oldest)

    assert answered.startswith(b"HTTP/1.1 200 ")
    assert closed == b""  # it had sent nothing: closed without an answer


async def test_past_the_cap_with_every_connection_in_a_request_a_new_one_gets_503_at_once() -> None:
    app = App(waiting=2)
    async with (
        guarded(app) as port,
        await anyio.connect_tcp("127.0.0.1", port) as first,
        await anyio.connect_tcp("127.0.0.1", port) as second,
    ):
        for busy in (first, second):
            await busy.send(b"GET /wait HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with anyio.fail_after(WAIT_SECONDS):
            await app.all_waiting.wait()
            async with await anyio.connect_tcp("127.0.0.1", port) as third:
                refused = await read_all(third)
            app.release.set()
            answered = await first.receive()

    assert refused.startswith(b"HTTP/1.1 503 ")
    assert answered.startswith(b"HTTP/1.1 200 ")


def test_the_cap_leaves_a_quarter_of_the_descriptors_for_everything_else() -> None:
    assert Limits.for_descriptors(1024).connections == 768
    assert Limits.for_descriptors(256).connections == 192
    assert Limits.for_descriptors(1_048_576).connections == 4_096  # MAX_CONNECTIONS
    assert Limits.for_descriptors(64).connections == 32
    assert Limits.for_descriptors(1024).backlog <= (1024 - 768) // 2  # one accept burst fits in what is left


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        in_force = raise_descriptor_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == in_force
        assert in_force == (hard if hard != resource.RLIM_INFINITY else in_force)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def collapsing(clock: Clock) -> tuple[logging.Logger, io.StringIO, RepeatCollapse]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    collapse = RepeatCollapse(handler, window=10.0, clock=clock)
    handler.addFilter(collapse)
    log = logging.getLogger(f"tests.collapse.{id(out)}")
    log.propagate = False
    log.addHandler(handler)
    return log, out, collapse


def test_a_repeated_error_with_a_traceback_is_written_once_and_then_counted() -> None:
    clock = Clock()
    log, out, collapse = collapsing(clock)

    for attempt in range(1000):
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            log.exception("socket.accept() out of system resource (attempt %d)", attempt)
    clock.now = 10.0
    collapse.flush()

    text = out.getvalue()
    assert text.count("Traceback") == 1
    assert "repeated 999 more times in 10 s" in text
    assert len(text.splitlines()) < 10


def test_different_messages_pass_and_a_repeat_after_the_window_passes_again() -> None:
    clock = Clock()
    log, out, _ = collapsing(clock)

    log.warning("one thing")
    log.warning("another thing")
    log.warning("one thing")
    clock.now = 11.0
    log.warning("one thing")

    assert out.getvalue().splitlines() == [
        "one thing",
        "another thing",
        "one thing (repeated 1 more times in 11 s)",
        "one thing",
    ]


def test_at_exit_the_counts_of_windows_still_open_are_written() -> None:
    clock = Clock()
    log, out, collapse = collapsing(clock)

    for _ in range(3):
        log.warning("refused a connection")
    clock.now = 2.0
    collapse.flush()
    before_exit = out.getvalue()
    collapse.flush(ended_only=False)

    assert before_exit.splitlines() == ["refused a connection"]
    assert out.getvalue().splitlines()[-1] == "refused a connection (repeated 2 more times in 2 s)"


def test_past_its_table_a_loggers_new_messages_share_one_count() -> None:
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    collapse = RepeatCollapse(handler, window=10.0, keys=2, clock=clock)
    handler.addFilter(collapse)
    log = logging.getLogger("tests.collapse.table")
    log.propagate = False
    log.addHandler(handler)

    for number in range(100):
        log.warning(f"message {number}")  # a template of its own each time, as some libraries log
    clock.now = 10.0
    collapse.flush()

    lines = out.getvalue().splitlines()
    assert lines[:3] == ["message 0", "message 1", "message 2"]
    assert lines[3:] == ["97 more messages like 'message 2' in 10 s (not shown)"]
