"""HighLevel's and Clemta's find_contacts: requests sent, answers mapped, limits kept, the sandbox end to end.

The tool's own tests (through the MCP client) live with the tool; these call the provider methods.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
import respx
from starlette.applications import Starlette

from contacts_mcp.server.budgets import BudgetSpec, fingerprint, open_budgets
from contacts_mcp.server.errors import NotFound, NotSupported, UpstreamUnavailable, ValidationFailed
from contacts_mcp.server.providers.base import Provider
from contacts_mcp.server.providers.clemta import SEARCH_PAGES, Clemta
from contacts_mcp.server.providers.highlevel import HighLevel
from contacts_mcp.server.sandbox import create_app, sandbox_of, sandbox_settings
from contacts_mcp.server.sandbox.model import NewContact as SandboxContact
from contacts_mcp.server.sandbox.model import Stamped
from contacts_mcp.server.settings import Settings
from contacts_mcp.tools.models import Contact, ContactMatches, Lookup
from tests.conftest import (
    CLEMTA_COMPANY,
    CLEMTA_KEY,
    HIGHLEVEL_KEY,
    HIGHLEVEL_LOCATION,
    clemta_settings,
    highlevel_settings,
)
from tests.contracts.checks import Sent, contracts
from tests.test_clemta import SEED_CONTACT as CLEMTA_CONTACT
from tests.test_clemta import envelope
from tests.test_highlevel import DEFINITIONS, NORMALIZED
from tests.test_highlevel import SEED_CONTACT as HIGHLEVEL_CONTACT

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def opened(
    cls: type[Provider], settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncGenerator[Any]:
    """The provider as the server builds it: its default budgets, its client; closed after."""
    account = fingerprint(cls.account(settings))
    specs = {name: BudgetSpec(rates=rates, account=account) for name, rates in cls.default_budgets.items()}
    async with open_budgets(specs) as budgets:
        provider = cls.from_settings(settings, budgets=budgets, transport=transport)
        try:
            yield provider
        finally:
            await provider.aclose()


@pytest.fixture
async def highlevel_provider(highlevel: respx.MockRouter) -> AsyncIterator[HighLevel]:
    highlevel.get(f"/locations/{HIGHLEVEL_LOCATION}/customFields").respond(200, json=DEFINITIONS)
    async with opened(HighLevel, Settings(highlevel=highlevel_settings())) as provider:
        yield provider


@pytest.fixture
async def clemta_provider() -> AsyncIterator[Clemta]:
    async with opened(Clemta, Settings(clemta=clemta_settings())) as provider:
        yield provider


def hl_contact(contact_id: str, **changes: Any) -> dict[str, Any]:
    return {**HIGHLEVEL_CONTACT, "id": contact_id, **changes}


def mapped(contact: Contact) -> dict[str, Any]:
    """A contact as the tools show it, the `highlevel` section's empty values aside (the result layer drops them)."""
    shown = contact.model_dump(exclude_none=True)
    return {**shown, "highlevel": set(shown.get("highlevel", {}))}


def mapped_like_get_contact() -> dict[str, Any]:
    """get_contact's normalized seed example, compared the way `mapped` shows a contact."""
    return {**NORMALIZED, "highlevel": set(NORMALIZED["highlevel"])}


def sent_body(route: respx.Route, index: int = -1) -> Any:
    request = cast(httpx.Request, route.calls[index].request)  # pyright: ignore[reportUnknownMemberType]
    return json.loads(request.content)


# --- HighLevel: search by name or query ------------------------------------------------------------------------------


async def test_highlevel_name_posts_the_search_and_maps_its_contacts_like_get_contact(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    route = highlevel.post("/contacts/search").respond(200, json={"contacts": [HIGHLEVEL_CONTACT], "total": 1})

    found = await highlevel_provider.find_contacts(Lookup(name="john"), limit=10)

    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url.query == b""
    assert request.headers["authorization"] == f"Bearer {HIGHLEVEL_KEY}"
    assert request.headers["version"] == "2021-07-28"
    assert request.headers["content-type"] == "application/json"
    assert sent_body(route) == {"locationId": HIGHLEVEL_LOCATION, "page": 1, "pageLimit": 10, "query": "john"}
    assert found.model_dump(exclude_none=True, exclude={"contacts"}) == {
        "total": 1,
        "matched_on": "name",
        "source": "live",
    }
    assert [mapped(contact) for contact in found.contacts] == [mapped_like_get_contact()]


async def test_highlevel_keeps_its_own_ranking_and_reads_the_total_under_any_of_its_keys(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    contacts = [hl_contact("b2"), hl_contact("a1"), hl_contact("c3")]
    shapes: list[dict[str, Any]] = [
        {"contacts": contacts, "total": 40},
        {"contacts": contacts, "count": 40},
        {"contacts": contacts, "meta": {"total": 40, "currentPage": 1}},
        {"contacts": contacts, "total": 40.0},
    ]
    for shape in shapes:
        highlevel.post("/contacts/search").respond(200, json=shape)

        found = await highlevel_provider.find_contacts(Lookup(query="acme.com"), limit=3)

        assert [contact.id for contact in found.contacts] == ["b2", "a1", "c3"], shape
        assert (found.total, found.matched_on, found.note) == (40, "query", None), shape


async def test_highlevel_without_a_total_counts_what_came_and_says_when_that_is_a_lower_bound(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    highlevel.post("/contacts/search").respond(200, json={"contacts": [hl_contact("a1"), hl_contact("b2")]})

    full = await highlevel_provider.find_contacts(Lookup(name="doe"), limit=2)
    short = await highlevel_provider.find_contacts(Lookup(name="doe"), limit=5)

    assert (full.total, short.total) == (2, 2)
    assert "lower bound" in (full.note or "")
    assert short.note is None  # fewer came back than were asked for: that is all of them


async def test_highlevel_no_match_for_a_name_is_an_empty_list_with_total_zero(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    highlevel.post("/contacts/search").respond(200, json={"contacts": [], "total": 0})

    found = await highlevel_provider.find_contacts(Lookup(name="nobody"), limit=10)

    assert (found.contacts, found.total, found.note) == ([], 0, None)


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"contacts": None, "total": 0},
        {"data": [HIGHLEVEL_CONTACT], "total": 1},
        {"contacts": [{"name": "no id"}], "total": 1},
        {"contacts": ["ocQHyuzHvuMOe5N5jjXF"], "total": 1},
        {"contacts": [HIGHLEVEL_CONTACT], "total": "1"},
        {"contacts": [HIGHLEVEL_CONTACT], "total": True},
        {"contacts": [HIGHLEVEL_CONTACT, hl_contact("b2")], "total": 1},
        {"contacts": [hl_contact(f"c{n}") for n in range(4)], "total": 4},
    ],
)
async def test_highlevel_an_unexpected_search_answer_is_upstream_unavailable_never_a_wrong_answer(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel, answer: Any
) -> None:
    highlevel.post("/contacts/search").respond(200, json=answer)

    with pytest.raises(UpstreamUnavailable):
        await highlevel_provider.find_contacts(Lookup(name="john"), limit=3)


async def test_highlevel_limit_is_the_page_limit_and_at_most_500(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    route = highlevel.post("/contacts/search").respond(200, json={"contacts": [hl_contact("a1")], "total": 1})

    await highlevel_provider.find_contacts(Lookup(name="john"), limit=1)
    await highlevel_provider.find_contacts(Lookup(name="john"), limit=5000)

    assert [sent_body(route, index)["pageLimit"] for index in (0, 1)] == [1, 500]


async def test_highlevel_accented_text_is_searched_folded_too_and_its_new_matches_follow(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        query = json.loads(request.content)["query"]
        ids = {"José": ["a1", "b2"], "jose": ["b2", "c3"]}[query]
        return httpx.Response(200, json={"contacts": [hl_contact(i) for i in ids], "total": len(ids)})

    route = highlevel.post("/contacts/search").mock(side_effect=answer)

    found = await highlevel_provider.find_contacts(Lookup(name=" José "), limit=10)

    assert [sent_body(route, index)["query"] for index in range(len(route.calls))] == ["José", "jose"]
    assert [contact.id for contact in found.contacts] == ["a1", "b2", "c3"]
    assert (found.total, found.note) == (3, None)


async def test_highlevel_text_folding_leaves_alone_is_searched_once(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    route = highlevel.post("/contacts/search").respond(200, json={"contacts": [], "total": 0})

    await highlevel_provider.find_contacts(Lookup(name="JOHN Doe"), limit=10)

    assert route.call_count == 1


@pytest.mark.parametrize("lookup", [Lookup(query="x" * 76), Lookup(name="é" * 70 + "ﬃﬃﬃ"), Lookup(name="   ")])
async def test_highlevel_refuses_a_query_over_75_characters_or_an_empty_one_before_sending(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel, lookup: Lookup
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await highlevel_provider.find_contacts(lookup, limit=10)

    assert highlevel.calls.call_count == 0
    assert "75" in refused.value.message or "Give" in refused.value.message


async def test_highlevel_a_query_beside_a_name_narrows_what_the_name_found(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    acme = hl_contact("a1", companyName="Acme Corp")
    other = hl_contact("b2", companyName="Globex", email="john@globex.example")
    route = highlevel.post("/contacts/search").respond(200, json={"contacts": [acme, other], "total": 2})

    found = await highlevel_provider.find_contacts(Lookup(name="John", query="ACME"), limit=10)

    assert sent_body(route)["query"] == "John"
    assert [contact.id for contact in found.contacts] == ["a1"]
    assert found.total == 1


# --- HighLevel: exact email or phone ----------------------------------------------------------------------------------


async def test_highlevel_email_uses_the_duplicate_search_and_answers_one_contact(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    route = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": HIGHLEVEL_CONTACT})

    found = await highlevel_provider.find_contacts(Lookup(email="test+abc@gmail.com"), limit=10)

    request = route.calls.last.request
    assert request.url.query == f"locationId={HIGHLEVEL_LOCATION}&email=test%2Babc%40gmail.com".encode()
    assert request.headers["version"] == "2021-07-28"
    assert [mapped(contact) for contact in found.contacts] == [mapped_like_get_contact()]
    assert (found.total, found.matched_on, found.source, found.as_of) == (1, "email", "live", None)


async def test_highlevel_phone_is_sent_as_number_with_the_plus_encoded(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    route = highlevel.get("/contacts/search/duplicate").respond(200, json={"contacts": [HIGHLEVEL_CONTACT]})

    found = await highlevel_provider.find_contacts(Lookup(phone="+14155550100"), limit=10)

    request = route.calls.last.request
    assert request.url.query == f"locationId={HIGHLEVEL_LOCATION}&number=%2B14155550100".encode()
    assert found.matched_on == "phone"
    assert [contact.id for contact in found.contacts] == [HIGHLEVEL_CONTACT["id"]]


@pytest.mark.parametrize("answer", [{"contact": None}, {"contacts": []}])
async def test_highlevel_no_contact_for_an_exact_email_is_not_found(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel, answer: dict[str, Any]
) -> None:
    highlevel.get("/contacts/search/duplicate").respond(200, json=answer)

    with pytest.raises(NotFound) as missing:
        await highlevel_provider.find_contacts(Lookup(email="nobody@example.com"), limit=10)

    assert "nobody@example.com" in missing.value.message


async def test_highlevel_email_and_phone_must_both_be_the_contacts(
    highlevel: respx.MockRouter, highlevel_provider: HighLevel
) -> None:
    contact = hl_contact("a1", phone="+14155550100")
    route = highlevel.get("/contacts/search/duplicate").respond(200, json={"contact": contact})

    same = await highlevel_provider.find_contacts(Lookup(email="john@example.com", phone="+1 415-555-0100"), limit=5)
    with pytest.raises(NotFound):
        await highlevel_provider.find_contacts(Lookup(email="john@example.com", phone="+14155550199"), limit=5)

    assert [contact.id for contact in same.contacts] == ["a1"]
    assert [dict(call.request.url.params) for call in route.calls] == [  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportUnknownVariableType]
        {"locationId": HIGHLEVEL_LOCATION, "email": "john@example.com"}
    ] * 2


async def test_highlevel_find_without_a_location_id_names_the_setting(highlevel: respx.MockRouter) -> None:
    async with opened(HighLevel, Settings(highlevel=highlevel_settings(location=None))) as provider:
        for lookup in (Lookup(email="a@example.com"), Lookup(name="a")):
            with pytest.raises(ValidationFailed, match="HIGHLEVEL_LOCATION_ID"):
                await provider.find_contacts(lookup, limit=5)

    assert highlevel.calls.call_count == 0


async def test_highlevel_search_requests_keep_to_the_written_contract() -> None:
    """The search-body schema (tests/contracts/highlevel) judges what is sent, and is seen to refuse drift."""
    headers = {"authorization": "Bearer t", "version": "2021-07-28", "content-type": "application/json"}

    def problems(body: dict[str, Any]) -> list[str]:
        sent = Sent("highlevel", "POST", "/contacts/search", (), headers, json.dumps(body).encode())
        return [violation.at for violation in contracts().check_request(sent)]

    good = {"locationId": "loc", "page": 1, "pageLimit": 500, "query": "x" * 75}
    assert problems(good) == []
    assert problems({**good, "filters": [{"group": "OR", "filters": [{"field": "email", "operator": "exists"}]}]}) == []
    assert problems({**good, "pageLimit": 501}) == ["body.pageLimit"]
    assert problems({**good, "query": "x" * 76}) == ["body.query"]
    assert problems({**good, "q": "x"}) != []
    assert problems({"query": "x"}) != []
    assert problems({**good, "searchAfter": [1, "a"]}) != []  # not with page


# --- Clemta ----------------------------------------------------------------------------------------------------------


def cl_contact(contact_id: int, name: str, email: str, created_at: int = 1_700_000_000, **changes: Any) -> Any:
    return {
        **CLEMTA_CONTACT,
        "id": f"{contact_id:024x}",
        "full_name": name,
        "email": email,
        "cc_emails": [],
        "created_at": created_at,
        **changes,
    }


def searched(route: respx.Route) -> list[tuple[str, str]]:
    params = [dict(cast(httpx.Request, call.request).url.params) for call in route.calls]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return [(p["search"], p["skip"]) for p in params]


async def test_clemta_email_keeps_every_contact_with_that_email_or_cc_ignoring_case(
    clemta: respx.MockRouter, clemta_provider: Clemta
) -> None:
    near = cl_contact(1, "John Doe", "john@example.com.au")
    older = cl_contact(2, "John Doe", "JOHN@example.com", created_at=1_600_000_000)
    copied = cl_contact(3, "Jane Doe", "jane@example.com", cc_emails=["john@example.com"])
    answer = envelope({"contacts": [near, copied, older], "total": 3})
    route = clemta.get("/contacts").respond(200, json=answer)

    found = await clemta_provider.find_contacts(Lookup(email="John@Example.com"), limit=10)

    request = route.calls.last.request
    assert request.headers["x-api-key"] == CLEMTA_KEY
    assert dict(request.url.params) == {
        "company_id": CLEMTA_COMPANY,
        "skip": "0",
        "limit": "100",
        "sort": "created_at",
        "order": "desc",
        "search": "John@Example.com",
    }
    assert [contact.id for contact in found.contacts] == [f"{3:024x}", f"{2:024x}"]  # newest first
    assert (found.total, found.matched_on, found.source, found.note) == (2, "email", "live", None)


async def test_clemta_no_exact_email_is_not_found(clemta: respx.MockRouter, clemta_provider: Clemta) -> None:
    answer = envelope({"contacts": [cl_contact(1, "Johnny", "johnny@example.com")], "total": 1})
    clemta.get("/contacts").respond(200, json=answer)

    with pytest.raises(NotFound):
        await clemta_provider.find_contacts(Lookup(email="john@example.com"), limit=10)


async def test_clemta_name_is_post_filtered_and_ranked_exact_then_prefix_then_contains_newest_first(
    clemta: respx.MockRouter, clemta_provider: Clemta
) -> None:
    contacts = [
        cl_contact(1, "Mary Ann", "ann.contains@example.com", created_at=50),  # contains (email prefix is "ann.")
        cl_contact(2, "Bob Stone", "bob@example.com", created_at=40),  # Clemta's search was looser: dropped
        cl_contact(3, "ANN", "a@example.com", created_at=30),  # exact
        cl_contact(4, "Annabel Lee", "lee@example.com", created_at=20),  # prefix
        cl_contact(5, "Ann", "b@example.com", created_at=60),  # exact, newer
        cl_contact(6, "Joanna", "jo@example.com", created_at=70),  # contains
    ]
    clemta.get("/contacts").respond(200, json=envelope({"contacts": contacts, "total": 6}))

    found = await clemta_provider.find_contacts(Lookup(name="ann"), limit=10)
    limited = await clemta_provider.find_contacts(Lookup(name="ann"), limit=2)

    assert [contact.names[0] for contact in found.contacts] == ["Ann", "ANN", "Mary Ann", "Annabel Lee", "Joanna"]
    assert found.total == 5  # one was not a match: Clemta's count does not stand
    assert [contact.names[0] for contact in limited.contacts] == ["Ann", "ANN"]
    assert limited.total == 5


async def test_clemta_total_is_its_own_when_every_contact_read_fits(
    clemta: respx.MockRouter, clemta_provider: Clemta
) -> None:
    page = [cl_contact(n, f"Doe {n}", f"d{n}@example.com") for n in range(100)]
    route = clemta.get("/contacts").respond(200, json=envelope({"contacts": page, "total": 1234}))

    found = await clemta_provider.find_contacts(Lookup(query="doe"), limit=5)

    assert len(route.calls) == SEARCH_PAGES  # never more pages than the bound
    assert [skip for _, skip in searched(route)] == ["0", "100", "200", "300", "400"]
    assert (len(found.contacts), found.total, found.matched_on) == (5, 1234, "query")
    assert "Clemta's own count" in (found.note or "")


async def test_clemta_bounded_pages_with_misses_give_a_lower_bound_and_say_so(
    clemta: respx.MockRouter, clemta_provider: Clemta
) -> None:
    page = [cl_contact(n, "Other", f"o{n}@example.com") for n in range(99)] + [cl_contact(999, "Doe", "x@y.z")]
    clemta.get("/contacts").respond(200, json=envelope({"contacts": page, "total": 10_000}))

    found = await clemta_provider.find_contacts(Lookup(name="doe"), limit=5)

    assert found.total == 1
    assert "lower bound" in (found.note or "")


async def test_clemta_accented_text_is_searched_folded_too_and_matched_folded(
    clemta: respx.MockRouter, clemta_provider: Clemta
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        search = request.url.params["search"]
        contacts = {
            "José": [cl_contact(1, "José Álvarez", "ja@example.com", created_at=10)],
            "jose": [cl_contact(2, "Jose Alvarez", "jose@example.com", created_at=20)],
        }[search]
        return httpx.Response(200, json=envelope({"contacts": contacts, "total": 1}))

    route = clemta.get("/contacts").mock(side_effect=answer)

    found = await clemta_provider.find_contacts(Lookup(name="José"), limit=10)

    assert [search for search, _ in searched(route)] == ["José", "jose"]
    assert [contact.names[0] for contact in found.contacts] == ["Jose Alvarez", "José Álvarez"]  # both prefix
    assert found.total == 2


async def test_clemta_phone_alone_is_not_supported_and_with_a_name_narrows_by_billing_phone(
    clemta: respx.MockRouter, clemta_provider: Clemta
) -> None:
    billed = cl_contact(1, "Ann Lee", "a@example.com", billing={"phone": "4155550100", "phone_code": "+1"})
    other = cl_contact(2, "Ann Bee", "b@example.com", billing={"phone": "4155550199", "phone_code": "+1"})
    route = clemta.get("/contacts").respond(200, json=envelope({"contacts": [billed, other], "total": 2}))

    with pytest.raises(NotSupported):
        await clemta_provider.find_contacts(Lookup(phone="+14155550100"), limit=10)
    assert route.call_count == 0
    found = await clemta_provider.find_contacts(Lookup(name="ann", phone="+1 (415) 555-0100"), limit=10)

    assert [contact.id for contact in found.contacts] == [billed["id"]]
    assert found.total == 1


@pytest.mark.parametrize("lookup", [Lookup(name="  "), Lookup()])
async def test_clemta_nothing_to_look_for_is_a_validation_error(
    clemta: respx.MockRouter, clemta_provider: Clemta, lookup: Lookup
) -> None:
    with pytest.raises(ValidationFailed):
        await clemta_provider.find_contacts(lookup, limit=10)

    assert clemta.calls.call_count == 0


async def test_clemta_a_listed_contact_without_an_id_is_upstream_unavailable(
    clemta: respx.MockRouter, clemta_provider: Clemta
) -> None:
    clemta.get("/contacts").respond(200, json=envelope({"contacts": [{"full_name": "Ann"}], "total": 1}))

    with pytest.raises(UpstreamUnavailable):
        await clemta_provider.find_contacts(Lookup(name="ann"), limit=10)


# --- Through the sandbox ---------------------------------------------------------------------------------------------


@pytest.fixture
def sandbox_app() -> Iterator[Starlette]:
    app = create_app(contacts=60, seed=3, rate_limits=None)
    yield app
    sandbox_of(app).store.close()


@asynccontextmanager
async def in_sandbox(cls: type[Provider], app: Starlette) -> AsyncGenerator[Any]:
    settings = Settings(**sandbox_settings("http://sandbox"))
    async with opened(cls, settings, transport=httpx.ASGITransport(app=app)) as provider:
        yield provider


def add(app: Starlette, name: str, email: str) -> None:
    store = sandbox_of(app).store
    now = 1_770_000_000

    def contact(contact_id: int) -> SandboxContact:
        return SandboxContact(id=contact_id, created_at=now, emails=[Stamped(email, now)], names=[Stamped(name, now)])

    store.create(contact)


@pytest.mark.parametrize("cls", [HighLevel, Clemta])
async def test_the_sandbox_finds_by_name_part_in_any_case_and_by_exact_email(
    sandbox_app: Starlette, cls: type[Provider]
) -> None:
    add(sandbox_app, "Zoë Quintanilla", "zoe.q@quintanilla-example.com")
    add(sandbox_app, "Zoe Quintana", "zq@other-example.com")

    async with in_sandbox(cls, sandbox_app) as provider:
        by_name = cast(ContactMatches, await provider.find_contacts(Lookup(name="QUINTAN"), limit=10))
        accented = cast(ContactMatches, await provider.find_contacts(Lookup(name="zoë quint"), limit=10))
        by_email = cast(
            ContactMatches, await provider.find_contacts(Lookup(email="ZOE.Q@quintanilla-example.com"), limit=10)
        )
        none = cast(ContactMatches, await provider.find_contacts(Lookup(name="no such person xq"), limit=10))
        with pytest.raises(NotFound):
            await provider.find_contacts(Lookup(email="missing@quintanilla-example.com"), limit=10)

    assert sorted(contact.names[0] for contact in by_name.contacts) == ["Zoe Quintana", "Zoë Quintanilla"]
    assert by_name.total == 2
    assert {contact.names[0] for contact in accented.contacts} == {"Zoe Quintana", "Zoë Quintanilla"}
    assert [contact.emails[0] for contact in by_email.contacts] == ["zoe.q@quintanilla-example.com"]
    assert (none.contacts, none.total) == ([], 0)


@pytest.mark.parametrize("cls", [HighLevel, Clemta])
async def test_the_sandbox_search_keeps_the_limit_and_counts_every_match(
    sandbox_app: Starlette, cls: type[Provider]
) -> None:
    for n in range(7):
        add(sandbox_app, f"Limitson {n}", f"limitson{n}@example.com")

    async with in_sandbox(cls, sandbox_app) as provider:
        found = cast(ContactMatches, await provider.find_contacts(Lookup(query="limitson"), limit=3))

    assert len(found.contacts) == 3
    assert found.total == 7
    assert all("Limitson" in contact.names[0] for contact in found.contacts)
