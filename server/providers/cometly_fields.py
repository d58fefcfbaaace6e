"""Cometly's custom-field labels: found by their values on the list endpoint, cached, and used to resolve filters.

Cometly has no endpoint that lists a Space's labels, and only labelled slots can be filtered. The
list endpoint shows them, though: with `include_custom_fields=1` an item carries the slots as
`profile_field_1`..`profile_field_30`, and adding `use_custom_field_labels=1` renames the labelled
ones to their labels. Cometly's docs never promise the order of an object's keys, so a label is tied
to its slot by what both answers show of it, its values, and never by where it stands.

`discover` lists a sample of contacts both ways over the same range (the same request but for the
label flag) and `derive` matches the two answers' items by `id`, since a contact may be created or
deleted between the two requests. Then, over the contacts both answers hold:

- A slot shown under its own name in both, with the same values, is unlabelled. A slot missing
  under its own name from the labelled items is labelled.
- A labelled key's candidates are the slots left (labelled, or hidden by a label equal to their
  name) whose values equal its own on every sampled contact: numbers as numbers (25 is 25.0),
  empty text, null and a missing key alike. Equal values group keys and slots, so a slot tied to
  one label (or to its own name) is no candidate for another: a label is pinned when its group
  holds just it and one slot.
- A label that is not pinned is never guessed. It is `unresolved`, either a tie (several slots hold
  the same values on every sampled contact, e.g. all empty, or several labels claim one slot) or a
  mismatch (no slot's values agree with it); `describe_custom_fields` names it with its candidate
  slots, and `resolve_field` refuses it with `UpstreamUnavailable` and asks for the slot.
- A label equal to a key of the item itself (`email`, `name`, ...) cannot be told apart from that
  key, so it is not read, and its slot is listed as `unread`. A label equal to another slot's raw
  name is read when the values tell the two slots apart; when they do not, it looks exactly like
  that slot unlabelled, and is taken as such (resolve_field reads `profile_field_N` as the slot N
  anyway).

The raw answers also tell each text field's values in use (`values_in_use`), for fields with few
distinct values, so describe_custom_fields can list them at no extra request.

It costs two list requests in the common case: the labelled one over the last 30 days, the last
365, then everything since 2000 until a range holds a contact, and the raw one over that range.
Only a tie spends more, once: both requests again over the next page of the range (or the widest
range), with a larger sample. `FieldCache` keeps the answer so the 15 requests a minute go to real
work, and `resolve_field` turns a label an agent gives into the slot Cometly's filter takes.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import anyio

from ...tools.models import SLOT_PATTERN, CustomField, UnresolvedField, custom_field
from ..errors import UpstreamUnavailable, ValidationFailed
from .base import unexpected_shape

V = TypeVar("V")

Fetch = Callable[[list[tuple[str, str]]], Awaitable[Any]]
"""Sends `GET /contacts` with these query pairs and returns the decoded JSON body."""

NOT_CUSTOM_KEYS = frozenset({"id", "email", "name", "phone", "location", "emails", "comet_tokens", "created_at"})
"""Keys of a list item that are not custom fields."""
NESTED_KEY = "custom_fields"
"""Where some answers put the custom fields instead of at the top level of an item."""
NO_CONTACT_TTL_SECONDS = 60.0
"""How long "no contact yet, labels unknown" is kept: the first contact may arrive any time."""
QUOTE_CHARS = 80
"""The most characters of a name or label a message quotes."""
SAMPLE_SIZE = 200
"""How many contacts each discovery request lists (`per_page`): enough for values to tell slots apart."""
MORE_SAMPLE_SIZE = 1_000
"""`per_page` of the one extra pair of requests a tie may spend; Cometly allows up to 5,000."""
MAX_VALUES_IN_USE = 20
"""The most distinct values a text field may show in use to have them listed."""
CONTACTS_PER_VALUE = 3
"""A text field's values are listed only when at least this many times as many sampled contacts have it set
as it has distinct values: a field of emails, names or phones (a value per contact) never qualifies."""
MAX_VALUE_CHARS = 100
"""A field with a longer value in use is free text, not a set of choices: its values are not listed."""

_SLOT = re.compile(SLOT_PATTERN)
_SLOT_ANY_CASE = re.compile(SLOT_PATTERN, re.IGNORECASE)
_SLOT_LIKE = re.compile(r"^profile_field_\d+$", re.IGNORECASE)
# Word boundary before, no digit after: `profile_field_3` is not read out of `profile_field_30`.
_SLOT_IN_TEXT = re.compile(r"\bprofile_field_([1-9][0-9]?)(?![0-9])", re.IGNORECASE)
_NUMBER_TEXT = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
_EARLIEST = datetime(2000, 1, 1)
"""The start of the widest range searched; Cometly has no contacts older than this."""
_WINDOWS = (timedelta(days=30), timedelta(days=365))
"""The ranges searched before the widest, narrowest first: recent contacts are the likely ones."""


# --- Deriving labels from list items ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """What a sample of contacts tells about the Space's labels."""

    fields: list[CustomField]
    """The labelled slots pinned to one label each, in slot order."""
    unresolved: list[UnresolvedField] = field(default_factory=list[UnresolvedField])
    """Labels seen that could not be pinned to one slot, ordered by their first candidate slot."""
    unread: list[str] = field(default_factory=list[str])
    """Slots that are labelled (missing under their own name) but whose label was not seen, in slot order."""
    # Not compared: two samples that pin the same labels say the same about them.
    values: Mapping[str, list[str]] = field(default_factory=dict[str, list[str]], compare=False)
    """Text slots' values in use, by slot, where few enough to list (`values_in_use`)."""
    sampled: int = field(default=0, compare=False)
    """How many contacts the values were read from."""


_EMPTY = ("empty",)
"""null, empty text and a missing key: Cometly's `unknown` treats them alike, and so does the comparison."""

Seen = tuple[dict[str, Hashable], dict[str, Hashable]]
"""One contact both answers hold: its custom values without labels (by slot) and with them (by key)."""


def _comparable(value: object) -> Hashable:
    """A value as the comparison sees it: equal for what may be one value written two ways.

    Loose on purpose: treating two values as equal can only add a candidate (a tie, reported), while
    telling one value written two ways apart would drop the right slot and pin a wrong one.
    """
    if value is None or value == "":
        return _EMPTY
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float) and not math.isfinite(value):
        return ("text", str(value))  # not JSON, though Python reads it: compared as written
    if isinstance(value, int | float):
        return ("number", Decimal(str(value)))  # 25 == 25.0, exactly; Decimal keeps big integers whole
    if isinstance(value, str):
        return ("number", Decimal(value)) if _NUMBER_TEXT.match(value) else ("text", value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


def _custom_values(item: Mapping[str, Any]) -> dict[str, Hashable]:
    """The custom-field values of one list item by key: top-level ones, and those of a nested object."""
    values: dict[str, Hashable] = {}
    for key, value in cast(Mapping[Any, Any], item).items():
        if not isinstance(key, str):
            continue
        if key == NESTED_KEY:
            # PHP sends an empty object as `[]`, so anything but an object here means no fields.
            # Nested, a label cannot collide with the item's own keys, so none is excluded.
            nested: Mapping[Any, Any] = cast(Mapping[Any, Any], value) if isinstance(value, Mapping) else {}
            for inner, inner_value in nested.items():
                if isinstance(inner, str) and inner not in values:
                    values[inner] = _comparable(inner_value)
        elif key not in NOT_CUSTOM_KEYS and key not in values:
            values[key] = _comparable(value)
    return values


def _by_id(items: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Items by id; an item without a usable id, or whose id shows twice, cannot be matched and is left out."""
    found: dict[str, Mapping[str, Any]] = {}
    twice: set[str] = set()
    for item in items:
        raw_id = item.get("id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or str(raw_id).strip() == "":
            continue
        key = str(raw_id).strip()
        if key in found:
            twice.add(key)
        found[key] = item
    return {key: item for key, item in found.items() if key not in twice}


def sample(raw: Sequence[Mapping[str, Any]], labelled: Sequence[Mapping[str, Any]]) -> list[Seen]:
    """The contacts both answers hold, matched by `id`, with their custom values both ways.

    Args:
        raw: The items of an answer without labels.
        labelled: The items of the same request with `use_custom_field_labels=1`.

    Returns:
        One (raw values by slot, labelled values by key) per contact in both, in the labelled order.
    """
    raw_items = _by_id(raw)
    return [
        (_custom_values(raw_items[key]), _custom_values(item))
        for key, item in _by_id(labelled).items()
        if key in raw_items
    ]


def _slot_number(slot: str) -> int:
    return int(slot.removeprefix("profile_field_"))


def _first_slot(candidates: Sequence[str]) -> int:
    return min((_slot_number(slot) for slot in candidates), default=31)


def pair(seen: Sequence[Seen]) -> Labels:
    """Tie each labelled key to the one slot whose values agree with it on every contact, where only one does.

    Args:
        seen: The contacts both answers hold (`sample`), from one or more pairs of requests.

    Returns:
        The pinned labels, the ones that could not be pinned, and the labelled slots whose label was not seen.
    """
    raw_keys: set[str] = set()
    shown: set[str] = set()
    for raw, labelled in seen:
        raw_keys.update(raw)
        shown.update(labelled)
    slots = sorted((key for key in raw_keys if _SLOT.fullmatch(key)), key=_slot_number)
    # A key other than a slot in the raw answer is the item's own (one this module does not know):
    # a label equal to it collides with it, like a label equal to `email`, and cannot be read.
    own_keys = raw_keys - set(slots)

    def column(side: int, key: str) -> tuple[Hashable, ...]:
        return tuple(contact[side].get(key, _EMPTY) for contact in seen)

    # Unlabelled: shown under its own name in both, with the same values.
    unlabelled = {slot for slot in slots if slot in shown and column(1, slot) == column(0, slot)}
    open_slots = [slot for slot in slots if slot not in unlabelled]
    keys = sorted(key for key in shown if key not in unlabelled and key not in own_keys)

    # Equal values are an equivalence, so keys and slots fall into groups of the same values on every
    # contact: a key can only be a slot of its group. One key and one slot in a group pin each other.
    slot_groups: dict[tuple[Hashable, ...], list[str]] = {}
    for slot in open_slots:
        slot_groups.setdefault(column(0, slot), []).append(slot)
    key_groups: dict[tuple[Hashable, ...], list[str]] = {}
    for key in keys:
        key_groups.setdefault(column(1, key), []).append(key)

    pinned: dict[str, str] = {}
    unresolved: list[UnresolvedField] = []
    claimed: set[str] = set()
    for values, group in key_groups.items():
        candidates = slot_groups.get(values, [])
        claimed.update(candidates)
        if len(group) == 1 and len(candidates) == 1:
            pinned[candidates[0]] = group[0]
        elif candidates:
            unresolved.extend(UnresolvedField(label=key, candidates=candidates, reason="tie") for key in group)
    # The slots no key's values agree with: one of them is where a mismatched label's values should be.
    unclaimed = [slot for slot in open_slots if slot not in claimed]
    for values, group in key_groups.items():
        if values not in slot_groups:
            unresolved.extend(UnresolvedField(label=key, candidates=unclaimed, reason="mismatch") for key in group)
    # A blank label cannot be named in a filter, so it is not shown; it still took its slot above.
    unresolved = [entry for entry in unresolved if entry.label.strip()]
    unresolved.sort(key=lambda entry: (_first_slot(entry.candidates), entry.label))
    fields = [custom_field(slot, pinned[slot]) for slot in slots if slot in pinned and pinned[slot].strip()]
    unread = [slot for slot in unclaimed if slot not in shown]
    return Labels(fields=fields, unresolved=unresolved, unread=unread)


def derive(raw: Sequence[Mapping[str, Any]], labelled: Sequence[Mapping[str, Any]]) -> Labels | None:
    """The Space's labels, from the items of one list request without labels and the same request with them.

    Odd answers (non-string keys, collisions, items without ids) give fewer pinned labels, never an error
    and never a guess.

    Args:
        raw: The items of an answer whose custom fields are under their slot names, `profile_field_N`.
        labelled: The items of the same request with `use_custom_field_labels=1`.

    Returns:
        What the contacts both answers hold tell (`pair`); None when they hold no contact in common.
    """
    seen = sample(raw, labelled)
    return pair(seen) if seen else None


def _raw_value(item: Mapping[str, Any], slot: str) -> object:
    nested = item.get(NESTED_KEY)
    if slot not in item and isinstance(nested, Mapping):
        return cast(Mapping[str, Any], nested).get(slot)
    return item.get(slot)


def values_in_use(raw: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The values the text slots hold in a sample, by slot, for the slots with few distinct values.

    A slot's values are listed only when it holds at most `MAX_VALUES_IN_USE` distinct values, none
    longer than `MAX_VALUE_CHARS`, and at least `CONTACTS_PER_VALUE` times as many contacts have it
    set: so a field of personal data (an email, a name, a phone per contact) is never listed.

    Args:
        raw: List items without labels (slots under `profile_field_N`); duplicate ids count once.

    Returns:
        The qualifying slots' distinct values, each as Cometly sent it, sorted ignoring case.
    """
    items = list(_by_id(raw).values())
    found: dict[str, list[str]] = {}
    for number in range(1, 16):  # the text slots
        slot = f"profile_field_{number}"
        held = [value for item in items if isinstance(value := _raw_value(item, slot), str) and value.strip()]
        distinct = set(held)
        if (
            distinct
            and len(distinct) <= MAX_VALUES_IN_USE
            and len(held) >= CONTACTS_PER_VALUE * len(distinct)
            and all(len(value) <= MAX_VALUE_CHARS for value in distinct)
        ):
            found[slot] = sorted(distinct, key=lambda value: (value.casefold(), value))
    return found


def _with_values(found: Labels, raw: Sequence[Mapping[str, Any]]) -> Labels:
    return replace(found, values=values_in_use(raw), sampled=len(_by_id(raw)))


# --- Discovering them upstream ----------------------------------------------------------------------------------------


def _params(
    start: datetime, end: datetime, *, labels: bool, per_page: int, cursor: str | None = None
) -> list[tuple[str, str]]:
    params = [
        ("start_date", start.isoformat(sep=" ", timespec="seconds")),
        ("end_date", end.isoformat(sep=" ", timespec="seconds")),
        ("per_page", str(per_page)),
    ]
    if cursor is not None:
        params.append(("cursor", cursor))
    params += [("include_custom_fields", "1"), ("use_custom_field_labels", "1" if labels else "0")]
    return params


@dataclass(frozen=True)
class _Page:
    items: list[Mapping[str, Any]]
    next_cursor: str | None


def _page(body: Any) -> _Page:
    """The contacts of a list answer, and its cursor to the next page.

    Raises:
        UpstreamUnavailable: The body has no `data` list, or an item is not an object.
    """
    data = cast(Mapping[str, Any], body).get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise unexpected_shape("Cometly", "a contact list", "no `data` list")
    items = cast(list[Any], data)
    if not all(isinstance(item, Mapping) for item in items):
        raise unexpected_shape("Cometly", "a contact list", "a contact that is not an object")
    cursor = cast(Mapping[str, Any], body).get("next_cursor")
    return _Page(cast(list[Mapping[str, Any]], items), cursor if isinstance(cursor, str) and cursor else None)


async def discover(fetch: Fetch, *, now: datetime) -> Labels | None:
    """Find the Space's labelled custom fields by listing a sample of contacts with labels and without.

    Each try costs one request, so the range widens only while it finds no contact: the last 30
    days, the last 365, then everything since 2000. The raw request goes over the range that found
    one, with the same parameters but the label flag, and costs one more. Only when a label ties with
    several slots does it read once more, both ways: the next page of that range when there is one,
    else the widest range, `MORE_SAMPLE_SIZE` contacts each. At most 3 + 1 + 2 = 6 requests, then.
    The text fields' values in use are read from the same raw answers (`values_in_use`).

    Args:
        fetch: Sends `GET /contacts` with the given query pairs and returns the decoded body.
        now: The current wall-clock time in the Space's timezone, naive (an aware one is read as
            its wall-clock time), since Cometly reads the dates in that timezone.

    Returns:
        What the sample tells (`pair`), or None when the Space has no contact to read it from (or
        the contacts listed were gone by the raw request).

    Raises:
        UpstreamUnavailable: An answer has no `data` list.
        ContactsError: Whatever `fetch` raises, unchanged.
    """
    end = now.replace(tzinfo=None)
    starts = [start for start in (*(end - window for window in _WINDOWS), _EARLIEST) if start < end]
    for start in starts:  # Cometly rejects an end before its start, hence `start < end`
        labelled = _page(await fetch(_params(start, end, labels=True, per_page=SAMPLE_SIZE)))
        if not labelled.items:
            continue
        raw = _page(await fetch(_params(start, end, labels=False, per_page=SAMPLE_SIZE)))
        seen = sample(raw.items, labelled.items)
        if not seen:
            return None
        found = _with_values(pair(seen), raw.items)
        if not any(entry.reason == "tie" for entry in found.unresolved):
            return found
        # A tie: more contacts may hold values that tell the slots apart. Each answer goes on from its
        # own cursor (the two pages may hold different contacts); matching by id lines them up again.
        if labelled.next_cursor is not None and raw.next_cursor is not None:
            wider, labelled_cursor, raw_cursor = start, labelled.next_cursor, raw.next_cursor
        elif start != starts[-1]:
            wider, labelled_cursor, raw_cursor = starts[-1], None, None
        else:
            return found  # every contact of the widest range was read
        first = raw.items
        more = _params(wider, end, labels=True, per_page=MORE_SAMPLE_SIZE, cursor=labelled_cursor)
        labelled = _page(await fetch(more))
        more = _params(wider, end, labels=False, per_page=MORE_SAMPLE_SIZE, cursor=raw_cursor)
        raw = _page(await fetch(more))
        return _with_values(pair([*seen, *sample(raw.items, labelled.items)]), [*first, *raw.items])
    return None


# --- Caching them -----------------------------------------------------------------------------------------------------


Discovery = Callable[[], Awaitable[Labels | list[CustomField] | None]]
"""Runs one discovery: `Labels`, or just the fields when every one found is certain; None when nothing is known yet."""


@dataclass(frozen=True)
class Discovered:
    """One discovery's answer and when it was made."""

    fields: list[CustomField] | None
    """The labelled slots pinned to a label, in slot order; None when the Space had no contact to read them from."""
    checked_at: datetime
    """When the discovery finished (aware, UTC)."""
    unresolved: tuple[UnresolvedField, ...] = ()
    """Labels seen that could not be pinned to one slot (`Labels.unresolved`)."""
    unread: tuple[str, ...] = ()
    """Labelled slots whose label was not seen (`Labels.unread`)."""
    values: Mapping[str, list[str]] = field(default_factory=dict[str, list[str]], compare=False)
    """Text slots' values in use, where few enough to list (`Labels.values`)."""
    sampled: int = field(default=0, compare=False)
    """How many contacts the values were read from (`Labels.sampled`)."""

    @property
    def labels(self) -> Labels | None:
        """What this discovery found, as `Labels`; None when the Space had no contact to read them from."""
        if self.fields is None:
            return None
        return Labels(
            fields=self.fields,
            unresolved=list(self.unresolved),
            unread=list(self.unread),
            values=self.values,
            sampled=self.sampled,
        )


@dataclass(frozen=True)
class _Entry:
    found: Discovered
    expires: float
    generation: int


@dataclass(frozen=True)
class _Failure:
    error: Exception
    generation: int


class FieldCache:
    """Keeps one discovery for a while, and never runs two at once.

    Discovery spends requests of a small budget (Cometly's list endpoint allows 15 a minute), so
    calls that arrive while one runs wait for it and share its outcome, success or failure, instead
    of sending their own. A failure is not kept: a call made after it tries again.
    """

    def __init__(
        self,
        discover: Discovery,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Build an empty cache.

        Args:
            discover: Runs one discovery (normally `discover` with the provider's fetch and clock, or
                a provider's read of its field definitions).
            ttl_seconds: How long a discovery is used before the next `get` repeats it; "no contact
                yet" is kept at most `NO_CONTACT_TTL_SECONDS`.
            clock: Seconds for measuring the TTL; monotonic so wall-clock jumps do not matter.
            wall_clock: The current time, for `Discovered.checked_at`.
        """
        self._discover = discover
        self._ttl = ttl_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = anyio.Lock()
        self._started = 0
        """How many discoveries have started; the n-th has generation n."""
        self._running = False
        self._entry: _Entry | None = None
        self._failure: _Failure | None = None
        self._floor = 0
        """Discoveries of this generation or older started before `invalidate` and are not kept."""

    @property
    def cached(self) -> Discovered | None:
        """The last discovery kept, even past its TTL (see its `checked_at`), without fetching; None if none."""
        return None if self._entry is None else self._entry.found

    def invalidate(self) -> None:
        """Forget the kept discovery, and do not keep one already running: the next `get` discovers anew."""
        self._entry = None
        self._floor = self._started

    async def get(self, *, refresh: bool = False) -> Discovered:
        """The Space's labelled custom fields, discovered now or earlier.

        Args:
            refresh: Discover again even within the TTL, unless a discovery that started after this
                call has just finished (its answer is as fresh as a new one).

        Returns:
            The kept discovery while it is within its TTL, else a new one.

        Raises:
            Exception: Whatever the discovery raised (a `ContactsError` from the upstream, normally), for
                this call and the calls that waited for it.
        """
        # Outcomes of this generation or newer are fresh enough for this call: with `refresh`, only
        # one that started after the call; without, also the one running when the call came.
        fresh_from = self._started + (0 if self._running and not refresh else 1)
        async with self._lock:
            entry = self._entry
            if entry is not None:
                within_ttl = not refresh and self._clock() < entry.expires
                if within_ttl or entry.generation >= fresh_from:
                    return entry.found
            failure = self._failure
            if failure is not None and failure.generation >= fresh_from:
                raise failure.error
            return await self._run()

    async def _run(self) -> Discovered:
        self._started += 1
        generation = self._started
        self._running = True
        try:
            answer = await self._discover()
        except Exception as exc:
            # Kept only for the calls already waiting (see `get`); a cancellation is not an outcome.
            self._failure = _Failure(exc, generation)
            raise
        finally:
            self._running = False
        moment = self._wall_clock()
        checked_at = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if isinstance(answer, Labels):
            found = Discovered(
                answer.fields,
                checked_at,
                tuple(answer.unresolved),
                tuple(answer.unread),
                values=answer.values,
                sampled=answer.sampled,
            )
        else:
            found = Discovered(answer, checked_at)
        ttl = self._ttl if found.fields is not None else min(self._ttl, NO_CONTACT_TTL_SECONDS)
        if generation > self._floor:
            self._entry = _Entry(found, self._clock() + ttl, generation)
        self._failure = None
        return found


# --- Resolving a filter's field ---------------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    """`text` in quotes, cut to `QUOTE_CHARS` characters so a huge argument cannot flood a message."""
    return repr(text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "…")


def named_fields(fields: Sequence[CustomField]) -> str:
    """The fields as `'Label' (profile_field_N), ...`, each label quoted short."""
    return ", ".join(f"{_quoted(field.label)} ({field.slot})" for field in fields)


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def named_unresolved(entries: Sequence[UnresolvedField]) -> str:
    """The labels as `'Label' (profile_field_N or profile_field_M), ...`, each label quoted short."""
    return ", ".join(f"{_quoted(entry.label)} ({' or '.join(entry.candidates) or 'no slot'})" for entry in entries)


def _why_unpinned(entry: UnresolvedField) -> str:
    label = _quoted(entry.label)
    if entry.reason == "mismatch":
        maybe = f"; it is likely one of {', '.join(entry.candidates)}" if entry.candidates else ""
        return f"the values Cometly shows under {label} agree with no slot's{maybe}"
    if len(entry.candidates) == 1:
        return f"{label} shows the same values as another label, and only {entry.candidates[0]} holds them"
    return (
        f"{label} may be {' or '.join(entry.candidates)}: those slots held the same values on every contact "
        "read, so nothing tells them apart"
    )


def _unread_hint(unread: Sequence[str]) -> str:
    if not unread:
        return ""
    return (
        f" Also labelled, with a label that could not be read (it may equal a key of the contact, such as "
        f"email): {', '.join(unread)}; pass the slot if it is one of these."
    )


def resolve_field(
    name: str,
    fields: Sequence[CustomField] | None,
    *,
    unresolved: Sequence[UnresolvedField] = (),
    unread: Sequence[str] = (),
) -> str:
    """The slot a filter condition's `field` means, given as a label or as a slot.

    A slot name (`profile_field_N`, any case) is taken as it is, without checking `fields`: Cometly
    judges it, and answers 422 when the slot has no label. A label matches exactly first, then
    ignoring case and extra blanks; a label that matches one the sample could not pin to a slot is
    refused, never guessed.

    Args:
        name: The label or slot the caller gave.
        fields: The labelled slots (`FieldCache.get`), or None when they cannot be known yet.
        unresolved: The labels seen that could not be pinned to one slot (`Labels.unresolved`).
        unread: The labelled slots whose label was not seen (`Labels.unread`), for the messages.

    Returns:
        The slot, `profile_field_N` in lower case.

    Raises:
        ValidationFailed: No label matches `name`, or several labelled fields do.
        UpstreamUnavailable: `name` matches a label Cometly's answers did not pin to one slot (its
            candidate slots held the same values, or its values agreed with none); the message names
            the candidates and asks for the slot.
    """
    text = name.strip()
    if _SLOT_ANY_CASE.fullmatch(text):
        return text.lower()
    shown = _quoted(name)
    if fields is None:
        raise ValidationFailed(
            f"cannot resolve the custom field {shown}: Cometly's labels cannot be discovered until the Space "
            "has a contact; pass the slot instead, profile_field_1..profile_field_30."
        )
    if not fields and not unresolved:
        raise ValidationFailed(
            f"no custom field is labelled {shown}: the Space has no labelled custom fields that could be read, so "
            f"nothing can be filtered by label (Cometly filters only labelled slots).{_unread_hint(unread)}"
        )
    matches = [field for field in fields if field.label == name]
    unpinned = [entry for entry in unresolved if entry.label == name]
    if not matches and not unpinned:
        wanted = _normal(name)
        matches = [field for field in fields if _normal(field.label) == wanted]
        unpinned = [entry for entry in unresolved if _normal(entry.label) == wanted]
    if unpinned:
        also = f" It also matches {named_fields(matches)}." if matches else ""
        raise UpstreamUnavailable(
            f"Cometly's answers do not tell which slot the custom field {shown} is: "
            f"{'; '.join(_why_unpinned(entry) for entry in unpinned)}.{also} Pass the slot directly instead "
            "(profile_field_N is always sent as given); describe_custom_fields lists what is known."
        )
    if len(matches) == 1:
        return matches[0].slot
    if matches:
        raise ValidationFailed(
            f"the custom field {shown} is ambiguous: it matches {named_fields(matches)}; pass the slot instead."
        )
    hint = " Slots are profile_field_1..profile_field_30." if _SLOT_LIKE.fullmatch(text) else ""
    known = f" Labels not pinned to one slot: {named_unresolved(unresolved)}." if unresolved else ""
    raise ValidationFailed(
        f"no custom field is labelled {shown}. The labelled fields are: {named_fields(fields) or 'none'}.{known} "
        f"Pass one of these labels or slots; describe_custom_fields lists them.{hint}{_unread_hint(unread)}"
    )


def keyed_by_label(values: Mapping[str, V], fields: Sequence[CustomField]) -> dict[str, V]:
    """Custom values by slot, keyed instead by the label each slot is pinned to (`Labels.fields`).

    A slot with no pinned label (unlabelled, or its label unresolved or unread) keeps its slot name,
    as does one whose label is also another key of `values`, so no value hides another.
    """
    labels = {field.slot: field.label for field in fields}
    keyed: dict[str, V] = {}
    for slot, value in values.items():
        label = labels.get(slot)
        key = label if label is not None and label not in values and label not in keyed else slot
        keyed[key] = value
    return keyed


def named_slots(message: str) -> list[str]:
    """The distinct slots (`profile_field_1`..`profile_field_30`) an upstream error names, in order, lower case.

    Used to tell whether a 422 is about a slot that has no label.
    """
    slots: list[str] = []
    for match in _SLOT_IN_TEXT.finditer(message):
        slot = f"profile_field_{match.group(1)}"
        if 1 <= int(match.group(1)) <= 30 and slot not in slots:
            slots.append(slot)
    return slots
