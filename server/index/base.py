"""The contact index's storage interface: what a backend keeps, and the calls the sync and lookups make.

The index is a local copy of what Cometly's list endpoint returns for each contact (ids, every
email, name, phone, location, custom fields by slot), plus what the sync has proved about when
each contact was created, so `find_contact` can answer by email, phone or name with one confirming
request instead of a scan under a budget of 15 requests a minute.

Everything is kept per account (`account` is the fingerprint of the API key and its scope that the
budgets use, never the key), so two Spaces never see each other's contacts, and two servers on the
same key share one index.

Dating: a list request for a creation-date window proves that every contact it returns was created
in that window. Each listing narrows a contact's `[created_after, created_before]` to the
intersection of what it knew and the window; equal bounds mean the time is known to the second.

Windows: the sync's unit of work is one creation-date window, walked page by page. A backend stores
the plan (which windows exist, which are done, the cursor each stopped at) next to the contacts, and
commits each page's contacts together with the window's new cursor, so a sync killed at any point
resumes at the page after the last one committed and loses nothing. Claims are leases: a replica
that holds a window may walk it until `lease_until`; another replica skips it meanwhile, and takes
it over once the lease lapses (its holder died).

Backends: `sqlite.SqliteStore` (one file, the default) and `postgres.PostgresStore`
(`CONTACTS_MCP_INDEX_URL`, shared by replicas).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import JsonValue

WindowKind = Literal["walk", "date", "head", "refresh"]
"""Why a window is walked, in the order claims take them:
- `walk`: the backfill, which makes every contact searchable (months, newest first, then what is older);
- `head`: catch-up, the contacts created since the newest window walked;
- `date`: narrowing the dates of contacts a wider window found (a month's days);
- `refresh`: walking a done window again, to see changes and deletions made outside this server.
"""


@dataclass(frozen=True)
class Entry:
    """One contact as the index holds it."""

    id: str
    """Cometly's id: a whole number, as text. Entries sort by its numeric value (ids grow with creation)."""
    emails: tuple[str, ...] = ()
    """As Cometly sent them, primary first."""
    names: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    custom_fields: Mapping[str, JsonValue] = field(default_factory=dict[str, JsonValue])
    """By slot (profile_field_N), values that are set; labels are applied when results are made."""
    created_after: datetime | None = None
    """Aware (UTC). The contact was created at or after this moment; None: not known."""
    created_before: datetime | None = None
    """Aware (UTC). The contact was created at or before this moment; None: not known."""
    seen_at: datetime | None = None
    """Aware (UTC). When the upstream last showed this contact (set by the backend from `put`'s `seen_at`)."""


@dataclass(frozen=True)
class Window:
    """One creation-date window of the sync's plan."""

    start: datetime
    """Aware (UTC), inclusive."""
    end: datetime
    """Aware (UTC), inclusive; after `start`."""
    kind: WindowKind
    cursor: str | None = None
    """The upstream cursor of the next page to read; None: from the first page (or done)."""
    done: bool = False
    contacts: int = 0
    """How many contacts the walk has seen so far (all of them once done)."""
    requests: int = 0
    """How many list requests the walk has spent."""
    walked_at: datetime | None = None
    """When the walk last finished (aware, UTC); None while it never has."""


@dataclass(frozen=True)
class Query:
    """What a lookup asks for, already normalized by `normalize` (at least one field set)."""

    email: str | None = None
    """Case-folded; matches an email exactly."""
    phone: str | None = None
    """E.164 where the number parses (`+14155550100`), else its digits; matches a phone exactly."""
    name: str | None = None
    """Folded (`normalize.fold`): matches anywhere in a name."""
    domain: str | None = None
    """Case-folded, without `@`: matches emails at this domain or its subdomains."""
    text: str | None = None
    """Folded: matches anywhere in a name, an email, a phone's digits or a location."""


@dataclass(frozen=True)
class Found:
    """A lookup's answer: the best few entries, best first, and how many matched in all."""

    entries: list[Entry]
    total: int


@dataclass(frozen=True)
class Status:
    """What `contacts-mcp index status` prints for one account."""

    contacts: int
    dated: Mapping[str, int]
    """Contacts by how precisely their creation is known: `second`, `day`, `month`, `coarser`, `unknown`."""
    windows: int
    windows_done: int
    last_sync: datetime | None
    """When a walk last finished (aware, UTC)."""
    covered_from: datetime | None
    """The earliest creation time the done windows cover; with `covered_to`, the history searched."""
    covered_to: datetime | None


class Store(ABC):
    """One index backend. Every method is one transaction; none raises on an account it has never seen."""

    location: str
    """Where the index lives, for `index status` and logs: a file path, or the URL without its password."""

    @abstractmethod
    async def open(self) -> None:
        """Create the index (file mode 0600; tables) if it does not exist, and connect.

        Raises:
            IndexUnavailable: If it cannot be opened or created.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connections."""

    # --- contacts -------------------------------------------------------------------------------

    @abstractmethod
    async def put(
        self,
        account: str,
        entries: Sequence[Entry],
        *,
        seen_at: datetime,
        window: Window | None = None,
        cursor: str | None = None,
        done: bool = False,
    ) -> None:
        """Store `entries` (their fields replace what was held), and record a walk's progress, together.

        Each entry's creation bounds are narrowed to the intersection of those held and those it
        carries; when the two do not overlap (the upstream contradicts itself), the ones it carries
        win. With `window`: the page's contacts also narrow to the window, and the window's cursor
        becomes `cursor` (the next page's), its counts grow by this page, and `done` finishes it
        (cursor cleared, `walked_at` = `seen_at`, lease released).
        """

    @abstractmethod
    async def remove(self, account: str, ids: Sequence[str]) -> None:
        """Forget these contacts (the upstream no longer has them)."""

    @abstractmethod
    async def get(self, account: str, ids: Sequence[str]) -> dict[str, Entry]:
        """The entries held for these ids (ids not held are absent)."""

    @abstractmethod
    async def find(self, account: str, query: Query, *, limit: int) -> Found:
        """The entries matching every field `query` sets: at most `limit`, best first, and the total.

        Best first: an exact email or phone, then names equal to the text, then names starting with
        it, then the rest; newest (highest id) first within each.
        """

    @abstractmethod
    async def sweep(self, account: str, window: Window, *, seen_before: datetime) -> list[str]:
        """Remove the entries dated inside `window` that a complete walk of it, begun at `seen_before`, did not see.

        Returns:
            The ids removed.
        """

    # --- the sync's plan ------------------------------------------------------------------------

    @abstractmethod
    async def plan(self, account: str, windows: Sequence[Window]) -> None:
        """Add windows to the plan; one already there (same start, end and kind) is left as it is."""

    @abstractmethod
    async def claim(
        self, account: str, *, owner: str, now: datetime, lease_seconds: float, kinds: Sequence[WindowKind]
    ) -> Window | None:
        """Lease the next window to walk, or None when none is free.

        Order: by `kinds` as given, then the newest `start` first. A window is free when it is not
        done and no live lease holds it (or `owner` holds it: a restarted walker takes its own back).
        Two callers never get the same window while its lease lives.
        """

    @abstractmethod
    async def renew(self, account: str, window: Window, *, owner: str, until: datetime) -> bool:
        """Extend `owner`'s lease on `window`; False when it no longer holds it (it lapsed and was taken)."""

    @abstractmethod
    async def release(self, account: str, window: Window, *, owner: str) -> None:
        """Give up `owner`'s lease without finishing the window (its cursor stays for whoever goes on)."""

    @abstractmethod
    async def reopen(self, account: str, window: Window, *, kind: WindowKind) -> None:
        """Mark a done window to be walked again from its first page, as `kind` (e.g. `refresh`)."""

    @abstractmethod
    async def windows(self, account: str) -> list[Window]:
        """The whole plan, newest start first."""

    @abstractmethod
    async def drop(self, account: str, windows: Sequence[Window]) -> None:
        """Remove these windows from the plan, when done (what they proved is kept in the contacts' bounds)."""

    # --- the account's sync state and the whole index --------------------------------------------

    @abstractmethod
    async def meta(self, account: str) -> dict[str, str]:
        """Small facts the sync keeps per account (e.g. where history starts); empty when none."""

    @abstractmethod
    async def set_meta(self, account: str, values: Mapping[str, str]) -> None:
        """Set (merge) those facts."""

    @abstractmethod
    async def status(self, account: str) -> Status:
        """What the index holds for the account."""

    @abstractmethod
    async def accounts(self) -> list[str]:
        """Every account the index holds anything for."""

    @abstractmethod
    async def forget(self) -> None:
        """Delete the whole index: every account's contacts, plan and facts (a file backend removes its files)."""
