"""How lookups and stored values are normalized, and which lookups are refused with what to send instead."""

from __future__ import annotations

import pytest

from contacts_mcp.server.errors import ValidationFailed
from contacts_mcp.server.index import normalize
from contacts_mcp.server.index.base import Query
from contacts_mcp.tools.models import Lookup


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("José Núñez", "jose nunez"),
        ("  ÅSA\t\u00a0Öberg  ", "asa oberg"),
        ("Straße", "strasse"),
        ("\uff46\uff55\uff4c\uff4c\u3000width", "full width"),  # full-width letters and space
    ],
)
def test_fold_drops_accents_folds_case_and_collapses_whitespace(text: str, folded: str) -> None:
    assert normalize.fold(text) == folded


def test_email_is_stripped_and_case_folded_and_its_domain_follows_the_last_at() -> None:
    assert normalize.email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalize.domain_of("a@b@eu.acme.com") == "eu.acme.com"
    assert normalize.domain_of("no-at-sign") == ""


@pytest.mark.parametrize(
    ("text", "region", "normalized"),
    [
        ("(415) 555-0100", "US", "+14155550100"),
        ("+1 415 555 0100", None, "+14155550100"),
        ("+44 20 7946 0000", "US", "+442079460000"),
        ("020 7946 0000", "gb", "+442079460000"),
        ("(415) 555-0100", None, "4155550100"),  # no region: only its digits
        ("+999 123", None, "+999123"),  # unparseable: digits, with the + it had
    ],
)
def test_phone_is_e164_where_it_parses_else_its_digits(text: str, region: str | None, normalized: str) -> None:
    assert normalize.phone(text, region) == normalized


def test_a_stored_phone_that_parses_is_also_kept_under_its_national_digits() -> None:
    assert normalize.phone_keys("+1 (415) 555-0100") == {"+14155550100", "~4155550100"}
    assert normalize.phone_keys("(415) 555-0100") == {"4155550100"}
    assert normalize.phone_keys("n/a") == set()
    assert set(normalize.phone_candidates("+14155550100")) >= {"+14155550100", "4155550100", "14155550100"}
    assert normalize.phone_candidates("4155550100") == ["4155550100", "~4155550100"]


@pytest.mark.parametrize(
    ("stored", "lookup", "region", "matched"),
    [
        ("+1 (415) 555-0100", "(415) 555-0100", "US", True),
        ("(415) 555-0100", "+14155550100", None, True),
        ("1 415 555 0100", "+1 415 555 0100", None, True),
        ("+1 (415) 555-0100", "415 555 0100", None, True),
        ("+44 20 7946 0000", "020 7946 0000", "GB", True),
        ("+44 415 555 0100", "(415) 555-0100", "US", False),
        ("+1 415 555 0101", "+14155550100", None, False),
    ],
)
def test_phone_matches_as_the_index_does(stored: str, lookup: str, region: str | None, matched: bool) -> None:
    assert normalize.phone_matches(stored, normalize.phone(lookup, region)) is matched


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Jane.Doe@Example.com", Query(email="jane.doe@example.com")),
        ("@Acme.com", Query(domain="acme.com")),
        ("eu.acme.co.uk", Query(domain="eu.acme.co.uk")),
        ("(415) 555-0100", Query(phone="+14155550100")),
        ("+44 20 7946 0000", Query(phone="+442079460000")),
        ("José Núñez", Query(text="jose nunez")),
        ("Dr. Who", Query(text="dr. who")),
        ("12345 Main", Query(text="12345 main")),
        ("jo", Query(text="jo")),
    ],
)
def test_a_free_query_is_classified(text: str, query: Query) -> None:
    assert normalize.query(Lookup(query=text), region="US") == query


def test_email_phone_and_name_given_together_must_all_match() -> None:
    lookup = Lookup(email="A@B.co", phone="+1 415 555 0100", name="Núñez")
    assert normalize.query(lookup) == Query(email="a@b.co", phone="+14155550100", name="nunez")
    assert normalize.query(Lookup(name="Jane", query="@acme.com")) == Query(name="jane", domain="acme.com")


@pytest.mark.parametrize(
    ("lookup", "hint"),
    [
        (Lookup(), "send an email"),
        (Lookup(email="jane"), "name@example.com"),
        (Lookup(email="jane@example"), "name@example.com"),
        (Lookup(query="jane@example"), "name@example.com"),
        (Lookup(query="@localhost"), "domain"),
        (Lookup(phone="1234"), "5 to 15"),
        (Lookup(phone="+1 234 567 890 123 456"), "5 to 15"),
        (Lookup(name="J"), "at least 2"),
        (Lookup(name="é."), "at least 2"),
        (Lookup(query="-"), "at least 2"),
        (Lookup(name="x" * 201), "at most 200"),
        (Lookup(query="y " * 150), "at most 200"),
    ],
)
def test_a_lookup_that_cannot_match_is_refused_saying_what_to_send(lookup: Lookup, hint: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        normalize.query(lookup)
    assert hint in raised.value.message


def test_narrowing_keeps_the_intersection_or_the_carried_bounds_when_they_contradict() -> None:
    assert normalize.narrow((10, 100), (50, 200)) == (50, 100)
    assert normalize.narrow((None, 100), (50, None)) == (50, 100)
    assert normalize.narrow((10, 20), (30, 40)) == (30, 40)
    assert normalize.narrow((None, None), (None, None)) == (None, None)
