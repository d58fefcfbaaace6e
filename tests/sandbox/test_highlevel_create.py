"""HighLevel's create contact and duplicate search: validation, the location check, duplicates, phones."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import HIGHLEVEL_LOCATION_ID, sandbox_of
from contacts_mcp.server.sandbox.highlevel import CUSTOM_FIELD_IDS
from contacts_mcp.server.sandbox.model import NewContact
from tests.sandbox.support import CLEMTA, COMETLY, CONTACTS_PATH, HIGHLEVEL, MakeApp, client_for

pytestmark = pytest.mark.anyio

CREATED_FIELDS = {
    "id", "dateAdded", "dateUpdated", "deleted", "tags", "type", "customFields", "locationId", "firstName",
    "firstNameLowerCase", "fullNameLowerCase", "lastName", "lastNameLowerCase", "email", "emailLowerCase",
    "bounceEmail", "unsubscribeEmail", "dnd", "dndSettings", "phone", "address1", "city", "state", "country",
    "postalCode", "website", "source", "companyName", "dateOfBirth", "birthMonth", "birthDay",
    "lastSessionActivityAt", "offers", "products", "businessId", "assignedTo",
}  # fmt: skip
"""The keys of HighLevel's `CreateContactSchema`, the create answer's own shape (no `name`, no attribution)."""

DUPLICATE = "/highlevel/contacts/search/duplicate"
ADA = {
    "locationId": HIGHLEVEL_LOCATION_ID,
    "firstName": "Ada",
    "lastName": "Lovelace",
    "email": "Ada@Example.com",
    "phone": "+1 888-555-0199",
    "address1": "12 St James's Square",
    "city": "Austin",
    "state": "TX",
    "country": "US",
    "postalCode": "73301",
    "companyName": "Analytical Engines",
    "source": "public api",
    "tags": ["VIP", "vip", "math"],
    "dateOfBirth": "12/10/1815",
    "customFields": [{"id": CUSTOM_FIELD_IDS[16], "field_value": 42}],
}


async def test_create_returns_201_and_the_contact_in_the_create_schemas_shape(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        response = await client.post("/highlevel/contacts/", json=ADA, headers=HIGHLEVEL)
        fetched = await client.get(f"/highlevel/contacts/{response.json()['contact']['id']}", headers=HIGHLEVEL)

    assert response.status_code == 201
    contact = response.json()["contact"]
    assert set(contact) <= CREATED_FIELDS
    fetched_contact = fetched.json()["contact"]
    shared = set(contact) & set(fetched_contact) - {"dateOfBirth"}  # the create answer writes it as a moment
    assert {key: contact[key] for key in shared} == {key: fetched_contact[key] for key in shared}
    assert fetched_contact["name"] == "Ada Lovelace"
    assert contact["fullNameLowerCase"] == "ada lovelace"
    assert (contact["birthMonth"], contact["birthDay"]) == (11, 10)  # months count from 0, as JavaScript's do
    assert contact["locationId"] == HIGHLEVEL_LOCATION_ID
    assert contact["emailLowerCase"] == "ada@example.com"
    assert contact["phone"] == "+18885550199"
    assert contact["companyName"] == "Analytical Engines"
    assert contact["tags"] == ["vip", "math"]
    assert contact["dateOfBirth"] == "1815-12-10T00:00:00.000Z"
    assert fetched_contact["dateOfBirth"] == "1815-12-10"
    assert (contact["city"], contact["state"], contact["country"], contact["postalCode"]) == (
        "Austin",
        "TX",
        "US",
        "73301",
    )
    assert {"id": CUSTOM_FIELD_IDS[16], "value": "42"} in contact["customFields"]


async def test_create_accepts_the_path_without_the_trailing_slash(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        response = await client.post(
            "/highlevel/contacts", json={"locationId": HIGHLEVEL_LOCATION_ID, "name": "Grace Hopper"}, headers=HIGHLEVEL
        )

    assert response.status_code == 201
    contact = response.json()["contact"]
    assert (contact["firstName"], contact["lastName"], contact.get("email")) == ("Grace", "Hopper", None)


async def test_a_created_contact_is_found_by_email_and_visible_through_cometly_and_clemta(make_app: MakeApp) -> None:
    app = make_app(contacts=5)
    async with client_for(app) as client:
        created = (await client.post("/highlevel/contacts/", json=ADA, headers=HIGHLEVEL)).json()["contact"]
        found = await client.get(
            DUPLICATE, params={"locationId": HIGHLEVEL_LOCATION_ID, "email": "ada@EXAMPLE.com"}, headers=HIGHLEVEL
        )
        row = sandbox_of(app).store.contact_by_highlevel_id(created["id"])
        assert row is not None
        cometly = await client.get(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY)
        clemta = await client.get(f"/clemta/contacts/{row.clemta_id}", headers=CLEMTA)

    assert found.status_code == 200
    assert found.json()["contact"]["id"] == created["id"]
    assert cometly.status_code == 200
    assert cometly.json()["emails"][0]["email"] == "Ada@Example.com"
    assert cometly.json()["phones"][0]["phone"] == "+18885550199"
    assert cometly.json()["locations"][0]["location"] == "Austin, TX"
    assert cometly.json()["custom_fields"]["profile_field_1"] == "Analytical Engines"
    assert clemta.status_code == 200
    assert clemta.json()["data"]["full_name"] == "Ada Lovelace"
    assert clemta.json()["data"]["billing"]["phone_code"] == "+1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "ADA@example.com", "phone": None}, "email"),
        ({"email": "someone.else@example.com", "phone": "(888) 555-0199"}, "phone"),
    ],
    ids=["email", "phone"],
)
async def test_a_duplicate_email_or_phone_is_refused_with_the_existing_id(
    make_app: MakeApp, change: dict[str, object], field: str
) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        first = (await client.post("/highlevel/contacts/", json=ADA, headers=HIGHLEVEL)).json()["contact"]
        again = await client.post("/highlevel/contacts/", json={**ADA, **change}, headers=HIGHLEVEL)

    assert again.status_code == 400
    assert again.json() == {
        "statusCode": 400,
        "message": "This location does not allow duplicated contacts.",
        "meta": {"contactId": first["id"], "matchingField": field},
    }
    assert sandbox_of(app).store.contact(2) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "locationId should not be empty"),
        ({"locationId": 5}, "locationId must be a string"),
        ({"email": "not an email"}, "email must be an email"),
        ({"phone": "call me"}, "phone must be a valid phone number"),
        ({"phone": "+1 23"}, "phone must be a valid phone number"),
        ({"firstName": 3}, "firstName must be a string"),
        ({"tags": "vip"}, "tags must be an array"),
        ({"tags": ["vip", 1]}, "each value in tags must be a string"),
        ({"dnd": "yes"}, "dnd must be a boolean value"),
        ({"dateOfBirth": "1815-13-40"}, "dateOfBirth must be a valid date"),
        ({"customFields": {}}, "customFields must be an array"),
        ({"customFields": [{"id": "nope", "field_value": "x"}]}, "customFields.0.id"),
        ({"customFields": [{"id": CUSTOM_FIELD_IDS[16], "field_value": "x"}]}, "customFields.0.field_value"),
    ],
)
async def test_invalid_fields_are_a_422_with_a_list_of_messages(
    client: httpx.AsyncClient, body: dict[str, object], message: str
) -> None:
    payload = {"locationId": HIGHLEVEL_LOCATION_ID, **body} if body else body

    response = await client.post("/highlevel/contacts/", json=payload, headers=HIGHLEVEL)

    assert response.status_code == 422
    found = response.json()
    assert found["statusCode"] == 422
    assert found["error"] == "Unprocessable Entity"
    assert isinstance(found["message"], list)
    assert any(item.startswith(message) for item in found["message"])


async def test_a_body_that_is_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/highlevel/contacts/", content=b"{", headers=HIGHLEVEL)

    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


async def test_another_location_is_a_403_on_create_and_search(client: httpx.AsyncClient) -> None:
    created = await client.post("/highlevel/contacts/", json={**ADA, "locationId": "other"}, headers=HIGHLEVEL)
    searched = await client.get(DUPLICATE, params={"locationId": "other", "email": "a@b.co"}, headers=HIGHLEVEL)

    expected = {"statusCode": 403, "message": "The token does not have access to this location."}
    assert (created.status_code, created.json()) == (403, expected)
    assert (searched.status_code, searched.json()) == (403, expected)


@pytest.mark.parametrize("path", ["/highlevel/contacts/", DUPLICATE])
@pytest.mark.parametrize(
    "headers",
    [{"Version": "2021-07-28"}, {"Authorization": "Bearer wrong", "Version": "2021-07-28"}],
    ids=["missing", "wrong"],
)
async def test_new_routes_need_the_token(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    method = "POST" if path.endswith("/") else "GET"

    response = await client.request(method, path, json=ADA if method == "POST" else None, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Invalid JWT", "error": "Unauthorized"}


async def test_new_routes_need_the_version_header(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": HIGHLEVEL["Authorization"]}

    created = await client.post("/highlevel/contacts/", json=ADA, headers=headers)
    searched = await client.get(DUPLICATE, params={"locationId": HIGHLEVEL_LOCATION_ID}, headers=headers)

    assert (created.status_code, searched.status_code) == (400, 400)


async def test_duplicate_search_finds_seeded_contacts_by_email_any_case(
    client: httpx.AsyncClient, seeded_app: Starlette, dataset: list[NewContact]
) -> None:
    contact = dataset[0]
    row = sandbox_of(seeded_app).store.contact(contact.id)
    assert row is not None

    response = await client.get(
        DUPLICATE,
        params={"locationId": HIGHLEVEL_LOCATION_ID, "email": contact.emails[0].value.upper()},
        headers=HIGHLEVEL,
    )

    assert response.status_code == 200
    assert response.json()["contact"]["id"] == row.highlevel_id


async def test_duplicate_search_needs_the_plus_url_encoded(
    client: httpx.AsyncClient, seeded_app: Starlette, dataset: list[NewContact]
) -> None:
    contact = next(c for c in dataset if c.phones and c.phones[0].value.startswith("+"))
    phone = contact.phones[0].value
    row = sandbox_of(seeded_app).store.contact(contact.id)
    assert row is not None
    base = f"{DUPLICATE}?locationId={HIGHLEVEL_LOCATION_ID}&number="

    encoded = await client.get(base + phone.replace("+", "%2B"), headers=HIGHLEVEL)
    # A raw `+` in a query string is a space, which the digits match ignores.
    raw = await client.get(base + phone, headers=HIGHLEVEL)

    assert encoded.json()["contact"]["id"] == row.highlevel_id
    assert encoded.json()["contact"]["phone"] == phone
    assert raw.status_code == 200
    assert raw.json()["contact"]["id"] == row.highlevel_id


async def test_duplicate_search_prefers_email_then_phone(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        ada = (await client.post("/highlevel/contacts/", json=ADA, headers=HIGHLEVEL)).json()["contact"]
        grace_body = {"locationId": HIGHLEVEL_LOCATION_ID, "email": "grace@example.com", "phone": "+44 20 7946 0000"}
        grace = (await client.post("/highlevel/contacts/", json=grace_body, headers=HIGHLEVEL)).json()["contact"]
        both = await client.get(
            DUPLICATE,
            params={"locationId": HIGHLEVEL_LOCATION_ID, "email": "grace@example.com", "number": "+18885550199"},
            headers=HIGHLEVEL,
        )
        phone_only = await client.get(
            DUPLICATE,
            params={"locationId": HIGHLEVEL_LOCATION_ID, "email": "nobody@example.com", "number": "+18885550199"},
            headers=HIGHLEVEL,
        )

    assert both.json()["contact"]["id"] == grace["id"]
    assert phone_only.json()["contact"]["id"] == ada["id"]


async def test_duplicate_search_answers_null_when_nothing_matches(client: httpx.AsyncClient) -> None:
    response = await client.get(
        DUPLICATE, params={"locationId": HIGHLEVEL_LOCATION_ID, "email": "nobody@nowhere.example"}, headers=HIGHLEVEL
    )

    assert response.status_code == 200
    assert response.json() == {"contact": None}


async def test_duplicate_search_validates_its_parameters(client: httpx.AsyncClient) -> None:
    missing_location = await client.get(DUPLICATE, params={"email": "a@b.co"}, headers=HIGHLEVEL)
    nothing_to_match = await client.get(DUPLICATE, params={"locationId": HIGHLEVEL_LOCATION_ID}, headers=HIGHLEVEL)

    assert missing_location.status_code == 400  # the search documents 400, not 422
    assert missing_location.json() == {"statusCode": 400, "message": "locationId should not be empty"}
    assert nothing_to_match.status_code == 400
    assert nothing_to_match.json()["statusCode"] == 400
