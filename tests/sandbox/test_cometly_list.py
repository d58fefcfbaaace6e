"""Cometly's list endpoint: date ranges, cursor pagination both ways, flags and validation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest

from contacts_mcp.server.sandbox.generator import LABELS
from contacts_mcp.server.sandbox.model import NewContact, unix, utc_text
from tests.sandbox.support import COMETLY, CONTACTS_PATH, EVERYTHING

pytestmark = pytest.mark.anyio

LAST_30_DAYS = {"start_date": "2026-02-13 12:00:00", "end_date": "2026-03-15 12:00:00"}


async def _list(client: httpx.AsyncClient, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(CONTACTS_PATH, params=params, headers=COMETLY)
    assert response.status_code == 200, response.text
    return response.json()


async def _walk(client: httpx.AsyncClient, params: dict[str, Any]) -> list[list[int]]:
    """Follow next cursors from the first page to the last; the ids of each page."""
    pages: list[list[int]] = []
    cursor: str | None = None
    with anyio.fail_after(30):
        while True:
            body = await _list(client, {**params, **({"cursor": cursor} if cursor else {})})
            pages.append([item["id"] for item in body["data"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages


def _created_between(dataset: list[NewContact], start: str, end: str) -> list[int]:
    """Ids created in [start, end], newest first, computed from the generator's data."""
    low, high = (unix(_parse(text)) for text in (start, end))
    return sorted((c.id for c in dataset if low <= c.created_at <= high), reverse=True)


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


@pytest.mark.parametrize("per_page", [1, 7, 200, 5000])
async def test_pagination_walks_every_contact_in_the_range_once_newest_first(
    client: httpx.AsyncClient, dataset: list[NewContact], per_page: int
) -> None:
    pages = await _walk(client, {**LAST_30_DAYS, "per_page": per_page})

    walked = [contact_id for page in pages for contact_id in page]
    expected = _created_between(dataset, LAST_30_DAYS["start_date"], LAST_30_DAYS["end_date"])
    assert len(expected) > 100
    assert walked == expected
    assert all(len(page) == per_page for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= per_page


@pytest.mark.parametrize("per_page", [1, 7, 200])
async def test_prev_cursors_walk_back_through_the_same_pages(client: httpx.AsyncClient, per_page: int) -> None:
    params = {**LAST_30_DAYS, "per_page": per_page}
    forward = await _walk(client, params)
    last = await _list(client, params)
    cursor = last["next_cursor"]
    with anyio.fail_after(30):
        while cursor is not None:
            last = await _list(client, {**params, "cursor": cursor})
            cursor = last["next_cursor"]
        backward = [[item["id"] for item in last["data"]]]
        cursor = last["prev_cursor"]
        while cursor is not None:
            page = await _list(client, {**params, "cursor": cursor})
            backward.append([item["id"] for item in page["data"]])
            assert page["next_cursor"] is not None
            cursor = page["prev_cursor"]

    assert backward[::-1] == forward


async def test_the_first_page_has_no_prev_cursor_and_a_later_one_has_both(client: httpx.AsyncClient) -> None:
    first = await _list(client, {**LAST_30_DAYS, "per_page": 5})
    second = await _list(client, {**LAST_30_DAYS, "per_page": 5, "cursor": first["next_cursor"]})

    assert first["prev_cursor"] is None
    assert first["prev_page_url"] is None
    assert second["prev_cursor"] is not None
    assert second["next_cursor"] is not None


async def test_the_response_has_laravels_cursor_paginator_shape(client: httpx.AsyncClient) -> None:
    body = await _list(client, {**LAST_30_DAYS, "per_page": 3})

    assert list(body) == ["data", "path", "per_page", "next_cursor", "next_page_url", "prev_cursor", "prev_page_url"]
    assert body["path"] == "http://sandbox/cometly/public-api/v1/contacts"
    assert body["per_page"] == 3
    assert body["next_page_url"] == f"{body['path']}?cursor={body['next_cursor']}"
    decoded = base64.urlsafe_b64decode(body["next_cursor"] + "=" * (-len(body["next_cursor"]) % 4))
    assert decoded == f'{{"id":{body["data"][-1]["id"]},"_pointsToNextItems":true}}'.encode()


async def test_the_default_page_size_is_200(client: httpx.AsyncClient) -> None:
    body = await _list(client, EVERYTHING)

    assert body["per_page"] == 200
    assert len(body["data"]) == 200


async def test_the_range_includes_both_bounds(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    oldest, newest = dataset[10], dataset[12]
    params = {"start_date": utc_text(oldest.created_at), "end_date": utc_text(newest.created_at)}

    body = await _list(client, params)

    assert [item["id"] for item in body["data"]] == [newest.id, dataset[11].id, oldest.id]


async def test_a_range_without_contacts_is_an_empty_page_without_cursors(client: httpx.AsyncClient) -> None:
    body = await _list(client, {"start_date": "2020-01-01 00:00:00", "end_date": "2020-12-31 23:59:59"})

    assert body["data"] == []
    assert body["next_cursor"] is None
    assert body["prev_cursor"] is None


async def test_items_carry_only_the_primary_fields_by_default(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    body = await _list(client, {**EVERYTHING, "per_page": 5000})

    by_id = {contact.id: contact for contact in dataset}
    for item in body["data"]:
        assert list(item) == ["id", "email", "name", "phone", "location"]
        contact = by_id[item["id"]]
        assert item["email"] == contact.emails[0].value
        assert item["name"] == contact.names[0].value
        assert item["phone"] == (contact.phones[0].value if contact.phones else None)
        assert item["location"] == (contact.locations[0].value if contact.locations else None)


async def test_flags_add_tokens_all_emails_and_custom_fields(client: httpx.AsyncClient) -> None:
    params = {**EVERYTHING, "per_page": 5000, "include_comet_tokens": 1, "include_all_emails": "true"}
    body = await _list(client, {**params, "include_custom_fields": 1})

    for item in body["data"]:
        assert list(item)[:7] == ["id", "email", "name", "phone", "location", "comet_tokens", "emails"]
        assert list(item)[7:] == [f"profile_field_{slot}" for slot in range(1, 31)]
        assert len(item["comet_tokens"]) <= 5
        assert item["email"] in [entry["email"] for entry in item["emails"]]
    assert max(len(item["emails"]) for item in body["data"]) > 25


async def test_labels_rename_custom_fields_only_when_they_are_included(client: httpx.AsyncClient) -> None:
    labelled = await _list(client, {**EVERYTHING, "include_custom_fields": 1, "use_custom_field_labels": 1})
    without_fields = await _list(client, {**EVERYTHING, "use_custom_field_labels": 1})

    keys = list(labelled["data"][0])[5:]
    assert keys == [LABELS.get(slot, f"profile_field_{slot}") for slot in range(1, 31)]
    assert list(without_fields["data"][0]) == ["id", "email", "name", "phone", "location"]


async def test_a_cursor_carries_only_its_edge_so_the_next_page_obeys_the_range_sent_with_it(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    first = await _list(client, {**EVERYTHING, "per_page": 2})
    narrower = {"start_date": "2026-03-10 00:00:00", "end_date": "2026-03-15 12:00:00"}

    page = await _list(client, {**narrower, "per_page": 5000, "cursor": first["next_cursor"]})

    edge = first["data"][-1]["id"]
    in_range = _created_between(dataset, narrower["start_date"], narrower["end_date"])
    assert [item["id"] for item in page["data"]] == [contact_id for contact_id in in_range if contact_id < edge]


def _filter(index: int, field: str, operator: str, value: str | None = None) -> dict[str, str]:
    params = {
        f"custom_field_filters[{index}][field]": field,
        f"custom_field_filters[{index}][operator]": operator,
    }
    if value is not None:
        params[f"custom_field_filters[{index}][value]"] = value
    return params


def _invalid(name: str, key: str, params: dict[str, Any], *, dates: bool = True) -> Any:
    return pytest.param({**(EVERYTHING if dates else {}), **params}, key, id=name)


FILTER = "custom_field_filters.0"
BETWEEN_WITHOUT_END = {**_filter(0, "profile_field_26", "between"), "custom_field_filters[0][start]": "2026-03-01"}
ELEVEN = {key: value for i in range(11) for key, value in _filter(i, "profile_field_5", "any").items()}

INVALID_LISTS = [
    _invalid("missing start", "start_date", {"end_date": "2026-03-01 00:00:00"}, dates=False),
    _invalid("missing end", "end_date", {"start_date": "2026-03-01 00:00:00"}, dates=False),
    _invalid("date without time", "start_date", {"start_date": "2026-03-01"}),
    _invalid("impossible date", "end_date", {"end_date": "2026-02-30 00:00:00"}),
    _invalid("loose date", "start_date", {"start_date": "2026-3-1 0:0:0"}),
    _invalid("end before start", "end_date", {"start_date": "2026-03-02 00:00:00", "end_date": "2026-03-01 00:00:00"}),
    _invalid("end equals start", "end_date", {"start_date": "2026-03-01 00:00:00", "end_date": "2026-03-01 00:00:00"}),
    _invalid("per_page 0", "per_page", {"per_page": 0}),
    _invalid("per_page 5001", "per_page", {"per_page": 5001}),
    _invalid("per_page not a number", "per_page", {"per_page": "ten"}),
    _invalid("per_page of 5000 digits", "per_page", {"per_page": "9" * 5000}),
    _invalid("malformed cursor", "cursor", {"cursor": "not a cursor!"}),
    _invalid("cursor without an id", "cursor", {"cursor": base64.b64encode(b'{"_pointsToNextItems":true}').decode()}),
    _invalid("cursor of a list", "cursor", {"cursor": base64.b64encode(b"[1, 2]").decode()}),
    _invalid("flag not boolean", "include_custom_fields", {"include_custom_fields": "yes"}),
    _invalid("unlabelled slot", f"{FILTER}.field", _filter(0, "profile_field_4", "any")),
    _invalid("slot out of range", f"{FILTER}.field", _filter(0, "profile_field_31", "any")),
    _invalid("not a slot", f"{FILTER}.field", _filter(0, "email", "any")),
    _invalid("missing field", f"{FILTER}.field", {"custom_field_filters[0][operator]": "any"}),
    _invalid("missing operator", f"{FILTER}.operator", {"custom_field_filters[0][field]": "profile_field_5"}),
    _invalid("number operator on text", f"{FILTER}.operator", _filter(0, "profile_field_5", "greater_than", "1")),
    _invalid("text operator on number", f"{FILTER}.operator", _filter(0, "profile_field_16", "contains", "1")),
    _invalid("between on number", f"{FILTER}.operator", _filter(0, "profile_field_16", "between", "1")),
    _invalid(
        "not_equal_to on date", f"{FILTER}.operator", _filter(0, "profile_field_26", "not_equal_to", "2026-03-01")
    ),
    _invalid("missing value", f"{FILTER}.value", _filter(0, "profile_field_5", "equal_to")),
    _invalid("empty value", f"{FILTER}.value", _filter(0, "profile_field_5", "equal_to", "")),
    _invalid("number value not numeric", f"{FILTER}.value", _filter(0, "profile_field_16", "equal_to", "many")),
    _invalid("date value malformed", f"{FILTER}.value", _filter(0, "profile_field_26", "equal_to", "15/03/2026")),
    _invalid("age negative", f"{FILTER}.value", _filter(0, "profile_field_26", "age_less_than", "-1")),
    _invalid("age fractional", f"{FILTER}.value", _filter(0, "profile_field_26", "age_equal_to", "1.5")),
    _invalid("between without end", f"{FILTER}.end", BETWEEN_WITHOUT_END),
    _invalid("filters not an array", "custom_field_filters", {"custom_field_filters": "profile_field_5"}),
    _invalid("eleven conditions", "custom_field_filters", ELEVEN),
]


@pytest.mark.parametrize(("params", "key"), INVALID_LISTS)
async def test_invalid_list_requests_are_422_with_the_field_named(
    client: httpx.AsyncClient, params: dict[str, Any], key: str
) -> None:
    response = await client.get(CONTACTS_PATH, params=params, headers=COMETLY)

    assert response.status_code == 422
    body = response.json()
    assert key in body["errors"]
    first_message = next(iter(body["errors"].values()))[0]
    assert body["message"].startswith(first_message)


async def test_ten_conditions_are_accepted(client: httpx.AsyncClient) -> None:
    conditions = {k: v for i in range(10) for k, v in _filter(i, "profile_field_5", "any").items()}

    response = await client.get(CONTACTS_PATH, params={**EVERYTHING, **conditions}, headers=COMETLY)

    assert response.status_code == 200


async def test_several_problems_are_summarised_with_a_count(client: httpx.AsyncClient) -> None:
    response = await client.get(CONTACTS_PATH, params={"per_page": 0}, headers=COMETLY)

    assert response.status_code == 422
    assert response.json()["message"] == "The start date field is required. (and 2 more errors)"


async def test_the_list_requires_the_cometly_key(client: httpx.AsyncClient) -> None:
    missing = await client.get(CONTACTS_PATH, params=EVERYTHING)
    wrong = await client.get(CONTACTS_PATH, params=EVERYTHING, headers={"Authorization": "Bearer nope"})

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthenticated."}
