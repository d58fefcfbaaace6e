"""Custom-field filters: each operator per slot type matches what Cometly's documentation says.

Expected answers are computed in plain Python over the generator's data, independently of the SQL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox.model import CustomValue, NewContact
from tests.sandbox.support import COMETLY, CONTACTS_PATH, EVERYTHING, NOW, MakeApp, client_for

pytestmark = pytest.mark.anyio

TODAY = NOW.date()
MARCH_1, MARCH_20 = date(2026, 3, 1), date(2026, 3, 20)

Predicate = Callable[[CustomValue], bool]


def _text(test: Callable[[str], bool]) -> Predicate:
    return lambda value: isinstance(value, str) and test(value.casefold())


def _number(compare: Callable[[float, float], bool], against: float) -> Predicate:
    return lambda value: isinstance(value, float) and compare(value, against)


def _day(test: Callable[[date], bool]) -> Predicate:
    return lambda value: isinstance(value, str) and test(date.fromisoformat(value[:10]))


def _age(test: Callable[[int], bool]) -> Predicate:
    return _day(lambda day: test((TODAY - day).days))


def _case(slot: int, op: str, value: str | None, expected: Predicate, **extra: str) -> Any:
    return pytest.param(slot, op, value, extra, expected, id=f"{slot}-{op}-{value}"[:60])


TEXT_CASES = [
    _case(5, "equal_to", "PREMIUM", _text(lambda v: v == "premium")),
    _case(5, "not_equal_to", "free", _text(lambda v: v != "free")),
    _case(1, "contains", "CORP", _text(lambda v: "corp" in v)),
    _case(1, "not_contains", "a", _text(lambda v: "a" not in v)),
    _case(3, "starts_with", "product", _text(lambda v: v.startswith("product"))),
    _case(3, "ends_with", "MANAGER", _text(lambda v: v.endswith("manager"))),
    _case(3, "contains_word", "product", _text(lambda v: re.search(r"\bproduct\b", v) is not None)),
    _case(3, "contains_word", "of production", _text(lambda v: re.search(r"\bof production\b", v) is not None)),
    _case(2, "any", None, lambda v: v is not None and v != ""),
    _case(2, "unknown", None, lambda v: v is None or v == ""),
]
LITERAL_CASES = [
    _case(6, "contains", "_", _text(lambda v: "_" in v)),
    _case(6, "contains", "\\", _text(lambda v: "\\" in v)),
    _case(6, "contains", "\\_", _text(lambda v: "\\_" in v)),
    _case(6, "equal_to", "partner_north", _text(lambda v: v == "partner_north")),
    _case(6, "equal_to", "partner\\north", _text(lambda v: v == "partner\\north")),
    _case(6, "starts_with", "vip_", _text(lambda v: v.startswith("vip_"))),
    _case(1, "starts_with", "Blue_", _text(lambda v: v.startswith("blue_"))),
    _case(1, "ends_with", "\\slash studio", _text(lambda v: v.endswith("\\slash studio"))),
    _case(6, "not_contains", "_", _text(lambda v: "_" not in v)),
]
NUMBER_CASES = [
    _case(16, "equal_to", "0", _number(operator.eq, 0)),
    _case(16, "not_equal_to", "1", _number(operator.ne, 1)),
    _case(16, "greater_than", "50", _number(operator.gt, 50)),
    _case(16, "greater_than_or_equal_to", "50", _number(operator.ge, 50)),
    _case(16, "less_than", "5", _number(operator.lt, 5)),
    _case(16, "less_than_or_equal_to", "5", _number(operator.le, 5)),
    _case(17, "greater_than", "1000.5", _number(operator.gt, 1000.5)),
    _case(17, "less_than_or_equal_to", "1.5e3", _number(operator.le, 1500)),
    _case(16, "any", None, _number(operator.gt, 0)),
    _case(16, "unknown", None, lambda v: v is None or v == 0),
    _case(17, "unknown", None, lambda v: v is None or v == 0),
]
DATE_CASES = [
    _case(26, "equal_to", "2026-03-20", _day(lambda d: d == MARCH_20)),
    _case(26, "equal_to", "2026-03-20 23:00:00", _day(lambda d: d == MARCH_20)),
    _case(26, "greater_than", "2026-03-20", _day(lambda d: d > MARCH_20)),
    _case(26, "less_than", "2026-03-01", _day(lambda d: d < MARCH_1)),
    _case(27, "less_than", "2026-03-15 08:00:00", _day(lambda d: d < TODAY)),
    _case(26, "between", None, _day(lambda d: MARCH_1 <= d <= MARCH_20), start="2026-03-01", end="2026-03-20"),
    _case(26, "age_greater_than", "30", _age(lambda age: age > 30)),
    _case(26, "age_equal_to", "0", _age(lambda age: age == 0)),
    _case(26, "age_equal_to", "10", _age(lambda age: age == 10)),
    _case(26, "age_less_than", "0", _age(lambda age: age < 0)),
    _case(26, "age_less_than", "10", _age(lambda age: age < 10)),
    _case(26, "age_less_than", "9" * 5000, lambda v: v is not None),
    _case(27, "any", None, lambda v: v is not None),
    _case(27, "unknown", None, lambda v: v is None),
]


async def _matching_ids(client: httpx.AsyncClient, filters: dict[str, str]) -> set[int]:
    response = await client.get(CONTACTS_PATH, params={**EVERYTHING, "per_page": 5000, **filters}, headers=COMETLY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return {item["id"] for item in body["data"]}


def _params(index: int, slot: int, op: str, value: str | None, extra: dict[str, str]) -> dict[str, str]:
    params = {
        f"custom_field_filters[{index}][field]": f"profile_field_{slot}",
        f"custom_field_filters[{index}][operator]": op,
    }
    if value is not None:
        params[f"custom_field_filters[{index}][value]"] = value
    params.update({f"custom_field_filters[{index}][{name}]": text for name, text in extra.items()})
    return params


@pytest.mark.parametrize(
    ("slot", "op", "value", "extra", "expected"), [*TEXT_CASES, *LITERAL_CASES, *NUMBER_CASES, *DATE_CASES]
)
async def test_each_operator_matches_what_the_documentation_describes(
    client: httpx.AsyncClient,
    dataset: list[NewContact],
    slot: int,
    op: str,
    value: str | None,
    extra: dict[str, str],
    expected: Predicate,
) -> None:
    matched = await _matching_ids(client, _params(0, slot, op, value, extra))

    wanted = {contact.id for contact in dataset if expected(contact.custom_fields.get(slot))}
    assert wanted, "the seed data should exercise this case"
    assert len(wanted) < len(dataset), "the case should tell contacts apart"
    assert matched == wanted


async def test_an_age_beyond_the_calendar_matches_nothing_older(client: httpx.AsyncClient) -> None:
    matched = await _matching_ids(client, _params(0, 26, "age_greater_than", "9" * 5000, {}))

    assert matched == set()


async def test_not_equal_to_and_not_contains_leave_unset_fields_out(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    not_equal = await _matching_ids(client, _params(0, 1, "not_equal_to", "nobody", {}))
    not_contains = await _matching_ids(client, _params(0, 1, "not_contains", "zzz", {}))

    has_company = {contact.id for contact in dataset if contact.custom_fields.get(1)}
    assert not_equal == has_company
    assert not_contains == has_company
    assert len(has_company) < len(dataset)


async def test_text_matching_ignores_accents_like_mysqls_default_collation(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    matched = await _matching_ids(client, _params(0, 1, "contains", "CAFE OLE", {}))

    wanted = {contact.id for contact in dataset if contact.custom_fields.get(1) == "Café Olé Roasters"}
    assert wanted
    assert matched == wanted


async def test_a_percent_sign_stays_a_wildcard_because_only_underscore_and_backslash_are_documented_literals(
    client: httpx.AsyncClient, dataset: list[NewContact]
) -> None:
    matched = await _matching_ids(client, _params(0, 1, "starts_with", "w%s", {}))

    wanted = {contact.id for contact in dataset if re.fullmatch(r"w.*s.*", str(contact.custom_fields.get(1)), re.I)}
    assert wanted
    assert matched == wanted


async def test_conditions_and_together(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    filters = {**_params(0, 5, "equal_to", "Enterprise", {}), **_params(1, 16, "greater_than", "100", {})}

    matched = await _matching_ids(client, filters)

    wanted = {
        contact.id
        for contact in dataset
        if contact.custom_fields.get(5) == "Enterprise" and _number(operator.gt, 100)(contact.custom_fields.get(16))
    }
    assert wanted
    assert matched == wanted


async def test_filters_apply_on_every_page_of_a_walk(client: httpx.AsyncClient, dataset: list[NewContact]) -> None:
    filters = _params(0, 5, "equal_to", "Premium", {})
    walked: list[int] = []
    cursor: str | None = None
    while True:
        params = {**EVERYTHING, "per_page": 7, **filters, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(CONTACTS_PATH, params=params, headers=COMETLY)).json()
        walked.extend(item["id"] for item in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert walked == sorted((c.id for c in dataset if c.custom_fields.get(5) == "Premium"), reverse=True)


async def test_created_contacts_are_filtered_by_the_values_they_were_created_with(make_app: MakeApp) -> None:
    app: Starlette = make_app(contacts=0)
    values = ["a_b", "axb", "a\\b", "a\\\\b", "A_B tools"]
    async with client_for(app) as client:
        ids: dict[str, int] = {}
        for text in values:
            body = {"emails": ["x@example.com"], "custom_fields": {"profile_field_1": text}}
            response = await client.post(CONTACTS_PATH, json=body, headers=COMETLY)
            ids[text] = response.json()["id"]

        underscore = await _matching_ids(client, _params(0, 1, "contains", "a_b", {}))
        backslash = await _matching_ids(client, _params(0, 1, "equal_to", "a\\b", {}))
        word = await _matching_ids(client, _params(0, 1, "contains_word", "a_b", {}))

    assert underscore == {ids["a_b"], ids["A_B tools"]}
    assert backslash == {ids["a\\b"]}
    assert word == {ids["a_b"], ids["A_B tools"]}
