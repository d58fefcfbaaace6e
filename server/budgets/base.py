"""Rate budgets: never more than N sends in any window of T seconds, per provider, endpoint and account.

The upstream limits are tiny and shared by everyone on the same key, and the upstream's window may
be fixed or sliding, so a token bucket (which bursts past N inside one window) is wrong. A budget
keeps, per rule, the requests in flight and when the recent ones completed:

- A request takes a slot when it is sent and keeps it until its response has arrived, plus T. The
  upstream counts a request when it receives it, which is never later than our completion time, so
  a slot freed at `completion + T` can never put N + 1 requests into one upstream window, whatever
  the latency. The cost is one round trip per window.
- Waiting callers are served in arrival order; a cancelled caller leaves the queue at once.
- A caller that would wait longer than `max_wait` fails at once with `RateLimited`, sending nothing.
- The upstream's word wins: a 429 blocks the budget for every caller (for as long as the upstream
  says, see `server.http`), and a `Remaining` lower than ours counts the requests someone else sent
  on the key until the upstream's window resets.
- An advertised limit replaces the rule's count in both directions when the rule is the vendor's
  default (`may_rise`): the default is only our reading of the vendor's docs. A rule the user set is
  a ceiling: they may be reserving part of a shared key, so a header lowers it but never lifts it
  above what they set. A limit about another scope than the budget's (Clemta's per-resource limit,
  `Observation.may_raise` False) is a cap: it may hold the rule below its own limit, never lift it.
  What each process enforces is therefore min(own, cap), where own is the last advertised limit
  (within the ceiling of a user's rule) or else the configured count, and cap the last capping limit.
- A call that waits longer than a second reports progress through `wait_reporter`, so the client
  sees it is alive.

Two backends implement `Budget`: `memory` (one process, no setup) and `redis_backend` (every process
on the same Redis shares each budget atomically, on the Redis server's clock). Budgets are keyed by
the name `provider.endpoint` and a fingerprint of the account (API key, HighLevel location), so two
keys never share a budget and no key is ever stored.
"""

from __future__ import annotations

import hashlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass

import anyio

from ..errors import ConfigurationError, RateLimited
from ..settings import Rate

logger = logging.getLogger(__name__)

WaitReporter = Callable[[float, float, str], Awaitable[None]]
"""Told, about once a second while a call waits for budget: (seconds waited, estimated total, message)."""

wait_reporter: ContextVar[WaitReporter | None] = ContextVar("wait_reporter", default=None)
"""Where the current tool call's waits are reported; set per call by the server."""

PROGRESS_AFTER_SECONDS = 1.0
"""A wait shorter than this is not worth a notification."""
RELEASE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Observation:
    """What one upstream response said about one rule of its budget (from `X-RateLimit-*` headers)."""

    window: float | None
    """The rule's window in seconds, when the upstream names it; None means the budget's shortest rule."""
    limit: int | None = None
    """The upstream's limit for that window."""
    remaining: int | None = None
    """Requests the upstream will still accept in its current window."""
    reset_after: float | None = None
    """Seconds until the upstream's window resets, when it says; otherwise a whole window is assumed."""
    may_raise: bool = True
    """False when `limit` is another scope's (Clemta's `X-RateLimit-Type: resource`): a cap that may
    hold the rule below its own limit but never lifts it."""


def fingerprint(account: str) -> str:
    """A short, irreversible name for an account (API key and its scope), safe to store and log."""
    return hashlib.sha256(account.encode()).hexdigest()[:16]


def effective_count(configured: int, *, may_rise: bool, own: int | None, cap: int | None) -> int:
    """The count a rule enforces: its own advertised limit (within a user rule's ceiling), under any cap.

    Args:
        configured: The rule's count as built (the vendor default or the user's override).
        may_rise: Whether the rule is the vendor default, so an advertised limit may lift it above `configured`.
        own: The limit the upstream last advertised for this rule, if any.
        cap: The last limit advertised for another scope that also holds (may only lower), if any.
    """
    count = configured
    if own is not None and (may_rise or own < count):
        count = own
    if cap is not None and cap < count:
        count = cap
    return max(1, count)


def limits_text(rates: Sequence[Rate]) -> str:
    return " and ".join(f"{rate.count} requests per {rate.seconds:g} s" for rate in rates)


class WaitProgress:
    """Reports a long wait to the current call's `wait_reporter`, at most once a second."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._report = wait_reporter.get()
        self._start = anyio.current_time()
        self._next = self._start + PROGRESS_AFTER_SECONDS

    def due_in(self) -> float:
        """Seconds until the next report is due; `inf` when nobody listens."""
        return math.inf if self._report is None else max(0.0, self._next - anyio.current_time())

    def due(self) -> bool:
        """Whether a report is due now."""
        return self._report is not None and anyio.current_time() >= self._next

    async def tick(self, wait_left: float) -> None:
        """Report, if a report is due, that about `wait_left` seconds of waiting remain."""
        if self._report is None or not self.due():
            return
        now = anyio.current_time()
        self._next = now + PROGRESS_AFTER_SECONDS
        waited = now - self._start
        message = (
            f"Waiting for the {self._budget.name} rate budget ({limits_text(self._budget.rates)}); "
            f"about {math.ceil(wait_left)} s to go."
        )
        try:
            await self._report(waited, waited + wait_left, message)
        except Exception:  # a client that went away must not fail the call it no longer awaits
            logger.debug("could not report progress for %s", self._budget.name, exc_info=True)


class Budget(ABC):
    """The rate budget of one upstream endpoint and account, shared by all its callers."""

    def __init__(self, name: str, rates: Sequence[Rate], *, may_rise: bool = False) -> None:
        if not rates:
            raise ValueError(f"budget {name} needs at least one rule")
        self.name = name
        self.rates = tuple(rates)
        """The rules as built (vendor default or user override); `current_rates` has what is followed now."""
        self.may_rise = may_rise
        """Whether the rules are the vendor's defaults, which an advertised higher limit may lift."""

    @asynccontextmanager
    async def slot(self, *, max_wait: float) -> AsyncGenerator[None]:
        """Wait, in arrival order, for the right to send one request; hold it while the request runs.

        Raises:
            RateLimited: At once, sending nothing, if the wait would exceed `max_wait` seconds.
            UpstreamUnavailable: If the budget's shared store cannot be reached.
        """
        token = await self._acquire(max_wait, WaitProgress(self))
        try:
            async with self._holding(token):
                yield
        finally:
            # Shielded, so a cancelled call still gives its slot back; bounded, so a store that hangs
            # cannot hold the caller (the Redis backend keeps such a release and sends it when it can).
            with anyio.CancelScope(shield=True, deadline=anyio.current_time() + RELEASE_TIMEOUT_SECONDS):
                await self._release(token)

    @abstractmethod
    async def _acquire(self, max_wait: float, progress: WaitProgress) -> object:
        """Take a slot, waiting in line for it; returns what `_release` needs to give it back."""

    def _holding(self, token: object) -> AbstractAsyncContextManager[None]:
        """Around the request while it holds its slot; the Redis backend keeps the slot's lease alive here.

        Raises:
            UpstreamUnavailable: If the slot could not be kept (the request is then stopped).
        """
        return nullcontext()

    @abstractmethod
    async def _release(self, token: object) -> None:
        """The request of this slot has completed: it now counts until completion + T."""

    @abstractmethod
    async def block_for(self, seconds: float) -> None:
        """Send nothing more on this budget for `seconds` (the upstream said so with a 429)."""

    @abstractmethod
    async def observe(self, observation: Observation) -> None:
        """Follow what the upstream said about one rule: its limit (see `effective_count`), or fewer remaining."""

    @abstractmethod
    async def remaining(self) -> int:
        """How many requests could be sent right now without waiting."""

    @abstractmethod
    async def current_rates(self) -> tuple[Rate, ...]:
        """The rules as followed now: each count after what the upstream advertised (see `effective_count`)."""

    @property
    def shortest_window(self) -> float:
        """The window of the budget's shortest rule, in seconds."""
        return min(rate.seconds for rate in self.rates)

    def _rule_for(self, window: float | None) -> int | None:
        """The index of the rule an observation is about: the one with its window, else the shortest."""
        if window is None:
            return min(range(len(self.rates)), key=lambda i: self.rates[i].seconds)
        for i, rate in enumerate(self.rates):
            if math.isclose(rate.seconds, window, rel_tol=0.01):
                return i
        return None  # a window we do not enforce: nothing to compare it with

    def _too_long(self, wait: float) -> RateLimited:
        return RateLimited(
            f"The rate budget {self.name} ({limits_text(self.rates)}, shared by everyone on this API key) is used up.",
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


@dataclass(frozen=True)
class BudgetSpec:
    """One budget to open: its rules and the account whose limit it is."""

    rates: tuple[Rate, ...]
    account: str
    """A fingerprint of the API key and its scope (see `fingerprint`), never the key."""
    may_rise: bool = False
    """True for the vendor's default rules, which an advertised higher limit may lift; False for a
    user's override (`CONTACTS_MCP_RATE_LIMITS`), a ceiling no header lifts."""


class Budgets:
    """Every budget of the server, by name."""

    def __init__(self, budgets: Mapping[str, Budget]) -> None:
        self._budgets = dict(budgets)

    def __getitem__(self, name: str) -> Budget:
        return self._budgets[name]

    def __iter__(self) -> Iterator[Budget]:
        return iter(self._budgets.values())
