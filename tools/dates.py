"""Date arguments a model can give in words: `today`, `last 7 days`, `2026-03`, or an exact date-time.

Every tool that takes a date range resolves it here, into naive wall-clock bounds in the upstream's
timezone. Words are resolved against the local date of `now` in that timezone, not the UTC date, so
"today" at 2026-03-01T03:00Z is still 2026-02-28 in America/New_York.

The bounds stay naive on purpose: the upstreams take wall-clock times in their own timezone, and
around a DST change (or a zone whose change happens at midnight, so that 00:00:00 does not exist on
that day) the wall-clock time is what they compare against. `DateRange.echo()` shows the offsets so
the model can see what was searched.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..server.errors import ValidationFailed

DATE_FORMATS_HELP = (
    "YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, ISO 8601 with offset (2026-01-15T09:30:00+01:00), YYYY-MM, "
    "or today, yesterday, last 7 days (or last N days, N up to 3660), this week, last week, this month, last month"
)

LAST_DAYS_MAX = 3660
"""The most days `last N days` may name: ten years and some, far beyond any sensible report."""

_QUOTE_MAX = 40
"""How much of a bad argument an error message repeats: enough to recognise it, never a wall of text."""

_DAY_START = time(0, 0, 0)
_DAY_END = time(23, 59, 59)

# `[0-9]` rather than `\d`: `\d` also matches other scripts' digits (fullwidth, Devanagari), which no upstream takes.
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
_LAST_DAYS = re.compile(r"last ([0-9]+) days?")
_WORD_GAPS = re.compile(r"[\s_-]+")


@dataclass(frozen=True)
class DateRange:
    """A resolved date range: naive wall-clock bounds in `zone`, at seconds precision, `start < end`.

    Attributes:
        start: The first moment of the range, as wall-clock time in `zone`.
        end: The last moment of the range, as wall-clock time in `zone`.
        zone: The timezone the bounds are wall-clock times in.
    """

    start: datetime
    end: datetime
    zone: ZoneInfo

    def echo(self) -> dict[str, str]:
        """The range as shown back to the model, so it can see what was searched.

        Returns:
            `start` and `end` in ISO 8601 with the zone's offset at that moment, and the zone's key under
            `timezone`, e.g. `{"start": "2026-03-02T00:00:00-05:00", "end": "2026-03-08T23:59:59-04:00",
            "timezone": "America/New_York"}`.
        """
        start, end = self.aware()
        # isoformat() only asks the zone for the offset at this wall time, with no arithmetic on the datetime,
        # so 9999-12-31 23:59:59 in a zone behind UTC prints instead of overflowing.
        return {"start": start.isoformat(), "end": end.isoformat(), "timezone": self.zone.key}

    def aware(self) -> tuple[datetime, datetime]:
        """The bounds as aware datetimes in `zone`.

        Both have `fold=0`: a wall time repeated by a DST change means its first occurrence, and a wall time
        inside a DST gap keeps the offset from before the gap (PEP 495).

        Returns:
            `(start, end)` with `tzinfo=zone`.
        """
        return self.start.replace(tzinfo=self.zone, fold=0), self.end.replace(tzinfo=self.zone, fold=0)


def period(text: str, *, today: date) -> tuple[date, date] | None:
    """The first and last day of a named period.

    The periods are `today`, `yesterday`, `last N days` (today and the N-1 days before, N from 1 to 3660),
    `this week` and `last week` (Monday to Sunday), `this month` and `last month` (whole calendar months),
    and `YYYY-MM` (a whole month). Words are case-insensitive; blanks around and between them, and `_` or `-`
    between them, are all one space. "this week" and "this month" run to their last day, past `today`.

    Args:
        text: The argument as the model wrote it.
        today: The local date the words are relative to.

    Returns:
        `(first, last)`, both inclusive, or None when `text` names no period (it may still be a date).

    Raises:
        ValueError: If `text` has the shape of a period but names none (`2026-13`, `last 0 days`), or the period
            falls outside the years 1 to 9999; the message says which.
    """
    raw = text.strip()
    month = _MONTH.fullmatch(raw)
    if month is not None:
        year, number = int(month[1]), int(month[2])
        if not 1 <= number <= 12:
            raise ValueError(f"month {month[2]} does not exist (months run from 01 to 12)")
        if year < 1:
            raise ValueError("year 0000 does not exist (years run from 0001 to 9999)")
        return _month(year, number)

    words = _WORD_GAPS.sub(" ", raw.lower()).strip()
    try:
        return _named_period(words, today)
    except OverflowError:
        raise ValueError(f"the period falls outside the years 0001 to 9999 (today is {today.isoformat()})") from None


def resolve_range(start_date: str, end_date: str | None, *, zone: ZoneInfo, now: datetime) -> DateRange:
    """Resolve a tool's `start_date` and `end_date` arguments into a `DateRange` in `zone`.

    `start_date` means the first moment of what it names: a bare date or a period starts at 00:00:00 of its
    first day. `end_date` means the last moment: a bare date or a period ends at 23:59:59 of its last day.
    A date-time with an offset (or `Z`) is converted into `zone`; one without is taken as already in `zone`.
    Microseconds are dropped.

    When `end_date` is None the range ends where `start_date`'s own span ends: a period at 23:59:59 of its last
    day, a bare date at 23:59:59 of that day, and a date-time (an instant, with no span) now.

    Args:
        start_date: The first moment, in any of the forms of `DATE_FORMATS_HELP`.
        end_date: The last moment, in the same forms, or None to end with what `start_date` names.
        zone: The timezone the bounds are in; words are relative to the local date of `now` there.
        now: The current moment, as an aware datetime (usually UTC).

    Returns:
        The range, with naive wall-clock bounds in `zone`.

    Raises:
        ValidationFailed: If either argument is not a date, names an impossible period or lies outside the years
            0001 to 9999; the message names the argument and lists the accepted forms. Also if the end is not
            after the start; the message shows both bounds.
        ValueError: If `now` is naive (a bug in the caller, not in the arguments).
    """
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    start, start_span_end = _bound(start_date, "start_date", zone=zone, now=now)
    end_is_now = False
    if end_date is not None:
        end_first, end_span_end = _bound(end_date, "end_date", zone=zone, now=now)
        end = end_first if end_span_end is None else end_span_end
    elif start_span_end is not None:
        end = start_span_end
    else:
        end = _local_now(now, zone, "start_date").replace(tzinfo=None, microsecond=0, fold=0)
        end_is_now = True
    if end <= start:
        shown = f"omitted, so now: {end.isoformat(sep=' ')}" if end_is_now else end.isoformat(sep=" ")
        raise ValidationFailed(
            f"end_date ({shown}) must be after start_date ({start.isoformat(sep=' ')}); "
            "give a later end_date or an earlier start_date."
        )
    return DateRange(start=start, end=end, zone=zone)


def _bound(text: str, name: str, *, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime | None]:
    """The first moment `text` names, and the last moment of its span (None when it names an instant).

    Raises:
        ValidationFailed: If `text` is none of the accepted forms, or lies outside the years 0001 to 9999.
    """
    raw = text.strip()
    if _DATE.fullmatch(raw):
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise _not_a_date(text, name) from None
        return datetime.combine(day, _DAY_START), datetime.combine(day, _DAY_END)

    if _DATE_TIME.fullmatch(raw):
        return _date_time(raw, text, name, zone), None

    # Only text that could be a period needs today's date: gibberish gets "not a date" even from a broken clock.
    try:
        span = period(raw, today=_local_now(now, zone, name).date()) if _may_be_period(raw) else None
    except ValueError as error:
        raise ValidationFailed(f"{name} {_quote(text)}: {error}. Use {DATE_FORMATS_HELP}.") from None
    if span is None:
        raise _not_a_date(text, name)
    return datetime.combine(span[0], _DAY_START), datetime.combine(span[1], _DAY_END)


def _date_time(raw: str, text: str, name: str, zone: ZoneInfo) -> datetime:
    """A date-time already matched by `_DATE_TIME`, as naive wall-clock time in `zone` without microseconds.

    Raises:
        ValidationFailed: If the fields are impossible (month 13, hour 25, offset +24:00), or converting the
            offset into `zone` leaves the years 0001 to 9999.
    """
    try:
        moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1] in "Zz" else raw)
    except ValueError:
        raise _not_a_date(text, name) from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(zone).replace(tzinfo=None)
        except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+14:00 is before the first representable moment
            raise ValidationFailed(
                f"{name} {_quote(text)} is out of range in {zone.key}; use a date from 0002 to 9998."
            ) from None
    # fold only tells the two occurrences of a repeated hour apart; the upstream receives the bare wall time.
    return moment.replace(microsecond=0, fold=0)


def _may_be_period(raw: str) -> bool:
    """Whether `raw` could be a period, so that resolving it needs today's date."""
    return _MONTH.fullmatch(raw) is not None or any(char.isalpha() for char in raw)


def _named_period(words: str, today: date) -> tuple[date, date] | None:
    """The span of a normalised period phrase, or None; may raise OverflowError near the years 1 and 9999."""
    one_day = timedelta(days=1)
    if words == "today":
        return today, today
    if words == "yesterday":
        yesterday = today - one_day
        return yesterday, yesterday
    if words in ("this week", "last week"):
        monday = today - timedelta(days=today.weekday())
        if words == "last week":
            monday -= timedelta(days=7)
        return monday, monday + timedelta(days=6)
    if words == "this month":
        return _month(today.year, today.month)
    if words == "last month":
        previous = today.replace(day=1) - one_day
        return _month(previous.year, previous.month)
    days = _LAST_DAYS.fullmatch(words)
    if days is not None:
        # Compare the digits before converting them: int() refuses strings of more than 4300 digits.
        digits = days[1].lstrip("0")
        if len(digits) > len(str(LAST_DAYS_MAX)) or not 1 <= int(digits or "0") <= LAST_DAYS_MAX:
            raise ValueError(f"last N days takes N from 1 to {LAST_DAYS_MAX}")
        return today - timedelta(days=int(digits) - 1), today
    return None


def _month(year: int, month: int) -> tuple[date, date]:
    """The first and last day of a calendar month."""
    return date(year, month, 1), date(year, month, monthrange(year, month)[1])


def _local_now(now: datetime, zone: ZoneInfo, name: str) -> datetime:
    """`now` in `zone`.

    Raises:
        ValidationFailed: If `now` in `zone` is outside the years 0001 to 9999 (only a broken clock gets there).
    """
    try:
        return now.astimezone(zone)
    except (OverflowError, ValueError):
        raise ValidationFailed(
            f"{name} cannot be resolved: the current date is out of range in {zone.key}; use an exact date "
            "YYYY-MM-DD instead."
        ) from None


def _quote(text: str) -> str:
    """`text` quoted for an error message, cut to `_QUOTE_MAX` characters."""
    if len(text) > _QUOTE_MAX:
        text = text[: _QUOTE_MAX - 3] + "..."
    return repr(text)


def _not_a_date(text: str, name: str) -> ValidationFailed:
    """The error for an argument that is none of the accepted forms."""
    return ValidationFailed(f"{name} {_quote(text)} is not a date; use {DATE_FORMATS_HELP}.")
