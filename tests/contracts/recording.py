"""The contract checks hooked over the whole suite: every product request, every in-process sandbox answer.

`install` patches three places for the session (conftest does it):

- `Upstream._send` marks, in a context variable, that the product is sending; the patched
  `httpx.AsyncClient.send` then judges the request it is handed, exactly as built (base URL,
  default headers, encoded query and body), whether respx or the sandbox will answer it.
- `FaultPlan.pick` notes, in a context variable, whether the sandbox fails this request on purpose.
- `Starlette.__call__`, for sandbox apps only, records the request and the answer that routing
  produced and judges the answer against the request it answered. Hooked below `SandboxApp.__call__`
  rather than around it, so a faulted request still reaches the fault code with the server's own
  `send` (a `reset` fault needs it), and the faulted answers never pass through here (a `timeout`'s
  late answer does, and is skipped because the pick said so).

Not judged: answers produced by fault injection, answers on paths the vendor's contract does not
have (the sandbox's own 404/405), answers to requests without a valid key other than the 401, and
anything from a sandbox in another process. Nothing here raises into the app or the client: what
is found goes to the `Collector` of the running test, and conftest fails the test at teardown.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from contacts_mcp.server.http import Upstream
from contacts_mcp.server.sandbox import COMETLY_INACTIVE_KEY, SANDBOX_KEYS, sandbox_environment
from contacts_mcp.server.sandbox.app import SandboxApp
from contacts_mcp.server.sandbox.faults import FaultPlan
from contacts_mcp.server.undocumented import Vendor
from tests.contracts.checks import LABELS, VENDOR_LABELS, Received, Sent, Violation, Who, contracts

_SANDBOX_PREFIXES: dict[Vendor, str] = {
    vendor: sandbox_environment("")[f"{vendor.upper()}_BASE_URL"] for vendor in ("cometly", "highlevel", "clemta")
}
"""Where the sandbox mounts each vendor, from the same definition the product's sandbox settings use."""
_SANDBOX_KEYS: dict[Vendor, frozenset[str]] = {
    "cometly": frozenset({SANDBOX_KEYS["cometly"], COMETLY_INACTIVE_KEY}),
    "highlevel": frozenset({SANDBOX_KEYS["highlevel"]}),
    "clemta": frozenset({SANDBOX_KEYS["clemta"]}),
}
"""Keys the sandbox knows: a request with none of them gets a 401, the only answer judged then."""

_sending: ContextVar[Upstream | None] = ContextVar("contracts_sending", default=None)
_faulted: ContextVar[bool] = ContextVar("contracts_faulted", default=False)


class Collector:
    """The violations found while one test runs; shared with the threads that serve sandboxes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: list[Violation] = []

    def add(self, violations: Iterable[Violation]) -> None:
        with self._lock:
            self._found.extend(violations)

    def found(self) -> list[Violation]:
        with self._lock:
            return list(self._found)


@dataclass
class _Tally:
    """How much the checks judged over the session, by side and vendor (a check that judges nothing looks clean)."""

    judged: dict[tuple[Who, Vendor], int] = field(default_factory=dict[tuple[Who, Vendor], int])
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, who: Who, vendor: Vendor) -> None:
        with self.lock:
            self.judged[(who, vendor)] = self.judged.get((who, vendor), 0) + 1

    def __str__(self) -> str:
        with self.lock:
            judged = dict(self.judged)

        def side(who: Who) -> str:
            counts = [f"{VENDOR_LABELS[v]} {judged.get((who, v), 0)}" for v in ("cometly", "highlevel", "clemta")]
            return ", ".join(counts)

        return f"judged product requests: {side('product')}; sandbox answers: {side('sandbox')}"


tally = _Tally()
_current: Collector | None = None
"""The running test's collector: a module global, not a context variable, so uvicorn's threads see it."""


@contextmanager
def collecting() -> Generator[Collector]:
    """Collect the violations found until the block ends (in place of an outer block's collector)."""
    global _current
    outer, collector = _current, Collector()
    _current = collector
    try:
        yield collector
    finally:
        _current = outer


def _add(violations: Iterable[Violation]) -> None:
    collector = _current
    if collector is not None:
        collector.add(violations)


def _checker_failed(vendor: Vendor, method: str, path: str, exc: Exception) -> Violation:
    problem = f"the contract check itself failed: {exc!r}"
    return Violation("product", vendor, method, path, None, "check", problem, "check")


def judge_request(label: str, base_url: httpx.URL, request: httpx.Request) -> None:
    """Judge one request the product's `Upstream` for `label` (at `base_url`) is sending."""
    vendor = LABELS.get(label)
    if vendor is None or _current is None:
        return
    path = ""
    try:
        base = base_url.raw_path.split(b"?")[0].rstrip(b"/")
        raw = request.url.raw_path.split(b"?")[0]
        path = (raw[len(base) :] if raw.startswith(base) else raw).decode("ascii") or "/"
        headers: dict[str, str] = {}
        for name, value in request.headers.multi_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = b""
        sent = Sent(
            vendor,
            request.method,
            path,
            tuple(parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)),
            headers,
            body,
        )
        _add(contracts().check_request(sent))
        tally.count("product", vendor)
    except Exception as exc:  # a bug here must fail the test, not the product's request
        _add([_checker_failed(vendor, request.method, path, exc)])


@dataclass
class _Exchange:
    """What passed through one sandbox call: the request body read and the answer sent."""

    request_body: bytearray = field(default_factory=bytearray)
    status: int | None = None
    body: bytearray = field(default_factory=bytearray)


def _sandbox_target(scope: Scope) -> tuple[Vendor, str] | None:
    """The vendor and contract path of a sandbox request, or None when it is not on a vendor's mount."""
    raw = cast(bytes | None, scope.get("raw_path")) or str(scope["path"]).encode("utf-8")
    path = raw.split(b"?")[0].decode("latin-1")
    for vendor, prefix in _SANDBOX_PREFIXES.items():
        if path.startswith(prefix + "/"):
            return vendor, path[len(prefix) :]
    return None


def judge_answer(scope: Scope, exchange: _Exchange) -> None:
    """Judge one answer the sandbox gave, with the request it answered."""
    target = _sandbox_target(scope)
    if target is None or exchange.status is None or _current is None:
        return
    vendor, path = target
    method = str(scope["method"])
    try:
        headers: dict[str, str] = {}
        for raw_name, raw_value in cast(list[tuple[bytes, bytes]], scope.get("headers", [])):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        keys = _SANDBOX_KEYS[vendor]
        keyed = any(value.removeprefix("Bearer ").removeprefix("bearer ").strip() in keys for value in headers.values())
        if not keyed and exchange.status != 401:
            return
        query = tuple(parse_qsl(cast(bytes, scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True))
        sent = Sent(vendor, method, path, query, headers, bytes(exchange.request_body))
        _add(contracts().check_response(sent, Received(exchange.status, bytes(exchange.body))))
        tally.count("sandbox", vendor)
    except Exception as exc:  # a bug here must fail the test, not the sandbox's answer
        failed = _checker_failed(vendor, method, path, exc)
        _add([Violation("sandbox", vendor, method, path, exchange.status, failed.at, failed.problem, failed.kind)])


_App = Callable[[Starlette, Scope, Receive, Send], Awaitable[None]]


def _judging(original: _App) -> _App:
    async def call(self: Starlette, scope: Scope, receive: Receive, send: Send) -> None:
        if not isinstance(self, SandboxApp) or scope["type"] != "http" or _faulted.get() or _current is None:
            await original(self, scope, receive, send)
            return
        exchange = _Exchange()

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.request_body.extend(cast(bytes, message.get("body", b"")))
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = cast(int, message["status"])
            elif message["type"] == "http.response.body":
                exchange.body.extend(cast(bytes, message.get("body", b"")))
            await send(message)

        await original(self, scope, receiving, sending)
        judge_answer(scope, exchange)

    return call


def install(patch: pytest.MonkeyPatch) -> None:
    """Hook the checks into the product's upstream calls and the sandbox's app, until `patch` is undone."""
    send_upstream = cast(Callable[..., Awaitable[Any]], Upstream._send)  # pyright: ignore[reportPrivateUsage]

    async def marked_send(self: Upstream, *args: Any, **kwargs: Any) -> Any:
        token = _sending.set(self)
        try:
            return await send_upstream(self, *args, **kwargs)
        finally:
            _sending.reset(token)

    client_send = httpx.AsyncClient.send

    async def judged_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        upstream = _sending.get()
        if upstream is not None:
            judge_request(upstream.label, upstream._base_url, request)  # pyright: ignore[reportPrivateUsage]
        return await client_send(self, request, **kwargs)

    pick = FaultPlan.pick

    def noted_pick(self: FaultPlan, method: str, path: str, *account: Any) -> Any:
        picked = pick(self, method, path, *account)
        _faulted.set(picked is not None)
        return picked

    patch.setattr(Upstream, "_send", marked_send)
    patch.setattr(httpx.AsyncClient, "send", judged_send)
    patch.setattr(FaultPlan, "pick", noted_pick)
    patch.setattr(Starlette, "__call__", _judging(Starlette.__call__))


# Reporting


def report(found: Iterable[Violation]) -> str:
    """The teardown message: every distinct violation, with how often it was seen."""
    counted: dict[str, int] = {}
    for violation in found:
        counted[str(violation)] = counted.get(str(violation), 0) + 1
    head = f"{len(counted)} contract violation(s) (checks: tests/contracts; silences: server/undocumented.py):"
    lines = [f"  {text}" + (f"  (x{count})" if count > 1 else "") for text, count in counted.items()]
    return "\n".join([head, *lines])


@dataclass
class _Seen:
    example: Violation
    tests: list[str] = field(default_factory=list[str])


_session: dict[tuple[str, ...], _Seen] = {}


def remember(test: str, found: Iterable[Violation]) -> None:
    """Keep a test's violations for the session's summary."""
    for violation in found:
        key = (
            violation.who,
            violation.vendor,
            violation.method,
            violation.path,
            str(violation.status),
            re.sub(r"\[\d+\]", "[*]", violation.at),
            violation.kind,
        )
        seen = _session.setdefault(key, _Seen(violation))
        if test not in seen.tests:
            seen.tests.append(test)


def summary() -> list[str]:
    """The session's violations grouped by side, vendor, endpoint, status, place and kind, one example test each."""
    lines = [str(tally)]
    for key in sorted(_session):
        seen = _session[key]
        more = f" and {len(seen.tests) - 1} more" if len(seen.tests) > 1 else ""
        lines.append(f"{seen.example}\n    e.g. {seen.tests[0]}{more}")
    return lines
