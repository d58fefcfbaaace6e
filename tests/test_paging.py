"""Bulk reads, counts and the result ceiling: what is requested upstream, and how the agent reads on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from mcp import Client

from contacts_mcp.server import paging
from contacts_mcp.server.app import build_server
from contacts_mcp.server.paging import RESUME_PREFIX, Resume
from contacts_mcp.server.settings import Rate
from tests.conftest import make_settings, text_of

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
RANGE = {"start_date": "2026-01-01", "end_date": "2026-11-23"}


class FakeList:
    """Cometly's list endpoint over `count` contacts, ids descending, with Laravel-style opaque cursors."""

    def __init__(self, count: int, *, first_id: int = 100_000, name_chars: int = 12, cities: int = 1) -> None:
        self.ids = [first_id - n for n in range(count)]
        self.name_chars = name_chars
        self.cities = cities
        self.requests: list[dict[str, str]] = []

    def item(self, contact_id: int) -> dict[str, Any]:
        return {
            "id": contact_id,
            "email": f"lead{contact_id}@example.com",
            "name": f"Lead {contact_id}".ljust(self.name_chars, "x"),
            "phone": None,
            "location": "Austin, TX" if self.cities == 1 else f"City {contact_id % self.cities}",
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(httpx.QueryParams(request.url.query).multi_items())
        self.requests.append(query)
        per_page = int(query["per_page"])
        start = 0
        if "cursor" in query:
            after = int(query["cursor"].removeprefix("after-"))
            start = self.ids.index(after) + 1
        chunk = self.ids[start : start + per_page]
        more = start + per_page < len(self.ids)
        body = {
            "data": [self.item(contact_id) for contact_id in chunk],
            "per_page": per_page,
            "next_cursor": f"after-{chunk[-1]}" if more and chunk else None,
        }
        return httpx.Response(200, json=body)


def server(**overrides: Any) -> Any:
    return build_server(make_settings(**overrides), clock=lambda: NOW)


def page_of(result: Any) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    return result.structured_content


def ids_of(page: dict[str, Any]) -> list[int]:
    return [int(contact["id"]) for contact in page.get("contacts", [])]


async def test_max_results_walks_the_cursor_5000_at_a_time_and_reports_progress_per_page(
    cometly: respx.MockRouter,
) -> None:
    upstream = FakeList(12_000, name_chars=1)
    cometly.get("/contacts").mock(side_effect=upstream)
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with Client(server()) as client:
        result = await client.call_tool(
            "list_contacts", {**RANGE, "max_results": 11_000, "count_only": True}, progress_callback=on_progress
        )

    page = page_of(result)
    assert [request["per_page"] for request in upstream.requests] == ["5000", "5000", "1000"]
    assert [request.get("cursor") for request in upstream.requests] == [None, "after-95001", "after-90001"]
    assert page["count"] == 0  # rows returned: none with count_only
    assert "total" not in page  # counting stopped at max_results, before the end
    assert page["total_at_least"] == 11_000
    assert page["has_more"] is True
    assert [(done, total) for done, total, _ in reports] == [(5_000, 11_000), (10_000, 11_000), (11_000, 11_000)]
    assert all(message and "page" in message for _, _, message in reports)


async def test_count_only_counts_every_match_and_returns_no_contacts(cometly: respx.MockRouter) -> None:
    upstream = FakeList(7_321)
    cometly.get("/contacts").mock(side_effect=upstream)

    async with Client(server()) as client:
        page = page_of(await client.call_tool("list_contacts", {**RANGE, "count_only": True}))

    assert page["contacts"] == []
    assert page["count"] == 0
    assert page["total"] == 7_321
    assert page["has_more"] is False
    assert "total_at_least" not in page
    assert page["range"]["start"] == "2026-01-01T00:00:00+00:00"
    assert page["range"]["end"] == "2026-11-23T23:59:59+00:00"
    assert len(upstream.requests) == 2


async def test_count_only_of_an_empty_range_is_zero(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts").mock(side_effect=FakeList(0))

    async with Client(server()) as client:
        page = page_of(await client.call_tool("list_contacts", {"start_date": "yesterday", "count_only": True}))

    assert page["count"] == 0
    assert page["total"] == 0
    assert page["range"]["start"] == "2026-11-22T00:00:00+00:00"


async def test_count_only_works_on_filters_too_and_echoes_them(cometly: respx.MockRouter) -> None:
    upstream = FakeList(40)
    cometly.get("/contacts").mock(side_effect=upstream)
    condition = {"field": "profile_field_5", "operator": "equal_to", "value": "Premium"}

    async with Client(server()) as client:
        page = page_of(
            await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition], "count_only": True})
        )

    assert page["count"] == 0
    assert page["total"] == 40
    assert page["filters"] == [condition]
    assert upstream.requests[0]["custom_field_filters[0][field]"] == "profile_field_5"


async def test_max_results_asks_for_what_is_left_and_resumes_with_the_upstream_cursor_at_a_page_end(
    cometly: respx.MockRouter,
) -> None:
    upstream = FakeList(30)
    cometly.get("/contacts").mock(side_effect=upstream)

    async with Client(server()) as client:
        first = page_of(await client.call_tool("list_contacts", {**RANGE, "per_page": 10, "max_results": 15}))
        second = page_of(
            await client.call_tool(
                "list_contacts", {**RANGE, "per_page": 10, "max_results": 15, "cursor": first["next_cursor"]}
            )
        )

    assert [request["per_page"] for request in upstream.requests] == ["15", "15"]  # one request each, not two
    assert ids_of(first) == upstream.ids[:15]
    assert first["count"] == 15
    assert "total" not in first  # Cometly counts nothing, and the walk stopped before the end
    assert first["has_more"] is True
    assert first["next_cursor"] == "after-99986"
    assert ids_of(second) == upstream.ids[15:30]
    assert second["has_more"] is False
    assert "next_cursor" not in second
    assert "total" not in second  # the end, but read from a cursor: the contacts before it were not counted


async def test_a_page_past_the_ceiling_is_cut_with_a_cursor_and_reading_on_misses_and_repeats_nothing(
    cometly: respx.MockRouter,
) -> None:
    upstream = FakeList(3_000, name_chars=200)
    cometly.get("/contacts").mock(side_effect=upstream)
    seen: list[int] = []
    cursor: str | None = None

    generous = {"cometly.list_contacts": (Rate(1_000, 60.0),)}
    async with Client(server(max_result_tokens=5_000, rate_limits=generous)) as client:
        for _ in range(100):
            arguments = {**RANGE, "per_page": 1_000, **({"cursor": cursor} if cursor else {})}
            result = await client.call_tool("list_contacts", arguments)
            page = page_of(result)
            assert len(text_of(result)) <= 5_000 * 4
            seen += ids_of(page)
            cursor = page.get("next_cursor")
            if not page["has_more"]:
                break
            assert "ceiling" in page["truncated"]["note"] or len(ids_of(page)) == 1_000

    assert seen == upstream.ids


@pytest.mark.parametrize("short", [False, True], ids=["estimate as is", "estimate halved"])
async def test_reading_on_after_the_ceiling_misses_and_repeats_nothing_even_when_the_estimate_was_short(
    cometly: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, short: bool
) -> None:
    # With no room kept for the envelope and each row's cost halved, the estimate lets too many contacts
    # in and the exact check has to give some back: the cursor must then point just after the last one shown.
    if short:
        row_chars = paging.row_chars

        def halved(item: dict[str, Any]) -> int:
            return row_chars(item) // 2

        monkeypatch.setattr(paging, "ENVELOPE_CHARS", 0)
        monkeypatch.setattr(paging, "row_chars", halved)
    given_back: list[int] = []
    finish = paging._Walk.finish  # pyright: ignore[reportPrivateUsage]

    def counting_finish(walk: Any, result: Any, sort: Any = None) -> Any:
        taken = len(walk.contacts)
        finished = finish(walk, result, sort)
        given_back.append(taken - len(walk.contacts))
        return finished

    monkeypatch.setattr(paging._Walk, "finish", counting_finish)  # pyright: ignore[reportPrivateUsage]
    upstream = FakeList(400, name_chars=150, cities=50)  # no column but provider is the same on every row
    cometly.get("/contacts").mock(side_effect=upstream)
    seen: list[int] = []
    cursor: str | None = None
    generous = {"cometly.list_contacts": (Rate(1_000, 60.0),)}

    async with Client(server(max_result_tokens=2_000, rate_limits=generous)) as client:
        for _ in range(200):
            arguments = {**RANGE, "per_page": 60, **({"cursor": cursor} if cursor else {})}
            result = await client.call_tool("list_contacts", arguments)
            page = page_of(result)
            assert len(text_of(result)) <= 2_000 * 4
            seen += ids_of(page)
            cursor = page.get("next_cursor")
            if not page["has_more"]:
                break

    assert seen == upstream.ids
    assert any(given_back) == short  # the exact check gave contacts back only when the estimate was short


async def test_the_ceiling_note_says_how_to_read_on(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts").mock(side_effect=FakeList(500, name_chars=200))

    async with Client(server(max_result_tokens=2_000)) as client:
        result = await client.call_tool("list_contacts", {**RANGE, "per_page": 500})

    page = page_of(result)
    assert 0 < page["count"] < 500
    assert page["count"] == len(page["contacts"])
    assert page["has_more"] is True
    assert "cursor=next_cursor" in page["truncated"]["note"]
    assert len(text_of(result)) <= 2_000 * 4


async def test_an_upstream_cursor_passes_through_unchanged(cometly: respx.MockRouter) -> None:
    upstream = FakeList(30)
    cometly.get("/contacts").mock(side_effect=upstream)

    async with Client(server()) as client:
        page = page_of(await client.call_tool("list_contacts", {**RANGE, "per_page": 10, "cursor": "after-99990"}))

    assert upstream.requests[0]["cursor"] == "after-99990"
    assert ids_of(page) == upstream.ids[11:21]
    assert page["next_cursor"] == "after-99980"


async def test_a_resume_cursor_whose_contact_is_gone_falls_back_on_the_count(cometly: respx.MockRouter) -> None:
    upstream = FakeList(30)
    cometly.get("/contacts").mock(side_effect=upstream)
    cursor = Resume(cursor="after-99990", after="123", shown=4).encode()

    async with Client(server()) as client:
        page = page_of(await client.call_tool("list_contacts", {**RANGE, "per_page": 10, "cursor": cursor}))

    assert upstream.requests[0]["cursor"] == "after-99990"
    assert upstream.requests[0]["per_page"] == "14"  # the 4 shown before, then a page of 10
    assert ids_of(page) == upstream.ids[15:25]


@pytest.mark.parametrize("cursor", [RESUME_PREFIX + "not-base64!", RESUME_PREFIX + "e30", RESUME_PREFIX])
async def test_a_damaged_resume_cursor_is_a_validation_error_and_sends_nothing(
    cometly: respx.MockRouter, cursor: str
) -> None:
    route = cometly.get("/contacts").mock(side_effect=FakeList(3))

    async with Client(server()) as client:
        result = await client.call_tool("list_contacts", {**RANGE, "cursor": cursor})

    assert result.is_error
    assert text_of(result).startswith("[validation_error]")
    assert "next_cursor" in text_of(result)
    assert route.call_count == 0


async def test_max_results_ends_early_at_the_end_of_the_range(cometly: respx.MockRouter) -> None:
    upstream = FakeList(7)
    cometly.get("/contacts").mock(side_effect=upstream)

    async with Client(server()) as client:
        page = page_of(await client.call_tool("list_contacts", {**RANGE, "max_results": 100}))

    assert ids_of(page) == upstream.ids
    assert page["count"] == 7
    assert page["total"] == 7  # walked to the end from the start: exact
    assert page["has_more"] is False
    assert [request["per_page"] for request in upstream.requests] == ["100"]


async def test_the_text_is_a_table_with_each_column_named_once(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts").mock(side_effect=FakeList(3))

    async with Client(server()) as client:
        result = await client.call_tool("list_contacts", {**RANGE, "per_page": 3})

    text = json.loads(text_of(result))
    assert text["contacts"]["columns"] == ["id", "emails", "names"]
    assert text["contacts"]["same_in_every_row"] == {
        "provider": "cometly",
        "locations": "Austin, TX",
        "created_between.start": "2026-01-01T00:00:00Z",  # every contact of a listed range carries the range
        "created_between.end": "2026-11-23T23:59:59Z",
    }
    assert text["contacts"]["rows"][0] == ["100000", "lead100000@example.com", "Lead 100000x"]
    assert text_of(result).count('"emails"') == 1


async def test_a_long_filter_value_is_echoed_short_so_it_cannot_crowd_out_the_contacts(
    cometly: respx.MockRouter,
) -> None:
    upstream = FakeList(5)
    cometly.get("/contacts").mock(side_effect=upstream)
    conditions = [{"field": "profile_field_1", "operator": "contains", "value": "x" * 5_000}] * 10

    async with Client(server(max_result_tokens=2_000)) as client:
        result = await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": conditions})

    page = page_of(result)
    assert upstream.requests[0]["custom_field_filters[9][value]"] == "x" * 5_000  # sent whole
    assert all(len(applied["value"]) == 200 for applied in page["filters"])
    assert page["count"] == 5
    assert len(text_of(result)) <= 2_000 * 4
