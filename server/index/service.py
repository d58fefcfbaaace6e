"""One account's contact index as the server uses it: where it lives, lookups, dates, and its sync.

`open_store(settings)` picks the backend: PostgreSQL when `CONTACTS_MCP_INDEX_URL` is set, else the
SQLite file of `CONTACTS_MCP_INDEX` (default `index.sqlite3` in the user data directory), or none
with `CONTACTS_MCP_INDEX=off`. `ContactIndex` is what the Cometly provider holds: it reads the
store for lookups and dates, writes what the server learns through its own calls (a create, a
confirming read), and knows how far the sync has got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import platformdirs

from ..settings import Settings
from .base import Entry, Found, Query, Status, Store
from .sync import BACKFILLED, Sync

INDEX_FILE = "index.sqlite3"


def default_index_path() -> Path:
    """Where the SQLite index lives unless `CONTACTS_MCP_INDEX` says otherwise."""
    return platformdirs.user_data_path("contacts-mcp", appauthor=False) / INDEX_FILE


def index_path(settings: Settings) -> Path | None:
    """The SQLite file the settings name (None when the index is off or in PostgreSQL)."""
    if settings.index_off or settings.index_url is not None:
        return None
    return Path(settings.index).expanduser() if settings.index else default_index_path()


def open_store(settings: Settings) -> Store | None:
    """The backend the settings choose, not yet opened; None when the index is off."""
    if settings.index_off:
        return None
    if settings.index_url is not None:
        from .postgres import PostgresStore  # deferred: psycopg loads libpq, which only this backend needs

        return PostgresStore(settings.index_url.get_secret_value())
    from .sqlite import SqliteStore

    path = index_path(settings)
    assert path is not None
    return SqliteStore(path)


FRESHNESS_SECONDS = 5.0
"""How long a lookup reuses what it read of the sync's progress."""


@dataclass(frozen=True)
class Freshness:
    """How far the sync has got: when it last finished a window, and the creation times its done windows cover."""

    last_sync: datetime | None
    covered_from: datetime | None
    covered_to: datetime | None


class ContactIndex:
    """The index of one account (a Cometly Space), as lookups and the provider use it."""

    def __init__(self, store: Store, account: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.account = account
        """The fingerprint of the key (never the key)."""
        self._clock = clock or (lambda: datetime.now(UTC))
        self._backfilled = anyio.Event()
        self.sync: Sync | None = None
        self._freshness: tuple[float, Freshness] | None = None
        """The sync that keeps it current, when one runs in this process."""

    @property
    def location(self) -> str:
        return self.store.location

    def now(self) -> datetime:
        return self._clock().astimezone(UTC)

    async def find(self, query: Query, *, limit: int) -> Found:
        return await self.store.find(self.account, query, limit=limit)

    async def get(self, ids: Sequence[str]) -> dict[str, Entry]:
        return await self.store.get(self.account, ids)

    async def note(self, entries: Sequence[Entry]) -> None:
        """Keep what the server just read or wrote itself (a create, a confirming read)."""
        if entries:
            await self.store.put(self.account, entries, seen_at=self.now())

    async def drop(self, ids: Sequence[str]) -> None:
        """Forget contacts the upstream no longer has."""
        if ids:
            await self.store.remove(self.account, ids)

    async def status(self) -> Status:
        return await self.store.status(self.account)

    async def freshness(self) -> Freshness:
        """How far the sync has got, for a lookup's answer: read from the plan (a few hundred rows at
        most, not the contacts), and reused for `FRESHNESS_SECONDS`."""
        now = anyio.current_time()
        if self._freshness is None or now - self._freshness[0] > FRESHNESS_SECONDS:
            done = [window for window in await self.store.windows(self.account) if window.done]
            walked = [window.walked_at for window in done if window.walked_at is not None]
            self._freshness = (
                now,
                Freshness(
                    last_sync=max(walked, default=None),
                    covered_from=min((window.start for window in done), default=None),
                    covered_to=max((window.end for window in done), default=None),
                ),
            )
        return self._freshness[1]

    async def backfilled_at(self) -> datetime | None:
        """When the backfill finished walking the whole history; None while it has not."""
        value = (await self.store.meta(self.account)).get(BACKFILLED)
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        self._backfilled.set()
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def backfill_finished(self) -> None:
        """Called by the sync when the backfill is complete: lookups waiting for it go on."""
        self._backfilled.set()

    async def wait_backfilled(self, seconds: float) -> bool:
        """Wait up to `seconds` for the backfill to finish; whether it has."""
        if self._backfilled.is_set() or await self.backfilled_at() is not None:
            return True
        with anyio.move_on_after(seconds):
            await self._backfilled.wait()
        return self._backfilled.is_set()


def narrowed(entry: Entry, after: datetime | None, before: datetime | None) -> Entry:
    """`entry` with its creation bounds narrowed to `[after, before]` (on a contradiction, the new ones)."""
    low = max((b for b in (entry.created_after, after) if b is not None), default=None)
    high = min((b for b in (entry.created_before, before) if b is not None), default=None)
    if low is not None and high is not None and low > high:
        low, high = after, before
    return replace(entry, created_after=low, created_before=high)
