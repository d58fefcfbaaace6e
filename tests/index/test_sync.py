"""The index's sync against the real sandbox and the real SQLite (and PostgreSQL) stores.

The key invariant, checked everywhere: every contact's real creation time (the sandbox's own)
lies within the bounds the index holds for it, whatever the timezone and its DST changes.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts_mcp.server.budgets.background import Background
from contacts_mcp.server.index.base import Store, Window, WindowKind
from contacts_mcp.server.index.sync import HISTORY_START, Report, Sync
from contacts_mcp.server.sandbox import SANDBOX_KEYS, sandbox_of
from contacts_mcp.server.settings import Rate
from tests.index.sync_support import (
    ACCOUNT,
    NOW,
    add_contact,
    bounds_hold,
    cometly,
    contents,
    make_sync,
    space,
    sqlite,
    truth,
)
from tests.sandbox.serving import serve

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
DST_ZONES = (
    "America/New_York",
    "Europe/London",
    "America/Santiago",  # falls back at midnight: a day's last hour is shown twice
    "America/Havana",  # springs forward at midnight: a day's first hour never exists
    "Asia/Beirut",  # changes at midnight too
    "Australia/Lord_Howe",  # a half-hour change
    "Asia/Kolkata",  # no DST, an offset of half an hour
    "UTC",
)


def local_month(moment: datetime, zone: ZoneInfo) -> tuple[int, int]:
    wall = moment.astimezone(zone)
    return wall.year, wall.month


async def test_the_backfill_indexes_every_contact_and_dates_each_to_its_month(tmp_path: Path) -> None:
    app = space(contacts=500, span_days=120, timezone="America/New_York")
    real = truth(app)
    zone = ZoneInfo("America/New_York")

    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app, timezone="America/New_York") as source:
            report = await make_sync(store, source).run()
            held = await store.get(ACCOUNT, list(real))
            status = await store.status(ACCOUNT)

    assert status.contacts == len(real) == len(held)
    assert bounds_hold(held, real) == []
    for entry in held.values():
        assert entry.created_after is not None
        assert entry.created_before is not None
        assert local_month(entry.created_after, zone) == local_month(entry.created_before, zone)
    # Searchable and dated to the month: the lower bound, plus the empty month and the rest that prove history's start.
    assert report.requests <= report.lower_bound + 2


async def test_the_date_phase_dates_every_contact_to_its_day_at_about_one_request_a_day(tmp_path: Path) -> None:
    app = space(contacts=300, span_days=60, timezone="Europe/Berlin")
    real = truth(app)
    zone = ZoneInfo("Europe/Berlin")

    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app, timezone="Europe/Berlin") as source:
            sync = make_sync(store, source)
            await sync.run()
            dating = await sync.run(kinds=("date",))
            held = await store.get(ACCOUNT, list(real))
            start = datetime.fromisoformat((await store.meta(ACCOUNT))[HISTORY_START])

    assert bounds_hold(held, real) == []
    for entry in held.values():
        assert entry.created_after is not None
        assert entry.created_before is not None
        assert entry.created_after.astimezone(zone).date() == entry.created_before.astimezone(zone).date()
    days = (NOW - start).days + 1
    assert dating.requests <= days + 2


def transitions(zone: ZoneInfo, start: datetime, end: datetime) -> list[int]:
    """The Unix times at which `zone`'s offset changes in [start, end] (to the hour, then the second)."""
    found: list[int] = []
    moment = start
    offset = moment.astimezone(zone).utcoffset()
    while moment < end:
        following = moment + timedelta(hours=1)
        if following.astimezone(zone).utcoffset() != offset:
            low, high = int(moment.timestamp()), int(following.timestamp())
            while high - low > 1:
                mid = (low + high) // 2
                if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == offset:
                    low = mid
                else:
                    high = mid
            found.append(high)
            offset = following.astimezone(zone).utcoffset()
        moment = following
    return found


@functools.cache
def zone_transitions(name: str) -> tuple[int, ...]:
    return tuple(transitions(ZoneInfo(name), NOW - timedelta(days=400), NOW))


@st.composite
def creation_times(draw: st.DrawFn, zone: str) -> list[int]:
    """Creation times that crowd DST changes and month and day boundaries, with a few far older ones."""
    latest = int(NOW.timestamp()) - 60
    near = list(zone_transitions(zone))
    times: list[int] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["dst", "dst", "recent", "old"] if near else ["recent", "old"]))
        if kind == "dst":
            times.append(draw(st.sampled_from(near)) + draw(st.integers(-7200, 7200)))
        elif kind == "recent":
            times.append(draw(st.integers(latest - 400 * 86_400, latest)))
        else:
            times.append(draw(st.integers(int(datetime(2000, 1, 2, tzinfo=UTC).timestamp()), latest)))
    return [min(t, latest) for t in times]


@st.composite
def spaces(draw: st.DrawFn) -> tuple[str, str, list[int]]:
    zone = draw(st.sampled_from(DST_ZONES))
    return zone, draw(st.sampled_from(["earlier", "later"])), draw(creation_times(zone))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=spaces())
def test_every_contacts_real_creation_time_lies_within_its_bounds_in_any_timezone(
    drawn: tuple[str, str, list[int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    zone, ambiguous, times = drawn
    app = space(times=times, timezone=zone, ambiguous=ambiguous)
    real = truth(app)
    path = tmp_path_factory.mktemp("index") / "index.db"

    async def check() -> None:
        with anyio.fail_after(120):
            async with sqlite(path) as store, cometly(app=app, timezone=zone) as source:
                sync = make_sync(store, source)
                await sync.run()
                walked = await store.get(ACCOUNT, list(real))
                assert (await store.status(ACCOUNT)).contacts == len(real)
                assert bounds_hold(walked, real) == []
                await sync.run(kinds=("date",))
                dated = await store.get(ACCOUNT, list(real))
                assert bounds_hold(dated, real) == []
                for entry in dated.values():
                    assert entry.created_after is not None
                    assert entry.created_before is not None
                    assert entry.created_before - entry.created_after <= timedelta(days=1, hours=2)

    try:
        anyio.run(check)
    finally:
        sandbox_of(app).store.close()


def run_script(root: str, db: Path, per_page: int, *, kill_after: int | None = None) -> int:
    """Run the sync script; with `kill_after`, SIGKILL it once it has printed that many pages. Pages printed."""
    pages = 0
    with subprocess.Popen(
        [sys.executable, "-m", "tests.index.sync_support", root, str(db), str(per_page)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if line.startswith("page"):
                    pages += 1
                    if kill_after is not None and pages >= kill_after:
                        os.kill(process.pid, signal.SIGKILL)
                        break
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if kill_after is None:
        assert process.returncode == 0
    else:
        assert process.returncode == -signal.SIGKILL
    return pages


def test_a_sync_killed_mid_walk_resumes_to_the_same_index_as_an_uninterrupted_run(tmp_path: Path) -> None:
    app = space(contacts=400, span_days=60)
    real = truth(app)
    killed = resumed_pages = fresh_pages = 0
    for root in serve(app):  # the sandbox stays up across the runs, as Cometly would
        killed = run_script(root, tmp_path / "resumed.db", per_page=40, kill_after=2)
        assert killed == 2
        resumed_pages = run_script(root, tmp_path / "resumed.db", per_page=40)
        fresh_pages = run_script(root, tmp_path / "fresh.db", per_page=40)
    # It went on from the page after the last one committed: at most the page in flight at the kill is read twice.
    assert killed + resumed_pages <= fresh_pages + 1

    async def read(path: Path) -> tuple[dict[str, tuple[object, ...]], set[tuple[datetime, datetime, str, bool]]]:
        async with sqlite(path) as store:
            windows = await store.windows(ACCOUNT)
            return await contents(store, list(real)), {(w.start, w.end, w.kind, w.done) for w in windows}

    resumed, resumed_plan = anyio.run(read, tmp_path / "resumed.db")
    fresh, fresh_plan = anyio.run(read, tmp_path / "fresh.db")
    assert len(fresh) == len(real)
    assert resumed == fresh
    assert resumed_plan == fresh_plan


async def test_a_contact_created_upstream_during_a_sync_appears_after_the_next_catch_up(tmp_path: Path) -> None:
    app = space(contacts=200, span_days=40)
    now = [NOW]
    created: list[str] = []

    def during(report: Report, window: Window) -> None:
        if not created:  # mid-walk, after the window that reaches now was planned
            created.append(add_contact(app, int(NOW.timestamp()) + 30))

    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app) as source:
            sync = make_sync(store, source, clock=lambda: now[0])
            await sync.run(progress=during)
            before = await store.get(ACCOUNT, created)
            now[0] = NOW + timedelta(minutes=1)
            await sync.run()
            after = await store.get(ACCOUNT, created)

    assert created
    assert before == {}
    entry = after[created[0]]
    assert entry.created_after is not None
    assert entry.created_before is not None
    assert entry.created_after <= NOW + timedelta(seconds=30) <= entry.created_before


async def test_catch_up_rounds_keep_the_plan_small_and_lose_no_contact(tmp_path: Path) -> None:
    app = space(contacts=50, span_days=20)
    now = [NOW]
    created: list[str] = []

    with anyio.fail_after(120):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app) as source:
            sync = make_sync(store, source, clock=lambda: now[0])
            await sync.run()
            for minute in range(1, 121):  # two hours of a server's rounds, a new contact every 10 minutes
                now[0] = NOW + timedelta(minutes=minute)
                if minute % 10 == 0:
                    created.append(add_contact(app, int(now[0].timestamp()) - 5))
                await sync.run(kinds=("head", "walk", "date"))
            heads = [w for w in await store.windows(ACCOUNT) if w.kind == "head"]
            held = await store.get(ACCOUNT, created)

    assert len(heads) <= 2  # not one per round: 120 rounds
    assert set(held) == set(created)


async def test_a_contact_deleted_upstream_disappears_after_a_refresh(tmp_path: Path) -> None:
    app = space(contacts=200, span_days=70)
    real = truth(app)
    gone = sorted(real)[len(real) // 3]
    now = [NOW]

    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app) as source:
            sync = make_sync(store, source, clock=lambda: now[0], refresh_after=timedelta(days=1))
            await sync.run()
            assert gone in await store.get(ACCOUNT, [gone])
            sandbox_of(app).store.delete([int(gone)])
            now[0] = NOW + timedelta(days=2)
            await sync.run(kinds=("head", "refresh"))
            held = await store.get(ACCOUNT, list(real))

    assert gone not in held
    assert set(held) == set(real) - {gone}


async def test_two_replicas_on_one_store_never_walk_the_same_window_and_index_everything_once(
    stores: Callable[[], Store],
) -> None:
    app = space(contacts=300, span_days=45)
    real = truth(app)
    walkers: dict[tuple[datetime, datetime, str], set[str]] = {}

    def noting(owner: str) -> Callable[[Report, Window], None]:
        def note(report: Report, window: Window) -> None:
            walkers.setdefault((window.start, window.end, window.kind), set()).add(owner)

        return note

    first, second = stores(), stores()
    await first.open()
    await second.open()
    with anyio.fail_after(120):
        async with cometly(app=app) as source:
            replicas = [make_sync(store, source, owner=name) for store, name in ((first, "a"), (second, "b"))]
            reports: dict[str, Report] = {}

            async def run(sync: Sync, name: str) -> None:
                phases: list[Sequence[WindowKind]] = [("walk", "head"), ("date",)]
                for kinds in phases:
                    reports.setdefault(name, Report()).requests += (
                        await sync.run(kinds=kinds, progress=noting(name))
                    ).requests

            async with anyio.create_task_group() as group:
                for sync, name in zip(replicas, "ab", strict=True):
                    group.start_soon(run, sync, name)
            windows = await first.windows(ACCOUNT)
            held = await first.get(ACCOUNT, list(real))

    assert all(len(owners) == 1 for owners in walkers.values()), walkers
    assert all(w.done for w in windows)
    assert set(walkers) == {(w.start, w.end, w.kind) for w in windows if w.contacts or w.requests}
    assert sum(r.requests for r in reports.values()) == sum(w.requests for w in windows)
    assert set(held) == set(real)
    assert bounds_hold(held, real) == []


async def test_a_429_on_a_sync_request_backs_the_sync_off_instead_of_failing_it(tmp_path: Path) -> None:
    # Another client on the same key uses up the Space's list limit after every page, unseen by our budget,
    # so the sync's next request meets a 429: it must wait it out and go on.
    app = space(contacts=50, span_days=20, rate_limits={"cometly.list_contacts": (5, 1.0)})
    real = truth(app)
    limiter = sandbox_of(app).limiter
    limited: list[int] = []

    def other_client(report: Report, window: Window) -> None:
        while limiter.hit("cometly.list_contacts", SANDBOX_KEYS["cometly"]).allowed:
            pass
        limited.append(report.requests)

    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app, rates=(Rate(1000, 1.0),)) as source:
            sync = make_sync(store, source, priority=Background(1.0, poll_seconds=0.05))
            report = await sync.run(progress=other_client)
            held = await store.get(ACCOUNT, list(real))

    assert len(limited) == report.requests >= 3
    assert set(held) == set(real)
    assert bounds_hold(held, real) == []
