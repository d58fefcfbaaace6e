"""Custom fields by label: discovery, the describe tool and resource, resolution, and refresh on a 422."""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
import respx
from mcp import Client
from starlette.applications import Starlette

from contacts_mcp.server.app import ContactsServer, build_server
from contacts_mcp.server.index.base import Entry
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.providers.cometly_fields import MORE_SAMPLE_SIZE, SAMPLE_SIZE
from contacts_mcp.server.sandbox import create_app, sandbox_of, sandbox_settings
from contacts_mcp.server.sandbox.generator import LABELS
from contacts_mcp.server.settings import CometlySettings, Rate
from contacts_mcp.tools.models import CustomFields
from tests.conftest import COMETLY_KEY, COMETLY_URL, HIGHLEVEL_LOCATION, make_all_settings, make_settings, text_of
from tests.sandbox.support import NOW as SANDBOX_NOW
from tests.sandbox.support import UNLIMITED
from tests.shuffle_support import ShuffledKeys, shuffled
from tests.test_highlevel import DEFINITIONS as HIGHLEVEL_DEFINITIONS
from tests.test_highlevel import SEED_CONTACT as HIGHLEVEL_CONTACT

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
RANGE = {"start_date": "2026-11-01", "end_date": "2026-11-23"}
GENEROUS = {"cometly.list_contacts": (Rate(1_000, 60.0),)}


def value(slot: int, contact_id: int) -> str | float:
    """What a slot holds on a contact: a value of its type that no other slot holds."""
    if slot == 5 and contact_id == 7:
        return "Premium"
    if slot <= 15:
        return f"s{slot} c{contact_id}"
    if slot <= 25:
        return float(slot * 100 + contact_id)
    return f"2026-{slot - 25:02d}-{contact_id:02d} 00:00:00"


class Space:
    """A Cometly Space's list endpoint: labelled slots, three contacts, and Cometly's 422 for unlabelled filters.

    Every answer comes with the keys of its objects in a new order, as nothing in Cometly's docs rules out.
    """

    def __init__(self, labels: dict[int, str], *, empty: Collection[int] = ()) -> None:
        self.labels = labels
        self.empty = empty
        """Slots no contact has a value in."""
        self.requests: list[dict[str, str]] = []
        self.rng = random.Random(7)

    def item(self, contact_id: int, *, labelled: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": contact_id,
            "email": f"c{contact_id}@example.com",
            "name": "A",
            "phone": None,
            "location": None,
        }
        for slot in range(1, 31):
            key = self.labels.get(slot, f"profile_field_{slot}") if labelled else f"profile_field_{slot}"
            item[key] = None if slot in self.empty else value(slot, contact_id)
        return item

    def discoveries(self) -> list[dict[str, str]]:
        return [
            request
            for request in self.requests
            if request.get("per_page") in (str(SAMPLE_SIZE), str(MORE_SAMPLE_SIZE))
            and "custom_field_filters[0][field]" not in request
        ]

    def filters(self) -> list[dict[str, str]]:
        return [request for request in self.requests if "custom_field_filters[0][field]" in request]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(httpx.QueryParams(request.url.query).multi_items())
        self.requests.append(query)
        for index in range(10):
            field = query.get(f"custom_field_filters[{index}][field]")
            if field is not None and int(field.removeprefix("profile_field_")) not in self.labels:
                message = f"The custom_field_filters.{index}.field refers to {field}, which has no label in this space."
                return httpx.Response(
                    422, json={"message": message, "errors": {f"custom_field_filters.{index}.field": [message]}}
                )
        labelled = query.get("use_custom_field_labels") == "1" and query.get("include_custom_fields") == "1"
        ids = (9, 8, 7)
        if query.get("include_custom_fields") == "1":
            data = [self.item(contact_id, labelled=labelled) for contact_id in ids]
        else:
            data = [{"id": contact_id} for contact_id in ids]
        return httpx.Response(200, json=shuffled({"data": data, "next_cursor": None}, self.rng))


def server(**overrides: Any) -> Any:
    return build_server(make_settings(rate_limits=GENEROUS, **overrides), clock=lambda: NOW)


@pytest.fixture
def space(cometly: respx.MockRouter) -> Space:
    space = Space({1: "Company", 5: "Customer Plan", 6: "plan", 7: "PLAN", 16: "Seats", 26: "Trial Ends"})
    cometly.get("/contacts").mock(side_effect=space)
    return space


def condition(field: str, operator: str = "equal_to", **rest: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, **(rest if rest else {"value": "Premium"})}


async def test_describe_custom_fields_reads_labels_from_the_list_endpoint_raw_and_labelled(space: Space) -> None:
    async with Client(server()) as client:
        result = await client.call_tool("describe_custom_fields", {})

    assert not result.is_error, text_of(result)
    described = result.structured_content
    assert described is not None
    assert [(field["slot"], field["label"], field["type"]) for field in described["fields"]] == [
        ("profile_field_1", "Company", "text"),
        ("profile_field_5", "Customer Plan", "text"),
        ("profile_field_6", "plan", "text"),
        ("profile_field_7", "PLAN", "text"),
        ("profile_field_16", "Seats", "number"),
        ("profile_field_26", "Trial Ends", "date"),
    ]
    assert list(described["operators"]) == ["text", "number", "date"]
    assert described["operators"]["number"][:3] == ["equal_to", "not_equal_to", "greater_than"]
    assert described["filterable"] is True
    assert described["checked_at"] == "2026-11-23T15:00:00Z"  # by the server's clock
    assert described.get("unresolved", []) == []
    # Two requests, the same but for the label flag: the sample without labels, and with them.
    assert space.requests == [
        {
            "start_date": "2026-10-24 15:00:00",  # the last 30 days first, by the server's clock
            "end_date": "2026-11-23 15:00:00",
            "per_page": str(SAMPLE_SIZE),
            "include_custom_fields": "1",
            "use_custom_field_labels": flag,
        }
        for flag in ("1", "0")
    ]


async def test_labels_are_read_once_and_reused_until_refresh(space: Space) -> None:
    async with Client(server()) as client:
        await client.call_tool("describe_custom_fields", {})
        await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition("Customer Plan")]})
        await client.call_tool("describe_custom_fields", {})
        assert len(space.discoveries()) == 2
        await client.call_tool("describe_custom_fields", {"refresh": True})

    assert len(space.discoveries()) == 4


async def test_the_custom_fields_resource_lists_every_provider(space: Space) -> None:
    async with Client(server()) as client:
        listed = await client.list_resources()
        read = await client.read_resource("contacts://custom-fields")

    assert [str(resource.uri) for resource in listed.resources] == ["contacts://custom-fields"]
    [content] = read.contents
    providers = json.loads(getattr(content, "text"))  # noqa: B009 - TextResourceContents
    assert [entry["provider"] for entry in providers] == ["cometly"]
    assert [field["label"] for field in providers[0]["fields"]][:2] == ["Company", "Customer Plan"]


@pytest.mark.parametrize(
    ("field", "slot"),
    [
        ("Customer Plan", "profile_field_5"),
        ("customer plan", "profile_field_5"),
        ("  CUSTOMER   plan ", "profile_field_5"),
        ("plan", "profile_field_6"),  # exact beats the case-insensitive matches PLAN and plan
        ("PROFILE_FIELD_1", "profile_field_1"),
    ],
)
async def test_a_condition_names_a_field_by_label_in_any_case_or_by_slot(space: Space, field: str, slot: str) -> None:
    async with Client(server()) as client:
        result = await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition(field)]})

    assert not result.is_error, text_of(result)
    [sent] = space.filters()
    assert sent["custom_field_filters[0][field]"] == slot
    assert result.structured_content is not None
    [applied] = result.structured_content["filters"]
    assert applied["field"] == slot


async def test_a_slot_given_as_such_spends_no_request_on_labels(space: Space) -> None:
    async with Client(server()) as client:
        result = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [condition("profile_field_5")]}
        )

    assert not result.is_error, text_of(result)
    assert space.discoveries() == []
    assert len(space.requests) == 1


async def test_an_unknown_label_lists_the_labelled_fields_and_sends_no_filter(space: Space) -> None:
    async with Client(server()) as client:
        result = await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition("Plan Tier")]})

    assert result.is_error
    text = text_of(result)
    assert text.startswith("[validation_error]")
    assert "'Customer Plan' (profile_field_5)" in text
    assert "'Seats' (profile_field_16)" in text
    assert "describe_custom_fields" in text
    assert space.filters() == []


async def test_an_ambiguous_label_names_each_candidate_slot(cometly: respx.MockRouter) -> None:
    space = Space({5: "Plan", 9: "PLAN"})
    cometly.get("/contacts").mock(side_effect=space)

    async with Client(server()) as client:
        result = await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition("plan")]})

    assert result.is_error
    assert text_of(result).startswith("[validation_error]")
    assert "profile_field_5" in text_of(result)
    assert "profile_field_9" in text_of(result)
    assert space.filters() == []


async def test_a_label_of_a_number_field_checks_the_value_as_a_number(space: Space) -> None:
    async with Client(server()) as client:
        bad = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [{"field": "seats", "operator": "contains", "value": 3}]}
        )
        good = await client.call_tool(
            "filter_by_custom_field",
            {**RANGE, "conditions": [{"field": "seats", "operator": "greater_than", "value": "3"}]},
        )

    assert bad.is_error
    assert text_of(bad).startswith("[validation_error]")
    assert "profile_field_16" in text_of(bad)
    assert not good.is_error, text_of(good)
    [sent] = space.filters()
    assert sent["custom_field_filters[0][value]"] == "3"


async def test_a_422_on_a_slot_that_lost_its_label_refreshes_and_resends_where_the_label_moved(
    cometly: respx.MockRouter,
) -> None:
    space = Space({5: "Customer Plan"})
    cometly.get("/contacts").mock(side_effect=space)

    async with Client(server()) as client:
        await client.call_tool("describe_custom_fields", {})
        space.labels = {8: "Customer Plan"}  # someone moved the label in Cometly's settings
        result = await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition("Customer Plan")]})

    assert not result.is_error, text_of(result)
    assert [sent["custom_field_filters[0][field]"] for sent in space.filters()] == [
        "profile_field_5",
        "profile_field_8",
    ]
    assert len(space.discoveries()) == 4  # the first read, and the refresh after the 422
    assert result.structured_content is not None
    assert result.structured_content["filters"] == [
        {"field": "profile_field_8", "label": "Customer Plan", "operator": "equal_to", "value": "Premium"}
    ]


async def test_a_422_on_an_unlabelled_slot_refreshes_and_says_which_fields_can_be_filtered(space: Space) -> None:
    async with Client(server()) as client:
        result = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [condition("profile_field_9")]}
        )

    assert result.is_error
    text = text_of(result)
    assert text.startswith("[validation_error]")
    assert "profile_field_9" in text
    assert "'Customer Plan' (profile_field_5)" in text
    assert len(space.filters()) == 1  # not sent again: nothing changed
    assert len(space.discoveries()) == 2


async def test_without_any_contact_labels_are_unknown_and_slots_still_work(cometly: respx.MockRouter) -> None:
    route = cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})

    async with Client(server()) as client:
        described = await client.call_tool("describe_custom_fields", {})
        by_label = await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition("Plan")]})

    assert described.structured_content is not None
    assert described.structured_content.get("fields") in (None, [])
    assert "no contact" in described.structured_content["note"]
    assert by_label.is_error
    assert "profile_field" in text_of(by_label)
    assert route.call_count == 3  # three widening ranges, labelled only, once: the empty answer is cached


async def test_date_words_resolve_on_the_spaces_date_not_the_utc_one(space: Space) -> None:
    cometly = CometlySettings(api_key=COMETLY_KEY, base_url=COMETLY_URL, timezone="America/New_York")  # pyright: ignore[reportArgumentType]
    late_sunday = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # Monday in UTC, still Sunday 22:00 in New York
    conditions = [
        {"field": "Trial Ends", "operator": "between", "start": "last month", "end": "last month"},
        {"field": "profile_field_26", "operator": "greater_than", "value": "last week"},
    ]
    settings = make_settings(rate_limits=GENEROUS, cometly=cometly)

    async with Client(build_server(settings, clock=lambda: late_sunday)) as client:
        result = await client.call_tool(
            "filter_by_custom_field", {"start_date": "last 7 days", "conditions": conditions}
        )

    assert not result.is_error, text_of(result)
    [sent] = space.filters()
    assert sent["custom_field_filters[0][start]"] == "2026-10-01"
    assert sent["custom_field_filters[0][end]"] == "2026-10-31"
    assert sent["custom_field_filters[1][value]"] == "2026-11-15"  # after last week, which ended Sunday the 15th
    assert sent["start_date"] == "2026-11-16 00:00:00"
    assert sent["end_date"] == "2026-11-22 23:59:59"
    assert result.structured_content is not None
    assert result.structured_content["range"] == {
        "start": "2026-11-16T00:00:00-05:00",
        "end": "2026-11-22T23:59:59-05:00",
        "timezone": "America/New_York",
        "today": "2026-11-22",
    }


async def test_equal_to_a_period_longer_than_a_day_asks_for_between(space: Space) -> None:
    async with Client(server()) as client:
        result = await client.call_tool(
            "filter_by_custom_field",
            {**RANGE, "conditions": [{"field": "Trial Ends", "operator": "equal_to", "value": "last week"}]},
        )

    assert result.is_error
    assert text_of(result).startswith("[validation_error]")
    assert "between" in text_of(result)
    assert space.filters() == []


async def test_server_info_reports_providers_timezone_and_what_each_budget_has_left(space: Space) -> None:
    async with Client(server()) as client:
        await client.call_tool("list_contacts", RANGE)
        result = await client.call_tool("server_info", {})

    assert not result.is_error, text_of(result)
    info = result.structured_content
    assert info is not None
    assert info["providers"] == [
        {
            "name": "cometly",
            "tools": [
                "create_contact",
                "filter_by_custom_field",
                "find_contact",
                "get_contact",
                "list_contacts",
                "update_contact",
            ],
            "timezone": "UTC",
        }
    ]
    assert "index" not in info  # the index is off in tests: no section, not an empty one
    budgets = {budget["name"]: budget for budget in info["budgets"]}
    assert budgets["cometly.list_contacts"]["remaining"] == 999
    assert budgets["cometly.get_contact"] == {
        "name": "cometly.get_contact",
        "limits": "15 requests per 60 s",  # the lower of Cometly's two figures, until its headers say otherwise
        "remaining": 15,
    }
    assert info["read_only"] is False
    assert info["max_result_tokens"] == 20_000
    assert COMETLY_KEY not in text_of(result)


async def test_server_info_keeps_to_its_schema_when_the_allow_list_leaves_a_provider_no_tools() -> None:
    from tests.conftest import make_all_settings

    async with Client(build_server(make_all_settings(tools=["server_info", "list_contacts"]))) as client:
        result = await client.call_tool("server_info", {})

    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert [provider.get("tools", []) for provider in result.structured_content["providers"]] == [
        ["list_contacts"],
        [],
        ["list_contacts"],
    ]


async def test_422s_re_read_the_labels_at_most_once_a_minute(space: Space) -> None:
    bad = {**RANGE, "conditions": [condition("profile_field_9")]}

    async with Client(server()) as client:
        first = await client.call_tool("filter_by_custom_field", bad)
        second = await client.call_tool("filter_by_custom_field", bad)

    assert text_of(first).startswith("[validation_error]")
    assert text_of(second).startswith("[validation_error]")
    assert "'Customer Plan' (profile_field_5)" in text_of(second)  # from the labels read after the first
    assert len(space.filters()) == 2
    assert len(space.discoveries()) == 2


async def test_a_failed_re_read_after_a_422_still_answers_the_422(cometly: respx.MockRouter) -> None:
    space = Space({5: "Customer Plan"})

    def busy_for_discovery(request: httpx.Request) -> httpx.Response:
        if httpx.QueryParams(request.url.query).get("per_page") == str(SAMPLE_SIZE):
            return httpx.Response(429, headers={"Retry-After": "3600"}, json={"message": "Too Many Attempts."})
        return space(request)

    cometly.get("/contacts").mock(side_effect=busy_for_discovery)

    async with Client(server()) as client:
        result = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [condition("profile_field_9")]}
        )

    assert text_of(result).startswith("[validation_error]")
    assert "profile_field_9" in text_of(result)


async def test_a_failed_resource_read_says_why_without_the_key(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts").respond(401, json={"message": f"Invalid API key {COMETLY_KEY}"})

    async with Client(server()) as client:
        with pytest.raises(Exception) as failed:  # noqa: PT011 - whatever the client raises for a resource error
            await client.read_resource("contacts://custom-fields")

    assert "[authentication_error]" in str(failed.value)
    assert COMETLY_KEY not in str(failed.value)
    assert "[redacted]" in str(failed.value)


# --- Labels paired by value, whatever the order of the keys ---------------------------------------------------------


@pytest.fixture
def tied(cometly: respx.MockRouter) -> Space:
    """A Space whose labelled slots 7 and 8 are empty on every contact, so their values cannot tell them apart."""
    space = Space({5: "Customer Plan", 7: "Notes", 8: "Referral Code", 16: "Seats"}, empty={7, 8})
    cometly.get("/contacts").mock(side_effect=space)
    return space


async def test_describe_custom_fields_lists_labels_it_cannot_tie_to_one_slot_apart(tied: Space) -> None:
    async with Client(server()) as client:
        result = await client.call_tool("describe_custom_fields", {})

    assert not result.is_error, text_of(result)
    described = result.structured_content
    assert described is not None
    assert [(field["slot"], field["label"]) for field in described["fields"]] == [
        ("profile_field_5", "Customer Plan"),
        ("profile_field_16", "Seats"),
    ]
    assert described["unresolved"] == [
        {"label": "Notes", "candidates": ["profile_field_7", "profile_field_8"], "reason": "tie"},
        {"label": "Referral Code", "candidates": ["profile_field_7", "profile_field_8"], "reason": "tie"},
    ]
    assert "'Notes' (profile_field_7 or profile_field_8)" in described["note"]
    # The tie spent one more pair of requests, over the widest range and a larger sample, then stopped.
    assert [(sent["start_date"], sent["per_page"], sent["use_custom_field_labels"]) for sent in tied.requests] == [
        ("2026-10-24 15:00:00", str(SAMPLE_SIZE), "1"),
        ("2026-10-24 15:00:00", str(SAMPLE_SIZE), "0"),
        ("2000-01-01 00:00:00", str(MORE_SAMPLE_SIZE), "1"),
        ("2000-01-01 00:00:00", str(MORE_SAMPLE_SIZE), "0"),
    ]


async def test_filtering_by_a_tied_label_fails_loudly_and_sends_no_filter(tied: Space) -> None:
    async with Client(server()) as client:
        result = await client.call_tool("filter_by_custom_field", {**RANGE, "conditions": [condition("notes")]})

    assert result.is_error
    text = text_of(result)
    assert text.startswith("[upstream_unavailable]")
    assert "'Notes'" in text
    assert "profile_field_7" in text
    assert "profile_field_8" in text
    assert "slot" in text
    assert tied.filters() == []


async def test_a_tied_labels_slot_and_the_pinned_labels_still_filter(tied: Space) -> None:
    async with Client(server()) as client:
        by_slot = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [condition("profile_field_7")]}
        )
        by_label = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [condition("Customer Plan")]}
        )

    assert not by_slot.is_error, text_of(by_slot)
    assert not by_label.is_error, text_of(by_label)
    assert [sent["custom_field_filters[0][field]"] for sent in tied.filters()] == ["profile_field_7", "profile_field_5"]


async def test_a_label_whose_values_agree_with_no_slot_fails_loudly(cometly: respx.MockRouter) -> None:
    space = Space({5: "Customer Plan", 16: "Seats"})

    def edited_between(request: httpx.Request) -> httpx.Response:
        response = space(request)
        if httpx.QueryParams(request.url.query).get("use_custom_field_labels") == "1":
            body = json.loads(response.content)
            body["data"][0]["Seats"] = 1.5  # the contact changed between the two requests
            return httpx.Response(200, json=body)
        return response

    cometly.get("/contacts").mock(side_effect=edited_between)

    async with Client(server()) as client:
        described = await client.call_tool("describe_custom_fields", {})
        result = await client.call_tool(
            "filter_by_custom_field", {**RANGE, "conditions": [{"field": "Seats", "operator": "any"}]}
        )

    assert described.structured_content is not None
    assert described.structured_content["unresolved"] == [
        {"label": "Seats", "candidates": ["profile_field_16"], "reason": "mismatch"}
    ]
    assert text_of(result).startswith("[upstream_unavailable]")
    assert "profile_field_16" in text_of(result)
    assert space.filters() == []


@pytest.fixture
def shuffling_sandbox() -> Iterator[ShuffledKeys]:
    """The sandbox behind `ShuffledKeys`: every JSON answer with its keys in a new order at every level."""
    app = create_app(contacts=300, now=SANDBOX_NOW, rate_limits=UNLIMITED)
    yield ShuffledKeys(app, seed=20261123)
    sandbox_of(app).store.close()


def shuffled_server(upstream: ShuffledKeys) -> ContactsServer:
    settings = make_settings(**{**sandbox_settings("http://sandbox"), "rate_limits": GENEROUS})
    return build_server(
        settings, transport=lambda: httpx.ASGITransport(app=upstream), sandbox=True, clock=lambda: SANDBOX_NOW
    )


SANDBOX_RANGE = {"start_date": "2025-01-01", "end_date": "2026-03-15"}


async def test_labels_resolve_right_when_every_answer_shuffles_its_keys(shuffling_sandbox: ShuffledKeys) -> None:
    async with Client(shuffled_server(shuffling_sandbox)) as client:
        for refresh in (False, True, True):  # each discovery reads newly shuffled answers
            result = await client.call_tool("describe_custom_fields", {"refresh": refresh})
            assert not result.is_error, text_of(result)
            assert result.structured_content is not None
            assert [(field["slot"], field["label"]) for field in result.structured_content["fields"]] == [
                (f"profile_field_{slot}", label) for slot, label in sorted(LABELS.items())
            ]
            assert result.structured_content.get("unresolved", []) == []

    assert shuffling_sandbox.answers == 6


@pytest.mark.parametrize(
    ("label", "slot", "operator", "operands"),
    [
        ("Customer Plan", "profile_field_5", "equal_to", {"value": "Premium"}),
        ("Lead Source", "profile_field_2", "any", {}),
        ("Seats", "profile_field_16", "greater_than", {"value": 20}),
        ("Lifetime Value", "profile_field_17", "less_than", {"value": 1000}),
        ("Renewal Date", "profile_field_27", "between", {"start": "2026-01-01", "end": "2026-12-31"}),
    ],
)
async def test_filtering_by_label_finds_what_filtering_by_slot_finds_when_keys_are_shuffled(
    shuffling_sandbox: ShuffledKeys, label: str, slot: str, operator: str, operands: dict[str, Any]
) -> None:
    def ask(field: str) -> dict[str, Any]:
        return {
            **SANDBOX_RANGE,
            "max_results": 1000,
            "conditions": [{"field": field, "operator": operator, **operands}],
        }

    async with Client(shuffled_server(shuffling_sandbox)) as client:
        by_label = await client.call_tool("filter_by_custom_field", ask(label))
        by_slot = await client.call_tool("filter_by_custom_field", ask(slot))

    assert not by_label.is_error, text_of(by_label)
    assert not by_slot.is_error, text_of(by_slot)
    assert by_label.structured_content is not None
    assert by_slot.structured_content is not None
    found = [contact["id"] for contact in by_label.structured_content["contacts"]]
    assert found
    assert found == [contact["id"] for contact in by_slot.structured_content["contacts"]]
    assert by_label.structured_content["filters"][0]["field"] == slot
    assert all(label in contact["custom_fields"] for contact in by_label.structured_content["contacts"])


async def test_a_label_equal_to_a_key_of_the_contact_is_never_paired_and_the_rest_still_are(
    shuffling_sandbox: ShuffledKeys,
) -> None:
    store = sandbox_of(cast(Starlette, shuffling_sandbox.app)).store
    store.labels = {**store.labels, 4: "email"}  # slot 4's label overwrites each item's own email

    async with Client(shuffled_server(shuffling_sandbox)) as client:
        described = await client.call_tool("describe_custom_fields", {})
        by_label = await client.call_tool(
            "filter_by_custom_field", {**SANDBOX_RANGE, "conditions": [{"field": "email", "operator": "any"}]}
        )

    assert described.structured_content is not None
    assert [field["label"] for field in described.structured_content["fields"]] == [
        label for _, label in sorted(LABELS.items())
    ]
    assert "profile_field_4" in described.structured_content["note"]
    assert text_of(by_label).startswith("[validation_error]")
    assert "profile_field_4" in text_of(by_label)  # the slot whose label could not be read


# --- One shape for every provider, values to match, and results keyed by label ------------------------------------


ALL_LIMITS = {
    "cometly.list_contacts": (Rate(1_000, 60.0),),
    "cometly.get_contact": (Rate(1_000, 60.0),),
}


@pytest.fixture
def sandbox_app() -> Iterator[Starlette]:
    app = create_app(contacts=120, now=SANDBOX_NOW, rate_limits=UNLIMITED)
    yield app
    sandbox_of(app).store.close()


def whole_sandbox(app: Starlette, **overrides: Any) -> ContactsServer:
    """Every provider against the sandbox `app`, at its pinned clock."""
    settings = make_settings(**{**sandbox_settings("http://sandbox"), "rate_limits": ALL_LIMITS, **overrides})
    return build_server(
        settings, transport=lambda: httpx.ASGITransport(app=app), sandbox=True, clock=lambda: SANDBOX_NOW
    )


async def test_describe_custom_fields_lists_fields_one_way_for_every_provider(sandbox_app: Starlette) -> None:
    async with Client(whole_sandbox(sandbox_app)) as client:
        described = {
            provider: await client.call_tool("describe_custom_fields", {"provider": provider})
            for provider in ("cometly", "highlevel", "clemta")
        }

    for provider, result in described.items():
        assert not result.is_error, text_of(result)
        found = CustomFields.model_validate(result.structured_content)
        assert found.provider == provider
        assert found.note
        for field in found.fields:
            assert field.slot
            assert field.label
            assert field.type is not None
    cometly = CustomFields.model_validate(described["cometly"].structured_content)
    highlevel = CustomFields.model_validate(described["highlevel"].structured_content)
    clemta = CustomFields.model_validate(described["clemta"].structured_content)
    assert [field.label for field in cometly.fields] == [label for _, label in sorted(LABELS.items())]
    assert {field.label for field in highlevel.fields} <= set(LABELS.values())
    assert clemta.fields == []
    assert clemta.note is not None
    assert "no custom fields" in clemta.note


async def test_the_sandboxs_lead_sources_are_listed_as_values_in_use_and_its_many_companies_are_not(
    sandbox_app: Starlette,
) -> None:
    async with Client(whole_sandbox(sandbox_app)) as client:
        result = await client.call_tool("describe_custom_fields", {})

    found = CustomFields.model_validate(result.structured_content)
    fields = {field.label: field for field in found.fields}
    lead = fields["Lead Source"]
    assert lead.values_from == "in_use"
    assert lead.values is not None
    assert "TikTok Ads" in lead.values
    assert lead.values == sorted(lead.values, key=str.casefold)
    assert fields["Company"].values is None  # 28 companies in use: more than 20
    assert not [value for field in found.fields for value in field.values or [] if "@" in value]
    assert found.sampled is not None
    assert found.sampled > 0


class Valued:
    """A Space whose text slots hold few values (Lead Source), one per contact (Work Email) or few but rare (Tier)."""

    def __init__(self, contacts: int) -> None:
        self.contacts = contacts
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        labelled = httpx.QueryParams(request.url.query).get("use_custom_field_labels") == "1"
        sources = ("Facebook Ads", "Google Ads", "TikTok Ads")
        data: list[dict[str, Any]] = []
        for number in range(1, self.contacts + 1):
            slots: dict[str, Any] = {
                "profile_field_1": sources[number % 3],
                "profile_field_2": f"person{number}@example.com",
                "profile_field_3": "Gold" if number <= 2 else None,
            }
            names = {"profile_field_1": "Lead Source", "profile_field_2": "Work Email", "profile_field_3": "Tier"}
            item: dict[str, Any] = {"id": number, "email": f"c{number}@example.com"}
            item.update({names[slot] if labelled else slot: value for slot, value in slots.items()})
            data.append(item)
        return httpx.Response(200, json={"data": data, "next_cursor": None})


async def test_values_in_use_are_listed_for_a_few_valued_text_field_only_at_no_extra_request(
    cometly: respx.MockRouter,
) -> None:
    space = Valued(contacts=12)
    cometly.get("/contacts").mock(side_effect=space)

    async with Client(server()) as client:
        result = await client.call_tool("describe_custom_fields", {})

    assert not result.is_error, text_of(result)
    found = CustomFields.model_validate(result.structured_content)
    fields = {field.label: field for field in found.fields}
    assert fields["Lead Source"].values == ["Facebook Ads", "Google Ads", "TikTok Ads"]
    assert fields["Work Email"].values is None  # one value per contact: personal data
    assert fields["Tier"].values is None  # 1 value on 2 contacts: fewer than 3 contacts per value
    assert found.sampled == 12
    assert space.requests == 2  # the two requests discovery sends anyway


async def test_values_in_use_need_three_contacts_per_distinct_value(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts").mock(side_effect=Valued(contacts=8))  # 3 sources on 8 contacts: under 9

    async with Client(server()) as client:
        result = await client.call_tool("describe_custom_fields", {})

    found = CustomFields.model_validate(result.structured_content)
    assert all(field.values is None for field in found.fields)


def cometly_keys(contacts: list[dict[str, Any]]) -> set[str]:
    return {key for contact in contacts for key in contact.get("custom_fields", {})}


LABELLED_OR_UNLABELLED = {*LABELS.values(), "profile_field_4", "profile_field_18"}
"""The keys a sandbox contact's custom fields may show: its labels, and the two slots that have none."""


async def test_cometly_list_get_and_find_results_key_custom_fields_by_label(sandbox_app: Starlette) -> None:
    async with Client(whole_sandbox(sandbox_app)) as client:
        listed = await client.call_tool(
            "list_contacts", {**SANDBOX_RANGE, "per_page": 50, "include_custom_fields": True}
        )
        assert listed.structured_content is not None
        contacts = listed.structured_content["contacts"]
        first = contacts[0]
        got = await client.call_tool("get_contact", {"contact_id": first["id"]})
        found = await client.call_tool("find_contact", {"email": first["emails"][0]})
        raw = await client.call_tool("get_contact", {"contact_id": first["id"], "use_custom_field_labels": False})

    assert cometly_keys(contacts) <= LABELLED_OR_UNLABELLED
    assert cometly_keys(contacts) & set(LABELS.values())
    assert got.structured_content is not None
    assert set(got.structured_content["custom_fields"]) <= LABELLED_OR_UNLABELLED
    assert found.structured_content is not None
    assert cometly_keys(found.structured_content["contacts"]) <= LABELLED_OR_UNLABELLED
    assert found.structured_content["contacts"][0]["custom_fields"] == got.structured_content["custom_fields"]
    assert raw.structured_content is not None
    assert all(key.startswith("profile_field_") for key in raw.structured_content["custom_fields"])


async def test_an_index_entry_shows_custom_fields_by_the_labels_discovered_and_keeps_unpinned_slots(
    sandbox_app: Starlette,
) -> None:
    server = whole_sandbox(sandbox_app)
    entry = Entry(
        id="10001", custom_fields={"profile_field_2": "Webinar", "profile_field_4": "x", "profile_field_9": 1}
    )
    async with Client(server) as client, server.state.hold() as state:
        cometly = state.providers["cometly"]
        assert isinstance(cometly, Cometly)
        before = cometly.contact_of(entry)  # nothing discovered yet: slots, and no request for it
        await client.call_tool("describe_custom_fields", {})
        after = cometly.contact_of(entry)

    assert before.custom_fields == entry.custom_fields
    assert after.custom_fields == {"Lead Source": "Webinar", "profile_field_4": "x", "profile_field_9": 1}


async def test_highlevel_results_key_custom_fields_by_definition_name_and_an_unknown_id_stays_the_id(
    highlevel: respx.MockRouter,
) -> None:
    highlevel.get(f"/locations/{HIGHLEVEL_LOCATION}/customFields").respond(200, json=HIGHLEVEL_DEFINITIONS)
    contact = {
        **HIGHLEVEL_CONTACT,
        "customFields": [{"id": "cf_abc123", "value": "Enterprise"}, {"id": "cf_gone", "value": "kept"}],
    }
    highlevel.get(f"/contacts/{contact['id']}").respond(200, json={"contact": contact})
    highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": contact})
    highlevel.post("/contacts/search").respond(200, json={"contacts": [contact], "total": 1})

    async with Client(build_server(make_all_settings(rate_limits=GENEROUS))) as client:
        got = await client.call_tool("get_contact", {"contact_id": contact["id"], "provider": "highlevel"})
        by_email = await client.call_tool("find_contact", {"email": contact["email"], "provider": "highlevel"})
        by_name = await client.call_tool("find_contact", {"name": "John", "provider": "highlevel"})
        by_id = await client.call_tool(
            "get_contact", {"contact_id": contact["id"], "provider": "highlevel", "use_custom_field_labels": False}
        )

    expected = {"Plan": "Enterprise", "cf_gone": "kept"}
    assert got.structured_content is not None
    assert got.structured_content["custom_fields"] == expected
    for found in (by_email, by_name):
        assert found.structured_content is not None, text_of(found)
        assert found.structured_content["contacts"][0]["custom_fields"] == expected
    assert by_id.structured_content is not None
    assert by_id.structured_content["custom_fields"] == {"cf_abc123": "Enterprise", "cf_gone": "kept"}


async def test_highlevel_sandbox_contacts_key_custom_fields_by_field_name(sandbox_app: Starlette) -> None:
    async with Client(whole_sandbox(sandbox_app)) as client:
        found = await client.call_tool("find_contact", {"query": "a", "provider": "highlevel"})

    assert found.structured_content is not None, text_of(found)
    keys = cometly_keys(found.structured_content["contacts"])
    assert keys
    assert keys <= set(LABELS.values())
