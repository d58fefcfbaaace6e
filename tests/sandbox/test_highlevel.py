"""HighLevel's get contact: headers it demands, its error shapes and the contact it returns."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import HIGHLEVEL_LOCATION_ID, sandbox_of
from contacts_mcp.server.sandbox.highlevel import CUSTOM_FIELD_IDS
from contacts_mcp.server.sandbox.model import NewContact
from tests.sandbox.support import COMETLY, CONTACTS_PATH, HIGHLEVEL, MakeApp, client_for

pytestmark = pytest.mark.anyio

SCHEMA_FIELDS = {
    "id", "name", "locationId", "firstName", "lastName", "email", "emailLowerCase", "timezone", "companyName",
    "phone", "dnd", "dndSettings", "type", "source", "assignedTo", "address1", "city", "state", "country",
    "postalCode", "website", "tags", "dateOfBirth", "dateAdded", "dateUpdated", "attachments", "ssn", "keyword",
    "firstNameLowerCase", "fullNameLowerCase", "lastNameLowerCase", "lastActivity", "customFields", "businessId",
    "attributionSource", "lastAttributionSource", "visitorId",
}  # fmt: skip
"""The keys of HighLevel's `GetContectByIdSchema`; the sandbox sends those it has data for."""


def _highlevel_id(app: Starlette, contact_id: int) -> str:
    row = sandbox_of(app).store.contact(contact_id)
    assert row is not None
    return row.highlevel_id


async def test_get_returns_the_contact_in_highlevels_own_schema(
    seeded_app: Starlette, client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    contact = next(c for c in dataset if c.custom_fields.get(1) and c.custom_fields.get(5) and c.phones and c.events)
    contact_id = _highlevel_id(seeded_app, contact.id)

    response = await client.get(f"/highlevel/contacts/{contact_id}", headers=HIGHLEVEL)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["contact"]
    found = body["contact"]
    assert set(found) <= SCHEMA_FIELDS
    assert None not in found.values()  # the schema's strings are not nullable: absent ones are left out
    assert re.fullmatch(r"[A-Za-z0-9]{20}", found["id"])
    assert found["id"] == contact_id
    assert found["locationId"] == HIGHLEVEL_LOCATION_ID
    assert found["name"] == contact.names[0].value
    assert found["email"] == contact.emails[0].value
    assert found["emailLowerCase"] == contact.emails[0].value.lower()
    assert found["fullNameLowerCase"] == contact.names[0].value.lower()
    assert found["phone"] == contact.phones[0].value
    assert found["companyName"] == contact.custom_fields[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", found["dateAdded"])
    assert set(found["dndSettings"]) == {"Call", "Email", "SMS", "WhatsApp", "GMB", "FB"}
    assert {"id": CUSTOM_FIELD_IDS[5], "value": contact.custom_fields[5]} in found["customFields"]
    assert all(list(field) == ["id", "value"] and isinstance(field["value"], str) for field in found["customFields"])
    assert CUSTOM_FIELD_IDS[1] not in {field["id"] for field in found["customFields"]}  # it is companyName


async def test_attribution_is_first_and_last_touch_objects(
    seeded_app: Starlette, client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    contact = next(c for c in dataset if c.profile.attributions)
    first, last = contact.profile.attributions[0], contact.profile.attributions[-1]

    response = await client.get(f"/highlevel/contacts/{_highlevel_id(seeded_app, contact.id)}", headers=HIGHLEVEL)

    found = response.json()["contact"]
    assert "attributions" not in found
    assert found["attributionSource"]["url"] == first.url
    assert found["attributionSource"].get("utmSource") == first.utm_source
    assert found["lastAttributionSource"]["url"] == last.url


async def test_the_locations_custom_fields_are_its_labelled_slots_but_the_company(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"/highlevel/locations/{HIGHLEVEL_LOCATION_ID}/customFields", params={"model": "contact"}, headers=HIGHLEVEL
    )

    assert response.status_code == 200
    fields = response.json()["customFields"]
    by_name = {field["name"]: field for field in fields}
    assert "Company" not in by_name
    assert by_name["Customer Plan"]["id"] == CUSTOM_FIELD_IDS[5]
    assert by_name["Customer Plan"]["fieldKey"] == "contact.customer_plan"
    assert (by_name["Customer Plan"]["dataType"], by_name["Seats"]["dataType"]) == ("TEXT", "NUMERICAL")
    assert by_name["Trial Ends"]["dataType"] == "DATE"
    assert {field["model"] for field in fields} == {"contact"}


async def test_another_locations_custom_fields_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/highlevel/locations/someOtherLocation00/customFields", headers=HIGHLEVEL)

    assert response.status_code == 403


async def test_every_generated_contact_has_its_own_highlevel_id(
    seeded_app: Starlette, dataset: list[NewContact]
) -> None:
    ids = {_highlevel_id(seeded_app, contact.id) for contact in dataset}

    assert len(ids) == len(dataset)


async def test_a_contact_created_through_cometly_is_readable_through_highlevel(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        created = await client.post(
            CONTACTS_PATH, json={"emails": ["Ada@Example.com"], "names": ["Ada Lovelace"]}, headers=COMETLY
        )
        contact_id = _highlevel_id(app, created.json()["id"])
        response = await client.get(f"/highlevel/contacts/{contact_id}", headers=HIGHLEVEL)

    found = response.json()["contact"]
    assert found["firstName"] == "Ada"
    assert found["lastName"] == "Lovelace"
    assert found["emailLowerCase"] == "ada@example.com"
    assert "customFields" not in found or found["customFields"] == []
    assert found["source"] == "api"


async def test_an_unknown_contact_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/highlevel/contacts/ocQHyuzHvuMOe5N5jjXF", headers=HIGHLEVEL)

    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Contact not found"}


@pytest.mark.parametrize(
    "headers",
    [{"Version": "2021-07-28"}, {"Authorization": "Bearer wrong", "Version": "2021-07-28"}],
    ids=["missing", "wrong"],
)
async def test_a_missing_or_wrong_token_is_a_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/highlevel/contacts/anything", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Invalid JWT", "error": "Unauthorized"}


@pytest.mark.parametrize("version", [None, "2021-04-15"])
async def test_a_missing_or_unknown_version_is_a_400(client: httpx.AsyncClient, version: str | None) -> None:
    headers = {"Authorization": HIGHLEVEL["Authorization"], **({"Version": version} if version else {})}

    response = await client.get("/highlevel/contacts/anything", headers=headers)

    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400
    assert "Version" in body["message"] or "version" in body["message"]


async def test_unknown_routes_answer_in_nestjs_style(client: httpx.AsyncClient) -> None:
    response = await client.get("/highlevel/contacts/a/b", headers=HIGHLEVEL)

    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Cannot GET /contacts/a/b", "error": "Not Found"}
