"""Clemta's list and create contacts: the company check, paging, search, filters and validation."""

from __future__ import annotations

import re

import httpx
import pytest

from contacts_mcp.server.sandbox import CLEMTA_COMPANY_ID, sandbox_of
from contacts_mcp.server.sandbox.model import NewContact
from tests.sandbox.support import CLEMTA, COMETLY, CONTACTS_PATH, HIGHLEVEL, MakeApp, client_for

pytestmark = pytest.mark.anyio

LIST = "/clemta/contacts"
COMPANY = {"company_id": CLEMTA_COMPANY_ID}
NEW = {
    "type": "vendor",
    "full_name": "Ada Lovelace",
    "email": "ada@example.com",
    "company_id": CLEMTA_COMPANY_ID,
    "description": "Engines",
    "cc_emails": ["ada.cc@example.com"],
    "bcc_emails": ["books@example.com"],
    "billing": {"phone": "7946 0000", "phone_code": "+44", "iso_code": "gb", "postal_code": "SW1Y", "tax_id": "GB1"},
}


async def test_list_answers_the_envelope_newest_first_with_the_total(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    response = await client.get(LIST, params=COMPANY, headers=CLEMTA)

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["message"]) == (True, "Contacts retrieved successfully")
    assert body["data"]["total"] == len(dataset)
    contacts = body["data"]["contacts"]
    assert len(contacts) == 10
    newest = sorted(dataset, key=lambda c: (c.created_at, c.id), reverse=True)[:10]
    assert [c["created_at"] for c in contacts] == [c.created_at for c in newest]
    assert [c["full_name"] for c in contacts] == [c.names[0].value if c.names else "" for c in newest]


async def test_list_items_have_the_get_shape(client: httpx.AsyncClient) -> None:
    listed = (await client.get(LIST, params={**COMPANY, "limit": 1}, headers=CLEMTA)).json()["data"]["contacts"][0]

    fetched = await client.get(f"{LIST}/{listed['id']}", headers=CLEMTA)

    assert fetched.json()["data"] == listed


@pytest.mark.parametrize(("sort", "order"), [("created_at", "desc"), ("full_name", "asc"), ("email", "desc")])
async def test_skip_and_limit_walk_every_contact_exactly_once(
    client: httpx.AsyncClient, dataset: list[NewContact], sort: str, order: str
) -> None:
    seen: list[str] = []
    totals: set[int] = set()
    skip = 0
    while True:
        params = {**COMPANY, "skip": skip, "limit": 37, "sort": sort, "order": order}
        data = (await client.get(LIST, params=params, headers=CLEMTA)).json()["data"]
        totals.add(data["total"])
        if not data["contacts"]:
            break
        seen.extend(contact["id"] for contact in data["contacts"])
        skip += 37

    assert totals == {len(dataset)}
    assert len(seen) == len(set(seen)) == len(dataset)


async def test_order_asc_puts_the_oldest_first(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    response = await client.get(LIST, params={**COMPANY, "order": "asc", "limit": 1}, headers=CLEMTA)

    assert response.json()["data"]["contacts"][0]["created_at"] == min(c.created_at for c in dataset)


async def test_search_matches_name_or_email_case_insensitively(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    term = dataset[0].emails[0].value.split("@")[1].upper()
    expected = {
        c.id
        for c in dataset
        if term.casefold() in c.emails[0].value.casefold()
        or (c.names and term.casefold() in c.names[0].value.casefold())
    }

    response = await client.get(LIST, params={**COMPANY, "search": term, "limit": 100}, headers=CLEMTA)

    data = response.json()["data"]
    assert data["total"] == len(expected)
    assert all(
        term.casefold() in contact["email"].casefold() or term.casefold() in contact["full_name"].casefold()
        for contact in data["contacts"]
    )


@pytest.mark.parametrize("operator", ["gt", "lt", "eq"])
async def test_created_at_filters_compare_unix_seconds(
    client: httpx.AsyncClient, dataset: list[NewContact], operator: str
) -> None:
    middle = sorted(c.created_at for c in dataset)[len(dataset) // 2]
    compare = {"gt": middle.__lt__, "lt": middle.__gt__, "eq": middle.__eq__}[operator]

    response = await client.get(
        LIST,
        params={**COMPANY, "created_at": operator, "created_at_value": middle, "limit": 100},
        headers=CLEMTA,
    )

    data = response.json()["data"]
    assert data["total"] == sum(1 for c in dataset if compare(c.created_at))
    assert all(compare(contact["created_at"]) for contact in data["contacts"])


async def test_end_date_keeps_contacts_created_until_then(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    end = sorted(c.created_at for c in dataset)[99]

    response = await client.get(LIST, params={**COMPANY, "end_date": end}, headers=CLEMTA)

    assert response.json()["data"]["total"] == sum(1 for c in dataset if c.created_at <= end)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"company_id": "not-an-id"},
        {"skip": "-1"},
        {"skip": "x"},
        {"limit": "0"},
        {"limit": "101"},
        {"sort": "name"},
        {"order": "up"},
        {"created_at": "gte", "created_at_value": "1"},
        {"created_at": "gt"},
        {"created_at_value": "1"},
        {"created_at": "gt", "created_at_value": "yesterday"},
        {"end_date": "2026-01-01"},
    ],
)
async def test_bad_list_parameters_are_invalid_request(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    query = params if params == {} or "company_id" in params else {**COMPANY, **params}

    response = await client.get(LIST, params=query, headers=CLEMTA)

    assert response.status_code == 400
    body = response.json()
    assert (body["success"], body["data"], body["error"]["code"]) == (False, None, "INVALID_REQUEST")
    assert body["error"]["details"]


async def test_another_company_is_company_not_found(client: httpx.AsyncClient) -> None:
    listed = await client.get(LIST, params={"company_id": "64b8f1a2e4b0c8d9f0123456"}, headers=CLEMTA)
    created = await client.post(LIST, json={**NEW, "company_id": "64b8f1a2e4b0c8d9f0123456"}, headers=CLEMTA)

    for response in (listed, created):
        assert response.status_code == 404
        assert response.json()["error"] == {"code": "COMPANY_NOT_FOUND", "details": ""}


async def test_the_company_id_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get(LIST, params={"company_id": CLEMTA_COMPANY_ID.upper()}, headers=CLEMTA)

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("headers", "code"), [({}, "API_KEY_REQUIRED"), ({"X-API-Key": "nope"}, "INVALID_API_KEY")])
async def test_list_and_create_need_the_key(
    client: httpx.AsyncClient, method: str, headers: dict[str, str], code: str
) -> None:
    response = await client.request(
        method, LIST, params=COMPANY, json=NEW if method == "POST" else None, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


async def test_create_answers_200_with_the_contact_and_it_is_listed_and_readable_everywhere(
    make_app: MakeApp,
) -> None:
    app = make_app(contacts=3)
    async with client_for(app) as client:
        response = await client.post(LIST, json=NEW, headers=CLEMTA)
        created = response.json()["data"]
        fetched = await client.get(f"{LIST}/{created['id']}", headers=CLEMTA)
        listed = (await client.get(LIST, params=COMPANY, headers=CLEMTA)).json()["data"]
        row = sandbox_of(app).store.contact_by_clemta_id(created["id"])
        assert row is not None
        cometly = await client.get(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY)
        highlevel = await client.get(f"/highlevel/contacts/{row.highlevel_id}", headers=HIGHLEVEL)

    assert response.status_code == 200
    assert (response.json()["success"], response.json()["message"]) == (True, "Contact created successfully")
    assert fetched.json()["data"] == created
    assert (created["type"], created["status"], created["full_name"]) == ("vendor", "active", "Ada Lovelace")
    assert created["cc_emails"] == ["ada.cc@example.com"]
    assert created["bcc_emails"] == ["books@example.com"]
    billing = created["billing"]
    assert (billing["phone_code"], billing["phone"], billing["iso_code"]) == ("+44", "79460000", "GB")
    assert (billing["country"], billing["postal_code"], billing["tax_id"]) == ("United Kingdom", "SW1Y", "GB1")
    assert listed["total"] == 4
    assert listed["contacts"][0]["id"] == created["id"]
    assert [item["email"] for item in cometly.json()["emails"]] == ["ada@example.com", "ada.cc@example.com"]
    assert highlevel.json()["contact"]["phone"] == "+4479460000"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": None}, "type"),
        ({"type": "partner"}, "type"),
        ({"full_name": "  "}, "full_name"),
        ({"email": None}, "email"),
        ({"email": "nope"}, "email"),
        ({"company_id": None}, "company_id"),
        ({"company_id": "abc"}, "company_id"),
        ({"status": 1}, "status"),
        ({"cc_emails": "a@b.co"}, "cc_emails"),
        ({"bcc_emails": ["nope"]}, "bcc_emails"),
        ({"billing": []}, "billing"),
        ({"billing": {"iso_code": "GBR"}}, "billing.iso_code"),
        ({"billing": {"phone": "call me"}}, "billing.phone"),
        ({"billing": {"email": "nope"}}, "email"),
    ],
)
async def test_invalid_create_bodies_are_validation_failed(
    client: httpx.AsyncClient, change: dict[str, object], field: str
) -> None:
    body = {key: value for key, value in {**NEW, **change}.items() if value is not None}

    response = await client.post(LIST, json=body, headers=CLEMTA)

    assert response.status_code == 400
    payload = response.json()
    assert (payload["success"], payload["data"], payload["error"]["code"]) == (False, None, "VALIDATION_FAILED")
    assert field in payload["error"]["details"]


async def test_a_body_that_is_not_a_json_object_is_invalid_request(client: httpx.AsyncClient) -> None:
    for content in (b"{", b"[]"):
        response = await client.post(LIST, content=content, headers=CLEMTA)

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_the_company_id_is_a_24_hex_object_id() -> None:
    assert re.fullmatch(r"[0-9a-f]{24}", CLEMTA_COMPANY_ID)
