"""The sandbox's data model: one stored contact, seen through three vendors' APIs.

Cometly's view is the canonical one (an integer id, four stamped collections, 30 custom-field slots);
HighLevel and Clemta read the same row through their own ids and the vendor details in `Profile`.
Times are stored as whole Unix seconds in UTC, the sandbox Space's timezone.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

SLOT_COUNT = 30
"""Cometly's custom-field slots: profile_field_1 .. profile_field_30."""

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""Cometly's `YYYY-MM-DD HH:MM:SS`: list bounds, date slots and event times."""

_SLOT_KEY = re.compile(r"profile_field_([1-9][0-9]?)")

EMAIL = re.compile(
    r"(?!\.)(?!.*\.\.)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+(?<!\.)"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
"""An email address as the vendors accept it (use with `fullmatch`)."""


class SlotType(enum.StrEnum):
    """The type of a custom-field slot; Cometly fixes it by slot number."""

    TEXT = "text"
    NUMBER = "number"
    DATE = "date"


def slot_type(slot: int) -> SlotType:
    """The type Cometly gives a slot: 1-15 text, 16-25 number, 26-30 date."""
    if slot <= 15:
        return SlotType.TEXT
    if slot <= 25:
        return SlotType.NUMBER
    return SlotType.DATE


def slot_key(slot: int) -> str:
    """The raw column name of a slot, e.g. `profile_field_5`."""
    return f"profile_field_{slot}"


def parse_slot_key(key: str) -> int | None:
    """The slot number of `profile_field_N`, or None when the key names no slot."""
    match = _SLOT_KEY.fullmatch(key)
    if match is None:
        return None
    slot = int(match.group(1))
    return slot if slot <= SLOT_COUNT else None


CustomValue = str | float | None
"""A stored slot value: text as str, numbers as float, dates as `YYYY-MM-DD HH:MM:SS` str."""


def render_value(slot: int, value: CustomValue) -> str | float | int | None:
    """A slot value as the APIs show it: whole numbers as integers (REAL storage makes 25 into 25.0)."""
    if isinstance(value, float) and slot_type(slot) is SlotType.NUMBER and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Stamped:
    """A value with the time it was added: an email, phone, name, location or comet token."""

    value: str
    created_at: int


@dataclass(frozen=True)
class Attribution:
    """A HighLevel attribution entry (where the contact first came from)."""

    url: str | None
    campaign: str | None
    utm_source: str | None
    utm_medium: str | None
    session_source: str | None


@dataclass(frozen=True)
class Profile:
    """Vendor details beyond Cometly's four collections; read by the HighLevel and Clemta views.

    The field names are also the column names in the store, so adding a field adds a column.
    """

    first_name: str | None = None
    last_name: str | None = None
    address1: str | None = None
    address2: str | None = None
    district: str | None = None
    city: str | None = None
    state: str | None = None
    province: str | None = None
    postal_code: str | None = None
    country: str | None = None
    timezone: str | None = None
    date_of_birth: str | None = None
    website: str | None = None
    dnd: bool = False
    lead_type: str = "lead"
    source: str | None = None
    assigned_to: str | None = None
    tags: tuple[str, ...] = ()
    attributions: tuple[Attribution, ...] = ()
    clemta_type: str = "customer"
    clemta_status: str = "active"
    description: str | None = None
    bcc_emails: tuple[str, ...] = ()
    tax_id: str | None = None


@dataclass(frozen=True)
class Event:
    """A conversion or touchpoint on a contact's journey; fields of the other kind stay None."""

    kind: str  # "conversion" | "touchpoint"
    event_time: int
    event_name: str | None = None
    amount: float | None = None
    event_url: str | None = None
    order_id: str | None = None
    order_name: str | None = None
    channel: str | None = None
    integration: str | None = None
    source: str | None = None
    touchpoint_url: str | None = None
    referrer_url: str | None = None
    ad_id: str | None = None
    ad_name: str | None = None
    adset_id: str | None = None
    adset_name: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    is_direct: bool = False


@dataclass(frozen=True)
class BrowsingHit:
    """One raw page view."""

    event_time: int
    event_url: str
    referrer_host: str | None
    source: str | None
    country: str | None
    device_type: str | None
    browser: str | None
    os: str | None
    event_name: str


@dataclass
class NewContact:
    """A contact to insert, with everything that hangs off it.

    Collections are in insertion order, primary value first. `merged_ids` are ids of older profiles
    merged into this one: Cometly's get answers them with this contact.
    """

    id: int
    created_at: int
    emails: list[Stamped]
    phones: list[Stamped] = field(default_factory=list[Stamped])
    names: list[Stamped] = field(default_factory=list[Stamped])
    locations: list[Stamped] = field(default_factory=list[Stamped])
    custom_fields: dict[int, CustomValue] = field(default_factory=dict[int, CustomValue])
    profile: Profile = field(default_factory=Profile)
    comet_tokens: list[Stamped] = field(default_factory=list[Stamped])
    events: list[Event] = field(default_factory=list[Event])
    browsing_hits: list[BrowsingHit] = field(default_factory=list[BrowsingHit])
    merged_ids: list[int] = field(default_factory=list[int])
    updated_at: int | None = None


@dataclass(frozen=True)
class ContactSummary:
    """What Cometly's list shows of a contact: the primaries and every set custom field by slot."""

    id: int
    email: str | None
    name: str | None
    phone: str | None
    location: str | None
    custom_fields: dict[int, CustomValue]


@dataclass(frozen=True)
class ContactRow(ContactSummary):
    """A stored contact's whole row: the summary plus times, vendor ids and profile."""

    highlevel_id: str
    clemta_id: str
    created_at: int
    updated_at: int
    profile: Profile


def unix(moment: datetime) -> int:
    """Whole Unix seconds of an aware datetime (sub-seconds dropped, as MySQL's DATETIME does)."""
    return int(moment.timestamp())


def from_unix(seconds: int) -> datetime:
    """The aware UTC datetime of Unix seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def utc_text(seconds: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, Cometly's format for event times and date slots."""
    return from_unix(seconds).strftime(DATETIME_FORMAT)


def laravel_timestamp(seconds: int) -> str:
    """An Eloquent model's serialised timestamp, e.g. `2024-01-15T10:00:00.000000Z`."""
    return from_unix(seconds).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def iso_millis(seconds: int) -> str:
    """A JavaScript ISO timestamp, e.g. `2024-01-10T12:00:00.000Z` (HighLevel)."""
    return from_unix(seconds).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_date_value(text: str) -> str | None:
    """A date slot value `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`, normalised to the latter; None if invalid.

    Like MySQL's DATETIME column, a bare date is stored at midnight.
    """
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += " 00:00:00"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text):
        return None
    try:
        datetime.strptime(text, DATETIME_FORMAT)
    except ValueError:
        return None
    return text


def parse_day(text: str) -> date | None:
    """The calendar day of a `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS` value; None if invalid."""
    normalised = parse_date_value(text)
    return None if normalised is None else date.fromisoformat(normalised[:10])


@dataclass(frozen=True)
class Country:
    """What the views need of a country: its name and telephone calling code."""

    name: str
    calling_code: str


COUNTRIES: dict[str, Country] = {
    "US": Country("United States", "1"),
    "CA": Country("Canada", "1"),
    "GB": Country("United Kingdom", "44"),
    "IE": Country("Ireland", "353"),
    "DE": Country("Germany", "49"),
    "FR": Country("France", "33"),
    "ES": Country("Spain", "34"),
    "NL": Country("Netherlands", "31"),
    "AU": Country("Australia", "61"),
    "BR": Country("Brazil", "55"),
    "IN": Country("India", "91"),
}
"""The countries the generator places contacts in, by ISO 3166-1 alpha-2 code."""


def phone_digits(phone: str | None) -> str:
    """The digits of a phone number, the form phones are matched in ("+1 888-888-8888" -> "18888888888")."""
    return "".join(char for char in phone or "" if char.isdigit())


def split_phone(e164: str) -> tuple[str, str]:
    """Split an E.164 number into (`+code`, national digits); ("", digits) when the code is not known."""
    digits = "".join(char for char in e164 if char.isdigit())
    codes = sorted({country.calling_code for country in COUNTRIES.values()}, key=len, reverse=True)
    if e164.startswith("+"):
        for code in codes:
            if digits.startswith(code):
                return f"+{code}", digits[len(code) :]
    return "", digits


def aware_utc(moment: datetime | None) -> datetime:
    """`moment` in UTC, or the current time when None; a naive datetime is refused rather than guessed.

    Raises:
        ValueError: `moment` is naive.
    """
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return moment.astimezone(UTC)


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def stable_base62(text: str, length: int = 20) -> str:
    """An id of `length` letters and digits derived from `text`: HighLevel's id style, stable across runs."""
    number = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    chars: list[str] = []
    for _ in range(length):
        number, index = divmod(number, len(_BASE62))
        chars.append(_BASE62[index])
    return "".join(chars)
