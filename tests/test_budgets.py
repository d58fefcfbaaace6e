"""Rate budgets, both backends: never N + 1 sends in a window, served in order, long waits refused at once.

Every behaviour is checked against the in-process backend and against a real `redis-server`, under
real short windows; the in-process backend is also driven by a fake clock through random arrival
patterns (hypothesis).
"""

from __future__ import annotations

import bisect
import heapq
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import anyio
import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client

from contacts_mcp.server.app import build_server
from contacts_mcp.server.budgets import Budget, MemoryBudget, Observation, wait_reporter
from contacts_mcp.server.budgets.redis_backend import RedisStore
from contacts_mcp.server.errors import RateLimited
from contacts_mcp.server.settings import Rate, parse_rate_limits
from tests.conftest import make_settings, text_of

pytestmark = pytest.mark.anyio


class MakeBudget(Protocol):
    """Builds a budget of the backend under test; `may_rise` as for a vendor default (True) or a user's rule."""

    def __call__(self, rates: Sequence[Rate], *, may_rise: bool = False) -> Budget: ...


def max_in_any_window(times: list[float], seconds: float) -> int:
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered)), default=0)


def most_counted_at_a_send(sends: list[tuple[float, float]], seconds: float) -> int:
    """The most requests, of (sent, completed) pairs, counting at any send: sent by then and not done + T.

    If this never exceeds N, no upstream window of T can hold N + 1 receptions, whatever each
    request's latency, because a request is received between its send and its completion.
    """
    return max(sum(1 for s, c in sends if s <= sent < c + seconds) for sent, _ in sends)


@pytest.fixture(params=["memory", "redis"])
async def make_budget(request: pytest.FixtureRequest) -> AsyncIterator[MakeBudget]:
    """Builds budgets of one backend; each Redis budget gets its own account, so tests never share."""
    if request.param == "memory":

        def in_memory(rates: Sequence[Rate], *, may_rise: bool = False) -> Budget:
            return MemoryBudget("test.budget", rates, may_rise=may_rise)

        yield in_memory
        return
    url: str = request.getfixturevalue("redis_url")
    async with RedisStore.connect(url) as store:

        def in_redis(rates: Sequence[Rate], *, may_rise: bool = False) -> Budget:
            return store.budget("test.budget", rates, account=uuid.uuid4().hex, may_rise=may_rise)

        yield in_redis


async def test_no_window_ever_holds_more_than_n_sends_under_random_arrivals(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(5, 0.3)])
    sends: list[tuple[float, float]] = []
    rng = random.Random(7)

    async def caller(delay: float, latency: float) -> None:
        await anyio.sleep(delay)
        async with budget.slot(max_wait=10):
            sent = anyio.current_time()
            await anyio.sleep(latency)
            sends.append((sent, anyio.current_time()))  # the response is in; the budget releases after this

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(caller, rng.random() * 0.4, rng.random() / 50)

    assert len(sends) == 30
    assert max_in_any_window([sent for sent, _ in sends], 0.3) <= 5
    assert most_counted_at_a_send(sends, 0.3) <= 5


async def test_several_rules_on_one_budget_all_hold(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(4, 0.15), Rate(6, 0.6)])
    sent: list[float] = []

    async def caller() -> None:
        async with budget.slot(max_wait=10):
            sent.append(anyio.current_time())

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(caller)

    assert len(sent) == 12
    assert max_in_any_window(sent, 0.15) <= 4
    assert max_in_any_window(sent, 0.6) <= 6


async def test_a_slot_stays_taken_until_the_response_arrives_plus_the_window(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(1, 0.1)])
    started: list[float] = []
    finished: list[float] = []

    async def caller() -> None:
        async with budget.slot(max_wait=10):
            started.append(anyio.current_time())
            await anyio.sleep(0.15)  # a slow upstream
            finished.append(anyio.current_time())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            tg.start_soon(caller)

    assert started[1] >= finished[0] + 0.1


async def test_waiting_callers_are_served_in_arrival_order(make_budget: MakeBudget) -> None:
    # One slot per window, so each send has exactly one rightful caller. (With several free slots,
    # callers admitted in the same instant may send in either order; through Redis they do.)
    budget = make_budget([Rate(1, 0.1)])
    order: list[int] = []

    async def caller(number: int) -> None:
        async with budget.slot(max_wait=10):
            order.append(number)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for number in range(10):
                tg.start_soon(caller, number)
                await anyio.sleep(0.005)  # arrive in this order

    assert order == list(range(10))


async def test_a_call_that_would_wait_too_long_fails_at_once_with_the_wait_it_needs(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(1, 30)])
    async with budget.slot(max_wait=0):
        pass

    before = anyio.current_time()
    with pytest.raises(RateLimited) as caught:
        async with budget.slot(max_wait=5):
            pytest.fail("must not get a slot")

    assert anyio.current_time() - before < 1
    assert 29 < caught.value.retry_after <= 30
    assert "[rate_limited]" in caught.value.render()
    assert "Retry after 30 s" in caught.value.render()


async def test_the_wait_estimate_counts_the_callers_queued_ahead(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(2, 1)])
    admitted: list[int] = []

    async def caller(number: int) -> None:
        async with budget.slot(max_wait=10):
            admitted.append(number)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for number in range(4):  # two go now, two wait about a window
                tg.start_soon(caller, number)
                await anyio.sleep(0.01)
            with pytest.raises(RateLimited) as caught:  # fifth: behind two waiters, so about two windows
                async with budget.slot(max_wait=1.5):
                    pytest.fail("must not get a slot")
            assert caught.value.retry_after > 1.5

    assert admitted == [0, 1, 2, 3]


async def test_a_cancelled_waiter_frees_its_place_for_the_next(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(1, 0.3)])
    served: list[str] = []
    scopes: list[anyio.CancelScope] = []
    began = 0.0

    async def caller(name: str) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            async with budget.slot(max_wait=10):
                served.append(name)

    with anyio.fail_after(10):
        async with budget.slot(max_wait=0):
            pass
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller, "cancelled")
            await anyio.sleep(0.02)
            tg.start_soon(caller, "next")
            await anyio.sleep(0.02)
            scopes[0].cancel()
            began = anyio.current_time()

    assert served == ["next"]
    assert anyio.current_time() - began < 0.45  # "next" went when the window ended, not a window later
    assert await budget.remaining() == 0  # "next" took the one slot; the cancelled caller took none


async def test_retry_after_blocks_every_caller_of_the_budget(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(100, 1)])
    await budget.block_for(20)

    with pytest.raises(RateLimited) as caught:
        async with budget.slot(max_wait=1):
            pytest.fail("must not get a slot")

    assert caught.value.retry_after > 19
    assert await budget.remaining() == 0


async def test_a_lower_limit_advertised_by_the_upstream_replaces_the_configured_one(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(10, 30)])
    await budget.observe(Observation(window=None, limit=2))

    for _ in range(2):
        async with budget.slot(max_wait=0):
            pass
    with pytest.raises(RateLimited):
        async with budget.slot(max_wait=1):
            pytest.fail("the upstream allows only 2")
    await budget.observe(Observation(window=None, limit=50))  # a user's rule: never above what is configured
    assert await budget.remaining() == 8


async def test_a_higher_advertised_limit_lifts_a_vendor_default_rule_up_to_it(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(2, 30)], may_rise=True)
    await budget.observe(Observation(window=None, limit=5))

    assert await budget.current_rates() == (Rate(5, 30),)
    for _ in range(5):
        async with budget.slot(max_wait=0):  # would raise RateLimited after 2 if the rule had stayed
            pass
    with pytest.raises(RateLimited):
        async with budget.slot(max_wait=1):
            pytest.fail("the upstream allows only 5")


async def test_a_users_rule_is_a_ceiling_that_an_advertised_limit_lowers_but_never_lifts(
    make_budget: MakeBudget,
) -> None:
    budget = make_budget([Rate(3, 30)], may_rise=False)
    seen: list[int] = []
    for limit in (50, 2, 50):
        await budget.observe(Observation(window=None, limit=limit))
        seen.append((await budget.current_rates())[0].count)

    assert seen == [3, 2, 3]
    assert await budget.remaining() == 3


async def test_a_lower_advertised_limit_still_lowers_a_raised_rule(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(10, 30)], may_rise=True)
    seen: list[int] = []
    for limit in (20, 4, 0):
        await budget.observe(Observation(window=None, limit=limit))
        seen.append(await budget.remaining())

    assert seen == [20, 4, 1]  # a limit of 0 leaves one request, so the budget can hear the limit lift again
    assert await budget.current_rates() == (Rate(1, 30),)


async def test_each_rule_follows_its_own_advertised_window(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(100, 10), Rate(200_000, 86_400)], may_rise=True)
    await budget.observe(Observation(window=10, limit=250))
    await budget.observe(Observation(window=86_400, limit=400_000))

    assert await budget.current_rates() == (Rate(250, 10), Rate(400_000, 86_400))
    assert await budget.remaining() == 250


async def test_a_limit_of_another_scope_holds_the_rule_down_but_never_lifts_it(make_budget: MakeBudget) -> None:
    # Clemta's X-RateLimit-Type: resource: the company's limit, not the key's.
    budget = make_budget([Rate(10, 30)], may_rise=True)
    seen: list[int] = []
    for observation in (
        Observation(window=None, limit=50, may_raise=False),  # higher: the key's rule stays
        Observation(window=None, limit=4, may_raise=False),  # lower: it holds the rule down
        Observation(window=None, limit=20),  # the key's own limit rises, but the cap still holds
        Observation(window=None, limit=60, may_raise=False),  # the cap lifts: up to the key's own 20, no more
    ):
        await budget.observe(observation)
        seen.append((await budget.current_rates())[0].count)

    assert seen == [10, 4, 4, 20]
    assert await budget.remaining() == 20


async def test_fewer_remaining_than_ours_counts_someone_elses_requests_until_the_reset(
    make_budget: MakeBudget,
) -> None:
    budget = make_budget([Rate(10, 30)])
    async with budget.slot(max_wait=0):
        pass
    # Our one request plus six from elsewhere: the upstream has three left.
    await budget.observe(Observation(window=None, limit=10, remaining=3, reset_after=0.3))

    assert await budget.remaining() == 3
    await anyio.sleep(0.35)
    assert await budget.remaining() == 9  # the others' requests counted until the upstream's reset


async def test_an_observation_about_a_window_the_budget_does_not_have_is_ignored(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(100, 10), Rate(1000, 86_400)])
    await budget.observe(Observation(window=60, limit=1, remaining=0))
    await budget.observe(Observation(window=86_400, limit=200, remaining=5))

    assert await budget.remaining() == 5  # the day rule follows; the 60 s one is not ours


async def test_a_long_wait_reports_progress_about_once_a_second(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(1, 2.5)])
    reports: list[tuple[float, float, str]] = []

    async def report(waited: float, total: float, message: str) -> None:
        reports.append((waited, total, message))

    async with budget.slot(max_wait=0):
        pass
    token = wait_reporter.set(report)
    try:
        with anyio.fail_after(10):
            async with budget.slot(max_wait=10):
                pass
    finally:
        wait_reporter.reset(token)

    assert 1 <= len(reports) <= 3
    assert all(waited >= 0.9 for waited, _, _ in reports)
    assert [waited for waited, _, _ in reports] == sorted(waited for waited, _, _ in reports)
    assert "test.budget" in reports[0][2]
    assert reports[0][1] == pytest.approx(2.5, abs=0.5)


async def _simulate(
    budget: MemoryBudget, now: list[float], arrivals: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Drive `budget` with a fake clock: each arrival takes a slot without waiting, or comes back when told."""
    events: list[tuple[float, int, int]] = [(at, 1, i) for i, (at, _) in enumerate(arrivals)]
    heapq.heapify(events)
    holding: dict[int, Any] = {}
    sent: dict[int, float] = {}
    sends: list[tuple[float, float]] = []
    while events:
        at, kind, i = heapq.heappop(events)
        now[0] = at
        if kind == 0:  # the response arrived
            await holding.pop(i).__aexit__(None, None, None)
            sends.append((sent.pop(i), at))
            continue
        slot = budget.slot(max_wait=0)
        try:
            await slot.__aenter__()
        except RateLimited as refused:
            heapq.heappush(events, (at + max(refused.retry_after, 1e-3), 1, i))
            continue
        holding[i] = slot
        sent[i] = at
        heapq.heappush(events, (at + arrivals[i][1], 0, i))
    return sends


@settings(max_examples=60, deadline=None)
@given(
    rules=st.lists(st.tuples(st.integers(1, 5), st.sampled_from([1.0, 2.5, 10.0])), min_size=1, max_size=2),
    arrivals=st.lists(st.tuples(st.floats(0, 30), st.floats(0, 3)), min_size=1, max_size=40),
)
def test_under_a_fake_clock_no_arrival_pattern_puts_n_plus_one_requests_in_a_window(
    rules: list[tuple[int, float]], arrivals: list[tuple[float, float]]
) -> None:
    rates = [Rate(count, seconds) for count, seconds in rules]
    now = [0.0]
    budget = MemoryBudget("test.property", rates, clock=lambda: now[0])

    sends = anyio.run(_simulate, budget, now, arrivals)

    assert len(sends) == len(arrivals)  # everyone got through in the end
    for rate in rates:
        assert most_counted_at_a_send(sends, rate.seconds) <= rate.count


async def test_under_a_fake_clock_the_estimate_counts_the_callers_already_waiting() -> None:
    now = [100.0]
    budget = MemoryBudget("test.estimate", [Rate(2, 10)], clock=lambda: now[0])
    async with budget.slot(max_wait=0):
        pass
    async with budget.slot(max_wait=0):
        pass

    assert budget.estimate_wait(ahead=0) == pytest.approx(10)
    assert budget.estimate_wait(ahead=1) == pytest.approx(10)
    assert budget.estimate_wait(ahead=2) == pytest.approx(20)
    now[0] = 105.0
    assert budget.estimate_wait(ahead=0) == pytest.approx(5)
    assert await budget.remaining() == 0
    now[0] = 110.0
    assert await budget.remaining() == 2


async def test_twenty_concurrent_tool_calls_all_finish_within_the_list_budget(cometly: respx.MockRouter) -> None:
    received: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        received.append(anyio.current_time())
        return httpx.Response(200, json={"data": [], "next_cursor": None})

    cometly.get("/contacts").mock(side_effect=record)
    settings = make_settings(rate_limits=parse_rate_limits("cometly.list_contacts=5/0.2"))
    failures: list[bool] = []

    async with Client(build_server(settings)) as client:

        async def call() -> None:
            result = await client.call_tool("list_contacts", {"start_date": "2024-01-01", "end_date": "2024-01-02"})
            failures.append(result.is_error)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(call)

    assert failures == [False] * 20
    assert len(received) == 20
    assert max_in_any_window(received, 0.2) <= 5


async def test_filter_by_custom_field_draws_on_the_list_budget(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})
    settings = make_settings(rate_limits=parse_rate_limits("cometly.list_contacts=1/60"), max_wait_seconds=1)
    window = {"start_date": "2024-01-01", "end_date": "2024-01-02"}

    async with Client(build_server(settings)) as client:
        first = await client.call_tool("list_contacts", window)
        second = await client.call_tool(
            "filter_by_custom_field", {**window, "conditions": [{"field": "profile_field_1", "operator": "any"}]}
        )

    assert not first.is_error
    assert second.is_error
    assert text_of(second).startswith("[rate_limited]")
    assert cometly.calls.call_count == 1


def test_rate_limit_overrides_parse_and_reject_nonsense() -> None:
    assert parse_rate_limits("cometly.get_contact=30/60, cometly.list_contacts=15/60") == {
        "cometly.get_contact": (Rate(30, 60.0),),
        "cometly.list_contacts": (Rate(15, 60.0),),
    }
    assert parse_rate_limits("highlevel.get_contact=100/10,highlevel.get_contact=200000/86400") == {
        "highlevel.get_contact": (Rate(100, 10.0), Rate(200000, 86400.0))
    }
    for bad in ("cometly.get_contact=30", "get_contact=30/60", "cometly.get_contact=0/60", "cometly.x=a/b"):
        with pytest.raises(ValueError, match=r"provider\.tool=count/seconds"):
            parse_rate_limits(bad)


async def test_a_waiting_call_is_refused_at_once_when_a_429_makes_its_wait_too_long(make_budget: MakeBudget) -> None:
    budget = make_budget([Rate(1, 3.0)])
    async with budget.slot(max_wait=0):
        pass
    waiting = anyio.Event()
    refused: list[RateLimited] = []

    async def report(waited: float, total: float, message: str) -> None:
        waiting.set()

    async def waiter() -> None:
        wait_reporter.set(report)
        with pytest.raises(RateLimited) as caught:
            async with budget.slot(max_wait=8):  # about a window to wait: it queues
                pytest.fail("the budget is blocked for longer than this call may wait")
        refused.append(caught.value)

    with anyio.fail_after(4):  # not the 8 s it was allowed
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await waiting.wait()  # a second into its wait
            await budget.block_for(30)  # a 429 elsewhere

    assert refused[0].retry_after > 25
