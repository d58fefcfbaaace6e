"""Sliding-window rate limits: at most N requests in any T seconds, per client and per endpoint."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

DEFAULT_RATE_LIMITS: Mapping[str, tuple[int, float]] = MappingProxyType(
    {
        "cometly.get_contact": (30, 60.0),
        "cometly.list_contacts": (15, 60.0),
        "cometly.create_contact": (60, 60.0),
        "cometly.update_contact": (60, 60.0),  # not established; the create's limit (server/undocumented.py)
        "highlevel.location": (100, 10.0),
        "highlevel.daily": (200_000, 86_400.0),
        "clemta.api_key": (100, 60.0),
    }
)
"""The documented budgets by name: (requests, window in seconds).

Cometly counts per endpoint (per Space); HighLevel counts every route of a location against one
burst budget and one day budget; Clemta counts every route of an API key against one budget.
"""


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request, with what the rate-limit headers report."""

    allowed: bool
    limit: int
    remaining: int
    window: float
    reset_after: float
    """Seconds until the oldest counted request leaves the window (0 when none is counted)."""
    daily: Decision | None = None
    """The day budget's answer, for a vendor whose routes also spend one (HighLevel)."""

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait before a refused request can succeed (rounded up, at least 1)."""
        return max(1, math.ceil(self.reset_after))


class SlidingWindowLimiter:
    """Counts requests per (endpoint, client) in a sliding window.

    A refused request is not counted, so a client that keeps retrying too early is not locked out
    for longer than the window.
    """

    def __init__(
        self,
        limits: Mapping[str, tuple[int, float]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set the budgets.

        Args:
            limits: (requests, window seconds) per endpoint name.
            clock: Monotonic seconds; tests pass a fake one.

        Raises:
            ValueError: A budget allows no request or has no window.
        """
        for name, (count, window) in limits.items():
            if count < 1 or window <= 0:
                raise ValueError(f"rate limit {name} must allow at least 1 request in a positive window")
        self._limits = dict(limits)
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def hit(self, endpoint: str, client: str) -> Decision:
        """Count one request of `client` to `endpoint`, unless that would exceed the budget.

        Raises:
            KeyError: The endpoint has no budget.
        """
        return self._decide(endpoint, client, count=True)

    def peek(self, endpoint: str, client: str) -> Decision:
        """What `hit` would answer about the budget, without counting a request.

        Raises:
            KeyError: The endpoint has no budget.
        """
        return self._decide(endpoint, client, count=False)

    def _decide(self, endpoint: str, client: str, *, count: bool) -> Decision:
        budget, window = self._limits[endpoint]
        now = self._clock()
        hits = self._hits.setdefault((endpoint, client), deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        allowed = len(hits) < budget
        if allowed and count:
            hits.append(now)
        reset_after = hits[0] + window - now if hits else 0.0
        return Decision(
            allowed=allowed, limit=budget, remaining=budget - len(hits), window=window, reset_after=reset_after
        )
