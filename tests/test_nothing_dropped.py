"""Nothing a vendor documents for a contact is lost: every key of its full documented answer reaches the result.

Each test feeds the vendor's documented answer with every property present (`full_example`, built
from the vendor's own contract) through a tool, then walks the provider's key table: a key it maps
must show its every value where the table says, a key it drops must carry a reason and must not
show at all, and a key the table does not name must show in the provider's own section. A key the
vendor's schema gains that the product does not handle fails here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, cast

import pytest
import respx
from mcp import Client

from contacts_mcp.server.app import build_server
from contacts_mcp.server.providers import clemta as clemta_provider
from contacts_mcp.server.providers import cometly as cometly_provider
from contacts_mcp.server.providers import cometly_fields
from contacts_mcp.server.providers import highlevel as highlevel_provider
from contacts_mcp.server.providers.base import Destination, Dropped
from contacts_mcp.server.settings import Settings
from contacts_mcp.tools.models import iso_utc
from tests.conftest import HIGHLEVEL_LOCATION, clemta_settings, highlevel_settings, make_settings, text_of
from tests.contracts.examples import full_example

pytestmark = pytest.mark.anyio


def _leaves(value: Any) -> Iterator[Any]:
    """The scalars of a JSON value, and the keys of its objects."""
    if isinstance(value, dict):
        for key, item in value.items():  # pyright: ignore[reportUnknownVariableType]
            yield key
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:  # pyright: ignore[reportUnknownVariableType]
            yield from _leaves(item)
    elif value is not None:
        yield value


def _at(result: Mapping[str, Any], path: str) -> Any:
    node: Any = result
    for part in path.split("."):
        node = cast(dict[str, Any], node).get(part) if isinstance(node, dict) else None
    return node


def _shows(found: Any, value: Any) -> bool:
    """Whether `value` is one of `found`'s leaves.

    A string also counts inside a longer one (a joined address); a whole number also as its text (ids).
    """
    for leaf in _leaves(found):
        if isinstance(value, str) and isinstance(leaf, str) and value in leaf:
            return True
        if not isinstance(value, str) and leaf == value and type(leaf) is type(value):
            return True
        if isinstance(value, int) and not isinstance(value, bool) and leaf == str(value):
            return True
    return False


TIMES = frozenset({"created_at", "updated_at"})
"""Result fields that hold a time as ISO 8601 UTC, whatever form the vendor sent it in."""


def assert_nothing_dropped(
    sent: Mapping[str, Any], table: Mapping[str, Destination], result: Mapping[str, Any], *, rest: str
) -> None:
    """Every key of `sent` reaches `result` where `table` says (or under `rest.<key>`), or is dropped with a reason."""
    assert sent, "the example is empty"
    for key, value in sent.items():
        destination = table.get(key, f"{rest}.{key}")
        if isinstance(destination, Dropped):
            assert destination.why.strip(), f"{key} is dropped without a reason"
            shown = [leaf for leaf in _leaves(value) if isinstance(leaf, str) and _shows(result, leaf)]
            assert not shown, f"{key} is dropped ({destination.why}), yet {shown} show"
            continue
        destinations = (destination,) if isinstance(destination, str) else destination
        for leaf in _leaves(value):
            if isinstance(leaf, bool) or leaf in ("", None):
                continue
            where = [
                path for path in destinations if _shows(_at(result, path), iso_utc(leaf) if path in TIMES else leaf)
            ]
            assert where, f"{key}: {leaf!r} does not reach {' or '.join(destinations)}"


def _contact_of(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["contact"]


async def test_every_key_of_a_cometly_contact_reaches_get_contact(cometly: respx.MockRouter) -> None:
    answer = full_example("cometly", "GET", "/contacts/{id}")
    cometly.get(f"/contacts/{answer['id']}").respond(200, json=answer)
    flags = {"include_events": True, "include_comet_tokens": True, "include_browsing_hits": True, "limit": 100}

    async with Client(build_server(make_settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": str(answer["id"]), **flags})

    assert result.structured_content is not None, text_of(result)
    assert_nothing_dropped(answer, cometly_provider.CONTACT_KEYS, result.structured_content, rest="cometly")


async def test_every_key_of_a_created_cometly_contact_reaches_the_result(cometly: respx.MockRouter) -> None:
    answer = full_example("cometly", "POST", "/contacts", 201)
    cometly.post("/contacts").respond(201, json=answer)
    cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})  # no labels: slots stay

    async with Client(build_server(make_settings())) as client:
        result = await client.call_tool("create_contact", {"emails": ["new@example.com"]})

    assert result.structured_content is not None, text_of(result)
    assert_nothing_dropped(answer, cometly_provider.CONTACT_KEYS, result.structured_content, rest="cometly")


async def test_every_key_of_a_cometly_list_item_reaches_list_contacts(cometly: respx.MockRouter) -> None:
    answer = full_example("cometly", "GET", "/contacts")
    cometly.get("/contacts").respond(200, json=answer)
    flags = {"include_all_emails": True, "include_comet_tokens": True, "include_custom_fields": True}

    async with Client(build_server(make_settings())) as client:
        result = await client.call_tool("list_contacts", {"start_date": "2024-01-01", **flags})

    assert result.structured_content is not None, text_of(result)
    assert (
        set(cometly_provider.LIST_ITEM_KEYS) == cometly_fields.NOT_CUSTOM_KEYS
    )  # one reading of what a custom field is
    [item] = answer["data"]
    [contact] = result.structured_content["contacts"]
    assert_nothing_dropped(item, cometly_provider.LIST_ITEM_KEYS, contact, rest="custom_fields")
    assert result.structured_content["next_cursor"] == answer["next_cursor"]


@pytest.fixture
def no_definitions(highlevel: respx.MockRouter) -> respx.Route:
    """No field definitions, so custom fields keep their ids (the values are what is checked)."""
    return highlevel.get(f"/locations/{HIGHLEVEL_LOCATION}/customFields").respond(200, json={"customFields": []})


@pytest.mark.usefixtures("no_definitions")
async def test_every_key_of_a_highlevel_contact_reaches_get_and_find_contact(highlevel: respx.MockRouter) -> None:
    answer = full_example("highlevel", "GET", "/contacts/{contactId}")
    contact_id = answer["contact"]["id"] = "ocQHyuzHvuMOe5N5jjXF"  # the example's `id-1` is no HighLevel id
    highlevel.get(f"/contacts/{contact_id}").respond(200, json=answer)
    highlevel.get("/contacts/search/duplicate").respond(200, json=answer)  # its 200 has no schema: the get's shape

    async with Client(build_server(Settings(highlevel=highlevel_settings()))) as client:
        got = await client.call_tool("get_contact", {"contact_id": contact_id})
        found = await client.call_tool("find_contact", {"email": "a@example.com"})

    assert got.structured_content is not None, text_of(got)
    assert found.structured_content is not None, text_of(found)
    [match] = found.structured_content["contacts"]
    assert (found.structured_content["total"], found.structured_content["matched_on"]) == (1, "email")
    for result in (got.structured_content, match):
        assert_nothing_dropped(_contact_of(answer), highlevel_provider.CONTACT_KEYS, result, rest="highlevel")


@pytest.mark.usefixtures("no_definitions")
async def test_every_key_of_a_created_highlevel_contact_reaches_the_result(highlevel: respx.MockRouter) -> None:
    answer = full_example("highlevel", "POST", "/contacts/", 201)
    lookup = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": None})
    highlevel.post("/contacts/").respond(201, json=answer)

    async with Client(build_server(Settings(highlevel=highlevel_settings()))) as client:
        result = await client.call_tool("create_contact", {"emails": ["new@example.com"]})

    assert lookup.call_count == 1  # no contact had the email, so the create went ahead
    assert result.structured_content is not None, text_of(result)
    assert_nothing_dropped(
        _contact_of(answer), highlevel_provider.CONTACT_KEYS, result.structured_content, rest="highlevel"
    )


async def test_every_key_of_a_highlevel_field_definition_reaches_describe_custom_fields(
    highlevel: respx.MockRouter,
) -> None:
    answer = full_example("highlevel", "GET", "/locations/{locationId}/customFields")
    answer["customFields"][0]["model"] = "contact"  # the example's enum pick; only contact fields are asked for
    highlevel.get(f"/locations/{HIGHLEVEL_LOCATION}/customFields").respond(200, json=answer)

    async with Client(build_server(Settings(highlevel=highlevel_settings()))) as client:
        result = await client.call_tool("describe_custom_fields", {})

    assert result.structured_content is not None, text_of(result)
    [definition] = answer["customFields"]
    [field] = result.structured_content["fields"]
    assert_nothing_dropped(definition, highlevel_provider.DEFINITION_KEYS, field, rest="(nowhere)")


async def test_every_key_of_a_clemta_contact_reaches_get_list_find_and_create(clemta: respx.MockRouter) -> None:
    got = full_example("clemta", "GET", "/contacts/{contact_id}")
    listed = full_example("clemta", "GET", "/contacts")
    created = full_example("clemta", "POST", "/contacts")
    contact_id = got["data"]["id"] = "64b8f1a2e4b0c8d9f0123456"  # the example's `id-1` is no Clemta id
    [item] = listed["data"]["contacts"]
    clemta.get(f"/contacts/{contact_id}").respond(200, json=got)
    no_duplicate = clemta.get("/contacts", params__contains={"search": "a@example.com"}).respond(
        200, json={"success": True, "message": "ok", "data": {"contacts": [], "total": 0}}
    )
    clemta.get("/contacts").respond(200, json=listed)
    clemta.post("/contacts").respond(200, json=created)

    async with Client(build_server(Settings(clemta=clemta_settings()))) as client:
        results = [
            (got["data"], await client.call_tool("get_contact", {"contact_id": contact_id})),
            (item, await client.call_tool("find_contact", {"email": item["email"]})),
            (created["data"], await client.call_tool("create_contact", {"emails": ["a@example.com"], "names": ["A"]})),
        ]
        page = await client.call_tool("list_contacts", {"start_date": "2000-01-01", "end_date": "2100-01-01"})

    assert page.structured_content is not None, text_of(page)
    [contact] = page.structured_content["contacts"]
    assert no_duplicate.call_count == 1  # the create's lookup of its email, which found none
    matches = results[1][1].structured_content
    assert matches is not None, text_of(results[1][1])
    [found] = matches["contacts"]  # find_contact's answer holds the contact among its matches
    results_of = [(sent, result.structured_content) for sent, result in results]
    results_of[1] = (item, found)
    for sent, result in [*results_of, (item, contact)]:
        assert result is not None
        assert_nothing_dropped(sent, clemta_provider.CONTACT_KEYS, result, rest="clemta")
