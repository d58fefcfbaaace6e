"""Clemta's get contact: the API key header, the envelope and the contact it returns."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import sandbox_of
from contacts_mcp.server.sandbox.model import NewContact
from tests.sandbox.support import CLEMTA

pytestmark = pytest.mark.anyio

BILLING_FIELDS = [
    "email",
    "phone",
    "phone_code",
    "iso_code",
    "country",
    "address_1",
    "address_2",
    "postal_code",
    "district",
    "state",
    "province",
    "tax_id",
]


def _clemta_id(app: Starlette, contact_id: int) -> str:
    row = sandbox_of(app).store.contact(contact_id)
    assert row is not None
    return row.clemta_id


async def test_get_returns_the_contact_in_the_success_envelope(
    seeded_app: Starlette, client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    contact = next(c for c in dataset if len(c.emails) > 1 and c.phones)
    contact_id = _clemta_id(seeded_app, contact.id)

    response = await client.get(f"/clemta/contacts/{contact_id}", headers=CLEMTA)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Contact retrieved successfully"
    data = body["data"]
    assert list(data) == [
        "id",
        "created_at",
        "updated_at",
        "type",
        "status",
        "full_name",
        "email",
        "description",
        "cc_emails",
        "bcc_emails",
        "billing",
    ]
    assert re.fullmatch(r"[0-9a-f]{24}", data["id"])
    assert data["created_at"] == contact.created_at
    assert data["updated_at"] >= data["created_at"]
    assert data["full_name"] == contact.names[0].value
    assert data["email"] == contact.emails[0].value
    assert set(data["cc_emails"]) == {email.value for email in contact.emails[1:]}
    assert list(data["billing"]) == BILLING_FIELDS
    phone = data["billing"]["phone_code"] + data["billing"]["phone"]
    assert phone == contact.phones[0].value


async def test_clemta_ids_start_with_the_creation_time_like_object_ids(
    seeded_app: Starlette, dataset: list[NewContact]
) -> None:
    contact = dataset[0]

    contact_id = _clemta_id(seeded_app, contact.id)

    assert int(contact_id[:8], 16) == contact.created_at


@pytest.mark.parametrize("header", ["X-API-Key", "x-api-key", "X-API-KEY"])
async def test_the_key_header_name_is_case_insensitive(
    seeded_app: Starlette, client: httpx.AsyncClient, dataset: list[NewContact], header: str
) -> None:
    contact_id = _clemta_id(seeded_app, dataset[0].id)

    response = await client.get(f"/clemta/contacts/{contact_id.upper()}", headers={header: CLEMTA["X-API-Key"]})

    assert response.status_code == 200
    assert response.json()["data"]["id"] == contact_id


async def test_a_missing_key_is_api_key_required(client: httpx.AsyncClient) -> None:
    response = await client.get("/clemta/contacts/64b8f1a2e4b0c8d9f0123456")

    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None
    assert body["error"]["code"] == "API_KEY_REQUIRED"


async def test_a_wrong_key_is_invalid_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/clemta/contacts/64b8f1a2e4b0c8d9f0123456", headers={"X-API-Key": "nope"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"


@pytest.mark.parametrize("contact_id", ["123", "64b8f1a2e4b0c8d9f012345g", "64b8f1a2e4b0c8d9f01234567"])
async def test_an_id_that_is_not_24_hex_characters_is_invalid_request(
    client: httpx.AsyncClient, contact_id: str
) -> None:
    response = await client.get(f"/clemta/contacts/{contact_id}", headers=CLEMTA)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


async def test_an_unknown_contact_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/clemta/contacts/64b8f1a2e4b0c8d9f0123456", headers=CLEMTA)

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "message": "Contact not found",
        "data": None,
        "error": {"code": "NOT_FOUND", "details": ""},
    }
