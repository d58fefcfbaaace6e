"""How the index compares text: folded names, case-folded emails, E.164 phones, and a lookup made into a `Query`.

The backends store what these functions return and look up what `query` builds, so a contact
stored as "José Núñez" / "(415) 555-0100" is found by "jose nunez" / "+14155550100".

Phones are kept under keys (`phone_keys`): the E.164 form when the number parses on its own (it
starts with +), else its digits; a parsed number also under its national digits marked `~`, so a
lookup that could not be parsed (digits, no region) still finds it. A lookup's E.164 number also
matches contacts whose phone was stored as bare digits, national or with the country code
(`phone_candidates`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import phonenumbers

from ...tools.models import Lookup
from ..errors import ValidationFailed
from .base import Entry, Query

MAX_TEXT = 200
"""The longest name or free query accepted, in characters (before folding)."""
MIN_PHONE_DIGITS = 5
MAX_PHONE_DIGITS = 15  # E.164's own maximum

_WHITESPACE = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]$")
_PHONE_CHARACTERS = re.compile(r"^\+?[\d\s().\-/]+$")
NATIONAL_MARK = "~"
"""Prefixes the national-digits key of a phone that parsed (never a character of a normalized phone)."""


def fold(text: str) -> str:
    """Text as names are compared: accents dropped, case folded, whitespace collapsed ("José Núñez" -> "jose nunez")."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _WHITESPACE.sub(" ", bare.casefold()).strip()


def email(text: str) -> str:
    """An email as the index compares it: stripped and case-folded."""
    return text.strip().casefold()


def domain_of(address: str) -> str:
    """The domain of a (normalized) email: what follows its last `@`; empty when it has none."""
    _, at, domain = address.rpartition("@")
    return domain if at else ""


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def phone(text: str, region: str | None = None) -> str:
    """A phone as the index compares it: E.164 when it parses (with `region` for a national number), else its digits.

    A number starting with + parses without a region. Digits keep a leading + the text had.
    """
    number = _parsed(text, region)
    if number is not None:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = _digits(text)
    return f"+{digits}" if text.strip().startswith("+") else digits


def phone_keys(text: str) -> set[str]:
    """The keys a stored phone is found under: its `phone` form, and the national digits (marked) when it parsed."""
    number = _parsed(text, None)
    if number is not None:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return {e164, NATIONAL_MARK + phonenumbers.national_significant_number(number)}
    normalized = phone(text)
    return {normalized} if normalized.strip("+") else set()


def phone_candidates(normalized: str) -> list[str]:
    """The keys a lookup's `Query.phone` matches: itself, and for E.164 the digit forms a stored phone may have had."""
    number = _parsed(normalized, None) if normalized.startswith("+") else None
    if number is None:
        return [normalized, NATIONAL_MARK + normalized.lstrip("+")]
    national = phonenumbers.national_significant_number(number)
    return sorted({normalized, normalized[1:], national, f"0{national}"})


def phone_matches(stored: str, normalized: str) -> bool:
    """Whether a contact's phone (as Cometly sent it) matches a lookup's `Query.phone`, as the index matches them."""
    return not phone_keys(stored).isdisjoint(phone_candidates(normalized))


def _letters(folded: str) -> int:
    return sum(char.isalnum() for char in folded)


def _text(value: str, what: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValidationFailed(f"{what} is {len(value)} characters; send at most {MAX_TEXT}, e.g. a name or its start.")
    folded = fold(value)
    if _letters(folded) < 2:
        raise ValidationFailed(f"{what} {value!r} has fewer than 2 letters or digits; send at least 2 of a name.")
    return folded


def _email(value: str) -> str:
    address = email(value)
    if not _EMAIL.match(address):
        raise ValidationFailed(f"email {value!r} is not an address like name@example.com; send the whole address.")
    return address


def _phone(value: str, region: str | None) -> str:
    digits = len(_digits(value))
    if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        raise ValidationFailed(
            f"phone {value!r} has {digits} digits; send {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS}, "
            "best with its country code (+14155550100)."
        )
    return phone(value, region)


def _domain(value: str) -> str | None:
    candidate = value.removeprefix("@").casefold().rstrip(".")
    return candidate if _DOMAIN.match(candidate) else None


def _free(value: str, region: str | None) -> Query:
    """A free `query`, classified: an email, a domain, a phone, else text."""
    local, at, _ = value.partition("@")
    if at and local:
        return Query(email=_email(value))
    if at or (" " not in value and "." in value):
        domain = _domain(value)
        if domain is not None:
            return Query(domain=domain)
        if at:
            raise ValidationFailed(f"query {value!r} is not a domain like @example.com; send a domain or an email.")
    digits = len(_digits(value))
    if _PHONE_CHARACTERS.match(value) and MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        return Query(phone=phone(value, region))
    return Query(text=_text(value, "query"))


def query(lookup: Lookup, *, region: str | None = None) -> Query:
    """The `Query` a lookup asks for; email, phone and name given together must all match.

    Args:
        lookup: find_contact's arguments, stripped, None when absent.
        region: The ISO country (e.g. "US") national phone numbers are read in; None: only +numbers parse.

    Raises:
        ValidationFailed: Nothing to look for, or a value that cannot match anything; the message says what to send.
    """
    if lookup.email is None and lookup.phone is None and lookup.name is None and lookup.query is None:
        raise ValidationFailed("nothing to look for; send an email, a phone, a name, or a query.")
    free = Query() if lookup.query is None else _free(lookup.query, region)
    # A query beside the named fields narrows them further; where both say the same field, the named one wins.
    return Query(
        email=free.email if lookup.email is None else _email(lookup.email),
        phone=free.phone if lookup.phone is None else _phone(lookup.phone, region),
        name=free.name if lookup.name is None else _text(lookup.name, "name"),
        domain=free.domain,
        text=free.text,
    )


# --- what the backends store beside each entry ---------------------------------------------------

KEY_SEPARATOR = "\n"
"""Between the folded names of `name_key` (and around them), so equality and prefix are substring tests."""


def name_key(names: Iterable[str]) -> str:
    """The folded names as one searchable string: "\\njose nunez\\nj nunez\\n"."""
    return KEY_SEPARATOR + "".join(fold(name) + KEY_SEPARATOR for name in names)


def text_key(entry: Entry) -> str:
    """What a free text query searches: the folded names, emails, phones' digits and locations."""
    parts = [
        *(fold(name) for name in entry.names),
        *(fold(address) for address in entry.emails),
        *(_digits(number) for number in entry.phones),
        *(fold(location) for location in entry.locations),
    ]
    return KEY_SEPARATOR + "".join(part + KEY_SEPARATOR for part in parts)


def phrase(folded: str) -> str:
    """A folded text as an FTS5 phrase (a substring match with the trigram tokenizer)."""
    return '"' + folded.replace('"', '""') + '"'


# --- creation bounds, as the backends keep them: whole Unix seconds, UTC ---------------------------

DAY = 86_400
DATED_DAY = DAY + 1
"""The widest `[after, before]` still dated to a day: a whole day's window with both ends inclusive."""
DATED_MONTH = 31 * DAY + 1
DATED: tuple[str, ...] = ("second", "day", "month", "coarser", "unknown")


def seconds_after(moment: datetime | None) -> int | None:
    """A lower bound in whole seconds, rounded down so it never excludes the true moment."""
    return None if moment is None else math.floor(moment.timestamp())


def seconds_before(moment: datetime | None) -> int | None:
    """An upper bound in whole seconds, rounded up so it never excludes the true moment."""
    return None if moment is None else math.ceil(moment.timestamp())


def moment(seconds: float | None) -> datetime | None:
    """Stored seconds as an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


Bounds = tuple[int | None, int | None]


def narrow(held: Bounds, carried: Bounds) -> Bounds:
    """The intersection of two creation bounds (None: unbounded); `carried` when they do not overlap."""
    afters = [bound for bound in (held[0], carried[0]) if bound is not None]
    befores = [bound for bound in (held[1], carried[1]) if bound is not None]
    after = max(afters) if afters else None
    before = min(befores) if befores else None
    if after is not None and before is not None and after > before:
        return carried
    return after, before


def dated(after: int | None, before: int | None) -> str:
    """How precisely a creation time is known: one of `DATED`."""
    if after is None or before is None:
        return "unknown"
    width = before - after
    if width <= 0:
        return "second"
    if width <= DATED_DAY:
        return "day"
    return "month" if width <= DATED_MONTH else "coarser"


def unique(entries: Sequence[Entry]) -> list[Entry]:
    """One entry per id, the last given winning (a page that shows a contact twice stores it once)."""
    return list({entry.id: entry for entry in entries}.values())


def numeric_ids(ids: Iterable[str]) -> list[int]:
    """The ids that are whole numbers (an id that is not cannot be held)."""
    return [int(value) for value in ids if value.strip().isdigit()]
