"""The stdio transport (`server.stdio`) and the shipped entry point spawned over it.

The entry point is driven twice: through the SDK's stdio client against a real (local) HTTP upstream,
and with raw lines on its stdin, as a client that pipelines, or sends what the SDK's client never
would. `serve_stream` is driven in process, with a server whose tools wait until told, to watch the
bound on requests in flight.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)

from contacts_mcp.server.stdio import StdioLimits, screen, serve_stream
from tests.conftest import COMETLY_KEY, text_of
from tests.http_support import ENTRY_POINT, local_http_server, server_environment

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
        env={
            "COMETLY_API_KEY": COMETLY_KEY,
            "COMETLY_BASE_URL": upstream,
            "CONTACTS_MCP_LOG_LEVEL": "WARNING",
            "CONTACTS_MCP_INDEX": "off",  # as in every other test: no sync against the stub, no file in the home
        },
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
        "find_contact",
        "create_contact",
        "update_contact",
        "describe_custom_fields",
        "server_info",
    ]
    assert found.structured_content == {"id": "4821", "provider": "cometly", "emails": ["jane@example.com"]}
    assert text_of(missing).startswith("[not_found]")
    assert not info.is_error, text_of(info)
    assert info.structured_content is not None
    assert info.structured_content["default_provider"] == "cometly"
    assert "index" not in info.structured_content


async def test_the_entry_point_exits_2_naming_the_variables_when_no_provider_is_configured(tmp_path: Path) -> None:
    result = await anyio.run_process([str(ENTRY_POINT)], cwd=tmp_path, check=False, env={"PATH": "/usr/bin:/bin"})

    assert result.returncode == 2
    assert b"COMETLY_API_KEY" in result.stderr
    assert result.stdout == b""


async def test_call_without_a_provider_points_at_its_own_sandbox_flag(tmp_path: Path) -> None:
    command = [str(ENTRY_POINT), "call", "list_contacts", "{}"]
    result = await anyio.run_process(command, cwd=tmp_path, check=False, env={"PATH": "/usr/bin:/bin"})

    assert result.returncode == 2
    assert b"contacts-mcp call TOOL ARGUMENTS --sandbox" in result.stderr


# --- raw lines into the installed entry point ---

ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
"""The 2026-07-28 per-request `_meta`: with it a request needs no initialize handshake."""


def request(rid: int | str, method: str, params: dict[str, Any] | None = None) -> bytes:
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**(params or {}), "_meta": ENVELOPE}}
    return json.dumps(body).encode() + b"\n"


class RawStdio:
    """A `contacts-mcp` child spoken to in raw lines: what is written is what its stdin reads."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def send(self, data: bytes) -> None:
        await self._stdin.send(data)

    async def receive(self) -> dict[str, Any]:
        return json.loads(await self._stdout.receive_until(b"\n", 16 * 1024 * 1024))

    def memory(self, field: str) -> float:
        """`VmRSS` (resident now) or `VmHWM` (the most resident so far) of the child, in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        [line] = [line for line in status.splitlines() if line.startswith(f"{field}:")]
        return int(line.split()[1]) / 1024


@asynccontextmanager
async def raw_stdio(tmp_path: Path) -> AsyncGenerator[RawStdio]:
    """`contacts-mcp serve --sandbox` with its stdout and stdin as pipes; its stderr in tmp_path/stderr.log."""
    env = server_environment({"CONTACTS_MCP_LOG_LEVEL": "WARNING"})
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = await anyio.open_process(
            [str(ENTRY_POINT), "serve", "--sandbox", "--contacts", "20"], env=env, stderr=stderr
        )
        async with process:
            try:
                yield RawStdio(process)
            finally:
                with anyio.move_on_after(10):
                    await process.aclose()  # closes stdin, which ends the server
                if process.returncode is None:
                    process.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the child's memory from /proc")
async def test_a_burst_of_pipelined_tools_list_is_all_answered_and_memory_comes_back(tmp_path: Path) -> None:
    burst = 1000
    async with raw_stdio(tmp_path) as child:
        with anyio.fail_after(60):
            await child.send(request(0, "tools/list"))
            assert (await child.receive())["id"] == 0
            baseline = child.memory("VmRSS")
            answered: set[int] = set()

            async def read_all() -> None:
                while len(answered) < burst:
                    answer = await child.receive()
                    assert "result" in answer, answer
                    answered.add(answer["id"])

            async with anyio.create_task_group() as tg:
                tg.start_soon(read_all)
                await child.send(b"".join(request(rid, "tools/list") for rid in range(1, burst + 1)))
            peak, after = child.memory("VmHWM"), child.memory("VmRSS")

    assert answered == set(range(1, burst + 1))
    # The SDK alone: 80 MiB at the start, 428 at the peak, 288 after 2,000 (1,111 and 661 after 5,000); 1,000
    # pipelined requests keep the growth visible at half the time.
    assert peak < baseline + 64, (baseline, peak, after)
    assert after < 1.5 * baseline, (baseline, peak, after)


MALFORMED = [
    pytest.param(b"this is not json", None, PARSE_ERROR, id="not-json"),
    pytest.param(b'[{"jsonrpc": "2.0", "id": 4, "method": "tools/list"}]', 4, INVALID_REQUEST, id="batch"),
    pytest.param(b'{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}', None, INVALID_REQUEST, id="float-id"),
    pytest.param(b'{"jsonrpc": "2.0", "id": "m7"}', "m7", INVALID_REQUEST, id="missing-method"),
    pytest.param(b'{"id": 8, "method": "tools/list"}', 8, INVALID_REQUEST, id="missing-jsonrpc"),
    pytest.param(b'{"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": [1]}', 9, INVALID_PARAMS, id="array"),
]


@pytest.mark.parametrize(("line", "rid", "code"), MALFORMED)
async def test_a_malformed_request_gets_its_error_and_the_server_keeps_serving(
    tmp_path: Path, line: bytes, rid: int | str | None, code: int
) -> None:
    async with raw_stdio(tmp_path) as child:
        with anyio.fail_after(15):
            await child.send(line + b"\n")
            error = await child.receive()
            await child.send(request("after", "tools/call", {"name": "server_info", "arguments": {}}))
            after = await child.receive()

    assert error["jsonrpc"] == "2.0"
    assert error["id"] == rid
    assert error["error"]["code"] == code
    assert after["id"] == "after"
    assert after["result"]["isError"] is False


async def test_notifications_and_blank_lines_get_no_answer(tmp_path: Path) -> None:
    async with raw_stdio(tmp_path) as child:
        with anyio.fail_after(15):
            await child.send(b'{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}\n')
            await child.send(b'{"jsonrpc": "2.0", "method": "notifications/x", "params": {"id": 1}}\n\n   \n')
            await child.send(request("ping", "ping"))
            first = await child.receive()

    assert first["id"] == "ping"  # nothing answered what came before it


# --- screen: what the SDK's parser refuses, looked at again ---


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        pytest.param(b'{"jsonrpc":"2.0","id":"a","method":"x"}', JSONRPCRequest, id="request"),
        pytest.param(b'{"jsonrpc":"2.0","method":"x","params":{"id":1}}', JSONRPCNotification, id="nested-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"result":{}}', JSONRPCResponse, id="response"),
        pytest.param(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}', JSONRPCError, id="error"),
    ],
)
def test_what_the_sdk_reads_passes_through_screen(line: bytes, kind: type[JSONRPCMessage]) -> None:
    assert type(screen(line)) is kind


@pytest.mark.parametrize(
    ("line", "answers"),
    [
        pytest.param(b"", [], id="empty-line"),
        pytest.param(b"  \r", [], id="blank-line"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"result":5}', [], id="bad-response"),
        pytest.param(b'{"id":1.5,"error":{}}', [], id="bad-error-response"),
        pytest.param(b'{"jsonrpc":"2.0","method":5}', [(None, INVALID_REQUEST)], id="bad-notification"),
        pytest.param(b"5", [(None, INVALID_REQUEST)], id="number"),
        pytest.param(b'"tools/list"', [(None, INVALID_REQUEST)], id="string"),
        pytest.param(b"\xff\xfe", [(None, PARSE_ERROR)], id="not-utf-8"),
        pytest.param(b'{"jsonrpc":"2.0","id":3,"method":"tools/list"', [(None, PARSE_ERROR)], id="cut-short"),
        pytest.param(b"[]", [(None, INVALID_REQUEST)], id="empty-batch"),
        pytest.param(b'{"jsonrpc":"2.0","id":{"n":1},"method":"a"}', [(None, INVALID_REQUEST)], id="object-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":true,"method":"a"}', [(None, INVALID_REQUEST)], id="bool-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":null,"method":"a"}', [(None, INVALID_REQUEST)], id="null-id"),
        pytest.param(b"[" * 100_000, [(None, PARSE_ERROR)], id="too-deep"),
        pytest.param(
            b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"},{"jsonrpc":"2.0","id":"2","method":"c"}]',
            [(1, INVALID_REQUEST), ("2", INVALID_REQUEST)],
            id="batch-answers-each-request-id",
        ),
        pytest.param(b'[{"jsonrpc":"2.0","method":"b"}]', [(None, INVALID_REQUEST)], id="batch-of-notifications"),
        pytest.param(b'{"jsonrpc":"1.0","id":1,"method":"a"}', [(1, INVALID_REQUEST)], id="old-jsonrpc"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"a","params":"p"}', [(1, INVALID_REQUEST)], id="string-params"),
    ],
)
def test_screen_answers_what_the_sdk_would_drop(line: bytes, answers: list[tuple[int | str | None, int]]) -> None:
    screened = screen(line)

    assert isinstance(screened, list)
    assert [(error.id, error.error.code) for error in screened] == answers


# --- serve_stream in process: the bound on requests in flight ---


class Gate:
    """Tools that wait until released, counting how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.release = anyio.Event()

    def server(self) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer("gate")

        @server.tool()
        async def hold(name: str) -> str:
            self.started.append(name)
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                await self.release.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(name)
                raise
            finally:
                self.running -= 1
            return name

        @server.tool()
        async def hold_forever(name: str) -> str:
            self.started.append(name)
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(name)
                raise
            return name

        return server


class Wire:
    """Both ends of `serve_stream`'s byte stream, as the client sees them."""

    def __init__(self) -> None:
        self._in_send, self._in_receive = anyio.create_memory_object_stream[bytes](1000)
        self._out_send, self._out_receive = anyio.create_memory_object_stream[bytes](1000)
        self._out = BufferedByteReceiveStream(self._out_receive)

    async def server_receives(self) -> bytes:
        try:
            return await self._in_receive.receive()
        except anyio.EndOfStream:
            return b""

    async def server_sends(self, data: bytes) -> None:
        await self._out_send.send(data)

    async def send(self, data: bytes) -> None:
        await self._in_send.send(data)

    async def receive(self) -> dict[str, Any]:
        return json.loads(await self._out.receive_until(b"\n", 1024 * 1024))

    def end_input(self) -> None:
        self._in_send.close()

    def close(self) -> None:
        for stream in (self._in_send, self._in_receive, self._out_send, self._out_receive):
            stream.close()


def call(rid: int | str, tool: str, name: str) -> bytes:
    return request(rid, "tools/call", {"name": tool, "arguments": {"name": name}})


def cancel(rid: int | str) -> bytes:
    notification = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid}}
    return json.dumps(notification).encode() + b"\n"


@asynccontextmanager
async def serving(gate: Gate, limits: StdioLimits) -> AsyncGenerator[Wire]:
    wire = Wire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_stream, gate.server(), wire.server_receives, wire.server_sends, limits)
        try:
            yield wire
        finally:
            wire.end_input()
    wire.close()


async def test_no_more_requests_are_handled_at_once_than_the_bound() -> None:
    gate = Gate()
    with anyio.fail_after(20):
        async with serving(gate, StdioLimits(max_in_flight=3)) as wire:
            await wire.send(b"".join(call(rid, "hold", f"c{rid}") for rid in range(8)))
            await anyio.wait_all_tasks_blocked()
            running_while_blocked = gate.running
            gate.release.set()
            answers = [await wire.receive() for _ in range(8)]

    assert running_while_blocked == 3
    assert gate.most == 3
    assert sorted(answer["id"] for answer in answers) == list(range(8))


async def test_a_request_cancelled_before_a_slot_frees_never_runs_nor_is_answered() -> None:
    gate = Gate()
    with anyio.fail_after(20):
        async with serving(gate, StdioLimits(max_in_flight=1)) as wire:
            await wire.send(call(1, "hold", "first") + call(2, "hold", "cancelled") + cancel(2))
            await anyio.wait_all_tasks_blocked()
            gate.release.set()
            first = await wire.receive()
            await wire.send(request(3, "ping"))
            then = await wire.receive()

    assert gate.started == ["first"]
    assert (first["id"], then["id"]) == (1, 3)


async def test_a_cancel_is_read_while_every_slot_is_taken() -> None:
    gate = Gate()
    with anyio.fail_after(20):
        async with serving(gate, StdioLimits(max_in_flight=1)) as wire:
            await wire.send(call(1, "hold_forever", "stuck"))
            await anyio.wait_all_tasks_blocked()
            await wire.send(call(2, "hold", "next") + cancel(1))
            gate.release.set()
            answer = await wire.receive()

    assert gate.cancelled == ["stuck"]
    assert answer["id"] == 2  # the cancelled request is never answered; the held one then ran


async def test_a_line_over_the_size_bound_is_answered_and_skipped() -> None:
    gate = Gate()
    with anyio.fail_after(20):
        async with serving(gate, StdioLimits(max_message_bytes=1000)) as wire:
            await wire.send(call(1, "hold", "x" * 5000)[:3000])
            await wire.send(call(1, "hold", "x" * 5000)[3000:] + request(2, "ping"))
            error = await wire.receive()
            then = await wire.receive()

    assert (error["id"], error["error"]["code"]) == (None, INVALID_REQUEST)
    assert then["id"] == 2
    assert gate.started == []
