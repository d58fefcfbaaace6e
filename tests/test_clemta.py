"""Clemta behind the same tools: X-API-Key, the envelope, skip/limit paging behind the cursor, create.

find_contacts is tested on the provider in tests/test_find_contacts.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast
from unittest.mock import ANY

import httpx
import pytest
import respx
from mcp import Client

from contacts_mcp.server.app import build_server
from contacts_mcp.server.settings import Rate, Settings
from tests.conftest import CLEMTA_COMPANY, CLEMTA_KEY, clemta_settings, text_of

pytestmark = pytest.mark.anyio

SEED_CONTACT: dict[str, Any] = {
    "id": "64b8f1a2e4b0c8d9f0123456",
    "created_at": 1640995200,
    "updated_at": 1640995200,
    "type": "customer",
    "status": "active",
    "full_name": "John Doe",
    "email": "john@example.com",
    "description": "Primary contact for the company",
    "cc_emails": ["cc1@example.com", "cc2@example.com"],
    "bcc_emails": ["bcc@example.com"],
    "billing": {
        "email": "billing@example.com",
        "phone": "1234567890",
        "phone_code": "+1",
        "iso_code": "US",
        "country": "United States",
        "address_1": "123 Main Street",
        "address_2": "Suite 100",
        "postal_code": "12345",
        "district": "Downtown",
        "state": "CA",
        "province": "California",
        "tax_id": "12-3456789",
    },
}
"""The seed page's example response (real emails in place of the saved page's placeholders)."""

NORMALIZED: dict[str, Any] = {
    "id": "64b8f1a2e4b0c8d9f0123456",
    "provider": "clemta",
    "created_at": "2022-01-01T00:00:00Z",
    "updated_at": "2022-01-01T00:00:00Z",
    "emails": ["john@example.com", "cc1@example.com", "cc2@example.com"],
    "phones": ["+11234567890"],
    "names": ["John Doe"],
    "locations": ["123 Main Street, Suite 100, Downtown, 12345, CA, California, United States"],
    "clemta": {
        "type": "customer",
        "status": "active",
        "description": "Primary contact for the company",
        "cc_emails": ["cc1@example.com", "cc2@example.com"],
        "bcc_emails": ["bcc@example.com"],
        "billing": SEED_CONTACT["billing"],
    },
}


def envelope(data: Any, message: str = "ok") -> dict[str, Any]:
    return {"success": True, "message": message, "data": data}


def no_duplicate(clemta: respx.MockRouter) -> respx.Route:
    """The duplicate lookup a create sends first, answered with no contact."""
    return clemta.get("/contacts").respond(200, json=envelope({"contacts": [], "total": 0}))


def lookup_params(email: str) -> dict[str, str]:
    """The query of the duplicate lookup for `email`: the list's first page of 100, newest first, searched."""
    return {
        "company_id": CLEMTA_COMPANY,
        "skip": "0",
        "limit": "100",
        "sort": "created_at",
        "order": "desc",
        "search": email,
    }


def sent_params(route: respx.Route) -> list[dict[str, str]]:
    requests = cast(list[httpx.Request], [call.request for call in route.calls])  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return [dict(httpx.QueryParams(request.url.query).multi_items()) for request in requests]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(build_server(Settings(clemta=clemta_settings()))) as connected:
        yield connected


async def test_get_contact_sends_the_api_key_and_unwraps_the_seed_example(
    clemta: respx.MockRouter, client: Client
) -> None:
    route = clemta.get("/contacts/64b8f1a2e4b0c8d9f0123456").respond(200, json=envelope(SEED_CONTACT))

    result = await client.call_tool("get_contact", {"contact_id": "64b8f1a2e4b0c8d9f0123456"})

    request = route.calls.last.request
    assert request.headers["x-api-key"] == CLEMTA_KEY
    assert "authorization" not in request.headers
    assert result.structured_content == NORMALIZED


async def test_list_contacts_maps_the_range_and_pages_through_the_cursor(
    clemta: respx.MockRouter, client: Client
) -> None:
    late = {**SEED_CONTACT, "id": "64b8f1a2e4b0c8d9f0999999", "created_at": 1641081600}  # 2022-01-02, after the range
    route = clemta.get("/contacts").mock(
        side_effect=[
            httpx.Response(200, json=envelope({"contacts": [late, SEED_CONTACT], "total": 3})),
            httpx.Response(
                200, json=envelope({"contacts": [{**SEED_CONTACT, "id": "64b8f1a2e4b0c8d9f0000001"}], "total": 3})
            ),
        ]
    )
    window = {"start_date": "2021-12-31", "end_date": "2022-01-01", "per_page": 2}

    first = await client.call_tool("list_contacts", window)
    assert first.structured_content is not None
    second = await client.call_tool("list_contacts", {**window, "cursor": first.structured_content["next_cursor"]})

    requests = cast(list[httpx.Request], [call.request for call in route.calls])  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    sent = [dict(httpx.QueryParams(request.url.query).multi_items()) for request in requests]
    assert sent[0] == {
        "company_id": CLEMTA_COMPANY,
        "skip": "0",
        "limit": "2",
        "sort": "created_at",
        "order": "desc",
        "created_at": "gt",
        "created_at_value": str(1640908800 - 1),
        "end_date": str(1641081600 - 1),
    }
    assert sent[1]["skip"] == "2"
    assert [c["id"] for c in first.structured_content["contacts"]] == ["64b8f1a2e4b0c8d9f0123456"]
    assert first.structured_content["count"] == 1
    assert first.structured_content["range"] == {
        "start": "2021-12-31T00:00:00+00:00",
        "end": "2022-01-01T23:59:59+00:00",
        "timezone": "UTC",
        "today": ANY,  # the system clock's date
    }
    assert first.structured_content["has_more"] is True
    assert second.structured_content is not None
    assert [c["id"] for c in second.structured_content["contacts"]] == ["64b8f1a2e4b0c8d9f0000001"]
    assert second.structured_content["has_more"] is False


async def test_a_cursor_this_server_did_not_make_is_a_validation_error(
    clemta: respx.MockRouter, client: Client
) -> None:
    result = await client.call_tool(
        "list_contacts", {"start_date": "2022-01-01", "end_date": "2022-01-02", "cursor": "not-a-cursor"}
    )

    assert text_of(result).startswith("[validation_error]")
    assert clemta.calls.call_count == 0


async def test_create_contact_sends_type_full_name_email_and_company(clemta: respx.MockRouter, client: Client) -> None:
    lookup = no_duplicate(clemta)
    route = clemta.post("/contacts").respond(200, json=envelope(SEED_CONTACT, "Contact created successfully"))

    result = await client.call_tool(
        "create_contact",
        {"emails": ["john@example.com", "cc1@example.com"], "names": ["John Doe"], "contact_type": "vendor"},
    )

    assert sent_params(lookup) == [lookup_params("john@example.com")]  # the first email, looked up once
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content) == {
        "type": "vendor",
        "full_name": "John Doe",
        "email": "john@example.com",
        "company_id": CLEMTA_COMPANY,
        "cc_emails": ["cc1@example.com"],
    }
    assert result.structured_content == NORMALIZED


async def test_create_contact_refuses_an_email_a_contact_has_and_sends_no_create(
    clemta: respx.MockRouter, client: Client
) -> None:
    lookup = clemta.get("/contacts").respond(200, json=envelope({"contacts": [SEED_CONTACT], "total": 1}))
    route = clemta.post("/contacts").respond(200, json=envelope(SEED_CONTACT))

    result = await client.call_tool("create_contact", {"emails": ["JOHN@example.com"], "names": ["John Doe"]})

    assert text_of(result).startswith("[conflict]")
    assert SEED_CONTACT["id"] in text_of(result)
    assert sent_params(lookup) == [lookup_params("JOHN@example.com")]
    assert route.call_count == 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"emails": ["a@example.com"]},
        {"emails": ["a@example.com"], "names": ["A"], "phones": ["+15550000000", "+15550000001"]},
        {"emails": ["a@example.com"], "names": ["A"], "contact_type": "partner"},
        {"emails": ["a@example.com"], "names": ["A"], "locations": ["Austin, TX"]},
        {"emails": ["a@example.com"], "names": ["A"], "address": {"city": "Austin"}},
        {"emails": ["a@example.com"], "names": ["A"], "tags": ["vip"]},
        {"emails": ["a@example.com"], "names": ["A"], "custom_fields": {"profile_field_1": "x"}},
        {"emails": ["a@example.com"], "names": ["A"], "fields": {"source": "webinar"}},
    ],
)
async def test_create_contact_refuses_what_clemta_cannot_take(
    clemta: respx.MockRouter, client: Client, arguments: dict[str, Any]
) -> None:
    result = await client.call_tool("create_contact", arguments)

    assert text_of(result).startswith("[validation_error]")
    assert clemta.calls.call_count == 0


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "INVALID_API_KEY", "authentication_error"),
        (403, "ACCESS_DENIED", "permission_error"),
        (404, "NOT_FOUND", "not_found"),
        (404, "CONTACT_NOT_FOUND", "not_found"),
        (400, "VALIDATION_FAILED", "validation_error"),
        (429, "RATE_LIMIT_EXCEEDED", "rate_limited"),
        (500, "INTERNAL_ERROR", "upstream_unavailable"),
    ],
)
async def test_clemta_errors_map_to_error_classes_with_their_code(
    clemta: respx.MockRouter, client: Client, status: int, code: str, expected: str
) -> None:
    body = {"success": False, "message": "Something", "data": None, "error": {"code": code, "details": ""}}
    clemta.get("/contacts/64b8f1a2e4b0c8d9f0123456").respond(status, json=body, headers={"Retry-After": "60"})

    result = await client.call_tool("get_contact", {"contact_id": "64b8f1a2e4b0c8d9f0123456"})

    assert text_of(result).startswith(f"[{expected}]")
    assert code in text_of(result)
    assert CLEMTA_KEY not in text_of(result)


async def test_a_success_false_answer_with_status_200_is_still_an_error(
    clemta: respx.MockRouter, client: Client
) -> None:
    body = {"success": False, "message": "Contact not found", "data": None, "error": {"code": "NOT_FOUND"}}
    clemta.get("/contacts/64b8f1a2e4b0c8d9f0123456").respond(200, json=body)

    result = await client.call_tool("get_contact", {"contact_id": "64b8f1a2e4b0c8d9f0123456"})

    assert text_of(result).startswith("[not_found]")


@pytest.mark.parametrize(
    "contact_id", ["../companies", "64b8f1a2e4b0c8d9f012345/", "64b8f1a2e4b0c8d9f012345?", "%2F" * 8, "0" * 500, "xyz"]
)
async def test_path_injection_attempts_never_reach_another_path(
    clemta: respx.MockRouter, client: Client, contact_id: str
) -> None:
    clemta.route().respond(200, json=envelope(SEED_CONTACT))

    result = await client.call_tool("get_contact", {"contact_id": contact_id})

    assert text_of(result).startswith("[validation_error]")
    assert clemta.calls.call_count == 0


async def test_list_and_create_without_a_company_id_name_the_setting(clemta: respx.MockRouter) -> None:
    async with Client(build_server(Settings(clemta=clemta_settings(company=None)))) as client:
        listed = await client.call_tool("list_contacts", {"start_date": "2022-01-01", "end_date": "2022-01-02"})
        created = await client.call_tool("create_contact", {"emails": ["a@example.com"], "names": ["A"]})

    assert "CLEMTA_COMPANY_ID" in text_of(listed)
    assert "CLEMTA_COMPANY_ID" in text_of(created)
    assert clemta.calls.call_count == 0


async def test_create_contact_sends_phone_address_and_clemtas_own_fields_as_its_billing_details(
    clemta: respx.MockRouter, client: Client
) -> None:
    lookup = no_duplicate(clemta)
    route = clemta.post("/contacts").respond(200, json=envelope(SEED_CONTACT, "Contact created successfully"))

    await client.call_tool(
        "create_contact",
        {
            "emails": ["john@example.com"],
            "names": ["John Doe"],
            "phones": ["+1 415-555-0100"],
            "address": {"line1": "123 Main Street", "line2": "Suite 100", "district": "Downtown", "state": "CA",
                        "province": "California", "postal_code": "12345", "country": "us"},
            "fields": {"status": "active", "description": "Met at the fair", "tax_id": "12-3456789",
                       "bcc_emails": ["books@example.com"]},
        },
    )  # fmt: skip

    assert sent_params(lookup) == [lookup_params("john@example.com")]
    assert json.loads(route.calls.last.request.content) == {
        "type": "customer",
        "full_name": "John Doe",
        "email": "john@example.com",
        "company_id": CLEMTA_COMPANY,
        "status": "active",
        "description": "Met at the fair",
        "bcc_emails": ["books@example.com"],
        "billing": {
            "address_1": "123 Main Street",
            "address_2": "Suite 100",
            "district": "Downtown",
            "state": "CA",
            "province": "California",
            "postal_code": "12345",
            "iso_code": "US",
            "phone_code": "+1",
            "phone": "4155550100",
            "tax_id": "12-3456789",
        },
    }


async def test_a_phone_without_a_calling_code_is_read_in_the_addresss_country(
    clemta: respx.MockRouter, client: Client
) -> None:
    lookup = no_duplicate(clemta)
    route = clemta.post("/contacts").respond(200, json=envelope(SEED_CONTACT))

    await client.call_tool(
        "create_contact",
        {"emails": ["a@example.com"], "names": ["A B"], "phones": ["030 1234567"], "address": {"country": "DE"}},
    )
    await client.call_tool("create_contact", {"emails": ["a@example.com"], "names": ["A B"], "phones": ["030 1234567"]})

    assert sent_params(lookup) == [lookup_params("a@example.com")] * 2

    requests = cast(list[httpx.Request], [call.request for call in route.calls])  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    first, second = (json.loads(request.content)["billing"] for request in requests)
    assert first == {"iso_code": "DE", "phone_code": "+49", "phone": "301234567"}
    assert second == {"phone": "030 1234567"}  # no country to read it in: sent as given, nothing guessed


async def test_every_clemta_request_spends_one_budget_per_api_key(clemta: respx.MockRouter) -> None:
    clemta.get("/contacts/64b8f1a2e4b0c8d9f0123456").respond(200, json=envelope(SEED_CONTACT))
    clemta.get("/contacts").respond(200, json=envelope({"contacts": [], "total": 0}))
    settings = Settings(clemta=clemta_settings(), rate_limits={"clemta.api_key": (Rate(1, 60.0),)}, max_wait_seconds=0)

    async with Client(build_server(settings)) as client:
        info = await client.call_tool("server_info", {})
        got = await client.call_tool("get_contact", {"contact_id": "64b8f1a2e4b0c8d9f0123456"})
        listed = await client.call_tool("list_contacts", {"start_date": "2022-01-01"})

    assert info.structured_content is not None
    assert [budget["name"] for budget in info.structured_content["budgets"]] == ["clemta.api_key"]
    assert got.is_error is False
    assert text_of(listed).startswith("[rate_limited]")  # the list waits for the slot the get took
    assert clemta.calls.call_count == 1
