"""Reading a date range's contacts: one page, many pages (`max_results`), or just their number (`count_only`),
in the upstream's order or sorted (`sort_by`).

The walker asks the provider for upstream pages, 5,000 contacts at a time in bulk so the rate
budget (15 list requests a minute on Cometly) goes as far as it can, reports progress after each
page, and stops at `max_results`, at the end of the range, or where the result would pass the
ceiling of a model's context. Stopping inside an upstream page, it returns a cursor of its own that
names that page and the last contact shown, so the next call resumes exactly after it:

    r1.<base64url of {"c": upstream cursor of the page or null, "a": id of the last contact shown,
                      "n": how many of the page's contacts were shown}>

Cursors not starting with `r1.` are the upstream's own and pass through unchanged.

Sorting sorts what was read: the contacts of the page, or all those `max_results` read. The walk
still reads and cuts in the upstream's order, so a cursor goes on after the last contact read, and
the result says (`sorted.covers`) whether the order holds across every match or only across these.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import JsonValue

from ..tools.dates import resolve_range
from ..tools.models import (
    SLOT_PATTERN,
    SORT_COVERS_ALL,
    AppliedFilter,
    Contact,
    ContactPage,
    FilterCondition,
    ListContactsQuery,
    Range,
    SlotType,
    Sorted,
    Truncated,
    slot_type,
)
from .cursors import decode_fields
from .errors import ValidationFailed
from .index.normalize import fold
from .index.sync import HISTORY_FLOOR
from .providers.base import UTC_ZONE, Provider
from .providers.cometly_fields import resolve_field
from .results import CHARS_PER_TOKEN, PAGE_CAPS, TableGrowth, as_text, row_chars, shape, shape_contact

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
ALL_HISTORY_START = f"{HISTORY_FLOOR.isoformat()} 00:00:00"
"""Where a range without start_date starts: the contact index's `HISTORY_FLOOR`, at midnight in the account's
timezone, so "all history" means the same to the list tools and to the index."""
OWN_FIELDS = ("name", "email", "created_at")
"""What sort_by takes besides a custom field: the contact's primary name and email, and its creation time."""


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
    start_date: str | None,
    end_date: str | None,
    now: datetime,
    conditions: list[FilterCondition] | None = None,
    **options: Any,
) -> ListContactsQuery:
    """The query for a tool's arguments, its dates (and date words) resolved in the provider's timezone.

    Without `start_date` the range is all history: from `ALL_HISTORY_START` to `end_date`, or to now.

    Raises:
        ValidationFailed: If a date is not one the tools accept.
    """
    resolved = resolve_range(start_date or ALL_HISTORY_START, end_date, zone=provider.zone, now=now)
    today = now.astimezone(provider.zone).date()
    return ListContactsQuery(
        range=resolved,
        today=today,
        conditions=conditions or [],
        open_start=start_date is None,
        open_end=start_date is None and end_date is None,
        **options,
    )


def sorted_query(query: ListContactsQuery, sort: Sort | None) -> ListContactsQuery:
    """`query` for a sorted read: a sort on the contact's own fields is passed on for the provider's API
    to apply if it can, and a sort by a custom field reads the custom fields."""
    if sort is None:
        return query
    if sort.own is not None:
        return query.model_copy(update={"sort_by": sort.own, "order": sort.order})
    return query.model_copy(update={"include_custom_fields": True})


@dataclass(frozen=True)
class Sort:
    """What a list is sorted by, resolved: one of the contact's own fields, or a custom field and its type."""

    by: str
    """As the result names it: name, email, created_at, or the custom field's label (its slot when unlabelled)."""
    order: Literal["asc", "desc"]
    own: Literal["name", "email", "created_at"] | None
    """The contact's own field, or None for a custom field."""
    keys: tuple[str, ...] = ()
    """A custom field's keys in `Contact.custom_fields`: its label, then its slot."""
    kind: SlotType = "text"
    """A custom field's type: how its values compare."""
    zone: ZoneInfo = UTC_ZONE
    """Where date values without an offset are wall-clock times: an offset one is compared in it."""

    def value(self, contact: Contact) -> _Key | None:
        """The contact's value to sort by, or None when it has none."""
        if self.own == "name":
            return _text_key(contact.names[0]) if contact.names else None
        if self.own == "email":
            return _text_key(contact.emails[0]) if contact.emails else None
        if self.own == "created_at":
            return _created_key(contact)
        raw: JsonValue = next((contact.custom_fields[key] for key in self.keys if key in contact.custom_fields), None)
        if raw is None or raw == "" or raw == []:
            return None
        if self.kind == "number":
            return _number_key(raw)
        if self.kind == "date":
            return _date_key(raw, self.zone)
        return _text_key(raw)


_READABLE, _UNREADABLE = 0, 1
"""A value's rank: one read as its field's type sorts before one that could not be (compared as text)."""
_Key = tuple[int, Any]
"""A value to sort by: its rank, then what compares within the rank."""


def _text_key(value: JsonValue) -> _Key:
    return _READABLE, fold(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _number_key(value: JsonValue) -> _Key:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or math.isnan(number):
        return _UNREADABLE, _text_key(value)[1]
    return _READABLE, number


def _date_key(value: JsonValue, zone: ZoneInfo) -> _Key:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is not None:  # the same instant as a wall-clock time of the account's zone
                moment = moment.astimezone(zone).replace(tzinfo=None)
            return _READABLE, moment
    return _UNREADABLE, _text_key(value)[1]


def _created_key(contact: Contact) -> _Key | None:
    """By the latest moment it can have been created, then the earliest: an exact created_at is both."""
    if contact.created_at is not None:
        moment = _utc_moment(contact.created_at)
        return (_READABLE, (moment, moment)) if moment is not None else (_UNREADABLE, fold(contact.created_at))
    if contact.created_between is not None:
        start, end = _utc_moment(contact.created_between.start), _utc_moment(contact.created_between.end)
        if start is not None and end is not None:
            return _READABLE, (end, start)
        return _UNREADABLE, fold(f"{contact.created_between.end} {contact.created_between.start}")
    return None


def _utc_moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def sorted_order(contacts: Sequence[Contact], sort: Sort) -> tuple[list[int], int]:
    """The positions of `contacts` in `sort`'s order, and how many have no value.

    Values read as their field's type come first, then those that could not be (compared as text),
    then the contacts without a value; ties, and the contacts without a value, keep the order given.
    """
    values = [sort.value(contact) for contact in contacts]
    missing = [index for index, value in enumerate(values) if value is None]
    descending = sort.order == "desc"
    ranked: list[int] = []
    for rank in (_READABLE, _UNREADABLE):
        group = [(index, value[1]) for index, value in enumerate(values) if value is not None and value[0] == rank]
        group.sort(key=_compared, reverse=descending)  # stable either way: ties keep the order given
        ranked += [index for index, _ in group]
    return ranked + missing, len(missing)


def _compared(item: tuple[int, Any]) -> Any:
    return item[1]


async def sort_of(provider: Provider, sort_by: str | None, order: Literal["asc", "desc"] | None) -> Sort | None:
    """sort_by and order resolved: a custom field by label (any case) or slot, or name, email or created_at.

    The default order is desc for created_at (newest first) and asc for everything else.

    Raises:
        ValidationFailed: `sort_by` names no field the provider's contacts have; the message lists them.
        ContactsError: Classified failures of reading the custom fields' labels.
    """
    if sort_by is None or not sort_by.strip():
        return None
    text = sort_by.strip()
    own = text.lower().replace(" ", "_")
    if own in OWN_FIELDS:
        return Sort(by=own, order=order or ("desc" if own == "created_at" else "asc"), own=own)
    also = f"sort_by also takes {', '.join(OWN_FIELDS)}."
    fields = await provider.custom_fields()
    if not fields.filterable:
        raise ValidationFailed(
            f"sort_by {text[:40]!r} is not a field {provider.label} contacts can be sorted by: they have no custom "
            f"fields this server reads; {also}"
        )
    slot_given = re.fullmatch(SLOT_PATTERN, text.lower()) is not None
    try:
        slot = resolve_field(text, fields.fields, unresolved=fields.unresolved)
    except ValidationFailed as exc:
        raise ValidationFailed(f"sort_by: {exc.message} {also}") from exc
    label = next((field.label for field in fields.fields if field.slot == slot), None)
    return Sort(
        by=label if label is not None and not slot_given else slot,
        order=order or "asc",
        own=None,
        keys=(label, slot) if label is not None else (slot,),
        kind=slot_type(slot),
        zone=provider.zone,
    )


async def read_contacts(
    provider: Provider,
    query: ListContactsQuery,
    *,
    max_results: int | None = None,
    count_only: bool = False,
    max_chars: int,
    progress: Progress | None = None,
    sort: Sort | None = None,
) -> ContactPage:
    """The contacts `query` matches: one page, up to `max_results`, or only their count.

    `count` is how many contacts the result holds; `total` how many match, when that is exact: every
    match was read from the range's start (the walk reached the end), or the provider counted them.

    Args:
        provider: Whose contacts.
        query: The first page's query; the walker sets `cursor` and `per_page` of each request.
        max_results: Read pages until this many contacts (None: one page of `query.per_page`).
        count_only: Return how many match (up to `max_results`, default `MAX_RESULTS`), no contacts.
        max_chars: The ceiling for the result's text.
        progress: Told after each page how many contacts were read.
        sort: Sort the contacts shown (`sort_of`); None keeps the upstream's order.

    Raises:
        ContactsError: Classified failures of the upstream requests.
    """
    bulk = max_results is not None or count_only
    wanted = max_results or (MAX_RESULTS if count_only else query.per_page)
    # Sorting what max_results reads: read it all (the ceiling applies to what is shown), then sort.
    every = sort is not None and max_results is not None and not count_only
    walk = _Walk(max_chars=max_chars, count_only=count_only, keep=every)
    cursor, resume = Resume.decode(query.cursor)
    from_start = cursor is None and resume is None
    filters: list[AppliedFilter] | None = None
    next_cursor: str | None = None
    has_more = False
    counted: int | None = None
    sorted_upstream = True
    for pages in range(1, MAX_PAGES + 1):
        skip = resume.shown if resume else 0
        size = min(MAX_PAGE, skip + wanted - walk.count) if bulk else min(MAX_PAGE, skip + query.per_page)
        page = await provider.list_contacts(query.model_copy(update={"cursor": cursor, "per_page": max(size, 1)}))
        filters = page.filters
        counted = page.total if pages == 1 or counted is not None else None  # every page must count
        sorted_upstream = sorted_upstream and page.sorted is not None
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
    if every and sort is not None:
        walked = from_start and not has_more
        return _sorted_walk(
            walk, sort, result, walked=walked, counted=counted, upstream=sorted_upstream, max_chars=max_chars
        )
    result = walk.finish(result, None if count_only else sort)
    walked = from_start and not result.has_more
    total = walk.count if walked else counted
    update: dict[str, Any] = {"total": total}
    if count_only and total is None:
        update["total_at_least"] = walk.count
    if sort is not None and not count_only:
        update["sorted"] = _sorted(sort, walk.missing, len(result.contacts), everything=walked or sorted_upstream)
    return result.model_copy(update=update)


def _sorted_walk(
    walk: _Walk, sort: Sort, result: ContactPage, *, walked: bool, counted: int | None, upstream: bool, max_chars: int
) -> ContactPage:
    """The result of a max_results read sorted: every contact read, in order, as many as fit the ceiling.

    `result` carries where the read stopped (next_cursor reads on after the contacts read, in the
    provider's order); a contact the ceiling leaves out is not reachable by the cursor, and the note says so.
    """
    order, missing = sorted_order(walk.read, sort)
    shown = _Walk(max_chars=max_chars, count_only=False)
    shown.sorted_all = True
    shown.take([walk.read[index] for index in order], None, 0, len(order))
    page = shown.finish(result)
    left_out = walk.count - len(page.contacts)
    covers = SORT_COVERS_ALL if walked or upstream else f"the {walk.count:,} contacts read"
    notes: list[str] = []
    if left_out:
        other = "desc" if sort.order == "asc" else "asc"
        notes.append(
            f"Sorted all {walk.count:,} contacts read; shown are the first {len(page.contacts):,}, as many as fit the "
            f"result ceiling. For the rest, narrow the range or the conditions, or call with order={other} for the "
            "other end."
        )
    if result.has_more and covers != SORT_COVERS_ALL:
        notes.append(
            "More contacts match than were read: next_cursor reads on after them in the provider's order. To sort "
            "every match, raise max_results (up to 100,000) or narrow the range or the conditions."
        )
    return page.model_copy(
        update={
            "has_more": result.has_more or left_out > 0,
            "next_cursor": result.next_cursor,
            "total": walk.count if walked else counted,
            "sorted": Sorted(
                by=sort.by, order=sort.order, covers=covers, missing=missing, note=" ".join(notes) or None
            ),
        }
    )


def _sorted(sort: Sort, missing: int, shown: int, *, everything: bool) -> Sorted:
    """What the result says of its order."""
    if everything:
        return Sorted(by=sort.by, order=sort.order, covers=SORT_COVERS_ALL, missing=missing)
    return Sorted(
        by=sort.by,
        order=sort.order,
        covers=f"the {shown:,} contacts read",
        missing=missing,
        note="More contacts match: only those read were sorted, and next_cursor reads on in the provider's order. "
        "To sort every match, call with max_results of at least how many match (up to 100,000), or narrow the "
        "range or the conditions.",
    )


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

    def __init__(self, *, max_chars: int, count_only: bool, keep: bool = False) -> None:
        self.max_chars = max_chars - SLACK_CHARS
        self.count_only = count_only
        self.keep = keep
        """Only keep the contacts as read, with no ceiling (a read to sort): another walk shows them."""
        self.sorted_all = False
        """Showing sorted contacts: the ceiling's note is the sort's own, since no cursor reaches those left out."""
        self.count = 0
        self.contacts: list[dict[str, Any]] = []
        self.origins: list[_Origin] = []
        self.cuts: list[dict[str, Any]] = []
        self.used = ENVELOPE_CHARS
        self.table = TableGrowth(Contact)
        self.full = False
        self.read: list[Contact] = []
        """The contacts taken, as read (the shaped ones may have cut values): what a sort compares."""
        self.missing = 0

    def take(self, page: list[Contact], cursor: str | None, offset: int, wanted: int) -> int:
        """Take the page's contacts from `offset` on until `wanted` in all or the ceiling; how many were taken."""
        taken = 0
        for position in range(offset, len(page)):
            contact = page[position]
            if self.count >= wanted:
                break
            if self.keep:
                self.read.append(contact)
            elif not self.count_only:
                shaped, cuts = shape_contact(contact.model_dump(mode="json"), PAGE_CAPS, f"contacts[{self.count}]")
                cost = row_chars(shaped) + self.table.padding(shaped) + sum(len(json.dumps(cut)) + 1 for cut in cuts)
                if self.contacts and self.used + cost > self.max_chars:  # the first contact always shows
                    self.full = True
                    break
                self.used += cost
                self.contacts.append(shaped)
                self.table.add(shaped)
                self.read.append(contact)
                self.cuts += cuts
                before = page[position - 1].id if position > 0 else None
                self.origins.append(_Origin(cursor, position, before))
            self.count += 1
            taken += 1
        return taken

    def finish(self, result: ContactPage, sort: Sort | None = None) -> ContactPage:
        """`result` with the contacts taken, cut back further if its text would still pass the ceiling, then sorted.

        The exact check renders the shaped dicts the walk already holds, as the server will render
        the result, so a page of thousands of contacts is not turned into models and back per check.
        The cut gives back the last contacts read (so the cursor goes on after the last one kept); the
        sort then orders those kept, which renders to the same length.
        """
        while len(self.contacts) > 1 and len(as_text(self._as_dict(result), ContactPage)) > self.max_chars:
            self.contacts.pop()
            self.read.pop()
            origin = self.origins.pop()
            self.count -= 1
            self.full = True
            cursor = _resume_cursor(origin.cursor, origin.position, origin.before)
            result = result.model_copy(update={"next_cursor": cursor, "has_more": True})
        if sort is not None:
            self._sort(sort)
        truncated = self._truncated()
        return result.model_copy(
            update={
                "contacts": [Contact.model_validate(contact) for contact in self.contacts],
                "count": self._count(),
                "truncated": Truncated.model_validate(truncated) if truncated else None,
            }
        )

    def _sort(self, sort: Sort) -> None:
        """Put the contacts kept in `sort`'s order, each cut's path following its contact."""
        order, self.missing = sorted_order(self.read, sort)
        moved = {old: new for new, old in enumerate(order)}
        self.contacts = [self.contacts[old] for old in order]
        self.read = [self.read[old] for old in order]
        cuts = [cut for cut in self.cuts if _index(cut["path"]) < len(moved)]
        for cut in cuts:
            old = _index(cut["path"])
            cut["path"] = f"contacts[{moved[old]}]" + cut["path"].removeprefix(f"contacts[{old}]")
        self.cuts = sorted(cuts, key=lambda cut: _index(cut["path"]))

    def _count(self) -> int:
        return 0 if self.count_only else len(self.contacts)

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
        if self.full and not self.sorted_all:
            notes.append(
                f"Stopped after {len(self.contacts):,} contacts to stay within the result ceiling of about "
                f"{(self.max_chars + SLACK_CHARS) // CHARS_PER_TOKEN:,} tokens; call again with cursor=next_cursor "
                "and the same other arguments for the rest, or use count_only for just the number."
            )
        return {"note": " ".join(notes), "cuts": kept} if notes else None


def _index(path: str) -> int:
    """The contact index of a cut's path, `contacts[12].names[0]` -> 12."""
    return int(path.removeprefix("contacts[").partition("]")[0])
