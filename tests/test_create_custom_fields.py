"""create_contact's custom fields: named by Cometly label or slot, HighLevel name, id or key, and refused by Clemta.

Each test asserts what reaches the vendor (the POST body, or that no POST was sent) and what the
created contact shows. Cometly's labels come from the list endpoint (`Space`), HighLevel's names
from the location's definitions (`GET /locations/{locationId}/customFields`).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from mcp import Client

from contacts_mcp.server.app import build_server
from tests.conftest import HIGHLEVEL_LOCATION, make_all_settings, text_of
from tests.contracts.checks import Sent, contracts
from tests.test_custom_fields_tools import Space, server
from tests.test_highlevel import DEFINITIONS, SEED_CONTACT, assert_highlevel_headers, no_duplicate

pytestmark = pytest.mark.anyio

LABELS = {5: "Customer Plan", 6: "plan", 7: "PLAN", 16: "Seats", 26: "Trial Ends"}
"""The Space's labelled slots: "Plan" matches both `plan` and `PLAN` ignoring case, and neither exactly."""
CREATED = {"id": 9001, "emails": ["jane@example.com"], "phones": [], "names": [], "locations": []}
"""Cometly's 201 body before its `custom_fields`."""
TIER: dict[str, Any] = {
    "id": "cf_tier",
    "name": "Customer Tier",
    "fieldKey": "contact.tier_level",
    "dataType": "TEXT",
    "position": 10,
    "model": "contact",
}
"""A HighLevel field whose key (`tier_level`) is not its name, so a key is told from a name."""
FIELDS = {"customFields": [*DEFINITIONS["customFields"], TIER]}


@pytest.fixture
def space(cometly: respx.MockRouter) -> Space:
    space = Space(LABELS)
    cometly.get("/contacts").mock(side_effect=space)
    return space


@pytest.fixture
def posted(cometly: respx.MockRouter) -> respx.Route:
    """Cometly's create, echoing the slots it was sent as its 201 does."""

    def created(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        return httpx.Response(201, json={**CREATED, "custom_fields": sent.get("custom_fields", {})})

    return cometly.post("/contacts").mock(side_effect=created)


async def create_in_cometly(client: Client, custom_fields: dict[str, Any]) -> Any:
    return await client.call_tool("create_contact", {"emails": ["jane@example.com"], "custom_fields": custom_fields})


def sent_slots(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls.last.request.content)["custom_fields"]


# --- Cometly ----------------------------------------------------------------------------------------------------------


NAMED_SLOTS: list[tuple[str, Any, str, Any]] = [
    ("Customer Plan", "Premium", "profile_field_5", "Premium"),
    ("customer plan", "Premium", "profile_field_5", "Premium"),
    ("  CUSTOMER   Plan ", "Premium", "profile_field_5", "Premium"),
    ("plan", "Gold", "profile_field_6", "Gold"),  # exact beats the case-insensitive PLAN
    ("seats", "12", "profile_field_16", 12),
    ("SEATS", 12.5, "profile_field_16", 12.5),
    ("trial ends", "2026-12-01", "profile_field_26", "2026-12-01"),
    ("PROFILE_FIELD_2", 42, "profile_field_2", "42"),
    ("profile_field_17", "3", "profile_field_17", 3),
]
"""How a call names a field and its value, the slot it is posted on, and the value as posted."""


async def test_a_cometly_label_in_any_case_or_a_slot_is_posted_on_its_slot_typed_as_the_slot(
    space: Space, posted: respx.Route
) -> None:
    async with Client(server()) as client:
        for count, (name, value, slot, sent) in enumerate(NAMED_SLOTS, start=1):
            result = await create_in_cometly(client, {name: value})

            assert not result.is_error, (name, text_of(result))
            assert posted.call_count == count
            slots = sent_slots(posted)
            assert slots == {slot: sent}, name
            assert type(slots[slot]) is type(sent), name  # 12 a number, "42" text: never the other


async def test_the_created_cometly_contact_keys_custom_fields_by_label_and_unlabelled_slots_by_slot(
    space: Space, posted: respx.Route
) -> None:
    async with Client(server()) as client:
        result = await create_in_cometly(
            client, {"customer plan": "Premium", "Seats": "12", "TRIAL ENDS": "2026-12-01", "profile_field_2": "x"}
        )

    assert not result.is_error, text_of(result)
    assert sent_slots(posted) == {
        "profile_field_5": "Premium",
        "profile_field_16": 12,
        "profile_field_26": "2026-12-01",
        "profile_field_2": "x",
    }
    assert result.structured_content is not None
    assert result.structured_content["id"] == "9001"
    assert result.structured_content["custom_fields"] == {
        "Customer Plan": "Premium",
        "Seats": 12,
        "Trial Ends": "2026-12-01",
        "profile_field_2": "x",
    }


async def test_an_unknown_cometly_label_lists_the_labels_and_posts_nothing(space: Space, posted: respx.Route) -> None:
    async with Client(server()) as client:
        result = await create_in_cometly(client, {"Plan Tier": "Premium"})

    text = text_of(result)
    assert text.startswith("[validation_error]")
    assert "'Plan Tier'" in text
    assert "'Customer Plan' (profile_field_5)" in text
    assert "'Seats' (profile_field_16)" in text
    assert "describe_custom_fields" in text
    assert posted.call_count == 0


async def test_an_ambiguous_cometly_label_names_each_candidate_slot_and_posts_nothing(
    space: Space, posted: respx.Route
) -> None:
    async with Client(server()) as client:
        result = await create_in_cometly(client, {"Plan": "Gold"})

    text = text_of(result)
    assert text.startswith("[validation_error]")
    assert "ambiguous" in text
    assert "'plan' (profile_field_6)" in text
    assert "'PLAN' (profile_field_7)" in text
    assert posted.call_count == 0


WRONG_TYPES: list[tuple[dict[str, Any], str]] = [
    ({"Seats": "twelve"}, "profile_field_16, a number field"),
    ({"trial ends": "soon"}, "profile_field_26, a date field"),
    ({"Trial Ends": "2026-02-30"}, "not a real date"),
    ({"customer plan": ["Premium", "Gold"]}, "profile_field_5, a text field"),
    ({"profile_field_16": "twelve"}, "profile_field_16 (a number slot)"),
    ({"profile_field_27": "yesterday-ish"}, "profile_field_27 (a date slot)"),
]
"""A value that does not suit its slot, and what the refusal names."""


async def test_a_cometly_value_of_the_wrong_type_for_its_slot_is_a_validation_error_and_posts_nothing(
    space: Space, posted: respx.Route
) -> None:
    async with Client(server()) as client:
        for custom_fields, named in WRONG_TYPES:
            result = await create_in_cometly(client, custom_fields)

            assert text_of(result).startswith("[validation_error]"), text_of(result)
            assert named in text_of(result)
    assert posted.call_count == 0


# --- HighLevel --------------------------------------------------------------------------------------------------------


@pytest.fixture
def definitions(highlevel: respx.MockRouter) -> respx.Route:
    return highlevel.get(f"/locations/{HIGHLEVEL_LOCATION}/customFields").respond(200, json=FIELDS)


@pytest.fixture
def created(highlevel: respx.MockRouter) -> respx.Route:
    """HighLevel's create, answering with the field values it was sent as a contact's `{id, value}` pairs."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content).get("customFields", [])
        values = [{"id": item.get("id"), "value": item.get("field_value")} for item in sent]  # tolerant: asserted apart
        return httpx.Response(
            201, json={"contact": {**SEED_CONTACT, "id": "newContact0000000001", "customFields": values}}
        )

    no_duplicate(highlevel)
    return highlevel.post("/contacts/").mock(side_effect=answer)


async def create_in_highlevel(client: Client, custom_fields: dict[str, Any]) -> Any:
    return await client.call_tool(
        "create_contact", {"emails": ["john@example.com"], "custom_fields": custom_fields, "provider": "highlevel"}
    )


def contract_problems(request: httpx.Request, body: Any) -> list[str]:
    """Where HighLevel's own contract for `POST /contacts/` faults `request` sent with `body` instead of its own."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    sent = Sent("highlevel", "POST", request.url.path, (), headers, json.dumps(body).encode())
    return [violation.at for violation in contracts().check_request(sent)]


async def test_a_highlevel_field_name_in_any_case_id_or_key_is_posted_by_id_as_the_contract_documents(
    definitions: respx.Route, created: respx.Route
) -> None:
    names = ["Customer Tier", "customer tier", "  CUSTOMER   tier ", "cf_tier", "contact.tier_level", "tier_level"]
    async with Client(build_server(make_all_settings())) as client:
        for count, name in enumerate(names, start=1):
            result = await create_in_highlevel(client, {name: "Gold"})

            assert not result.is_error, (name, text_of(result))
            assert created.call_count == count
            request = created.calls.last.request
            assert_highlevel_headers(request)
            body = json.loads(request.content)
            assert body["customFields"] == [{"id": "cf_tier", "field_value": "Gold"}], name
            # CreateContactDto's field schemas take `id`, `key` and `field_value`; `value` is what a read shows.
            assert contract_problems(request, body) == []
            assert contract_problems(request, {**body, "customFields": [{"id": "cf_tier", "value": "Gold"}]}) != []
    assert definitions.call_count == 1  # read once, then reused


async def test_the_created_highlevel_contact_keys_custom_fields_by_name_and_sends_numbers_as_text(
    definitions: respx.Route, created: respx.Route
) -> None:
    async with Client(build_server(make_all_settings())) as client:
        result = await create_in_highlevel(client, {"contact.tier_level": "Gold", "SEATS": 12, "plan": "Enterprise"})

    assert not result.is_error, text_of(result)
    body = json.loads(created.calls.last.request.content)
    assert body["customFields"] == [
        {"id": "cf_tier", "field_value": "Gold"},
        {"id": "cf_seats", "field_value": "12"},  # text: every field type's schema takes a string
        {"id": "cf_abc123", "field_value": "Enterprise"},
    ]
    assert contract_problems(created.calls.last.request, body) == []
    assert result.structured_content is not None
    assert result.structured_content["id"] == "newContact0000000001"
    assert result.structured_content["custom_fields"] == {"Customer Tier": "Gold", "Seats": "12", "Plan": "Enterprise"}


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"Tier": "Gold"}, "no custom field named 'Tier'"),
    ({"contact.tier": "Gold"}, "no custom field named 'contact.tier'"),
    ({"Seats": "a dozen"}, "must be a number"),
]
"""A HighLevel custom field that names no field, or a value that does not suit its field, and what is said."""


async def test_an_unknown_highlevel_field_or_a_bad_value_is_refused_listing_the_fields_and_posts_nothing(
    definitions: respx.Route, created: respx.Route
) -> None:
    async with Client(build_server(make_all_settings())) as client:
        for custom_fields, named in REFUSED:
            result = await create_in_highlevel(client, custom_fields)

            text = text_of(result)
            assert text.startswith("[validation_error]"), text
            assert named in text
            if "no custom field" in named:
                assert "'Customer Tier' (contact.tier_level)" in text
                assert "'Plan' (contact.plan)" in text
    assert created.call_count == 0


# --- Clemta -----------------------------------------------------------------------------------------------------------


async def test_clemta_refuses_custom_fields_saying_who_takes_them_and_sends_nothing(clemta: respx.MockRouter) -> None:
    async with Client(build_server(make_all_settings())) as client:
        result = await client.call_tool(
            "create_contact",
            {
                "emails": ["jane@example.com"],
                "names": ["Jane Doe"],
                "custom_fields": {"Customer Plan": "Premium"},
                "provider": "clemta",
            },
        )

    text = text_of(result)
    assert text.startswith("[validation_error]")
    assert "custom_fields (Cometly and HighLevel only)" in text
    assert "leave it out" in text
    assert clemta.calls.call_count == 0
