"""Budgets through stalls: Redis pauses, processes that die, and waits that outgrow what a call allows.

A paused Redis (SIGSTOP, as a GC pause, failover or network blip would stall it) keeps its
connections open and answers nothing, then runs what it had queued when it wakes. What a process
could not tell it meanwhile (releases, leaves) must reach it once it answers, so the budget is back
within seconds, and never so early that a window holds more than N sends.
"""

from __future__ import annotations

import signal
import sys
import uuid
from functools import partial
from pathlib import Path

import anyio
import pytest

from contacts_mcp.server.budgets import Budget, WaitReporter, wait_reporter
from contacts_mcp.server.budgets.redis_backend import RedisStore
from contacts_mcp.server.errors import ContactsError, UpstreamUnavailable
from contacts_mcp.server.settings import Rate
from tests.redis_support import RunningRedis, running_redis
from tests.test_budgets import most_counted_at_a_send

pytestmark = pytest.mark.anyio

HOLDER = """
import sys

import anyio

from contacts_mcp.server.budgets.redis_backend import RedisStore
from contacts_mcp.server.settings import Rate


async def main(url: str, account: str, lease: float, window: float) -> None:
    async with RedisStore.connect(url, lease_seconds=lease) as store:
        async with store.budget("test.holder", [Rate(1, window)], account=account).slot(max_wait=0):
            print("holding", flush=True)
            await anyio.sleep_forever()


anyio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
"""
"""A process that takes the one slot of a budget and holds it until it is killed."""


async def test_after_a_redis_pause_the_budget_is_back_within_seconds_and_no_window_holds_more_than_n(
    tmp_path: Path,
) -> None:
    rate = Rate(3, 8.0)  # a window longer than the pause, so slots taken before it still count after it
    account = uuid.uuid4().hex
    sends: list[tuple[float, float]] = []  # (sent, completed) of every request, across both processes
    outcomes: list[str] = []
    started: list[float] = []
    in_flight = anyio.Event()
    queued: set[int] = set()
    all_queued = anyio.Event()

    def reporter(number: int) -> WaitReporter:
        async def report(waited: float, total: float, message: str) -> None:  # it has waited a second in line
            queued.add(number)
            if len(queued) == 3:
                all_queued.set()

        return report

    with running_redis(tmp_path) as server:
        async with RedisStore.connect(server.url) as first, RedisStore.connect(server.url) as second:
            budgets = [store.budget("test.pause", [rate], account=account) for store in (first, second)]

            async def call(number: int, hold: float, *, reported: bool = False) -> None:
                if reported:
                    wait_reporter.set(reporter(number))
                try:
                    async with budgets[number % 2].slot(max_wait=14):
                        sent = anyio.current_time()
                        started.append(sent)
                        if len(started) == 3:
                            in_flight.set()
                        await anyio.sleep(hold)  # the upstream's latency
                        sends.append((sent, anyio.current_time()))
                except ContactsError as exc:
                    outcomes.append(exc.kind)
                else:
                    outcomes.append("sent")

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    for number in range(3):  # in flight when Redis stops; they complete while it is stopped
                        tg.start_soon(call, number, 2.0)
                    await in_flight.wait()
                    for number in range(3, 6):  # queued behind them
                        tg.start_soon(partial(call, number, 0.1, reported=True))
                    await all_queued.wait()
                    server.pause()
                    await anyio.sleep(6)
                    server.resume()
                resumed = anyio.current_time()
                holders_done = min(done for _, done in sends)

            with anyio.fail_after(15):  # within 15 s of SIGCONT the budget takes calls again...
                await call(0, 0.1)
                back = sends[-1][0]
                room = await budgets[1].remaining()  # ... and says so
                async with anyio.create_task_group() as tg:
                    for number in range(2):  # the rest of the window's room, from both processes
                        tg.start_soon(call, number, 0.1)

    assert sorted(outcomes) == ["sent"] * 6 + ["upstream_unavailable"] * 3  # the queued ones: Redis did not answer
    assert back - resumed < 15
    assert back < holders_done + rate.seconds + 1.5  # as soon as the rule allows, not after a lease
    assert room == 2
    assert most_counted_at_a_send(sends, rate.seconds) <= rate.count  # and never earlier


@pytest.mark.parametrize("seen_redis_clock", [False, True])
async def test_an_acquire_that_timed_out_in_a_pause_takes_no_slot_when_redis_runs_it_late(
    tmp_path: Path, seen_redis_clock: bool
) -> None:
    # Without Redis's clock the late acquire runs, and the caller's leave gives the slot back; with
    # it, the acquire carries a deadline and Redis, running it past that, takes nothing.
    account = uuid.uuid4().hex
    with running_redis(tmp_path) as server:
        async with RedisStore.connect(server.url) as store, RedisStore.connect(server.url) as other:
            budget = store.budget("test.late", [Rate(1, 2.0)], account=account)
            async with (
                (store if seen_redis_clock else other)
                .budget("test.warm", [Rate(1, 1)], account=account)
                .slot(max_wait=0)
            ):
                pass  # the scripts are loaded now, so the late acquire really runs
            server.pause()
            try:
                with anyio.fail_after(10), pytest.raises(UpstreamUnavailable) as caught:
                    async with budget.slot(max_wait=10):
                        pytest.fail("Redis is stopped: no slot can be taken")
            finally:
                server.resume()  # Redis now runs the acquire it had queued, which takes the slot for nobody
            resumed = anyio.current_time()

            with anyio.fail_after(6):
                async with budget.slot(max_wait=5):  # the slot is given back: nothing was sent under it
                    taken = anyio.current_time()

    assert "Redis" in str(caught.value)
    assert taken - resumed < 2


async def test_a_process_that_dies_holding_a_slot_frees_it_a_window_after_its_lease(redis_url: str) -> None:
    lease, window = 2.0, 1.0
    account = uuid.uuid4().hex
    async with RedisStore.connect(redis_url) as store:
        budget = store.budget("test.holder", [Rate(1, window)], account=account)
        command = [sys.executable, "-c", HOLDER, redis_url, account, str(lease), str(window)]
        with anyio.fail_after(20):
            async with await anyio.open_process(command, cwd=Path(__file__).parent.parent) as holder:
                assert holder.stdout is not None
                assert (await holder.stdout.receive()).startswith(b"holding")
                assert await budget.remaining() == 0
                holder.send_signal(signal.SIGKILL)  # no release, no more renewals
                killed = anyio.current_time()
                await holder.wait()
            async with budget.slot(max_wait=8):
                freed = anyio.current_time()

    # Its last renewal was at most a fifth of the lease before it died; then the lease ran out, and
    # the request it might have sent counted one more window.
    assert lease * 0.8 + window - 0.1 <= freed - killed <= lease + window + 1.5


async def test_a_request_longer_than_its_lease_keeps_its_slot_while_its_process_renews_it(redis_url: str) -> None:
    account = uuid.uuid4().hex
    async with RedisStore.connect(redis_url, lease_seconds=1.0) as mine, RedisStore.connect(redis_url) as theirs:
        holding = mine.budget("test.renew", [Rate(1, 0.5)], account=account)
        watching = theirs.budget("test.renew", [Rate(1, 0.5)], account=account)
        seen: list[int] = []
        with anyio.fail_after(10):
            async with holding.slot(max_wait=0):
                for _ in range(6):  # three leases long
                    await anyio.sleep(0.5)
                    seen.append(await watching.remaining())

    assert seen == [0] * 6


async def test_a_request_cut_off_from_redis_is_stopped_before_its_lease_can_end(tmp_path: Path) -> None:
    lease, window = 2.0, 4.0  # a window longer than the stall, which the slot must still count after it
    account = uuid.uuid4().hex
    with running_redis(tmp_path) as server:
        async with RedisStore.connect(server.url, lease_seconds=lease) as store:
            budget = store.budget("test.fence", [Rate(1, window)], account=account)
            taken = anyio.current_time()
            stopped: list[float] = []
            try:
                with anyio.fail_after(10), pytest.raises(UpstreamUnavailable) as caught:
                    await _hold_through_a_pause(budget, server, stopped)
            finally:
                server.resume()
            with anyio.fail_after(10):
                async with budget.slot(max_wait=8):
                    freed = anyio.current_time()

    assert "Redis" in str(caught.value)
    assert stopped[0] - taken < lease  # stopped while its lease surely held...
    assert freed - stopped[0] >= window  # ... and counted as sent until then, for a window past its lease


async def _hold_through_a_pause(budget: Budget, server: RunningRedis, stopped: list[float]) -> None:
    async with budget.slot(max_wait=0):
        server.pause()
        try:
            await anyio.sleep(10)  # a request that would outlive its lease
        finally:
            stopped.append(anyio.current_time())
        pytest.fail("the request must be stopped before its lease can end")
