"""Bad arguments are `[validation_error]`s that say how to fix them, and nothing is sent upstream."""

from __future__ import annotations

from typing import Any

import pytest
import respx
from mcp import Client

from tests.conftest import text_of

pytestmark = pytest.mark.anyio

RANGE = {"start_date": "2024-01-01", "end_date": "2024-01-31"}


def condition(field: str, operator: str, **rest: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, **rest}


BAD_CALLS: list[tuple[str, str, dict[str, Any], str]] = [
    ("path-like id", "get_contact", {"contact_id": "1/../x"}, "not a Cometly contact id"),
    ("encoded slash id", "get_contact", {"contact_id": "1%2F2"}, "not a Cometly contact id"),
    ("query in id", "get_contact", {"contact_id": "1?x=1"}, "not a Cometly contact id"),
    ("non-numeric id", "get_contact", {"contact_id": "jane"}, "not a Cometly contact id"),
    ("negative id", "get_contact", {"contact_id": "-4"}, "not a Cometly contact id"),
    ("very long id", "get_contact", {"contact_id": "9" * 500}, "contact_id"),
    ("missing id", "get_contact", {}, "contact_id"),
    ("limit 0", "get_contact", {"contact_id": "4821", "limit": 0}, "limit"),
    ("limit 101", "get_contact", {"contact_id": "4821", "limit": 101}, "limit"),
    ("per_page 0", "list_contacts", {**RANGE, "per_page": 0}, "per_page"),
    ("per_page 5001", "list_contacts", {**RANGE, "per_page": 5001}, "per_page"),
    ("max_results 0", "list_contacts", {**RANGE, "max_results": 0}, "max_results"),
    ("max_results 100,001", "list_contacts", {**RANGE, "max_results": 100_001}, "max_results"),
    ("month 13", "list_contacts", {"start_date": "2024-13"}, "start_date"),
    ("last 0 days", "list_contacts", {"start_date": "last 0 days"}, "start_date"),
    ("end word before start", "list_contacts", {"start_date": "2024-02-01", "end_date": "2024-01"}, "must be after"),
    ("not a date", "list_contacts", {"start_date": "last tuesday", "end_date": "2024-01-31"}, "start_date"),
    ("impossible date", "list_contacts", {"start_date": "2024-02-30", "end_date": "2024-03-31"}, "start_date"),
    ("end before start", "list_contacts", {"start_date": "2024-02-01", "end_date": "2024-01-01"}, "must be after"),
    (
        "end equals start",
        "list_contacts",
        {"start_date": "2024-02-01 10:00:00", "end_date": "2024-02-01T10:00:00"},
        "after",
    ),
    ("unknown provider", "list_contacts", {**RANGE, "provider": "salesforce"}, "provider"),
    ("no conditions", "filter_by_custom_field", {**RANGE, "conditions": []}, "conditions"),
    (
        "11 conditions",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_1", "any")] * 11},
        "conditions",
    ),
    (
        "slot out of range",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_31", "any")]},
        "field",
    ),
    (
        "slot 0",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_0", "any")]},
        "not a slot",
    ),
    (
        "equal_to a whole week on a date slot",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_26", "equal_to", value="last week")]},
        "equal_to matches one day",
    ),
    (
        "text operator on a number slot",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_16", "contains", value="5")]},
        "not valid for profile_field_16",
    ),
    (
        "number operator on a text slot",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_5", "greater_than", value="5")]},
        "not valid for profile_field_5",
    ),
    (
        "between on a text slot",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_5", "between", start="a", end="b")]},
        "not valid for profile_field_5",
    ),
    (
        "missing value",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_5", "equal_to")]},
        "needs a `value`",
    ),
    (
        "between without end",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_26", "between", start="2024-01-01")]},
        "start` and `end",
    ),
    (
        "number slot with text",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_17", "equal_to", value="many")]},
        "must be a number",
    ),
    (
        "fractional age",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_26", "age_greater_than", value=2.5)]},
        "whole number of days",
    ),
    (
        "date slot with a non-date",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_28", "greater_than", value="soon")]},
        "must be a date",
    ),
    (
        "unknown condition key",
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_5", "equal_to", value="x", label="Plan")]},
        "label",
    ),
    ("no email", "create_contact", {"emails": []}, "emails"),
    ("invalid email", "create_contact", {"emails": ["not-an-email"]}, "not valid email"),
    (
        "custom field slot",
        "create_contact",
        {"emails": ["a@b.co"], "custom_fields": {"profile_field_31": "x"}},
        "custom_fields",
    ),
    (
        "number slot with text",
        "create_contact",
        {"emails": ["a@b.co"], "custom_fields": {"profile_field_20": "lots"}},
        "must be a number",
    ),
    (
        "text over 10,240 characters",
        "create_contact",
        {"emails": ["a@b.co"], "custom_fields": {"profile_field_1": "x" * 10_241}},
        "at most 10240",
    ),
]


@pytest.mark.parametrize(
    ("tool", "arguments", "mentions"), [case[1:] for case in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
async def test_bad_arguments_are_validation_errors_and_send_nothing(
    cometly: respx.MockRouter, client: Client, tool: str, arguments: dict[str, Any], mentions: str
) -> None:
    cometly.route().respond(200, json={"id": 1, "data": [], "next_cursor": None})

    result = await client.call_tool(tool, arguments)

    assert result.is_error
    text: str = text_of(result)
    assert text.startswith("[validation_error] ")
    assert mentions in text
    assert cometly.calls.call_count == 0


async def test_any_and_unknown_ignore_a_stray_value(cometly: respx.MockRouter, client: Client) -> None:
    route = cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})

    result = await client.call_tool(
        "filter_by_custom_field",
        {**RANGE, "conditions": [condition("profile_field_16", "any", value=3)]},
    )

    assert not result.is_error
    assert "custom_field_filters[0][value]" not in str(route.calls.last.request.url.params)
