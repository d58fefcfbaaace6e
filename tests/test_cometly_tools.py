"""Each tool against a mocked Cometly: exactly what is sent upstream, and what the agent gets back."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import ANY
from urllib.parse import unquote

import httpx
import pytest
import respx
from mcp import Client

from contacts_mcp.tools.models import Contact
from tests.conftest import COMETLY_KEY, text_of
from tests.test_result_text import decoded, same_json

pytestmark = pytest.mark.anyio

DETAIL: dict[str, Any] = {
    "id": 4821,
    "emails": [{"email": "jane@example.com"}, "jane.doe@example.com"],
    "phones": [{"phone": "+14155550100"}],
    "names": ["Jane Doe", {"name": "Janie"}],
    "locations": [{"location": "Austin, TX"}, {"unexpected": True}, 42],
    "custom_fields": {"Customer Plan": "Premium", "profile_field_2": None, "Seats": 12},
    "events": [
        {
            "type": "touchpoint",
            "event_time_utc": "2024-01-10 12:00:00",
            "source": "facebook",
            "ad_name": "Spring promo",
            "campaign_name": None,
        }
    ],
}


def sent_query(request: httpx.Request) -> list[tuple[str, str]]:
    return list(httpx.QueryParams(request.url.query).multi_items())


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


async def test_get_contact_sends_flags_as_ones_and_zeros_and_normalizes_the_contact(
    cometly: respx.MockRouter, client: Client
) -> None:
    route = cometly.get("/contacts/4821").respond(200, json=DETAIL)

    result = await client.call_tool("get_contact", {"contact_id": "4821", "include_events": True})

    request = route.calls.last.request
    assert request.method == "GET"
    assert request.url.path == "/public-api/v1/contacts/4821"
    assert sent_query(request) == [
        ("include_comet_tokens", "0"),
        ("include_events", "1"),
        ("hide_direct_touchpoints", "1"),
        ("use_custom_field_labels", "1"),
        ("include_browsing_session_data", "0"),
    ]
    assert request.headers["authorization"] == f"Bearer {COMETLY_KEY}"
    assert request.headers["accept"] == "application/json"
    assert structured(result) == {
        "id": "4821",
        "provider": "cometly",
        "emails": ["jane@example.com", "jane.doe@example.com"],
        "phones": ["+14155550100"],
        "names": ["Jane Doe", "Janie"],
        "locations": ["Austin, TX", "42"],
        "custom_fields": {"Customer Plan": "Premium", "Seats": 12},
        "events": [
            {
                "type": "touchpoint",
                "event_time_utc": "2024-01-10 12:00:00",
                "source": "facebook",
                "ad_name": "Spring promo",
            }
        ],
        "journey": {
            "basis": "ad_touchpoints",
            "first_touch": {"at": "2024-01-10T12:00:00Z", "source": "facebook", "ad": "Spring promo"},
            "last_touch": {"at": "2024-01-10T12:00:00Z", "source": "facebook", "ad": "Spring promo"},
            "events": 1,
            "touchpoints": 1,
            "conversion_count": 0,
            "total_amount": 0.0,
            "amount_missing": 0,
        },
    }


async def test_get_contact_text_is_compact_json_of_the_structured_result(
    cometly: respx.MockRouter, client: Client
) -> None:
    cometly.get("/contacts/4821").respond(200, json=DETAIL)

    result = await client.call_tool("get_contact", {"contact_id": 4821})

    text = text_of(result)
    assert text.count("\n") == text.count('"rows":[\n')  # a line break only where a table's rows begin
    assert same_json(decoded(json.loads(text), Contact), result.structured_content)  # its one event a table
    assert "null" not in text


async def test_get_contact_asks_for_browsing_data_and_reads_cometlys_browsing_session_hits(
    cometly: respx.MockRouter, client: Client
) -> None:
    hits = [{"event_url": "northpeak.example/pricing", "event_time_utc": "2024-01-10 12:00:00"}]
    route = cometly.get("/contacts/7").respond(200, json={"id": 7, "browsing_session_hits": hits})

    result = await client.call_tool(
        "get_contact",
        {
            "contact_id": "7",
            "include_browsing_hits": True,
            "include_comet_tokens": True,
            "use_custom_field_labels": False,
        },
    )

    assert dict(sent_query(route.calls.last.request)) == {
        "include_comet_tokens": "1",
        "include_events": "0",
        "use_custom_field_labels": "0",
        "include_browsing_session_data": "1",
    }
    assert structured(result)["browsing_hits"] == hits


async def test_get_contact_also_reads_hits_under_the_seed_pages_name(cometly: respx.MockRouter, client: Client) -> None:
    cometly.get("/contacts/7").respond(200, json={"id": 7, "browsing_hits": [{"event_url": "northpeak.example/"}]})

    result = await client.call_tool("get_contact", {"contact_id": "7", "include_browsing_hits": True})

    assert structured(result)["browsing_hits"] == [{"event_url": "northpeak.example/"}]


async def test_direct_touchpoints_are_asked_about_only_with_events(cometly: respx.MockRouter, client: Client) -> None:
    route = cometly.get("/contacts/7").respond(200, json={"id": 7, "events": []})

    await client.call_tool(
        "get_contact", {"contact_id": "7", "include_events": True, "include_direct_touchpoints": True}
    )
    with_events = dict(sent_query(route.calls.last.request))
    await client.call_tool("get_contact", {"contact_id": "7", "include_direct_touchpoints": True})
    without = dict(sent_query(route.calls.last.request))

    assert (with_events["include_events"], with_events["hide_direct_touchpoints"]) == ("1", "0")
    assert "hide_direct_touchpoints" not in without


async def test_every_cometly_request_says_it_speaks_json(cometly: respx.MockRouter, client: Client) -> None:
    route = cometly.get("/contacts/7").respond(200, json={"id": 7})

    await client.call_tool("get_contact", {"contact_id": "7"})

    headers = route.calls.last.request.headers
    assert (headers["accept"], headers["content-type"]) == ("application/json", "application/json")


async def test_keys_cometly_does_not_document_are_kept_in_the_cometly_section(
    cometly: respx.MockRouter, client: Client
) -> None:
    cometly.get("/contacts/7").respond(200, json={"id": 7, "emails": ["a@example.com"], "lead_score": 87})

    result = await client.call_tool("get_contact", {"contact_id": "7"})

    assert structured(result)["cometly"] == {"lead_score": 87}


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"address": {"city": "Austin"}}, "address.city (HighLevel only)"),
        ({"tags": ["vip"]}, "tags (HighLevel only)"),
        ({"fields": {"status": "active"}}, "fields.status (Clemta only)"),
        ({"address": {"line1": "1 Main St"}}, "address.line1 (Clemta and HighLevel only)"),
    ],
)
async def test_create_contact_refuses_what_cometly_has_no_place_for(
    cometly: respx.MockRouter, client: Client, arguments: dict[str, Any], named: str
) -> None:
    result = await client.call_tool("create_contact", {"emails": ["a@example.com"], **arguments})

    assert text_of(result).startswith("[validation_error]")
    assert named in text_of(result)
    assert cometly.calls.call_count == 0


async def test_list_contacts_sends_bare_dates_as_full_day_bounds_and_returns_the_next_cursor(
    cometly: respx.MockRouter, client: Client
) -> None:
    route = cometly.get("/contacts").respond(
        200,
        json={
            "data": [
                {"id": 12, "email": "a@example.com", "name": "Ann", "phone": None, "location": "Paris"},
                {"id": 11, "email": None, "name": None, "phone": "+33100000000", "location": None},
            ],
            "path": "https://cometly.test/public-api/v1/contacts",
            "per_page": 2,
            "next_cursor": "eyJpZCI6MTF9",
            "next_page_url": "https://cometly.test/public-api/v1/contacts?cursor=eyJpZCI6MTF9",
            "prev_cursor": None,
            "prev_page_url": None,
        },
    )

    result = await client.call_tool(
        "list_contacts", {"start_date": "2024-01-15", "end_date": "2024-01-21", "per_page": 2}
    )

    # The list does not say when each contact signed up: only that it was within the range listed.
    week = {"start": "2024-01-15T00:00:00Z", "end": "2024-01-21T23:59:59Z"}

    assert sent_query(route.calls.last.request) == [
        ("start_date", "2024-01-15 00:00:00"),
        ("end_date", "2024-01-21 23:59:59"),
        ("per_page", "2"),
        ("include_all_emails", "0"),
        ("include_comet_tokens", "0"),
        ("include_custom_fields", "0"),
        ("use_custom_field_labels", "1"),
    ]
    assert structured(result) == {
        "contacts": [
            {
                "id": "12",
                "provider": "cometly",
                "created_between": week,
                "emails": ["a@example.com"],
                "names": ["Ann"],
                "locations": ["Paris"],
            },
            {"id": "11", "provider": "cometly", "created_between": week, "phones": ["+33100000000"]},
        ],
        "count": 2,
        "next_cursor": "eyJpZCI6MTF9",
        "has_more": True,
        "range": {
            "start": "2024-01-15T00:00:00+00:00",
            "end": "2024-01-21T23:59:59+00:00",
            "timezone": "UTC",
            "today": ANY,  # the system clock's date
        },
    }


async def test_list_contacts_passes_the_cursor_and_reads_custom_fields_from_top_level_keys(
    cometly: respx.MockRouter, client: Client
) -> None:
    route = cometly.get("/contacts").respond(
        200,
        json={
            "data": [
                {
                    "id": 3,
                    "email": "b@example.com",
                    "emails": ["b@example.com", {"email": "b2@example.com"}],
                    "comet_tokens": ["ct_1"],
                    "Customer Plan": "Basic",
                    "profile_field_9": None,
                    "profile_field_16": 4,
                }
            ],
            "next_cursor": None,
        },
    )

    result = await client.call_tool(
        "list_contacts",
        {
            "start_date": "2024-01-15 08:00:00",
            "end_date": "2024-01-15T17:30:00",
            "cursor": "eyJpZCI6NH0",
            "include_all_emails": True,
            "include_comet_tokens": True,
            "include_custom_fields": True,
        },
    )

    query = dict(sent_query(route.calls.last.request))
    assert query["start_date"] == "2024-01-15 08:00:00"
    assert query["end_date"] == "2024-01-15 17:30:00"
    assert query["cursor"] == "eyJpZCI6NH0"
    assert query["include_all_emails"] == query["include_comet_tokens"] == query["include_custom_fields"] == "1"
    page = structured(result)
    assert page["has_more"] is False
    assert "next_cursor" not in page
    assert page["contacts"][0]["emails"] == ["b@example.com", "b2@example.com"]
    assert page["contacts"][0]["comet_tokens"] == ["ct_1"]
    assert page["contacts"][0]["custom_fields"] == {"Customer Plan": "Basic", "profile_field_16": 4}


async def test_list_contacts_converts_times_with_an_offset_into_the_space_timezone(cometly: respx.MockRouter) -> None:
    from contacts_mcp.server.app import build_server
    from tests.conftest import make_settings

    settings = make_settings()
    settings.cometly.timezone = "America/New_York"
    route = cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})

    async with Client(build_server(settings)) as client:
        result = await client.call_tool(
            "list_contacts", {"start_date": "2024-07-01T12:00:00Z", "end_date": "2024-07-02"}
        )

    query = dict(sent_query(route.calls.last.request))
    assert query["start_date"] == "2024-07-01 08:00:00"
    assert query["end_date"] == "2024-07-02 23:59:59"
    assert structured(result)["range"] == {
        "start": "2024-07-01T08:00:00-04:00",
        "end": "2024-07-02T23:59:59-04:00",
        "timezone": "America/New_York",
        "today": ANY,
    }


async def test_filter_by_custom_field_encodes_conditions_exactly_as_cometly_documents(
    cometly: respx.MockRouter, client: Client
) -> None:
    route = cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})

    result = await client.call_tool(
        "filter_by_custom_field",
        {
            "start_date": "2024-01-15 00:00:00",
            "end_date": "2024-01-15 23:59:59",
            "conditions": [
                {"field": "profile_field_5", "operator": "equal_to", "value": "Premium"},
                {"field": "profile_field_16", "operator": "greater_than", "value": "10"},
                {"field": "profile_field_26", "operator": "between", "start": "2024-01-01", "end": "2024-01-31"},
                {"field": "profile_field_27", "operator": "age_less_than", "value": 30},
                {"field": "profile_field_3", "operator": "unknown"},
            ],
        },
    )

    assert structured(result) == {
        "contacts": [],
        "count": 0,
        "total": 0,  # one page, has_more false: every match was read
        "has_more": False,
        "range": {
            "start": "2024-01-15T00:00:00+00:00",
            "end": "2024-01-15T23:59:59+00:00",
            "timezone": "UTC",
            "today": ANY,
        },
        "filters": [
            {"field": "profile_field_5", "operator": "equal_to", "value": "Premium"},
            {"field": "profile_field_16", "operator": "greater_than", "value": 10},
            {"field": "profile_field_26", "operator": "between", "start": "2024-01-01", "end": "2024-01-31"},
            {"field": "profile_field_27", "operator": "age_less_than", "value": 30},
            {"field": "profile_field_3", "operator": "unknown"},
        ],
    }
    raw = unquote(route.calls.last.request.url.query.decode())
    assert raw.startswith(
        "start_date=2024-01-15+00:00:00&end_date=2024-01-15+23:59:59&per_page=50"
        "&include_all_emails=0&include_comet_tokens=0&include_custom_fields=1&use_custom_field_labels=1"
    )
    assert raw.endswith(
        "&custom_field_filters[0][field]=profile_field_5&custom_field_filters[0][operator]=equal_to"
        "&custom_field_filters[0][value]=Premium"
        "&custom_field_filters[1][field]=profile_field_16&custom_field_filters[1][operator]=greater_than"
        "&custom_field_filters[1][value]=10"
        "&custom_field_filters[2][field]=profile_field_26&custom_field_filters[2][operator]=between"
        "&custom_field_filters[2][start]=2024-01-01&custom_field_filters[2][end]=2024-01-31"
        "&custom_field_filters[3][field]=profile_field_27&custom_field_filters[3][operator]=age_less_than"
        "&custom_field_filters[3][value]=30"
        "&custom_field_filters[4][field]=profile_field_3&custom_field_filters[4][operator]=unknown"
    )


async def test_create_contact_posts_the_documented_body_and_returns_the_new_contact(
    cometly: respx.MockRouter, client: Client
) -> None:
    route = cometly.post("/contacts").respond(
        201,
        json={
            "id": 9001,
            "emails": [{}],
            "phones": [{"phone": "+1234567890"}],
            "names": [{"name": "John Doe"}],
            "locations": [],
            "custom_fields": {"profile_field_1": "Enterprise", "profile_field_16": 500},
        },
    )
    # The result keys custom fields by label: a Space with no contacts to read labels from keeps the slots.
    cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})

    result = await client.call_tool(
        "create_contact",
        {
            "emails": ["john@example.com"],
            "phones": ["+1234567890"],
            "names": ["John Doe"],
            "custom_fields": {"profile_field_1": "Enterprise", "profile_field_16": "500"},
        },
    )

    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "emails": ["john@example.com"],
        "phones": ["+1234567890"],
        "names": ["John Doe"],
        "custom_fields": {"profile_field_1": "Enterprise", "profile_field_16": 500},
    }
    contact = structured(result)
    assert contact["id"] == "9001"
    assert contact["phones"] == ["+1234567890"]
    assert contact["custom_fields"] == {"profile_field_1": "Enterprise", "profile_field_16": 500}


async def test_tools_work_over_the_legacy_handshake_that_older_desktop_clients_use(cometly: respx.MockRouter) -> None:
    from contacts_mcp.server.app import build_server
    from tests.conftest import make_settings

    cometly.get("/contacts/5").respond(200, json={"id": 5, "emails": ["e@example.com"]})

    async with Client(build_server(make_settings()), mode="legacy") as client:
        tools = await client.list_tools()
        result = await client.call_tool("get_contact", {"contact_id": "5"})

    assert {tool.name for tool in tools.tools} == {
        "get_contact",
        "list_contacts",
        "filter_by_custom_field",
        "find_contact",
        "create_contact",
        "update_contact",
        "describe_custom_fields",
        "server_info",
    }
    assert structured(result)["emails"] == ["e@example.com"]


async def test_get_contact_starts_at_15_a_minute_and_follows_cometlys_header_up_to_30(
    cometly: respx.MockRouter, client: Client
) -> None:
    # Cometly's API page says 30 a minute, its MCP page 15: the lower until Cometly itself says more.
    advertised = {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "29"}
    cometly.get("/contacts/7").respond(200, json={"id": 7}, headers=advertised)

    before = structured(await client.call_tool("server_info", {}))
    await client.call_tool("get_contact", {"contact_id": "7"})
    after = structured(await client.call_tool("server_info", {}))

    def limits(info: dict[str, Any]) -> str:
        return next(budget["limits"] for budget in info["budgets"] if budget["name"] == "cometly.get_contact")

    assert limits(before) == "15 requests per 60 s"
    assert limits(after) == "30 requests per 60 s"
