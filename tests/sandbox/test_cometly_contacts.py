"""Cometly's get and create endpoints: shapes, caps, flags, merged profiles and validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contacts_mcp.server.sandbox import COMETLY_INACTIVE_KEY, SANDBOX_KEYS
from contacts_mcp.server.sandbox.generator import LABELS
from contacts_mcp.server.sandbox.model import NewContact
from tests.sandbox.support import COMETLY, CONTACTS_PATH, NOW, MakeApp, client_for

pytestmark = pytest.mark.anyio

STAMPED = {"emails": "email", "phones": "phone", "names": "name", "locations": "location"}
CONVERSION_FIELDS = [
    "type",
    "id",
    "event_name",
    "amount",
    "event_time_utc",
    "event_url",
    "order_id",
    "order_name",
    "channel",
]
TOUCHPOINT_FIELDS = [
    "type",
    "event_time_utc",
    "source",
    "touchpoint_url",
    "referrer_url",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "account_id",
    "account_name",
]
HIT_FIELDS = [
    "event_url",
    "referrer_host",
    "source",
    "country",
    "device_type",
    "browser",
    "os",
    "event_name",
    "event_time_utc",
]


async def _get(client: httpx.AsyncClient, contact_id: int | str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{CONTACTS_PATH}/{contact_id}", params=params, headers=COMETLY)
    assert response.status_code == 200, response.text
    return response.json()


def _heavy(dataset: list[NewContact]) -> NewContact:
    return max(dataset, key=lambda contact: len(contact.emails))


def _with_events(dataset: list[NewContact]) -> NewContact:
    return next(
        contact
        for contact in dataset
        if {event.kind for event in contact.events} == {"conversion", "touchpoint"}
        and any(event.is_direct for event in contact.events)
        and any(event.channel == "server" for event in contact.events)
    )


async def test_get_returns_the_contact_unwrapped_with_all_thirty_custom_fields(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    contact = dataset[0]

    body = await _get(client, contact.id)

    assert list(body) == ["id", "emails", "phones", "names", "locations", "custom_fields"]
    assert body["id"] == contact.id
    assert body["emails"][-1]["email"] == contact.emails[0].value
    assert list(body["custom_fields"]) == [f"profile_field_{slot}" for slot in range(1, 31)]
    for slot in range(1, 31):
        value = contact.custom_fields.get(slot)
        assert body["custom_fields"][f"profile_field_{slot}"] == value


async def test_collections_are_objects_most_recent_first(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    contact = next(c for c in dataset if len(c.names) > 1)

    body = await _get(client, contact.id)

    for plural, key in STAMPED.items():
        for item in body[plural]:
            assert list(item) == [key, "created_at"]
        stamps = [item["created_at"] for item in body[plural]]
        assert stamps == sorted(stamps, reverse=True)
    assert body["names"][0]["name"] == contact.names[-1].value
    assert body["names"][0]["created_at"].endswith(".000000Z")


async def test_arrays_tokens_and_browsing_hits_are_capped(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    heavy = _heavy(dataset)

    body = await _get(client, heavy.id, include_comet_tokens=1, include_browsing_session_data=1)

    assert len(heavy.emails) > 25
    assert len(body["emails"]) == 25
    assert len(body["comet_tokens"]) == 5
    assert len(body["browsing_session_hits"]) == 1000
    assert list(body["comet_tokens"][0]) == ["comet_token", "created_at"]
    assert list(body["browsing_session_hits"][0]) == HIT_FIELDS
    hit_times = [hit["event_time_utc"] for hit in body["browsing_session_hits"]]
    assert hit_times == sorted(hit_times, reverse=True)
    newest_token = max(heavy.comet_tokens, key=lambda token: token.created_at)
    assert body["comet_tokens"][0]["comet_token"] == newest_token.value


async def test_events_hide_direct_touchpoints_unless_asked(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    contact = _with_events(dataset)

    hidden = await _get(client, contact.id, include_events=1)
    shown = await _get(client, contact.id, include_events="1", hide_direct_touchpoints="false")

    direct = [event for event in contact.events if event.is_direct]
    assert len(hidden["events"]) == len(contact.events) - len(direct)
    assert len(shown["events"]) == len(contact.events)
    assert all(event["source"] != "direct" for event in hidden["events"] if event["type"] == "touchpoint")
    times = [event["event_time_utc"] for event in shown["events"]]
    assert times == sorted(times, reverse=True)


async def test_events_carry_exactly_the_documented_fields(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    contact = _with_events(dataset)

    body = await _get(client, contact.id, include_events=1, hide_direct_touchpoints=0)

    for event in body["events"]:
        if event["type"] == "touchpoint":
            assert list(event) == TOUCHPOINT_FIELDS
        elif event["channel"] == "server":
            assert list(event) == [*CONVERSION_FIELDS, "integration"]
            assert event["integration"] in {"Shopify", "Stripe", "WooCommerce"}
        else:
            assert list(event) == CONVERSION_FIELDS
    paid = [e for e in body["events"] if e["type"] == "touchpoint" and e["source"] in {"facebook", "google", "tiktok"}]
    organic = [e for e in body["events"] if e["type"] == "touchpoint" and e["ad_id"] is None]
    assert all(e["campaign_name"] or e["ad_id"] is None for e in paid)
    assert all(e["account_id"] is None and e["campaign_name"] is None for e in organic)


async def test_labels_replace_the_keys_of_labelled_slots(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    body = await _get(client, dataset[0].id, use_custom_field_labels=1)

    expected = [LABELS.get(slot, f"profile_field_{slot}") for slot in range(1, 31)]
    assert list(body["custom_fields"]) == expected
    assert "profile_field_4" in body["custom_fields"]


async def test_whole_numbers_come_back_as_integers(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    contact = next(c for c in dataset if c.custom_fields.get(16) and c.custom_fields.get(17))

    body = await _get(client, contact.id)

    assert body["custom_fields"]["profile_field_16"] == int(contact.custom_fields[16] or 0)
    assert isinstance(body["custom_fields"]["profile_field_16"], int)
    assert body["custom_fields"]["profile_field_17"] == contact.custom_fields[17]


async def test_a_merged_profile_id_answers_with_the_contact_it_was_merged_into(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    survivor = next(contact for contact in dataset if contact.merged_ids)

    body = await _get(client, survivor.merged_ids[0])

    assert body["id"] == survivor.id


@pytest.mark.parametrize("contact_id", ["abc", "1.5", "-1", "1e3", "١٢"])
async def test_a_non_integer_id_is_a_422(client: httpx.AsyncClient, contact_id: str) -> None:
    response = await client.get(f"{CONTACTS_PATH}/{contact_id}", headers=COMETLY)

    assert response.status_code == 422
    assert response.json() == {"message": "Invalid contact ID provided"}


@pytest.mark.parametrize("contact_id", ["1", "999999", "99999999999999999999999", "9" * 5000], ids=len)
async def test_an_unknown_id_is_a_404(client: httpx.AsyncClient, contact_id: str) -> None:
    response = await client.get(f"{CONTACTS_PATH}/{contact_id}", headers=COMETLY)

    assert response.status_code == 404
    assert response.json() == {"message": "Contact not found."}


@pytest.mark.parametrize("flag", ["include_events", "hide_direct_touchpoints", "use_custom_field_labels"])
async def test_a_flag_that_is_not_boolean_is_a_422(
    client: httpx.AsyncClient, dataset: list[NewContact], flag: str
) -> None:
    response = await client.get(f"{CONTACTS_PATH}/{dataset[0].id}", params={flag: "2"}, headers=COMETLY)

    assert response.status_code == 422
    assert list(response.json()["errors"]) == [flag]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": SANDBOX_KEYS["cometly"]}], ids=str
)
async def test_get_without_the_key_is_a_401(
    client: httpx.AsyncClient, dataset: list[NewContact], headers: dict[str, str]
) -> None:
    response = await client.get(f"{CONTACTS_PATH}/{dataset[0].id}", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}


async def test_the_inactive_subscription_key_is_refused_with_a_403(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    response = await client.get(
        f"{CONTACTS_PATH}/{dataset[0].id}", headers={"Authorization": f"Bearer {COMETLY_INACTIVE_KEY}"}
    )

    assert response.status_code == 403
    assert response.json() == {"message": "Your subscription is inactive."}
    assert "X-RateLimit-Remaining" in response.headers


async def test_create_then_get_returns_the_new_contact(make_app: MakeApp) -> None:
    app = make_app()
    payload = {
        "emails": ["ada@example.com", "ada.lovelace@example.org"],
        "phones": ["+442071234567"],
        "names": ["Ada Lovelace", "Countess of Lovelace"],
        "locations": ["London, United Kingdom"],
        "custom_fields": {
            "profile_field_1": "Analytical Engines",
            "profile_field_16": "500",
            "profile_field_26": "2026-04-01",
        },
    }
    async with client_for(app) as client:
        created = await client.post(CONTACTS_PATH, json=payload, headers=COMETLY)
        fetched = await _get(client, created.json()["id"])
        listed = await client.get(
            CONTACTS_PATH,
            params={"start_date": "2026-03-15 11:59:59", "end_date": "2026-03-16 00:00:00"},
            headers=COMETLY,
        )

    assert created.status_code == 201
    body = created.json()
    assert list(body) == ["id", "emails", "phones", "names", "locations", "custom_fields"]
    assert [item["email"] for item in body["emails"]] == payload["emails"]
    assert body["emails"][0]["created_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert body["custom_fields"] == {
        "profile_field_1": "Analytical Engines",
        "profile_field_16": 500,
        "profile_field_26": "2026-04-01 00:00:00",
    }
    for plural in STAMPED:
        assert fetched[plural] == body[plural]
    assert fetched["custom_fields"]["profile_field_16"] == 500
    assert listed.json()["data"] == [
        {
            "id": body["id"],
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "phone": "+442071234567",
            "location": "London, United Kingdom",
        }
    ]


async def test_created_contacts_take_the_ids_after_the_highest_one_in_use(
    make_app: MakeApp, dataset: list[NewContact]
) -> None:
    app = make_app(contacts=len(dataset))
    async with client_for(app) as client:
        first = await client.post(CONTACTS_PATH, json={"emails": ["a@example.com"]}, headers=COMETLY)
        second = await client.post(CONTACTS_PATH, json={"emails": ["b@example.com"]}, headers=COMETLY)

    highest = max(max([contact.id, *contact.merged_ids]) for contact in dataset)
    assert [first.json()["id"], second.json()["id"]] == [highest + 1, highest + 2]


async def test_create_without_custom_fields_leaves_the_key_out_and_trims_strings(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        response = await client.post(
            CONTACTS_PATH, json={"emails": ["  grace@example.com "], "names": [" Grace Hopper "]}, headers=COMETLY
        )

    body = response.json()
    assert response.status_code == 201
    assert "custom_fields" not in body
    assert body["emails"][0]["email"] == "grace@example.com"
    assert body["names"][0]["name"] == "Grace Hopper"
    assert body["phones"] == []


def _bad(name: str, key: str, body: Any) -> Any:
    return pytest.param(body, key, id=name)


OK = {"emails": ["ok@example.com"]}
INVALID_BODIES = [
    _bad("empty object", "emails", {}),
    _bad("not an object", "emails", ["ok@example.com"]),
    _bad("no emails", "emails", {"emails": []}),
    _bad("emails not a list", "emails", {"emails": "ok@example.com"}),
    _bad("invalid email", "emails.1", {"emails": ["ok@example.com", "not-an-email"]}),
    _bad("email without domain", "emails.0", {"emails": ["someone@"]}),
    _bad("blank email", "emails.0", {"emails": ["  "]}),
    _bad("email not a string", "emails.0", {"emails": [42]}),
    _bad("phones not a list", "phones", {**OK, "phones": "+15551234567"}),
    _bad("phone not a string", "phones.0", {**OK, "phones": [15551234567]}),
    _bad("blank name", "names.0", {**OK, "names": [""]}),
    _bad("long location", "locations.0", {**OK, "locations": ["x" * 256]}),
    _bad("custom fields not an object", "custom_fields", {**OK, "custom_fields": "Premium"}),
    _bad("unknown custom field key", "custom_fields", {**OK, "custom_fields": {"plan": "Premium"}}),
    _bad("slot 31", "custom_fields", {**OK, "custom_fields": {"profile_field_31": "x"}}),
    _bad("text too long", "custom_fields.profile_field_1", {**OK, "custom_fields": {"profile_field_1": "x" * 10_241}}),
    _bad("text not a string", "custom_fields.profile_field_2", {**OK, "custom_fields": {"profile_field_2": 7}}),
    _bad("number not numeric", "custom_fields.profile_field_16", {**OK, "custom_fields": {"profile_field_16": "many"}}),
    _bad("number a boolean", "custom_fields.profile_field_17", {**OK, "custom_fields": {"profile_field_17": True}}),
    _bad(
        "date malformed", "custom_fields.profile_field_26", {**OK, "custom_fields": {"profile_field_26": "01/04/2026"}}
    ),
    _bad(
        "date impossible", "custom_fields.profile_field_27", {**OK, "custom_fields": {"profile_field_27": "2026-02-30"}}
    ),
]


@pytest.mark.parametrize(("body", "key"), INVALID_BODIES)
async def test_invalid_create_bodies_are_422_with_the_field_named(make_app: MakeApp, body: Any, key: str) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        response = await client.post(CONTACTS_PATH, json=body, headers=COMETLY)

    assert response.status_code == 422
    assert key in response.json()["errors"]


async def test_a_body_that_is_not_json_reads_as_empty_input(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        response = await client.post(CONTACTS_PATH, content=b"{not json", headers=COMETLY)

    assert response.status_code == 422
    required = "The emails field is required."
    assert response.json() == {"message": required, "errors": {"emails": [required]}}


async def test_a_long_text_field_at_the_limit_is_accepted(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        body = {**OK, "custom_fields": {"profile_field_1": "x" * 10_240, "profile_field_17": 12.5}}
        response = await client.post(CONTACTS_PATH, json=body, headers=COMETLY)

    assert response.status_code == 201
    assert response.json()["custom_fields"]["profile_field_17"] == 12.5


async def test_create_requires_the_key(make_app: MakeApp) -> None:
    app = make_app(contacts=0)
    async with client_for(app) as client:
        response = await client.post(CONTACTS_PATH, json=OK)

    assert response.status_code == 401
