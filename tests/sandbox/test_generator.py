"""The seed data: deterministic, realistic, and shaped to exercise every documented behaviour."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from contacts_mcp.server.sandbox.generator import FIRST_ID, LABELS, generate
from contacts_mcp.server.sandbox.model import COUNTRIES, NewContact, SlotType, slot_type, unix
from tests.sandbox.support import NOW

E164 = re.compile(r"\+[1-9]\d{7,14}")


def test_the_same_seed_count_and_now_give_the_same_contacts(dataset: list[NewContact]) -> None:
    again = generate(count=len(dataset), seed=1, now=NOW)

    assert again == dataset


def test_another_seed_or_now_gives_other_contacts(dataset: list[NewContact]) -> None:
    other_seed = generate(count=len(dataset), seed=2, now=NOW)
    other_now = generate(count=len(dataset), seed=1, now=NOW + timedelta(days=1))

    assert other_seed != dataset
    assert [c.created_at for c in other_now] != [c.created_at for c in dataset]


def test_contacts_were_created_in_the_90_days_before_now_in_id_order(dataset: list[NewContact]) -> None:
    now = unix(NOW)

    assert len(dataset) == 500
    assert dataset[0].id == FIRST_ID
    assert [c.id for c in dataset] == sorted(c.id for c in dataset)
    assert [c.created_at for c in dataset] == sorted(c.created_at for c in dataset)
    assert all(now - 90 * 86_400 <= c.created_at <= now - 60 for c in dataset)
    last_week = [c for c in dataset if c.created_at >= now - 7 * 86_400]
    assert 20 <= len(last_week) <= 70


def test_contact_details_look_real(dataset: list[NewContact]) -> None:
    emails = [email.value for contact in dataset for email in contact.emails]
    phones = [phone.value for contact in dataset for phone in contact.phones]

    assert all(re.fullmatch(r"[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]+", email) for email in emails)
    assert all(E164.fullmatch(phone) for phone in phones)
    assert all(contact.names and " " in contact.names[0].value for contact in dataset)
    assert {contact.profile.country for contact in dataset} == set(COUNTRIES)
    assert sum(len(c.emails) > 1 for c in dataset) >= 20
    assert sum(len(c.phones) > 1 for c in dataset) >= 5
    assert sum(len(c.names) > 1 for c in dataset) >= 5


def test_custom_fields_fill_labelled_slots_with_values_of_their_type(dataset: list[NewContact]) -> None:
    for contact in dataset:
        for slot, value in contact.custom_fields.items():
            kind = slot_type(slot)
            if kind is SlotType.NUMBER:
                assert isinstance(value, float)
            elif kind is SlotType.DATE:
                assert isinstance(value, str)
                datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
            else:
                assert isinstance(value, str)
    used = {slot for contact in dataset for slot in contact.custom_fields}
    assert set(LABELS) <= used
    assert used - set(LABELS) == {4, 18}, "two unlabelled slots hold data, to show they cannot be filtered"
    for slot in LABELS:
        assert any(slot not in contact.custom_fields for contact in dataset), f"slot {slot} is sometimes unset"
    plans = {contact.custom_fields.get(5) for contact in dataset}
    assert plans == {"Free", "Basic", "Premium", "Enterprise", None}


def test_some_text_values_carry_literal_underscores_and_backslashes(dataset: list[NewContact]) -> None:
    texts = [value for c in dataset for slot, value in c.custom_fields.items() if isinstance(value, str) and slot <= 15]

    assert any("_" in text for text in texts)
    assert any("\\" in text for text in texts)
    assert any(text == "" for text in texts), "an emptied field is empty, not unset"


def test_journeys_tokens_and_merges_cover_a_share_of_contacts(dataset: list[NewContact]) -> None:
    events = [event for contact in dataset for event in contact.events]

    assert 0.4 < sum(bool(c.events) for c in dataset) / len(dataset) < 0.8
    assert {event.kind for event in events} == {"conversion", "touchpoint"}
    assert any(event.is_direct for event in events)
    assert any(event.ad_id for event in events)
    assert {event.channel for event in events if event.kind == "conversion"} == {"browser", "server"}
    assert sum(bool(c.comet_tokens) for c in dataset) > 100
    assert sum(bool(c.browsing_hits) for c in dataset) > 50
    assert sum(len(c.merged_ids) for c in dataset) >= 5


def test_one_contact_overflows_every_cap(dataset: list[NewContact]) -> None:
    heavy = [c for c in dataset if len(c.emails) > 25]

    assert len(heavy) == 1
    assert len(heavy[0].comet_tokens) > 5
    assert len(heavy[0].browsing_hits) > 1000


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        generate(count=1, seed=1, now=datetime(2026, 3, 15))
