"""Reading a date range's contacts: one page, many pages (`max_results`), or just their number (`count_only`).

The walker asks the provider for upstream pages, 5,000 contacts at a time in bulk so the rate
budget (15 list requests a minute on Cometly) goes as far as it can, reports progress after each
page, and stops at `max_results`, at the end of the range, or where the result would pass the
ceiling of a model's context. Stopping inside an upstream page, it returns a cursor of its own that
names that page and the last contact shown, so the next call resumes exactly after it:

    r1.<base64url of {"c": upstream cursor of the page or null, "a": id of the last contact shown,
                      "n": how many of the page's contacts were shown}>

Cursors not starting with `r1.` are the upstream's own and pass through unchanged.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..tools.dates import resolve_range
from ..tools.models import AppliedFilter, Contact, ContactPage, FilterCondition, ListContactsQuery, Range, Truncated
from .cursors import decode_fields
from .errors import ValidationFailed
from .providers.base import Provider
from .results import CHARS_PER_TOKEN, PAGE_CAPS, as_text, row_chars, shape, shape_contact

logger = logging.getLogger(__name__)

Progress = Callable[[float, float | None, str | None], Awaitable[None]]

MAX_PAGE = 5_000
"""The most contacts one upstream request returns (Cometly's documented maximum)."""
MAX_RESULTS = 100_000
"""The most contacts one call reads: `max_results`' bound, and what `count_only` counts up to by default."""
MAX_PAGES = 1_000
"""A guard against an upstream whose cursor never ends: no call reads more pages than this."""
ENVELOPE_CHARS = 4_000
"""Characters kept free for what surrounds the rows: column names, range, filters, cursor and notes."""
SLACK_CHARS = 200
"""Characters kept free for what the server adds around the result's text (the sandbox's note)."""
RESUME_PREFIX = "r1."
_RESUME_KEYS = frozenset({"c", "a", "n"})


@dataclass(frozen=True)
class Resume:
    """Where a result that stopped inside an upstream page goes on."""

    cursor: str | None
    """The upstream cursor that page was read with (None for the range's first page)."""
    after: str
    """The id of the last contact shown from it."""
    shown: int
    """How many of its contacts were shown: the fallback when `after` is no longer on the page."""

    def encode(self) -> str:
        """The cursor the model passes back."""
        payload = json.dumps({"c": self.cursor, "a": self.after, "n": self.shown}, separators=(",", ":"))
        return RESUME_PREFIX + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str | None) -> tuple[str | None, Resume | None]:
        """The upstream cursor to read with, and where to resume inside its page when the cursor is ours.

        Raises:
            ValidationFailed: If the cursor looks like ours but is damaged.
        """
        if cursor is None or not cursor.startswith(RESUME_PREFIX):
            return cursor, None
        fields = decode_fields(cursor.removeprefix(RESUME_PREFIX), _RESUME_KEYS)
        upstream, after, shown = (fields["c"], fields["a"], fields["n"]) if fields else (None, None, None)
        if not (
            fields
            and (upstream is None or isinstance(upstream, str))
            and isinstance(after, str)
            and after
            and isinstance(shown, int)
            and 1 <= shown <= MAX_PAGE  # a page holds at most MAX_PAGE, and a resume cursor follows a shown one
        ):
            raise ValidationFailed(
                "cursor is not one this server gave out; pass next_cursor exactly as returned, or leave cursor "
                "out to start from the newest contact."
            )
        resume = cls(cursor=upstream, after=after, shown=shown)
        return resume.cursor, resume


def list_query(
    provider: Provider,
    *,
    start_date: str,
    end_date: str | None,
    now: datetime,
    conditions: list[FilterCondition] | None = None,
    **options: Any,
) -> ListContactsQuery:
    """The query for a tool's arguments, its dates (and date words) resolved in the provider's timezone.

    Raises:
        ValidationFailed: If a date is not one the tools accept.
    """
    resolved = resolve_range(start_date, end_date, zone=provider.zone, now=now)
    today = now.astimezone(provider.zone).date()
    return ListContactsQuery(range=resolved, today=today, conditions=conditions or [], **options)


async def read_contacts(
    provider: Provider,
    query: ListContactsQuery,
    *,
    max_results: int | None = None,
    count_only: bool = False,
    max_chars: int,
    progress: Progress | None = None,
) -> ContactPage:
    """The contacts `query` matches: one page, up to `max_results`, or only their count.

    Args:
        provider: Whose contacts.
        query: The first page's query; the walker sets `cursor` and `per_page` of each request.
        max_results: Read pages until this many contacts (None: one page of `query.per_page`).
        count_only: Return how many match (up to `max_results`, default `MAX_RESULTS`), no contacts.
        max_chars: The ceiling for the result's text.
        progress: Told after each page how many contacts were read.

    Raises:
        ContactsError: Classified failures of the upstream requests.
    """
    bulk = max_results is not None or count_only
    wanted = max_results or (MAX_RESULTS if count_only else query.per_page)
    walk = _Walk(max_chars=max_chars, count_only=count_only)
    cursor, resume = Resume.decode(query.cursor)
    filters: list[AppliedFilter] | None = None
    next_cursor: str | None = None
    has_more = False
    for pages in range(1, MAX_PAGES + 1):
        skip = resume.shown if resume else 0
        size = min(MAX_PAGE, skip + wanted - walk.count) if bulk else min(MAX_PAGE, skip + query.per_page)
        page = await provider.list_contacts(query.model_copy(update={"cursor": cursor, "per_page": max(size, 1)}))
        filters = page.filters
        dropped = _resumed(page.contacts, resume)
        resume = None
        taken = walk.take(page.contacts, cursor, dropped, wanted)
        if dropped + taken < len(page.contacts):  # stopped inside this page
            shown = dropped + taken
            next_cursor = _resume_cursor(cursor, shown, page.contacts[shown - 1].id if shown else None)
            has_more = True
            break
        next_cursor, has_more = page.next_cursor, page.has_more and page.next_cursor is not None
        if progress is not None and bulk:
            await _report(progress, walk.count, wanted, pages)
        if not bulk or not has_more or walk.count >= wanted or next_cursor == cursor:
            break
        cursor = next_cursor
    result = ContactPage(
        contacts=[],
        count=walk.count,
        has_more=has_more,
        next_cursor=next_cursor if has_more else None,
        range=Range(**query.range.echo()),
        filters=filters,
    )
    return walk.finish(result)


def _resume_cursor(cursor: str | None, shown: int, after: str | None) -> str:
    """The cursor that goes on after the first `shown` contacts, the last being `after`, of the page read with `cursor`.

    With none shown it is the page's own cursor (never the first page's: its first contact always shows).
    """
    if shown == 0 or after is None:
        return cursor or ""
    return Resume(cursor=cursor, after=after, shown=shown).encode()


def _resumed(contacts: list[Contact], resume: Resume | None) -> int:
    """How many contacts at the start of a re-read page were already shown."""
    if resume is None:
        return 0
    for index, contact in enumerate(contacts):
        if contact.id == resume.after:
            return index + 1
    return min(resume.shown, len(contacts))  # the contact is gone (deleted, merged): fall back on the count


async def _report(progress: Progress, count: int, wanted: int, pages: int) -> None:
    try:
        await progress(count, wanted, f"Read {pages} page{'s' if pages > 1 else ''}: {count:,} contacts so far.")
    except Exception:  # a client that went away must not fail the call it no longer awaits
        logger.debug("could not report progress", exc_info=True)


@dataclass
class _Origin:
    cursor: str | None
    position: int
    before: str | None
    """The id of the contact before it on its page."""


class _Walk:
    """The contacts taken so far, what they cost in characters, and where each came from."""

    def __init__(self, *, max_chars: int, count_only: bool) -> None:
        self.max_chars = max_chars - SLACK_CHARS
        self.count_only = count_only
        self.count = 0
        self.contacts: list[dict[str, Any]] = []
        self.origins: list[_Origin] = []
        self.cuts: list[dict[str, Any]] = []
        self.used = ENVELOPE_CHARS
        self.full = False

    def take(self, page: list[Contact], cursor: str | None, offset: int, wanted: int) -> int:
        """Take the page's contacts from `offset` on until `wanted` in all or the ceiling; how many were taken."""
        taken = 0
        for position in range(offset, len(page)):
            contact = page[position]
            if self.count >= wanted:
                break
            if not self.count_only:
                shaped, cuts = shape_contact(contact.model_dump(mode="json"), PAGE_CAPS, f"contacts[{self.count}]")
                cost = row_chars(shaped) + sum(len(json.dumps(cut)) + 1 for cut in cuts)
                if self.contacts and self.used + cost > self.max_chars:  # the first contact always shows
                    self.full = True
                    break
                self.used += cost
                self.contacts.append(shaped)
                self.cuts += cuts
                before = page[position - 1].id if position > 0 else None
                self.origins.append(_Origin(cursor, position, before))
            self.count += 1
            taken += 1
        return taken

    def finish(self, result: ContactPage) -> ContactPage:
        """`result` with the contacts taken, cut back further if its text would still pass the ceiling.

        The exact check renders the shaped dicts the walk already holds, as the server will render
        the result, so a page of thousands of contacts is not turned into models and back per check.
        """
        while len(self.contacts) > 1 and len(as_text(self._as_dict(result))) > self.max_chars:
            self.contacts.pop()
            origin = self.origins.pop()
            self.count -= 1
            self.full = True
            cursor = _resume_cursor(origin.cursor, origin.position, origin.before)
            result = result.model_copy(update={"next_cursor": cursor, "has_more": True})
        truncated = self._truncated()
        return result.model_copy(
            update={
                "contacts": [Contact.model_validate(contact) for contact in self.contacts],
                "count": self._count(),
                "truncated": Truncated.model_validate(truncated) if truncated else None,
            }
        )

    def _count(self) -> int:
        return self.count if self.count_only else len(self.contacts)

    def _as_dict(self, result: ContactPage) -> dict[str, Any]:
        """The result as the server will shape it, from the contacts already shaped."""
        shaped = shape(result.model_dump(mode="json", exclude={"contacts", "truncated"}))
        truncated = self._truncated()
        return {
            "contacts": self.contacts,
            **shaped,
            "count": self._count(),
            **({"truncated": truncated} if truncated else {}),
        }

    def _truncated(self) -> dict[str, Any] | None:
        notes: list[str] = []
        kept = [cut for cut in self.cuts if _index(cut["path"]) < len(self.contacts)]
        if kept:
            notes.append(
                "Long values of this page were cut (strings end in '…'); get_contact returns one contact in full."
            )
        if self.full:
            notes.append(
                f"Stopped after {len(self.contacts):,} contacts to stay within the result ceiling of about "
                f"{(self.max_chars + SLACK_CHARS) // CHARS_PER_TOKEN:,} tokens; call again with cursor=next_cursor "
                "and the same other arguments for the rest, or use count_only for just the number."
            )
        return {"note": " ".join(notes), "cuts": kept} if notes else None


def _index(path: str) -> int:
    """The contact index of a cut's path, `contacts[12].names[0]` -> 12."""
    return int(path.removeprefix("contacts[").partition("]")[0])
