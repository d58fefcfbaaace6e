"""Upstream failures on demand: the sandbox answering as a vendor whose infrastructure is failing.

A `FaultPlan` says which failures to inject, how often and on which paths. `SandboxApp` consults it
before routing, so a fault comes before the vendor's authentication and rate limits, as a failing
proxy or load balancer would; a faulted request spends no rate budget and changes no data.

Kinds:

```
500           HTTP 500 with a JSON error body, as Laravel sends
502-html      HTTP 502 with an HTML page, as a proxy sends
503           HTTP 503 with `Retry-After: <retry_after>`
reset         the response starts (headers and a few bytes), then the connection is reset: a TCP RST
              when uvicorn serves the app directly; otherwise the connection is closed mid-body
timeout       nothing is sent for `delay` seconds (other requests go on); then the real answer, if
              the client is still there
not-json      HTTP 200 with an HTML page
wrong-shape   HTTP 200 with valid JSON of the wrong shape (`shape`, default `{"unexpected": true}`)
empty         HTTP 200 with an empty body
large         HTTP 200 with `large_bytes` of valid JSON, sent chunked (no Content-Length)
```

With `rate` 1.0 every matching request fails, and several kinds take turns in the order given, so
tests are deterministic; a lower rate draws from a `random.Random(seed)`.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, get_args

import anyio
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

FaultKind = Literal["500", "502-html", "503", "reset", "timeout", "not-json", "wrong-shape", "empty", "large"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
_BY_NAME: dict[str, FaultKind] = {kind: kind for kind in FAULT_KINDS}
CONTROL_PATH = "/_sandbox/faults"
"""GET shows the faults in force, POST (a `Faults` as JSON) replaces them; never faulted itself."""

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_MAINTENANCE = (
    "<!DOCTYPE html><html><head><title>Down for maintenance</title></head>"
    "<body><h1>We'll be right back.</h1></body></html>"
)
_RESET_PROMISED_BYTES = 4096
"""The Content-Length a `reset` answer announces before only a few bytes arrive."""
_CHUNK_ITEM = b'{"id":1,"email":"large@example.com","name":"A Large Answer","phone":"+14155550100"},'


class Faults(BaseModel):
    """Which failures a sandbox injects, how often, and where (the body of `POST /_sandbox/faults`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kinds: tuple[FaultKind, ...] = ()
    """The failures to inject, taking turns; none: the sandbox behaves normally."""
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """The probability that a matching request fails."""
    route: str | None = None
    """Only paths containing this text fail, e.g. `/highlevel/` or `/contacts/search`."""
    account: str | None = None
    """Only requests made as this account fail: its name, key, location id or company id as
    `sandbox_accounts()` lists them (the name `default` is each vendor's first account: add `route`
    for one vendor's). Requests with an unknown key never match. None: every account's."""
    times: int | None = Field(default=None, ge=0)
    """Fail only this many requests, then behave normally; None: no end."""
    retry_after: int = Field(default=1, ge=0)
    """The `Retry-After` seconds of a `503`."""
    delay: float = Field(default=60.0, ge=0.0)
    """How long a `timeout` sends nothing."""
    large_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    """The size of a `large` body."""
    shape: JsonValue = Field(default_factory=lambda: {"unexpected": True})
    """The body of a `wrong-shape` answer."""
    seed: int = 1
    """Seeds the draws when `rate` is below 1."""


def parse_kinds(text: str) -> tuple[FaultKind, ...]:
    """Fault kinds from `KIND[,KIND...]`.

    Raises:
        ValueError: A name is not a fault kind; the message lists the kinds.
    """
    kinds: list[FaultKind] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        kind = _BY_NAME.get(name)
        if kind is None:
            raise ValueError(f"unknown fault {name!r}; kinds: {', '.join(FAULT_KINDS)}")
        kinds.append(kind)
    if not kinds:
        raise ValueError(f"no fault given; kinds: {', '.join(FAULT_KINDS)}")
    return tuple(kinds)


@dataclass(frozen=True)
class Injection:
    """One request the sandbox failed on purpose."""

    method: str
    path: str
    kind: FaultKind


class FaultPlan:
    """The faults a sandbox injects now; switch them while it runs with `set`, or over HTTP.

    Safe to use from another thread than the one serving the app (tests switch faults that way).
    """

    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()
        self._random = random.Random(self._faults.seed)
        self._turn = 0
        self._left: int | None = None
        self.injected: deque[Injection] = deque(maxlen=10_000)
        """The most recent injected failures, oldest first."""
        self.set(faults or Faults())

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    def set(self, faults: Faults) -> None:
        """Inject `faults` from the next request on (turns, draws and `times` start over)."""
        with self._lock:
            self._faults = faults
            self._random = random.Random(faults.seed)
            self._turn = 0
            self._left = faults.times

    def clear(self) -> None:
        """Inject nothing from the next request on."""
        self.set(Faults())

    def pick(self, method: str, path: str, account: Collection[str] = ()) -> tuple[FaultKind, Faults] | None:
        """The failure to answer this request with, and the faults it belongs to; None to answer it normally.

        `account` holds what names the request's account (its name, key, location or company id),
        empty when it names none the sandbox serves.
        """
        with self._lock:
            faults = self._faults
            if not faults.kinds or path == CONTROL_PATH or (faults.route and faults.route not in path):
                return None
            if faults.account is not None and faults.account not in account:
                return None
            if self._left == 0 or (faults.rate < 1.0 and self._random.random() >= faults.rate):
                return None
            if self._left is not None:
                self._left -= 1
            kind = faults.kinds[self._turn % len(faults.kinds)]
            self._turn += 1
            self.injected.append(Injection(method=method, path=path, kind=kind))
            return kind, faults


async def inject(kind: FaultKind, faults: Faults, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
    """Answer one request with the failure `kind`; `app` answers it after a `timeout` the client waited out."""
    match kind:
        case "500":
            await JSONResponse({"message": "Server Error"}, status_code=500)(scope, receive, send)
        case "502-html":
            await HTMLResponse(_BAD_GATEWAY, status_code=502)(scope, receive, send)
        case "503":
            headers = {"Retry-After": str(faults.retry_after)}
            await JSONResponse({"message": "Service Unavailable"}, status_code=503, headers=headers)(
                scope, receive, send
            )
        case "reset":
            await _reset(receive, send)
        case "timeout":
            await _late(faults.delay, scope, receive, send, app)
        case "not-json":
            await HTMLResponse(_MAINTENANCE)(scope, receive, send)
        case "wrong-shape":
            await JSONResponse(faults.shape)(scope, receive, send)
        case "empty":
            await Response(b"", media_type="application/json")(scope, receive, send)
        case "large":
            body = _large_body(faults.large_bytes)
            await StreamingResponse(body, media_type="application/json")(scope, receive, send)


async def _reset(receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(_RESET_PROMISED_BYTES).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b'{"data": [', "more_body": True})
    transport = _connection_of(send)
    if transport is None:
        return  # the server closes a connection whose answer stopped short of its Content-Length
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST, not FIN
    transport.abort()
    with anyio.move_on_after(1):  # until the server has seen the connection go, so it logs no unfinished answer
        while (await receive())["type"] != "http.disconnect":
            pass


def _connection_of(send: Send) -> asyncio.Transport | None:
    """The connection's transport when uvicorn serves the app directly: its `send` is a method of an
    object that holds it. None under any other server or wrapper."""
    transport: Any = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


async def _late(delay: float, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
    received: list[Message] = []
    with anyio.move_on_after(delay):
        while True:  # reading is how the server learns that the client hung up
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            received.append(message)

    async def replay() -> Message:
        return received.pop(0) if received else await receive()

    await app(scope, replay, send)


async def _large_body(size: int) -> AsyncIterator[bytes]:
    """`{"data": [...]}` of about `size` bytes: valid JSON a client without a limit would read whole."""
    head, tail = b'{"data":[', b'{"id":0}],"next_cursor":null}'
    chunk = _CHUNK_ITEM * max(1, 65_536 // len(_CHUNK_ITEM))
    yield head
    sent = len(head) + len(tail)
    while sent + len(chunk) <= size:
        yield chunk
        sent += len(chunk)
    items = max(0, size - sent) // len(_CHUNK_ITEM)
    if items:
        yield _CHUNK_ITEM * items
    yield tail
