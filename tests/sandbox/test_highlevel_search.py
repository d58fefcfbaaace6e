"""HighLevel's contact search (`POST /contacts/search`): what it matches, how it pages, what it refuses, its limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import HIGHLEVEL_LOCATION_ID, sandbox_of
from contacts_mcp.server.sandbox.model import NewContact, Stamped
from tests.sandbox.support import HIGHLEVEL, MakeApp, client_for

pytestmark = pytest.mark.anyio

SEARCH = "/highlevel/contacts/search"


def body(**fields: Any) -> dict[str, Any]:
    return {"locationId": HIGHLEVEL_LOCATION_ID, "pageLimit": 20, **fields}


def add(app: Starlette, *, created_at: int, name: str, email: str, phone: str | None = None) -> str:
    """Add one contact to the app's store; its HighLevel id."""

    def contact(contact_id: int) -> NewContact:
        return NewContact(
            id=contact_id,
            created_at=created_at,
            emails=[Stamped(email, created_at)],
            names=[Stamped(name, created_at)],
            phones=[Stamped(phone, created_at)] if phone else [],
            custom_fields={1: "Quokka Industries"} if "company" in email else {},
        )

    return sandbox_of(app).store.create(contact).highlevel_id


async def test_search_matches_name_email_company_and_phone_in_any_case_newest_first(make_app: MakeApp) -> None:
    app = make_app(contacts=10)
    older = add(app, created_at=1_700_000_000, name="Quentin Quokka", email="qq@example.com")
    newer = add(app, created_at=1_700_000_100, name="Ann Other", email="ann@quokka-mail.example")
    company = add(app, created_at=1_700_000_050, name="Bea Third", email="bea@company.example")
    phoned = add(app, created_at=1_600_000_000, name="Phil Phone", email="p@example.com", phone="+14155550123")

    async with client_for(app) as client:
        by_text = await client.post(SEARCH, json=body(query="QUOKKA"), headers=HIGHLEVEL)
        by_phone = await client.post(SEARCH, json=body(query="415-555-0123"), headers=HIGHLEVEL)
        none = await client.post(SEARCH, json=body(query="no such text xq"), headers=HIGHLEVEL)

    assert by_text.status_code == 200
    assert list(by_text.json()) == ["contacts", "total"]
    assert [contact["id"] for contact in by_text.json()["contacts"]] == [newer, company, older]
    assert by_text.json()["total"] == 3
    assert by_text.json()["contacts"][2]["name"] == "Quentin Quokka"  # the GET shape
    assert [contact["id"] for contact in by_phone.json()["contacts"]] == [phoned]
    assert none.json() == {"contacts": [], "total": 0}


async def test_search_pages_with_page_and_page_limit_and_counts_every_match(make_app: MakeApp) -> None:
    app = make_app(contacts=5)
    ids = [add(app, created_at=1_700_000_000 + n, name=f"Pager {n}", email=f"p{n}@example.com") for n in range(5)]

    async with client_for(app) as client:
        pages = [
            (await client.post(SEARCH, json=body(query="pager", pageLimit=2, page=page), headers=HIGHLEVEL)).json()
            for page in (1, 2, 3)
        ]

    assert [page["total"] for page in pages] == [5, 5, 5]
    assert [contact["id"] for page in pages for contact in page["contacts"]] == ids[::-1]


async def test_without_a_query_every_contact_is_listed(make_app: MakeApp) -> None:
    app = make_app(contacts=7)

    async with client_for(app) as client:
        response = await client.post(SEARCH, json=body(pageLimit=3), headers=HIGHLEVEL)

    assert response.json()["total"] == 7
    assert len(response.json()["contacts"]) == 3


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (body(pageLimit=0), 400),
        (body(pageLimit=501), 400),
        (body(pageLimit="20"), 400),
        ({"locationId": HIGHLEVEL_LOCATION_ID}, 400),
        (body(query="x" * 76), 400),
        (body(page=0), 400),
        (body(page=51, pageLimit=200), 400),
        (body(filters=[{"field": "email", "operator": "exists"}]), 400),
        (body(searchAfter=[1]), 400),
        (body(unknown=1), 400),
        ({"pageLimit": 20}, 400),
        (body(locationId="someoneElsesLocation"), 403),
        ([], 400),
    ],
)
async def test_search_refuses_what_it_cannot_answer_truly(client: httpx.AsyncClient, sent: Any, status: int) -> None:
    response = await client.post(SEARCH, json=sent, headers=HIGHLEVEL)

    assert response.status_code == status
    assert response.json()["statusCode"] == status
    assert isinstance(response.json()["message"], str)


async def test_search_accepts_a_query_of_75_characters_and_empty_filters(client: httpx.AsyncClient) -> None:
    response = await client.post(SEARCH, json=body(query="x" * 75, filters=[], sort=[]), headers=HIGHLEVEL)

    assert response.status_code == 200


async def test_search_spends_the_locations_burst_budget_like_every_other_route(make_app: MakeApp) -> None:
    app = make_app(rate_limits={"highlevel.location": (2, 10.0)})

    async with client_for(app) as client:
        first = await client.post(SEARCH, json=body(), headers=HIGHLEVEL)
        duplicate = await client.get(
            "/highlevel/contacts/search/duplicate",
            params={"locationId": HIGHLEVEL_LOCATION_ID, "email": "a@b.co"},
            headers=HIGHLEVEL,
        )
        refused = await client.post(SEARCH, json=body(), headers=HIGHLEVEL)

    assert (first.status_code, duplicate.status_code, refused.status_code) == (200, 200, 429)
    assert refused.json() == {"statusCode": 429, "message": "Too many requests"}
    assert first.headers["X-RateLimit-Max"] == "2"
    assert "X-RateLimit-Daily-Remaining" in first.headers


async def test_search_needs_the_token_and_the_version(client: httpx.AsyncClient) -> None:
    anonymous = await client.post(SEARCH, json=body())
    unversioned = await client.post(SEARCH, json=body(), headers={"Authorization": HIGHLEVEL["Authorization"]})

    assert (anonymous.status_code, unversioned.status_code) == (401, 400)
