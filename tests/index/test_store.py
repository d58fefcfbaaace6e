"""What every index backend promises (base.Store), run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from contacts_mcp.server.index import normalize
from contacts_mcp.server.index.base import Entry, Query, Store, Window, WindowKind
from contacts_mcp.tools.models import Lookup

pytestmark = pytest.mark.anyio

A = "account-a"
B = "account-b"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
JUNE = Window(start=datetime(2026, 6, 1, tzinfo=UTC), end=datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC), kind="walk")


def at(day: int, hour: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, 0, second, tzinfo=UTC)


def window(day: int, kind: WindowKind = "walk") -> Window:
    """The window of one June day."""
    return Window(start=at(day), end=at(day) + timedelta(days=1, seconds=-1), kind=kind)


def find(lookup: Lookup, region: str | None = None) -> Query:
    return normalize.query(lookup, region=region)


async def test_put_then_get_gives_back_every_field_with_seen_at(store: Store) -> None:
    entry = Entry(
        id="4821",
        emails=("Jane@Example.com", "j@other.org"),
        names=("Jane Doe",),
        phones=("+1 415 555 0100",),
        locations=("Lisboa",),
        custom_fields={"profile_field_1": "gold", "profile_field_2": 3},
        created_after=at(2),
        created_before=at(3),
    )
    await store.put(A, [entry], seen_at=NOW)
    got = await store.get(A, ["4821", "999", "not-a-number"])
    assert got == {"4821": dataclasses.replace(entry, seen_at=NOW)}


async def test_put_replaces_the_fields_held_and_what_finds_them(store: Store) -> None:
    await store.put(A, [Entry(id="1", emails=("old@example.com",), names=("Old Name",))], seen_at=NOW)
    await store.put(A, [Entry(id="1", emails=("new@example.com",), names=("New Name",))], seen_at=NOW)
    assert (await store.get(A, ["1"]))["1"].emails == ("new@example.com",)
    assert (await store.find(A, Query(email="old@example.com"), limit=5)).total == 0
    assert (await store.find(A, Query(name="old name"), limit=5)).total == 0
    assert [e.id for e in (await store.find(A, Query(name="new name"), limit=5)).entries] == ["1"]


async def test_accounts_never_see_each_other(store: Store) -> None:
    await store.put(A, [Entry(id="1", emails=("same@example.com",))], seen_at=NOW)
    await store.put(B, [Entry(id="1", emails=("other@example.com",))], seen_at=NOW)
    assert (await store.find(B, Query(email="same@example.com"), limit=5)).total == 0
    assert (await store.get(A, ["1"]))["1"].emails == ("same@example.com",)
    await store.set_meta(B, {"k": "v"})
    assert await store.accounts() == [A, B]
    assert await store.meta(A) == {}


async def test_remove_forgets_the_contacts(store: Store) -> None:
    await store.put(A, [Entry(id="1", emails=("a@example.com",)), Entry(id="2")], seen_at=NOW)
    await store.remove(A, ["1", "nope"])
    assert list(await store.get(A, ["1", "2"])) == ["2"]
    assert (await store.find(A, Query(email="a@example.com"), limit=5)).total == 0


# --- dating -------------------------------------------------------------------------------------


async def test_bounds_narrow_to_the_intersection_of_held_and_carried(store: Store) -> None:
    await store.put(A, [Entry(id="1", created_after=at(1), created_before=at(20))], seen_at=NOW)
    await store.put(A, [Entry(id="1", created_after=at(5), created_before=at(25))], seen_at=NOW)
    held = (await store.get(A, ["1"]))["1"]
    assert (held.created_after, held.created_before) == (at(5), at(20))


async def test_bounds_that_do_not_overlap_are_replaced_by_the_carried_ones(store: Store) -> None:
    await store.put(A, [Entry(id="1", created_after=at(1), created_before=at(2))], seen_at=NOW)
    await store.put(A, [Entry(id="1", created_after=at(10), created_before=at(11))], seen_at=NOW)
    held = (await store.get(A, ["1"]))["1"]
    assert (held.created_after, held.created_before) == (at(10), at(11))


async def test_a_page_of_a_window_narrows_its_contacts_to_the_window(store: Store) -> None:
    await store.put(A, [Entry(id="1"), Entry(id="2", created_after=at(1))], seen_at=NOW)
    await store.put(A, [Entry(id="1")], seen_at=NOW, window=JUNE)
    await store.put(A, [Entry(id="2")], seen_at=NOW, window=window(7))
    one, two = (await store.get(A, ["1", "2"])).values()
    assert (one.created_after, one.created_before) == (JUNE.start, JUNE.end)
    assert (two.created_after, two.created_before) == (at(7), at(8) - timedelta(seconds=1))


async def test_an_unknown_bound_stays_unknown_until_a_listing_proves_it(store: Store) -> None:
    await store.put(A, [Entry(id="1", created_before=at(9))], seen_at=NOW)
    await store.put(A, [Entry(id="1")], seen_at=NOW)
    held = (await store.get(A, ["1"]))["1"]
    assert (held.created_after, held.created_before) == (None, at(9))


# --- find ---------------------------------------------------------------------------------------


async def test_find_by_email_ignores_case_and_finds_every_address_of_a_contact(store: Store) -> None:
    await store.put(A, [Entry(id="7", emails=("Jane.Doe@Example.COM", "jd@work.example"))], seen_at=NOW)
    for address in (" JANE.doe@example.com", "JD@work.example"):
        found = await store.find(A, find(Lookup(email=address.strip())), limit=5)
        assert [e.id for e in found.entries] == ["7"]


async def test_find_by_name_ranks_equal_then_prefix_then_contains_newest_first(store: Store) -> None:
    await store.put(
        A,
        [
            Entry(id="10", names=("Anna Jose",)),  # contains
            Entry(id="11", names=("Josefina",)),  # prefix
            Entry(id="12", names=("JOSÉ",)),  # equal, accent and case folded
            Entry(id="13", names=("Mary", "José")),  # equal, second name
            Entry(id="14", names=("José Núñez",)),  # prefix
            Entry(id="15", names=("Someone",)),  # no match
            Entry(id="9", names=("Mario Josè",)),  # contains
        ],
        seen_at=NOW,
    )
    found = await store.find(A, find(Lookup(name="jose")), limit=10)
    assert [e.id for e in found.entries] == ["13", "12", "14", "11", "10", "9"]
    assert found.total == 6


async def test_find_returns_at_most_limit_with_the_total_of_all_matches(store: Store) -> None:
    await store.put(A, [Entry(id=str(n), names=(f"Núñez {n}",)) for n in range(1, 31)], seen_at=NOW)
    found = await store.find(A, Query(name="nunez"), limit=4)
    assert [e.id for e in found.entries] == ["30", "29", "28", "27"]
    assert found.total == 30
    assert (await store.find(A, Query(name="nunez"), limit=0)).total == 30


async def test_find_by_a_two_letter_name_and_by_wildcard_characters_matches_them_literally(store: Store) -> None:
    await store.put(A, [Entry(id="1", names=("Bo Li",)), Entry(id="2", names=("50% off_sale",))], seen_at=NOW)
    assert [e.id for e in (await store.find(A, Query(name="li"), limit=5)).entries] == ["1"]
    assert [e.id for e in (await store.find(A, Query(name="0% o"), limit=5)).entries] == ["2"]
    assert (await store.find(A, Query(name="f_s"), limit=5)).total == 1
    assert (await store.find(A, Query(name="o%f"), limit=5)).total == 0


async def test_find_by_domain_matches_the_domain_and_its_subdomains_only(store: Store) -> None:
    await store.put(
        A,
        [
            Entry(id="1", emails=("a@acme.com",)),
            Entry(id="2", emails=("b@eu.Acme.com",)),
            Entry(id="3", emails=("c@notacme.com",)),
            Entry(id="4", emails=("d@acme.com.evil.org",)),
        ],
        seen_at=NOW,
    )
    for text in ("@acme.com", "ACME.com"):
        found = await store.find(A, find(Lookup(query=text)), limit=10)
        assert [e.id for e in found.entries] == ["2", "1"]


async def test_find_by_phone_matches_national_and_e164_forms(store: Store) -> None:
    await store.put(
        A,
        [
            Entry(id="1", phones=("+1 (415) 555-0100",)),
            Entry(id="2", phones=("(415) 555-0100",)),  # stored without a country
            Entry(id="3", phones=("+44 20 7946 0000",)),
            Entry(id="4", phones=("+1 415 555 0199",)),
        ],
        seen_at=NOW,
    )
    for lookup, region in ((Lookup(phone="(415) 555-0100"), "US"), (Lookup(phone="+14155550100"), None)):
        found = await store.find(A, find(lookup, region), limit=10)
        assert [e.id for e in found.entries] == ["2", "1"]
    unparsed = await store.find(A, find(Lookup(phone="415-555-0100")), limit=10)
    assert [e.id for e in unparsed.entries] == ["2", "1"]
    assert [e.id for e in (await store.find(A, find(Lookup(query="+442079460000")), limit=10)).entries] == ["3"]


async def test_find_ands_every_field_given(store: Store) -> None:
    await store.put(
        A,
        [
            Entry(id="1", emails=("jane@example.com",), names=("Jane Doe",), phones=("+14155550100",)),
            Entry(id="2", emails=("jane@example.com",), names=("John Roe",)),
        ],
        seen_at=NOW,
    )
    assert [
        e.id for e in (await store.find(A, find(Lookup(email="jane@example.com", name="doe")), limit=5)).entries
    ] == ["1"]
    both = find(Lookup(email="jane@example.com", phone="+14155550100"))
    assert [e.id for e in (await store.find(A, both, limit=5)).entries] == ["1"]
    assert (await store.find(A, find(Lookup(email="jane@example.com", name="nobody")), limit=5)).total == 0


async def test_find_by_text_searches_names_emails_phones_and_locations(store: Store) -> None:
    await store.put(
        A,
        [
            Entry(id="1", names=("Ana",), locations=("São Paulo, Brasil",)),
            Entry(id="2", emails=("paulo@example.com",)),
            Entry(id="3", names=("Paulo Coelho",)),
            Entry(id="4", phones=("+1 415 555 0100",), names=("X",)),
        ],
        seen_at=NOW,
    )
    found = await store.find(A, find(Lookup(query="Paulo")), limit=10)
    assert [e.id for e in found.entries] == ["3", "2", "1"]
    assert [e.id for e in (await store.find(A, Query(text="5550"), limit=10)).entries] == ["4"]


# --- the plan -----------------------------------------------------------------------------------


async def test_plan_adds_windows_once_and_lists_them_newest_first(store: Store) -> None:
    await store.plan(A, [window(1), window(3), window(2)])
    await store.put(A, [Entry(id="1")], seen_at=NOW, window=window(3), cursor="next")
    await store.plan(A, [window(3), window(3, "refresh")])
    assert [(w.start.day, w.kind, w.cursor) for w in await store.windows(A)] == [
        (3, "refresh", None),
        (3, "walk", "next"),
        (2, "walk", None),
        (1, "walk", None),
    ]


async def test_a_page_moves_the_cursor_and_counts_and_the_last_finishes_the_window(store: Store) -> None:
    await store.plan(A, [window(5)])
    claimed = await store.claim(A, owner="r1", now=NOW, lease_seconds=60, kinds=["walk"])
    assert claimed is not None
    assert claimed == window(5)
    await store.put(A, [Entry(id="1"), Entry(id="2")], seen_at=NOW, window=claimed, cursor="page-2")
    [held] = await store.windows(A)
    assert (held.cursor, held.contacts, held.requests, held.done) == ("page-2", 2, 1, False)
    later = NOW + timedelta(minutes=1)
    await store.put(A, [Entry(id="3")], seen_at=later, window=claimed, cursor="ignored", done=True)
    [held] = await store.windows(A)
    assert held == Window(
        start=claimed.start, end=claimed.end, kind="walk", done=True, contacts=3, requests=2, walked_at=later
    )
    # Done and released: nobody can claim it, and its old owner cannot renew it.
    assert await store.claim(A, owner="r2", now=NOW, lease_seconds=60, kinds=["walk"]) is None
    assert not await store.renew(A, claimed, owner="r1", until=later)


async def test_claim_takes_kinds_in_order_then_the_newest_start(store: Store) -> None:
    await store.plan(A, [window(1), window(9), window(4, "head"), window(2, "date"), window(8, "date")])
    order = [
        await store.claim(A, owner=f"r{n}", now=NOW, lease_seconds=60, kinds=["head", "date", "walk"]) for n in range(6)
    ]
    assert [(w.kind, w.start.day) if w else None for w in order] == [
        ("head", 4),
        ("date", 8),
        ("date", 2),
        ("walk", 9),
        ("walk", 1),
        None,
    ]
    assert await store.claim(A, owner="r9", now=NOW, lease_seconds=60, kinds=["refresh"]) is None


async def test_a_live_lease_is_skipped_a_lapsed_one_taken_over_and_an_owner_takes_its_own_back(store: Store) -> None:
    await store.plan(A, [window(1)])
    first = await store.claim(A, owner="r1", now=NOW, lease_seconds=60, kinds=["walk"])
    assert first is not None
    assert await store.claim(A, owner="r2", now=NOW + timedelta(seconds=59), lease_seconds=60, kinds=["walk"]) is None
    assert await store.claim(A, owner="r1", now=NOW + timedelta(seconds=1), lease_seconds=60, kinds=["walk"]) == first
    assert await store.renew(A, first, owner="r1", until=NOW + timedelta(seconds=120))
    assert await store.claim(A, owner="r2", now=NOW + timedelta(seconds=119), lease_seconds=60, kinds=["walk"]) is None
    taken = await store.claim(A, owner="r2", now=NOW + timedelta(seconds=120), lease_seconds=60, kinds=["walk"])
    assert taken == first
    assert not await store.renew(A, first, owner="r1", until=NOW + timedelta(seconds=500))
    assert await store.renew(A, first, owner="r2", until=NOW + timedelta(seconds=500))


async def test_release_frees_the_window_and_keeps_its_cursor(store: Store) -> None:
    await store.plan(A, [window(1)])
    held = await store.claim(A, owner="r1", now=NOW, lease_seconds=600, kinds=["walk"])
    assert held is not None
    await store.put(A, [Entry(id="1")], seen_at=NOW, window=held, cursor="page-2")
    await store.release(A, held, owner="someone-else")
    assert await store.claim(A, owner="r2", now=NOW, lease_seconds=600, kinds=["walk"]) is None
    await store.release(A, held, owner="r1")
    again = await store.claim(A, owner="r2", now=NOW, lease_seconds=600, kinds=["walk"])
    assert again is not None
    assert again.cursor == "page-2"


async def test_drop_removes_done_windows_only_and_keeps_what_they_proved(store: Store) -> None:
    await store.plan(A, [window(1, "head"), window(2, "head")])
    await store.put(A, [Entry(id="1")], seen_at=NOW, window=window(1, "head"), done=True)

    await store.drop(A, [window(1, "head"), window(2, "head")])

    assert [(w.start, w.kind, w.done) for w in await store.windows(A)] == [(window(2).start, "head", False)]
    held = (await store.get(A, ["1"]))["1"]
    assert (held.created_after, held.created_before) == (window(1).start, window(1).end)


async def test_reopen_walks_a_done_window_again_from_its_first_page_as_the_new_kind(store: Store) -> None:
    await store.plan(A, [window(1), window(1, "refresh")])
    await store.put(A, [Entry(id="1")], seen_at=NOW, window=window(1), done=True)
    await store.reopen(A, window(1), kind="refresh")
    [reopened] = await store.windows(A)
    assert (reopened.kind, reopened.done, reopened.cursor, reopened.walked_at) == ("refresh", False, None, NOW)
    claimed = await store.claim(A, owner="r1", now=NOW, lease_seconds=60, kinds=["refresh"])
    assert claimed is not None
    assert claimed.kind == "refresh"


async def test_two_replicas_claiming_at_once_never_hold_the_same_window(stores: Callable[[], Store]) -> None:
    first, second = stores(), stores()
    await second.open()
    await first.plan(A, [window(day) for day in range(1, 21)])
    claims: list[tuple[str, Window]] = []

    async def claimer(store: Store, name: str) -> None:
        # A new owner each time: an owner would be handed back the window it already holds.
        for turn in range(100):
            owner = f"{name}-{turn}"
            held = await store.claim(A, owner=owner, now=NOW, lease_seconds=300, kinds=["walk"])
            if held is None:
                return
            claims.append((owner, held))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for n in range(8):
                group.start_soon(claimer, first, f"first-{n}")
                group.start_soon(claimer, second, f"second-{n}")
    assert sorted(w.start.day for _, w in claims) == list(range(1, 21))


# --- facts, status, sweep, forget ----------------------------------------------------------------


async def test_meta_merges(store: Store) -> None:
    await store.set_meta(A, {"history_from": "2019-01-01", "x": "1"})
    await store.set_meta(A, {"x": "2"})
    assert await store.meta(A) == {"history_from": "2019-01-01", "x": "2"}


async def test_status_counts_contacts_by_how_precisely_they_are_dated(store: Store) -> None:
    await store.put(
        A,
        [
            Entry(id="1", created_after=at(1, 3), created_before=at(1, 3)),
            Entry(id="2", created_after=at(1), created_before=at(2, 0, 1)),  # one day, both ends inclusive
            Entry(id="3", created_after=at(1), created_before=at(2, 0, 2)),  # a second more: a month
            Entry(id="4", created_after=datetime(2026, 5, 1, tzinfo=UTC), created_before=at(1, 0, 1)),  # 31 days
            Entry(id="5", created_after=datetime(2026, 1, 1, tzinfo=UTC), created_before=at(1)),
            Entry(id="6", created_after=at(1)),
            Entry(id="7"),
        ],
        seen_at=NOW,
    )
    await store.plan(A, [window(1), window(2), window(3)])
    await store.put(A, [], seen_at=NOW, window=window(2), done=True)
    await store.put(A, [], seen_at=NOW + timedelta(hours=1), window=window(3), done=True)
    status = await store.status(A)
    assert status.contacts == 7
    assert dict(status.dated) == {"second": 1, "day": 1, "month": 2, "coarser": 1, "unknown": 2}
    assert (status.windows, status.windows_done) == (3, 2)
    assert status.last_sync == NOW + timedelta(hours=1)
    assert (status.covered_from, status.covered_to) == (window(2).start, window(3).end)
    empty = await store.status(B)
    assert (empty.contacts, empty.windows, empty.last_sync, empty.covered_from) == (0, 0, None, None)


async def test_sweep_removes_only_the_unseen_contacts_dated_inside_the_window(store: Store) -> None:
    before = NOW - timedelta(hours=1)
    await store.put(A, [Entry(id="1", emails=("gone@example.com",)), Entry(id="2")], seen_at=before, window=window(5))
    await store.put(A, [Entry(id="3", created_after=at(5), created_before=at(9))], seen_at=before)  # not inside
    await store.put(A, [Entry(id="4")], seen_at=before)  # undated
    await store.put(A, [Entry(id="2")], seen_at=NOW, window=window(5), done=True)
    assert await store.sweep(A, window(5), seen_before=NOW) == ["1"]
    assert sorted(await store.get(A, ["1", "2", "3", "4"])) == ["2", "3", "4"]
    assert (await store.find(A, Query(email="gone@example.com"), limit=5)).total == 0


async def test_forget_deletes_everything_and_the_index_starts_again_empty(store: Store) -> None:
    await store.put(A, [Entry(id="1", names=("Jane",))], seen_at=NOW, window=window(1))
    await store.set_meta(B, {"k": "v"})
    await store.forget()
    assert await store.accounts() == []
    assert await store.get(A, ["1"]) == {}
    assert await store.windows(A) == []
    await store.put(A, [Entry(id="2", names=("Jane",))], seen_at=NOW)
    assert [e.id for e in (await store.find(A, Query(name="jane"), limit=5)).entries] == ["2"]


async def test_a_store_goes_on_in_a_new_index_after_another_process_forgot_it(stores: Callable[[], Store]) -> None:
    server, cli = stores(), stores()
    await server.put(A, [Entry(id="1", names=("Jane",))], seen_at=NOW)
    await cli.forget()
    assert await server.get(A, ["1"]) == {}
    await server.put(A, [Entry(id="2", names=("Jane",))], seen_at=NOW)
    assert list(await cli.get(A, ["1", "2"])) == ["2"]
