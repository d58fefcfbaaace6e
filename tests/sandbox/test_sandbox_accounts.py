"""A sandbox serving several accounts: each its own data, timezone, key and location or company.

The default accounts answer exactly as in a sandbox without further ones.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from mcp import Client
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import (
    CLEMTA_COMPANY_ID,
    HIGHLEVEL_LOCATION_ID,
    SANDBOX_KEYS,
    Faults,
    SandboxAccount,
    ServedAccount,
    create_app,
    extra_accounts,
    sandbox_accounts,
    sandbox_of,
)
from tests.conftest import sandboxed_server
from tests.sandbox.support import (
    CLEMTA,
    COMETLY,
    CONTACTS_PATH,
    COUNT,
    EVERYTHING,
    HIGHLEVEL,
    NOW,
    SEED,
    UNLIMITED,
    client_for,
)

pytestmark = pytest.mark.anyio

ROOT = "http://sandbox"
SEARCH = "/highlevel/contacts/search"


def close(app: Starlette) -> None:
    """Close every account's database (the lifespan would, but in-process clients never run it)."""
    for account in sandbox_accounts(app):
        sandbox_of(app, account.name).store.close()


@pytest.fixture(scope="module")
def app() -> Generator[Starlette]:
    """The standard default data, plus one more Space, location and company (`extra_accounts(1)`)."""
    made = create_app(contacts=COUNT, seed=SEED, now=NOW, rate_limits=UNLIMITED, accounts=extra_accounts(1))
    yield made
    close(made)


@pytest.fixture
async def http(app: Starlette) -> AsyncGenerator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


def account(app: Starlette, name: str) -> ServedAccount:
    return next(item for item in sandbox_accounts(app) if item.name == name)


def cometly_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def highlevel_key(key: str) -> dict[str, str]:
    return {**HIGHLEVEL, "Authorization": f"Bearer {key}"}


async def cometly_ids(http: httpx.AsyncClient, key: str) -> list[int]:
    response = await http.get(CONTACTS_PATH, params={**EVERYTHING, "per_page": 5000}, headers=cometly_key(key))
    assert response.status_code == 200
    return [item["id"] for item in response.json()["data"]]


async def test_the_default_accounts_answer_as_without_further_accounts(http: httpx.AsyncClient) -> None:
    plain = create_app(contacts=COUNT, seed=SEED, now=NOW, rate_limits=UNLIMITED)
    try:
        async with client_for(plain) as alone:
            for path, params, headers in (
                (CONTACTS_PATH, {**EVERYTHING, "per_page": 5000, "include_custom_fields": 1}, COMETLY),
                (f"{CONTACTS_PATH}/10001", {"include_events": 1}, COMETLY),
                ("/clemta/contacts", {"company_id": CLEMTA_COMPANY_ID, "limit": 100}, CLEMTA),
            ):
                mine, theirs = (
                    (await alone.get(path, params=params, headers=headers)),
                    await http.get(path, params=params, headers=headers),
                )
                assert (mine.status_code, mine.content) == (theirs.status_code, theirs.content)
            body = {"locationId": HIGHLEVEL_LOCATION_ID, "pageLimit": 500}
            mine, theirs = (
                await alone.post(SEARCH, json=body, headers=HIGHLEVEL),
                await http.post(SEARCH, json=body, headers=HIGHLEVEL),
            )
            assert mine.content == theirs.content
    finally:
        sandbox_of(plain).store.close()


async def test_the_default_space_keeps_its_first_contact_and_count(http: httpx.AsyncClient) -> None:
    ids = await cometly_ids(http, SANDBOX_KEYS["cometly"])
    assert (min(ids), len(ids)) == (10001, COUNT)
    first = (await http.get(f"{CONTACTS_PATH}/10001", headers=COMETLY)).json()
    assert first["names"][0]["name"] == "Ashley Harris"
    assert [item["email"] for item in first["emails"]] == [
        "harris.ashley@soylent.example",
        "ashley_harris@soylent.example",
    ]


async def test_two_cometly_spaces_answer_their_own_contacts_for_their_keys(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    other = account(app, "cometly-2")
    default_ids, other_ids = await cometly_ids(http, SANDBOX_KEYS["cometly"]), await cometly_ids(http, other.key)
    assert len(other_ids) == 300
    assert not set(default_ids) & set(other_ids)
    assert min(other_ids) == other.first_id
    assert (await http.get(f"{CONTACTS_PATH}/{other.first_id}", headers=cometly_key(other.key))).status_code == 200
    assert (await http.get(f"{CONTACTS_PATH}/{other.first_id}", headers=COMETLY)).status_code == 404
    assert (await http.get(f"{CONTACTS_PATH}/10001", headers=cometly_key(other.key))).status_code == 404


async def test_an_unknown_key_is_still_refused_with_401(http: httpx.AsyncClient) -> None:
    response = await http.get(CONTACTS_PATH, params=EVERYTHING, headers=cometly_key("sbx-cm-not-a-key-at-all"))
    assert (response.status_code, response.json()) == (401, {"message": "Unauthenticated."})


async def test_two_highlevel_locations_answer_their_own_contacts_and_not_each_others(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    other = account(app, "highlevel-2")
    assert other.location_id is not None
    assert other.location_id != HIGHLEVEL_LOCATION_ID
    ours = await http.post(SEARCH, json={"locationId": HIGHLEVEL_LOCATION_ID, "pageLimit": 500}, headers=HIGHLEVEL)
    theirs = await http.post(
        SEARCH, json={"locationId": other.location_id, "pageLimit": 500}, headers=highlevel_key(other.key)
    )
    assert (ours.json()["total"], theirs.json()["total"]) == (COUNT, 300)
    assert {item["locationId"] for item in theirs.json()["contacts"]} == {other.location_id}
    ours_ids = {item["id"] for item in ours.json()["contacts"]}
    theirs_ids = {item["id"] for item in theirs.json()["contacts"]}
    assert not ours_ids & theirs_ids
    one_of_theirs = theirs.json()["contacts"][0]["id"]
    found = await http.get(f"/highlevel/contacts/{one_of_theirs}", headers=highlevel_key(other.key))
    assert found.status_code == 200
    assert (await http.get(f"/highlevel/contacts/{one_of_theirs}", headers=HIGHLEVEL)).status_code == 404
    # A token used on another location's id gets what the sandbox answers for any foreign location.
    foreign = await http.post(SEARCH, json={"locationId": other.location_id, "pageLimit": 1}, headers=HIGHLEVEL)
    assert foreign.status_code == 403
    fields = await http.get(f"/highlevel/locations/{other.location_id}/customFields", headers=highlevel_key(other.key))
    assert {item["locationId"] for item in fields.json()["customFields"]} == {other.location_id}


async def test_two_clemta_companies_answer_their_own_contacts(app: Starlette, http: httpx.AsyncClient) -> None:
    other = account(app, "clemta-2")
    headers = {"X-API-Key": other.key}
    theirs = await http.get("/clemta/contacts", params={"company_id": other.company_id, "limit": 1}, headers=headers)
    assert theirs.json()["data"]["total"] == 300
    foreign = await http.get("/clemta/contacts", params={"company_id": CLEMTA_COMPANY_ID, "limit": 1}, headers=headers)
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "COMPANY_NOT_FOUND")
    contact_id = theirs.json()["data"]["contacts"][0]["id"]
    assert (await http.get(f"/clemta/contacts/{contact_id}", headers=headers)).status_code == 200
    assert (await http.get(f"/clemta/contacts/{contact_id}", headers=CLEMTA)).status_code == 404


async def test_a_space_reads_its_list_dates_in_its_own_timezone(app: Starlette, http: httpx.AsyncClient) -> None:
    accounts = {f"{item.provider}:{item.name}": item for item in sandbox_accounts(app)}
    other = accounts["cometly:cometly-2"]
    assert (accounts["cometly:default"].timezone, other.timezone) == ("UTC", "America/New_York")
    assert accounts["highlevel:highlevel-2"].timezone != accounts["highlevel:default"].timezone
    row = sandbox_of(app, other.name).store.contact(other.first_id)
    assert row is not None
    created = datetime.fromtimestamp(row.created_at, UTC)
    offset = created.astimezone(ZoneInfo(other.timezone)).utcoffset()
    assert offset is not None

    def around(moment: datetime) -> dict[str, str]:
        return {
            "start_date": (moment - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S"),
            "end_date": (moment + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S"),
        }

    in_its_zone = await http.get(CONTACTS_PATH, params=around(created + offset), headers=cometly_key(other.key))
    in_utc = await http.get(CONTACTS_PATH, params=around(created), headers=cometly_key(other.key))
    assert [item["id"] for item in in_its_zone.json()["data"]] == [other.first_id]
    assert other.first_id not in [item["id"] for item in in_utc.json()["data"]]


async def test_a_fault_on_one_account_leaves_the_others_answering(app: Starlette, http: httpx.AsyncClient) -> None:
    space, location = account(app, "cometly-2"), account(app, "highlevel-2")
    plan = sandbox_of(app).faults
    try:
        plan.set(Faults(kinds=("503",), account=space.name))
        assert (await http.get(f"{CONTACTS_PATH}/{space.first_id}", headers=cometly_key(space.key))).status_code == 503
        assert (await http.get(f"{CONTACTS_PATH}/10001", headers=COMETLY)).status_code == 200
        assert location.location_id is not None
        plan.set(Faults(kinds=("500",), account=location.location_id))
        body = {"locationId": location.location_id, "pageLimit": 1}
        assert (await http.post(SEARCH, json=body, headers=highlevel_key(location.key))).status_code == 500
        body = {"locationId": HIGHLEVEL_LOCATION_ID, "pageLimit": 1}
        assert (await http.post(SEARCH, json=body, headers=HIGHLEVEL)).status_code == 200
        assert (await http.get(f"{CONTACTS_PATH}/{space.first_id}", headers=cometly_key(space.key))).status_code == 200
    finally:
        plan.clear()


async def test_the_control_route_targets_an_account_and_shows_no_account_when_none_is_targeted(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    space = account(app, "cometly-2")
    try:
        assert "account" not in (await http.get("/_sandbox/faults")).json()
        set_ = await http.post("/_sandbox/faults", json={"kinds": ["500"], "account": space.key})
        assert set_.json()["account"] == space.key
        assert (await http.get(f"{CONTACTS_PATH}/10001", headers=COMETLY)).status_code == 200
        assert (await http.get(f"{CONTACTS_PATH}/{space.first_id}", headers=cometly_key(space.key))).status_code == 500
    finally:
        sandbox_of(app).faults.clear()


async def test_rate_limits_count_per_account_key() -> None:
    limited = create_app(
        contacts=5, seed=SEED, now=NOW, rate_limits={"cometly.get_contact": (1, 60.0)}, accounts=extra_accounts(1)
    )
    try:
        space = account(limited, "cometly-2")
        async with client_for(limited) as http:
            assert (await http.get(f"{CONTACTS_PATH}/10001", headers=COMETLY)).status_code == 200
            assert (await http.get(f"{CONTACTS_PATH}/10001", headers=COMETLY)).status_code == 429
            theirs = await http.get(f"{CONTACTS_PATH}/{space.first_id}", headers=cometly_key(space.key))
            assert (theirs.status_code, theirs.headers["X-RateLimit-Remaining"]) == (200, "0")
    finally:
        close(limited)


async def test_the_real_provider_reaches_a_further_account_through_its_settings(app: Starlette) -> None:
    space = account(app, "cometly-2")
    async with Client(sandboxed_server(app, cometly=space.settings(ROOT))) as client:
        result = await client.call_tool("get_contact", {"contact_id": str(space.first_id)})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["id"] == str(space.first_id)


@pytest.mark.parametrize(
    ("accounts", "problem"),
    [
        ([SandboxAccount(name="default", provider="cometly")], "taken"),
        ([SandboxAccount(name="a", provider="cometly"), SandboxAccount(name="a", provider="highlevel")], "taken"),
        ([SandboxAccount(name="has space", provider="cometly")], "letters, digits"),
        ([SandboxAccount(name="a", provider="cometly", timezone="Mars/Olympus")], "unknown timezone"),
    ],
)
def test_accounts_that_cannot_be_served_are_refused(accounts: list[SandboxAccount], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        create_app(contacts=1, now=NOW, accounts=accounts)


async def test_a_clemta_partner_key_opens_each_of_its_companies_by_company_id() -> None:
    shared = create_app(
        contacts=5,
        seed=SEED,
        now=NOW,
        rate_limits={"clemta.api_key": (4, 60.0)},
        accounts=[SandboxAccount(name="second-co", provider="clemta", contacts=7, key=SANDBOX_KEYS["clemta"])],
    )
    try:
        second = account(shared, "second-co")
        assert second.key == SANDBOX_KEYS["clemta"]
        async with client_for(shared) as http:
            listed = await http.get("/clemta/contacts", params={"company_id": second.company_id}, headers=CLEMTA)
            assert listed.json()["data"]["total"] == 7
            contact_id = listed.json()["data"]["contacts"][0]["id"]
            assert (await http.get(f"/clemta/contacts/{contact_id}", headers=CLEMTA)).status_code == 200
            body = {
                "type": "customer",
                "full_name": "New Co",
                "email": "new@example.com",
                "company_id": second.company_id,
            }
            created = await http.post("/clemta/contacts", json=body, headers=CLEMTA)
            assert created.status_code == 200
            assert sandbox_of(shared, second.name).store.contact_by_clemta_id(created.json()["data"]["id"]) is not None
            # One key, one budget: the fourth request of the key is its last, whichever company it is for.
            default = await http.get("/clemta/contacts", params={"company_id": CLEMTA_COMPANY_ID}, headers=CLEMTA)
            assert (default.json()["data"]["total"], default.headers["X-RateLimit-Remaining"]) == (5, "0")
    finally:
        close(shared)
