"""The contract checks themselves, seen to fail on purpose: each kind of drift is caught, and what is allowed passes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
import respx
from mcp import Client
from openapi_spec_validator import OpenAPIV30SpecValidator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contacts_mcp.server.http import Upstream
from contacts_mcp.server.sandbox import SANDBOX_KEYS, Faults
from contacts_mcp.server.sandbox.app import SandboxApp
from contacts_mcp.server.sandbox.faults import FaultPlan
from contacts_mcp.server.undocumented import SILENCES, Silence, Vendor
from tests.contracts import recording
from tests.contracts.checks import JSON, Received, Resolver, Sent, Violation, contracts, php_query, sample
from tests.contracts.examples import documented_answers, full_example
from tests.sandbox.serving import serve

HIGHLEVEL = {"authorization": "Bearer token", "version": "2021-07-28"}
HIGHLEVEL_JSON = {**HIGHLEVEL, "content-type": "application/json"}
CLEMTA = {"x-api-key": "key"}
COMETLY = {"authorization": "Bearer key"}
COMETLY_JSON = {**COMETLY, "content-type": "application/json"}
RANGE = (("start_date", "2024-01-01 00:00:00"), ("end_date", "2024-01-31 23:59:59"))
SLOTS = [f"profile_field_{n}" for n in range(1, 31)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def body(value: JSON) -> bytes:
    return json.dumps(value).encode()


def requested(sent: Sent) -> list[Violation]:
    return contracts().check_request(sent)


def answered(sent: Sent, status: int, value: JSON, silences: tuple[Silence, ...] = SILENCES) -> list[Violation]:
    return contracts().check_response(sent, Received(status, body(value)), silences)


def problems(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(violation.at, violation.kind) for violation in violations]


def cometly_contact(**changes: Any) -> dict[str, Any]:
    contact: dict[str, Any] = {
        "id": 7,
        "emails": [{"email": "jane@example.com"}],
        "phones": ["+14155550100"],
        "names": [],
        "locations": [],
        "custom_fields": dict.fromkeys(SLOTS),
    }
    return {**contact, **changes}


def highlevel_contact(**changes: Any) -> dict[str, Any]:
    return {"contact": {"id": "abc", "firstName": "Jane", "dateAdded": "2024-01-01T00:00:00.000Z", **changes}}


def clemta_list(*params: tuple[str, str]) -> Sent:
    return Sent("clemta", "GET", "/contacts", params, CLEMTA)


# Drift the checks exist for


def test_a_cometly_contact_with_browsing_hits_instead_of_browsing_session_hits_is_caught() -> None:
    sent = Sent("cometly", "GET", "/contacts/7", (("include_browsing_session_data", "1"),), COMETLY)

    found = answered(sent, 200, cometly_contact(browsing_hits=[]))

    assert problems(found) == [("$", "additionalProperties"), ("$", "required")]
    assert "'browsing_hits' was unexpected" in found[0].problem
    assert "browsing_session_hits" in found[1].problem
    assert answered(sent, 200, cometly_contact(browsing_session_hits=[])) == []


def test_a_cometly_contact_with_a_created_at_is_caught() -> None:
    sent = Sent("cometly", "GET", "/contacts/7", (), COMETLY)

    assert problems(answered(sent, 200, cometly_contact(created_at="2024-01-01 00:00:00"))) == [
        ("$", "additionalProperties")
    ]


def test_cometly_custom_fields_are_all_30_slots_unless_labels_were_asked_for() -> None:
    labelled = {**dict.fromkeys(SLOTS[1:]), "Plan": "Premium"}
    plain = Sent("cometly", "GET", "/contacts/7", (("use_custom_field_labels", "0"),), COMETLY)
    with_labels = Sent("cometly", "GET", "/contacts/7", (("use_custom_field_labels", "1"),), COMETLY)

    assert answered(with_labels, 200, cometly_contact(custom_fields=labelled)) == []
    assert problems(answered(plain, 200, cometly_contact(custom_fields=labelled))) == [
        ("$.custom_fields", "required"),
        ("$.custom_fields", "propertyNames"),
    ]
    assert problems(answered(with_labels, 200, cometly_contact(custom_fields={"Plan": "Premium"}))) == [
        ("$.custom_fields", "minProperties")
    ]


def test_cometly_keys_that_only_flags_bring_are_judged_by_the_flags_that_were_sent() -> None:
    asked = Sent("cometly", "GET", "/contacts/7", (("include_comet_tokens", "1"), ("include_events", "1")), COMETLY)
    not_asked = Sent("cometly", "GET", "/contacts/7", (("include_comet_tokens", "0"),), COMETLY)
    events = [{"type": "touchpoint", "source": "google"}, {"type": "conversion", "channel": "server"}]

    assert answered(asked, 200, cometly_contact(comet_tokens=["t"], events=events)) == []
    assert problems(answered(asked, 200, cometly_contact())) == [("$", "required")]
    found = answered(not_asked, 200, cometly_contact(comet_tokens=["t"]))
    assert [(v.at, v.problem) for v in found] == [
        ("$.comet_tokens", "must be absent: Only with include_comet_tokens=1.")
    ]


def test_cometly_list_items_carry_custom_fields_flat_only_when_asked() -> None:
    item = {"id": 1, "email": None, "name": None, "phone": None, "location": None}
    page = {
        "data": [{**item, **dict.fromkeys(SLOTS)}],
        "path": "https://app.cometly.com/public-api/v1/contacts",
        "per_page": 200,
        "next_cursor": None,
        "next_page_url": None,
        "prev_cursor": None,
        "prev_page_url": None,
    }
    asked = Sent("cometly", "GET", "/contacts", (*RANGE, ("include_custom_fields", "1")), COMETLY)
    not_asked = Sent("cometly", "GET", "/contacts", RANGE, COMETLY)

    assert answered(asked, 200, page) == []
    assert problems(answered(not_asked, 200, page)) == [("$.data[0]", "propertyNames")]
    nested = {**page, "data": [{**item, "custom_fields": dict.fromkeys(SLOTS)}]}
    assert ("$.data[0]", "required") in problems(answered(asked, 200, nested))


def test_a_highlevel_contact_with_an_attributions_array_is_caught() -> None:
    sent = Sent("highlevel", "GET", "/contacts/abc", (), HIGHLEVEL)
    attributions = [{"url": "https://example.com", "utmSource": "google"}]

    found = answered(sent, 200, highlevel_contact(attributions=attributions))

    assert problems(found) == [("$.contact", "additionalProperties")]
    assert "'attributions' was unexpected" in found[0].problem
    assert answered(sent, 200, highlevel_contact(attributionSource=attributions[0])) == []


def test_a_null_where_the_spec_says_string_is_caught_once() -> None:
    sent = Sent("highlevel", "GET", "/contacts/abc", (), HIGHLEVEL)

    found = answered(sent, 200, highlevel_contact(firstName=None))

    assert [(v.at, v.problem) for v in found] == [("$.contact.firstName", "None is not of type 'string'")]


def test_a_wrong_type_in_an_answer_is_caught() -> None:
    sent = Sent("clemta", "GET", "/contacts/64b8f1a2e4b0c8d9f0123456", (), CLEMTA)
    contact = {"id": "64b8f1a2e4b0c8d9f0123456", "created_at": "2024-01-01", "type": "customer"}

    found = answered(sent, 200, {"success": True, "message": "ok", "data": contact})

    assert [(v.at, v.kind) for v in found] == [("$.data.created_at", "type")]


def test_a_clemta_list_without_company_id_is_caught() -> None:
    assert problems(requested(clemta_list(("limit", "10")))) == [("query.company_id", "required")]
    assert requested(clemta_list(("company_id", "64b8f1a2e4b0c8d9f0aaaaaa"), ("limit", "10"))) == []


@pytest.mark.parametrize(
    "sent",
    [
        clemta_list(("company_id", "c"), ("page", "2")),
        Sent("highlevel", "GET", "/contacts/search/duplicate", (("locationId", "l"), ("phone", "+1")), HIGHLEVEL),
        Sent("cometly", "GET", "/contacts", (*RANGE, ("page", "2")), COMETLY),
    ],
    ids=["clemta", "highlevel", "cometly"],
)
def test_an_unknown_query_parameter_is_caught(sent: Sent) -> None:
    found = requested(sent)

    assert len(found) == 1
    assert found[0].kind in ("query", "additionalProperties")
    assert "page" in found[0].problem or "phone" in found[0].problem


@pytest.mark.parametrize(
    ("sent", "where"),
    [
        (
            Sent(
                "clemta",
                "POST",
                "/contacts",
                (),
                {**CLEMTA, "content-type": "application/json"},
                body({"type": "customer", "full_name": "A", "email": "a@example.com", "company": "c"}),
            ),
            "body",
        ),
        (
            Sent("highlevel", "POST", "/contacts/", (), HIGHLEVEL_JSON, body({"locationId": "l", "fullName": "A"})),
            "body",
        ),
        (
            Sent("cometly", "POST", "/contacts", (), COMETLY_JSON, body({"emails": ["a@example.com"], "name": "A"})),
            "body",
        ),
    ],
    ids=["clemta", "highlevel", "cometly"],
)
def test_an_unknown_body_key_is_caught(sent: Sent, where: str) -> None:
    found = requested(sent)

    assert "additionalProperties" in {v.kind for v in found}
    assert all(v.at.startswith(where) for v in found)


def test_a_highlevel_request_without_the_version_header_is_caught() -> None:
    found = requested(Sent("highlevel", "GET", "/contacts/abc", (), {"authorization": "Bearer token"}))

    assert problems(found) == [("header.Version", "required")]


def test_a_highlevel_request_with_another_version_is_caught() -> None:
    found = requested(Sent("highlevel", "GET", "/contacts/abc", (), {**HIGHLEVEL, "version": "v3"}))

    assert problems(found) == [("header.Version", "enum")]


def test_a_request_without_credentials_is_caught() -> None:
    assert problems(requested(Sent("clemta", "GET", "/contacts", (("company_id", "c"),)))) == [("headers", "security")]
    assert problems(requested(Sent("cometly", "GET", "/contacts/7"))) == [("headers", "required")]


def test_a_path_or_method_the_contract_does_not_have_is_caught() -> None:
    assert problems(requested(Sent("highlevel", "GET", "/contacts", (), HIGHLEVEL))) == [("path", "path")]
    assert problems(requested(Sent("clemta", "PUT", "/contacts/abc", (), CLEMTA))) == [("path", "path")]


def test_a_body_on_a_get_is_caught() -> None:
    found = requested(Sent("cometly", "GET", "/contacts/7", (), COMETLY_JSON, body({"id": 7})))

    assert problems(found) == [("body", "absent")]


def test_cometly_filters_are_judged_as_php_reads_them() -> None:
    def filters(*conditions: dict[str, str]) -> Sent:
        pairs = [
            (f"custom_field_filters[{index}][{key}]", value)
            for index, condition in enumerate(conditions)
            for key, value in condition.items()
        ]
        return Sent("cometly", "GET", "/contacts", (*RANGE, *pairs), COMETLY)

    good = [
        {"field": "profile_field_5", "operator": "equal_to", "value": "Premium"},
        {"field": "profile_field_16", "operator": "greater_than_or_equal_to", "value": "3"},
        {"field": "profile_field_27", "operator": "between", "start": "2024-01-01", "end": "2024-02-01"},
        {"field": "profile_field_28", "operator": "age_less_than", "value": "30"},
        {"field": "profile_field_2", "operator": "unknown"},
    ]
    assert requested(filters(*good)) == []
    assert problems(requested(filters({"field": "profile_field_5", "operator": "greater_than", "value": "1"}))) == [
        ("query.custom_field_filters[0].operator", "enum")
    ]
    assert problems(requested(filters({"field": "profile_field_27", "operator": "between", "start": "a"}))) == [
        ("query.custom_field_filters[0]", "required")
    ]
    assert problems(requested(filters({"field": "profile_field_26", "operator": "age_equal_to", "value": "1.5"}))) == [
        ("query.custom_field_filters[0].value", "pattern")
    ]
    assert problems(requested(filters({"field": "Plan", "operator": "equal_to", "value": "x"}))) == [
        ("query.custom_field_filters[0].field", "pattern")
    ]
    assert problems(requested(filters(*[good[0]] * 11))) == [("query.custom_field_filters", "maxItems")]


def test_php_query_parsing_keeps_what_php_would_not_parse_as_it_is() -> None:
    assert php_query([("a[0][b]", "x"), ("a[0][c]", "y"), ("a[1][b]", "z"), ("k", "1"), ("k", "2")]) == {
        "a": [{"b": "x", "c": "y"}, {"b": "z"}],
        "k": ["1", "2"],
    }
    assert php_query([("a[1][b]", "x")]) == {"a": {"1": {"b": "x"}}}
    assert php_query([("a[0", "x")]) == {"a[0": "x"}


# Statuses and the Silences


def test_an_undocumented_status_without_a_silence_is_caught() -> None:
    sent = Sent("highlevel", "GET", "/contacts/abc", (), HIGHLEVEL)

    found = answered(sent, 404, {"statusCode": 404, "message": "Contact not found"}, silences=())

    assert problems(found) == [("status", "status")]
    assert "404 is not documented" in found[0].problem


def test_a_silence_allows_an_undocumented_status() -> None:
    sent = Sent("highlevel", "GET", "/contacts/abc", (), HIGHLEVEL)
    silence = Silence("highlevel", "GET", "/contacts/{contactId}", 404, "no 404 documented")

    assert answered(sent, 404, {"statusCode": 404, "message": "Contact not found"}, silences=(silence,)) == []


def test_a_silence_with_a_schema_still_judges_the_body_against_it() -> None:
    sent = clemta_list(("company_id", "c"))
    silence = Silence("clemta", "*", "*", 429, "429 not listed", schema="RateLimitError")
    error = {"success": False, "message": "Rate limit exceeded", "data": None, "error": {"code": "RATE_LIMIT_EXCEEDED"}}

    assert answered(sent, 429, error, silences=(silence,)) == []
    assert problems(answered(sent, 429, {**error, "retry": 60}, silences=(silence,))) == [("$", "additionalProperties")]
    assert problems(answered(sent, 429, {**error, "success": "no"}, silences=(silence,))) == [("$.success", "type")]


def test_a_silence_allows_its_extra_keys_and_no_others() -> None:
    sent = Sent("highlevel", "POST", "/contacts/", (), HIGHLEVEL_JSON)
    silence = Silence("highlevel", "POST", "/contacts/", 400, "dup", schema="BadRequestDTO", extra_keys=("meta",))
    refused = {"statusCode": 400, "message": "duplicate", "meta": {"contactId": "abc"}}

    assert answered(sent, 400, refused, silences=(silence,)) == []
    assert problems(answered(sent, 400, refused, silences=())) == [("$", "additionalProperties")]
    assert problems(answered(sent, 400, {**refused, "traceId": "t"}, silences=(silence,))) == [
        ("$", "additionalProperties")
    ]


def test_the_most_specific_silence_wins() -> None:
    sent = Sent("highlevel", "GET", "/contacts/abc", (), HIGHLEVEL)
    anywhere = Silence("highlevel", "*", "*", 418, "teapot", schema="UnauthorizedDTO")
    here = Silence("highlevel", "GET", "/contacts/{contactId}", 418, "teapot here")

    assert answered(sent, 418, {"anything": True}, silences=(anywhere, here)) == []
    assert problems(answered(sent, 418, {"anything": True}, silences=(anywhere,))) == [("$", "additionalProperties")]


def test_a_silence_naming_a_schema_the_contract_lacks_is_a_violation() -> None:
    sent = Sent("highlevel", "GET", "/contacts/abc", (), HIGHLEVEL)
    wrong = Silence("highlevel", "*", "*", 429, "no 429", schema="TooManyRequestsDTO")

    assert problems(answered(sent, 429, {"statusCode": 429}, silences=(wrong,))) == [("status", "silence")]


def test_a_status_documented_without_a_schema_needs_a_silence() -> None:
    sent = Sent("highlevel", "GET", "/contacts/search/duplicate", (("locationId", "l"),), HIGHLEVEL)

    found = answered(sent, 200, {"contact": None}, silences=())

    assert "documented without a schema" in found[0].problem
    assert answered(sent, 200, {"contact": None}, silences=(Silence("highlevel", "GET", "*", 200, "no schema"),)) == []


def test_a_body_that_is_not_json_is_caught() -> None:
    sent = Sent("cometly", "GET", "/contacts/7", (), COMETLY)

    found = contracts().check_response(sent, Received(200, b"<html>"))

    assert problems(found) == [("$", "json")]


def test_an_answer_on_a_path_the_contract_does_not_have_is_not_judged() -> None:
    assert answered(Sent("cometly", "GET", "/companies", (), COMETLY), 404, {"message": "no route"}) == []


def test_every_silence_names_a_schema_its_contract_has() -> None:
    for silence in SILENCES:
        assert silence.schema is None or contracts()[silence.vendor].has_component(silence.schema), silence


def test_long_arrays_are_judged_on_a_sample_that_keeps_their_indices() -> None:
    items: list[dict[str, JSON]] = [
        {"id": n, "email": None, "name": None, "phone": None, "location": None} for n in range(5000)
    ]
    items[4999]["created_at"] = "2024-01-01 00:00:00"
    items[1234]["id"] = "1234"  # not in the sample: the price of checking a 5,000-item page in milliseconds
    page = {"data": items, "path": "p", "per_page": 5000, "next_cursor": None}
    page |= {"next_page_url": None, "prev_cursor": None, "prev_page_url": None}

    found = answered(Sent("cometly", "GET", "/contacts", RANGE, COMETLY), 200, page)

    assert problems(found) == [("$.data[4999]", "propertyNames")]
    assert len(sample(0, 5000)) <= 100
    assert {0, 24, 4975, 4999} <= set(sample(0, 5000))


# The contracts as loaded


def test_the_loaded_openapi_files_are_valid_apart_from_highlevels_own_two_defects() -> None:
    for vendor in ("highlevel", "clemta"):
        contract = contracts()[vendor]
        for document in cast(Any, contract)._documents:
            errors = [str(error.message) for error in OpenAPIV30SpecValidator(document.spec).iter_errors()]
            defects = ("Path parameter 'type'", "is not valid under any of the given schemas")
            known = [error for error in errors if any(defect in error for defect in defects)]
            assert errors == known, errors[:3]


def test_highlevels_common_schemas_are_inlined_and_every_ref_resolves() -> None:
    text = json.dumps([document.spec for document in cast(Any, contracts()["highlevel"])._documents])

    assert '"$ref": "../' not in text
    found = answered(Sent("highlevel", "GET", "/contacts/abc", (), HIGHLEVEL), 401, {"statusCode": 401, "message": "x"})
    assert found == []


# full_example


def _all_answers() -> Iterator[tuple[Vendor, str, str, int]]:
    for vendor in ("cometly", "highlevel", "clemta"):
        for method, template, status in documented_answers(vendor):
            yield vendor, method, template, status


def _missing(schema: JSON, resolver: Resolver, value: JSON, at: str) -> Iterator[str]:
    """Where `value` lacks a property `schema` declares (following refs, allOf, and each array item)."""
    if not isinstance(schema, dict):
        return
    node = cast(dict[str, JSON], schema)
    if isinstance(ref := node.get("$ref"), str):
        target, inner = resolver.lookup(ref)
        yield from _missing(target, inner, value, at)
    for member in cast(list[JSON], node.get("allOf", [])):
        yield from _missing(member, resolver, value, at)
    if isinstance(value, dict):
        fields = cast(dict[str, JSON], value)
        for name, sub in cast(dict[str, JSON], node.get("properties", {})).items():
            if name not in fields:
                yield f"{at}.{name}"
            else:
                yield from _missing(sub, resolver, fields[name], f"{at}.{name}")
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        items = cast(list[JSON], value)
        alternatives = cast(dict[str, JSON], node["items"])
        for index, item in enumerate(items):
            yield from _missing(alternatives, resolver, item, f"{at}[{index}]")


@pytest.mark.parametrize(("vendor", "method", "template", "status"), list(_all_answers()))
def test_full_example_validates_and_holds_every_documented_property(
    vendor: Vendor, method: str, template: str, status: int
) -> None:
    example = full_example(vendor, method, template, status)

    contract = contracts()[vendor]
    found = contract.route(method, template)
    assert not isinstance(found, str)
    schema, resolver = contract.response_schema(found, status)
    assert list(_missing(schema, resolver, example, "$")) == []


def test_full_example_of_a_cometly_contact_holds_both_kinds_of_event_and_the_hits() -> None:
    example = full_example("cometly", "GET", "/contacts/{id}")

    assert [event["type"] for event in example["events"]] == ["conversion", "touchpoint"]
    assert set(example["events"][1]) >= {"ad_id", "campaign_name", "account_name", "touchpoint_url"}
    assert set(example["browsing_session_hits"][0]) == {
        "event_url",
        "referrer_host",
        "source",
        "country",
        "device_type",
        "browser",
        "os",
        "event_name",
        "event_time_utc",
    }
    assert list(example["custom_fields"]) == SLOTS
    assert "created_at" not in example


def test_full_example_strings_are_unique_and_formats_are_honoured() -> None:
    contact = full_example("highlevel", "GET", "/contacts/abc")["contact"]

    strings = [value for value in contact.values() if isinstance(value, str)]
    assert len(strings) == len(set(strings))
    assert contact["firstName"].startswith("firstName-")
    assert contact["email"].endswith("@example.com")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", contact["dateAdded"])
    assert set(contact["attributionSource"]) >= {"url", "utmSource", "fbclid", "mediumId"}
    assert full_example("clemta", "POST", "/contacts")["data"]["billing"]["phone_code"].startswith("phone_code-")


def test_full_example_refuses_what_is_not_documented() -> None:
    with pytest.raises(LookupError):
        full_example("highlevel", "GET", "/contacts/search/duplicate")
    with pytest.raises(LookupError):
        full_example("cometly", "GET", "/contacts/{id}", 500)
    with pytest.raises(LookupError):
        full_example("clemta", "GET", "/invoices")


# The hooks over the suite


@pytest.fixture
def hooked(_contract_hooks: bool) -> None:
    """The tests of the hooks need them installed (not so under --no-contracts)."""
    if not _contract_hooks:
        pytest.skip("the contract hooks are off (--no-contracts)")


def _sandbox(answer: JSON, status: int = 200, faults: Faults | None = None) -> SandboxApp:
    async def handler(request: Request) -> Response:
        return JSONResponse(answer, status_code=status)

    routes = [
        Route("/highlevel/contacts/{contactId}", handler, methods=["GET"]),
        Route("/clemta/elsewhere", handler, methods=["GET"]),
    ]
    return SandboxApp(FaultPlan(faults), routes=routes)


def _sandbox_client(app: SandboxApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox")


HIGHLEVEL_SANDBOX = {"Authorization": f"Bearer {SANDBOX_KEYS['highlevel']}", "Version": "2021-07-28"}


@pytest.mark.usefixtures("hooked")
@pytest.mark.anyio
async def test_an_in_process_sandbox_answer_is_judged_with_its_request() -> None:
    app = _sandbox(highlevel_contact(attributions=[]))

    with recording.collecting() as seen:
        async with _sandbox_client(app) as http:
            response = await http.get("/highlevel/contacts/abc", headers=HIGHLEVEL_SANDBOX)

    assert response.status_code == 200  # judged after it was sent, never in its way
    assert [str(v) for v in seen.found()] == [
        "sandbox HighLevel GET /contacts/{contactId} 200: $.contact: "
        "Additional properties are not allowed ('attributions' was unexpected)"
    ]


@pytest.mark.usefixtures("hooked")
@pytest.mark.anyio
async def test_faulted_answers_unknown_paths_and_keyless_requests_other_than_401_are_not_judged() -> None:
    faulted = _sandbox(highlevel_contact(), faults=Faults(kinds=("wrong-shape",)))
    wrong = _sandbox(highlevel_contact(attributions=[]))

    with recording.collecting() as seen:
        async with _sandbox_client(faulted) as http:
            assert (await http.get("/highlevel/contacts/abc", headers=HIGHLEVEL_SANDBOX)).json() == {"unexpected": True}
        async with _sandbox_client(wrong) as http:
            await http.get("/clemta/elsewhere", headers={"X-API-Key": SANDBOX_KEYS["clemta"]})
            await http.get(
                "/highlevel/contacts/abc", headers={"Authorization": "Bearer nobody", "Version": "2021-07-28"}
            )

    assert seen.found() == []


@pytest.mark.usefixtures("hooked")
@pytest.mark.anyio
async def test_the_late_real_answer_of_a_timeout_fault_is_not_judged() -> None:
    app = _sandbox(highlevel_contact(attributions=[]), faults=Faults(kinds=("timeout",), delay=0.0))

    with recording.collecting() as seen:
        async with _sandbox_client(app) as http:
            response = await http.get("/highlevel/contacts/abc", headers=HIGHLEVEL_SANDBOX)

    assert "attributions" in response.json()["contact"]
    assert seen.found() == []


@pytest.mark.usefixtures("hooked")
@pytest.mark.anyio
async def test_a_401_to_a_keyless_request_is_judged() -> None:
    app = _sandbox({"statusCode": 401, "message": "Invalid JWT", "detail": "x"}, status=401)

    with recording.collecting() as seen:
        async with _sandbox_client(app) as http:
            await http.get("/highlevel/contacts/abc", headers={"Version": "2021-07-28"})

    assert [(v.status, v.at, v.kind) for v in seen.found()] == [(401, "$", "additionalProperties")]


@pytest.mark.usefixtures("hooked")
def test_a_sandbox_served_by_uvicorn_in_a_thread_is_judged() -> None:
    app = _sandbox(highlevel_contact(firstName=None))

    with recording.collecting() as seen:
        for root in serve(app):
            httpx.get(f"{root}/highlevel/contacts/abc", headers=HIGHLEVEL_SANDBOX, timeout=10)

    assert [(v.who, v.at) for v in seen.found()] == [("sandbox", "$.contact.firstName")]


@pytest.mark.usefixtures("hooked")
@pytest.mark.anyio
async def test_a_request_the_product_sends_is_judged_whoever_answers_it(
    cometly: respx.MockRouter, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    cometly.get("/contacts/4821").respond(200, json=cometly_contact(id=4821))
    request = Upstream.request

    async def with_a_misspelt_flag(self: Upstream, budget: str, method: str, url: str, **options: Any) -> Any:
        params = [*(options.pop("params", None) or ()), ("include_browsing_hits", "1")]
        return await request(self, budget, method, url, params=params, **options)

    monkeypatch.setattr(Upstream, "request", with_a_misspelt_flag)

    with recording.collecting() as seen:
        await client.call_tool("get_contact", {"contact_id": "4821"})

    assert [(v.who, v.vendor, v.path, v.at, v.kind) for v in seen.found()] == [
        ("product", "cometly", "/contacts/{id}", "query", "additionalProperties")
    ]
    assert "'include_browsing_hits' was unexpected" in seen.found()[0].problem
