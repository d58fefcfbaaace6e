"""The index's sync at `Background` priority: never in the tools' way, never more than its share, on both backends.

Under real short windows (9 requests per 0.6 s, a third of it for the sync). "Would a tool call
have waited" is asked by the budget itself: a tool call takes its slot with `max_wait=0`, which is
refused exactly when it would have had to wait.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import anyio
import pytest

from contacts_mcp.server.budgets import Budget, MemoryBudget
from contacts_mcp.server.budgets.background import Background, Priority, allowance
from contacts_mcp.server.budgets.redis_backend import RedisStore
from contacts_mcp.server.errors import RateLimited
from contacts_mcp.server.settings import Rate

pytestmark = pytest.mark.anyio

RULE = Rate(9, 0.6)
SHARE = 1 / 3
HOLD = 0.01
"""How long each request holds its slot (its round trip)."""


class MakeBudget(Protocol):
    def __call__(self, rates: Sequence[Rate]) -> Budget: ...


@pytest.fixture(params=["memory", "redis"])
async def make_budget(request: pytest.FixtureRequest) -> AsyncIterator[MakeBudget]:
    if request.param == "memory":
        yield lambda rates: MemoryBudget("test.background", rates)
        return
    url: str = request.getfixturevalue("redis_url")
    async with RedisStore.connect(url) as store:
        yield lambda rates: store.budget("test.background", rates, account=uuid.uuid4().hex)


def most_counted_at_a_send(sends: list[tuple[float, float]], seconds: float) -> int:
    """The most of these (sent, completed) requests counting at any of their sends: sent by then, not done + T."""
    return max((sum(1 for s, c in sends if s <= sent < c + seconds) for sent, _ in sends), default=0)


class Sender:
    """Sends requests one after another at a priority, recording (sent, completed) of each."""

    def __init__(self, budget: Budget, priority: Priority) -> None:
        self.budget = budget
        self.priority = priority
        self.sends: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            async with self.priority.slot(self.budget):
                sent = anyio.current_time()
                await anyio.sleep(HOLD)
            self.sends.append((sent, anyio.current_time()))


async def test_with_no_tool_traffic_the_sync_gets_its_full_share_and_never_more(make_budget: MakeBudget) -> None:
    budget = make_budget([RULE])
    sync = Sender(budget, Background(SHARE, poll_seconds=0.02))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(sync.run)
            await anyio.sleep(3 * RULE.seconds + 0.3)
            group.cancel_scope.cancel()

    share = allowance(RULE.count, SHARE)
    assert share == 3
    assert most_counted_at_a_send(sync.sends, RULE.seconds) == share
    assert len(sync.sends) >= 3 * share  # its whole share in each of the windows it had


async def tool_traffic(budget: Budget, *, every: float, calls: int, refused: list[float]) -> list[tuple[float, float]]:
    """Tool calls at a steady pace, each taking its slot only if it need not wait (else noted as refused)."""
    sends: list[tuple[float, float]] = []

    async def call() -> None:
        try:
            async with budget.slot(max_wait=0):
                sent = anyio.current_time()
                await anyio.sleep(HOLD)
        except RateLimited:
            refused.append(anyio.current_time())
            return
        sends.append((sent, anyio.current_time()))

    async with anyio.create_task_group() as group:
        for _ in range(calls):
            group.start_soon(call)
            await anyio.sleep(every)
    return sends


async def test_tool_calls_within_the_rest_of_the_limit_never_wait_while_the_sync_runs(make_budget: MakeBudget) -> None:
    # Tools use up to 4-5 of the 6 the sync leaves: they must always find a slot at once.
    polite, greedy = make_budget([RULE]), make_budget([RULE])
    refused_polite: list[float] = []
    refused_greedy: list[float] = []
    sync = Sender(polite, Background(SHARE, poll_seconds=0.02))
    # The contrast, in the same run: a sender that takes every free slot (share 1) does get in their way.
    hog = Sender(greedy, Background(1.0, poll_seconds=0.02))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(sync.run)
            group.start_soon(hog.run)
            await anyio.sleep(0.05)
            async with anyio.create_task_group() as tools:
                tools.start_soon(lambda: tool_traffic(polite, every=0.15, calls=16, refused=refused_polite))
                tools.start_soon(lambda: tool_traffic(greedy, every=0.15, calls=16, refused=refused_greedy))
            group.cancel_scope.cancel()

    assert refused_polite == []
    assert refused_greedy != []
    assert sync.sends  # the sync did get its part meanwhile
    assert most_counted_at_a_send(sync.sends, RULE.seconds) <= allowance(RULE.count, SHARE)


async def test_a_busy_budget_gives_the_sync_nothing_until_the_tools_are_done(make_budget: MakeBudget) -> None:
    # The tools want twice the limit: they queue, and every slot that frees goes to the next of them.
    budget = make_budget([RULE])
    sync = Sender(budget, Background(SHARE, poll_seconds=0.02))
    served: list[float] = []
    busy = anyio.Event()

    async def call() -> None:
        async with budget.slot(max_wait=15):
            served.append(anyio.current_time())
            if len(served) == RULE.count:
                busy.set()
            await anyio.sleep(HOLD)

    async def sync_once_busy() -> None:
        await busy.wait()
        await sync.run()

    last_tool = 0.0
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(sync_once_busy)
            async with anyio.create_task_group() as tools:
                for _ in range(36):
                    tools.start_soon(call)
                    await anyio.sleep(RULE.seconds / RULE.count / 2)
            last_tool = max(served)
            await anyio.sleep(2 * RULE.seconds)
            group.cancel_scope.cancel()

    assert len(served) == 36
    assert [sent for sent, _ in sync.sends if sent < last_tool] == []
    assert sync.sends  # and once they were done, it went on
