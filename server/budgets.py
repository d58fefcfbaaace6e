"""Rate budgets: never more than N requests in any window of T seconds, per upstream endpoint.

The upstream limits are tiny and shared by everyone on the same key, and the upstream's window may
be fixed or sliding, so a token bucket (which bursts past N inside one window) is wrong. A budget
keeps, per rule, the requests in flight and the completion times of the recent ones:

- A request takes a slot when it is sent and keeps it until its response has arrived, plus T. The
  upstream counts a request when it receives it, which is never later than our completion time, so
  a slot freed at `completion + T` can never put N + 1 requests into one upstream window, whatever
  the latency. The cost is one round trip per window.
- Waiting callers queue and are served in arrival order; a cancelled caller leaves the queue.
- A caller that would wait longer than `max_wait` fails at once with `RateLimited`, sending nothing.
- A 429's `Retry-After` blocks the whole budget, for every caller, until it has passed.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from itertools import islice

import anyio

from server.errors import ConfigurationError, RateLimited
from server.settings import Rate


class _Rule:
    """One `count / seconds` rule of a budget and the requests that currently count against it."""

    def __init__(self, rate: Rate) -> None:
        self.count = rate.count
        self.seconds = rate.seconds
        self.in_flight = 0
        self.completed: deque[float] = deque()  # completion times, ascending

    def prune(self, now: float) -> None:
        while self.completed and self.completed[0] + self.seconds <= now:
            self.completed.popleft()

    def used(self) -> int:
        return self.in_flight + len(self.completed)

    def delay(self, now: float) -> float:
        """Seconds until this rule admits one more request; `inf` while only in-flight ones block it."""
        if self.used() < self.count:
            return 0.0
        if self.completed:
            # Slots in flight never free before those already completed, so the oldest completed is next.
            return self.completed[0] + self.seconds - now
        return math.inf


class Budget:
    """The rate budget of one upstream endpoint (`provider.tool`), shared by all its callers."""

    def __init__(self, name: str, rates: Sequence[Rate], *, clock: Callable[[], float] = anyio.current_time) -> None:
        if not rates:
            raise ValueError(f"budget {name} needs at least one rule")
        self.name = name
        self.rates = tuple(rates)
        self._rules = [_Rule(rate) for rate in rates]
        self._clock = clock
        self._queue: deque[object] = deque()
        self._blocked_until = -math.inf
        self._changed = anyio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _prune(self, now: float) -> None:
        for rule in self._rules:
            rule.prune(now)

    def _delay(self, now: float) -> float:
        return max(self._blocked_until - now, *(rule.delay(now) for rule in self._rules))

    def estimate_wait(self, ahead: int | None = None) -> float:
        """Seconds until a caller behind `ahead` queued callers (default: the current queue) could send.

        Requests in flight are assumed to complete now, so this is a lower bound when any are.
        """
        now = self._clock()
        self._prune(now)
        takes = (len(self._queue) if ahead is None else ahead) + 1
        free: list[int] = []
        expiries: list[list[float]] = []
        for rule in self._rules:
            heap = [t + rule.seconds for t in islice(rule.completed, takes)]
            heap += [now + rule.seconds] * min(rule.in_flight, takes)
            heapq.heapify(heap)
            expiries.append(heap)
            free.append(rule.count - rule.used())
        send_at = max(now, self._blocked_until)
        for _ in range(takes):
            for i, heap in enumerate(expiries):
                if free[i] <= 0:
                    send_at = max(send_at, heap[0])
            for i, rule in enumerate(self._rules):
                if free[i] > 0:
                    free[i] -= 1
                else:
                    heapq.heappop(expiries[i])
                heapq.heappush(expiries[i], send_at + rule.seconds)
        return send_at - now

    def block_for(self, seconds: float) -> None:
        """Send nothing more on this budget for `seconds` (the upstream said so with a 429)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        self._notify()

    def remaining(self) -> int:
        """How many requests could be sent right now without waiting."""
        now = self._clock()
        self._prune(now)
        if self._blocked_until > now:
            return 0
        return max(0, min(rule.count - rule.used() for rule in self._rules))

    @asynccontextmanager
    async def slot(self, *, max_wait: float) -> AsyncGenerator[None]:
        """Wait, in arrival order, for the right to send one request; hold it while the request runs.

        Raises:
            RateLimited: At once, sending nothing, if the wait would exceed `max_wait` seconds.
        """
        await self._acquire(max_wait)
        try:
            yield
        finally:
            now = self._clock()
            for rule in self._rules:
                rule.in_flight -= 1
                rule.completed.append(now)
            self._notify()

    async def _acquire(self, max_wait: float) -> None:
        wait = self.estimate_wait()
        if wait > max_wait:
            raise self._too_long(wait)
        me = object()
        self._queue.append(me)
        try:
            with anyio.move_on_after(max_wait):
                while True:
                    now = self._clock()
                    self._prune(now)
                    delay = self._delay(now) if self._queue[0] is me else math.inf
                    if delay <= 0:
                        for rule in self._rules:
                            rule.in_flight += 1
                        return
                    changed = self._changed
                    with anyio.move_on_after(delay):
                        await changed.wait()
            raise self._too_long(self.estimate_wait(self._queue.index(me)))
        finally:
            was_head = self._queue[0] is me
            self._queue.remove(me)
            if was_head:
                self._notify()

    def _too_long(self, wait: float) -> RateLimited:
        limits = " and ".join(f"{rate.count} requests per {rate.seconds:g} s" for rate in self.rates)
        return RateLimited(
            f"The rate budget {self.name} ({limits}, shared by everyone on this API key) is used up.",
            retry_after=wait,
        )


def check_overrides(defaults: Mapping[str, object], overrides: Mapping[str, object]) -> None:
    """Refuse overrides of budgets that do not exist, so a typo cannot silently leave a default in force.

    Raises:
        ConfigurationError: Naming the unknown budgets and the known ones.
    """
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigurationError(
            f"CONTACTS_MCP_RATE_LIMITS names unknown budgets {', '.join(unknown)}; "
            f"the budgets of the configured providers are {', '.join(defaults)}"
        )


class Budgets:
    """Every budget of the server, by name; built once per server from defaults and overrides."""

    def __init__(
        self,
        defaults: Mapping[str, Sequence[Rate]],
        overrides: Mapping[str, Sequence[Rate]] | None = None,
        *,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        overrides = overrides or {}
        check_overrides(defaults, overrides)
        self._budgets = {
            name: Budget(name, overrides.get(name, rates), clock=clock) for name, rates in defaults.items()
        }

    def __getitem__(self, name: str) -> Budget:
        return self._budgets[name]
