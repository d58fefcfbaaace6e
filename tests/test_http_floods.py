"""Floods against `contacts-mcp serve --transport http|sse`, the installed entry point in a process of its own.

A slow-header flood: more connections than the server has descriptors, each sending a request line
and then a header now and then, never finishing. Before the connection guard it locked everyone out
and logged a traceback per failed accept; now a request with the token is answered during it, and
the flood's connections are closed at the head deadline. An SSE flood: more streams than
MAX_SESSIONS, past which streamable HTTP already answered 503. Sizes are small and every wait is
bounded; the whole module takes about 20 s.
"""

from __future__ import annotations

import resource
import sys
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from bench.http_load import rss_kib
from contacts_mcp.server.connections import HEAD_TIMEOUT_SECONDS, Limits
from contacts_mcp.server.web import MAX_SESSIONS
from tests.http_support import TOKEN, Served, serve_http

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lowers descriptors, reads /proc")

DESCRIPTORS = 256
"""The server's RLIMIT_NOFILE in the slow-header flood: small, so a flood past it is small too."""
FLOOD = 400
"""Slow-header connections: more than the server's descriptors, as 1,100 were against 1,024."""
ANSWER_SECONDS = 5.0
LOG_BYTES = 16 * 1024
"""The most the server may write to stderr during the flood (before the guard: tens of MB in seconds)."""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def address(served: Served) -> tuple[str, int]:
    root = urlsplit(served.root)
    assert root.hostname is not None
    assert root.port is not None
    return root.hostname, root.port


@dataclass
class SlowFlood:
    """What one slow-header flood saw: the good request, /healthz, and how the flood's connections ended."""

    answer_status: int = 0
    answer_seconds: float = 0.0
    health_status: int = 0
    opened: int = 0
    all_open: anyio.Event = field(default_factory=anyio.Event)
    all_closed: anyio.Event = field(default_factory=anyio.Event)
    closed_after: list[float] = field(default_factory=list[float])
    server_log: str = ""


async def slow_client(host: str, port: int, flood: SlowFlood, started: float) -> None:
    """A request line, then a header line every second until the server closes the connection."""
    stream = await anyio.connect_tcp(host, port)
    async with stream:
        try:
            await stream.send(b"GET /mcp HTTP/1.1\r\n")
            flood.opened += 1
            if flood.opened == FLOOD:
                flood.all_open.set()
            while True:
                with anyio.move_on_after(1):
                    await read_to_close(stream)
                    break
                await stream.send(b"X-Slow: 1\r\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
            pass
    flood.closed_after.append(anyio.current_time() - started)
    if len(flood.closed_after) == FLOOD:
        flood.all_closed.set()


async def read_to_close(stream: SocketStream) -> None:
    try:
        while True:
            await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        return


async def run_slow_flood(served: Served) -> SlowFlood:
    """The flood, the good request and /healthz during it; then until the flood is closed, or at most long enough."""
    host, port = address(served)
    flood = SlowFlood()
    async with anyio.create_task_group() as tg:
        started = anyio.current_time()
        for _ in range(FLOOD):
            tg.start_soon(slow_client, host, port, flood, started)
        with anyio.fail_after(ANSWER_SECONDS):
            await flood.all_open.wait()  # the flood is in place before the good request comes
        async with httpx.AsyncClient(timeout=ANSWER_SECONDS) as http:
            with anyio.move_on_after(ANSWER_SECONDS):  # unanswered: status 0
                asked = anyio.current_time()
                answer = await http.post(
                    served.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
                )
                flood.answer_seconds = anyio.current_time() - asked
                flood.answer_status = answer.status_code
            with anyio.move_on_after(ANSWER_SECONDS):
                flood.health_status = (await http.get(served.root + "/healthz")).status_code
        with anyio.move_on_after(HEAD_TIMEOUT_SECONDS + 10):
            await flood.all_closed.wait()
        tg.cancel_scope.cancel()
    flood.server_log = "".join(served.stderr)
    return flood


@pytest.fixture(scope="module")
def slow_flood() -> SlowFlood:
    env = {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}
    with serve_http(["--sandbox", "--contacts", "5", "--transport", "http"], env, descriptors=DESCRIPTORS) as served:
        flood = anyio.run(run_slow_flood, served)
    print(
        f"slow-header flood of {FLOOD} against {DESCRIPTORS} descriptors: answered {flood.answer_status} in "
        f"{flood.answer_seconds:.2f} s, /healthz {flood.health_status}, {len(flood.closed_after)} of {flood.opened} "
        f"closed by the server, the last after {max(flood.closed_after, default=0):.1f} s; "
        f"server stderr {len(flood.server_log.encode())} bytes"
    )
    return flood


def test_during_a_slow_header_flood_past_the_descriptor_limit_a_request_with_the_token_is_answered(
    slow_flood: SlowFlood,
) -> None:
    assert slow_flood.opened == FLOOD
    assert slow_flood.answer_status == 200, slow_flood.server_log[-3000:]
    assert slow_flood.health_status == 200


def test_every_connection_of_a_slow_header_flood_is_closed_by_the_head_deadline(slow_flood: SlowFlood) -> None:
    assert len(slow_flood.closed_after) == FLOOD
    assert max(slow_flood.closed_after) < HEAD_TIMEOUT_SECONDS + 10


def test_a_slow_header_flood_leaves_the_server_log_short_and_free_of_failed_accepts(slow_flood: SlowFlood) -> None:
    assert "Too many open files" not in slow_flood.server_log
    assert len(slow_flood.server_log.encode()) < LOG_BYTES, slow_flood.server_log[-3000:]
    assert f"{Limits.for_descriptors(DESCRIPTORS).connections} connections (descriptor limit {DESCRIPTORS})" in (
        slow_flood.server_log
    )


SSE_FLOOD = MAX_SESSIONS + 100
SSE_CONCURRENCY = 200


@dataclass
class SseFlood:
    """What the SSE floods saw: the first flood's statuses, and the server's memory along the way."""

    first: Counter[str] = field(default_factory=Counter[str])
    reopen_attempts: int = 0
    rss_kib: dict[str, int] = field(default_factory=dict[str, int])


async def open_stream(host: str, port: int, streams: list[SocketStream], statuses: Counter[str]) -> None:
    """GET /sse with the token; keep the stream open once its endpoint event arrived."""
    stream = await anyio.connect_tcp(host, port)
    request = f"GET /sse HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    await stream.send(request.encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += await stream.receive()
    status = received.split(b" ", 2)[1].decode()
    statuses[status] += 1
    if status != "200":
        await stream.aclose()
        return
    while b"event: endpoint" not in received:
        received += await stream.receive()
    streams.append(stream)


async def open_streams(host: str, port: int, count: int, statuses: Counter[str]) -> list[SocketStream]:
    streams: list[SocketStream] = []
    limiter = anyio.CapacityLimiter(SSE_CONCURRENCY)

    async def one() -> None:
        async with limiter:
            await open_stream(host, port, streams, statuses)

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return streams


async def close_all(streams: list[SocketStream]) -> None:
    for stream in streams:
        await stream.aclose()


async def run_sse_floods(served: Served) -> SseFlood:
    host, port = address(served)
    pid = served.process.pid
    flood = SseFlood()
    flood.rss_kib["before"] = rss_kib(pid) or 0
    with anyio.fail_after(60):
        streams = await open_streams(host, port, SSE_FLOOD, flood.first)
        flood.rss_kib["first streams open"] = rss_kib(pid) or 0
        await close_all(streams)
        while True:  # a closed stream's session ends a moment after its connection: until then it holds a place
            flood.reopen_attempts += 1
            statuses: Counter[str] = Counter()
            streams = await open_streams(host, port, MAX_SESSIONS, statuses)
            if statuses["200"] == MAX_SESSIONS:
                break
            await close_all(streams)
            await anyio.sleep(0.2)
        flood.rss_kib["second streams open"] = rss_kib(pid) or 0
        await close_all(streams)
        await open_streams(host, port, 1, Counter())  # one more round trip: the closes reached the server
        flood.rss_kib["after"] = rss_kib(pid) or 0
    return flood


@pytest.fixture(scope="module")
def sse_floods() -> SseFlood:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * SSE_FLOOD + 200:
        pytest.skip(f"needs {2 * SSE_FLOOD + 200} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds every stream's other end
    try:
        env = {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}
        with serve_http(["--sandbox", "--contacts", "5", "--transport", "sse"], env) as served:
            flood = anyio.run(run_sse_floods, served)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    mib = {moment: f"{kib / 1024:.0f} MiB" for moment, kib in flood.rss_kib.items()}
    print(f"SSE flood of {SSE_FLOOD}: {dict(flood.first)}; {MAX_SESSIONS} reopened in {flood.reopen_attempts} tries")
    print(f"server RSS: {mib}")
    return flood


def test_sse_refuses_streams_past_max_sessions_with_503_as_streamable_http_does(sse_floods: SseFlood) -> None:
    assert sse_floods.first == Counter({"200": MAX_SESSIONS, "503": SSE_FLOOD - MAX_SESSIONS})


def test_closed_sse_sessions_give_their_places_and_memory_to_the_next_ones(sse_floods: SseFlood) -> None:
    rss = sse_floods.rss_kib
    assert sse_floods.reopen_attempts < 20  # MAX_SESSIONS opened again once the first ones ended
    assert rss["second streams open"] < rss["first streams open"] * 1.1  # the memory is reused, nothing piles up
    assert rss["first streams open"] - rss["before"] < MAX_SESSIONS * 150  # KiB: the cap bounds it
