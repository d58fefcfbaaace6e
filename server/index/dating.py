"""Dating a contact to the second, by proof, with Cometly's list: it has no creation time of its own.

A list request for `[a, b]` that returns a contact proves it was created in `[a, b]`. Within the
window the index already holds for the contact, `exact_created_at` bisects on whole seconds,
asking each time whether the contact is in `[lo, mid]`. A request that does not return it says
nothing by itself (the contact may have been deleted meanwhile), so the search always ends on a
request that does return it: a contact that exists at the last request existed at every earlier
one (Cometly never brings a deleted id back), so every answer was true. Nothing is inferred from
id order beyond what the list's documented ordering (id descending) says about one page: once a
page has gone below the contact's id, the rest of the window cannot hold it.

Cometly requires `end_date` after `start_date`, so a one-second question `[lo, lo]` is asked as
`[lo - 1, lo]`, whose answer, with the known `lo` bound, is the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from ..budgets.background import Priority
from ..errors import UpstreamUnavailable
from .base import Entry, Store

logger = logging.getLogger(__name__)

PER_PAGE = 5_000
"""Cometly's largest page: one request answers a window of up to 5000 contacts."""
MAX_DATING_REQUESTS = 64
"""The most list requests one exact dating may spend: a day takes about 17, the whole history about 30."""
HISTORY_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
"""Where a contact the index knows nothing about is looked for from (with a day's margin for any timezone)."""


class Source(Protocol):
    """What the sync and the dating need of Cometly (`providers.cometly.Cometly` is one)."""

    @property
    def zone(self) -> ZoneInfo: ...

    async def list_entries(
        self,
        start: datetime,
        end: datetime,
        *,
        cursor: str | None = None,
        per_page: int = PER_PAGE,
        priority: Priority | None = None,
    ) -> tuple[list[Entry], str | None]: ...


async def exact_created_at(
    source: Source,
    store: Store,
    account: str,
    contact_id: str,
    *,
    priority: Priority | None = None,
    now: datetime | None = None,
    max_requests: int = MAX_DATING_REQUESTS,
) -> datetime | None:
    """When the contact was created, to the second, proved by list requests; the result is stored.

    Args:
        source: Cometly.
        store: The index, holding the window the contact is known to be in (else all of history).
        account: The account's fingerprint.
        contact_id: Cometly's id.
        priority: Send at the sync's priority (None: as a tool call).
        now: The current time (aware); default the system clock.
        max_requests: The most list requests to spend.

    Returns:
        The creation time (aware, UTC), or None when the contact is no longer in its window
        (deleted or merged upstream: the caller says so).

    Raises:
        UpstreamUnavailable: If the dating would need more than `max_requests` requests.
        ContactsError: Classified failures of the list requests.
    """
    held = (await store.get(account, [contact_id])).get(contact_id)
    if held is not None and held.created_after is not None and held.created_after == held.created_before:
        return held.created_after
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    after = held.created_after if held is not None and held.created_after is not None else HISTORY_FLOOR
    before = held.created_before if held is not None and held.created_before is not None else moment
    lo, hi = _ceil_seconds(after), _floor_seconds(before)
    if hi < lo:  # a window narrower than a second between two whole seconds: the creation is the second below
        lo = hi
    asked = 0
    found: Entry | None = None
    last_found = False
    while lo < hi or not last_found:
        if asked >= max_requests:
            raise UpstreamUnavailable(
                f"Dating contact {contact_id} would take more than {max_requests} list requests; "
                "its creation window is kept as it is."
            )
        mid = (lo + hi) // 2
        start, end = (lo, mid) if mid > lo else (lo - 1, lo)
        entry, spent = await _member(source, contact_id, _at(start), _at(end), priority=priority)
        asked += spent
        last_found = entry is not None
        if entry is not None:
            found, hi = entry, mid
            # Kept as it is proved: a dating stopped halfway (a budget used up) goes on from here next time.
            proved = replace(entry, created_after=_at(start), created_before=_at(end))
            await store.put(account, [proved], seen_at=moment)
        elif lo == hi:
            logger.info("contact %s is no longer in its creation window", contact_id)
            return None
        else:
            lo = mid + 1
    assert found is not None
    created = _at(lo)
    # The last page's entry: the contact's fields as Cometly has them now.
    await store.put(account, [replace(found, created_after=created, created_before=created)], seen_at=moment)
    logger.info("dated contact %s to the second with %d list requests", contact_id, asked)
    return created


async def _member(
    source: Source, contact_id: str, start: datetime, end: datetime, *, priority: Priority | None
) -> tuple[Entry | None, int]:
    """The contact's entry if a list of `[start, end]` holds it, and the requests that took."""
    target = int(contact_id)
    cursor: str | None = None
    spent = 0
    while True:
        entries, cursor = await source.list_entries(start, end, cursor=cursor, per_page=PER_PAGE, priority=priority)
        spent += 1
        for entry in entries:
            if entry.id == contact_id:
                return entry, spent
        # The list is ordered by id descending: a page that went below the id has passed it.
        if cursor is None or _below(entries, target):
            return None, spent


def _below(entries: Sequence[Entry], target: int) -> bool:
    return bool(entries) and entries[-1].id.isdigit() and int(entries[-1].id) < target


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _floor_seconds(moment: datetime) -> int:
    return int((moment.astimezone(UTC) - _EPOCH) // timedelta(seconds=1))


def _ceil_seconds(moment: datetime) -> int:
    return -int((_EPOCH - moment.astimezone(UTC)) // timedelta(seconds=1))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
