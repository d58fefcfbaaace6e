"""Cometly's custom-field labels: deriving them, discovering them upstream, caching, and resolving filter fields."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from server.errors import RateLimited, UpstreamUnavailable, ValidationFailed
from server.providers.cometly_fields import (
    NO_CONTACT_TTL_SECONDS,
    Discovered,
    FieldCache,
    derive,
    discover,
    named_slots,
    resolve_field,
)
from server.sandbox import SANDBOX_KEYS, create_app, sandbox_of
from server.sandbox.generator import LABELS
from tests.sandbox.support import NOW as SANDBOX_NOW
from tests.sandbox.support import UNLIMITED
from tools.models import CustomField, custom_field

NOW = datetime(2026, 3, 15, 9, 30, 5, 123456)
"""The Space's wall-clock time in the discovery tests (naive, as Cometly reads dates)."""
SLOTS = [f"profile_field_{n}" for n in range(1, 31)]
CHECKED = datetime(2026, 3, 15, 9, 30, 6, tzinfo=UTC)

Params = list[tuple[str, str]]


def item(keys: list[str], *, contact_id: int = 7) -> dict[str, Any]:
    """A list item as Cometly sends it: the primary data, then a custom-field value under each key."""
    body: dict[str, Any] = {"id": contact_id, "email": "a@example.com", "name": "A", "phone": None, "location": None}
    body.update(dict.fromkeys(keys))
    return body


def keys_with(labels: Mapping[int, str]) -> list[str]:
    """The 30 custom-field keys in slot order, each the label in `labels` or else the raw slot name."""
    return [labels.get(n, f"profile_field_{n}") for n in range(1, 31)]


def labelled_item(labels: Mapping[int, str]) -> dict[str, Any]:
    """What Cometly builds for `use_custom_field_labels=1`: later keys overwrite earlier equal ones in place."""
    body = item([])
    for key in keys_with(labels):
        body[key] = None
    return body


def expected(labels: Mapping[int, str]) -> list[CustomField]:
    return [custom_field(f"profile_field_{n}", labels[n]) for n in sorted(labels)]


# --- derive ----------------------------------------------------------------------------------------------------------


def test_derive_reads_the_labels_of_a_sandbox_like_item_in_slot_order() -> None:
    fields = derive(item(SLOTS), item(keys_with(LABELS)))

    assert fields == expected(LABELS)
    assert [field.type for field in fields] == ["text"] * 5 + ["number"] * 2 + ["date"] * 2


def test_derive_reads_a_label_that_equals_another_slots_raw_name_by_position() -> None:
    labels = {5: "profile_field_9", 9: "Renewal Stage"}

    assert derive(item(SLOTS), item(keys_with(labels))) == expected(labels)


def test_derive_pairs_the_missing_slots_with_the_new_keys_when_a_label_collides_with_a_reserved_key() -> None:
    labels = {2: "email", 5: "Customer Plan", 16: "Seats"}
    labelled = labelled_item(labels)
    assert len(labelled) == 5 + 29  # "email" took the contact's own key's place: one custom key fewer

    # Slot 2's label is lost with the key it collided with; the others still pair up in order.
    assert derive(item(SLOTS), labelled) == expected({5: "Customer Plan", 16: "Seats"})


def test_derive_keeps_a_collision_from_shifting_the_labels_of_slots_past_an_unlabelled_one() -> None:
    # Slot 3's "Plan" overwrote slot 1's in place: slot 3 cannot be told, but slot 5 still can.
    labelled = labelled_item({1: "Plan", 3: "Plan", 5: "Customer Plan"})

    assert derive(item(SLOTS), labelled) == expected({1: "Plan", 5: "Customer Plan"})


def test_derive_reads_a_label_that_equals_another_slots_raw_name_when_a_key_was_lost() -> None:
    # Slot 9 is unlabelled, so its key collides with slot 5's label and keeps slot 5's place.
    labelled = labelled_item({2: "name", 5: "profile_field_9", 16: "Seats"})

    assert derive(item(SLOTS), labelled) == expected({5: "profile_field_9", 16: "Seats"})


def test_derive_reads_custom_fields_nested_under_custom_fields() -> None:
    raw = {"id": 7, "email": None, "custom_fields": dict.fromkeys(SLOTS)}
    labelled = {"id": 7, "email": None, "custom_fields": dict.fromkeys(keys_with({3: "email", 17: "Lifetime Value"}))}

    # Nested, a label may be a word the item itself uses.
    assert derive(raw, labelled) == expected({3: "email", 17: "Lifetime Value"})


def test_derive_gives_nothing_when_no_slot_is_labelled() -> None:
    assert derive(item(SLOTS), item(SLOTS)) == []


def test_derive_skips_odd_keys_and_shapes_without_failing() -> None:
    odd: dict[Any, Any] = {**item(keys_with({1: "Company"})), 3: "not a string key", "comet_tokens": [1]}

    assert derive(item(SLOTS), odd) == expected({1: "Company"})
    assert derive({}, item(keys_with({1: "Company"}))) == []
    assert derive(item(SLOTS), {}) == []
    assert derive(item(SLOTS), {"custom_fields": "not an object"}) == []
    assert derive({"custom_fields": []}, {"custom_fields": []}) == []  # PHP's empty object


# --- discover --------------------------------------------------------------------------------------------------------


class FakeCometly:
    """Answers list requests from a queue of bodies and records the params of each."""

    def __init__(self, *bodies: Any) -> None:
        self.bodies = list(bodies)
        self.sent: list[Params] = []

    async def __call__(self, params: Params) -> Any:
        self.sent.append(params)
        return self.bodies.pop(0)


def params(start: str, *, labels: bool) -> Params:
    return [
        ("start_date", start),
        ("end_date", "2026-03-15 09:30:05"),
        ("per_page", "1"),
        ("include_custom_fields", "1"),
        ("use_custom_field_labels", "1" if labels else "0"),
    ]


LAST_30 = "2026-02-13 09:30:05"
LAST_365 = "2025-03-15 09:30:05"
SINCE_2000 = "2000-01-01 00:00:00"
EMPTY: dict[str, Any] = {"data": [], "next_cursor": None}


def page(body: dict[str, Any]) -> dict[str, Any]:
    return {"data": [body], "per_page": 1, "next_cursor": "abc"}


@pytest.mark.anyio
async def test_discover_reads_one_contact_from_the_last_30_days_with_labels_and_without() -> None:
    fetch = FakeCometly(page(item(keys_with(LABELS))), page(item(SLOTS)))

    assert await discover(fetch, now=NOW) == expected(LABELS)
    assert fetch.sent == [params(LAST_30, labels=True), params(LAST_30, labels=False)]


@pytest.mark.anyio
async def test_discover_widens_the_range_only_while_no_contact_is_found() -> None:
    fetch = FakeCometly(EMPTY, page(item(keys_with({5: "Customer Plan"}))), page(item(SLOTS)))

    assert await discover(fetch, now=NOW) == expected({5: "Customer Plan"})
    assert fetch.sent == [params(LAST_30, labels=True), params(LAST_365, labels=True), params(LAST_365, labels=False)]


@pytest.mark.anyio
async def test_discover_gives_none_when_no_range_holds_a_contact() -> None:
    fetch = FakeCometly(EMPTY, EMPTY, EMPTY)

    assert await discover(fetch, now=NOW) is None
    assert fetch.sent == [params(start, labels=True) for start in (LAST_30, LAST_365, SINCE_2000)]


@pytest.mark.anyio
async def test_discover_gives_none_when_the_contact_is_gone_by_the_raw_request() -> None:
    fetch = FakeCometly(EMPTY, EMPTY, page(item(keys_with(LABELS))), EMPTY)

    assert await discover(fetch, now=NOW) is None
    assert fetch.sent[-1] == params(SINCE_2000, labels=False)


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


@pytest.fixture
def sandbox() -> Iterator[Callable[[int], Callable[[Params], Awaitable[Any]]]]:
    """Fetches against a real sandbox app holding the given number of contacts."""
    apps: list[Any] = []

    def make(contacts: int) -> Callable[[Params], Awaitable[Any]]:
        app = create_app(contacts=contacts, now=SANDBOX_NOW, rate_limits=UNLIMITED)
        apps.append(app)

        async def fetch(query: Params) -> Any:
            pairs: list[tuple[str, str | int | float | bool | None]] = list(query)
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {SANDBOX_KEYS['cometly']}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=headers) as http:
                response = await http.get("/cometly/public-api/v1/contacts", params=pairs)
            assert response.status_code == 200, response.text
            return response.json()

        return fetch

    yield make
    for app in apps:
        sandbox_of(app).store.close()


@pytest.mark.anyio
async def test_discover_finds_the_sandbox_spaces_labels(
    sandbox: Callable[[int], Callable[[Params], Awaitable[Any]]],
) -> None:
    now = SANDBOX_NOW.replace(tzinfo=None)  # the sandbox Space's timezone is UTC

    assert await discover(sandbox(20), now=now) == expected(LABELS)
    assert await discover(sandbox(0), now=now) is None


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


def cache_of(discovery: Callable[[], Awaitable[list[CustomField] | None]], clock: FakeClock) -> FieldCache:
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
