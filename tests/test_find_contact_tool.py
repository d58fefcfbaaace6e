"""find_contact on Cometly through the MCP client: the index finds, Cometly confirms, dates come along.

The server runs against the in-process sandbox with its contact index in the test's directory, its
background sync walking the sandbox's Space; the tests wait for the backfill, then ask as an agent would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from starlette.applications import Starlette

from contacts_mcp.server.app import build_server
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.sandbox import sandbox_of, sandbox_settings
from contacts_mcp.server.sandbox.model import NewContact, Stamped
from contacts_mcp.server.settings import Settings, parse_rate_limits
from tests.conftest import text_of
from tests.index.sync_support import NOW, add_contact, space, truth

pytestmark = pytest.mark.anyio

UNLIMITED = "cometly.list_contacts=100000/60,cometly.get_contact=100000/60,cometly.create_contact=100000/60"


@dataclass
class Counting(httpx.AsyncBaseTransport):
    """The sandbox in process, counting the requests the server sends it."""

    app: Starlette
    sent: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)

    def gets(self) -> int:
        return sum(1 for method, path in self.sent if method == "GET" and path.rsplit("/", 1)[-1].isdigit())


@dataclass
class Served:
    client: Client
    app: Starlette
    transport: Counting

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        return await self.client.call_tool(tool, arguments)


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings.model_validate(
        {
            **sandbox_settings("http://sandbox"),
            "index": str(tmp_path / "index.sqlite3"),
            "index_share": 1.0,
            "rate_limits": parse_rate_limits(UNLIMITED),
            **overrides,
        }
    )


async def serving(app: Starlette, tmp_path: Path, **overrides: Any) -> AsyncIterator[Served]:
    transport = Counting(app)
    moment = [NOW]
    server = build_server(settings(tmp_path, **overrides), transport=lambda: transport, clock=lambda: moment[0])
    async with Client(server) as client, server.state.hold() as state:
        cometly = state.providers["cometly"]
        assert isinstance(cometly, Cometly)
        if cometly.index is not None:
            with anyio.fail_after(30):
                assert await cometly.index.wait_backfilled(30)
        transport.sent.clear()
        yield Served(client, app, transport)


@pytest.fixture
def app() -> Starlette:
    return space(contacts=150)


@pytest.fixture
async def served(app: Starlette, tmp_path: Path) -> AsyncIterator[Served]:
    async for one in serving(app, tmp_path):
        yield one


def a_contact(app: Starlette) -> tuple[str, str, str]:
    """One sandbox contact: its id, first email and first name."""
    store = sandbox_of(app).store
    row = store.contact(min(store.creation_times()))
    assert row is not None
    assert row.email is not None
    assert row.name is not None
    return str(row.id), row.email, row.name


async def test_an_email_is_found_in_one_call_with_one_upstream_read_and_a_true_sign_up_window(
    served: Served, app: Starlette
) -> None:
    contact_id, email, _ = a_contact(app)

    result = await served.call("find_contact", {"email": email.upper()})

    found = result.structured_content
    assert found is not None, text_of(result)
    assert [c["id"] for c in found["contacts"]] == [contact_id]
    assert found["total"] == 1
    assert found["source"] == "index"
    assert found["matched_on"] == "email"
    assert served.transport.gets() == 1, served.transport.sent  # the confirming read, nothing else
    between = found["contacts"][0]["created_between"]
    real = truth(app)[contact_id]
    assert datetime.fromisoformat(between["start"]) <= real <= datetime.fromisoformat(between["end"])
    assert datetime.fromisoformat(between["end"]) - datetime.fromisoformat(between["start"]) <= timedelta(days=31)


async def test_a_partial_name_is_found_in_any_case_with_accents_ignored(app: Starlette, tmp_path: Path) -> None:
    at = int((NOW - timedelta(days=3)).timestamp())

    def build(contact_id: int) -> NewContact:
        return NewContact(
            id=contact_id,
            created_at=at,
            emails=[Stamped("jose@acme.example", at)],
            names=[Stamped("José Núñez", at)],
        )

    jose = str(sandbox_of(app).store.create(build).id)
    async for served in serving(app, tmp_path):
        result = await served.call("find_contact", {"name": "JOSE nun"})

        found = result.structured_content
        assert found is not None, text_of(result)
        assert [c["id"] for c in found["contacts"]] == [jose]
        assert found["contacts"][0]["names"] == ["José Núñez"]
        assert found["matched_on"] == "name"


async def test_a_query_matching_many_shows_the_best_few_and_counts_them_all(served: Served) -> None:
    result = await served.call("find_contact", {"query": "example", "limit": 3})

    found = result.structured_content
    assert found is not None, text_of(result)
    assert len(found["contacts"]) <= 3
    assert found["total"] > 3
    assert "Narrow the query" in (found.get("note") or "")
    assert served.transport.gets() <= 3


async def test_an_email_no_contact_has_is_not_found(served: Served) -> None:
    result = await served.call("find_contact", {"email": "nobody@nowhere.example"})

    assert result.is_error
    assert text_of(result).startswith("[not_found]")
    assert served.transport.gets() == 0


@pytest.mark.parametrize(
    "arguments",
    [{}, {"email": "  "}, {"name": "a"}, {"email": "not-an-email"}, {"phone": "12"}, {"query": "!!"}],
)
async def test_an_empty_or_absurd_lookup_is_a_validation_error_saying_what_to_send(
    served: Served, arguments: dict[str, Any]
) -> None:
    result = await served.call("find_contact", arguments)

    assert result.is_error
    assert text_of(result).startswith("[validation_error]")
    assert served.transport.gets() == 0  # (the background sync may list meanwhile)


async def test_a_contact_deleted_upstream_is_dropped_from_the_index_and_not_returned(
    served: Served, app: Starlette
) -> None:
    contact_id, email, _ = a_contact(app)
    sandbox_of(app).store.delete([int(contact_id)])

    first = await served.call("find_contact", {"email": email})
    second = await served.call("find_contact", {"email": email})

    assert text_of(first).startswith("[not_found]")
    assert text_of(second).startswith("[not_found]")
    assert served.transport.gets() == 1  # the second lookup no longer finds it in the index


async def test_create_refuses_an_existing_email_with_conflict_unless_allowed(served: Served, app: Starlette) -> None:
    contact_id, email, _ = a_contact(app)

    refused = await served.call("create_contact", {"emails": [email], "names": ["Again"]})
    allowed = await served.call("create_contact", {"emails": [email], "names": ["Again"], "allow_duplicate": True})

    assert text_of(refused).startswith("[conflict]")
    assert contact_id in text_of(refused)
    assert not [path for method, path in served.transport.sent if method == "POST"][1:]
    assert allowed.structured_content is not None, text_of(allowed)
    assert allowed.structured_content["id"] != contact_id


async def test_a_contact_created_through_the_server_is_found_at_once_dated_to_its_create(served: Served) -> None:
    created = await served.call("create_contact", {"emails": ["fresh.lead@example.com"], "names": ["Fresh Lead"]})
    assert created.structured_content is not None, text_of(created)

    found = await served.call("find_contact", {"email": "fresh.lead@example.com"})

    assert found.structured_content is not None, text_of(found)
    [contact] = found.structured_content["contacts"]
    assert contact["id"] == created.structured_content["id"]
    assert "created_between" in contact or "created_at" in contact


async def test_list_contacts_dates_each_contact_at_least_to_the_range_listed(served: Served, app: Starlette) -> None:
    result = await served.call("list_contacts", {"start_date": "last 30 days", "per_page": 20})

    page = result.structured_content
    assert page is not None, text_of(result)
    real = truth(app)
    for contact in page["contacts"]:
        between = contact["created_between"]
        start, end = datetime.fromisoformat(between["start"]), datetime.fromisoformat(between["end"])
        assert start <= real[contact["id"]] <= end
        assert end - start <= timedelta(days=31)


async def test_get_contact_with_exact_created_at_finds_the_second(served: Served, app: Starlette) -> None:
    contact_id, _, _ = a_contact(app)

    result = await served.call("get_contact", {"contact_id": contact_id, "exact_created_at": True})

    contact = result.structured_content
    assert contact is not None, text_of(result)
    assert datetime.fromisoformat(contact["created_at"]) == truth(app)[contact_id].astimezone(UTC)


async def test_with_the_index_off_a_bounded_live_scan_answers_and_says_how_to_enable_it(
    app: Starlette, tmp_path: Path
) -> None:
    contact_id, email, _ = a_contact(app)
    recent = add_contact(app, int((NOW - timedelta(days=2)).timestamp()), email="recent.lead@example.com")
    async for served in serving(app, tmp_path, index="off"):
        hit = await served.call("find_contact", {"email": "recent.lead@example.com"})
        found = hit.structured_content
        assert found is not None, text_of(hit)
        assert [c["id"] for c in found["contacts"]] == [recent]
        assert found["source"] == "live"
        assert "CONTACTS_MCP_INDEX" in found["note"]
        old = truth(app)[contact_id] < NOW - timedelta(days=30)
        miss = await served.call("find_contact", {"email": email})
        if old:
            assert text_of(miss).startswith("[not_found]")
            assert "last 30 days" in text_of(miss)


async def test_a_list_call_narrows_what_later_reads_say_about_its_contacts_sign_up(served: Served) -> None:
    listed = await served.call("list_contacts", {"start_date": "2026-11-16", "end_date": "2026-11-22", "per_page": 1})
    page = listed.structured_content
    assert page is not None, text_of(listed)
    [first] = page["contacts"]

    read = await served.call("get_contact", {"contact_id": first["id"]})

    assert read.structured_content is not None, text_of(read)
    between = read.structured_content["created_between"]
    # Within the week listed: what the list proved is kept. The index's own sync, dating contacts to the day in
    # the background, may have narrowed it further by the time of the read (seen on a loaded machine).
    assert "2026-11-16T00:00:00Z" <= between["start"] <= between["end"] <= "2026-11-22T23:59:59Z", between


async def test_tool_calls_keep_two_thirds_of_a_busy_budget_while_the_sync_runs(tmp_path: Path) -> None:
    # 6 list requests a minute: the sync may have 2 counting, so 4 tool calls fit with no wait at all
    # (max_wait 0: a call that had to wait would fail), however much backfill is left.
    app = space(contacts=300, span_days=150, rate_limits={"cometly.list_contacts": (6, 60.0)})
    share_taken = anyio.Event()

    class Watching(Counting):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if lists() >= 2:
                share_taken.set()
            return response

    transport = Watching(app)
    tight = settings(
        tmp_path,
        index_share=1 / 3,
        max_wait_seconds=0.0,
        rate_limits=parse_rate_limits("cometly.list_contacts=6/60,cometly.get_contact=100000/60"),
    )
    server = build_server(tight, transport=lambda: transport, clock=lambda: NOW)

    def lists() -> int:
        return sum(1 for method, path in transport.sent if method == "GET" and path.endswith("/contacts"))

    async with Client(server) as client:
        with anyio.fail_after(20):
            await share_taken.wait()  # the sync has taken its share
        calls = [
            await client.call_tool("list_contacts", {"start_date": f"2026-11-{day:02d}", "per_page": 1})
            for day in (1, 2, 3, 4)
        ]
        await anyio.sleep(1.0)  # the sync finds no more room
        sent = lists()

    assert [text_of(call)[:40] for call in calls if call.is_error] == []
    assert sent == 6
