"""HTTP connections below the ASGI app: descriptors, a connection cap, deadlines for a request, quiet logs.

```
accept ─> GuardedH11Protocol.connection_made
            │ over the cap? close the oldest connection that is not in a request (408 if it sent part of one);
            │               none idle: 503 and close, at once
            ├─ request head within HEAD_TIMEOUT_SECONDS, else 408 and close   (uvicorn has no such timeout)
            ├─ request body within BODY_TIMEOUT_SECONDS of its head, else closed (the app reads a disconnect)
            └─ idle between requests: uvicorn's timeout_keep_alive closes it
```

Without these, 1,100 connections that each send a request line and a header every few seconds take
every descriptor of a process limited to 1,024: nothing is answered, not even /healthz, and asyncio
logs a traceback for every failed accept. The cap is sized from the descriptor limit in force (the
soft limit is first raised to the hard one), with room left for upstream connections and files, so
accept never runs out; a flood of incomplete requests only ever pushes out its own oldest members,
while a complete request is answered. Repeated log records are collapsed into one line with a count.

This module is imported only by `serve --transport http|sse`: it loads uvicorn and h11.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no descriptor limit to raise
    resource = None

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 4_096
"""Open HTTP connections at most, when the descriptor limit allows (SSE streams and GET streams hold one each)."""
HEAD_TIMEOUT_SECONDS = 10.0
"""A connection must deliver a whole request head (request line and headers) within this, or it is closed."""
BODY_TIMEOUT_SECONDS = 30.0
"""A request's body must have arrived this long after its head, or the connection is closed."""
KEEP_ALIVE_SECONDS = 5
"""An idle connection between requests is closed after this (uvicorn's `timeout_keep_alive`)."""
MAX_HEAD_BYTES = 16 * 1024
"""The largest request head h11 buffers (`h11_max_incomplete_event_size`); a larger one is answered 400."""
LOG_WINDOW_SECONDS = 10.0
"""A log record repeated within this is counted rather than written; the count follows as one line."""

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 29\r\n\r\nThe request took too long.\r\n\r\n"
)
_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: 33\r\n\r\nToo many connections; try again.\n"
)


@dataclass(frozen=True)
class Limits:
    """What one HTTP server process allows, sized from its descriptor limit."""

    descriptors: int
    """The soft RLIMIT_NOFILE in force (after raising it to the hard limit)."""
    connections: int
    """Open connections at most; past it the oldest idle one is closed, or the new one refused."""
    backlog: int
    """The listen queue, and so the most connections asyncio accepts at once before any is looked at."""
    head_seconds: float = HEAD_TIMEOUT_SECONDS
    body_seconds: float = BODY_TIMEOUT_SECONDS

    @classmethod
    def for_descriptors(cls, descriptors: int) -> Limits:
        """Limits that leave a quarter of `descriptors` (at least 64, at most half) to everything but clients.

        Upstream connections (up to 100 per provider), Redis, the sandbox's database and the process's own
        files draw on the same limit, and so does every connection asyncio accepts before it is refused.
        """
        reserve = min(max(64, descriptors // 4), descriptors // 2)
        connections = max(1, min(MAX_CONNECTIONS, descriptors - reserve))
        return cls(descriptors=descriptors, connections=connections, backlog=max(16, min(2048, reserve // 4)))


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where the system allows; return the soft limit in force."""
    if resource is None:  # pragma: no cover
        return MAX_CONNECTIONS * 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # e.g. macOS refuses more than OPEN_MAX: keep what is in force
            pass
    return soft if soft != resource.RLIM_INFINITY else 65_536


class _Guard:
    """What every connection of one server shares: the count, and the idle connections, oldest first."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.idle: dict[GuardedH11Protocol, None] = {}  # insertion-ordered: the first is the oldest


Phase = Literal["head", "body"]


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and deadlines for a request's head and body.

    A connection is idle while it is not in a request: waiting for (or reading) a request head, or still
    sending a body the app already answered. Only idle connections are closed to make room, oldest first,
    so a slow or silent client cannot keep out one that sends its request at once.
    """

    guard: ClassVar[_Guard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        guard = self.guard
        if guard.open >= guard.limits.connections:
            oldest = next(iter(guard.idle), None)
            if oldest is None:
                logger.warning(
                    "refused a connection: %d are open and all are in a request (the cap follows the descriptor "
                    "limit, %d)",
                    guard.open,
                    guard.limits.descriptors,
                )
                transport.write(_SERVICE_UNAVAILABLE)
                transport.close()
                return
            logger.info("closed the oldest idle connection to make room: %d connections are open", guard.open)
            oldest.close_now()
        guard.open += 1
        self._counted = True
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def close_now(self) -> None:
        """Close this connection at once, saying 408 if part of a request head arrived (it has no request)."""
        in_head = self._phase == "head"
        self._release()
        if not self.transport.is_closing():
            if in_head and self.conn.trailing_data[0]:
                self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

    def _release(self) -> None:
        guard = self.guard
        if self._counted:
            guard.open -= 1
            self._counted = False
        guard.idle.pop(self, None)
        self._set_deadline(None)

    def _track(self) -> None:
        """Follow h11's view of the client: arm the deadline of what it is sending, and mark it idle or not."""
        if self.transport.is_closing() or not self._counted:
            return
        their = self.conn.their_state
        phase: Phase | None = "head" if their is h11.IDLE else "body" if their is h11.SEND_BODY else None
        if phase != self._phase:
            self._set_deadline(phase)
        cycle = cast("RequestResponseCycle | None", self.cycle)  # typed as always set; None until a request
        in_request = cycle is not None and not cycle.response_complete
        if in_request:
            self.guard.idle.pop(self, None)
        elif self not in self.guard.idle:
            self.guard.idle[self] = None

    def _set_deadline(self, phase: Phase | None) -> None:
        self._phase = phase
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if phase is not None:
            limits = self.guard.limits
            seconds = limits.head_seconds if phase == "head" else limits.body_seconds
            self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _expired(self, phase: Phase) -> None:
        self._deadline = None
        seconds = self.guard.limits.head_seconds if phase == "head" else self.guard.limits.body_seconds
        logger.info("closed a connection whose request %s did not arrive within %.0f s", phase, seconds)
        self.close_now()


def guarded_protocol(limits: Limits) -> type[GuardedH11Protocol]:
    """A protocol class for `uvicorn.Config(http=...)` whose connections share one cap of `limits`."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": _Guard(limits)})


class RepeatCollapse(logging.Filter):
    """A handler filter: a record repeated within `window` seconds is counted instead of written.

    Records repeat when they come from one logger, at one level, with one message template (and one
    exception type): a flood of failed accepts, refused connections or invalid requests. The first
    passes as it is (with its traceback); when its window ends, one line says how many followed. At
    most `keys` templates are followed at once; the rest of a logger's records share one count.
    """

    def __init__(
        self,
        handler: logging.Handler,
        *,
        window: float = LOG_WINDOW_SECONDS,
        keys: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._window = window
        self._keys = keys
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "collapsed_summary", False):
            return True
        now = self._clock()
        with self._lock:
            due = self._take_due(now)
            key = (record.name, record.levelno, str(record.msg), _exception_name(record))
            if key not in self._seen and len(self._seen) >= self._keys:
                key = (record.name, record.levelno, "", "")  # the logger's overflow: one count for the rest
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Seen(start=now, first=record)
            else:
                seen.count += 1
        self._emit(due)
        return seen is None

    def flush(self, *, ended_only: bool = True) -> None:
        """Write the counts of windows that have ended (or of every window, as at exit)."""
        with self._lock:
            due = self._take_due(self._clock(), ended_only=ended_only)
        self._emit(due)

    def _take_due(self, now: float, *, ended_only: bool = True) -> list[logging.LogRecord]:
        due: list[logging.LogRecord] = []
        for key, seen in list(self._seen.items()):
            if now - seen.start >= self._window or not ended_only:
                del self._seen[key]
                if seen.count:
                    first = seen.first
                    if key[2]:
                        text, args = "%s (repeated %d more times in %.0f s)", (first.getMessage()[:300], seen.count)
                    else:
                        text, args = "%d more messages like %r in %.0f s (not shown)", (seen.count, first.msg)
                    summary = logging.LogRecord(
                        first.name, first.levelno, first.pathname, first.lineno, text, (*args, now - seen.start), None
                    )
                    summary.__dict__["collapsed_summary"] = True
                    due.append(summary)
        return due

    def _emit(self, due: list[logging.LogRecord]) -> None:
        for summary in due:
            self._handler.handle(summary)


@dataclass
class _Seen:
    """One followed template: when its window started, the record that passed, and how many followed."""

    start: float
    first: logging.LogRecord
    count: int = 0


def _exception_name(record: logging.LogRecord) -> str:
    kind = record.exc_info[0] if record.exc_info else None
    return kind.__name__ if kind is not None else ""


def collapse_repeated_logs() -> Callable[[], Awaitable[None]]:
    """Put a `RepeatCollapse` on every handler of the root logger; return an async flush for a periodic hook.

    The counts still open are also written at exit.
    """
    filters: list[RepeatCollapse] = []
    for handler in logging.getLogger().handlers:
        collapse = RepeatCollapse(handler)
        handler.addFilter(collapse)
        filters.append(collapse)

    def flush_at_exit() -> None:
        for collapse in filters:
            collapse.flush(ended_only=False)

    atexit.register(flush_at_exit)  # before logging's own handler, registered earlier, shuts the handlers

    async def flush() -> None:
        for collapse in filters:
            collapse.flush()

    return flush


def uvicorn_options(limits: Limits, *, every_second: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    """`uvicorn.Config` settings for a guarded listener (and a callback uvicorn's loop runs about once a second).

    `limit_concurrency` is left off: it answers 503 to a complete request whenever as many connections are
    open, idle or not, which is just what a flood of incomplete requests would bring about.
    """
    options: dict[str, Any] = {
        "http": guarded_protocol(limits),
        "ws": "none",  # MCP needs no WebSocket; an upgrade would hand the connection to an unguarded protocol
        "backlog": limits.backlog,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
    if every_second is not None:
        # uvicorn's own periodic hook (meant for worker supervisors): its loop awaits it once per `timeout_notify`.
        options |= {"callback_notify": every_second, "timeout_notify": 0}
    return options
