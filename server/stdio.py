"""The stdio transport: the SDK's server loop behind a reader that bounds the work in flight and answers bad input.

    stdin ─▶ lines ─▶ screen ─┬─ malformed: its JSON-RPC error, straight to stdout
                              ├─ request: to the SDK while fewer than `max_in_flight` are unanswered, else held
                              └─ notification, response: to the SDK in turn (a cancel for a held request drops it)
    SDK ─▶ answers ─▶ free the request's slot ─▶ stdout

Why not the SDK's `stdio_server` (mcp 2.3.0): its reader parses every line as fast as the pipe delivers
and the dispatcher starts a task per request, so nothing pushes back on a burst; 5,000 pipelined
`tools/list` took the process from 80 to 1,111 MiB, and 661 MiB stayed taken afterwards. It also drops
what it cannot parse with a debug log: a line that is not JSON, a batch, an object without `jsonrpc` or
`method`, and a request whose id is neither string nor integer (read as a notification, its id ignored),
so a client waiting on any of them waits for ever.

Here a request takes a slot until its answer is written or the SDK settles it unanswered (a cancelled
request). With every slot taken the reader keeps reading and holds the requests it reads (and the
notifications behind them, to keep their order), so a cancel or a client's answer to a server request
is not stuck behind them; it stops reading once `max_held` messages or `max_message_bytes` are held,
which leaves the rest in the pipe and blocks the client's writes. Memory is then bounded by
`max_in_flight` handlers, the held messages and the one line being read. 5,000 pipelined `tools/list`
now take the process from 80 to 87 MiB, and it stays at 87.

A handler waiting on the client (elicitation, sampling; no tool here does either) keeps its slot, so a
client that fills every slot with such requests and then pipelines `max_held` more before answering
would stall; the 2026 protocol has no server-to-client requests at all.

What belongs in the SDK rather than here: a bound on requests in flight per connection, a line-length
bound on stdio like the 4 MiB body bound of its HTTP transport, the error replies `screen` makes, and a
public way to serve an `MCPServer` over caller-supplied streams (this module reaches `_lowlevel_server`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, cast

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.shared.dispatcher import as_request_id, coerce_request_id
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class StdioLimits:
    """How much a client's input may occupy the server at once."""

    max_in_flight: int = 16
    """Requests handed to the SDK and not yet answered: more than a client runs at once, each maybe a bulk result."""
    max_held: int = 64
    """Messages read and parsed while every slot is taken, before the reader stops reading."""
    max_message_bytes: int = 4 * 1024 * 1024
    """The longest line accepted, as the SDK's HTTP transport bounds a request body (4 MiB)."""


async def serve_stdio(server: MCPServer[Any], limits: StdioLimits) -> None:
    """Serve `server` over fds 0 and 1, which point at /dev/null and stderr meanwhile so strays miss the wire."""
    with _claimed(0, _open_null) as wire_in, _claimed(1, _dup_stderr) as wire_out:
        await serve_stream(server, partial(_read, wire_in), partial(_write, wire_out), limits)


async def serve_stream(
    server: MCPServer[Any],
    receive: Callable[[], Awaitable[bytes]],
    send: Callable[[bytes], Awaitable[None]],
    limits: StdioLimits,
) -> None:
    """Serve `server` over newline-delimited JSON-RPC: `receive` returns the next bytes (b"" at the end).

    Returns once the input has ended and every answer the SDK wrote is sent.
    """
    to_server, from_client = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    to_client, answers = anyio.create_memory_object_stream[SessionMessage](0)
    relay = _Relay(to_server, to_client.clone(), limits)
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]  # MCPServer offers no public one
    async with anyio.create_task_group() as tg:
        tg.start_soon(_write_answers, answers, send)
        async with anyio.create_task_group() as reading:
            reading.start_soon(relay.read, _Lines(receive, limits.max_message_bytes))
            reading.start_soon(relay.pump)
            try:
                await lowlevel.run(
                    from_client, _Answers(to_client, relay.answered), lowlevel.create_initialization_options()
                )
            finally:
                reading.cancel_scope.cancel()  # the SDK stopped (end of input, or it failed): nothing more to read


def screen(line: bytes) -> JSONRPCMessage | list[JSONRPCError]:
    """The message `line` carries, or the errors to answer it with (none for a blank line or a bad response).

    The SDK's parser decides what is well formed; only what it refuses, and a "notification" that came
    with an id it could not read, is looked at again. JSON-RPC 2.0 asks for an error to every invalid
    request, with id null when its id cannot be read, and for nothing in reply to a notification or a
    response (answering a malformed response could start two peers answering each other's errors).
    """
    text = line.decode("utf-8", errors="replace")  # as the SDK reads stdin
    if not text.strip():
        return []
    message: JSONRPCMessage | None = None
    with suppress(ValidationError):
        message = jsonrpc_message_adapter.validate_json(text, by_name=False)
    if message is not None and not (isinstance(message, JSONRPCNotification) and '"id"' in text):
        return message
    try:
        value: object = json.loads(text)
    except (ValueError, RecursionError):
        return [_error(None, PARSE_ERROR, "Parse error")]
    if isinstance(value, list):
        batch = cast("list[object]", value)
        ids = [rid for item in batch if (rid := _id_of_request(item)) is not None]
        reason = "MCP has had no batches since its 2025-06-18 version; send one message per line"
        return [_invalid(rid, reason) for rid in ids] or [_invalid(None, reason)]
    if not isinstance(value, dict):
        return [_invalid(None, "a message is a JSON object")]
    fields = cast("dict[str, object]", value)
    if "method" not in fields and ("result" in fields or "error" in fields):
        logger.debug("stdio: dropped a malformed response")
        return []
    if "id" not in fields:
        if message is not None:  # a notification whose params hold an "id"
            return message
        return [_invalid(None, _flaw(fields) or "params must be an object")]
    rid = as_request_id(fields["id"])
    if rid is None:
        return [_invalid(None, "id must be a string or an integer")]
    if flaw := _flaw(fields):
        return [_invalid(rid, flaw)]
    if isinstance(fields.get("params"), list):  # JSON-RPC allows params by position; MCP takes them by name
        return [_error(rid, INVALID_PARAMS, "Invalid params", "params must be an object")]
    return [_invalid(rid, "not a valid request")]


def _flaw(fields: dict[str, object]) -> str | None:
    """What makes `fields` no JSON-RPC 2.0 request or notification, if anything."""
    if fields.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if not isinstance(fields.get("method"), str):
        return "method must be a string"
    if fields.get("params") is not None and not isinstance(fields.get("params"), dict | list):
        return "params must be an object"
    return None


def _id_of_request(item: object) -> RequestId | None:
    if not isinstance(item, dict):
        return None
    fields = cast("dict[str, object]", item)
    return as_request_id(fields["id"]) if "method" in fields and "id" in fields else None


def _invalid(rid: RequestId | None, reason: str) -> JSONRPCError:
    return _error(rid, INVALID_REQUEST, "Invalid Request", reason)


def _error(rid: RequestId | None, code: int, message: str, data: str | None = None) -> JSONRPCError:
    error = ErrorData(code=code, message=message) if data is None else ErrorData(code=code, message=message, data=data)
    return JSONRPCError(jsonrpc="2.0", id=rid, error=error)


class _TooLong:
    """A line over the size bound, already skipped."""


class _Lines:
    """Newline-delimited lines off a byte source, each at most `limit` bytes (a longer one is skipped whole)."""

    def __init__(self, receive: Callable[[], Awaitable[bytes]], limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._buffer = bytearray()
        self._ended = False

    async def next(self) -> bytes | _TooLong | None:
        """The next line without its newline, `_TooLong`, or None at the end of input."""
        start = 0
        while (end := self._buffer.find(b"\n", start)) < 0:
            if len(self._buffer) > self._limit:
                await self._skip_line()
                return _TooLong()
            if self._ended:
                if not self._buffer:
                    return None
                end = len(self._buffer)  # a last line without its newline still counts
                break
            start = len(self._buffer)
            await self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return _TooLong() if len(line) > self._limit else line

    async def _fill(self) -> None:
        chunk = await self._receive()
        if chunk:
            self._buffer += chunk
        else:
            self._ended = True

    async def _skip_line(self) -> None:
        while (end := self._buffer.find(b"\n")) < 0 and not self._ended:
            self._buffer.clear()
            await self._fill()
        del self._buffer[: end + 1 if end >= 0 else len(self._buffer)]


class _Slot:
    """A request handed to the SDK; freed once, by its answer or by the SDK settling it unanswered."""

    __slots__ = ("_free", "freed", "rid")

    def __init__(self, rid: RequestId, free: Callable[[_Slot], None]) -> None:
        self.rid = rid
        self._free = free
        self.freed = False

    def free(self) -> None:
        if not self.freed:
            self.freed = True
            self._free(self)

    async def unanswered(self) -> None:
        self.free()


class _Relay:
    """Client messages to the SDK in the order read, with at most `max_in_flight` requests unanswered."""

    def __init__(
        self,
        to_server: MemoryObjectSendStream[SessionMessage | Exception],
        to_client: MemoryObjectSendStream[SessionMessage],
        limits: StdioLimits,
    ) -> None:
        self._to_server = to_server
        self._to_client = to_client
        self._limits = limits
        self._held: deque[tuple[SessionMessage, int]] = deque()  # with the size of the line each came in
        self._held_bytes = 0
        self._urgent: deque[SessionMessage] = deque()  # cancels and answers: they concern requests handed on
        self._slots: dict[RequestId, deque[_Slot]] = {}
        self._in_flight = 0
        self._ended = False
        self._change = anyio.Event()

    async def read(self, lines: _Lines) -> None:
        """Read, screen and queue lines until the input ends; answer the malformed ones at once."""
        async with self._to_client:
            try:
                while True:
                    await self._until(self._room_to_read)
                    line = await lines.next()
                    if line is None:
                        return
                    if isinstance(line, _TooLong):
                        limit = self._limits.max_message_bytes
                        await self._reply([_invalid(None, f"a message is at most {limit} bytes")])
                        continue
                    screened = screen(line)
                    if isinstance(screened, list):
                        await self._reply(screened)
                    else:
                        self._queue(SessionMessage(screened), len(line))
            finally:
                self._ended = True
                self._changed()

    async def pump(self) -> None:
        """Hand queued messages to the SDK, a request once a slot is free; at the end of input, all of them.

        What is still held when the input ends goes to the SDK too, which settles it as it settles the
        requests in flight at that moment (an error "Connection closed" to each).
        """
        async with self._to_server:
            while True:
                await self._until(self._ready)
                if self._urgent:
                    item = self._urgent.popleft()
                elif self._held:
                    item, size = self._held.popleft()
                    self._held_bytes -= size
                    self._changed()
                    if isinstance(item.message, JSONRPCRequest):
                        item = self._admit(item.message)
                else:
                    return
                try:
                    await self._to_server.send(item)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # the SDK stopped reading: it is shutting down

    def answered(self, rid: RequestId) -> None:
        """Free the oldest slot of request `rid`, whose answer the SDK has written."""
        waiting = self._slots.get(rid)
        if waiting:
            waiting[0].free()

    def _room_to_read(self) -> bool:
        return len(self._held) < self._limits.max_held and self._held_bytes < self._limits.max_message_bytes

    def _ready(self) -> bool:
        if self._urgent or self._ended:
            return True
        if not self._held:
            return False
        head = self._held[0][0].message
        return not isinstance(head, JSONRPCRequest) or self._in_flight < self._limits.max_in_flight

    def _queue(self, item: SessionMessage, size: int) -> None:
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            self._urgent.append(item)
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            self._drop_held(cancelled_request_id_from_params(message.params))
            self._urgent.append(item)
        else:
            self._held.append((item, size))
            self._held_bytes += size
        self._changed()

    def _drop_held(self, rid: RequestId | None) -> None:
        # Cancelled before it was handed on: a cancelled request gets no answer, so it is simply dropped.
        if rid is None:
            return
        key = coerce_request_id(rid)  # "7" and 7 are one id, as the SDK correlates cancels
        for entry in [entry for entry in self._held if _is_request(entry[0], key)]:
            self._held.remove(entry)
            self._held_bytes -= entry[1]

    def _admit(self, request: JSONRPCRequest) -> SessionMessage:
        slot = _Slot(request.id, self._free)
        self._slots.setdefault(request.id, deque()).append(slot)
        self._in_flight += 1
        return SessionMessage(request, metadata=ServerMessageMetadata(on_request_unanswered=slot.unanswered))

    def _free(self, slot: _Slot) -> None:
        waiting = self._slots[slot.rid]
        waiting.remove(slot)
        if not waiting:
            del self._slots[slot.rid]
        self._in_flight -= 1
        self._changed()

    async def _reply(self, errors: list[JSONRPCError]) -> None:
        for error in errors:
            why = f" ({error.error.data})" if error.error.data else ""
            logger.warning("stdio: answered a malformed message with %s%s", error.error.message, why)
            await self._to_client.send(SessionMessage(error))

    def _changed(self) -> None:
        self._change.set()
        self._change = anyio.Event()

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._change.wait()


def _is_request(item: SessionMessage, key: RequestId) -> bool:
    return isinstance(item.message, JSONRPCRequest) and coerce_request_id(item.message.id) == key


class _Answers:
    """The SDK's write stream: passes each message on and frees the slot of each request answered."""

    def __init__(self, inner: MemoryObjectSendStream[SessionMessage], answered: Callable[[RequestId], None]) -> None:
        self._inner = inner
        self._answered = answered

    async def send(self, item: SessionMessage, /) -> None:
        try:
            await self._inner.send(item)
        finally:
            message = item.message
            if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
                self._answered(message.id)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _Answers:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _write_answers(
    answers: MemoryObjectReceiveStream[SessionMessage], send: Callable[[bytes], Awaitable[None]]
) -> None:
    # What is already waiting goes out in one write: a burst costs a thread hop per batch, not per answer.
    # Once the client has closed its end, answers are still taken (and dropped) so the SDK never blocks.
    closed = False
    async with answers:
        async for first in answers:
            frames = [_frame(first)]
            with suppress(anyio.WouldBlock, anyio.EndOfStream):
                while len(frames) < 64:
                    frames.append(_frame(answers.receive_nowait()))
            if closed:
                continue
            try:
                await send(b"".join(frames))
            except OSError as exc:
                logger.warning("stdio: stdout is closed (%s); dropping the answers still to come", exc)
                closed = True


def _frame(item: SessionMessage) -> bytes:
    return item.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


async def _read(fd: int) -> bytes:
    # Abandoned on cancel: a read blocked on a silent client must not hold up the exit.
    return await anyio.to_thread.run_sync(os.read, fd, _CHUNK, abandon_on_cancel=True)


async def _write(fd: int, data: bytes) -> None:
    await anyio.to_thread.run_sync(_write_all, fd, data, abandon_on_cancel=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_null() -> int:
    return os.open(os.devnull, os.O_RDONLY)


def _dup_stderr() -> int:
    return os.dup(2)


@contextmanager
def _claimed(fd: int, diversion: Callable[[], int]) -> Generator[int]:
    """A private descriptor on `fd`'s wire, with `fd` itself pointing at `diversion()` until the end.

    Like the SDK's own claim: a handler or child process that reads fd 0 or prints to fd 1 (through
    `sys.stdout` too) misses the protocol. On Windows, or where the descriptors cannot be moved,
    `fd` is served in place.
    """
    if sys.platform == "win32":
        yield fd
        return
    try:
        private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        yield fd
        return
    try:
        diverted = diversion()
        try:
            os.dup2(diverted, fd)
        finally:
            os.close(diverted)
    except OSError:
        yield private
        return
    try:
        yield private
    finally:
        if fd == 1 and sys.stdout is not None:
            with suppress(OSError, ValueError):
                sys.stdout.flush()  # what a stray print left buffered goes to stderr, not to the restored wire
        with suppress(OSError):
            os.dup2(private, fd)
        # `private` stays open: an abandoned worker thread may still be blocked on it, and a recycled
        # descriptor number would hand that thread some other file.
