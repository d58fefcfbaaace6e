"""Rate limits: headers on every answer, each vendor's 429, and the sliding window itself."""

from __future__ import annotations

import anyio
import httpx
import pytest

from contacts_mcp.server.sandbox import DEFAULT_RATE_LIMITS, HIGHLEVEL_LOCATION_ID, create_app
from contacts_mcp.server.sandbox.ratelimit import SlidingWindowLimiter
from tests.sandbox.support import CLEMTA, COMETLY, CONTACTS_PATH, EVERYTHING, HIGHLEVEL, MakeApp, client_for

pytestmark = pytest.mark.anyio

UNKNOWN_CLEMTA = "/clemta/contacts/64b8f1a2e4b0c8d9f0123456"


async def test_every_answer_carries_its_vendors_rate_limit_headers(client: httpx.AsyncClient) -> None:
    cometly = [
        await client.get(f"{CONTACTS_PATH}/10001", headers=COMETLY),
        await client.get(f"{CONTACTS_PATH}/1", headers=COMETLY),
        await client.get(f"{CONTACTS_PATH}/abc", headers=COMETLY),
        await client.get(CONTACTS_PATH, params={"per_page": 0}, headers=COMETLY),
        await client.get(CONTACTS_PATH, params=EVERYTHING),
    ]
    highlevel = [
        await client.get("/highlevel/contacts/unknown", headers=HIGHLEVEL),
        await client.get("/highlevel/contacts/unknown"),
    ]
    clemta = [await client.get(UNKNOWN_CLEMTA, headers=CLEMTA), await client.get(UNKNOWN_CLEMTA)]

    statuses = [response.status_code for response in (*cometly, *highlevel, *clemta)]
    assert statuses == [200, 404, 422, 422, 401, 404, 401, 404, 401]
    for response in (*cometly, *clemta):
        assert int(response.headers["X-RateLimit-Limit"]) > 0
        assert int(response.headers["X-RateLimit-Remaining"]) >= 0
    for response in highlevel:  # HighLevel documents X-RateLimit-Max, not -Limit
        assert "X-RateLimit-Limit" not in response.headers
        assert int(response.headers["X-RateLimit-Max"]) > 0
        assert int(response.headers["X-RateLimit-Remaining"]) >= 0
    for response in clemta:
        assert response.headers["X-RateLimit-Type"] == "api_key"
        assert response.headers["X-RateLimit-API"].endswith("requests per minute")
        assert int(response.headers["X-RateLimit-Reset"]) > 1_000_000_000


async def test_remaining_counts_down_per_key_and_endpoint(make_app: MakeApp) -> None:
    app = make_app(rate_limits=DEFAULT_RATE_LIMITS)
    async with client_for(app) as client:
        gets = [await client.get(f"{CONTACTS_PATH}/10001", headers=COMETLY) for _ in range(3)]
        listed = await client.get(CONTACTS_PATH, params=EVERYTHING, headers=COMETLY)

    assert [response.headers["X-RateLimit-Remaining"] for response in gets] == ["29", "28", "27"]
    assert gets[0].headers["X-RateLimit-Limit"] == "30"
    assert listed.headers["X-RateLimit-Limit"] == "15"
    assert listed.headers["X-RateLimit-Remaining"] == "14"


async def test_cometly_answers_429_with_retry_after_once_the_window_is_full(make_app: MakeApp) -> None:
    app = make_app(rate_limits={"cometly.get_contact": (2, 60.0)})
    async with client_for(app) as client:
        with anyio.fail_after(10):
            responses = [await client.get(f"{CONTACTS_PATH}/10001", headers=COMETLY) for _ in range(3)]
            listed = await client.get(CONTACTS_PATH, params=EVERYTHING, headers=COMETLY)

    assert [response.status_code for response in responses] == [200, 200, 429]
    refused = responses[2]
    assert refused.json() == {"message": "Too Many Attempts."}
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 59 <= int(refused.headers["Retry-After"]) <= 60
    assert listed.status_code == 200


async def test_highlevel_and_clemta_answer_429_in_their_own_shapes(make_app: MakeApp) -> None:
    app = make_app(rate_limits={"highlevel.location": (1, 10.0), "clemta.api_key": (1, 60.0)})
    async with client_for(app) as client:
        highlevel_allowed = await client.get("/highlevel/contacts/unknown", headers=HIGHLEVEL)
        clemta_allowed = await client.get(UNKNOWN_CLEMTA, headers=CLEMTA)
        highlevel = await client.get("/highlevel/contacts/unknown", headers=HIGHLEVEL)
        clemta = await client.get(UNKNOWN_CLEMTA, headers=CLEMTA)

    assert (highlevel_allowed.status_code, clemta_allowed.status_code) == (404, 404)

    assert highlevel.status_code == 429
    assert highlevel.json() == {"statusCode": 429, "message": "Too many requests"}
    assert "Retry-After" not in highlevel.headers  # HighLevel documents none: its interval header says how long
    assert highlevel.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert clemta.status_code == 429
    assert clemta.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert clemta.json()["success"] is False
    assert "Retry-After" in clemta.headers


async def test_requests_without_a_valid_key_do_not_spend_the_keys_budget(make_app: MakeApp) -> None:
    app = make_app(rate_limits={"cometly.get_contact": (2, 60.0)})
    async with client_for(app) as client:
        anonymous = [await client.get(f"{CONTACTS_PATH}/10001") for _ in range(4)]
        keyed = [await client.get(f"{CONTACTS_PATH}/10001", headers=COMETLY) for _ in range(2)]

    assert [response.status_code for response in anonymous] == [401, 401, 429, 429]
    assert [response.status_code for response in keyed] == [200, 200]


def test_the_window_slides_and_retry_after_rounds_up() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter({"x": (2, 10.0)}, clock=lambda: now[0])

    first = limiter.hit("x", "key")
    now[0] = 4.0
    second = limiter.hit("x", "key")
    now[0] = 9.5
    refused = limiter.hit("x", "key")
    other_client = limiter.hit("x", "other")
    now[0] = 10.0
    after_first_expires = limiter.hit("x", "key")

    assert (first.allowed, first.remaining) == (True, 1)
    assert (second.allowed, second.remaining) == (True, 0)
    assert (refused.allowed, refused.remaining, refused.retry_after) == (False, 0, 1)
    assert other_client.allowed
    assert (after_first_expires.allowed, after_first_expires.remaining) == (True, 0)
    assert limiter.hit("x", "key").retry_after == 4


def test_rate_limit_overrides_must_name_known_endpoints_and_allow_requests() -> None:
    with pytest.raises(ValueError, match="unknown rate limit"):
        create_app(contacts=0, rate_limits={"cometly.delete_contact": (1, 1.0)})
    with pytest.raises(ValueError, match="at least 1 request"):
        create_app(contacts=0, rate_limits={"cometly.get_contact": (0, 60.0)})


@pytest.mark.parametrize(
    ("name", "budget"),
    [
        ("highlevel.location", (100, 10.0)),
        ("highlevel.daily", (200_000, 86_400.0)),
        ("clemta.api_key", (100, 60.0)),
    ],
)
def test_the_vendors_count_where_they_say(name: str, budget: tuple[int, float]) -> None:
    assert DEFAULT_RATE_LIMITS[name] == budget


async def test_highlevel_answers_carry_the_daily_headers_shared_by_every_route(make_app: MakeApp) -> None:
    app = make_app(rate_limits=DEFAULT_RATE_LIMITS)
    duplicate = f"/highlevel/contacts/search/duplicate?locationId={HIGHLEVEL_LOCATION_ID}&email=a%40b.co"
    async with client_for(app) as client:
        got = await client.get("/highlevel/contacts/unknown", headers=HIGHLEVEL)
        found = await client.get(duplicate, headers=HIGHLEVEL)
        created = await client.post("/highlevel/contacts/", json={"locationId": "x"}, headers=HIGHLEVEL)

    assert [response.status_code for response in (got, found, created)] == [404, 200, 403]
    for response in (got, found, created):
        assert response.headers["X-RateLimit-Limit-Daily"] == "200000"
        assert response.headers["X-RateLimit-Max"] == "100"
        assert response.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert [response.headers["X-RateLimit-Daily-Remaining"] for response in (got, found, created)] == [
        "199999",
        "199998",
        "199997",
    ]
    # One burst budget for every route of the location, as HighLevel counts.
    assert [response.headers["X-RateLimit-Remaining"] for response in (got, found, created)] == ["99", "98", "97"]


async def test_the_highlevel_day_budget_refuses_with_429_once_spent(make_app: MakeApp) -> None:
    app = make_app(rate_limits={"highlevel.daily": (2, 86_400.0), "highlevel.location": (5, 10.0)})
    async with client_for(app) as client:
        first = await client.get("/highlevel/contacts/unknown", headers=HIGHLEVEL)
        second = await client.get(
            f"/highlevel/contacts/search/duplicate?locationId={HIGHLEVEL_LOCATION_ID}&email=a%40b.co",
            headers=HIGHLEVEL,
        )
        day_refused = await client.post("/highlevel/contacts/", json={}, headers=HIGHLEVEL)

    assert [r.status_code for r in (first, second, day_refused)] == [404, 200, 429]
    assert day_refused.json() == {"statusCode": 429, "message": "Too many requests"}
    assert day_refused.headers["X-RateLimit-Daily-Remaining"] == "0"
    assert day_refused.headers["X-RateLimit-Remaining"] == "2"  # the burst budget had room: the day refused it


async def test_every_clemta_route_spends_the_keys_one_budget(make_app: MakeApp) -> None:
    app = make_app(rate_limits={"clemta.api_key": (2, 60.0)})
    async with client_for(app) as client:
        listed = await client.get("/clemta/contacts", params={"company_id": "x"}, headers=CLEMTA)
        created = await client.post("/clemta/contacts", json={}, headers=CLEMTA)
        got = await client.get(UNKNOWN_CLEMTA, headers=CLEMTA)

    assert [response.status_code for response in (listed, created, got)] == [400, 400, 429]
    assert got.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert created.headers["X-RateLimit-Limit"] == "2"
    assert created.headers["X-RateLimit-Remaining"] == "0"
