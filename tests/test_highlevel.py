"""HighLevel behind the same tools: headers, paths, query and body sent, and the normalized contact."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from mcp import Client

from server.app import build_server
from server.settings import Settings
from tests.conftest import HIGHLEVEL_KEY, HIGHLEVEL_LOCATION, highlevel_settings, make_all_settings, text_of

pytestmark = pytest.mark.anyio

SEED_CONTACT: dict[str, Any] = {
    "id": "ocQHyuzHvuMOe5N5jjXF",
    "name": "John Doe",
    "locationId": "ve9EPM428h8vShlRW1KT",
    "firstName": "John",
    "lastName": "Doe",
    "email": "john@example.com",
    "emailLowerCase": "john@example.com",
    "timezone": "America/Chicago",
    "companyName": "Acme Corp",
    "phone": "+1 555-123-4567",
    "dnd": False,
    "dndSettings": {"Email": {"status": "active", "message": "", "code": ""}},
    "type": "lead",
    "source": "api",
    "assignedTo": "user_abc123",
    "address1": "123 Main St",
    "city": "Austin",
    "state": "TX",
    "country": "US",
    "postalCode": "78701",
    "website": "https://example.com",
    "tags": ["customer", "vip"],
    "dateOfBirth": "1990-01-15",
    "dateAdded": "2024-01-10T12:00:00.000Z",
    "dateUpdated": "2024-06-15T09:30:00.000Z",
    "customFields": [{"id": "cf_abc123", "value": "Enterprise"}, {"id": "cf_empty", "value": ""}],
    "attributions": [{"url": "https://example.com/landing", "campaign": "spring_promo", "utmSource": "google"}],
}
"""The seed page's example response (with a real email in place of the saved page's placeholder)."""

NORMALIZED: dict[str, Any] = {
    "id": "ocQHyuzHvuMOe5N5jjXF",
    "provider": "highlevel",
    "created_at": "2024-01-10T12:00:00Z",
    "updated_at": "2024-06-15T09:30:00Z",
    "emails": ["john@example.com"],
    "phones": ["+1 555-123-4567"],
    "names": ["John Doe"],
    "locations": ["123 Main St, Austin, TX, 78701, US"],
    "custom_fields": {"cf_abc123": "Enterprise"},
    "highlevel": {
        "tags": ["customer", "vip"],
        "type": "lead",
        "source": "api",
        "companyName": "Acme Corp",
        "dnd": False,
        "dndSettings": {"Email": {"status": "active"}},
        "attributions": [{"url": "https://example.com/landing", "campaign": "spring_promo", "utmSource": "google"}],
        "assignedTo": "user_abc123",
        "dateOfBirth": "1990-01-15",
        "timezone": "America/Chicago",
        "website": "https://example.com",
    },
}


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(build_server(make_all_settings())) as connected:
        yield connected


def assert_highlevel_headers(request: httpx.Request) -> None:
    assert request.headers["authorization"] == f"Bearer {HIGHLEVEL_KEY}"
    assert request.headers["version"] == "2021-07-28"
    assert request.headers["accept"] == "application/json"


async def test_get_contact_sends_bearer_and_version_and_normalizes_the_seed_example(
    highlevel: respx.MockRouter, client: Client
) -> None:
    route = highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(200, json={"contact": SEED_CONTACT})

    result = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})

    request = route.calls.last.request
    assert request.method == "GET"
    assert request.url.query == b""
    assert_highlevel_headers(request)
    assert result.structured_content == NORMALIZED


async def test_find_contact_by_phone_url_encodes_the_plus(highlevel: respx.MockRouter, client: Client) -> None:
    route = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": SEED_CONTACT})

    result = await client.call_tool("find_contact", {"phone": "+14155550100"})

    request = route.calls.last.request
    assert_highlevel_headers(request)
    assert request.url.query == f"locationId={HIGHLEVEL_LOCATION}&number=%2B14155550100".encode()
    assert result.structured_content == NORMALIZED


async def test_find_contact_by_email_encodes_a_plus_in_the_address(highlevel: respx.MockRouter, client: Client) -> None:
    route = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": SEED_CONTACT})

    await client.call_tool("find_contact", {"email": "test+abc@gmail.com"})

    assert (
        route.calls.last.request.url.query == f"locationId={HIGHLEVEL_LOCATION}&email=test%2Babc%40gmail.com".encode()
    )


async def test_find_contact_without_a_match_is_not_found(highlevel: respx.MockRouter, client: Client) -> None:
    highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": None})

    result = await client.call_tool("find_contact", {"email": "nobody@example.com"})

    assert text_of(result).startswith("[not_found]")
    assert "nobody@example.com" in text_of(result)


async def test_find_contact_needs_an_email_or_a_phone(highlevel: respx.MockRouter, client: Client) -> None:
    result = await client.call_tool("find_contact", {"email": "  "})

    assert text_of(result).startswith("[validation_error]")
    assert highlevel.calls.call_count == 0


async def test_create_contact_posts_the_location_and_the_first_values(
    highlevel: respx.MockRouter, client: Client
) -> None:
    route = highlevel.post("/contacts/").respond(201, json={"contact": {**SEED_CONTACT, "id": "newContact0000000001"}})

    result = await client.call_tool(
        "create_contact",
        {
            "emails": ["john@example.com"],
            "phones": ["+15551234567"],
            "names": ["John Doe"],
            "locations": ["123 Main St"],
            "provider": "highlevel",
        },
    )

    request = route.calls.last.request
    assert_highlevel_headers(request)
    assert json.loads(request.content) == {
        "locationId": HIGHLEVEL_LOCATION,
        "email": "john@example.com",
        "phone": "+15551234567",
        "name": "John Doe",
        "address1": "123 Main St",
    }
    assert result.structured_content is not None
    assert result.structured_content["id"] == "newContact0000000001"


@pytest.mark.parametrize(
    "arguments",
    [
        {"emails": ["a@example.com", "b@example.com"]},
        {"emails": ["a@example.com"], "phones": ["+1555", "+1666"]},
        {"emails": ["a@example.com"], "custom_fields": {"profile_field_1": "x"}},
    ],
)
async def test_create_contact_refuses_what_a_highlevel_contact_cannot_hold(
    highlevel: respx.MockRouter, client: Client, arguments: dict[str, Any]
) -> None:
    result = await client.call_tool("create_contact", {**arguments, "provider": "highlevel"})

    assert text_of(result).startswith("[validation_error]")
    assert highlevel.calls.call_count == 0


async def test_create_and_find_without_a_location_id_say_which_setting_is_missing(highlevel: respx.MockRouter) -> None:
    settings = Settings(highlevel=highlevel_settings(location=None))

    async with Client(build_server(settings)) as client:
        found = await client.call_tool("find_contact", {"email": "a@example.com"})
        created = await client.call_tool("create_contact", {"emails": ["a@example.com"]})

    assert "HIGHLEVEL_LOCATION_ID" in text_of(found)
    assert "HIGHLEVEL_LOCATION_ID" in text_of(created)
    assert highlevel.calls.call_count == 0


@pytest.mark.parametrize(
    ("status", "body", "expected", "mentions"),
    [
        (
            401,
            {"statusCode": 401, "message": "Invalid JWT", "error": "Unauthorized"},
            "authentication_error",
            "Invalid JWT",
        ),
        (
            403,
            {"statusCode": 403, "message": "The token does not have access to this location."},
            "permission_error",
            "access",
        ),
        (
            400,
            {"statusCode": 400, "message": "This location does not allow duplicated contacts."},
            "validation_error",
            "duplicated",
        ),
        (
            422,
            {"statusCode": 422, "message": ["email must be an email", "phone is invalid"]},
            "validation_error",
            "phone is invalid",
        ),
        (404, {"statusCode": 404, "message": "Contact not found"}, "not_found", "find_contact"),
        (503, {"statusCode": 503, "message": "Service Unavailable"}, "upstream_unavailable", "Service Unavailable"),
    ],
)
async def test_highlevel_errors_map_to_error_classes(
    highlevel: respx.MockRouter, client: Client, status: int, body: dict[str, Any], expected: str, mentions: str
) -> None:
    highlevel.get("/contacts/abc123").respond(status, json=body)

    result = await client.call_tool("get_contact", {"contact_id": "abc123", "provider": "highlevel"})

    assert text_of(result).startswith(f"[{expected}]")
    assert mentions in text_of(result)
    assert HIGHLEVEL_KEY not in text_of(result)


@pytest.mark.parametrize("contact_id", ["../locations", "a/b", "abc?x=1", "abc%2Fdef", "a" * 65, "abc def", "ab#c"])
async def test_path_injection_attempts_never_reach_another_path(
    highlevel: respx.MockRouter, client: Client, contact_id: str
) -> None:
    highlevel.route().respond(200, json={"contact": SEED_CONTACT})

    result = await client.call_tool("get_contact", {"contact_id": contact_id, "provider": "highlevel"})

    assert text_of(result).startswith("[validation_error]")
    assert highlevel.calls.call_count == 0


async def test_the_default_provider_is_the_first_configured(
    highlevel: respx.MockRouter, cometly: respx.MockRouter, client: Client
) -> None:
    cometly.get("/contacts/42").respond(200, json={"id": 42})

    result = await client.call_tool("get_contact", {"contact_id": "42"})

    assert result.structured_content is not None
    assert result.structured_content["provider"] == "cometly"
    assert highlevel.calls.call_count == 0
