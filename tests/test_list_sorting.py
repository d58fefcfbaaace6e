"""The list tools without start_date (all history), sorted by sort_by, and their counts (count, total).

Through the tools against the sandbox in process (what the agent gets back, what was sent upstream), with
respx where a test needs exact upstream answers (accents, windows, Clemta's total).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
from mcp import Client
from starlette.applications import Starlette

from contacts_mcp.server import paging
from contacts_mcp.server.app import ContactsServer, build_server
from contacts_mcp.server.index.sync import HISTORY_FLOOR
from contacts_mcp.server.paging import Sort, sorted_order
from contacts_mcp.server.sandbox import create_app, sandbox_of, sandbox_settings
from contacts_mcp.server.settings import Rate
from contacts_mcp.tools.models import Contact, CreatedBetween
from tests.conftest import CLEMTA_COMPANY, clemta_settings, make_settings, text_of
from tests.sandbox.support import NOW, UNLIMITED

pytestmark = pytest.mark.anyio

CONTACTS = 40
GENEROUS = {
    "cometly.list_contacts": (Rate(1_000, 60.0),),
    "clemta.api_key": (Rate(1_000, 60.0),),
}
NOW_SENT = NOW.strftime("%Y-%m-%d %H:%M:%S")


class Recording(httpx.ASGITransport):
    """The sandbox in process, keeping every request the server sent it."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(app=app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await super().handle_async_request(request)

    def lists(self, vendor: str = "cometly") -> list[dict[str, str]]:
        """The query of each list request sent to `vendor`, in order."""
        return [
            dict(httpx.QueryParams(request.url.query).multi_items())
            for request in self.requests
            if request.url.path == f"/{vendor}/public-api/v1/contacts" or request.url.path == f"/{vendor}/contacts"
        ]

    def listings(self) -> list[dict[str, str]]:
        """Cometly's list requests that list (not the label discovery, which reads custom fields unlabelled)."""
        return [query for query in self.lists() if "include_all_emails" in query]


@pytest.fixture(scope="module")
def recording() -> Iterator[Recording]:
    app = create_app(contacts=CONTACTS, now=NOW, rate_limits=UNLIMITED)
    yield Recording(app)
    sandbox_of(app).store.close()


@pytest.fixture(scope="module")
def server(recording: Recording) -> ContactsServer:
    """One server for the module (building one takes most of a second on a busy machine); read-only calls."""
    settings = make_settings(**{**sandbox_settings("http://sandbox"), "rate_limits": GENEROUS, "index": "off"})
    return build_server(settings, transport=lambda: recording, sandbox=True, clock=lambda: NOW)


@pytest.fixture
def upstream(recording: Recording) -> Recording:
    recording.requests.clear()
    return recording


@pytest.fixture(scope="module")
def mocked() -> ContactsServer:
    """The server against the respx mocks of Cometly and Clemta."""
    return build_server(make_settings(clemta=clemta_settings(), rate_limits=GENEROUS, index="off"), clock=lambda: NOW)


async def call(server: ContactsServer, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with Client(server) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def refused(server: ContactsServer, tool: str, arguments: dict[str, Any]) -> str:
    async with Client(server) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    return text_of(result)


def values(page: dict[str, Any], label: str) -> list[Any]:
    return [contact.get("custom_fields", {}).get(label) for contact in page["contacts"]]


def ids(page: dict[str, Any]) -> list[str]:
    return [contact["id"] for contact in page["contacts"]]


async def everyone(server: ContactsServer) -> list[dict[str, Any]]:
    """Every sandbox contact with its custom fields, in Cometly's own order."""
    page = await call(server, "list_contacts", {"max_results": 1_000, "include_custom_fields": True})
    assert page["count"] == CONTACTS
    return page["contacts"]


# --- start_date left out -------------------------------------------------------------------------------------------


async def test_without_start_date_cometly_is_sent_the_history_floor_and_now(
    server: ContactsServer, upstream: Recording
) -> None:
    page = await call(server, "list_contacts", {"per_page": 5})

    [sent] = upstream.listings()
    assert sent["start_date"] == f"{HISTORY_FLOOR.isoformat()} 00:00:00"
    assert sent["end_date"] == NOW_SENT
    assert page["range"]["start"] == "2000-01-01T00:00:00+00:00"
    assert page["range"]["end"] == NOW.isoformat()


async def test_without_start_date_end_date_alone_runs_from_the_history_floor(
    server: ContactsServer, upstream: Recording
) -> None:
    conditions = [{"field": "Customer Plan", "operator": "equal_to", "value": "Premium"}]

    page = await call(server, "filter_by_custom_field", {"conditions": conditions, "end_date": "2026-02-28"})

    [sent] = upstream.listings()
    assert (sent["start_date"], sent["end_date"]) == ("2000-01-01 00:00:00", "2026-02-28 23:59:59")
    assert sent["custom_field_filters[0][value]"] == "Premium"
    assert (page["range"]["start"], page["range"]["end"]) == ("2000-01-01T00:00:00+00:00", "2026-02-28T23:59:59+00:00")
    assert set(values(page, "Customer Plan")) == {"Premium"}


async def test_without_start_date_clemta_is_sent_no_creation_filter_and_counts_every_contact(
    server: ContactsServer, upstream: Recording
) -> None:
    page = await call(server, "list_contacts", {"provider": "clemta", "per_page": 7})

    [sent] = upstream.lists("clemta")
    assert not {"created_at", "created_at_value", "end_date"} & set(sent)
    assert page["count"] == 7
    assert page["has_more"] is True
    assert page["total"] == CONTACTS  # Clemta's own total: exact without reading on
    assert page["range"]["start"] == "2000-01-01T00:00:00+00:00"


async def test_without_start_date_clemta_takes_end_date_alone_as_a_creation_bound(
    server: ContactsServer, upstream: Recording
) -> None:
    page = await call(server, "list_contacts", {"provider": "clemta", "end_date": "2026-02-28"})

    [sent] = upstream.lists("clemta")
    end = int(datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC).timestamp())
    assert (sent["created_at"], sent["created_at_value"]) == ("lt", str(end + 1))
    assert "end_date" not in sent
    assert page["contacts"]
    assert max(contact["created_at"] for contact in page["contacts"]) <= "2026-02-28T23:59:59Z"


# --- sort_by ------------------------------------------------------------------------------------------------------


async def test_sorting_by_a_label_across_pages_sorts_every_match_and_says_so(
    server: ContactsServer, upstream: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = await everyone(server)
    upstream.requests.clear()
    monkeypatch.setattr(paging, "MAX_PAGE", 15)  # 40 contacts: three upstream pages

    page = await call(server, "list_contacts", {"sort_by": "trial ENDS", "max_results": 1_000})

    assert [sent["per_page"] for sent in upstream.listings()] == ["15", "15", "15"]
    assert {sent["include_custom_fields"] for sent in upstream.listings()} == {"1"}  # read for the sort, unasked
    with_value = [c for c in read if c.get("custom_fields", {}).get("Trial Ends")]
    without = [c["id"] for c in read if not c.get("custom_fields", {}).get("Trial Ends")]
    expected = [c["id"] for c in sorted(with_value, key=lambda c: c["custom_fields"]["Trial Ends"])] + without
    assert ids(page) == expected
    assert page["sorted"] == {"by": "Trial Ends", "order": "asc", "covers": "all matches", "missing": len(without)}
    assert page["count"] == page["total"] == CONTACTS
    assert page["has_more"] is False


async def test_a_sorted_read_past_the_ceiling_shows_the_first_of_every_contact_read(
    server: ContactsServer, recording: Recording, upstream: Recording
) -> None:
    settings = {**sandbox_settings("http://sandbox"), "rate_limits": GENEROUS, "index": "off"}
    tight = build_server(
        make_settings(**settings, max_result_tokens=1_000), transport=lambda: recording, clock=lambda: NOW
    )
    arguments = {"sort_by": "Trial Ends", "order": "desc", "max_results": 1_000, "include_custom_fields": True}

    page = await call(tight, "list_contacts", arguments)

    everything = [c.get("custom_fields", {}).get("Trial Ends") for c in await everyone(server)]
    dated = sorted((value for value in everything if value), reverse=True)
    shown = values(page, "Trial Ends")
    assert 0 < len(shown) < CONTACTS
    assert shown == dated[: len(shown)]  # the latest of all 40, not of those that fit
    assert page["sorted"]["covers"] == "all matches"
    assert f"Sorted all {CONTACTS} contacts read" in page["sorted"]["note"]
    assert page["total"] == CONTACTS
    assert page["has_more"] is True
    assert "next_cursor" not in page  # every contact was read: none is left for a cursor
    assert "cursor=next_cursor" not in page.get("truncated", {}).get("note", "")


async def test_sorting_one_page_with_more_to_read_says_it_covers_only_what_was_read(
    server: ContactsServer, upstream: Recording
) -> None:
    page = await call(server, "list_contacts", {"sort_by": "Trial Ends", "per_page": 20})

    assert page["has_more"] is True
    assert page["sorted"]["covers"] == "the 20 contacts read"
    assert "max_results" in page["sorted"]["note"]
    assert "total" not in page  # Cometly counts nothing, and the rest was not read
    dated = [value for value in values(page, "Trial Ends") if value]
    assert dated == sorted(dated)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_contacts_without_a_value_come_last_in_either_order(
    server: ContactsServer, upstream: Recording, order: str
) -> None:
    page = await call(server, "list_contacts", {"sort_by": "profile_field_26", "order": order, "max_results": 500})

    shown = values(page, "Trial Ends")
    missing = page["sorted"]["missing"]
    assert 0 < missing < CONTACTS
    assert shown[-missing:] == [None] * missing
    assert shown[:-missing] == sorted(shown[:-missing], reverse=order == "desc")
    assert page["sorted"]["by"] == "profile_field_26"


async def test_numbers_sort_as_numbers_and_desc_puts_the_largest_first(
    server: ContactsServer, upstream: Recording
) -> None:
    page = await call(server, "list_contacts", {"sort_by": "Seats", "order": "desc", "max_results": 500})

    seats = [value for value in values(page, "Seats") if value is not None]
    assert len({len(str(value)) for value in seats}) > 1  # 9 and 10 would sort apart as text
    assert seats == sorted(seats, reverse=True)


async def test_clemta_sorts_by_created_at_itself_so_the_order_covers_every_match(
    server: ContactsServer, upstream: Recording
) -> None:
    arguments = {"provider": "clemta", "sort_by": "created_at", "order": "asc", "per_page": 10}
    page = await call(server, "list_contacts", arguments)

    [sent] = upstream.lists("clemta")
    assert (sent["sort"], sent["order"]) == ("created_at", "asc")
    created = [contact["created_at"] for contact in page["contacts"]]
    assert created == sorted(created)
    assert page["has_more"] is True
    assert page["sorted"]["covers"] == "all matches"  # next_cursor goes on in Clemta's order


async def test_clemta_sorts_by_name_over_what_it_read(server: ContactsServer, upstream: Recording) -> None:
    page = await call(server, "list_contacts", {"provider": "clemta", "sort_by": "name", "per_page": 10})

    [sent] = upstream.lists("clemta")
    assert (sent["sort"], sent["order"]) == ("created_at", "desc")  # its collation is undocumented: not asked
    assert page["sorted"]["covers"] == "the 10 contacts read"


def listed(contact_id: int, **item: Any) -> dict[str, Any]:
    return {"id": contact_id, "email": None, "name": None, "phone": None, "location": None, **item}


async def test_text_sorts_ignoring_case_and_accents(cometly: respx.MockRouter, mocked: ContactsServer) -> None:
    names = ["zoë", "Zoe B", "Álvaro", "bob", None, "alvaro"]
    body = {"data": [listed(10 - n, name=name) for n, name in enumerate(names)], "next_cursor": None}
    cometly.get("/contacts").respond(200, json=body)

    page = await call(mocked, "list_contacts", {"sort_by": "Name"})

    assert [contact.get("names", [None])[0] for contact in page["contacts"]] == [
        "Álvaro",
        "alvaro",  # a tie: the upstream's order is kept
        "bob",
        "zoë",
        "Zoe B",
        None,
    ]
    assert page["sorted"] == {"by": "name", "order": "asc", "covers": "all matches", "missing": 1}


async def test_created_at_sorts_cometly_windows_by_their_end_and_exact_times_among_them(
    cometly: respx.MockRouter, mocked: ContactsServer
) -> None:
    # Cometly sends no creation time; an item that carries one (undocumented) is dated to the second, and the
    # rest carry the listed range as their window, whose end is the range's end.
    items = [
        listed(5, created_at="2026-03-01T10:00:00Z"),
        listed(4),
        listed(3, created_at="2026-03-10T10:00:00Z"),
        listed(2),
    ]
    cometly.get("/contacts").respond(200, json={"data": items, "next_cursor": None})
    arguments = {"start_date": "2026-02-01", "end_date": "2026-03-31", "sort_by": "created_at"}

    newest = await call(mocked, "list_contacts", arguments)
    oldest = await call(mocked, "list_contacts", {**arguments, "order": "asc"})

    assert ids(newest) == ["4", "2", "3", "5"]
    assert ids(oldest) == ["5", "3", "4", "2"]  # windows tie: Cometly's order is kept
    assert newest["sorted"]["order"] == "desc"


def windowed(contact_id: str, start: str, end: str) -> Contact:
    return Contact(id=contact_id, provider="cometly", created_between=CreatedBetween(start=start, end=end))


def test_created_at_orders_by_the_window_end_then_its_start_and_never_invents_a_time() -> None:
    contacts = [
        windowed("a", "2026-01-01T00:00:00Z", "2026-01-31T23:59:59Z"),
        Contact(id="b", provider="cometly", created_at="2026-01-20T08:00:00Z"),
        windowed("c", "2026-01-15T00:00:00Z", "2026-01-31T23:59:59Z"),
        windowed("d", "2026-01-10T00:00:00Z", "2026-01-10T23:59:59Z"),
        Contact(id="e", provider="cometly"),
    ]
    sort = Sort(by="created_at", order="asc", own="created_at")

    order, missing = sorted_order(contacts, sort)
    descending, _ = sorted_order(contacts, Sort(by="created_at", order="desc", own="created_at"))

    assert [contacts[index].id for index in order] == ["d", "b", "a", "c", "e"]
    assert [contacts[index].id for index in descending] == ["c", "a", "b", "d", "e"]
    assert missing == 1


def fielded(contact_id: str, value: Any) -> Contact:
    return Contact(id=contact_id, provider="cometly", custom_fields={} if value is None else {"Seats": value})


def test_values_not_of_the_fields_type_sort_after_those_that_are_and_before_none() -> None:
    contacts = [fielded(name, value) for name, value in [("a", 10), ("b", "9"), ("c", "n/a"), ("d", None), ("e", 2.5)]]
    numbers = Sort(by="Seats", order="asc", own=None, keys=("Seats", "profile_field_16"), kind="number")

    order, missing = sorted_order(contacts, numbers)

    assert [contacts[index].id for index in order] == ["e", "b", "a", "c", "d"]
    assert missing == 1


def test_dates_with_an_offset_compare_as_the_same_instant_in_the_accounts_timezone() -> None:
    values = ["2026-03-01", "2026-02-28 23:00:00", "2026-03-01T00:30:00+01:00", "soon"]
    contacts = [fielded(str(index), value) for index, value in enumerate(values)]
    dates = Sort(by="Seats", order="asc", own=None, keys=("Seats",), kind="date", zone=ZoneInfo("UTC"))

    order, _ = sorted_order(contacts, dates)

    assert [values[index] for index in order] == [
        "2026-02-28 23:00:00",
        "2026-03-01T00:30:00+01:00",  # 23:30 UTC
        "2026-03-01",
        "soon",
    ]


async def test_a_label_sorts_the_slot_when_custom_fields_are_keyed_by_slot(
    server: ContactsServer, upstream: Recording
) -> None:
    arguments = {"sort_by": "Seats", "use_custom_field_labels": False, "max_results": 500}
    page = await call(server, "list_contacts", arguments)

    seats = [contact.get("custom_fields", {}).get("profile_field_16") for contact in page["contacts"]]
    missing = page["sorted"]["missing"]
    assert seats[: len(seats) - missing] == sorted(seat for seat in seats if seat is not None)
    assert page["sorted"]["by"] == "Seats"


async def test_cut_values_keep_pointing_at_their_contact_after_the_sort(
    cometly: respx.MockRouter, mocked: ContactsServer
) -> None:
    items = [listed(10 - n, name=name, profile_field_1="x" * 5_000 if n == 0 else "short") for n, name in
             enumerate(["Zed", "Amy", "Kim"])]  # fmt: skip
    cometly.get("/contacts").respond(200, json={"data": items, "next_cursor": None})

    page = await call(mocked, "list_contacts", {"sort_by": "name", "include_custom_fields": True})

    assert ids(page) == ["9", "8", "10"]
    [cut] = page["truncated"]["cuts"]
    assert cut["path"] == "contacts[2].custom_fields.profile_field_1"
    assert page["contacts"][2]["custom_fields"]["profile_field_1"].endswith("…")


# --- counts -------------------------------------------------------------------------------------------------------


async def test_count_only_returns_total_and_no_rows(server: ContactsServer, upstream: Recording) -> None:
    page = await call(server, "list_contacts", {"count_only": True})

    assert page["count"] == 0
    assert page["total"] == CONTACTS
    assert page["has_more"] is False


async def test_clemta_total_is_its_own_count_and_count_is_the_rows_returned(
    clemta: respx.MockRouter, mocked: ContactsServer
) -> None:
    item = {"id": "64b8f1a2e4b0c8d9f0123456", "created_at": 1767225600, "full_name": "A", "email": "a@example.com"}
    route = clemta.get("/contacts").respond(200, json={"success": True, "data": {"contacts": [item], "total": 41}})

    page = await call(mocked, "list_contacts", {"provider": "clemta", "start_date": "2026-01-01", "per_page": 1})

    assert dict(httpx.QueryParams(route.calls.last.request.url.query))["company_id"] == CLEMTA_COMPANY
    assert (page["count"], page["total"], page["has_more"]) == (1, 41, True)


# --- bad input ----------------------------------------------------------------------------------------------------


async def test_an_unknown_sort_by_lists_the_labels_and_what_else_it_takes(
    server: ContactsServer, upstream: Recording
) -> None:
    message = await refused(server, "list_contacts", {"sort_by": "Trial End Date"})

    assert message.startswith("[validation_error]")
    assert "'Trial Ends' (profile_field_26)" in message
    assert "name, email, created_at" in message
    assert upstream.listings() == []  # only the labels were read


async def test_sort_by_a_custom_field_on_clemta_says_what_it_can_sort_by(
    server: ContactsServer, upstream: Recording
) -> None:
    message = await refused(server, "list_contacts", {"provider": "clemta", "sort_by": "Seats"})

    assert message.startswith("[validation_error]")
    assert "name, email, created_at" in message
    assert upstream.lists("clemta") == []


async def test_an_order_other_than_asc_or_desc_is_refused_before_anything_is_sent(
    server: ContactsServer, upstream: Recording
) -> None:
    message = await refused(server, "list_contacts", {"sort_by": "name", "order": "newest"})

    assert message.startswith("[validation_error]")
    assert "order" in message
    assert upstream.requests == []
