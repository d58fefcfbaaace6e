"""Text and phone matching shared by the providers' `find_contacts`: folding, containment, ranking.

A name or free query matches partially, in any case, accents ignored: both sides are folded
(`fold`, the contact index's own, so every provider folds alike) before comparing. Phones compare
as E.164 numbers where both parse, else by their digits.
"""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers

from ..index.normalize import fold

EXACT, PREFIX, CONTAINS = 0, 1, 2
"""How well a text matches, best first: the whole value, its start, anywhere in it."""


def rank(needle: str, values: Iterable[str | None]) -> int | None:
    """The best of EXACT, PREFIX, CONTAINS over `values` for the folded `needle`; None when none contains it."""
    best: int | None = None
    for value in values:
        if not value:
            continue
        folded = fold(value)
        found = EXACT if folded == needle else PREFIX if folded.startswith(needle) else CONTAINS
        if needle in folded and (best is None or found < best):
            best = found
    return best


def same_phone(given: str, held: str | None) -> bool:
    """Whether two phone numbers are the same: as E.164 where both carry a calling code, else by their digits."""
    if not held:
        return False
    try:
        left, right = phonenumbers.parse(given, None), phonenumbers.parse(held, None)
    except phonenumbers.NumberParseException:
        return _digits(given) != "" and _digits(given) == _digits(held)
    e164 = phonenumbers.PhoneNumberFormat.E164
    return phonenumbers.format_number(left, e164) == phonenumbers.format_number(right, e164)


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())
