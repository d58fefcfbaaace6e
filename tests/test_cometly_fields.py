"""Cometly's custom-field labels: pairing them with slots by value, discovering them, caching, resolving filters."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from contacts_mcp.server.errors import RateLimited, UpstreamUnavailable, ValidationFailed
from contacts_mcp.server.providers.cometly_fields import (
    MORE_SAMPLE_SIZE,
    NO_CONTACT_TTL_SECONDS,
    SAMPLE_SIZE,
    Discovered,
    FieldCache,
    Labels,
    derive,
    discover,
    keyed_by_label,
    named_slots,
    resolve_field,
    values_in_use,
)
from contacts_mcp.server.sandbox import SANDBOX_KEYS, create_app, sandbox_of
from contacts_mcp.server.sandbox.generator import LABELS
from contacts_mcp.tools.models import CustomField, UnresolvedField, custom_field
from tests.sandbox.support import NOW as SANDBOX_NOW
from tests.sandbox.support import UNLIMITED
from tests.shuffle_support import ShuffledKeys, shuffled

NOW = datetime(2026, 3, 15, 9, 30, 5, 123456)
"""The Space's wall-clock time in the discovery tests (naive, as Cometly reads dates)."""
CHECKED = datetime(2026, 3, 15, 9, 30, 6, tzinfo=UTC)

Params = list[tuple[str, str]]
Values = Mapping[int, object]
"""One contact's custom values by slot number; a slot left out is null."""


def expected(labels: Mapping[int, str]) -> list[CustomField]:
    return [custom_field(f"profile_field_{n}", labels[n]) for n in sorted(labels)]


def tie(label: str, *slots: int) -> UnresolvedField:
    return UnresolvedField(label=label, candidates=[f"profile_field_{n}" for n in slots], reason="tie")


def mismatch(label: str, *slots: int) -> UnresolvedField:
    return UnresolvedField(label=label, candidates=[f"profile_field_{n}" for n in slots], reason="mismatch")


def distinct(count: int, *, empty: Sequence[int] = ()) -> list[dict[int, object]]:
    """`count` contacts whose every slot holds a value of its type no other slot holds, but the `empty` slots."""
    contacts: list[dict[int, object]] = []
    for n in range(count):
        values: dict[int, object] = {}
        for slot in range(1, 31):
            if slot in empty:
                continue
            if slot <= 15:
                values[slot] = f"s{slot} c{n}"
            elif slot <= 25:
                values[slot] = float(slot * 100 + n)
            else:
                values[slot] = f"2026-{slot - 25:02d}-{n + 1:02d} 00:00:00"
        contacts.append(values)
    return contacts


class FakeSpace:
    """Cometly's list endpoint over some contacts: newest first, cursor pages, keys in a new order every time.

    With labels, a labelled slot's key is its label, set in slot order into the item as PHP builds it,
    so a label equal to a key already there (`email`, another slot's name) overwrites that key's value.
    """

    def __init__(self, labels: Mapping[int, str], contacts: Sequence[Values], *, seed: int = 0) -> None:
        self.labels = dict(labels)
        self.contacts: dict[int, dict[int, object]] = {100 + n: dict(values) for n, values in enumerate(contacts)}
        self.rng = random.Random(seed)
        self.sent: list[Params] = []
        self.after: Callable[[FakeSpace], None] = lambda space: None
        """Runs after each answer is made: a test adds, edits or deletes contacts between two requests."""

    def add(self, values: Values) -> int:
        contact_id = max(self.contacts, default=99) + 1
        self.contacts[contact_id] = dict(values)
        return contact_id

    def item(self, contact_id: int, *, labelled: bool) -> dict[str, Any]:
        values = self.contacts[contact_id]
        item: dict[str, Any] = {
            "id": contact_id,
            "email": f"c{contact_id}@example.com",
            "name": f"Contact {contact_id}",
            "phone": None,
            "location": None,
        }
        for slot in range(1, 31):
            key = self.labels.get(slot, f"profile_field_{slot}") if labelled else f"profile_field_{slot}"
            item[key] = values.get(slot)
        return item

    def items(self, *, labelled: bool) -> list[dict[str, Any]]:
        return [self.item(contact_id, labelled=labelled) for contact_id in sorted(self.contacts, reverse=True)]

    async def __call__(self, params: Params) -> Any:
        self.sent.append(params)
        query = dict(params)
        ids = sorted(self.contacts, reverse=True)
        if "cursor" in query:
            ids = [contact_id for contact_id in ids if contact_id < int(query["cursor"])]
        per_page = int(query["per_page"])
        page = ids[:per_page]
        labelled = query["use_custom_field_labels"] == "1"
        body = {
            "data": [self.item(contact_id, labelled=labelled) for contact_id in page],
            "per_page": per_page,
            "next_cursor": str(page[-1]) if len(ids) > per_page else None,
        }
        self.after(self)
        return shuffled(body, self.rng)


def derived(space: FakeSpace) -> Labels | None:
    """What one listing of every contact of `space`, raw and labelled, tells."""
    return derive(space.items(labelled=False), space.items(labelled=True))


# --- derive ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_derive_pins_each_label_to_the_slot_whose_values_it_shows_in_any_key_order(seed: int) -> None:
    space = FakeSpace(LABELS, distinct(3))
    rng = random.Random(seed)

    found = derive(shuffled(space.items(labelled=False), rng), shuffled(space.items(labelled=True), rng))

    assert found == Labels(fields=expected(LABELS))


def test_derive_ignores_the_order_even_when_it_is_reversed_on_one_side_only() -> None:
    space = FakeSpace({1: "Company", 2: "Lead Source", 16: "Seats"}, distinct(2))
    labelled = [dict(reversed(item.items())) for item in space.items(labelled=True)]

    assert derive(space.items(labelled=False), labelled) == Labels(
        fields=expected({1: "Company", 2: "Lead Source", 16: "Seats"})
    )


def test_derive_compares_numbers_as_numbers() -> None:
    space = FakeSpace({16: "Seats", 17: "Lifetime Value"}, [{16: 25, 17: 7}, {16: 3, 17: 1200}])
    labelled = space.items(labelled=True)
    for item in labelled:  # the labelled answer writes the same numbers as floats, and one as text
        item["Seats"] = float(item["Seats"])
        item["Lifetime Value"] = str(item["Lifetime Value"]) + ".0"

    assert derive(space.items(labelled=False), labelled) == Labels(fields=expected({16: "Seats", 17: "Lifetime Value"}))


def test_derive_matches_the_two_answers_items_by_id_not_by_position() -> None:
    space = FakeSpace({5: "Customer Plan", 16: "Seats"}, distinct(4))
    labelled = space.items(labelled=True)
    space.add(distinct(5)[4])  # created between the two requests: first in the raw answer only
    del space.contacts[100]  # and the oldest deleted: in the labelled answer only
    raw = space.items(labelled=False)
    assert [item["id"] for item in raw] != [item["id"] for item in labelled]

    assert derive(raw, labelled) == Labels(fields=expected({5: "Customer Plan", 16: "Seats"}))


def test_derive_gives_none_when_the_answers_share_no_contact() -> None:
    space = FakeSpace({5: "Customer Plan"}, distinct(2))

    assert derive(space.items(labelled=False)[:1], space.items(labelled=True)[1:]) is None
    assert derive([], space.items(labelled=True)) is None


def test_derive_ties_an_empty_label_to_the_one_labelled_slot_by_elimination() -> None:
    # Every slot but 1 and 2 is empty on every contact; only slot 7 of them is labelled. The empty
    # slots shown under their own name are unlabelled, so "Notes" can only be slot 7.
    contacts = [{1: f"Acme {n}", 2: "ads" if n % 2 else "organic"} for n in range(5)]
    space = FakeSpace({1: "Company", 2: "Lead Source", 7: "Notes"}, contacts)

    assert derived(space) == Labels(fields=expected({1: "Company", 2: "Lead Source", 7: "Notes"}))


def test_derive_leaves_two_labels_whose_slots_are_empty_on_every_contact_unresolved() -> None:
    space = FakeSpace({5: "Customer Plan", 7: "Notes", 8: "Referral Code", 16: "Seats"}, distinct(4, empty=[7, 8]))

    found = derived(space)

    assert found == Labels(
        fields=expected({5: "Customer Plan", 16: "Seats"}),
        unresolved=[tie("Notes", 7, 8), tie("Referral Code", 7, 8)],
    )


def test_derive_leaves_labels_whose_slots_hold_the_same_values_unresolved_whatever_the_values() -> None:
    contacts = distinct(3)
    for values in contacts:
        values[9] = values[3]  # two text slots that always agree
    space = FakeSpace({3: "Job Title", 9: "Role", 16: "Seats"}, contacts)

    assert derived(space) == Labels(
        fields=expected({16: "Seats"}), unresolved=[tie("Job Title", 3, 9), tie("Role", 3, 9)]
    )


def test_derive_calls_a_label_whose_values_agree_with_no_slot_a_mismatch() -> None:
    space = FakeSpace({5: "Customer Plan", 6: "Referral Code"}, distinct(3))
    labelled = space.items(labelled=True)
    labelled[0]["Customer Plan"] = "Enterprise"  # edited between the two requests

    found = derive(space.items(labelled=False), labelled)

    assert found == Labels(
        fields=expected({6: "Referral Code"}), unresolved=[mismatch("Customer Plan", 5)], unread=["profile_field_5"]
    )


def test_derive_does_not_read_a_label_equal_to_a_key_of_the_contact_itself() -> None:
    # Slot 2's label "email" overwrote the contact's own email: the key says nothing certain.
    space = FakeSpace({2: "email", 5: "Customer Plan", 16: "Seats"}, distinct(3))

    assert derived(space) == Labels(fields=expected({5: "Customer Plan", 16: "Seats"}), unread=["profile_field_2"])


def test_derive_ties_a_label_with_a_slot_whose_label_collided_when_both_are_empty() -> None:
    # Slot 2 is labelled "email" (unreadable) and empty, like slot 7 "Notes": either may be "Notes".
    space = FakeSpace({2: "email", 7: "Notes", 16: "Seats"}, distinct(3, empty=[2, 7]))

    assert derived(space) == Labels(fields=expected({16: "Seats"}), unresolved=[tie("Notes", 2, 7)], unread=[])


def test_derive_reads_a_label_equal_to_another_slots_raw_name_by_its_values() -> None:
    labels = {5: "profile_field_9", 9: "Renewal Stage"}

    assert derived(FakeSpace(labels, distinct(2))) == Labels(fields=expected(labels))


@pytest.mark.parametrize("winner", ["the label's slot", "the unlabelled slot"])
def test_derive_makes_no_wrong_pair_when_a_label_equals_an_unlabelled_slots_raw_name(winner: str) -> None:
    space = FakeSpace({5: "profile_field_9", 16: "Seats"}, distinct(2))
    labelled = space.items(labelled=True)  # slot 9's own value, set after slot 5's, holds the shared key
    if winner == "the label's slot":
        for item in labelled:
            item["profile_field_9"] = space.contacts[item["id"]][5]

    found = derive(space.items(labelled=False), labelled)

    if winner == "the label's slot":  # the key shows slot 5's values, so it is slot 5's label
        assert found == Labels(fields=expected({5: "profile_field_9", 16: "Seats"}))
    else:  # the key shows slot 9's values: slot 9 is unlabelled, and slot 5's label is lost
        assert found == Labels(fields=expected({16: "Seats"}), unread=["profile_field_5"])


def test_derive_pins_a_label_two_slots_share_to_the_slot_whose_value_it_shows() -> None:
    # Slots 1 and 3 are both labelled "Plan": one key, holding slot 3's values (set last).
    space = FakeSpace({1: "Plan", 3: "Plan", 5: "Customer Plan"}, distinct(2))

    assert derived(space) == Labels(fields=expected({3: "Plan", 5: "Customer Plan"}), unread=["profile_field_1"])


def test_derive_reads_custom_fields_nested_under_custom_fields() -> None:
    labels = {3: "email", 17: "Lifetime Value"}

    def nested(contact_id: int, values: Values, keys: Mapping[int, str]) -> dict[str, Any]:
        fields = {keys.get(slot, f"profile_field_{slot}"): values.get(slot) for slot in range(1, 31)}
        return {"id": contact_id, "email": None, "custom_fields": fields}

    contacts = distinct(2)
    raw = [nested(n, values, {}) for n, values in enumerate(contacts)]
    labelled = [nested(n, values, labels) for n, values in enumerate(contacts)]

    # Nested, a label may be a word the item itself uses.
    assert derive(raw, labelled) == Labels(fields=expected(labels))


def test_derive_reads_no_label_out_of_a_key_both_answers_carry() -> None:
    # A key Cometly may add one day (here `updated_at`) is the contact's own, in both answers.
    space = FakeSpace({5: "Customer Plan"}, distinct(2))
    raw, labelled = space.items(labelled=False), space.items(labelled=True)
    for item in raw + labelled:
        item["updated_at"] = "2026-03-01 10:00:00"

    assert derive(raw, labelled) == Labels(fields=expected({5: "Customer Plan"}))


def test_derive_gives_nothing_when_no_slot_is_labelled() -> None:
    space = FakeSpace({}, distinct(2, empty=range(3, 31)))

    assert derived(space) == Labels(fields=[])


def test_derive_skips_odd_keys_and_items_without_failing() -> None:
    space = FakeSpace({1: "Company"}, distinct(2))
    raw, labelled = space.items(labelled=False), space.items(labelled=True)
    odd: list[dict[Any, Any]] = [{**item, 3: "not a string key", "comet_tokens": [1]} for item in labelled]
    no_id = {key: value for key, value in labelled[0].items() if key != "id"}

    assert derive(raw, odd) == Labels(fields=expected({1: "Company"}))
    assert derive(raw, [no_id, labelled[1]]) == Labels(fields=expected({1: "Company"}))
    assert derive(raw, [labelled[0], labelled[0]]) is None  # an id twice cannot be matched
    assert derive([{"id": 7}], [{"id": 7, "custom_fields": "not an object"}]) == Labels(fields=[])
    assert derive([{"id": 7, "custom_fields": []}], [{"id": 7, "custom_fields": []}]) == Labels(fields=[])


# --- discover --------------------------------------------------------------------------------------------------------


class FakeCometly:
    """Answers list requests from a queue of bodies and records the params of each."""

    def __init__(self, *bodies: Any) -> None:
        self.bodies = list(bodies)
        self.sent: list[Params] = []

    async def __call__(self, params: Params) -> Any:
        self.sent.append(params)
        return self.bodies.pop(0)


def params(start: str, *, labels: bool, per_page: int = SAMPLE_SIZE, cursor: str | None = None) -> Params:
    pairs = [("start_date", start), ("end_date", "2026-03-15 09:30:05"), ("per_page", str(per_page))]
    if cursor is not None:
        pairs.append(("cursor", cursor))
    return [*pairs, ("include_custom_fields", "1"), ("use_custom_field_labels", "1" if labels else "0")]


LAST_30 = "2026-02-13 09:30:05"
LAST_365 = "2025-03-15 09:30:05"
SINCE_2000 = "2000-01-01 00:00:00"
EMPTY: dict[str, Any] = {"data": [], "next_cursor": None}


def page(items: list[dict[str, Any]], *, next_cursor: str | None = None) -> dict[str, Any]:
    return {"data": items, "per_page": SAMPLE_SIZE, "next_cursor": next_cursor}


@pytest.mark.anyio
async def test_discover_sends_two_requests_that_differ_only_in_the_label_flag_in_the_common_case() -> None:
    space = FakeSpace(LABELS, distinct(5))

    assert await discover(space, now=NOW) == Labels(fields=expected(LABELS))
    assert space.sent == [params(LAST_30, labels=True), params(LAST_30, labels=False)]


@pytest.mark.anyio
async def test_discover_widens_the_range_only_while_no_contact_is_found() -> None:
    space = FakeSpace({5: "Customer Plan"}, distinct(2))
    fetch = FakeCometly(EMPTY, page(space.items(labelled=True)), page(space.items(labelled=False)))

    assert await discover(fetch, now=NOW) == Labels(fields=expected({5: "Customer Plan"}))
    assert fetch.sent == [params(LAST_30, labels=True), params(LAST_365, labels=True), params(LAST_365, labels=False)]


@pytest.mark.anyio
async def test_discover_gives_none_when_no_range_holds_a_contact() -> None:
    fetch = FakeCometly(EMPTY, EMPTY, EMPTY)

    assert await discover(fetch, now=NOW) is None
    assert fetch.sent == [params(start, labels=True) for start in (LAST_30, LAST_365, SINCE_2000)]


@pytest.mark.anyio
async def test_discover_gives_none_when_the_contacts_are_gone_by_the_raw_request() -> None:
    space = FakeSpace(LABELS, distinct(2))
    fetch = FakeCometly(EMPTY, EMPTY, page(space.items(labelled=True)), EMPTY)

    assert await discover(fetch, now=NOW) is None
    assert fetch.sent[-1] == params(SINCE_2000, labels=False)


@pytest.mark.anyio
async def test_discover_matches_a_contact_created_between_the_two_requests_by_id() -> None:
    space = FakeSpace({5: "Customer Plan", 16: "Seats", 26: "Trial Ends"}, distinct(3))
    created = distinct(4)[3]

    def create_once(space: FakeSpace) -> None:
        if len(space.sent) == 1:
            space.add(created)

    space.after = create_once

    assert await discover(space, now=NOW) == Labels(
        fields=expected({5: "Customer Plan", 16: "Seats", 26: "Trial Ends"})
    )
    assert len(space.sent) == 2


def tied_space(*, tied: int, told_apart: int) -> FakeSpace:
    """A Space whose newest `tied` contacts leave slots 7 and 8 (both labelled) empty; older ones fill them."""
    labels = {5: "Customer Plan", 7: "Notes", 8: "Referral Code"}
    return FakeSpace(labels, distinct(told_apart) + distinct(tied, empty=[7, 8]))


@pytest.mark.anyio
async def test_discover_reads_one_more_page_both_ways_to_break_a_tie() -> None:
    space = tied_space(tied=SAMPLE_SIZE, told_apart=50)

    def create_once(space: FakeSpace) -> None:
        if len(space.sent) == 1:
            space.add(distinct(1, empty=[7, 8])[0])

    space.after = create_once

    found = await discover(space, now=NOW)

    assert found == Labels(fields=expected({5: "Customer Plan", 7: "Notes", 8: "Referral Code"}))
    # The contact created after the first request moved the raw page by one: each goes on from its own cursor.
    assert space.sent == [
        params(LAST_30, labels=True),
        params(LAST_30, labels=False),
        params(LAST_30, labels=True, per_page=MORE_SAMPLE_SIZE, cursor="150"),
        params(LAST_30, labels=False, per_page=MORE_SAMPLE_SIZE, cursor="151"),
    ]


@pytest.mark.anyio
async def test_discover_spends_at_most_one_more_pair_of_requests_on_a_tie() -> None:
    space = tied_space(tied=SAMPLE_SIZE + MORE_SAMPLE_SIZE + 10, told_apart=5)

    found = await discover(space, now=NOW)

    assert found == Labels(
        fields=expected({5: "Customer Plan"}), unresolved=[tie("Notes", 7, 8), tie("Referral Code", 7, 8)]
    )
    assert len(space.sent) == 4


@pytest.mark.anyio
async def test_discover_widens_to_everything_to_break_a_tie_when_the_range_has_no_next_page() -> None:
    space = tied_space(tied=3, told_apart=2)
    tied = [item for item in space.items(labelled=True) if item["id"] >= 102]
    tied_raw = [item for item in space.items(labelled=False) if item["id"] >= 102]
    fetch = FakeCometly(page(tied), page(tied_raw), page(space.items(labelled=True)), page(space.items(labelled=False)))

    found = await discover(fetch, now=NOW)

    assert found == Labels(fields=expected({5: "Customer Plan", 7: "Notes", 8: "Referral Code"}))
    assert fetch.sent[2:] == [
        params(SINCE_2000, labels=True, per_page=MORE_SAMPLE_SIZE),
        params(SINCE_2000, labels=False, per_page=MORE_SAMPLE_SIZE),
    ]


@pytest.mark.anyio
async def test_discover_spends_nothing_more_on_a_tie_once_every_contact_was_read() -> None:
    space = tied_space(tied=3, told_apart=0)
    fetch = FakeCometly(EMPTY, EMPTY, page(space.items(labelled=True)), page(space.items(labelled=False)))

    found = await discover(fetch, now=NOW)

    assert found is not None
    assert [entry.label for entry in found.unresolved] == ["Notes", "Referral Code"]
    assert len(fetch.sent) == 4  # three ranges tried, one raw request


@pytest.mark.anyio
@pytest.mark.parametrize("body", [{"message": "Server Error"}, {"data": None}, ["not", "an", "object"], None])
async def test_discover_reports_a_body_without_a_data_list_as_upstream_unavailable(body: Any) -> None:
    with pytest.raises(UpstreamUnavailable, match="data"):
        await discover(FakeCometly(body), now=NOW)


@pytest.mark.anyio
async def test_discover_reports_a_contact_that_is_not_an_object_as_upstream_unavailable() -> None:
    with pytest.raises(UpstreamUnavailable):
        await discover(FakeCometly({"data": ["7"]}), now=NOW)


@pytest.mark.anyio
async def test_discover_lets_errors_of_fetch_through_unchanged() -> None:
    limited = RateLimited("Cometly's list budget is spent.", retry_after=30)

    async def fetch(params: Params) -> Any:
        raise limited

    with pytest.raises(RateLimited) as caught:
        await discover(fetch, now=NOW)
    assert caught.value is limited


SandboxFetch = Callable[[Params], Awaitable[Any]]


class Sandbox:
    """Fetches against a real sandbox app, optionally behind `ShuffledKeys`, recording what was sent."""

    def __init__(self, contacts: int, *, shuffle_seed: int | None = None) -> None:
        self.app = create_app(contacts=contacts, now=SANDBOX_NOW, rate_limits=UNLIMITED)
        self.shuffler = None if shuffle_seed is None else ShuffledKeys(self.app, seed=shuffle_seed)
        self.sent: list[Params] = []
        self.answers: list[Any] = []
        self.after: Callable[[], Awaitable[None]] | None = None

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app if self.shuffler is None else self.shuffler)
        headers = {"Authorization": f"Bearer {SANDBOX_KEYS['cometly']}"}
        return httpx.AsyncClient(transport=transport, base_url="http://sandbox/cometly/public-api/v1", headers=headers)

    async def __call__(self, query: Params) -> Any:
        self.sent.append(query)
        pairs: list[tuple[str, str | int | float | bool | None]] = list(query)
        async with self.client() as http:
            response = await http.get("/contacts", params=pairs)
        assert response.status_code == 200, response.text
        if self.after is not None:
            await self.after()
        self.answers.append(response.json())
        return self.answers[-1]


@pytest.fixture
def sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Makes sandbox fetches (`Sandbox`), closing their stores at teardown."""
    made: list[Sandbox] = []

    def make(contacts: int, *, shuffle_seed: int | None = None) -> Sandbox:
        made.append(Sandbox(contacts, shuffle_seed=shuffle_seed))
        return made[-1]

    yield make
    for each in made:
        sandbox_of(each.app).store.close()


SANDBOX_WALL_CLOCK = SANDBOX_NOW.replace(tzinfo=None)  # the sandbox Space's timezone is UTC


@pytest.mark.anyio
async def test_discover_finds_the_sandbox_spaces_labels_in_two_requests(sandbox: Callable[..., Sandbox]) -> None:
    fetch = sandbox(300)

    assert await discover(fetch, now=SANDBOX_WALL_CLOCK) == Labels(fields=expected(LABELS))
    assert [dict(sent)["use_custom_field_labels"] for sent in fetch.sent] == ["1", "0"]
    assert await discover(sandbox(0), now=SANDBOX_WALL_CLOCK) is None


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(8))
async def test_discover_finds_the_sandbox_spaces_labels_when_every_answer_shuffles_its_keys(
    sandbox: Callable[..., Sandbox], seed: int
) -> None:
    fetch = sandbox(300, shuffle_seed=seed)

    found = await discover(fetch, now=SANDBOX_WALL_CLOCK)

    assert fetch.shuffler is not None
    assert fetch.shuffler.answers == 2
    assert found == Labels(fields=expected(LABELS))


@pytest.mark.anyio
async def test_discover_keeps_the_labels_right_when_a_contact_is_created_between_the_two_requests(
    sandbox: Callable[..., Sandbox],
) -> None:
    fetch = sandbox(300, shuffle_seed=99)
    custom = {"profile_field_5": "Enterprise", "profile_field_16": 120, "profile_field_27": "2026-06-01"}

    async def create_once() -> None:
        if len(fetch.sent) == 1:
            async with fetch.client() as http:
                created = await http.post(
                    "/contacts", json={"emails": ["between@example.com"], "custom_fields": custom}
                )
            assert created.status_code == 201, created.text

    fetch.after = create_once

    assert await discover(fetch, now=SANDBOX_WALL_CLOCK + timedelta(minutes=1)) == Labels(fields=expected(LABELS))
    [labelled, raw] = fetch.answers
    assert raw["data"][0]["email"] == "between@example.com"  # first in the raw answer, absent from the labelled
    assert raw["data"][0]["id"] not in {item["id"] for item in labelled["data"]}


# --- FieldCache ------------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingDiscovery:
    """A discovery that counts its runs and answers from a queue (an exception is raised); the last repeats."""

    def __init__(self, *answers: list[CustomField] | Exception | None) -> None:
        self.answers = list(answers) or [expected(LABELS)]
        self.runs = 0

    async def __call__(self) -> list[CustomField] | None:
        self.runs += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def cache_of(discovery: Callable[[], Awaitable[Labels | list[CustomField] | None]], clock: FakeClock) -> FieldCache:
    return FieldCache(discovery, ttl_seconds=600, clock=clock, wall_clock=lambda: CHECKED)


@pytest.mark.anyio
async def test_field_cache_answers_from_the_cache_within_the_ttl() -> None:
    discovery, clock = CountingDiscovery(), FakeClock()
    cache = cache_of(discovery, clock)
    assert cache.cached is None

    first = await cache.get()
    clock.now += 599
    second = await cache.get()

    assert first == Discovered(expected(LABELS), CHECKED)
    assert second is first
    assert cache.cached is first
    assert discovery.runs == 1


@pytest.mark.anyio
async def test_field_cache_keeps_the_labels_a_discovery_could_not_pin() -> None:
    labels = Labels(fields=expected({5: "Customer Plan"}), unresolved=[tie("Notes", 7, 8)], unread=["profile_field_2"])

    async def discovery() -> Labels:
        return labels

    found = await cache_of(discovery, FakeClock()).get()

    assert found == Discovered(expected({5: "Customer Plan"}), CHECKED, (tie("Notes", 7, 8),), ("profile_field_2",))
    assert found.labels == labels
    assert Discovered(None, CHECKED).labels is None


@pytest.mark.anyio
async def test_field_cache_discovers_again_after_the_ttl() -> None:
    discovery, clock = CountingDiscovery(expected({1: "Company"}), expected({2: "Lead Source"})), FakeClock()
    cache = cache_of(discovery, clock)

    await cache.get()
    clock.now += 600

    assert (await cache.get()).fields == expected({2: "Lead Source"})
    assert discovery.runs == 2


@pytest.mark.anyio
async def test_field_cache_discovers_again_on_refresh_within_the_ttl() -> None:
    discovery = CountingDiscovery(expected({1: "Company"}), expected({2: "Lead Source"}))
    cache = cache_of(discovery, FakeClock())

    await cache.get()

    assert (await cache.get(refresh=True)).fields == expected({2: "Lead Source"})
    assert discovery.runs == 2


@pytest.mark.anyio
async def test_field_cache_discovers_again_after_invalidate() -> None:
    discovery = CountingDiscovery()
    cache = cache_of(discovery, FakeClock())
    await cache.get()

    cache.invalidate()

    assert cache.cached is None
    await cache.get()
    assert discovery.runs == 2


@pytest.mark.anyio
async def test_field_cache_does_not_keep_a_failed_discovery() -> None:
    failure = UpstreamUnavailable("Cometly timed out.")
    discovery = CountingDiscovery(failure, expected(LABELS))
    cache = cache_of(discovery, FakeClock())

    with pytest.raises(UpstreamUnavailable) as caught:
        await cache.get()
    assert caught.value is failure
    assert cache.cached is None

    assert (await cache.get()).fields == expected(LABELS)
    assert discovery.runs == 2


@pytest.mark.anyio
async def test_field_cache_keeps_the_last_answer_when_a_refresh_fails() -> None:
    discovery = CountingDiscovery(expected(LABELS), UpstreamUnavailable("Cometly timed out."))
    cache = cache_of(discovery, FakeClock())
    first = await cache.get()

    with pytest.raises(UpstreamUnavailable):
        await cache.get(refresh=True)

    assert await cache.get() is first
    assert discovery.runs == 2


@pytest.mark.anyio
async def test_field_cache_keeps_no_contact_yet_for_at_most_a_minute() -> None:
    discovery, clock = CountingDiscovery(None, expected(LABELS)), FakeClock()
    cache = cache_of(discovery, clock)

    assert (await cache.get()).fields is None
    clock.now += NO_CONTACT_TTL_SECONDS - 1
    assert (await cache.get()).fields is None
    clock.now += 1

    assert (await cache.get()).fields == expected(LABELS)
    assert discovery.runs == 2


@pytest.mark.anyio
async def test_field_cache_gives_checked_at_in_utc() -> None:
    naive = FieldCache(CountingDiscovery(), ttl_seconds=1, wall_clock=lambda: datetime(2026, 3, 15, 9, 30))
    other = FieldCache(
        CountingDiscovery(), ttl_seconds=1, wall_clock=lambda: datetime(2026, 3, 15, 10, 30, tzinfo=UTC).astimezone()
    )

    assert (await naive.get()).checked_at == datetime(2026, 3, 15, 9, 30, tzinfo=UTC)
    assert (await other.get()).checked_at.utcoffset() == timedelta(0)


class HeldDiscovery:
    """A discovery that stays open until `release` is set, so calls can pile up behind it."""

    def __init__(self, *answers: list[CustomField] | Exception) -> None:
        self.answers = list(answers)
        self.runs = 0
        self.started = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self) -> list[CustomField] | None:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def wait_until_blocked() -> None:
    """Let every other task run until it blocks (here: on the cache's lock)."""
    for _ in range(10):
        await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_field_cache_runs_one_discovery_for_concurrent_gets() -> None:
    discovery = HeldDiscovery(expected(LABELS))
    cache = cache_of(discovery, FakeClock())
    answers: list[Discovered] = []

    async def get() -> None:
        answers.append(await cache.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(get)
            await discovery.started.wait()
            tasks.start_soon(get)
            tasks.start_soon(get)
            await wait_until_blocked()
            discovery.release.set()

    assert discovery.runs == 1
    assert len(answers) == 3
    assert all(answer is answers[0] for answer in answers)


@pytest.mark.anyio
async def test_field_cache_shares_a_failure_with_the_gets_that_waited_for_it() -> None:
    discovery = HeldDiscovery(UpstreamUnavailable("Cometly timed out."), expected(LABELS))
    cache = cache_of(discovery, FakeClock())
    failures: list[Exception] = []

    async def get() -> None:
        try:
            await cache.get()
        except UpstreamUnavailable as exc:
            failures.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(get)
            await discovery.started.wait()
            tasks.start_soon(get)
            await wait_until_blocked()
            discovery.release.set()

        assert len(failures) == 2
        assert discovery.runs == 1
        assert (await cache.get()).fields == expected(LABELS)  # a call made after the failure tries again
    assert discovery.runs == 2


@pytest.mark.anyio
async def test_field_cache_refresh_that_waited_on_a_newer_discovery_does_not_start_another() -> None:
    discovery = HeldDiscovery(expected({1: "Company"}), expected({2: "Lead Source"}), expected({3: "Job Title"}))
    cache = cache_of(discovery, FakeClock())
    answers: dict[str, Discovered] = {}

    async def get(name: str) -> None:
        answers[name] = await cache.get(refresh=True)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            # The first refresh holds the lock; the next two come while it runs, so its answer is older
            # than both of them: one of them discovers again, and the other shares that newer answer.
            tasks.start_soon(get, "first")
            await discovery.started.wait()
            tasks.start_soon(get, "second")
            tasks.start_soon(get, "third")
            await wait_until_blocked()
            discovery.started = anyio.Event()
            discovery.release.set()
            await discovery.started.wait()

    assert discovery.runs == 2
    assert answers["first"].fields == expected({1: "Company"})
    assert answers["second"] is answers["third"]
    assert answers["second"].fields == expected({2: "Lead Source"})


@pytest.mark.anyio
async def test_field_cache_does_not_keep_a_discovery_that_was_running_when_invalidated() -> None:
    discovery = HeldDiscovery(expected({1: "Company"}), expected({2: "Lead Source"}))
    cache = cache_of(discovery, FakeClock())
    answers: list[Discovered] = []

    async def get() -> None:
        answers.append(await cache.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(get)
            await discovery.started.wait()
            cache.invalidate()
            discovery.release.set()

        assert answers[0].fields == expected({1: "Company"})  # its own caller still gets it
        assert cache.cached is None
        assert (await cache.get()).fields == expected({2: "Lead Source"})


# --- resolve_field ---------------------------------------------------------------------------------------------------

FIELDS = expected(LABELS)


def test_resolve_field_finds_a_label_exactly() -> None:
    assert resolve_field("Customer Plan", FIELDS) == "profile_field_5"
    assert resolve_field("Seats", FIELDS) == "profile_field_16"


def test_resolve_field_ignores_case_and_extra_blanks() -> None:
    assert resolve_field("customer plan", FIELDS) == "profile_field_5"
    assert resolve_field("  CUSTOMER \t  PLAN ", FIELDS) == "profile_field_5"
    assert resolve_field("lifetime value", FIELDS) == "profile_field_17"


@pytest.mark.parametrize(
    ("name", "slot"),
    [
        ("profile_field_4", "profile_field_4"),
        (" PROFILE_FIELD_18 ", "profile_field_18"),
        ("Profile_Field_30", "profile_field_30"),
    ],
)
def test_resolve_field_passes_a_slot_through_in_any_case_without_checking_labels(name: str, slot: str) -> None:
    assert resolve_field(name, FIELDS) == slot
    assert resolve_field(name, None) == slot
    assert resolve_field(name, []) == slot


def test_resolve_field_prefers_an_exact_label_over_case_insensitive_ones() -> None:
    fields = [custom_field("profile_field_1", "Plan"), custom_field("profile_field_2", "plan")]

    assert resolve_field("plan", fields) == "profile_field_2"
    assert resolve_field("Plan", fields) == "profile_field_1"


def test_resolve_field_names_the_candidates_when_several_labels_match() -> None:
    fields = [custom_field("profile_field_1", "Plan"), custom_field("profile_field_2", "plan")]

    with pytest.raises(ValidationFailed) as caught:
        resolve_field("PLAN", fields)
    assert "'Plan' (profile_field_1)" in caught.value.message
    assert "'plan' (profile_field_2)" in caught.value.message
    assert "slot" in caught.value.message


def test_resolve_field_calls_two_fields_with_the_same_exact_label_ambiguous() -> None:
    fields = [custom_field("profile_field_1", "Plan"), custom_field("profile_field_7", "Plan")]

    with pytest.raises(ValidationFailed) as caught:
        resolve_field("Plan", fields)
    assert named_slots(caught.value.message) == ["profile_field_1", "profile_field_7"]


def test_resolve_field_lists_every_labelled_field_for_an_unknown_label() -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_field("Favourite Colour", FIELDS)

    message = caught.value.message
    assert "'Favourite Colour'" in message
    assert named_slots(message) == [f"profile_field_{n}" for n in sorted(LABELS)]
    assert "'Customer Plan' (profile_field_5)" in message
    assert "describe_custom_fields" in message


def test_resolve_field_says_labels_are_unknown_until_the_space_has_a_contact() -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_field("Customer Plan", None)

    assert "contact" in caught.value.message
    assert "profile_field_1..profile_field_30" in caught.value.message


def test_resolve_field_says_nothing_can_be_filtered_without_labelled_fields() -> None:
    with pytest.raises(ValidationFailed, match="no labelled custom fields"):
        resolve_field("Customer Plan", [])


def test_resolve_field_quotes_a_huge_name_short() -> None:
    name = "x" * 10_000

    for fields in (FIELDS, None, []):
        with pytest.raises(ValidationFailed) as caught:
            resolve_field(name, fields)
        assert "x" * 80 in caught.value.message
        assert "x" * 81 not in caught.value.message
        assert len(caught.value.message) < 1_000


UNPINNED = [tie("Notes", 7, 8), tie("Referral Code", 7, 8), mismatch("Renewal Stage", 12)]


@pytest.mark.parametrize("name", ["Notes", "notes", "  NOTES "])
def test_resolve_field_refuses_a_label_tied_with_several_slots_naming_them(name: str) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        resolve_field(name, FIELDS, unresolved=UNPINNED)

    message = caught.value.message
    assert "'Notes'" in message
    assert named_slots(message) == ["profile_field_7", "profile_field_8"]
    assert "slot" in message
    assert caught.value.render().startswith("[upstream_unavailable]")


def test_resolve_field_refuses_a_label_whose_values_agree_with_no_slot() -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        resolve_field("renewal stage", FIELDS, unresolved=UNPINNED)

    assert "'Renewal Stage'" in caught.value.message
    assert "agree with no slot" in caught.value.message
    assert named_slots(caught.value.message) == ["profile_field_12"]


def test_resolve_field_still_resolves_pinned_labels_and_slots_beside_unpinned_ones() -> None:
    assert resolve_field("Customer Plan", FIELDS, unresolved=UNPINNED) == "profile_field_5"
    assert resolve_field("profile_field_7", FIELDS, unresolved=UNPINNED) == "profile_field_7"


def test_resolve_field_prefers_an_exact_pinned_label_over_an_unpinned_one_of_another_case() -> None:
    fields = [custom_field("profile_field_1", "Plan")]
    unresolved = [tie("plan", 7, 8)]

    assert resolve_field("Plan", fields, unresolved=unresolved) == "profile_field_1"
    with pytest.raises(UpstreamUnavailable):
        resolve_field("plan", fields, unresolved=unresolved)
    with pytest.raises(UpstreamUnavailable) as caught:  # matches both ignoring case: not guessed either
        resolve_field("PLAN", fields, unresolved=unresolved)
    assert named_slots(caught.value.message) == ["profile_field_7", "profile_field_8", "profile_field_1"]


def test_resolve_field_lists_the_unpinned_labels_and_unread_slots_for_an_unknown_label() -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_field("Favourite Colour", FIELDS, unresolved=UNPINNED, unread=["profile_field_2"])

    message = caught.value.message
    assert "'Customer Plan' (profile_field_5)" in message
    assert "'Notes' (profile_field_7 or profile_field_8)" in message
    assert "profile_field_2" in message


def test_resolve_field_with_only_unpinned_labels_still_names_them() -> None:
    with pytest.raises(UpstreamUnavailable):
        resolve_field("Notes", [], unresolved=UNPINNED)
    with pytest.raises(ValidationFailed, match="Notes"):
        resolve_field("Seats", [], unresolved=UNPINNED)


def test_resolve_field_reads_an_out_of_range_slot_as_a_label_and_says_which_slots_exist() -> None:
    with pytest.raises(ValidationFailed, match=r"profile_field_1\.\.profile_field_30"):
        resolve_field("profile_field_31", FIELDS)


# --- named_slots -----------------------------------------------------------------------------------------------------


def test_named_slots_gives_the_distinct_slots_of_an_error_in_order_and_lower_case() -> None:
    message = (
        "custom_field_filters.0.field: The custom field filters.0.field field refers to profile_field_4, which has "
        "no label in this space; custom_field_filters.1.field: ... PROFILE_FIELD_18 ...; again profile_field_4."
    )

    assert named_slots(message) == ["profile_field_4", "profile_field_18"]


def test_named_slots_ignores_what_is_not_a_slot() -> None:
    assert named_slots("profile_field_31, profile_field_0, profile_field_05, profile_field_300, xprofile_field_2") == []
    assert named_slots("profile_field_30 and profile_field_3.") == ["profile_field_30", "profile_field_3"]
    assert named_slots("The start date field must match the format Y-m-d H:i:s.") == []


# --- Values in use, and keying values by label -----------------------------------------------------------------------


def test_values_in_use_list_few_valued_text_slots_and_never_one_value_per_contact() -> None:
    raw: list[dict[str, Any]] = [
        {
            "id": number,
            "profile_field_2": ("Google Ads", "TikTok Ads")[number % 2],
            "profile_field_3": f"lead{number}@example.com",
            "profile_field_6": "x" * 101 if number < 7 else None,  # few values, but free text
            "profile_field_16": 5,  # a number slot: not listed
            "custom_fields": {"profile_field_7": "Gold"},  # nested, as some answers put them
        }
        for number in range(1, 9)
    ]

    assert values_in_use([*raw, raw[0]]) == {  # a contact listed twice counts once
        "profile_field_2": ["Google Ads", "TikTok Ads"],
        "profile_field_7": ["Gold"],
    }
    assert values_in_use(raw[:5]) == {"profile_field_7": ["Gold"]}  # 2 values need 6 contacts


def test_values_keyed_by_label_keep_the_slot_where_no_label_is_pinned_or_a_label_would_collide() -> None:
    fields = [custom_field("profile_field_2", "Lead Source"), custom_field("profile_field_5", "profile_field_9")]
    values = {"profile_field_2": "Webinar", "profile_field_4": "x", "profile_field_5": "a", "profile_field_9": "b"}

    assert keyed_by_label(values, fields) == {
        "Lead Source": "Webinar",
        "profile_field_4": "x",
        "profile_field_5": "a",  # its label is another slot's name, shown here too
        "profile_field_9": "b",
    }
