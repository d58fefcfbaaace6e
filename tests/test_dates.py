"""Date arguments in words or digits resolve to whole local days in the upstream's timezone, or fail clearly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contacts_mcp.server.errors import ValidationFailed
from contacts_mcp.tools.dates import DATE_FORMATS_HELP, DateRange, period, resolve_range

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
SANTIAGO = ZoneInfo("America/Santiago")
BEIRUT = ZoneInfo("Asia/Beirut")
AUCKLAND = ZoneInfo("Pacific/Auckland")
KOLKATA = ZoneInfo("Asia/Kolkata")

WEDNESDAY = datetime(2026, 5, 13, 12, 0, tzinfo=UTC)
"""An ordinary day: mid-week, mid-month, far from any DST change in UTC."""

PHRASES = ["today", "yesterday", "last 7 days", "last 30 days", "this week", "last week", "this month", "last month"]


def utc(text: str) -> datetime:
    """An aware UTC datetime from `YYYY-MM-DDTHH:MM[:SS]`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def bounds(
    start_date: str, end_date: str | None = None, *, zone: ZoneInfo = UTC_ZONE, now: datetime = WEDNESDAY
) -> tuple[str, str]:
    """The resolved bounds as `YYYY-MM-DD HH:MM:SS` wall-clock strings, the easiest form to read in a table."""
    resolved = resolve_range(start_date, end_date, zone=zone, now=now)
    return resolved.start.isoformat(sep=" "), resolved.end.isoformat(sep=" ")


def echo(start_date: str, end_date: str | None = None, *, zone: ZoneInfo, now: datetime) -> tuple[str, str]:
    """The bounds as `echo()` shows them to the model, with offsets."""
    shown = resolve_range(start_date, end_date, zone=zone, now=now).echo()
    return shown["start"], shown["end"]


def whole_days(first: str, last: str) -> tuple[str, str]:
    """The bounds of the days from `first` to `last`, both inclusive."""
    return f"{first} 00:00:00", f"{last} 23:59:59"


# --- Phrases on an ordinary day ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "first", "last"),
    [
        ("today", "2026-05-13", "2026-05-13"),
        ("yesterday", "2026-05-12", "2026-05-12"),
        ("last 7 days", "2026-05-07", "2026-05-13"),
        ("last 1 days", "2026-05-13", "2026-05-13"),
        ("last 1 day", "2026-05-13", "2026-05-13"),
        ("last 2 days", "2026-05-12", "2026-05-13"),
        ("last 30 days", "2026-04-14", "2026-05-13"),
        ("last 3660 days", "2016-05-06", "2026-05-13"),
        ("this week", "2026-05-11", "2026-05-17"),
        ("last week", "2026-05-04", "2026-05-10"),
        ("this month", "2026-05-01", "2026-05-31"),
        ("last month", "2026-04-01", "2026-04-30"),
        ("2026-05", "2026-05-01", "2026-05-31"),
        ("2024-02", "2024-02-01", "2024-02-29"),
        ("2026-02", "2026-02-01", "2026-02-28"),
        ("0001-01", "0001-01-01", "0001-01-31"),
        ("9999-12", "9999-12-01", "9999-12-31"),
    ],
)
def test_each_period_covers_whole_days_from_its_first_to_its_last(phrase: str, first: str, last: str) -> None:
    assert period(phrase, today=date(2026, 5, 13)) == (date.fromisoformat(first), date.fromisoformat(last))
    assert bounds(phrase) == whole_days(first, last)


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("TODAY", "today"),
        ("  Yesterday\t", "yesterday"),
        ("\nlast   7   days ", "last 7 days"),
        ("last_7_days", "last 7 days"),
        ("last-7-days", "last 7 days"),
        ("Last_7-DAYS", "last 7 days"),
        ("this_week", "this week"),
        ("This  Week", "this week"),
        ("LAST-WEEK", "last week"),
        ("this-month", "this month"),
        ("last__month", "last month"),
        ("last 007 days", "last 7 days"),
        (" 2026-05 ", "2026-05"),
    ],
)
def test_periods_ignore_case_blanks_underscores_and_hyphens(written: str, meant: str) -> None:
    today = date(2026, 5, 13)
    assert period(written, today=today) == period(meant, today=today)
    assert bounds(written) == bounds(meant)


@pytest.mark.parametrize("text", ["2026-05-13", "2026-05-13T10:00:00", "next week", "last tuesday", "", "week"])
def test_period_is_none_for_text_that_names_no_period(text: str) -> None:
    assert period(text, today=date(2026, 5, 13)) is None


@pytest.mark.parametrize("phrase", ["today", "yesterday", "last N days", "this week", "last week", "this month"])
def test_the_help_lists_every_phrase(phrase: str) -> None:
    assert phrase in DATE_FORMATS_HELP
    assert "last month" in DATE_FORMATS_HELP
    assert "YYYY-MM," in DATE_FORMATS_HELP


# --- Month ends ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "phrase", "first", "last"),
    [
        ("2026-01-31", "last month", "2025-12-01", "2025-12-31"),
        ("2026-01-01", "last month", "2025-12-01", "2025-12-31"),
        ("2026-01-01", "yesterday", "2025-12-31", "2025-12-31"),
        ("2026-01-31", "this month", "2026-01-01", "2026-01-31"),
        ("2024-03-01", "last month", "2024-02-01", "2024-02-29"),
        ("2024-03-01", "yesterday", "2024-02-29", "2024-02-29"),
        ("2024-03-31", "last month", "2024-02-01", "2024-02-29"),
        ("2024-03-31", "this month", "2024-03-01", "2024-03-31"),
        ("2025-03-01", "last month", "2025-02-01", "2025-02-28"),
        ("2025-03-01", "yesterday", "2025-02-28", "2025-02-28"),
        ("2025-03-31", "last month", "2025-02-01", "2025-02-28"),
        ("2025-03-01", "last 7 days", "2025-02-23", "2025-03-01"),
        ("2024-03-01", "last 7 days", "2024-02-24", "2024-03-01"),
        ("2100-03-01", "last month", "2100-02-01", "2100-02-28"),
        ("2000-03-31", "last month", "2000-02-01", "2000-02-29"),
        ("2026-05-31", "last month", "2026-04-01", "2026-04-30"),
        ("2026-12-31", "this month", "2026-12-01", "2026-12-31"),
    ],
)
def test_months_end_on_their_own_last_day_in_leap_and_ordinary_years(
    today: str, phrase: str, first: str, last: str
) -> None:
    assert bounds(phrase, now=utc(f"{today}T12:00")) == whole_days(first, last)


def test_this_week_on_december_31_spans_the_new_year() -> None:
    now = utc("2026-12-31T12:00")  # a Thursday
    assert bounds("this week", now=now) == whole_days("2026-12-28", "2027-01-03")
    assert bounds("last week", now=now) == whole_days("2026-12-21", "2026-12-27")


# --- Weeks ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "this_week", "last_week"),
    [
        ("2026-05-11", ("2026-05-11", "2026-05-17"), ("2026-05-04", "2026-05-10")),  # Monday: the week's first day
        ("2026-05-13", ("2026-05-11", "2026-05-17"), ("2026-05-04", "2026-05-10")),
        ("2026-05-17", ("2026-05-11", "2026-05-17"), ("2026-05-04", "2026-05-10")),  # Sunday: still the same week
        ("2026-05-18", ("2026-05-18", "2026-05-24"), ("2026-05-11", "2026-05-17")),  # the Monday after
        ("2026-03-01", ("2026-02-23", "2026-03-01"), ("2026-02-16", "2026-02-22")),  # a Sunday closing a month
    ],
)
def test_last_week_runs_monday_to_sunday_before_this_week(
    today: str, this_week: tuple[str, str], last_week: tuple[str, str]
) -> None:
    now = utc(f"{today}T12:00")
    assert bounds("this week", now=now) == whole_days(*this_week)
    assert bounds("last week", now=now) == whole_days(*last_week)


# --- The local date, not the UTC date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "local_today"),
    [
        (NEW_YORK, "2026-03-01T03:00", "2026-02-28"),  # UTC is already in March
        (NEW_YORK, "2026-03-01T05:00", "2026-03-01"),
        (AUCKLAND, "2026-02-28T12:00", "2026-03-01"),  # Auckland is already in March
        (AUCKLAND, "2026-02-28T10:59", "2026-02-28"),
        (KOLKATA, "2026-02-28T20:00", "2026-03-01"),  # a half-hour offset, +05:30
        (KOLKATA, "2026-02-28T18:29", "2026-02-28"),
        (UTC_ZONE, "2026-02-28T23:59", "2026-02-28"),
    ],
)
def test_words_are_relative_to_the_local_date_of_now_in_the_zone(zone: ZoneInfo, now: str, local_today: str) -> None:
    today = date.fromisoformat(local_today)
    month_start = today.replace(day=1)
    previous_month_end = month_start - timedelta(days=1)
    assert bounds("today", zone=zone, now=utc(now)) == whole_days(local_today, local_today)
    assert bounds("this month", zone=zone, now=utc(now))[0] == f"{month_start} 00:00:00"
    assert bounds("last month", zone=zone, now=utc(now))[1] == f"{previous_month_end} 23:59:59"


def test_now_may_be_given_in_any_offset() -> None:
    in_tokyo = datetime.fromisoformat("2026-03-01T12:00:00+09:00")  # 03:00 UTC, still Feb 28 in New York
    assert bounds("today", zone=NEW_YORK, now=in_tokyo) == whole_days("2026-02-28", "2026-02-28")


# --- DST changes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "phrase", "naive", "shown"),
    [
        # America/New_York springs forward on Sunday 2026-03-08 and falls back on Sunday 2026-11-01.
        (
            NEW_YORK,
            "2026-03-04T17:00",
            "this week",
            ("2026-03-02", "2026-03-08"),
            ("2026-03-02T00:00:00-05:00", "2026-03-08T23:59:59-04:00"),
        ),
        (
            NEW_YORK,
            "2026-03-08T17:00",
            "today",
            ("2026-03-08", "2026-03-08"),
            ("2026-03-08T00:00:00-05:00", "2026-03-08T23:59:59-04:00"),
        ),
        (
            NEW_YORK,
            "2026-10-28T17:00",
            "this week",
            ("2026-10-26", "2026-11-01"),
            ("2026-10-26T00:00:00-04:00", "2026-11-01T23:59:59-05:00"),
        ),
        (
            NEW_YORK,
            "2026-11-02T17:00",
            "yesterday",
            ("2026-11-01", "2026-11-01"),
            ("2026-11-01T00:00:00-04:00", "2026-11-01T23:59:59-05:00"),
        ),
        (
            NEW_YORK,
            "2026-03-10T17:00",
            "this month",
            ("2026-03-01", "2026-03-31"),
            ("2026-03-01T00:00:00-05:00", "2026-03-31T23:59:59-04:00"),
        ),
        # Europe/Berlin: Sunday 2026-03-29 and Sunday 2026-10-25.
        (
            BERLIN,
            "2026-03-25T12:00",
            "this week",
            ("2026-03-23", "2026-03-29"),
            ("2026-03-23T00:00:00+01:00", "2026-03-29T23:59:59+02:00"),
        ),
        (
            BERLIN,
            "2026-10-28T12:00",
            "last week",
            ("2026-10-19", "2026-10-25"),
            ("2026-10-19T00:00:00+02:00", "2026-10-25T23:59:59+01:00"),
        ),
        # Australia/Sydney, southern hemisphere: summer time ends Sunday 2026-04-05 and starts Sunday 2026-10-04.
        (
            SYDNEY,
            "2026-04-01T02:00",
            "this week",
            ("2026-03-30", "2026-04-05"),
            ("2026-03-30T00:00:00+11:00", "2026-04-05T23:59:59+10:00"),
        ),
        (
            SYDNEY,
            "2026-10-04T02:00",
            "today",
            ("2026-10-04", "2026-10-04"),
            ("2026-10-04T00:00:00+10:00", "2026-10-04T23:59:59+11:00"),
        ),
        # America/Santiago changes at midnight: 2026-09-06 00:00 does not exist (the day starts at 01:00), and
        # 2026-04-04 23:00-23:59 happens twice. The naive bound stays 00:00:00; the gap keeps the offset before it.
        (
            SANTIAGO,
            "2026-09-06T15:00",
            "today",
            ("2026-09-06", "2026-09-06"),
            ("2026-09-06T00:00:00-04:00", "2026-09-06T23:59:59-03:00"),
        ),
        (
            SANTIAGO,
            "2026-09-09T15:00",
            "last 7 days",
            ("2026-09-03", "2026-09-09"),
            ("2026-09-03T00:00:00-04:00", "2026-09-09T23:59:59-03:00"),
        ),
        (
            SANTIAGO,
            "2026-04-05T15:00",
            "yesterday",
            ("2026-04-04", "2026-04-04"),
            ("2026-04-04T00:00:00-03:00", "2026-04-04T23:59:59-03:00"),
        ),
        (
            SANTIAGO,
            "2026-04-05T15:00",
            "today",
            ("2026-04-05", "2026-04-05"),
            ("2026-04-05T00:00:00-04:00", "2026-04-05T23:59:59-04:00"),
        ),
        # Asia/Beirut also changes at midnight: 2026-03-29 00:00 does not exist.
        (
            BEIRUT,
            "2026-03-29T12:00",
            "today",
            ("2026-03-29", "2026-03-29"),
            ("2026-03-29T00:00:00+02:00", "2026-03-29T23:59:59+03:00"),
        ),
    ],
)
def test_bounds_across_a_dst_change_stay_whole_local_days_and_echo_their_own_offsets(
    zone: ZoneInfo, now: str, phrase: str, naive: tuple[str, str], shown: tuple[str, str]
) -> None:
    assert bounds(phrase, zone=zone, now=utc(now)) == whole_days(*naive)
    assert echo(phrase, zone=zone, now=utc(now)) == shown


def test_a_start_inside_a_midnight_dst_gap_is_aware_with_the_offset_before_the_gap() -> None:
    resolved = resolve_range("today", None, zone=SANTIAGO, now=utc("2026-09-06T15:00"))
    start, end = resolved.aware()
    assert start == datetime(2026, 9, 6, 0, 0, tzinfo=SANTIAGO)
    assert (start.fold, start.utcoffset()) == (0, timedelta(hours=-4))
    assert (end.fold, end.utcoffset()) == (0, timedelta(hours=-3))
    assert resolved.echo()["timezone"] == "America/Santiago"


def test_last_7_days_is_seven_calendar_days_even_across_a_23_hour_day() -> None:
    resolved = resolve_range("last 7 days", None, zone=NEW_YORK, now=utc("2026-03-10T17:00"))
    assert (resolved.start.isoformat(sep=" "), resolved.end.isoformat(sep=" ")) == whole_days(
        "2026-03-04", "2026-03-10"
    )
    start, end = resolved.aware()
    # Seven calendar days, one of them 23 hours long: an hour shorter in real time than 7 x 24 hours.
    # Same-zone subtraction is wall-clock arithmetic in Python, so compare instants in UTC.
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=7, hours=-1, seconds=-1)


def test_a_date_time_in_the_repeated_hour_is_sent_as_its_bare_wall_time() -> None:
    resolved = resolve_range("2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z", zone=NEW_YORK, now=WEDNESDAY)
    # 06:30Z is the second 01:30 in New York; the upstream takes the bare wall time, with no fold to carry.
    assert (resolved.start, resolved.start.fold) == (datetime(2026, 11, 1, 1, 30), 0)
    assert resolved.end == datetime(2026, 11, 1, 2, 0)


# --- Omitted end_date, and mixed forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_date", "zone", "now", "expected"),
    [
        ("today", UTC_ZONE, WEDNESDAY, whole_days("2026-05-13", "2026-05-13")),
        ("last month", UTC_ZONE, WEDNESDAY, whole_days("2026-04-01", "2026-04-30")),
        ("this week", UTC_ZONE, WEDNESDAY, whole_days("2026-05-11", "2026-05-17")),
        ("2026-02", UTC_ZONE, WEDNESDAY, whole_days("2026-02-01", "2026-02-28")),
        ("2026-04-02", UTC_ZONE, WEDNESDAY, whole_days("2026-04-02", "2026-04-02")),
        ("2030-01-01", UTC_ZONE, WEDNESDAY, whole_days("2030-01-01", "2030-01-01")),  # the future is allowed
        ("2026-05-01 08:15", UTC_ZONE, WEDNESDAY, ("2026-05-01 08:15:00", "2026-05-13 12:00:00")),
        (
            "2026-05-01T08:15:00Z",
            NEW_YORK,
            utc("2026-05-13T12:00:00.987654"),
            ("2026-05-01 04:15:00", "2026-05-13 08:00:00"),
        ),
        ("2026-02-28T22:00:00", NEW_YORK, utc("2026-03-01T03:30:15"), ("2026-02-28 22:00:00", "2026-02-28 22:30:15")),
    ],
)
def test_an_omitted_end_date_ends_what_start_date_names_or_now_after_a_date_time(
    start_date: str, zone: ZoneInfo, now: datetime, expected: tuple[str, str]
) -> None:
    assert bounds(start_date, None, zone=zone, now=now) == expected


@pytest.mark.parametrize(
    ("start_date", "end_date", "expected"),
    [
        ("last month", "today", whole_days("2026-04-01", "2026-05-13")),
        ("2026-01-01", "yesterday", whole_days("2026-01-01", "2026-05-12")),
        ("last 7 days", "2026-05-20", whole_days("2026-05-07", "2026-05-20")),
        ("2026-01", "last month", whole_days("2026-01-01", "2026-04-30")),
        ("last week", "this week", whole_days("2026-05-04", "2026-05-17")),
        ("today", "today", whole_days("2026-05-13", "2026-05-13")),
        ("this month", "2026-05-20T12:00:00+02:00", ("2026-05-01 00:00:00", "2026-05-20 10:00:00")),
        ("2026-05-13 08:00", "today", ("2026-05-13 08:00:00", "2026-05-13 23:59:59")),
    ],
)
def test_a_start_phrase_means_its_first_moment_and_an_end_phrase_its_last(
    start_date: str, end_date: str, expected: tuple[str, str]
) -> None:
    assert bounds(start_date, end_date) == expected


# --- Exact dates and date-times (the behaviour kept from tools.models.parse_range) ---------------------------------


@pytest.mark.parametrize(
    ("start_date", "end_date", "zone", "expected"),
    [
        ("2024-01-01", "2024-01-31", UTC_ZONE, whole_days("2024-01-01", "2024-01-31")),
        ("2024-01-15 09:30", "2024-01-15T10:30:05", NEW_YORK, ("2024-01-15 09:30:00", "2024-01-15 10:30:05")),
        ("2024-01-15T09:30:00.999999", "2024-01-16", UTC_ZONE, ("2024-01-15 09:30:00", "2024-01-16 23:59:59")),
        ("2024-01-15T09:30:00.123456789", "2024-01-16", UTC_ZONE, ("2024-01-15 09:30:00", "2024-01-16 23:59:59")),
        ("2024-01-15T09:30:00Z", "2024-01-15T10:00:00z", NEW_YORK, ("2024-01-15 04:30:00", "2024-01-15 05:00:00")),
        (
            "2024-01-15T09:30:00+05:30",
            "2024-01-15T12:00:00+0530",
            UTC_ZONE,
            ("2024-01-15 04:00:00", "2024-01-15 06:30:00"),
        ),
        ("2024-01-15 09:30:00-08:00", "2024-01-16", BERLIN, ("2024-01-15 18:30:00", "2024-01-16 23:59:59")),
        ("2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z", NEW_YORK, ("2026-03-08 01:59:59", "2026-03-08 03:00:00")),
        ("2026-01-01T00:00:00+14:00", "2026-01-01", UTC_ZONE, ("2025-12-31 10:00:00", "2026-01-01 23:59:59")),
        ("  2024-01-01  ", " 2024-01-02\n", UTC_ZONE, whole_days("2024-01-01", "2024-01-02")),
        ("0001-01-01", "9999-12-31", NEW_YORK, whole_days("0001-01-01", "9999-12-31")),
    ],
)
def test_exact_dates_are_whole_days_and_offsets_are_converted_into_the_zone(
    start_date: str, end_date: str, zone: ZoneInfo, expected: tuple[str, str]
) -> None:
    assert bounds(start_date, end_date, zone=zone) == expected


# --- echo() and aware() --------------------------------------------------------------------------------------------


def test_echo_prints_utc_as_plus_zero() -> None:
    assert resolve_range("2026-05-13", None, zone=UTC_ZONE, now=WEDNESDAY).echo() == {
        "start": "2026-05-13T00:00:00+00:00",
        "end": "2026-05-13T23:59:59+00:00",
        "timezone": "UTC",
    }


@pytest.mark.parametrize(
    ("zone", "start", "end", "shown"),
    [
        (NEW_YORK, "9999-12-31T00:00:00", "9999-12-31T23:59:59", ("-05:00", "-05:00")),
        (AUCKLAND, "0001-01-01T00:00:00", "0001-01-01T23:59:59", ("+11:39:04", "+11:39:04")),
        (ZoneInfo("Pacific/Kiritimati"), "9999-12-31T00:00:00", "9999-12-31T23:59:59", ("+14:00", "+14:00")),
        (ZoneInfo("Pacific/Pago_Pago"), "0001-01-01T00:00:00", "0001-01-01T23:59:59", ("+12:37:12", "+12:37:12")),
    ],
)
def test_echo_never_overflows_at_the_ends_of_the_calendar(
    zone: ZoneInfo, start: str, end: str, shown: tuple[str, str]
) -> None:
    resolved = DateRange(start=datetime.fromisoformat(start), end=datetime.fromisoformat(end), zone=zone)
    assert resolved.echo() == {"start": start + shown[0], "end": end + shown[1], "timezone": zone.key}


def test_echo_of_the_last_representable_day_resolved_in_a_zone_behind_utc() -> None:
    shown = resolve_range("9999-12", None, zone=NEW_YORK, now=WEDNESDAY).echo()
    assert shown["end"] == "9999-12-31T23:59:59-05:00"


def test_aware_bounds_carry_the_zone_and_the_same_wall_times() -> None:
    resolved = resolve_range("this week", None, zone=BERLIN, now=utc("2026-03-25T12:00"))
    start, end = resolved.aware()
    assert (start.tzinfo, end.tzinfo) == (BERLIN, BERLIN)
    assert (start.replace(tzinfo=None), end.replace(tzinfo=None)) == (resolved.start, resolved.end)


# --- Errors --------------------------------------------------------------------------------------------------------


def fullwidth(text: str) -> str:
    """`text` with its ASCII letters and digits in their fullwidth forms, which `str.isdigit()` also accepts."""
    return "".join(chr(ord(char) + 0xFEE0) if char.isascii() and char.isalnum() else char for char in text)


def arabic_indic(text: str) -> str:
    """`text` with its digits in Arabic-Indic digits, which `\\d` also matches."""
    return "".join(chr(ord(char) - ord("0") + 0x0660) if char.isdigit() else char for char in text)


HOSTILE = [
    "",
    "   ",
    "x" * 10_000,
    "last " + "9" * 10_000 + " days",
    "today" * 2_000,
    "last 0 days",
    "last 00 days",
    "last 3661 days",
    "last 99999 days",
    "last 7.5 days",
    "last seven days",
    fullwidth("last 7 days"),
    fullwidth("today"),
    "today\x00",
    "\x00",
    fullwidth("2026-01-01"),
    fullwidth("2026-01"),
    arabic_indic("2026-01-01"),
    "2026-01-01".replace("1", "\N{SUPERSCRIPT ONE}"),
    "2026-13",
    "2026-00",
    "0000-01",
    "2026-1",
    "26-01-01",
    "2026-02-30",
    "0000-01-01",
    "2026-01-01T25:00:00",
    "2026-01-01T10:60",
    "2026-01-01T10:00:00+24:00",
    "2026-01-01T10:00:00+05",
    "2026-01-01T10:00:00 UTC",
    "2026-01-01T10",
    "2026/01/01",
    "01/02/2026",
    "1767225600",
    "next week",
    "last tuesday",
    "tomorrow",
    "this year",
    "last 7 days ago",
    "now",
    "None",
    "🙂",
    "'; DROP TABLE contacts; --",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("argument", ["start_date", "end_date"])
def test_hostile_text_in_either_argument_is_a_validation_error_naming_it(argument: str, text: str) -> None:
    start_date, end_date = (text, "2026-12-31") if argument == "start_date" else ("2026-01-01", text)
    with pytest.raises(ValidationFailed) as caught:
        resolve_range(start_date, end_date, zone=NEW_YORK, now=WEDNESDAY)
    assert caught.value.message.startswith(argument)
    assert DATE_FORMATS_HELP in caught.value.message
    assert len(caught.value.message) < len(DATE_FORMATS_HELP) + 200  # at most 40 characters of the text are quoted


@pytest.mark.parametrize(
    ("start_date", "end_date", "zone", "now", "argument"),
    [
        # Offsets converted into the zone leave the years 0001 to 9999.
        ("0001-01-01T00:00:00+14:00", "2026-01-01", NEW_YORK, WEDNESDAY, "start_date"),
        ("0001-01-01T04:00:00+00:00", "2026-01-01", NEW_YORK, WEDNESDAY, "start_date"),  # New York was at -04:56
        ("2026-01-01", "9999-12-31T23:59:59-05:00", UTC_ZONE, WEDNESDAY, "end_date"),
        ("2026-01-01", "9999-12-31T23:00:00Z", AUCKLAND, WEDNESDAY, "end_date"),
        # Periods that would run past the calendar's ends.
        ("last 3660 days", None, UTC_ZONE, utc("0005-01-01T12:00"), "start_date"),
        ("2000-01-01", "last 3660 days", UTC_ZONE, utc("0005-01-01T12:00"), "end_date"),
        ("last month", None, UTC_ZONE, utc("0001-01-15T12:00"), "start_date"),
        ("yesterday", None, UTC_ZONE, utc("0001-01-01T12:00"), "start_date"),
        ("this week", None, UTC_ZONE, utc("9999-12-31T12:00"), "start_date"),
        # now itself is past the calendar's end once it is in the zone.
        ("today", None, ZoneInfo("Pacific/Kiritimati"), datetime.max.replace(tzinfo=UTC), "start_date"),
        ("0001-01-01", "today", NEW_YORK, datetime.min.replace(tzinfo=UTC), "end_date"),
    ],
)
def test_anything_outside_the_years_1_to_9999_is_a_validation_error_naming_the_argument(
    start_date: str, end_date: str | None, zone: ZoneInfo, now: datetime, argument: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_range(start_date, end_date, zone=zone, now=now)
    assert argument in caught.value.message


def test_last_3660_days_just_after_year_1_still_resolves() -> None:
    assert bounds("last 3660 days", now=utc("0011-01-08T12:00")) == whole_days("0001-01-01", "0011-01-08")


@pytest.mark.parametrize(
    ("start_date", "end_date", "now"),
    [
        ("2026-02-01", "2026-01-01", WEDNESDAY),
        ("2026-02-01 10:00:00", "2026-02-01T10:00:00", WEDNESDAY),  # equal is not after
        ("2026-02-01 10:00:00.900", "2026-02-01T10:00:00.100", WEDNESDAY),  # equal once microseconds are dropped
        ("today", "yesterday", WEDNESDAY),
        ("this month", "last month", WEDNESDAY),
        ("2026-06", "today", WEDNESDAY),
        ("2026-05-13T12:00:00", None, WEDNESDAY),  # a date-time alone ends now, which is not after it
        ("2026-05-14T00:00:00", None, WEDNESDAY),
    ],
)
def test_an_end_not_after_the_start_is_a_validation_error_showing_both_bounds(
    start_date: str, end_date: str | None, now: datetime
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_range(start_date, end_date, zone=UTC_ZONE, now=now)
    assert "end_date" in caught.value.message
    assert "start_date" in caught.value.message


def test_a_naive_now_is_a_bug_in_the_caller_not_in_the_arguments() -> None:
    with pytest.raises(ValueError, match="aware"):
        resolve_range("today", None, zone=UTC_ZONE, now=datetime(2026, 5, 13))


@pytest.mark.parametrize(("text", "reason"), [("2026-13", "month"), ("0000-01", "year"), ("last 0 days", "3660")])
def test_period_refuses_a_period_shape_that_names_no_period(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        period(text, today=date(2026, 5, 13))


# --- Property ------------------------------------------------------------------------------------------------------

PROPERTY_ZONES = [
    UTC_ZONE,
    NEW_YORK,
    BERLIN,
    SYDNEY,
    SANTIAGO,
    BEIRUT,
    AUCKLAND,
    KOLKATA,
    ZoneInfo("Pacific/Kiritimati"),
]
CONTAINING_TODAY = ["today", "last 7 days", "this week", "this month"]


@given(
    zone=st.sampled_from(PROPERTY_ZONES),
    now=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.sampled_from(PROPERTY_ZONES)
    ),
    phrase=st.sampled_from([*PHRASES, "last 1 days", "last 3660 days"])
    | st.integers(1, 3660).map("last {} days".format),
)
def test_every_phrase_resolves_to_whole_local_days_around_the_local_date_of_now(
    zone: ZoneInfo, now: datetime, phrase: str
) -> None:
    resolved = resolve_range(phrase, None, zone=zone, now=now)
    assert resolved.start < resolved.end
    assert resolved.start.time().isoformat() == "00:00:00"
    assert resolved.end.time().isoformat() == "23:59:59"
    resolved.echo()  # never raises
    if phrase in CONTAINING_TODAY or (phrase.startswith("last") and phrase.endswith("days")):
        assert resolved.start.date() <= now.astimezone(zone).date() <= resolved.end.date()
