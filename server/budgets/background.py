"""Sending at a lower priority than the tools: the contact index's sync shares the tools' budgets this way.

A budget is shared by the agent's tool calls, by other clients on the same key, and by the
index's sync, which would use all of it if let. `Background(share)` keeps the sync behind everyone:

- It never waits in the budget's line. It takes a slot only with `slot(max_wait=0)`, which either
  sends at once or refuses, so a tool call that arrives while the sync waits is never queued behind
  it; between tries it sleeps a short, bounded while (polling, because the budget's line has no
  lower-priority lane to wait in).
- It takes a slot only while the budget has more than the others' part left: `remaining()` above
  `limit - allowance`, where `allowance = floor(limit x share)` (at least 1, or it would never
  progress). A request it sends was sent with fewer than `allowance` requests counting, so no
  window ever holds more than `allowance` of its requests, and the rest of the limit stays for the
  tools and other clients; with no other traffic it gets exactly its allowance.
- The limit is the one followed now (`current_rates()`, after what the upstream advertised), so a
  lower advertised limit shrinks the allowance too; `remaining()` already counts what others sent
  on the key (the upstream's `Remaining`) and is 0 while a 429 blocks the budget.

It uses only the `Budget` interface, so it works the same on the in-memory and Redis backends.
With several rules on one budget (HighLevel's burst and day rules) the share is taken of the
shortest rule, the one that throttles; `remaining()` is the least of all rules, so the longer ones
still hold, but the share of them is not enforced (the index syncs only Cometly, whose budgets
have one rule).
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import anyio

from ..errors import RateLimited
from .base import Budget

POLL_SECONDS = 0.5
"""The longest the sync sleeps between two looks at a busy budget."""


class Priority(ABC):
    """How a request that is not a tool call's takes its slot of a budget."""

    @abstractmethod
    def slot(self, budget: Budget) -> AbstractAsyncContextManager[None]:
        """Wait, for as long as it takes, for the right to send one request on `budget`; hold it while it runs."""


def allowance(limit: int, share: float) -> int:
    """How many of a window's `limit` requests a background sender with `share` may have counting at once."""
    return max(1, math.floor(limit * share + 1e-9))


class Background(Priority):
    """Below every tool call, and at most `share` of each budget's limit per window (see the module docstring)."""

    def __init__(
        self,
        share: float = 1 / 3,
        *,
        poll_seconds: float = POLL_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        """Args:
            share: The part of each budget's limit the sync may use, in (0, 1].
            poll_seconds: The longest sleep between two looks at a budget with no room for the sync.
            sleep: Sleeps that many seconds (tests pass one on a fake clock).

        Raises:
            ValueError: If `share` is not in (0, 1] or `poll_seconds` is not positive.
        """
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.share = share
        self._poll = poll_seconds
        self._sleep = sleep

    async def room(self, budget: Budget) -> bool:
        """Whether the sync may send on `budget` now: more than the others' part of its limit is left."""
        rates = await budget.current_rates()
        limit = min(rates, key=lambda rate: rate.seconds).count
        return await budget.remaining() > limit - allowance(limit, self.share)

    @asynccontextmanager
    async def slot(self, budget: Budget) -> AsyncGenerator[None]:
        """Wait until the budget has room for the sync, then hold one slot without ever queueing for it.

        Raises:
            UpstreamUnavailable: If the budget's shared store cannot be reached.
        """
        async with AsyncExitStack() as held:
            while True:
                if await self.room(budget):
                    try:
                        await held.enter_async_context(budget.slot(max_wait=0))
                        break
                    except RateLimited:
                        pass  # someone took the room between the look and the try: it was theirs by right
                # Jittered, so replicas polling one Redis budget do not look in lockstep.
                await self._sleep(self._poll * random.uniform(0.5, 1.0))
            yield
