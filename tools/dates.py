"""Date arguments a model can give in words (`today`, `next 14 days`, `2026-Q3`, `2026-03..2026-05`) or exactly.

Every tool that takes a date range resolves it here, into naive wall-clock bounds in the upstream's
timezone. Words are resolved against the local date of `now` in that timezone, not the UTC date, so
"today" at 2026-03-01T03:00Z is still 2026-02-28 in America/New_York, and "tomorrow" is 2026-03-01.

The bounds stay naive on purpose: the upstreams take wall-clock times in their own timezone, and
around a DST change (or a zone whose change happens at midnight, so that 00:00:00 does not exist on
that day) the wall-clock time is what they compare against. `DateRange.echo()` shows the offsets,
and the local date the words were read against, so the model can see what was searched.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..server.errors import ValidationFailed

DATE_FORMATS_HELP = (
    "YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, ISO 8601 with offset (2026-01-15T09:30:00+01:00), YYYY-MM, YYYY-Qn, YYYY, "
    "or today, yesterday, tomorrow, last N days, next N days (both count today; N up to 3660), "
    "this/last/next week (Monday to Sunday), month, quarter or year; "
    "or a range of two of these: 'from X to Y' or 'X..Y'"
)

LAST_DAYS_MAX = 3660
"""The most days `last N days` and `next N days` may name: ten years and some, far beyond any sensible report."""

_QUOTE_MAX = 40
"""How much of a bad argument an error message repeats: enough to recognise it, never a wall of text."""

_DAY_START = time(0, 0, 0)
_DAY_END = time(23, 59, 59)
_ANY_DAY = date(2000, 1, 1)
"""Any day will do to ask whether a text names a period at all: its shape does not depend on the day."""

# `[0-9]` rather than `\d`: `\d` also matches other scripts' digits (fullwidth, Devanagari), which no upstream takes.
_YEAR = re.compile(r"[0-9]{4}")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_QUARTER = re.compile(r"([0-9]{4})-[Qq]([0-9])")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
_N_DAYS = re.compile(r"(last|next) ([0-9]+) days?")
_FROM_TO = re.compile(r"from\s+(.*?)\s+to\s+(.*)", re.IGNORECASE | re.DOTALL)
_WORD_GAPS = re.compile(r"[\s_-]+")


@dataclass(frozen=True)
class DateRange:
    """A resolved date range: naive wall-clock bounds in `zone`, at seconds precision, `start < end`.

    Attributes:
        start: The first moment of the range, as wall-clock time in `zone`.
        end: The last moment of the range, as wall-clock time in `zone`.
        zone: The timezone the bounds are wall-clock times in.
        today: The local date in `zone` that date words were read against (None when not known).
    """

    start: datetime
    end: datetime
    zone: ZoneInfo
    today: date | None = None

    def echo(self) -> dict[str, str]:
        """The range as shown back to the model, so it can see what was searched.

        Returns:
            `start` and `end` in ISO 8601 with the zone's offset at that moment, the zone's key under
            `timezone`, and (when known) the local date words were read against under `today`, e.g.
            `{"start": "2026-03-02T00:00:00-05:00", "end": "2026-03-08T23:59:59-04:00",
            "timezone": "America/New_York", "today": "2026-02-25"}`.
        """
        start, end = self.aware()
        # isoformat() only asks the zone for the offset at this wall time, with no arithmetic on the datetime,
        # so 9999-12-31 23:59:59 in a zone behind UTC prints instead of overflowing.
        shown = {"start": start.isoformat(), "end": end.isoformat(), "timezone": self.zone.key}
        if self.today is not None:
            shown["today"] = self.today.isoformat()
        return shown

    def aware(self) -> tuple[datetime, datetime]:
        """The bounds as aware datetimes in `zone`.

        Both have `fold=0`: a wall time repeated by a DST change means its first occurrence, and a wall time
        inside a DST gap keeps the offset from before the gap (PEP 495).

        Returns:
            `(start, end)` with `tzinfo=zone`.
        """
        return self.start.replace(tzinfo=self.zone, fold=0), self.end.replace(tzinfo=self.zone, fold=0)


def period(text: str, *, today: date) -> tuple[date, date] | None:
    """The first and last day of a named period, or of a range of days.

    The periods are `today`, `yesterday`, `tomorrow`; `last N days` (today and the N-1 days before) and
    `next N days` (today and the N-1 days after), N from 1 to 3660; `this week`, `last week`, `next week`
    (Monday to Sunday); `this month`, `last month`, `next month`; `this quarter`, `last quarter`,
    `next quarter` (calendar quarters: January to March, ...); `this year`, `last year`, `next year`;
    `YYYY-MM`, `YYYY-Qn` and `YYYY` (a whole month, quarter or year). Words are case-insensitive; blanks
    around and between them, and `_` or `-` between them, are all one space. "this week", "this month" and
    the like run to their last day, past `today`.

    A range, `from X to Y` or `X..Y`, runs from the first day of X to the last day of Y, where X and Y are
    each a period or a date `YYYY-MM-DD`.

    Args:
        text: The argument as the model wrote it.
        today: The local date the words are relative to.

    Returns:
        `(first, last)`, both inclusive, or None when `text` names no period (it may still be a date).

    Raises:
        ValueError: If `text` has the shape of a period or range but names none (`2026-13`, `next 0 days`,
            `2026-Q5`, `today..`, a range that runs backwards, a range with a time in it), or the period falls
            outside the years 1 to 9999; the message says which.
    """
    raw = text.strip()
    sides = _range_sides(raw)
    if sides is None:
        return _single_period(raw, today)
    first, _ = _side_days(sides[0], today)
    _, last = _side_days(sides[1], today)
    if last < first:
        raise ValueError(_backwards(first.isoformat(), last.isoformat()))
    return first, last


def names_period(text: str) -> bool:
    """Whether `text` names a period or a range of days, whatever the day; resolve it with `period` once known.

    Raises:
        ValueError: If `text` has the shape of a period or range but names none on any day (`2026-13`,
            `next 0 days`, `today..`, `2026-03..2026-01`); a range whose sides are both relative to today
            (`from tomorrow to yesterday`) is checked only by `period`, which knows the day.
    """
    raw = text.strip()
    sides = _range_sides(raw)
    if sides is None:
        return _single_period(raw, _ANY_DAY) is not None
    spans = [_side_days(side, _ANY_DAY) for side in sides]
    if all(_is_fixed(side) for side in sides) and spans[1][1] < spans[0][0]:
        raise ValueError(_backwards(spans[0][0].isoformat(), spans[1][1].isoformat()))
    return True


def resolve_range(start_date: str, end_date: str | None, *, zone: ZoneInfo, now: datetime) -> DateRange:
    """Resolve a tool's `start_date` and `end_date` arguments into a `DateRange` in `zone`.

    `start_date` means the first moment of what it names: a bare date or a period starts at 00:00:00 of its
    first day. `end_date` means the last moment: a bare date or a period ends at 23:59:59 of its last day.
    A date-time with an offset (or `Z`) is converted into `zone`; one without is taken as already in `zone`.
    Microseconds are dropped. A range (`from X to Y`, `X..Y`, each side any single form) runs from the first
    moment of X to the last of Y: in `start_date` it gives both bounds, in `end_date` it means its end.

    When `end_date` is None the range ends where `start_date`'s own span ends: a period at 23:59:59 of its last
    day, a bare date at 23:59:59 of that day, a range at the end of its Y, and a date-time (an instant, with no
    span) now.

    Args:
        start_date: The first moment, in any of the forms of `DATE_FORMATS_HELP`.
        end_date: The last moment, in the same forms, or None to end with what `start_date` names.
        zone: The timezone the bounds are in; words are relative to the local date of `now` there.
        now: The current moment, as an aware datetime (usually UTC).

    Returns:
        The range, with naive wall-clock bounds in `zone` and the local date of `now` as `today`.

    Raises:
        ValidationFailed: If either argument is not a date, names an impossible period or lies outside the years
            0001 to 9999; the message names the argument and lists the accepted forms. Also if `start_date` is a
            range and `end_date` is given too, or if the end is not after the start; the message shows both.
        ValueError: If `now` is naive (a bug in the caller, not in the arguments).
    """
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    start, start_span_end = _bound(start_date, "start_date", zone=zone, now=now)
    if end_date is not None and _is_range(start_date):  # _bound has refused a malformed one
        raise ValidationFailed(
            f"start_date {_quote(start_date)} is a range with its own end, and end_date {_quote(end_date)} was "
            "given too; drop end_date, or give start_date a single date and the range's end as end_date."
        )
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
    try:
        today = now.astimezone(zone).date()
    except (OverflowError, ValueError):  # a broken clock: exact dates still resolve, with no today to show
        today = None
    return DateRange(start=start, end=end, zone=zone, today=today)


def _bound(text: str, name: str, *, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime | None]:
    """The first moment `text` names, and the last moment of its span (None when it names an instant).

    Raises:
        ValidationFailed: If `text` is none of the accepted forms, a range runs backwards, or it lies outside the
            years 0001 to 9999.
    """
    raw = text.strip()
    try:
        sides = _range_sides(raw)
    except ValueError as error:
        raise ValidationFailed(f"{name} {_quote(text)}: {error}. Use {DATE_FORMATS_HELP}.") from None
    if sides is not None:
        first, _ = _bound(sides[0], name, zone=zone, now=now)
        last_first, last_span_end = _bound(sides[1], name, zone=zone, now=now)
        last = last_first if last_span_end is None else last_span_end
        if last < first:
            problem = _backwards(first.isoformat(sep=" "), last.isoformat(sep=" "))
            raise ValidationFailed(f"{name} {_quote(text)}: {problem}. Use {DATE_FORMATS_HELP}.")
        return first, last

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


def _range_sides(raw: str) -> tuple[str, str] | None:
    """The two sides of a range `from X to Y` or `X..Y`, stripped, or None when `raw` is not shaped as one.

    Raises:
        ValueError: If `raw` is shaped as a range but a side is missing or is itself a range.
    """
    if ".." in raw:
        parts = raw.split("..")
        if len(parts) != 2 or not all(part.strip() for part in parts):
            raise ValueError("a range X..Y needs one date or period on each side")
        sides = (parts[0].strip(), parts[1].strip())
    elif _FROM_TO.fullmatch(raw):
        match = _FROM_TO.fullmatch(raw)
        assert match is not None
        sides = (match[1].strip(), match[2].strip())
    elif raw[:5].lower() == "from " or raw.lower() == "from":
        raise ValueError("a range is written 'from X to Y', with a date or period on each side")
    else:
        return None
    if not all(sides):
        raise ValueError("a range is written 'from X to Y', with a date or period on each side")
    if any(_is_range(side) for side in sides):
        raise ValueError("each side of a range is one date or period, not a range")
    return sides


def _is_range(text: str) -> bool:
    """Whether `text` is shaped as a range (a malformed one too)."""
    try:
        return _range_sides(text.strip()) is not None
    except ValueError:
        return True


def _side_days(side: str, today: date) -> tuple[date, date]:
    """The first and last day of one side of a range of days: a period or a date.

    Raises:
        ValueError: If the side is neither (a time is refused: a range of days has no hours).
    """
    if _DATE.fullmatch(side):
        try:
            day = date.fromisoformat(side)
        except ValueError:
            raise ValueError(f"{_quote(side)} is not a date") from None
        return day, day
    span = _single_period(side, today)
    if span is not None:
        return span
    if _DATE_TIME.fullmatch(side):
        raise ValueError(f"{_quote(side)} has a time; a range of days takes dates, months or date words")
    raise ValueError(f"{_quote(side)} is not a date or period")


def _is_fixed(side: str) -> bool:
    """Whether a range's side names the same days whatever today is."""
    return any(pattern.fullmatch(side) for pattern in (_DATE, _MONTH, _QUARTER, _YEAR))


def _backwards(first: str, last: str) -> str:
    """The problem with a range whose end comes before its start."""
    return f"the range runs backwards (it starts {first}, after it ends {last}); put the earlier side first"


def _single_period(raw: str, today: date) -> tuple[date, date] | None:
    """`period` for anything but a range."""
    try:
        month = _MONTH.fullmatch(raw)
        if month is not None:
            number = int(month[2])
            if not 1 <= number <= 12:
                raise ValueError(f"month {month[2]} does not exist (months run from 01 to 12)")
            return _month(_year(month[1]), number)
        quarter = _QUARTER.fullmatch(raw)
        if quarter is not None:
            number = int(quarter[2])
            if not 1 <= number <= 4:
                raise ValueError(f"quarter Q{quarter[2]} does not exist (quarters run from Q1 to Q4)")
            return _quarter(_year(quarter[1]), number)
        if _YEAR.fullmatch(raw):
            year = _year(raw)
            return date(year, 1, 1), date(year, 12, 31)

        words = _WORD_GAPS.sub(" ", raw.lower()).strip()
        return _named_period(words, today)
    except OverflowError:
        raise ValueError(f"the period falls outside the years 0001 to 9999 (today is {today.isoformat()})") from None


def _year(digits: str) -> int:
    """A four-digit year, refusing year 0."""
    if int(digits) < 1:
        raise ValueError("year 0000 does not exist (years run from 0001 to 9999)")
    return int(digits)


def _may_be_period(raw: str) -> bool:
    """Whether `raw` could be a period, so that resolving it needs today's date."""
    return _MONTH.fullmatch(raw) is not None or _YEAR.fullmatch(raw) is not None or any(c.isalpha() for c in raw)


_SHIFTS = {"last": -1, "this": 0, "next": 1}
"""How many weeks, months, quarters or years each word moves from the one holding today."""


def _named_period(words: str, today: date) -> tuple[date, date] | None:
    """The span of a normalised period phrase, or None; may raise OverflowError near the years 1 and 9999."""
    one_day = timedelta(days=1)
    if words == "today":
        return today, today
    if words in ("yesterday", "tomorrow"):
        day = today - one_day if words == "yesterday" else today + one_day
        return day, day
    shift, _, unit = words.partition(" ")
    if shift in _SHIFTS and unit in ("week", "month", "quarter", "year"):
        steps = _SHIFTS[shift]
        if unit == "week":
            monday = today - timedelta(days=today.weekday()) + timedelta(days=7 * steps)
            return monday, monday + timedelta(days=6)
        if unit == "year":
            year = today.year + steps
            if not 1 <= year <= 9999:
                raise OverflowError
            return date(year, 1, 1), date(year, 12, 31)
        months = 3 if unit == "quarter" else 1
        index = today.year * 12 + (today.month - 1) // months * months + steps * months  # months since year 0
        year, month = divmod(index, 12)
        if not 1 <= year <= 9999:
            raise OverflowError
        return _quarter(year, month // 3 + 1) if unit == "quarter" else _month(year, month + 1)
    days = _N_DAYS.fullmatch(words)
    if days is not None:
        # Compare the digits before converting them: int() refuses strings of more than 4300 digits.
        digits = days[2].lstrip("0")
        if len(digits) > len(str(LAST_DAYS_MAX)) or not 1 <= int(digits or "0") <= LAST_DAYS_MAX:
            raise ValueError(f"{days[1]} N days takes N from 1 to {LAST_DAYS_MAX}")
        count = timedelta(days=int(digits) - 1)
        return (today - count, today) if days[1] == "last" else (today, today + count)
    return None


def _month(year: int, month: int) -> tuple[date, date]:
    """The first and last day of a calendar month."""
    return date(year, month, 1), date(year, month, monthrange(year, month)[1])


def _quarter(year: int, quarter: int) -> tuple[date, date]:
    """The first and last day of a calendar quarter, 1 to 4."""
    return _month(year, quarter * 3 - 2)[0], _month(year, quarter * 3)[1]


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
