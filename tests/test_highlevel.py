"""HighLevel behind the same tools: headers, paths, query and body sent, and the normalized contact.

find_contacts is tested on the provider in tests/test_find_contacts.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from mcp import Client

from contacts_mcp.server.app import build_server
from contacts_mcp.server.settings import Settings
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
    "attributionSource": {"url": "https://example.com/landing", "campaign": "spring_promo", "utmSource": "google"},
    "lastAttributionSource": {"url": "https://example.com/pricing", "utmSource": "newsletter", "medium": "email"},
}
"""The seed page's example in the shape of HighLevel's own schema (`GetContectByIdSchema`).

The seed showed an `attributions` array; the vendor's schema has `attributionSource` and
`lastAttributionSource`, one object each (`attributions` exists only on the deprecated list).
"""

DEFINITIONS: dict[str, Any] = {
    "customFields": [
        {"id": "cf_abc123", "name": "Plan", "fieldKey": "contact.plan", "dataType": "SINGLE_OPTIONS",
         "picklistOptions": ["Free", "Enterprise"], "position": 0, "model": "contact"},
        {"id": "cf_seats", "name": "Seats", "fieldKey": "contact.seats", "dataType": "NUMERICAL", "position": 50,
         "model": "contact"},
    ]
}  # fmt: skip
"""The location's field definitions (`GET /locations/{locationId}/customFields?model=contact`)."""

NORMALIZED: dict[str, Any] = {
    "id": "ocQHyuzHvuMOe5N5jjXF",
    "provider": "highlevel",
    "created_at": "2024-01-10T12:00:00Z",
    "updated_at": "2024-06-15T09:30:00Z",
    "emails": ["john@example.com"],
    "phones": ["+1 555-123-4567"],
    "names": ["John Doe"],
    "locations": ["123 Main St, Austin, TX, 78701, US"],
    "custom_fields": {"Plan": "Enterprise"},
    "journey": {
        "basis": "highlevel_attribution",
        "first_touch": {"source": "google", "campaign": "spring_promo", "url": "https://example.com/landing"},
        "last_touch": {"source": "newsletter", "url": "https://example.com/pricing"},
    },
    "highlevel": {
        "firstName": "John",
        "lastName": "Doe",
        "companyName": "Acme Corp",
        "tags": ["customer", "vip"],
        "type": "lead",
        "source": "api",
        "assignedTo": "user_abc123",
        "dnd": False,
        "dndSettings": {"Email": {"status": "active"}},
        "attributionSource": {"url": "https://example.com/landing", "campaign": "spring_promo", "utmSource": "google"},
        "lastAttributionSource": {"url": "https://example.com/pricing", "utmSource": "newsletter", "medium": "email"},
        "dateOfBirth": "1990-01-15",
        "timezone": "America/Chicago",
        "website": "https://example.com",
    },
}


@pytest.fixture(autouse=True)
def definitions(highlevel: respx.MockRouter) -> respx.Route:
    """The location's custom-field definitions, which get_contact reads to name a contact's custom fields."""
    return highlevel.get(f"/locations/{HIGHLEVEL_LOCATION}/customFields").respond(200, json=DEFINITIONS)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(build_server(make_all_settings())) as connected:
        yield connected


def no_duplicate(highlevel: respx.MockRouter) -> respx.Route:
    """The duplicate search a create sends first, answered with no contact (as HighLevel does: `contact: null`)."""
    return highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": None})


def assert_looked_up(route: respx.Route, email: str) -> None:
    """The create's duplicate search was sent once, for the location and the first email, with HighLevel's headers."""
    assert route.call_count == 1
    request = route.calls.last.request
    assert_highlevel_headers(request)
    assert dict(httpx.QueryParams(request.url.query).multi_items()) == {
        "locationId": HIGHLEVEL_LOCATION,
        "email": email,
    }


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


async def test_find_contact_needs_an_email_or_a_phone(highlevel: respx.MockRouter, client: Client) -> None:
    result = await client.call_tool("find_contact", {"email": "  "})

    assert text_of(result).startswith("[validation_error]")
    assert highlevel.calls.call_count == 0


async def test_create_contact_posts_each_argument_under_highlevels_own_key(
    highlevel: respx.MockRouter, client: Client
) -> None:
    lookup = no_duplicate(highlevel)
    route = highlevel.post("/contacts/").respond(201, json={"contact": {**SEED_CONTACT, "id": "newContact0000000001"}})

    result = await client.call_tool(
        "create_contact",
        {
            "emails": ["john@example.com"],
            "phones": ["+15551234567"],
            "names": ["John van Doe"],
            "address": {"line1": "123 Main St", "city": "Austin", "state": "TX", "postal_code": "78701",
                        "country": "us"},
            "tags": ["webinar", "vip"],
            "fields": {"company_name": "Acme Corp", "source": "webinar", "website": "https://acme.example"},
            "provider": "highlevel",
        },
    )  # fmt: skip

    assert_looked_up(lookup, "john@example.com")
    assert route.call_count == 1
    request = route.calls.last.request
    assert_highlevel_headers(request)
    assert json.loads(request.content) == {
        "locationId": HIGHLEVEL_LOCATION,
        "email": "john@example.com",
        "phone": "+15551234567",
        "name": "John van Doe",
        "firstName": "John",
        "lastName": "van Doe",
        "address1": "123 Main St",
        "city": "Austin",
        "state": "TX",
        "postalCode": "78701",
        "country": "US",
        "companyName": "Acme Corp",
        "source": "webinar",
        "website": "https://acme.example",
        "tags": ["webinar", "vip"],
    }
    assert result.structured_content is not None
    assert result.structured_content["id"] == "newContact0000000001"


async def test_create_contact_takes_first_and_last_name_as_given(highlevel: respx.MockRouter, client: Client) -> None:
    lookup = no_duplicate(highlevel)
    route = highlevel.post("/contacts/").respond(201, json={"contact": SEED_CONTACT})

    await client.call_tool(
        "create_contact",
        {
            "emails": ["mary@example.com"],
            "names": ["Mary Ann Smith"],
            "fields": {"first_name": "Mary Ann", "last_name": "Smith"},
            "provider": "highlevel",
        },
    )

    assert_looked_up(lookup, "mary@example.com")
    sent = json.loads(route.calls.last.request.content)
    assert (sent["name"], sent["firstName"], sent["lastName"]) == ("Mary Ann Smith", "Mary Ann", "Smith")


async def test_a_free_text_location_is_refused_not_put_in_address1(highlevel: respx.MockRouter, client: Client) -> None:
    result = await client.call_tool(
        "create_contact", {"emails": ["a@example.com"], "locations": ["Austin, TX"], "provider": "highlevel"}
    )

    assert text_of(result).startswith("[validation_error]")
    assert "locations (Cometly only)" in text_of(result)
    assert "`address`" in text_of(result)
    assert highlevel.calls.call_count == 0


async def test_an_email_the_duplicate_search_finds_is_a_conflict_naming_the_contact_and_nothing_is_posted(
    highlevel: respx.MockRouter, client: Client
) -> None:
    lookup = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": SEED_CONTACT})
    route = highlevel.post("/contacts/").respond(201, json={"contact": SEED_CONTACT})

    result = await client.call_tool("create_contact", {"emails": ["john@example.com"], "provider": "highlevel"})

    assert text_of(result).startswith("[conflict]")
    assert "ocQHyuzHvuMOe5N5jjXF" in text_of(result)
    assert_looked_up(lookup, "john@example.com")
    assert route.call_count == 0


async def test_a_refused_duplicate_names_the_existing_contact(highlevel: respx.MockRouter, client: Client) -> None:
    # The duplicate search found none (a contact made since, or matched by HighLevel on its phone); the POST says so.
    lookup = no_duplicate(highlevel)
    highlevel.post("/contacts/").respond(
        400,
        json={
            "statusCode": 400,
            "message": "This location does not allow duplicated contacts.",
            "meta": {"contactId": "existing00000000001x", "matchingField": "email"},
        },
    )

    result = await client.call_tool("create_contact", {"emails": ["john@example.com"], "provider": "highlevel"})

    assert text_of(result).startswith("[validation_error]")
    assert "existing00000000001x" in text_of(result)
    assert "by email" in text_of(result)
    assert_looked_up(lookup, "john@example.com")


async def test_create_without_a_location_id_says_which_setting_is_missing(highlevel: respx.MockRouter) -> None:
    settings = Settings(highlevel=highlevel_settings(location=None))

    async with Client(build_server(settings)) as client:
        created = await client.call_tool("create_contact", {"emails": ["a@example.com"]})

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
        (400, {"statusCode": 400, "message": "Contact not found"}, "not_found", "find_contact"),
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


async def test_get_contact_shows_first_and_last_touch_attribution(highlevel: respx.MockRouter, client: Client) -> None:
    highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(200, json={"contact": SEED_CONTACT})

    result = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})

    assert result.structured_content is not None
    section = result.structured_content["highlevel"]
    assert section["attributionSource"]["campaign"] == "spring_promo"
    assert section["lastAttributionSource"]["utmSource"] == "newsletter"


async def test_keys_this_server_does_not_know_are_kept_and_copies_and_the_ssn_are_not(
    highlevel: respx.MockRouter, client: Client
) -> None:
    contact = {**SEED_CONTACT, "ssn": "078-05-1120", "fullNameLowerCase": "john doe", "leadScore": 87}
    highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(200, json={"contact": contact})

    result = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})

    assert result.structured_content is not None
    assert result.structured_content["highlevel"]["leadScore"] == 87
    assert "078-05-1120" not in text_of(result)
    assert "fullNameLowerCase" not in text_of(result)
    assert "emailLowerCase" not in text_of(result)


async def test_custom_fields_show_under_their_names_and_the_definitions_are_read_once(
    highlevel: respx.MockRouter, client: Client, definitions: respx.Route
) -> None:
    contact = {
        **SEED_CONTACT,
        "customFields": [{"id": "cf_abc123", "value": "Enterprise"}, {"id": "cf_seats", "value": 12}],
    }
    highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(200, json={"contact": contact})

    for _ in range(2):
        result = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})
        assert result.structured_content is not None
        assert result.structured_content["custom_fields"] == {"Plan": "Enterprise", "Seats": 12}

    assert definitions.call_count == 1
    request = definitions.calls.last.request
    assert_highlevel_headers(request)
    assert request.url.query == b"model=contact"


async def test_custom_fields_keep_their_ids_when_asked_or_when_the_definitions_cannot_be_read(
    highlevel: respx.MockRouter, client: Client, definitions: respx.Route
) -> None:
    highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(200, json={"contact": SEED_CONTACT})

    by_id = await client.call_tool(
        "get_contact",
        {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel", "use_custom_field_labels": False},
    )
    definitions.respond(401, json={"statusCode": 401, "message": "The token is not authorized for this scope."})
    unreadable = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})

    for result in (by_id, unreadable):
        assert result.structured_content is not None
        assert result.structured_content["custom_fields"] == {"cf_abc123": "Enterprise"}
    assert definitions.call_count == 1


async def test_a_field_id_the_definitions_do_not_know_reads_them_again_at_most_once_a_minute(
    highlevel: respx.MockRouter, client: Client, definitions: respx.Route
) -> None:
    contact = {**SEED_CONTACT, "customFields": [{"id": "cf_new", "value": "x"}]}
    highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(200, json={"contact": contact})
    renamed = {"customFields": [*DEFINITIONS["customFields"], {"id": "cf_new", "name": "Region", "model": "contact"}]}
    definitions.side_effect = [httpx.Response(200, json=DEFINITIONS), httpx.Response(200, json=renamed)]

    first = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})
    highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(
        200, json={"contact": {**SEED_CONTACT, "customFields": [{"id": "cf_other", "value": "y"}]}}
    )
    second = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})

    assert first.structured_content is not None
    assert second.structured_content is not None
    assert first.structured_content["custom_fields"] == {"Region": "x"}
    assert second.structured_content["custom_fields"] == {"cf_other": "y"}  # not read a third time within the minute
    assert definitions.call_count == 2


async def test_two_fields_of_one_name_both_show(
    highlevel: respx.MockRouter, client: Client, definitions: respx.Route
) -> None:
    twins = {"customFields": [{"id": "cf_a", "name": "Notes", "model": "contact"}, {"id": "cf_b", "name": "Notes"}]}
    definitions.respond(200, json=twins)
    contact = {**SEED_CONTACT, "customFields": [{"id": "cf_a", "value": "one"}, {"id": "cf_b", "value": "two"}]}
    highlevel.get("/contacts/ocQHyuzHvuMOe5N5jjXF").respond(200, json={"contact": contact})

    result = await client.call_tool("get_contact", {"contact_id": "ocQHyuzHvuMOe5N5jjXF", "provider": "highlevel"})

    assert result.structured_content is not None
    assert result.structured_content["custom_fields"] == {"Notes (cf_a)": "one", "Notes (cf_b)": "two"}


async def test_describe_custom_fields_lists_the_locations_contact_fields(client: Client) -> None:
    result = await client.call_tool("describe_custom_fields", {"provider": "highlevel"})

    assert result.structured_content is not None
    assert result.structured_content["filterable"] is False
    assert result.structured_content["fields"] == [
        {"slot": "cf_abc123", "label": "Plan", "type": "picklist", "key": "contact.plan",
         "data_type": "SINGLE_OPTIONS", "options": ["Free", "Enterprise"], "values": ["Free", "Enterprise"],
         "values_from": "options"},
        {"slot": "cf_seats", "label": "Seats", "type": "number", "key": "contact.seats", "data_type": "NUMERICAL"},
    ]  # fmt: skip
    assert "operators" not in result.structured_content
