"""Cometly's custom-field labels: found from the list endpoint, cached, and used to resolve filter fields.

Cometly has no endpoint that lists a Space's labels, and only labelled slots can be filtered. The
list endpoint shows them, though: with `include_custom_fields=1` an item carries all 30 slots as
`profile_field_1`..`profile_field_30`, in slot order; adding `use_custom_field_labels=1` renames the
labelled ones to their labels and keeps the order. So one contact fetched both ways tells which slot
has which label (`derive`), `discover` finds such a contact for the least rate budget, `FieldCache`
keeps the answer so the 15 requests a minute go to real work, and `resolve_field` turns a label an
agent gives into the slot Cometly's filter takes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from difflib import SequenceMatcher
from typing import Any, cast

import anyio

from server.errors import ValidationFailed
from server.providers.base import unexpected_shape
from tools.models import SLOT_PATTERN, CustomField, custom_field

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

_SLOT = re.compile(SLOT_PATTERN)
_SLOT_ANY_CASE = re.compile(SLOT_PATTERN, re.IGNORECASE)
_SLOT_LIKE = re.compile(r"^profile_field_\d+$", re.IGNORECASE)
# Word boundary before, no digit after: `profile_field_3` is not read out of `profile_field_30`.
_SLOT_IN_TEXT = re.compile(r"\bprofile_field_([1-9][0-9]?)(?![0-9])", re.IGNORECASE)
_EARLIEST = datetime(2000, 1, 1)
"""The start of the widest range searched; Cometly has no contacts older than this."""
_WINDOWS = (timedelta(days=30), timedelta(days=365))
"""The ranges searched before the widest, narrowest first: recent contacts are the likely ones."""


# --- Deriving labels from list items ----------------------------------------------------------------------------------


def _custom_keys(item: Mapping[str, Any]) -> list[str]:
    """The custom-field keys of one list item, in order: top-level ones, and those of a nested object."""
    keys: list[str] = []
    for key, value in cast(Mapping[Any, Any], item).items():
        if not isinstance(key, str):
            continue
        if key == NESTED_KEY:
            # PHP sends an empty object as `[]`, so anything but an object here means no fields.
            # Nested, a label cannot collide with the item's own keys, so none is excluded.
            nested: Mapping[Any, Any] = cast(Mapping[Any, Any], value) if isinstance(value, Mapping) else {}
            keys.extend(inner for inner in nested if isinstance(inner, str) and inner not in keys)
        elif key not in NOT_CUSTOM_KEYS and key not in keys:
            keys.append(key)
    return keys


def _slot_number(slot: str) -> int:
    return int(slot.removeprefix("profile_field_"))


def _pairs(raw: list[str], labelled: list[str]) -> Iterator[tuple[str, str]]:
    """(slot, key it shows under with labels) for each slot that can be matched with a labelled key."""
    if len(raw) == len(labelled):
        # Same length: nothing collided, and the order is slot order on both sides. A label may equal
        # another slot's raw name (slot 5 labelled "profile_field_9"), so only the position tells.
        yield from zip(raw, labelled, strict=True)
        return
    # A label equal to a reserved key or to another key was swallowed, so positions shifted. The keys
    # both sides share (unlabelled slots) still stand in slot order, so a diff lines the rest up: each
    # run of raw slots that was replaced pairs in order with the labelled keys that replaced it, as far
    # as both go. Only a run that lost a key can pair wrongly, and only within itself.
    matcher = SequenceMatcher(None, raw, labelled, autojunk=False)
    for tag, raw_from, raw_to, labelled_from, labelled_to in matcher.get_opcodes():
        if tag == "replace":
            yield from zip(raw[raw_from:raw_to], labelled[labelled_from:labelled_to], strict=False)


def derive(raw: Mapping[str, Any], labelled: Mapping[str, Any]) -> list[CustomField]:
    """The labelled custom-field slots, from one list item fetched without labels and one fetched with them.

    Both items should come from the same listing (normally the same contact), with
    `include_custom_fields=1`; `labelled` also with `use_custom_field_labels=1`. Odd answers (other
    key counts, non-string keys, collisions) give fewer fields, never an error.

    Args:
        raw: An item whose custom fields are under their slot names, `profile_field_N`.
        labelled: An item whose labelled custom fields are under their labels.

    Returns:
        One `CustomField` per slot shown under a label, in slot order; empty when none is labelled.
    """
    found: dict[str, str] = {}
    for slot, key in _pairs(_custom_keys(raw), _custom_keys(labelled)):
        if _SLOT.fullmatch(slot) and key != slot and key.strip() and slot not in found:
            found[slot] = key
    return [custom_field(slot, found[slot]) for slot in sorted(found, key=_slot_number)]


# --- Discovering them upstream ----------------------------------------------------------------------------------------


def _params(start: datetime, end: datetime, *, labels: bool) -> list[tuple[str, str]]:
    return [
        ("start_date", start.isoformat(sep=" ", timespec="seconds")),
        ("end_date", end.isoformat(sep=" ", timespec="seconds")),
        ("per_page", "1"),
        ("include_custom_fields", "1"),
        ("use_custom_field_labels", "1" if labels else "0"),
    ]


def _first_item(body: Any) -> Mapping[str, Any] | None:
    """The first contact of a list answer; None when `data` is empty.

    Raises:
        UpstreamUnavailable: The body has no `data` list, or its first item is not an object.
    """
    data = cast(Mapping[str, Any], body).get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise unexpected_shape("Cometly", "a contact list", "no `data` list")
    items = cast(list[Any], data)
    if not items:
        return None
    if not isinstance(items[0], Mapping):
        raise unexpected_shape("Cometly", "a contact list", "a contact that is not an object")
    return cast(Mapping[str, Any], items[0])


async def discover(fetch: Fetch, *, now: datetime) -> list[CustomField] | None:
    """Find the Space's labelled custom fields by listing one contact with labels and without.

    Each try costs one request, so the range widens only while it finds no contact: the last 30
    days, the last 365, then everything since 2000. The raw request goes over the range that found
    one, and costs one more.

    Args:
        fetch: Sends `GET /contacts` with the given query pairs and returns the decoded body.
        now: The current wall-clock time in the Space's timezone, naive (an aware one is read as
            its wall-clock time), since Cometly reads the dates in that timezone.

    Returns:
        The labelled slots in slot order (empty when none is labelled), or None when the Space has
        no contact to read them from.

    Raises:
        UpstreamUnavailable: An answer has no `data` list.
        ContactsError: Whatever `fetch` raises, unchanged.
    """
    end = now.replace(tzinfo=None)
    for start in (*(end - window for window in _WINDOWS), _EARLIEST):
        if start >= end:  # Cometly rejects an end before its start
            continue
        labelled = _first_item(await fetch(_params(start, end, labels=True)))
        if labelled is None:
            continue
        raw = _first_item(await fetch(_params(start, end, labels=False)))
        # The one contact was deleted between the two requests: nothing to compare it with.
        return None if raw is None else derive(raw, labelled)
    return None


# --- Caching them -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discovered:
    """One discovery's answer and when it was made."""

    fields: list[CustomField] | None
    """The labelled slots in slot order; None when the Space had no contact to read them from."""
    checked_at: datetime
    """When the discovery finished (aware, UTC)."""


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
        discover: Callable[[], Awaitable[list[CustomField] | None]],
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Build an empty cache.

        Args:
            discover: Runs one discovery (normally `discover` with the provider's fetch and clock).
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
            fields = await self._discover()
        except Exception as exc:
            # Kept only for the calls already waiting (see `get`); a cancellation is not an outcome.
            self._failure = _Failure(exc, generation)
            raise
        finally:
            self._running = False
        moment = self._wall_clock()
        found = Discovered(fields, moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC))
        ttl = self._ttl if fields is not None else min(self._ttl, NO_CONTACT_TTL_SECONDS)
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


def resolve_field(name: str, fields: Sequence[CustomField] | None) -> str:
    """The slot a filter condition's `field` means, given as a label or as a slot.

    A slot name (`profile_field_N`, any case) is taken as it is, without checking `fields`: Cometly
    judges it, and answers 422 when the slot has no label. A label matches exactly first, then
    ignoring case and extra blanks.

    Args:
        name: The label or slot the caller gave.
        fields: The labelled slots (`FieldCache.get`), or None when they cannot be known yet.

    Returns:
        The slot, `profile_field_N` in lower case.

    Raises:
        ValidationFailed: No labelled field matches `name`, or several do.
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
    if not fields:
        raise ValidationFailed(
            f"no custom field is labelled {shown}: the Space has no labelled custom fields, so nothing can be "
            "filtered (Cometly filters only labelled slots)."
        )
    matches = [field for field in fields if field.label == name]
    if not matches:
        wanted = _normal(name)
        matches = [field for field in fields if _normal(field.label) == wanted]
    if len(matches) == 1:
        return matches[0].slot
    if matches:
        raise ValidationFailed(
            f"the custom field {shown} is ambiguous: it matches {named_fields(matches)}; pass the slot instead."
        )
    hint = " Slots are profile_field_1..profile_field_30." if _SLOT_LIKE.fullmatch(text) else ""
    raise ValidationFailed(
        f"no custom field is labelled {shown}. The labelled fields are: {named_fields(fields)}. Pass one of these "
        f"labels or slots; describe_custom_fields lists them.{hint}"
    )


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
