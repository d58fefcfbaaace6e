"""Rate budgets: never N + 1 sends in a window, every caller served in order, long waits refused at once."""

from __future__ import annotations

import bisect
import random

import anyio
import httpx
import pytest
import respx
from mcp import Client

from server.app import build_server
from server.budgets import Budget
from server.errors import RateLimited
from server.settings import Rate, parse_rate_limits
from tests.conftest import make_settings, text_of

pytestmark = pytest.mark.anyio


def max_in_any_window(times: list[float], seconds: float) -> int:
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered)), default=0)


async def test_no_window_ever_holds_more_than_n_sends_under_random_arrivals() -> None:
    budget = Budget("test.get", [Rate(5, 0.2)])
    sent: list[float] = []
    rng = random.Random(7)

    async def caller(delay: float) -> None:
        await anyio.sleep(delay)
        async with budget.slot(max_wait=10):
            sent.append(anyio.current_time())
            await anyio.sleep(rng.random() / 100)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(caller, rng.random() * 0.3)

    assert len(sent) == 30
    assert max_in_any_window(sent, 0.2) <= 5


async def test_several_rules_on_one_budget_all_hold() -> None:
    budget = Budget("test.burst", [Rate(4, 0.1), Rate(6, 0.5)])
    sent: list[float] = []

    async def caller() -> None:
        async with budget.slot(max_wait=10):
            sent.append(anyio.current_time())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(caller)

    assert max_in_any_window(sent, 0.1) <= 4
    assert max_in_any_window(sent, 0.5) <= 6


async def test_a_slot_stays_taken_until_the_response_arrives_plus_the_window() -> None:
    budget = Budget("test.slow", [Rate(1, 0.1)])
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


async def test_waiting_callers_are_served_in_arrival_order() -> None:
    budget = Budget("test.fair", [Rate(2, 0.1)])
    order: list[int] = []

    async def caller(number: int) -> None:
        async with budget.slot(max_wait=10):
            order.append(number)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for number in range(10):
                tg.start_soon(caller, number)
                await anyio.sleep(0.001)  # arrive in this order

    assert order == list(range(10))


async def test_a_call_that_would_wait_too_long_fails_at_once_with_the_wait_it_needs() -> None:
    budget = Budget("test.tight", [Rate(1, 30)])
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


async def test_a_cancelled_waiter_frees_its_place_for_the_next() -> None:
    budget = Budget("test.cancel", [Rate(1, 0.2)])
    served: list[str] = []
    scopes: list[anyio.CancelScope] = []

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
            await anyio.sleep(0.01)
            tg.start_soon(caller, "next")
            await anyio.sleep(0.01)
            scopes[0].cancel()

    assert served == ["next"]
    assert budget.estimate_wait() > 0.1  # "next" took the one slot; nothing else is waiting for it


async def test_retry_after_blocks_every_caller_of_the_budget() -> None:
    budget = Budget("test.blocked", [Rate(100, 1)])
    budget.block_for(20)

    with pytest.raises(RateLimited) as caught:
        async with budget.slot(max_wait=1):
            pytest.fail("must not get a slot")

    assert caught.value.retry_after > 19
    assert budget.remaining() == 0


async def test_the_estimate_counts_the_callers_already_waiting() -> None:
    now = [100.0]
    budget = Budget("test.estimate", [Rate(2, 10)], clock=lambda: now[0])
    async with budget.slot(max_wait=0):
        pass
    async with budget.slot(max_wait=0):
        pass

    assert budget.estimate_wait(ahead=0) == pytest.approx(10)
    assert budget.estimate_wait(ahead=1) == pytest.approx(10)
    assert budget.estimate_wait(ahead=2) == pytest.approx(20)
    now[0] = 105.0
    assert budget.estimate_wait(ahead=0) == pytest.approx(5)
    assert budget.remaining() == 0
    now[0] = 110.0
    assert budget.remaining() == 2


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
