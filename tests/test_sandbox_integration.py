"""The MCP server against the sandbox over real loopback HTTP: every tool, the error classes.

The demo's whole tour over stdio is tests/test_demo_accounts.py's.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from pydantic import SecretStr

from contacts_mcp.server.app import SANDBOX_NOTE, build_server
from contacts_mcp.server.sandbox import (
    COMETLY_INACTIVE_KEY,
    SANDBOX_KEYS,
    create_app,
    sandbox_settings,
)
from contacts_mcp.server.settings import CometlySettings, Settings, parse_rate_limits
from tests.conftest import text_of
from tests.sandbox.serving import serve

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RANGE = {"start_date": (NOW - timedelta(days=91)).date().isoformat(), "end_date": NOW.date().isoformat()}


def serve_sandbox(*, statuses: list[int] | None = None, **options: Any) -> Iterator[str]:
    """Run a sandbox on a free loopback port in a thread; yield its root URL.

    Args:
        statuses: When given, the status of every response the sandbox sends is appended to it.
        options: For `create_app`.
    """
    yield from serve(create_app(contacts=150, now=NOW, **options), statuses=statuses)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    yield from serve_sandbox()


def settings_for(root: str, *, key: str = SANDBOX_KEYS["cometly"], **overrides: Any) -> Settings:
    cometly = CometlySettings(api_key=SecretStr(key), base_url=f"{root}/cometly/public-api/v1")
    return Settings.model_validate({"cometly": cometly, **overrides})


async def test_every_tool_works_against_the_sandbox_over_loopback(sandbox: str) -> None:
    async with Client(build_server(settings_for(sandbox))) as client:
        page = await client.call_tool("list_contacts", {**RANGE, "per_page": 3})
        first = page.structured_content["contacts"][0]  # pyright: ignore[reportOptionalSubscript]
        contact = await client.call_tool("get_contact", {"contact_id": first["id"], "include_events": True})
        premium = await client.call_tool(
            "filter_by_custom_field",
            {**RANGE, "conditions": [{"field": "profile_field_5", "operator": "equal_to", "value": "Premium"}]},
        )
        created = await client.call_tool("create_contact", {"emails": ["new.lead@example.com"], "names": ["New Lead"]})
        new_id = created.structured_content["id"]  # pyright: ignore[reportOptionalSubscript]
        fetched = await client.call_tool("get_contact", {"contact_id": new_id})

    assert page.structured_content is not None
    assert len(page.structured_content["contacts"]) == 3
    assert page.structured_content["has_more"] is True
    assert contact.structured_content is not None
    assert contact.structured_content["id"] == first["id"]
    assert premium.structured_content is not None
    assert premium.structured_content["contacts"]
    assert {c["custom_fields"]["Customer Plan"] for c in premium.structured_content["contacts"]} == {"Premium"}
    assert fetched.structured_content is not None
    assert fetched.structured_content["emails"] == ["new.lead@example.com"]
    assert fetched.structured_content["names"] == ["New Lead"]


async def test_following_next_cursor_walks_every_contact_of_a_range_exactly_once(sandbox: str) -> None:
    seen: list[str] = []
    async with Client(
        build_server(settings_for(sandbox, rate_limits=parse_rate_limits("cometly.list_contacts=100/60")))
    ) as client:
        cursor: str | None = None
        while True:
            arguments: dict[str, Any] = {**RANGE, "per_page": 40} | ({"cursor": cursor} if cursor else {})
            page = (await client.call_tool("list_contacts", arguments)).structured_content
            assert page is not None
            seen += [contact["id"] for contact in page["contacts"]]
            cursor = page.get("next_cursor")
            if not page["has_more"]:
                break

    assert len(seen) == len(set(seen))
    assert len(seen) >= 150
    assert seen == sorted(seen, key=int, reverse=True)


async def test_sandbox_errors_reach_the_model_classified(sandbox: str) -> None:
    async with Client(build_server(settings_for(sandbox))) as client:
        missing = await client.call_tool("get_contact", {"contact_id": "987654321"})
        unlabeled = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [{"field": "profile_field_9", "operator": "any"}]}
        )
        unknown_tool = await client.call_tool("merge_contacts", {})
    async with Client(build_server(settings_for(sandbox, key="wrong-key"))) as client:
        rejected = await client.call_tool("get_contact", {"contact_id": "1"})
    async with Client(build_server(settings_for(sandbox, key=COMETLY_INACTIVE_KEY))) as client:
        refused = await client.call_tool("list_contacts", RANGE)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    async with Client(build_server(settings_for(f"http://127.0.0.1:{port}"))) as client:
        unreachable = await client.call_tool("get_contact", {"contact_id": "1"})

    assert text_of(missing).startswith("[not_found]")
    assert text_of(unlabeled).startswith("[validation_error]")
    assert "profile_field_9" in text_of(unlabeled)
    assert text_of(unknown_tool).startswith("[not_supported]")
    assert text_of(rejected).startswith("[authentication_error]")
    assert text_of(refused).startswith("[permission_error]")
    assert "subscription is inactive" in text_of(refused)
    assert text_of(unreachable).startswith("[upstream_unavailable]")


async def test_a_sandbox_429_beyond_the_allowed_wait_is_reported_as_rate_limited() -> None:
    for root in serve_sandbox(rate_limits={"cometly.get_contact": (2, 60.0)}):
        async with Client(build_server(settings_for(root, max_wait_seconds=3))) as client:
            results = [await client.call_tool("get_contact", {"contact_id": "1"}) for _ in range(4)]

        assert [text_of(r).split("]")[0] + "]" for r in results[2:]] == ["[rate_limited]", "[rate_limited]"]
        assert "Retry after" in text_of(results[2])


async def test_a_429_caused_by_someone_else_on_the_key_is_waited_out() -> None:
    for root in serve_sandbox(rate_limits={"cometly.get_contact": (2, 1.0)}):
        url = f"{root}/cometly/public-api/v1/contacts/1"
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {SANDBOX_KEYS['cometly']}"}) as other:
            spent = [(await other.get(url)).status_code for _ in range(3)]  # another agent on the same key
        settings = settings_for(root, max_wait_seconds=10, rate_limits=parse_rate_limits("cometly.get_contact=2/1"))
        async with Client(build_server(settings)) as client:
            with anyio.fail_after(30):
                results = [await client.call_tool("get_contact", {"contact_id": "1"}) for _ in range(3)]

        assert spent == [404, 404, 429]
        assert all(text_of(r).startswith("[not_found]") for r in results)


async def test_sandbox_mode_marks_every_result_as_sandbox_data() -> None:
    from contacts_mcp.server.cli import _sandboxed  # pyright: ignore[reportPrivateUsage]

    class Args:
        db = ":memory:"
        contacts = 50

    server = _sandboxed(Settings(), Args())  # pyright: ignore[reportArgumentType]
    async with Client(server) as client:
        found = await client.call_tool("list_contacts", {**RANGE, "per_page": 1})
        failed = await client.call_tool("get_contact", {"contact_id": "987654321"})

    assert text_of(found).startswith(SANDBOX_NOTE)
    assert text_of(failed).startswith("[not_found]")
    assert SANDBOX_NOTE in text_of(failed)


def all_providers_for(root: str) -> Settings:
    return Settings(**sandbox_settings(root))


async def test_highlevel_creates_finds_and_gets_against_the_sandbox(sandbox: str) -> None:
    async with Client(build_server(all_providers_for(sandbox))) as client:
        created = await client.call_tool(
            "create_contact",
            {
                "emails": ["hl.lead@example.com"],
                "phones": ["+14155550199"],
                "names": ["Hal Lead"],
                "provider": "highlevel",
            },
        )
        assert created.structured_content is not None, text_of(created)
        new_id = created.structured_content["id"]
        # find_contact is on every provider now: the default (Cometly, the first configured) would answer.
        by_email = await client.call_tool("find_contact", {"email": "HL.Lead@example.com", "provider": "highlevel"})
        by_phone = await client.call_tool("find_contact", {"phone": "+14155550199", "provider": "highlevel"})
        fetched = await client.call_tool("get_contact", {"contact_id": new_id, "provider": "highlevel"})
        duplicate = await client.call_tool(
            "create_contact", {"emails": ["hl.lead@example.com"], "provider": "highlevel"}
        )
        nobody = await client.call_tool("find_contact", {"email": "nobody.at.all@example.com", "provider": "highlevel"})

    assert created.structured_content["provider"] == "highlevel"
    contacts = [fetched.structured_content]
    for found, on in ((by_email, "email"), (by_phone, "phone")):
        assert found.structured_content is not None, text_of(found)
        assert (found.structured_content["total"], found.structured_content["matched_on"]) == (1, on)
        contacts += found.structured_content["contacts"]
    assert len(contacts) == 3
    for contact in contacts:
        assert contact is not None
        assert contact["id"] == new_id
        assert contact["emails"] == ["hl.lead@example.com"]
    assert text_of(duplicate).startswith("[conflict]")  # the duplicate search found it before any POST
    assert new_id in text_of(duplicate)
    assert text_of(nobody).startswith("[not_found]")


async def test_clemta_lists_every_contact_once_creates_and_gets_against_the_sandbox(sandbox: str) -> None:
    seen: list[str] = []
    async with Client(build_server(all_providers_for(sandbox))) as client:
        cursor: str | None = None
        while True:
            arguments: dict[str, Any] = {**RANGE, "per_page": 500, "provider": "clemta"}
            page = await client.call_tool("list_contacts", arguments | ({"cursor": cursor} if cursor else {}))
            assert page.structured_content is not None, text_of(page)
            seen += [contact["id"] for contact in page.structured_content["contacts"]]
            cursor = page.structured_content.get("next_cursor")
            if not page.structured_content["has_more"]:
                break
        made = await client.call_tool(
            "create_contact",
            {"emails": ["vendor@example.com"], "names": ["Vendor Co"], "contact_type": "vendor", "provider": "clemta"},
        )
        assert made.structured_content is not None, text_of(made)
        fetched = await client.call_tool(
            "get_contact", {"contact_id": made.structured_content["id"], "provider": "clemta"}
        )
        nameless = await client.call_tool("create_contact", {"emails": ["x@example.com"], "provider": "clemta"})

    assert len(seen) == len(set(seen))
    assert len(seen) >= 100
    assert fetched.structured_content is not None
    assert fetched.structured_content["names"] == ["Vendor Co"]
    assert fetched.structured_content["clemta"]["type"] == "vendor"
    assert text_of(nameless).startswith("[validation_error]")


async def test_a_clemta_range_that_ends_in_the_past_fills_its_pages(sandbox: str) -> None:
    # Clemta's list sorts newest first; without `end_date` every contact newer than the range's end came back
    # and was dropped here, so the first pages of an older range were empty with has_more true.
    start, end = (NOW - timedelta(days=80)).date().isoformat(), (NOW - timedelta(days=60)).date().isoformat()
    middle = {"start_date": start, "end_date": end}
    async with Client(build_server(all_providers_for(sandbox))) as client:
        page = await client.call_tool("list_contacts", {**middle, "per_page": 10, "provider": "clemta"})

    assert page.structured_content is not None, text_of(page)
    contacts = page.structured_content["contacts"]
    assert len(contacts) == 10
    assert all(middle["start_date"] <= contact["created_at"][:10] <= middle["end_date"] for contact in contacts)


async def test_clemta_finds_a_contact_by_email_and_creates_one_with_its_billing_details(sandbox: str) -> None:
    async with Client(build_server(all_providers_for(sandbox))) as client:
        page = await client.call_tool("list_contacts", {**RANGE, "per_page": 1, "provider": "clemta"})
        assert page.structured_content is not None, text_of(page)
        known = page.structured_content["contacts"][0]
        found = await client.call_tool("find_contact", {"email": known["emails"][0].upper(), "provider": "clemta"})
        made = await client.call_tool(
            "create_contact",
            {
                "emails": ["books@vendor.example"],
                "names": ["Vendor Books"],
                "phones": ["+44 20 7946 0958"],
                "address": {"line1": "1 Fleet St", "postal_code": "EC4Y 1AA", "country": "GB"},
                "fields": {"tax_id": "GB123456789", "description": "Our bookkeeper"},
                "provider": "clemta",
            },
        )
        assert made.structured_content is not None, text_of(made)
        again = await client.call_tool("find_contact", {"email": "books@vendor.example", "provider": "clemta"})

    assert found.structured_content is not None, text_of(found)
    assert [contact["id"] for contact in found.structured_content["contacts"]] == [known["id"]]
    assert again.structured_content is not None, text_of(again)
    [created] = again.structured_content["contacts"]
    assert created["id"] == made.structured_content["id"]
    assert created["phones"] == ["+442079460958"]
    billing = created["clemta"]["billing"]
    assert (billing["address_1"], billing["iso_code"], billing["tax_id"]) == ("1 Fleet St", "GB", "GB123456789")
    assert created["clemta"]["description"] == "Our bookkeeper"


async def test_highlevel_contacts_show_custom_fields_by_name_and_creates_take_the_address_in_parts(
    sandbox: str,
) -> None:
    async with Client(build_server(all_providers_for(sandbox))) as client:
        described = await client.call_tool("describe_custom_fields", {"provider": "highlevel"})
        page = await client.call_tool(
            "filter_by_custom_field",
            {**RANGE, "per_page": 1, "conditions": [{"field": "Customer Plan", "operator": "any"}]},
        )
        assert page.structured_content is not None, text_of(page)
        email = page.structured_content["contacts"][0]["emails"][0]
        found = await client.call_tool("find_contact", {"email": email, "provider": "highlevel"})
        made = await client.call_tool(
            "create_contact",
            {
                "emails": ["austin.lead@example.com"],
                "names": ["Austin Lead"],
                "address": {"city": "Austin", "state": "TX", "country": "US"},
                "tags": ["webinar"],
                "fields": {"company_name": "Lead Co", "source": "webinar"},
                "provider": "highlevel",
            },
        )
        assert made.structured_content is not None, text_of(made)
        new_id = made.structured_content["id"]
        fetched = await client.call_tool("get_contact", {"contact_id": new_id, "provider": "highlevel"})

    assert described.structured_content is not None, text_of(described)
    assert "Customer Plan" in {field["label"] for field in described.structured_content["fields"]}
    assert found.structured_content is not None, text_of(found)
    [contact] = found.structured_content["contacts"]
    assert contact["emails"] == [email]
    assert "Customer Plan" in contact["custom_fields"]
    assert fetched.structured_content is not None
    assert fetched.structured_content["locations"] == ["Austin, TX, US"]
    section = fetched.structured_content["highlevel"]
    assert (section["firstName"], section["lastName"], section["companyName"]) == ("Austin", "Lead", "Lead Co")
    assert (section["tags"], section["source"]) == (["webinar"], "webinar")
