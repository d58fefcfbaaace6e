"""What a tool call survives, and what it never does twice: retries, rate-limit headers, progress.

GETs are retried on transport errors and 5xx, each try through the budget; a create is retried only
when it surely did not reach the upstream. The budget follows what the upstream's headers say.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import respx
from mcp import Client

from contacts_mcp.server import http
from contacts_mcp.server.app import build_server
from contacts_mcp.server.budgets import Observation
from contacts_mcp.server.http import DAY_SECONDS, rate_limit_observations, wait_after_429
from contacts_mcp.server.settings import parse_rate_limits
from tests.conftest import (
    CLEMTA_COMPANY,
    HIGHLEVEL_KEY,
    HIGHLEVEL_LOCATION,
    make_all_settings,
    make_settings,
    text_of,
)

pytestmark = pytest.mark.anyio

CONTACT: dict[str, Any] = {"id": 4821, "emails": ["jane@example.com"]}
CREATED: dict[str, Any] = {"id": 9001, "emails": ["john@example.com"]}
NEW = {"emails": ["john@example.com"], "names": ["John Doe"]}
HIGHLEVEL_CONTACT: dict[str, Any] = {"contact": {"id": "abc"}}
CLEMTA_ID = "64b8f1a2e4b0c8d9f0123456"
CLEMTA_CONTACT: dict[str, Any] = {
    "success": True,
    "message": "ok",
    "data": {"id": CLEMTA_ID, "type": "customer", "full_name": "Jane Doe", "email": "jane@example.com"},
}
HIGHLEVEL_BURST = {"X-RateLimit-Max": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000"}


def retry_after_in(text: str) -> int:
    """The seconds a `[rate_limited]` result asks the model to wait."""
    found = re.search(r"Retry after (\d+) s\.", text)
    assert found, text
    return int(found.group(1))


async def budgets_left(client: Client) -> dict[str, int | None]:
    """What server_info says each budget has left, by name."""
    result = await client.call_tool("server_info", {})
    assert result.structured_content is not None, text_of(result)
    return {budget["name"]: budget["remaining"] for budget in result.structured_content["budgets"]}


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_BASE_SECONDS", 0.002)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(max_wait_seconds=5))) as connected:
        yield connected


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, json={"message": "Service Unavailable"}),
        httpx.Response(502, text="Bad Gateway"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=["503", "502", "connect-error", "read-timeout", "disconnected"],
)
async def test_a_get_is_retried_after_a_passing_failure(
    cometly: respx.MockRouter, client: Client, failure: httpx.Response | Exception
) -> None:
    route = cometly.get("/contacts/4821").mock(side_effect=[failure, httpx.Response(200, json=CONTACT)])

    result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert not result.is_error, text_of(result)
    assert route.call_count == 2
    assert result.structured_content is not None
    assert result.structured_content["id"] == "4821"


async def test_a_get_gives_up_after_three_tries_and_says_so(cometly: respx.MockRouter, client: Client) -> None:
    route = cometly.get("/contacts/4821").respond(503, json={"message": "Service Unavailable"})

    result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert route.call_count == 3
    assert text_of(result).startswith("[upstream_unavailable]")
    assert "3 tries" in text_of(result)


async def test_a_client_error_is_not_retried(cometly: respx.MockRouter, client: Client) -> None:
    route = cometly.get("/contacts/4821").respond(404, json={"message": "Contact not found."})

    result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert route.call_count == 1
    assert text_of(result).startswith("[not_found]")


async def test_every_retry_draws_on_the_budget() -> None:
    sent: list[float] = []
    answers = iter([httpx.Response(503), httpx.Response(503), httpx.Response(200, json=CONTACT)])

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(anyio.current_time())
        return next(answers)

    settings = make_settings(rate_limits=parse_rate_limits("cometly.get_contact=1/0.3"), max_wait_seconds=5)
    with respx.mock(base_url=settings.cometly.base_url) as cometly:
        cometly.get("/contacts/4821").mock(side_effect=answer)
        async with Client(build_server(settings)) as client:
            result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert not result.is_error
    assert len(sent) == 3
    assert all(later - earlier >= 0.3 for earlier, later in itertools.pairwise(sent))


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.WriteError("broken pipe"),
        httpx.Response(502, text="Bad Gateway"),
        httpx.Response(500, json={"message": "Server Error"}),
    ],
    ids=["read-timeout", "disconnected", "write-error", "502", "500"],
)
async def test_a_create_that_may_have_reached_the_upstream_is_never_resent(
    cometly: respx.MockRouter, client: Client, failure: httpx.Response | Exception
) -> None:
    route = cometly.post("/contacts").mock(side_effect=[failure, httpx.Response(201, json=CREATED)])

    result = await client.call_tool("create_contact", NEW)

    assert route.call_count == 1
    text = text_of(result)
    assert text.startswith("[upstream_unavailable]")
    assert "may have taken effect" in text
    assert "list_contacts" in text  # how to check before creating it again
    assert "john@example.com" in text


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("connect timed out"), httpx.PoolTimeout("pool")],
    ids=["connect-error", "connect-timeout", "pool-timeout"],
)
async def test_a_create_that_never_left_is_sent_again(
    cometly: respx.MockRouter, client: Client, failure: Exception
) -> None:
    route = cometly.post("/contacts").mock(side_effect=[failure, httpx.Response(201, json=CREATED)])

    result = await client.call_tool("create_contact", NEW)

    assert not result.is_error, text_of(result)
    assert route.call_count == 2


async def test_a_create_refused_with_429_is_sent_again_after_retry_after(
    cometly: respx.MockRouter, client: Client
) -> None:
    route = cometly.post("/contacts").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "Too Many Attempts."}),
            httpx.Response(201, json=CREATED),
        ]
    )

    result = await client.call_tool("create_contact", NEW)

    assert not result.is_error, text_of(result)
    assert route.call_count == 2


async def test_a_highlevel_create_that_timed_out_points_at_find_contact(highlevel: respx.MockRouter) -> None:
    lookup = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": None})
    route = highlevel.post("/contacts/").mock(side_effect=httpx.ReadTimeout("read timed out"))

    async with Client(build_server(make_all_settings())) as client:
        result = await client.call_tool("create_contact", {**NEW, "provider": "highlevel"})

    assert lookup.call_count == 1  # the duplicate search went first and found none
    assert route.call_count == 1  # the POST that may have taken effect is never sent again
    assert text_of(result).startswith("[upstream_unavailable]")
    assert "find_contact(email='john@example.com')" in text_of(result)


async def test_remaining_zero_makes_the_next_call_wait_instead_of_drawing_a_429(cometly: respx.MockRouter) -> None:
    route = cometly.get("/contacts/4821").respond(
        200, json=CONTACT, headers={"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0"}
    )

    async with Client(build_server(make_settings(max_wait_seconds=2))) as client:
        first = await client.call_tool("get_contact", {"contact_id": "4821"})
        second = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert not first.is_error
    assert text_of(second).startswith("[rate_limited]")
    assert route.call_count == 1  # nothing was sent for the refused call


async def test_a_lower_limit_in_the_headers_replaces_the_configured_one(cometly: respx.MockRouter) -> None:
    route = cometly.get("/contacts/4821").respond(
        200, json=CONTACT, headers={"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "1"}
    )

    async with Client(build_server(make_settings(max_wait_seconds=2))) as client:
        results = [await client.call_tool("get_contact", {"contact_id": "4821"}) for _ in range(3)]

    assert [r.is_error for r in results] == [False, False, True]
    assert text_of(results[2]).startswith("[rate_limited]")
    assert route.call_count == 2


async def test_a_higher_limit_in_the_headers_raises_a_default_budget_but_never_a_users_override(
    cometly: respx.MockRouter,
) -> None:
    cometly.get("/contacts/4821").respond(
        200, json=CONTACT, headers={"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59"}
    )
    left: list[int | None] = []

    for rate_limits in ({}, parse_rate_limits("cometly.get_contact=30/60")):
        async with Client(build_server(make_settings(rate_limits=rate_limits))) as client:
            result = await client.call_tool("get_contact", {"contact_id": "4821"})
            assert not result.is_error, text_of(result)
            left.append((await budgets_left(client))["cometly.get_contact"])

    assert left == [59, 29]  # the default follows Cometly's 60; the user's 30 is a ceiling


async def test_highlevel_headers_raise_both_of_its_default_rules(highlevel: respx.MockRouter) -> None:
    headers = {
        "X-RateLimit-Max": "150",
        "X-RateLimit-Remaining": "149",
        "X-RateLimit-Interval-Milliseconds": "10000",
        "X-RateLimit-Limit-Daily": "400000",
        "X-RateLimit-Daily-Remaining": "399999",
    }
    highlevel.get("/contacts/abc").respond(200, json=HIGHLEVEL_CONTACT, headers=headers)

    async with Client(build_server(make_all_settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": "abc", "provider": "highlevel"})
        left = await budgets_left(client)

    assert not result.is_error, text_of(result)
    assert left["highlevel.location"] == 149  # 150 per 10 s now, not the documented 100


def _clemta_budget(left: dict[str, int | None]) -> int | None:
    """What the budget of Clemta's get_contact has left (one budget per key, or one per endpoint before)."""
    [name] = {"clemta.api_key", "clemta.get_contact"} & set(left)
    return left[name]


@pytest.mark.parametrize(
    ("scope", "limit", "remaining", "left"),
    [
        ("api_key", 500, 499, 499),  # the key's own limit: the default follows it up
        ("resource", 500, 499, 99),  # the company's limit is not the key's: it never lifts the budget
        ("resource", 5, 4, 4),  # but it holds the budget down
    ],
)
async def test_clemta_resource_limits_lower_the_key_budget_but_never_raise_it(
    clemta: respx.MockRouter, scope: str, limit: int, remaining: int, left: int
) -> None:
    headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Type": scope}
    clemta.get(f"/contacts/{CLEMTA_ID}").respond(200, json=CLEMTA_CONTACT, headers=headers)

    async with Client(build_server(make_all_settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": CLEMTA_ID, "provider": "clemta"})
        budgets = await budgets_left(client)

    assert not result.is_error, text_of(result)
    assert _clemta_budget(budgets) == left


def test_a_429_without_retry_after_waits_what_each_vendors_headers_imply() -> None:
    now = 1_800_000_000.0

    def wait(headers: dict[str, str], shortest_window: float) -> tuple[float, str]:
        return wait_after_429(httpx.Headers(headers), shortest_window=shortest_window, now=now)

    assert wait({"Retry-After": "7", "X-RateLimit-Reset": "1800000030"}, 60) == (7, "Retry-After")
    assert wait({"X-RateLimit-Reset": "1800000030"}, 60) == (30, "X-RateLimit-Reset")  # Clemta: Unix time
    assert wait({"X-RateLimit-Reset": "12"}, 60) == (12, "X-RateLimit-Reset")  # or seconds
    assert wait(HIGHLEVEL_BURST, 10) == (10, "X-RateLimit-Interval-Milliseconds")
    assert wait({"X-RateLimit-Interval-Milliseconds": "2500"}, 10) == (2.5, "X-RateLimit-Interval-Milliseconds")
    assert wait({}, 10) == (10, "the budget's shortest window")  # HighLevel's burst window
    assert wait({"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0"}, 60) == (60, "the budget's shortest window")


@pytest.mark.parametrize(
    "headers",
    [HIGHLEVEL_BURST, {"X-RateLimit-Interval-Milliseconds": "10000"}, {}],
    ids=["burst-headers", "interval-only", "bare"],
)
async def test_a_highlevel_429_without_retry_after_blocks_the_location_for_its_10_s_window(
    highlevel: respx.MockRouter, headers: dict[str, str]
) -> None:
    route = highlevel.get("/contacts/abc").respond(429, json={"message": "Too many requests"}, headers=headers)

    async with Client(build_server(make_all_settings(max_wait_seconds=2))) as client:
        with anyio.fail_after(5):
            first = await client.call_tool("get_contact", {"contact_id": "abc", "provider": "highlevel"})
            second = await client.call_tool("get_contact", {"contact_id": "abc", "provider": "highlevel"})
        left = await budgets_left(client)

    assert text_of(first).startswith("[rate_limited]")
    assert retry_after_in(text_of(first)) == 10  # not the 60 s once assumed
    assert text_of(second).startswith("[rate_limited]")
    assert 5 < retry_after_in(text_of(second)) <= 10  # the budget is blocked, nothing sent
    assert route.call_count == 1
    assert left["highlevel.location"] == 0


async def test_a_call_allowed_to_wait_30_s_succeeds_after_a_highlevel_429(highlevel: respx.MockRouter) -> None:
    refused = httpx.Response(429, headers={**HIGHLEVEL_BURST, "X-RateLimit-Interval-Milliseconds": "200"})
    route = highlevel.get("/contacts/abc").mock(side_effect=[refused, httpx.Response(200, json=HIGHLEVEL_CONTACT)])

    async with Client(build_server(make_all_settings(max_wait_seconds=30))) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("get_contact", {"contact_id": "abc", "provider": "highlevel"})

    assert not result.is_error, text_of(result)
    assert route.call_count == 2


async def test_a_clemta_429_without_retry_after_waits_for_its_reset(clemta: respx.MockRouter) -> None:
    reset = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 1)}
    route = clemta.get(f"/contacts/{CLEMTA_ID}").mock(
        side_effect=[httpx.Response(429, headers=reset), httpx.Response(200, json=CLEMTA_CONTACT)]
    )

    async with Client(build_server(make_all_settings(max_wait_seconds=5))) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("get_contact", {"contact_id": CLEMTA_ID, "provider": "clemta"})

    assert not result.is_error, text_of(result)
    assert route.call_count == 2


async def test_a_bare_429_waits_the_budgets_shortest_window(cometly: respx.MockRouter) -> None:
    route = cometly.get("/contacts/4821").mock(side_effect=[httpx.Response(429), httpx.Response(200, json=CONTACT)])
    settings = make_settings(rate_limits=parse_rate_limits("cometly.get_contact=30/0.3"), max_wait_seconds=5)

    async with Client(build_server(settings)) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert not result.is_error, text_of(result)
    assert route.call_count == 2


async def test_a_429_after_the_days_last_request_fails_at_once_saying_so(
    highlevel: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    spent = {
        **HIGHLEVEL_BURST,
        "Retry-After": "0",
        "X-RateLimit-Limit-Daily": "200000",
        "X-RateLimit-Daily-Remaining": "0",
    }
    route = highlevel.get("/contacts/search/duplicate").mock(
        side_effect=[httpx.Response(429, headers=spent), httpx.Response(200, json={"contact": None})]
    )
    caplog.set_level(logging.DEBUG)

    async with Client(build_server(make_all_settings(max_wait_seconds=30))) as client:
        with anyio.fail_after(5):
            first = await client.call_tool("find_contact", {"email": "x@example.com", "provider": "highlevel"})
            second = await client.call_tool("find_contact", {"email": "x@example.com", "provider": "highlevel"})

    assert text_of(first).startswith("[rate_limited]")
    assert "daily rate limit is used up" in text_of(first)
    assert retry_after_in(text_of(first)) == DAY_SECONDS
    assert text_of(second).startswith("[rate_limited]")  # the day rule holds it back, nothing sent
    assert route.call_count == 1  # neither waited out nor retried, though Retry-After said 0
    ours = [
        record for record in caplog.records if record.name.startswith("contacts_mcp.")
    ]  # httpx's own is off in serve
    logged = "\n".join(record.getMessage() for record in ours)
    assert "daily limit used up" in logged
    for secret in (HIGHLEVEL_KEY, HIGHLEVEL_LOCATION, "x@example.com", "x%40example.com", "locationId"):
        assert secret not in logged
        assert secret not in text_of(first)


async def test_highlevel_interval_headers_hold_every_route_of_the_location(highlevel: respx.MockRouter) -> None:
    headers = {"X-RateLimit-Max": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000"}
    get = highlevel.get("/contacts/abc").respond(200, json={"contact": {"id": "abc"}}, headers=headers)
    find = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": None})

    async with Client(build_server(make_all_settings(max_wait_seconds=2))) as client:
        first = await client.call_tool("get_contact", {"contact_id": "abc", "provider": "highlevel"})
        second = await client.call_tool("find_contact", {"email": "x@example.com", "provider": "highlevel"})

    assert not first.is_error
    assert text_of(second).startswith("[rate_limited]")
    assert (get.call_count, find.call_count) == (1, 0)


def test_headers_of_each_vendor_become_observations() -> None:
    cometly = httpx.Headers({"X-RateLimit-Limit": "15", "X-RateLimit-Remaining": "3"})
    clemta = httpx.Headers(
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000030"}
    )
    clemta_resource = httpx.Headers(
        {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59", "X-RateLimit-Type": "resource"}
    )
    highlevel = httpx.Headers(
        {
            "X-RateLimit-Max": "100",
            "X-RateLimit-Remaining": "97",
            "X-RateLimit-Interval-Milliseconds": "10000",
            "X-RateLimit-Limit-Daily": "200000",
            "X-RateLimit-Daily-Remaining": "199000",
        }
    )

    assert rate_limit_observations(cometly) == [Observation(window=None, limit=15, remaining=3)]
    assert rate_limit_observations(clemta, now=1_800_000_000) == [
        Observation(window=None, limit=100, remaining=0, reset_after=30)
    ]
    assert rate_limit_observations(clemta_resource) == [
        Observation(window=None, limit=60, remaining=59, may_raise=False)
    ]
    assert rate_limit_observations(highlevel) == [
        Observation(window=10.0, limit=100, remaining=97),
        Observation(window=86_400.0, limit=200_000, remaining=199_000),
    ]
    assert rate_limit_observations(httpx.Headers({"X-RateLimit-Limit": "lots"})) == []


async def test_a_clemta_reset_time_is_followed(clemta: respx.MockRouter) -> None:
    reset = str(int(time.time()) + 1)
    headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    body: dict[str, Any] = {"success": True, "message": "ok", "data": {"contacts": [], "total": 0}}
    route = clemta.get("/contacts").respond(200, json=body, headers=headers)
    window = {"start_date": "2024-01-01", "end_date": "2024-01-02", "provider": "clemta"}

    async with Client(build_server(make_all_settings(max_wait_seconds=5))) as client:
        with anyio.fail_after(10):
            first = await client.call_tool("list_contacts", window)
            began = anyio.current_time()
            second = await client.call_tool("list_contacts", window)  # waits for the reset, not a minute

    assert not first.is_error
    assert not second.is_error
    assert anyio.current_time() - began < 3
    assert route.call_count == 2
    request: httpx.Request = route.calls.last.request
    assert request.url.params["company_id"] == CLEMTA_COMPANY


async def test_a_call_waiting_for_budget_sends_progress_notifications(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts/4821").respond(200, json=CONTACT)
    settings = make_settings(rate_limits=parse_rate_limits("cometly.get_contact=1/2.5"), max_wait_seconds=10)
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with Client(build_server(settings)) as client:
        await client.call_tool("get_contact", {"contact_id": "4821"})
        with anyio.fail_after(10):
            waited = await client.call_tool("get_contact", {"contact_id": "4821"}, progress_callback=on_progress)

    assert not waited.is_error
    assert reports, "a wait of about 2.5 s must be reported"
    assert all(total is not None and total >= value for value, total, _ in reports)
    assert "cometly.get_contact" in (reports[0][2] or "")
