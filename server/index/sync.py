"""The contact index's sync: copy what Cometly's list returns, and prove when each contact was created.

Cometly has no search and shows no creation time, but its list takes a creation-date window. The
sync walks windows (`base.Window`), page by page at 5000 a page, committing each page with the
window's next cursor, so a sync killed at any point resumes at the next page. Every window it
walks narrows its contacts' creation bounds to the window (`Store.put`).

The plan (kept in the store, so replicas share it and a restart keeps it):

- Backfill (`walk`): calendar months of the Space's timezone, from the current month (up to the
  moment of the first plan) back, one at a time. When a month comes back empty, everything older is
  listed as one "rest" window, from `HISTORY_FLOOR` to that month: empty, and history starts at the
  empty month (`history_start`); not empty, and it is walked like any window (its contacts get
  coarse bounds, narrowed by the dating below). Searchable and dated to the month costs about one
  request per 5000 contacts plus one per month, plus two for the empty month and the rest.
- Dating (`date`): a done window with contacts is split: into its days when it lies within one
  month (one request per day of history), else into two halves at a month boundary (so a rest
  window with few old contacts costs a few requests, not one per month since 2000).
- Catch-up (`head`): once per run, from the end of the newest window (less `HEAD_OVERLAP`, which is
  harmless: bounds are intersections) to now, so contacts created since, during a sync too, appear.
- `refresh`: a month (or the rest) walked longer ago than `refresh_after` is walked again, and once
  that walk completes, `Store.sweep` removes the contacts it no longer saw (deleted or merged upstream).

Timezones: windows are wall time in the Space's timezone, which the list reads them in. A wall time
that a DST change shows twice or never has no single meaning, and we do not know which one Cometly
picks, so a window never starts or ends on one: a start moves back and an end moves forward to the
nearest wall time shown exactly once. Its UTC bounds are then exact whatever Cometly picks, and the
window still holds every contact of the intended one (windows overlap by the moved part; harmless).

Requests go at `Background` priority: below every tool call, within a share of each budget.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import anyio

from ..budgets.background import Background, Priority
from ..errors import ContactsError
from .base import Entry, Store, Window, WindowKind
from .dating import PER_PAGE, Source

logger = logging.getLogger(__name__)

HISTORY_FLOOR = date(2000, 1, 1)
"""No Cometly Space holds contacts older than this (local date): the rest window starts here."""
LEASE_SECONDS = 120.0
"""How long a claim holds a window without renewal; renewed after every page."""
HEAD_OVERLAP = timedelta(seconds=5)
"""How far a catch-up window reaches back into the last one: covers a few seconds of clock skew."""
MIN_HEAD = timedelta(seconds=1)
"""Catch-up is planned once at least this much time has passed since the newest window's end."""
MAX_STEPS = 2 * 86_400
"""The most seconds a window bound moves off a wall time a DST change shows twice or skips (Samoa skipped a day)."""
ERROR_RETRY_SECONDS = 60.0

BACKFILLED = "backfilled_at"
"""Meta (ISO 8601 UTC): when the backfill had walked the whole history; `service.ContactIndex` reads it."""
HISTORY_START = "history_start"
"""Meta (ISO 8601 UTC): where the Space's history starts: the start of the oldest month with contacts
(the month before it was empty, and so was everything older), or `HISTORY_FLOOR`."""
OLDEST_MONTH = "oldest_month"
"""Meta: the backfill's oldest planned month, `YYYY-MM` in the Space's timezone."""
FIRST_WINDOW = "first_window"
"""Meta: the backfill's first window, the current month up to the first plan, as `<start>/<end>` (ISO 8601 UTC)."""
REST = "rest"
"""Meta: the rest window, as `<start>/<end>` (ISO 8601 UTC), once planned."""
REFRESH_BEGAN = "refresh_began:"
"""Meta prefix (then `<start>/<end>`): when the refresh walk of a window began, for its sweep."""

Progress = Callable[["Report", Window], Awaitable[None] | None]
"""Told after every page: the run's report so far and the window walked (for a progress bar)."""


@dataclass
class Report:
    """What a run did, and the least any sync could have spent for the same result."""

    requests: int = 0
    """List requests sent (pages walked)."""
    contacts: int = 0
    """Contacts seen (a contact seen by two windows counts twice)."""
    windows: int = 0
    """Windows whose walk completed."""
    indexed: int = 0
    """Contacts the index holds for the account at the end."""
    months: int = 0
    """Calendar months from the start of history to now (dating boundaries)."""

    @property
    def lower_bound(self) -> int:
        """ceil(N / 5000) + months: pages to see every contact once, plus one request per month boundary proved."""
        return math.ceil(self.indexed / PER_PAGE) + self.months


class Sync:
    """The sync of one account's index from Cometly; replicas on one store share its work."""

    def __init__(
        self,
        store: Store,
        source: Source,
        *,
        account: str,
        owner: str,
        clock: Callable[[], datetime] | None = None,
        priority: Priority | None = None,
        refresh_after: timedelta | None = timedelta(days=7),
        lease_seconds: float = LEASE_SECONDS,
        per_page: int = PER_PAGE,
        on_backfilled: Callable[[], None] | None = None,
    ) -> None:
        """Args:
        store: The index (opened).
        source: Cometly.
        account: The account's fingerprint (never the key).
        owner: This replica's name in leases (unique per process).
        clock: The current aware time; default the system clock.
        priority: How requests take their slots; default `Background()`.
        refresh_after: Walk a month again once its last walk is this old; None: never.
        lease_seconds: How long a claim lives without renewal.
        per_page: Contacts per list request (Cometly's most is 5000).
        on_backfilled: Called once the backfill has walked the whole history.
        """
        self._store = store
        self._source = source
        self._zone = source.zone
        self.account = account
        self._owner = owner
        self._clock = clock or (lambda: datetime.now(UTC))
        self._priority = priority if priority is not None else Background()
        self._refresh_after = refresh_after
        self._lease = lease_seconds
        self._per_page = per_page
        self._on_backfilled = on_backfilled

    def now(self) -> datetime:
        """The current time, UTC, to the whole second (Cometly's windows have whole seconds)."""
        return self._clock().astimezone(UTC).replace(microsecond=0)

    async def run(self, *, kinds: Sequence[WindowKind] = ("walk", "head"), progress: Progress | None = None) -> Report:
        """Plan, then walk windows of `kinds` until none is left to claim (another replica's leases are skipped).

        Returns:
            What was done.

        Raises:
            ContactsError: A list request failed (after its retries); the walk resumes at the
                next run from the last page committed.
            IndexUnavailable: The store failed.
        """
        report = Report()
        await self.plan(head=True)
        while True:
            window = await self._store.claim(
                self.account, owner=self._owner, now=self.now(), lease_seconds=self._lease, kinds=kinds
            )
            if window is None:
                await self.plan(head=False)  # a walk just finished may have planned what comes next
                window = await self._store.claim(
                    self.account, owner=self._owner, now=self.now(), lease_seconds=self._lease, kinds=kinds
                )
                if window is None:
                    break
            finished = report.windows
            await self._walk(window, report, progress)
            if report.windows > finished:  # a finished window may have planned what comes next
                await self.plan(head=False)
        await self._tally(report)
        return report

    async def run_forever(self, interval: float) -> None:
        """The server's background task: catch-up, then backfill, dating and refresh, every `interval` seconds.

        Errors are logged (never a key) and retried at the next round; only cancellation ends it.
        """
        while True:
            try:
                report = await self.run(kinds=("head", "walk", "date", "refresh"))
                if report.requests:
                    logger.info(
                        "index sync: %d requests, %d contacts seen, %d windows done",
                        report.requests,
                        report.contacts,
                        report.windows,
                    )
                wait = interval
            except ContactsError as exc:
                logger.warning("index sync failed (%s); retried later", exc.render())
                wait = max(interval, ERROR_RETRY_SECONDS)
            except Exception:  # a bug of ours must not end the server's other work
                logger.exception("index sync failed unexpectedly; retried later")
                wait = max(interval, ERROR_RETRY_SECONDS)
            await anyio.sleep(wait)

    async def note(self, entries: Sequence[Entry]) -> None:
        """Keep contacts created or changed through this server at once, with the bounds they carry."""
        if entries:
            await self._store.put(self.account, entries, seen_at=self.now())

    # --- walking --------------------------------------------------------------------------------

    async def _walk(self, window: Window, report: Report, progress: Progress | None) -> None:
        key = REFRESH_BEGAN + _bounds_text(window.start, window.end)
        began: datetime | None = None
        if window.kind == "refresh":
            meta = await self._store.meta(self.account)
            if window.cursor is None or key not in meta:
                began = self.now()
                await self._store.set_meta(self.account, {key: began.isoformat()})
            else:
                began = datetime.fromisoformat(meta[key])
        cursor = window.cursor
        finished = False
        try:
            while True:
                entries, next_cursor = await self._list(window, cursor)
                report.requests += 1
                now = self.now()
                if not await self._store.renew(
                    self.account, window, owner=self._owner, until=now + timedelta(seconds=self._lease)
                ):
                    logger.warning("index sync: lost the lease on a window to another replica; leaving it")
                    finished = True  # it is not ours to release
                    return
                done = next_cursor is None
                await self._store.put(self.account, entries, seen_at=now, window=window, cursor=next_cursor, done=done)
                report.contacts += len(entries)
                if progress is not None:
                    told = progress(report, window)
                    if told is not None:
                        await told
                if done:
                    finished = True
                    report.windows += 1
                    break
                cursor = next_cursor
        finally:
            if not finished:
                with anyio.CancelScope(shield=True):
                    await self._store.release(self.account, window, owner=self._owner)
        if began is not None:
            removed = await self._store.sweep(self.account, window, seen_before=began)
            if removed:
                logger.info("index sync: %d contacts gone upstream were removed", len(removed))

    async def _list(self, window: Window, cursor: str | None) -> tuple[list[Entry], str | None]:
        """One page, the lease renewed meanwhile: waiting for room in a busy budget can outlast a lease."""
        page: tuple[list[Entry], str | None] | None = None
        failure: ContactsError | None = None
        async with anyio.create_task_group() as group:

            async def keep() -> None:
                while True:
                    await anyio.sleep(self._lease / 3)
                    until = self.now() + timedelta(seconds=self._lease)
                    try:
                        await self._store.renew(self.account, window, owner=self._owner, until=until)
                    except ContactsError as exc:  # the page's own commit will meet the store's failure
                        logger.warning("could not renew the lease of an index window: %s", exc.kind)

            group.start_soon(keep)
            try:
                page = await self._source.list_entries(
                    window.start, window.end, cursor=cursor, per_page=self._per_page, priority=self._priority
                )
            except ContactsError as exc:  # raised below, bare: a task group would wrap it in a group
                failure = exc
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        assert page is not None
        return page

    async def _tally(self, report: Report) -> None:
        status = await self._store.status(self.account)
        report.indexed = status.contacts
        start = _parse((await self._store.meta(self.account)).get(HISTORY_START))
        if start is not None:
            report.months = _months_between(_wall(start, self._zone), _wall(self.now(), self._zone))

    # --- planning -------------------------------------------------------------------------------

    async def plan(self, *, head: bool = True) -> None:
        """Add what is due to the plan: the backfill's next window, dating, refreshes and (with `head`) catch-up.

        Idempotent: it reads the plan and the account's facts from the store, so replicas and
        restarts plan the same windows.
        """
        now = self.now()
        windows = await self._store.windows(self.account)
        meta = await self._store.meta(self.account)
        known = {(w.start, w.end) for w in windows}
        facts: dict[str, str] = {}
        new: list[Window] = []

        def add(start: datetime, end: datetime, kind: WindowKind) -> None:
            if end - start < timedelta(seconds=1):
                start = end - timedelta(seconds=1)  # Cometly needs end after start: widen, never narrow
            if (start, end) not in known:
                known.add((start, end))
                new.append(Window(start=start, end=end, kind=kind))

        by_bounds = {(w.start, w.end): w for w in windows}
        self._plan_backfill(now, meta, by_bounds, add, facts)
        for window in windows:
            if window.done and window.contacts > 0:
                for start, end in self._split(window.start, window.end):
                    add(start, end, "date")
        if head and windows:
            newest = max(w.end for w in windows)
            if now - newest >= MIN_HEAD:
                start = _resolve(_wall(newest - HEAD_OVERLAP, self._zone), self._zone, "back")
                end = _resolve(_wall(now, self._zone), self._zone, "back")
                if end > newest:
                    add(start, end, "head")
        reopen = self._due_refreshes(now, windows, meta, add) if self._refresh_after is not None else []
        await self._store.drop(self.account, _spent_heads(windows))
        if new:
            await self._store.plan(self.account, new)
        for window in reopen:
            await self._store.reopen(self.account, window, kind="refresh")
        if facts:
            await self._store.set_meta(self.account, facts)
        if BACKFILLED not in meta and (facts.get(HISTORY_START) or meta.get(HISTORY_START)):
            planned = await self._store.windows(self.account)
            if all(w.done for w in planned if w.kind == "walk"):
                await self._store.set_meta(self.account, {BACKFILLED: now.isoformat()})
                logger.info("index sync: the backfill has walked the whole history")
                if self._on_backfilled is not None:
                    self._on_backfilled()

    def _plan_backfill(
        self,
        now: datetime,
        meta: dict[str, str],
        by_bounds: dict[tuple[datetime, datetime], Window],
        add: Callable[[datetime, datetime, WindowKind], None],
        facts: dict[str, str],
    ) -> None:
        """The backfill's next window: the month before the oldest walked, the rest, or nothing (history found)."""
        if HISTORY_START in meta:
            return
        zone = self._zone
        first = _parse_bounds(meta.get(FIRST_WINDOW))
        oldest = meta.get(OLDEST_MONTH)
        if first is None or oldest is None:  # the first plan: the current month, up to now
            wall = _wall(now, zone)
            start = _month_bounds(wall.year, wall.month, zone)[0]
            add(start, now, "walk")
            facts[FIRST_WINDOW] = _bounds_text(start, now)
            facts[OLDEST_MONTH] = _month_key(wall)
            return
        rest = _parse_bounds(meta.get(REST))
        if rest is not None:
            walked = by_bounds.get(rest)
            if walked is not None and walked.done:
                # Empty: history starts after the empty month (the oldest planned). Not empty: it holds what is older.
                history = rest[0]
                if walked.contacts == 0:
                    year, month = (int(part) for part in oldest.split("-"))
                    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                    current = _month_key(_wall(first[1], zone))
                    history = first[0] if f"{year:04d}-{month:02d}" >= current else _month_bounds(year, month, zone)[0]
                facts[HISTORY_START] = history.isoformat()
            return
        year, month = (int(part) for part in oldest.split("-"))
        # The first window is its month cut at the first plan; its start may sit just before the month.
        bounds = first if oldest == _month_key(_wall(first[1], zone)) else _month_bounds(year, month, zone)
        walked = by_bounds.get(bounds)
        if walked is None or not walked.done:
            return
        floor = _month_bounds(HISTORY_FLOOR.year, HISTORY_FLOOR.month, zone)[0]
        if walked.start <= floor:
            facts[HISTORY_START] = floor.isoformat()
        elif walked.contacts > 0:
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
            add(*_month_bounds(year, month, zone), "walk")
            facts[OLDEST_MONTH] = f"{year:04d}-{month:02d}"
        else:
            end = _month_bounds(year, month, zone)[0] - timedelta(seconds=1)
            add(floor, end, "walk")
            facts[REST] = _bounds_text(floor, end)

    def _due_refreshes(
        self,
        now: datetime,
        windows: Sequence[Window],
        meta: dict[str, str],
        add: Callable[[datetime, datetime, WindowKind], None],
    ) -> list[Window]:
        """Done months (and the rest) walked longer ago than `refresh_after`; and months completed since
        the backfill planned them, which only catch-up windows covered, planned as `refresh` once."""
        assert self._refresh_after is not None
        zone = self._zone
        due = now - self._refresh_after
        rest = _parse_bounds(meta.get(REST))
        reopen: list[Window] = []
        months: set[tuple[datetime, datetime]] = set()
        oldest = meta.get(OLDEST_MONTH)
        if oldest is not None:
            year, month = (int(part) for part in oldest.split("-"))
            today = _wall(now, zone)
            while (year, month) < (today.year, today.month):
                months.add(_month_bounds(year, month, zone))
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        held = {(w.start, w.end): w for w in windows if w.kind != "head"}
        for bounds in sorted(months):
            if bounds not in held:
                add(*bounds, "refresh")
        for window in windows:
            bounds = (window.start, window.end)
            backbone = (bounds in months or bounds == rest) and window.kind != "date"
            if backbone and window.done and window.walked_at is not None and window.walked_at <= due:
                reopen.append(window)
        return reopen

    def _split(self, start: datetime, end: datetime) -> Iterable[tuple[datetime, datetime]]:
        """The dating windows of a done window: its days within one month, else two halves at a month boundary."""
        zone = self._zone
        first, last = _wall(start, zone), _wall(end, zone)
        if first.date() == last.date():
            return []
        months = _months_between(first, last)
        if months > 1:
            boundary = _add_months(first.replace(day=1, hour=0, minute=0, second=0), months // 2)
            left_end = min(end, _resolve(boundary - timedelta(seconds=1), zone, "forward"))
            right_start = max(start, _resolve(boundary, zone, "back"))
            halves = [(start, left_end), (right_start, end)]
            # A start moved back (or an end moved forward) off a DST change can reach into the month
            # beside it by a few seconds: then one half is the whole window, and its days are the split.
            if (start, end) not in halves:
                return halves
        days: list[tuple[datetime, datetime]] = []
        day = first.date()
        while day <= last.date():
            wall = datetime.combine(day, datetime.min.time())
            low = max(start, _resolve(wall, zone, "back"))
            high = min(end, _resolve(wall + timedelta(days=1, seconds=-1), zone, "forward"))
            if high > low:
                days.append((low, high))
            day += timedelta(days=1)
        return days


def _spent_heads(windows: Sequence[Window]) -> list[Window]:
    """The done catch-up windows the plan no longer needs: each round adds one, and the plan is read whole.

    A done head window's walk has already narrowed its contacts' bounds (to a minute or so, finer
    than any dating would), and nothing else reads it: dating splits months and wider windows, and
    refresh walks months and the rest. So every done one but the newest goes; the next catch-up
    starts where the newest ends.
    """
    heads = [w for w in windows if w.kind == "head" and w.done]
    newest = max(heads, key=lambda w: w.end, default=None)
    return [w for w in heads if w is not newest]


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """An aware moment as the Space's naive wall time."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _resolve(wall: datetime, zone: ZoneInfo, direction: Literal["back", "forward"]) -> datetime:
    """The UTC moment of `wall`, moved `direction` to the nearest wall time the zone shows exactly once.

    A window's start moves back and its end forward, so the window only grows; a catch-up's end
    moves back (the next catch-up starts there).
    """
    step = timedelta(seconds=-1 if direction == "back" else 1)
    for _ in range(MAX_STEPS):
        early, late = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
        if early.utcoffset() == late.utcoffset():
            return early.astimezone(UTC)
        wall += step
    raise ValueError(f"no unambiguous wall time within {MAX_STEPS} s of {wall} in {zone.key}")


def _month_bounds(year: int, month: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """A calendar month of the Space's timezone as a window's UTC bounds (start moved back, end forward)."""
    first = datetime(year, month, 1)
    following = _add_months(first, 1)
    return _resolve(first, zone, "back"), _resolve(following - timedelta(seconds=1), zone, "forward")


def _month_key(wall: datetime) -> str:
    return f"{wall.year:04d}-{wall.month:02d}"


def _add_months(wall: datetime, months: int) -> datetime:
    index = wall.year * 12 + wall.month - 1 + months
    return wall.replace(year=index // 12, month=index % 12 + 1)


def _months_between(first: datetime, last: datetime) -> int:
    """How many calendar months `[first, last]` touches (1 within one month)."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


def _bounds_text(start: datetime, end: datetime) -> str:
    return f"{start.isoformat()}/{end.isoformat()}"


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_bounds(text: str | None) -> tuple[datetime, datetime] | None:
    if not text:
        return None
    start, _, end = text.partition("/")
    first, last = _parse(start), _parse(end)
    return None if first is None or last is None else (first, last)
