"""Date arguments in words or digits resolve to whole local days in the upstream's timezone, or fail clearly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from pydantic import ValidationError

from contacts_mcp.server.app import build_server
from contacts_mcp.server.errors import ValidationFailed
from contacts_mcp.tools.dates import DATE_FORMATS_HELP, LAST_DAYS_MAX, DateRange, names_period, period, resolve_range
from contacts_mcp.tools.models import FilterCondition
from tests.conftest import make_settings, text_of

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
FUTURE_PHRASES = [
    "tomorrow",
    "next 7 days",
    "next 14 days",
    "next week",
    "next month",
    "this quarter",
    "last quarter",
    "next quarter",
    "this year",
    "last year",
    "next year",
]


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


@pytest.mark.parametrize(
    "text", ["2026-05-13", "2026-05-13T10:00:00", "next tuesday", "last tuesday", "", "week", "this decade", "12026"]
)
def test_period_is_none_for_text_that_names_no_period(text: str) -> None:
    assert period(text, today=date(2026, 5, 13)) is None


@pytest.mark.parametrize(
    "phrase",
    [
        "today",
        "yesterday",
        "tomorrow",
        "last N days",
        "next N days",
        "this/last/next week",
        "month, quarter or year",
        "YYYY-MM,",
        "YYYY-Qn,",
        "YYYY,",
        "'from X to Y'",
        "'X..Y'",
    ],
)
def test_the_help_lists_every_phrase(phrase: str) -> None:
    assert phrase in DATE_FORMATS_HELP


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
        "today": "2026-05-13",
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
    "next tuesday",
    "last tuesday",
    "this decade",
    "next weeks",
    "last 7 days ago",
    "next 0 days",
    "next 3661 days",
    "next seven days",
    "2026-Q5",
    "2026-Q0",
    "2026-Q",
    "2026-Q10",
    "0000-Q1",
    "0000",
    "20260",
    fullwidth("2026"),
    "today..",
    "..today",
    "..",
    "today...",
    "from today",
    "from today to",
    "from",
    "from  to today",
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
CONTAINING_TODAY = ["today", "last 7 days", "this week", "this month", "this quarter", "this year", "next 7 days"]


@given(
    zone=st.sampled_from(PROPERTY_ZONES),
    now=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.sampled_from(PROPERTY_ZONES)
    ),
    phrase=st.sampled_from([*PHRASES, *FUTURE_PHRASES, "last 1 days", "last 3660 days"])
    | st.integers(1, 3660).map("last {} days".format)
    | st.integers(1, 3660).map("next {} days".format),
)
def test_every_phrase_resolves_to_whole_local_days_around_the_local_date_of_now(
    zone: ZoneInfo, now: datetime, phrase: str
) -> None:
    resolved = resolve_range(phrase, None, zone=zone, now=now)
    assert resolved.start < resolved.end
    assert resolved.start.time().isoformat() == "00:00:00"
    assert resolved.end.time().isoformat() == "23:59:59"
    resolved.echo()  # never raises
    if phrase in CONTAINING_TODAY or phrase.endswith("days"):
        assert resolved.start.date() <= now.astimezone(zone).date() <= resolved.end.date()


# --- The future, quarters, years and ranges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "first", "last"),
    [
        ("tomorrow", "2026-05-14", "2026-05-14"),
        ("next week", "2026-05-18", "2026-05-24"),
        ("next month", "2026-06-01", "2026-06-30"),
        ("next 1 days", "2026-05-13", "2026-05-13"),
        ("next 1 day", "2026-05-13", "2026-05-13"),
        ("next 2 days", "2026-05-13", "2026-05-14"),
        ("next 14 days", "2026-05-13", "2026-05-26"),
        ("next 3660 days", "2026-05-13", "2036-05-19"),
        ("this quarter", "2026-04-01", "2026-06-30"),
        ("last quarter", "2026-01-01", "2026-03-31"),
        ("next quarter", "2026-07-01", "2026-09-30"),
        ("this year", "2026-01-01", "2026-12-31"),
        ("last year", "2025-01-01", "2025-12-31"),
        ("next year", "2027-01-01", "2027-12-31"),
        ("2026-Q1", "2026-01-01", "2026-03-31"),
        ("2026-Q2", "2026-04-01", "2026-06-30"),
        ("2026-q3", "2026-07-01", "2026-09-30"),
        ("2026-Q4", "2026-10-01", "2026-12-31"),
        ("2024-Q1", "2024-01-01", "2024-03-31"),
        ("0001-Q1", "0001-01-01", "0001-03-31"),
        ("9999-Q4", "9999-10-01", "9999-12-31"),
        ("2026", "2026-01-01", "2026-12-31"),
        ("0001", "0001-01-01", "0001-12-31"),
        ("9999", "9999-01-01", "9999-12-31"),
        ("from today to next week", "2026-05-13", "2026-05-24"),
        ("from last month to next month", "2026-04-01", "2026-06-30"),
        ("from 2026-01-01 to 2026-Q1", "2026-01-01", "2026-03-31"),
        ("2026-01..2026-03", "2026-01-01", "2026-03-31"),
        ("2026-Q1..2026-Q2", "2026-01-01", "2026-06-30"),
        ("2026-05-01..2026-05-31", "2026-05-01", "2026-05-31"),
        ("today..today", "2026-05-13", "2026-05-13"),
        ("yesterday..tomorrow", "2026-05-12", "2026-05-14"),
        ("last year..this year", "2025-01-01", "2026-12-31"),
        ("2025..next 14 days", "2025-01-01", "2026-05-26"),
    ],
)
def test_each_new_period_covers_whole_days_from_its_first_to_its_last(phrase: str, first: str, last: str) -> None:
    assert period(phrase, today=date(2026, 5, 13)) == (date.fromisoformat(first), date.fromisoformat(last))
    assert bounds(phrase) == whole_days(first, last)


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("TOMORROW", "tomorrow"),
        ("Next_Week", "next week"),
        ("next-14-days", "next 14 days"),
        ("  NEXT   QUARTER ", "next quarter"),
        ("Last_Year", "last year"),
        ("next 014 days", "next 14 days"),
        ("2026-q2", "2026-Q2"),
        (" 2026-Q2\t", "2026-Q2"),
        ("FROM today TO Next Week", "from today to next week"),
        ("from\ttoday\nto  next_week", "from today to next week"),
        (" today .. next_week ", "from today to next week"),
    ],
)
def test_new_periods_ignore_case_blanks_underscores_and_hyphens(written: str, meant: str) -> None:
    today = date(2026, 5, 13)
    assert period(written, today=today) == period(meant, today=today)
    assert bounds(written) == bounds(meant)


@pytest.mark.parametrize(
    ("today", "phrase", "first", "last"),
    [
        # December 31 (a Thursday): everything "next" is in the new year.
        ("2026-12-31", "tomorrow", "2027-01-01", "2027-01-01"),
        ("2026-12-31", "next week", "2027-01-04", "2027-01-10"),
        ("2026-12-31", "next month", "2027-01-01", "2027-01-31"),
        ("2026-12-31", "next 1 days", "2026-12-31", "2026-12-31"),
        ("2026-12-31", "next 7 days", "2026-12-31", "2027-01-06"),
        ("2026-12-31", "this quarter", "2026-10-01", "2026-12-31"),
        ("2026-12-31", "last quarter", "2026-07-01", "2026-09-30"),
        ("2026-12-31", "next quarter", "2027-01-01", "2027-03-31"),
        ("2026-12-31", "next year", "2027-01-01", "2027-12-31"),
        # January 1 (a Friday): everything "last" is in the old year.
        ("2027-01-01", "last quarter", "2026-10-01", "2026-12-31"),
        ("2027-01-01", "this quarter", "2027-01-01", "2027-03-31"),
        ("2027-01-01", "last year", "2026-01-01", "2026-12-31"),
        ("2027-01-01", "this week", "2026-12-28", "2027-01-03"),
        ("2027-01-01", "next week", "2027-01-04", "2027-01-10"),
        ("2027-01-01", "tomorrow", "2027-01-02", "2027-01-02"),
        # Quarter ends.
        ("2026-03-31", "tomorrow", "2026-04-01", "2026-04-01"),
        ("2026-03-31", "this quarter", "2026-01-01", "2026-03-31"),
        ("2026-03-31", "next quarter", "2026-04-01", "2026-06-30"),
        ("2026-03-31", "next month", "2026-04-01", "2026-04-30"),
        ("2026-03-31", "next 2 days", "2026-03-31", "2026-04-01"),
        ("2026-04-01", "last quarter", "2026-01-01", "2026-03-31"),
        ("2026-06-30", "next quarter", "2026-07-01", "2026-09-30"),
        ("2026-09-30", "tomorrow", "2026-10-01", "2026-10-01"),
        ("2026-09-30", "this quarter", "2026-07-01", "2026-09-30"),
        ("2026-09-30", "last quarter", "2026-04-01", "2026-06-30"),
        ("2026-09-30", "next quarter", "2026-10-01", "2026-12-31"),
        ("2026-10-01", "last quarter", "2026-07-01", "2026-09-30"),
        # Month ends and leap days.
        ("2026-11-30", "next month", "2026-12-01", "2026-12-31"),
        ("2026-01-31", "next month", "2026-02-01", "2026-02-28"),
        ("2024-01-31", "next month", "2024-02-01", "2024-02-29"),
        ("2100-01-31", "next month", "2100-02-01", "2100-02-28"),
        ("2000-01-31", "next month", "2000-02-01", "2000-02-29"),
        ("2024-02-28", "tomorrow", "2024-02-29", "2024-02-29"),
        ("2024-02-29", "tomorrow", "2024-03-01", "2024-03-01"),
        ("2025-02-28", "tomorrow", "2025-03-01", "2025-03-01"),
        ("2024-02-29", "next 2 days", "2024-02-29", "2024-03-01"),
        ("2024-02-29", "next year", "2025-01-01", "2025-12-31"),
        ("2024-02-29", "last year", "2023-01-01", "2023-12-31"),
        ("2024-02-29", "this quarter", "2024-01-01", "2024-03-31"),
        ("2024-02-26", "next week", "2024-03-04", "2024-03-10"),
        ("2024-02-20", "next week", "2024-02-26", "2024-03-03"),  # a week holding the leap day
        ("2023-12-31", "next quarter", "2024-01-01", "2024-03-31"),
        ("2024-02-29", "from today to next month", "2024-02-29", "2024-03-31"),
    ],
)
def test_new_periods_around_month_quarter_and_year_ends_and_leap_days(
    today: str, phrase: str, first: str, last: str
) -> None:
    assert bounds(phrase, now=utc(f"{today}T12:00")) == whole_days(first, last)


@pytest.mark.parametrize(
    ("zone", "now", "local_today", "tomorrow", "this_quarter", "next_month"),
    [
        # 03:00 UTC on March 1 is still February 28 in New York.
        (NEW_YORK, "2026-03-01T03:00", "2026-02-28", "2026-03-01", ("2026-01-01", "2026-03-31"), "2026-03"),
        (NEW_YORK, "2026-04-01T03:59", "2026-03-31", "2026-04-01", ("2026-01-01", "2026-03-31"), "2026-04"),
        (NEW_YORK, "2027-01-01T04:59", "2026-12-31", "2027-01-01", ("2026-10-01", "2026-12-31"), "2027-01"),
        # Auckland is already in the new year while UTC is not.
        (AUCKLAND, "2026-12-31T12:00", "2027-01-01", "2027-01-02", ("2027-01-01", "2027-03-31"), "2027-02"),
        (KOLKATA, "2026-09-30T18:30", "2026-10-01", "2026-10-02", ("2026-10-01", "2026-12-31"), "2026-11"),
        (UTC_ZONE, "2026-12-31T23:59", "2026-12-31", "2027-01-01", ("2026-10-01", "2026-12-31"), "2027-01"),
    ],
)
def test_new_words_are_relative_to_the_local_date_and_the_echo_says_which(
    zone: ZoneInfo,
    now: str,
    local_today: str,
    tomorrow: str,
    this_quarter: tuple[str, str],
    next_month: str,
) -> None:
    assert bounds("tomorrow", zone=zone, now=utc(now)) == whole_days(tomorrow, tomorrow)
    assert bounds("next 1 days", zone=zone, now=utc(now)) == whole_days(local_today, local_today)
    assert bounds("this quarter", zone=zone, now=utc(now)) == whole_days(*this_quarter)
    assert bounds("next month", zone=zone, now=utc(now)) == bounds(next_month, zone=zone, now=utc(now))
    assert resolve_range("tomorrow", None, zone=zone, now=utc(now)).echo()["today"] == local_today


@pytest.mark.parametrize(
    ("now", "phrase", "naive", "shown"),
    [
        # America/New_York springs forward on Sunday 2026-03-08 and falls back on Sunday 2026-11-01.
        (
            "2026-02-25T17:00",
            "next week",
            ("2026-03-02", "2026-03-08"),
            ("2026-03-02T00:00:00-05:00", "2026-03-08T23:59:59-04:00"),
        ),
        (
            "2026-03-07T17:00",
            "tomorrow",
            ("2026-03-08", "2026-03-08"),
            ("2026-03-08T00:00:00-05:00", "2026-03-08T23:59:59-04:00"),
        ),
        (
            "2026-03-05T17:00",
            "next 7 days",
            ("2026-03-05", "2026-03-11"),
            ("2026-03-05T00:00:00-05:00", "2026-03-11T23:59:59-04:00"),
        ),
        (
            "2026-02-15T17:00",
            "next month",
            ("2026-03-01", "2026-03-31"),
            ("2026-03-01T00:00:00-05:00", "2026-03-31T23:59:59-04:00"),
        ),
        (
            "2026-02-15T17:00",
            "this quarter",
            ("2026-01-01", "2026-03-31"),
            ("2026-01-01T00:00:00-05:00", "2026-03-31T23:59:59-04:00"),
        ),
        (
            "2026-10-21T17:00",
            "next week",
            ("2026-10-26", "2026-11-01"),
            ("2026-10-26T00:00:00-04:00", "2026-11-01T23:59:59-05:00"),
        ),
        (
            "2026-10-31T17:00",
            "tomorrow",
            ("2026-11-01", "2026-11-01"),
            ("2026-11-01T00:00:00-04:00", "2026-11-01T23:59:59-05:00"),
        ),
        (
            "2026-09-15T17:00",
            "next quarter",
            ("2026-10-01", "2026-12-31"),
            ("2026-10-01T00:00:00-04:00", "2026-12-31T23:59:59-05:00"),
        ),
        (
            "2026-03-07T17:00",
            "2026-03-08T01:30..2026-03-08T03:30",
            ("2026-03-08 01:30:00", "2026-03-08 03:30:00"),
            ("2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"),
        ),
    ],
)
def test_new_periods_across_new_york_dst_changes_stay_whole_local_days_and_echo_their_offsets(
    now: str, phrase: str, naive: tuple[str, str], shown: tuple[str, str]
) -> None:
    expected = naive if " " in naive[0] else whole_days(*naive)
    assert bounds(phrase, zone=NEW_YORK, now=utc(now)) == expected
    assert echo(phrase, zone=NEW_YORK, now=utc(now)) == shown


def test_next_week_across_spring_forward_is_an_hour_short_of_seven_days() -> None:
    start, end = resolve_range("next week", None, zone=NEW_YORK, now=utc("2026-02-25T17:00")).aware()
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=7, hours=-1, seconds=-1)


@pytest.mark.parametrize(
    ("start_date", "zone", "expected"),
    [
        ("from 2026-01-15 09:30 to 2026-02-01", UTC_ZONE, ("2026-01-15 09:30:00", "2026-02-01 23:59:59")),
        ("2026-01-15T09:30:00Z..2026-01-15T17:00:00Z", NEW_YORK, ("2026-01-15 04:30:00", "2026-01-15 12:00:00")),
        (
            "from 2026-01-15T09:30:00+01:00 to 2026-02-15T09:30:00+01:00",
            UTC_ZONE,
            ("2026-01-15 08:30:00", "2026-02-15 08:30:00"),
        ),
        ("from yesterday to tomorrow", UTC_ZONE, whole_days("2026-05-12", "2026-05-14")),
        ("2026-05-13 08:00..today", UTC_ZONE, ("2026-05-13 08:00:00", "2026-05-13 23:59:59")),
        ("next week..2026-06-02T10:00", UTC_ZONE, ("2026-05-18 00:00:00", "2026-06-02 10:00:00")),
        ("2026-Q1..2026-05", UTC_ZONE, whole_days("2026-01-01", "2026-05-31")),
    ],
)
def test_a_range_in_start_date_alone_gives_both_bounds(
    start_date: str, zone: ZoneInfo, expected: tuple[str, str]
) -> None:
    assert bounds(start_date, None, zone=zone) == expected


@pytest.mark.parametrize(
    ("end_date", "end"),
    [
        ("next week..next month", "2026-06-30 23:59:59"),
        ("from tomorrow to 2026-06-02T10:00", "2026-06-02 10:00:00"),
        ("2026-Q2..2026-Q3", "2026-09-30 23:59:59"),
    ],
)
def test_a_range_in_end_date_means_its_end(end_date: str, end: str) -> None:
    assert bounds("2026-01-01", end_date) == ("2026-01-01 00:00:00", end)


def test_a_range_in_start_date_with_an_end_date_too_is_refused_naming_what_to_drop() -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_range("next week..next month", "2026-12-31", zone=UTC_ZONE, now=WEDNESDAY)
    assert caught.value.message.startswith("start_date")
    assert "drop end_date" in caught.value.message


RANGE_MISTAKES = [
    "from tomorrow to yesterday",
    "tomorrow..yesterday",
    "next month..last month",
    "2026-03..2026-01",
    "2026-05-13T12:00..2026-05-13T11:00",
    "from 2026-06-02 to last week",
    "today..2026-13",
    "2026-Q5..2026-Q6",
    "next 0 days..today",
    "today..tomorrow..next week",
    "from today..tomorrow to next week",
    "from today to tomorrow..next week",
    "from now to tomorrow",
    "from to today",
    "today..x",
]


@pytest.mark.parametrize("text", RANGE_MISTAKES)
@pytest.mark.parametrize("argument", ["start_date", "end_date"])
def test_a_range_that_runs_backwards_or_is_malformed_is_refused_naming_the_argument_and_the_forms(
    argument: str, text: str
) -> None:
    start_date, end_date = (text, None) if argument == "start_date" else ("2020-01-01", text)
    with pytest.raises(ValidationFailed) as caught:
        resolve_range(start_date, end_date, zone=NEW_YORK, now=WEDNESDAY)
    assert caught.value.message.startswith(argument)
    assert DATE_FORMATS_HELP in caught.value.message
    assert len(caught.value.message) < len(DATE_FORMATS_HELP) + 250


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("next 0 days", "3660"),
        ("next 3661 days", "3660"),
        ("2026-Q5", "Q1 to Q4"),
        ("2026-Q0", "Q1 to Q4"),
        ("0000-Q2", "year"),
        ("0000", "year"),
        ("from tomorrow to yesterday", "backwards"),
        ("today..", "each side"),
        ("from today", "from X to Y"),
        ("from 2026-01-01 10:00 to 2026-02-01", "time"),
    ],
)
def test_period_refuses_a_new_shape_that_names_no_period(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        period(text, today=date(2026, 5, 13))


@pytest.mark.parametrize(
    ("now", "phrase"),
    [
        ("9999-12-31T12:00", "tomorrow"),
        ("9999-12-31T12:00", "next week"),
        ("9999-12-15T12:00", "next month"),
        ("9999-11-15T12:00", "next quarter"),
        ("9999-06-15T12:00", "next year"),
        ("9999-12-30T12:00", "next 3 days"),
        ("0001-02-15T12:00", "last quarter"),
        ("0001-06-15T12:00", "last year"),
    ],
)
def test_new_periods_past_the_calendars_ends_are_a_validation_error(now: str, phrase: str) -> None:
    with pytest.raises(ValidationFailed, match="0001 to 9999"):
        resolve_range(phrase, None, zone=UTC_ZONE, now=utc(now))


def test_echo_says_the_local_today_and_leaves_it_out_when_the_clock_is_broken() -> None:
    shown = resolve_range("next week", None, zone=NEW_YORK, now=utc("2026-12-02T03:00")).echo()
    assert shown == {
        "start": "2026-12-07T00:00:00-05:00",
        "end": "2026-12-13T23:59:59-05:00",
        "timezone": "America/New_York",
        "today": "2026-12-01",
    }
    broken = resolve_range(
        "2026-01-01", "2026-01-02", zone=ZoneInfo("Pacific/Kiritimati"), now=datetime.max.replace(tzinfo=UTC)
    )
    assert "today" not in broken.echo()


# --- Properties of the new words -----------------------------------------------------------------------------------

NOWS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.sampled_from(PROPERTY_ZONES)
)
SINGLE_FORMS = st.sampled_from(
    [
        *PHRASES,
        *FUTURE_PHRASES,
        "2026-05",
        "2026-Q2",
        "2026",
        "2026-05-13",
        "2026-05-13 08:30",
        "2026-05-13T08:30:00Z",
        "2025-12-31T23:00:00+05:30",
    ]
)


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(PROPERTY_ZONES), now=NOWS, days=st.integers(1, LAST_DAYS_MAX))
def test_next_n_days_is_n_whole_days_starting_today(zone: ZoneInfo, now: datetime, days: int) -> None:
    resolved = resolve_range(f"next {days} days", None, zone=zone, now=now)
    today = now.astimezone(zone).date()
    assert resolved.start == datetime.combine(today, datetime.min.time())
    assert (resolved.end.date() - resolved.start.date()).days + 1 == days
    assert resolved.end.time().isoformat() == "23:59:59"
    assert resolved.today == today


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(PROPERTY_ZONES), now=NOWS, first=SINGLE_FORMS, last=SINGLE_FORMS)
def test_x_to_y_runs_from_the_start_of_x_to_the_end_of_y(zone: ZoneInfo, now: datetime, first: str, last: str) -> None:
    def outcome(start_date: str, end_date: str | None) -> tuple[datetime, datetime] | None:
        try:
            resolved = resolve_range(start_date, end_date, zone=zone, now=now)
        except ValidationFailed:
            return None
        return resolved.start, resolved.end

    expected = outcome(first, last)
    assert outcome(f"{first}..{last}", None) == expected
    assert outcome(f"from {first} to {last}", None) == expected
    if expected is not None:  # a range that holds means its end in end_date
        assert outcome("0001-01-01", f"{first}..{last}") == outcome("0001-01-01", last)


@settings(max_examples=60, deadline=None)
@given(day=st.dates(min_value=date(2, 1, 1), max_value=date(9998, 12, 31)))
def test_quarters_tile_the_year_and_next_and_last_border_this(day: date) -> None:
    quarters = [period(f"{day.year:04d}-Q{number}", today=day) for number in (1, 2, 3, 4)]
    spans = [span for span in quarters if span is not None]
    assert spans[0][0] == date(day.year, 1, 1)
    assert spans[-1][1] == date(day.year, 12, 31)
    assert all(later[0] - earlier[1] == timedelta(days=1) for earlier, later in pairwise(spans))
    assert period(f"{day.year:04d}", today=day) == (spans[0][0], spans[-1][1])
    for unit in ("week", "month", "quarter", "year"):
        this, last, following = (period(f"{shift} {unit}", today=day) for shift in ("this", "last", "next"))
        assert this is not None
        assert last is not None
        assert following is not None
        assert this[0] <= day <= this[1]
        assert last[1] + timedelta(days=1) == this[0]
        assert this[1] + timedelta(days=1) == following[0]
    assert period("this quarter", today=day) in spans


# --- Date words in filter conditions -------------------------------------------------------------------------------

DATE_SLOT = "profile_field_26"


def on_day(today: str, **condition: Any) -> dict[str, Any]:
    """The condition on the date slot as sent, date words resolved on `today`."""
    resolved = FilterCondition(field=DATE_SLOT, **condition).on_day(date.fromisoformat(today))
    return resolved.model_dump(exclude_none=True, exclude={"field"})


@pytest.mark.parametrize(
    ("today", "condition", "sent"),
    [
        ("2026-12-31", {"operator": "equal_to", "value": "tomorrow"}, {"value": "2027-01-01"}),
        ("2026-12-31", {"operator": "equal_to", "value": "today..today"}, {"value": "2026-12-31"}),
        ("2026-12-31", {"operator": "greater_than", "value": "next week"}, {"value": "2027-01-10"}),
        ("2026-12-31", {"operator": "less_than", "value": "next quarter"}, {"value": "2027-01-01"}),
        ("2026-05-13", {"operator": "greater_than", "value": "2026-Q2"}, {"value": "2026-06-30"}),
        ("2026-05-13", {"operator": "less_than", "value": 2027}, {"value": "2027-01-01"}),
        (
            "2026-12-31",
            {"operator": "between", "start": "next week", "end": "next month"},
            {"start": "2027-01-04", "end": "2027-01-31"},
        ),
        (
            "2026-12-31",
            {"operator": "between", "start": "tomorrow", "end": "next 14 days"},
            {"start": "2027-01-01", "end": "2027-01-13"},
        ),
        (
            "2026-12-31",
            {"operator": "between", "start": "2027-01..2027-02", "end": "2027-Q1..2027-Q2"},
            {"start": "2027-01-01", "end": "2027-06-30"},
        ),
        # between with a period or range alone in value: its first and last day, sent as start and end.
        ("2026-12-25", {"operator": "between", "value": "next 14 days"}, {"start": "2026-12-25", "end": "2027-01-07"}),
        ("2026-03-31", {"operator": "between", "value": "next quarter"}, {"start": "2026-04-01", "end": "2026-06-30"}),
        ("2026-05-13", {"operator": "between", "value": "2026-q3"}, {"start": "2026-07-01", "end": "2026-09-30"}),
        (
            "2024-02-28",
            {"operator": "between", "value": "from today to next month"},
            {"start": "2024-02-28", "end": "2024-03-31"},
        ),
        (
            "2026-05-13",
            {"operator": "between", "value": "2026-01-01..2026-01-31"},
            {"start": "2026-01-01", "end": "2026-01-31"},
        ),
        ("2026-05-13", {"operator": "between", "value": "2026-05-01"}, {"start": "2026-05-01", "end": "2026-05-01"}),
    ],
)
def test_filter_conditions_take_the_new_words_and_send_dates(
    today: str, condition: dict[str, Any], sent: dict[str, Any]
) -> None:
    assert on_day(today, **condition) == {"operator": condition["operator"], **sent}


def test_a_label_condition_with_a_period_in_value_is_resolved_once_its_slot_is_known() -> None:
    labelled = FilterCondition(field="Trial Ends", operator="between", value="Next_14_Days")
    resolved = labelled.for_slot(DATE_SLOT).on_day(date(2026, 12, 25))
    assert (resolved.value, resolved.start, resolved.end) == (None, "2026-12-25", "2027-01-07")


@pytest.mark.parametrize(
    "condition",
    [
        {"operator": "between", "value": "next 0 days"},
        {"operator": "between", "value": "2026-Q5"},
        {"operator": "between", "value": "today.."},
        {"operator": "between", "value": "whenever"},
        {"operator": "between", "value": "2026-03..2026-01"},  # backwards on every day
        {"operator": "between", "value": "2026-05-01 10:00:00"},  # one moment, not a period
        {"operator": "between", "value": "from 2026-01-01 10:00 to 2026-02-01"},  # days only
        {"operator": "between", "value": "next week", "start": "today"},
        {"operator": "between", "start": "next 3661 days", "end": "today"},
        {"operator": "greater_than", "value": "2026-Q0"},
        {"operator": "less_than", "value": "next weeks"},
        {"operator": "equal_to", "value": "0000"},
    ],
)
def test_a_bad_date_word_in_a_condition_is_refused_before_anything_is_sent(condition: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FilterCondition(field=DATE_SLOT, **condition)


def test_a_bad_date_word_in_a_condition_lists_the_accepted_forms() -> None:
    with pytest.raises(ValidationError) as caught:
        FilterCondition(field=DATE_SLOT, operator="greater_than", value="whenever")
    message = str(caught.value)
    assert all(form in message for form in ("YYYY-MM-DD", "YYYY-Qn", "tomorrow", "next N days", "X..Y"))
    assert names_period("next 14 days")
    assert names_period("from tomorrow to yesterday")  # backwards, but only period() knows the day to say so


@pytest.mark.parametrize(
    ("today", "condition", "problem"),
    [
        ("2026-05-13", {"operator": "equal_to", "value": "next week"}, "between"),
        ("2026-05-13", {"operator": "equal_to", "value": "2026-Q3"}, "between"),
        ("2026-05-13", {"operator": "equal_to", "value": "today..tomorrow"}, "between"),
        ("2026-05-13", {"operator": "between", "value": "from tomorrow to yesterday"}, "backwards"),
        ("2026-05-13", {"operator": "between", "start": "next month", "end": "last month"}, "after"),
        ("9999-12-31", {"operator": "greater_than", "value": "tomorrow"}, "9999"),
    ],
)
def test_a_condition_impossible_on_the_accounts_day_is_a_validation_error(
    today: str, condition: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationFailed, match=problem):
        on_day(today, **condition)


# --- Through the tools ---------------------------------------------------------------------------------------------

LATE_TUESDAY = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
"""Wednesday December 2 in UTC, still Tuesday December 1 (22:00) in New York."""


def new_york_server() -> Any:
    settings = make_settings()
    settings.cometly.timezone = "America/New_York"
    return build_server(settings, clock=lambda: LATE_TUESDAY)


@pytest.mark.anyio
async def test_filter_by_custom_field_sends_future_date_words_as_the_accounts_dates(cometly: respx.MockRouter) -> None:
    route = cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})
    conditions = [
        {"field": DATE_SLOT, "operator": "between", "value": "next 14 days"},
        {"field": "profile_field_27", "operator": "greater_than", "value": "tomorrow"},
        {"field": "profile_field_28", "operator": "between", "start": "next week", "end": "next quarter"},
    ]

    async with Client(new_york_server()) as client:
        result = await client.call_tool("filter_by_custom_field", {"start_date": "2026", "conditions": conditions})

    assert not result.is_error, text_of(result)
    raw = unquote(route.calls.last.request.url.query.decode())
    assert raw.startswith("start_date=2026-01-01+00:00:00&end_date=2026-12-31+23:59:59&")
    assert raw.endswith(
        "&custom_field_filters[0][field]=profile_field_26&custom_field_filters[0][operator]=between"
        "&custom_field_filters[0][start]=2026-12-01&custom_field_filters[0][end]=2026-12-14"
        "&custom_field_filters[1][field]=profile_field_27&custom_field_filters[1][operator]=greater_than"
        "&custom_field_filters[1][value]=2026-12-02"
        "&custom_field_filters[2][field]=profile_field_28&custom_field_filters[2][operator]=between"
        "&custom_field_filters[2][start]=2026-12-07&custom_field_filters[2][end]=2027-03-31"
    )
    page = result.structured_content
    assert page is not None
    assert page["filters"][0] == {"field": DATE_SLOT, "operator": "between", "start": "2026-12-01", "end": "2026-12-14"}
    assert page["range"]["today"] == "2026-12-01"


@pytest.mark.anyio
async def test_list_contacts_echoes_the_accounts_today_beside_the_resolved_range(cometly: respx.MockRouter) -> None:
    route = cometly.get("/contacts").respond(200, json={"data": [], "next_cursor": None})

    async with Client(new_york_server()) as client:
        result = await client.call_tool("list_contacts", {"start_date": "next week"})
        sent = dict(httpx.QueryParams(route.calls.last.request.url.query).multi_items())
        refused = await client.call_tool("list_contacts", {"start_date": "next 0 days"})
        long_range = await client.call_tool(
            "list_contacts", {"start_date": "from 2026-01-15T09:30:00+01:00 to 2026-02-15T09:30:00+01:00"}
        )

    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["range"] == {
        "start": "2026-12-07T00:00:00-05:00",
        "end": "2026-12-13T23:59:59-05:00",
        "timezone": "America/New_York",
        "today": "2026-12-01",
    }
    assert (sent["start_date"], sent["end_date"]) == ("2026-12-07 00:00:00", "2026-12-13 23:59:59")
    assert refused.is_error
    assert text_of(refused).startswith("[validation_error]")
    assert long_range.structured_content is not None, text_of(long_range)
    assert long_range.structured_content["range"]["start"] == "2026-01-15T03:30:00-05:00"
    assert route.call_count == 2
