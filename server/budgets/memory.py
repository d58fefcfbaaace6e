"""The in-process backend: one process's budgets, kept in memory; the default, with nothing to set up."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice

import anyio

from ..settings import Rate
from .base import Budget, Observation, WaitProgress, effective_count


class _Rule:
    """One `count / seconds` rule of a budget and the requests that currently count against it."""

    def __init__(self, rate: Rate, *, may_rise: bool) -> None:
        self.configured = rate.count
        self.may_rise = may_rise
        self.own: int | None = None  # the limit the upstream last advertised for this rule
        self.cap: int | None = None  # the last limit advertised for another scope, which also holds
        self.count = rate.count  # what is enforced: `effective_count` of the above, kept current by `follow`
        self.seconds = rate.seconds
        self.in_flight = 0
        self.completed: deque[float] = deque()  # completion times, ascending
        self.foreign = 0  # requests someone else sent on the key, per the upstream's Remaining
        self.foreign_until = -math.inf

    def follow(self, limit: int, *, may_raise: bool) -> None:
        """The upstream advertised `limit`: the rule's own, or (not `may_raise`) a cap from another scope."""
        if may_raise:
            self.own = max(1, limit)
        else:
            self.cap = max(1, limit)
        self.count = effective_count(self.configured, may_rise=self.may_rise, own=self.own, cap=self.cap)

    def prune(self, now: float) -> None:
        while self.completed and self.completed[0] + self.seconds <= now:
            self.completed.popleft()
        if self.foreign_until <= now:
            self.foreign = 0

    def used(self) -> int:
        return self.in_flight + len(self.completed) + self.foreign

    def expiries(self, now: float, takes: int) -> list[float]:
        """When the first `takes` counted requests stop counting, ascending; in-flight ones as if done now."""
        times = [t + self.seconds for t in islice(self.completed, takes)]
        times += [self.foreign_until] * min(self.foreign, takes)
        times += [now + self.seconds] * min(self.in_flight, takes)
        return heapq.nsmallest(takes, times)

    def delay(self, now: float) -> float:
        """Seconds until this rule admits one more request; `inf` while only in-flight ones block it."""
        short = self.used() - self.count + 1
        if short <= 0:
            return 0.0
        if short > len(self.completed) + self.foreign:
            return math.inf  # an in-flight request must complete first; its release wakes the queue
        return self.expiries(now, short)[short - 1] - now


class _Waiter:
    """A caller in the queue; only the head is woken when the budget changes, so a change costs O(1)."""

    def __init__(self) -> None:
        self.woken = anyio.Event()


class MemoryBudget(Budget):
    """A budget kept in this process's memory."""

    def __init__(
        self,
        name: str,
        rates: Sequence[Rate],
        *,
        may_rise: bool = False,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        super().__init__(name, rates, may_rise=may_rise)
        self._rules = [_Rule(rate, may_rise=may_rise) for rate in rates]
        self._clock = clock
        self._queue: deque[_Waiter] = deque()
        self._blocked_until = -math.inf

    def _notify(self) -> None:
        if self._queue:
            self._queue[0].woken.set()

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
        free = [rule.count - rule.used() for rule in self._rules]
        expiries = [rule.expiries(now, takes) for rule in self._rules]  # already a heap: sorted
        send_at = max(now, self._blocked_until)
        for _ in range(takes):
            for i, heap in enumerate(expiries):
                if free[i] <= 0 and heap:
                    send_at = max(send_at, heap[0])
            for i, rule in enumerate(self._rules):
                if free[i] > 0:
                    free[i] -= 1
                elif expiries[i]:
                    heapq.heappop(expiries[i])
                heapq.heappush(expiries[i], send_at + rule.seconds)
        return send_at - now

    async def block_for(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        self._notify()

    async def observe(self, observation: Observation) -> None:
        index = self._rule_for(observation.window)
        if index is None:
            return
        rule = self._rules[index]
        now = self._clock()
        rule.prune(now)
        if observation.limit is not None:
            rule.follow(observation.limit, may_raise=observation.may_raise)
        if observation.remaining is not None:
            missing = (rule.count - observation.remaining) - rule.used()
            if missing > 0:
                reset = observation.reset_after if observation.reset_after is not None else rule.seconds
                rule.foreign += missing
                rule.foreign_until = max(rule.foreign_until, now + reset)
        self._notify()

    async def remaining(self) -> int:
        now = self._clock()
        self._prune(now)
        if self._blocked_until > now:
            return 0
        return max(0, min(rule.count - rule.used() for rule in self._rules))

    async def current_rates(self) -> tuple[Rate, ...]:
        return tuple(Rate(rule.count, rule.seconds) for rule in self._rules)

    async def _acquire(self, max_wait: float, progress: WaitProgress) -> object:
        wait = self.estimate_wait()
        if wait > max_wait:
            raise self._too_long(wait)
        me = _Waiter()
        self._queue.append(me)
        deadline = self._clock() + max_wait
        try:
            with anyio.move_on_after(max_wait):
                while True:
                    now = self._clock()
                    self._prune(now)
                    delay = self._delay(now) if self._queue[0] is me else math.inf
                    if delay <= 0:
                        for rule in self._rules:
                            rule.in_flight += 1
                        return me
                    # The head is woken by every change (a 429, a lower limit): once it cannot be served
                    # in time it leaves at once, waking the next, which then judges for itself.
                    left = deadline - now
                    if self._queue[0] is me and delay > left and (wait := self.estimate_wait(0)) > left:
                        raise self._too_long(wait)
                    with anyio.move_on_after(min(delay, progress.due_in())):
                        await me.woken.wait()
                    if me.woken.is_set():
                        me.woken = anyio.Event()
                    if progress.due():  # the estimate costs a walk of the queue: only when it is reported
                        await progress.tick(self.estimate_wait(self._queue.index(me)))
            raise self._too_long(self.estimate_wait(self._queue.index(me)))
        finally:
            was_head = self._queue[0] is me
            self._queue.remove(me)
            if was_head:
                self._notify()

    async def _release(self, token: object) -> None:
        now = self._clock()
        for rule in self._rules:
            rule.in_flight -= 1
            rule.completed.append(now)
        self._notify()
