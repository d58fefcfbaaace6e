"""The pydantic models the tools take and return: the server's public vocabulary.

Providers turn their upstream's shapes into these models, so every provider answers the same way.
Validation that needs no upstream (custom-field slots and operators, emails, dates) lives here, so
a bad argument is reported before any request is sent.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, tzinfo
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator, model_validator

from server.errors import ValidationFailed

# --- Results -------------------------------------------------------------------------------------------------------


class HighLevelDetails(BaseModel):
    """What only HighLevel holds about a contact, under its own names."""

    tags: list[str] | None = None
    type: str | None = None
    source: str | None = None
    companyName: str | None = None
    dnd: bool | None = None
    dndSettings: dict[str, JsonValue] | None = None
    attributions: list[dict[str, JsonValue]] | None = None
    assignedTo: str | None = None
    dateOfBirth: str | None = None
    timezone: str | None = None
    website: str | None = None


class ClemtaDetails(BaseModel):
    """What only Clemta holds about a contact, under its own names."""

    type: str | None = None
    status: str | None = None
    description: str | None = None
    cc_emails: list[str] | None = None
    bcc_emails: list[str] | None = None
    billing: dict[str, JsonValue] | None = None


def iso_utc(value: object) -> str | None:
    """A timestamp (ISO 8601 text or Unix seconds) as ISO 8601 UTC, `...Z`; None when it is neither."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and value.strip():
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return value if isinstance(value, str) else None
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cut(BaseModel):
    """One value the server shortened."""

    path: str = Field(description="Where it is in the result, e.g. browsing_hits or contacts[3].custom_fields.Notes.")
    shown: int = Field(description="How many characters or items are shown.")
    total: int = Field(description="How many there are.")
    unit: Literal["characters", "items"]


class Truncated(BaseModel):
    """What the server cut from a result to fit a model's context, and how to get more."""

    note: str = Field(description="What was cut and how to get more.")
    cuts: list[Cut]


class Contact(BaseModel):
    """One contact, the same shape whichever provider it came from. Empty sections are left out."""

    id: str = Field(description="The contact's id at its provider; pass it to get_contact.")
    provider: str = Field(description="The provider the contact lives in.")
    created_at: str | None = Field(default=None, description="When the contact was created (ISO 8601 UTC).")
    updated_at: str | None = Field(default=None, description="When the contact last changed (ISO 8601 UTC).")
    emails: list[str] = Field(default_factory=list[str], description="Email addresses, primary first.")
    phones: list[str] = Field(default_factory=list[str], description="Phone numbers, primary first.")
    names: list[str] = Field(default_factory=list[str], description="Names, primary first.")
    locations: list[str] = Field(default_factory=list[str], description="Locations, primary first.")
    custom_fields: dict[str, JsonValue] = Field(
        default_factory=dict[str, JsonValue],
        description="Custom fields that have a value, by label or slot (profile_field_N); unset ones are left out.",
    )
    comet_tokens: list[JsonValue] | None = Field(default=None, description="Latest comet tokens, when asked for.")
    events: list[dict[str, JsonValue]] | None = Field(
        default=None, description="Conversions and touchpoints (the ad journey), newest first, when asked for."
    )
    browsing_hits: list[dict[str, JsonValue]] | None = Field(
        default=None, description="Raw page views, newest first, when asked for."
    )
    highlevel: HighLevelDetails | None = Field(default=None, description="What only HighLevel holds.")
    clemta: ClemtaDetails | None = Field(default=None, description="What only Clemta holds.")
    truncated: Truncated | None = Field(default=None, description="Present when long values were cut.")


class ContactPage(BaseModel):
    """One page of contacts and how to get the next one."""

    contacts: list[Contact] = Field(description="The contacts of this page, newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor`, with the same other arguments, to get the next page."
    )
    has_more: bool = Field(description="Whether there are more contacts after this page.")
    truncated: Truncated | None = Field(default=None, description="Present when long values were cut.")


# --- Custom-field filters ------------------------------------------------------------------------------------------

SlotType = Literal["text", "number", "date"]
Operator = Literal[
    "equal_to",
    "not_equal_to",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "contains_word",
    "greater_than",
    "greater_than_or_equal_to",
    "less_than",
    "less_than_or_equal_to",
    "between",
    "age_greater_than",
    "age_equal_to",
    "age_less_than",
    "any",
    "unknown",
]

OPERATORS: dict[SlotType, tuple[Operator, ...]] = {
    "text": (
        "equal_to",
        "not_equal_to",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "contains_word",
        "any",
        "unknown",
    ),
    "number": (
        "equal_to",
        "not_equal_to",
        "greater_than",
        "greater_than_or_equal_to",
        "less_than",
        "less_than_or_equal_to",
        "any",
        "unknown",
    ),
    "date": (
        "equal_to",
        "between",
        "greater_than",
        "less_than",
        "age_greater_than",
        "age_equal_to",
        "age_less_than",
        "any",
        "unknown",
    ),
}
"""Valid operators per slot type, as Cometly's list endpoint documents them."""

SLOT_PATTERN = r"^profile_field_([1-9]|[12][0-9]|30)$"
TEXT_MAX_CHARS = 10_240
_DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$")

SlotName = Annotated[str, StringConstraints(pattern=SLOT_PATTERN)]
Scalar = str | int | float


def slot_type(slot: str) -> SlotType:
    """The type of a custom-field slot: 1-15 text, 16-25 number, 26-30 date."""
    number = int(slot.removeprefix("profile_field_"))
    return "text" if number <= 15 else "number" if number <= 25 else "date"


def _as_number(value: Scalar, what: str) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not math.isfinite(number):  # 'nan', 'inf', '1e400': no JSON body or upstream can carry them
        raise ValueError(f"{what} must be a finite number of at most about 1e308")
    if isinstance(value, int | float):
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _as_date(value: Scalar, what: str) -> str:
    text = str(value).strip()
    if not _DATE_VALUE.match(text):
        raise ValueError(f"{what} must be a date YYYY-MM-DD (or YYYY-MM-DD HH:MM:SS), not {value!r}")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} is not a real date: {value!r}") from None
    return text


class FilterCondition(BaseModel):
    """One condition on a custom field; conditions are AND-joined."""

    model_config = ConfigDict(extra="forbid")

    field: SlotName = Field(
        description="The custom-field slot, profile_field_1..profile_field_30 (1-15 text, 16-25 number, 26-30 date)."
    )
    operator: Operator = Field(
        description=(
            "text: equal_to, not_equal_to, contains, not_contains, starts_with, ends_with, contains_word, any, "
            "unknown. number: equal_to, not_equal_to, greater_than, greater_than_or_equal_to, less_than, "
            "less_than_or_equal_to, any, unknown. date: equal_to, between, greater_than, less_than, "
            "age_greater_than, age_equal_to, age_less_than (a whole number of days), any, unknown. "
            "`any` = has a value, `unknown` = empty or unset."
        )
    )
    value: Scalar | None = Field(
        default=None, description="The value to compare with; not used by any/unknown/between."
    )
    start: Scalar | None = Field(default=None, description="First date of a `between` range (YYYY-MM-DD).")
    end: Scalar | None = Field(default=None, description="Last date of a `between` range (YYYY-MM-DD).")

    @model_validator(mode="after")
    def _check(self) -> Self:
        kind = slot_type(self.field)
        if self.operator not in OPERATORS[kind]:
            raise ValueError(
                f"operator {self.operator!r} is not valid for {self.field}, a {kind} slot; "
                f"use one of: {', '.join(OPERATORS[kind])}"
            )
        if self.operator in ("any", "unknown"):
            self.value = self.start = self.end = None
            return self
        if self.operator == "between":
            if self.start is None or self.end is None:
                raise ValueError(f"{self.field} between needs both `start` and `end` dates")
            self.start, self.end = _as_date(self.start, "start"), _as_date(self.end, "end")
            if self.start > self.end:
                raise ValueError(f"{self.field} between: start {self.start} is after end {self.end}")
            self.value = None
            return self
        if self.start is not None or self.end is not None:
            raise ValueError(f"`start` and `end` are only for the between operator; use `value` with {self.operator}")
        if self.value is None or self.value == "":
            raise ValueError(f"{self.field} {self.operator} needs a `value`")
        if self.operator.startswith("age_"):
            days = _as_number(self.value, "an age in days")
            if not float(days).is_integer() or days < 0:
                raise ValueError(f"{self.operator} takes a whole number of days, not {self.value!r}")
            self.value = int(days)
        elif kind == "number":
            self.value = _as_number(self.value, f"the value for {self.field}")
        elif kind == "date":
            self.value = _as_date(self.value, f"the value for {self.field}")
        else:
            self.value = str(self.value)
            if len(self.value) > TEXT_MAX_CHARS:  # no text slot holds more, so no longer value can match
                raise ValueError(
                    f"the value for {self.field} is {len(self.value)} characters; text slots hold at most "
                    f"{TEXT_MAX_CHARS}"
                )
        return self

    def query(self, index: int) -> list[tuple[str, str]]:
        """This condition as `custom_field_filters[i][key]=value` query pairs, as Cometly documents."""
        prefix = f"custom_field_filters[{index}]"
        pairs = [(f"{prefix}[field]", self.field), (f"{prefix}[operator]", self.operator)]
        for key in ("value", "start", "end"):
            value = getattr(self, key)
            if value is not None:
                pairs.append((f"{prefix}[{key}]", str(value)))
        return pairs


# --- Requests to providers -----------------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


class GetContactQuery(BaseModel):
    """What `get_contact` asks of a provider."""

    contact_id: str
    include_comet_tokens: bool = False
    include_events: bool = False
    include_direct_touchpoints: bool = False
    include_browsing_hits: bool = False
    use_custom_field_labels: bool = True


class ListContactsQuery(BaseModel):
    """What `list_contacts` and `filter_by_custom_field` ask of a provider; dates are still as given."""

    start_date: str
    end_date: str
    per_page: int = 50
    cursor: str | None = None
    include_all_emails: bool = False
    include_comet_tokens: bool = False
    include_custom_fields: bool = False
    use_custom_field_labels: bool = True
    conditions: list[FilterCondition] = Field(default_factory=list[FilterCondition])


class NewContact(BaseModel):
    """A contact to create. At least one valid email; custom fields must suit their slot's type."""

    emails: list[str]
    phones: list[str] = Field(default_factory=list[str])
    names: list[str] = Field(default_factory=list[str])
    locations: list[str] = Field(default_factory=list[str])
    custom_fields: dict[str, Scalar] = Field(default_factory=dict[str, Scalar])
    contact_type: Literal["customer", "vendor"] = "customer"
    """Clemta's contact type; other providers ignore it."""

    @field_validator("emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        emails = [email.strip() for email in emails]
        if not emails:
            raise ValueError("at least one email is required")
        bad = [email for email in emails if not _EMAIL.match(email)]
        if bad:
            raise ValueError(f"not valid email addresses: {', '.join(repr(email) for email in bad)}")
        return emails

    @field_validator("custom_fields")
    @classmethod
    def _custom_fields(cls, fields: dict[str, Scalar]) -> dict[str, Scalar]:
        checked: dict[str, Scalar] = {}
        for slot, value in fields.items():
            if not re.match(SLOT_PATTERN, slot):
                raise ValueError(f"custom field key {slot!r} is not profile_field_1..profile_field_30")
            kind = slot_type(slot)
            if kind == "number":
                checked[slot] = _as_number(value, f"{slot} (a number slot)")
            elif kind == "date":
                checked[slot] = _as_date(value, f"{slot} (a date slot)")
            else:
                text = str(value)
                if len(text) > TEXT_MAX_CHARS:
                    raise ValueError(f"{slot} is {len(text)} characters; text slots hold at most {TEXT_MAX_CHARS}")
                checked[slot] = text
        return checked


# --- Dates ---------------------------------------------------------------------------------------------------------

DATE_FORMATS_HELP = "YYYY-MM-DD HH:MM:SS, ISO 8601 (2024-01-15T09:30:00), or a bare date YYYY-MM-DD"


def parse_bound(text: str, *, end: bool, zone: tzinfo) -> datetime:
    """Parse one end of a date range into a naive datetime in the Space's timezone.

    A bare date means the whole day: 00:00:00 for a start, 23:59:59 for an end. A time with an
    offset (or `Z`) is converted into `zone`; a time without one is taken as already in it.

    Raises:
        ValidationFailed: If the text is none of the accepted formats.
    """
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return datetime.combine(date.fromisoformat(raw), time(23, 59, 59) if end else time(0, 0, 0))
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", raw):
            raise ValueError
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        which = "end_date" if end else "start_date"
        raise ValidationFailed(f"{which} {text!r} is not a date; use {DATE_FORMATS_HELP}.") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(zone).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before the first representable moment
            which = "end_date" if end else "start_date"
            raise ValidationFailed(f"{which} {text!r} is out of range; use a date from 0002 to 9998.") from None
    return moment.replace(microsecond=0)


def parse_range(start_date: str, end_date: str, *, zone: tzinfo) -> tuple[datetime, datetime]:
    """Parse and check a creation-date range.

    Raises:
        ValidationFailed: If either end is not a date or the end is not after the start.
    """
    start = parse_bound(start_date, end=False, zone=zone)
    stop = parse_bound(end_date, end=True, zone=zone)
    if stop <= start:
        raise ValidationFailed(
            f"end_date ({stop:%Y-%m-%d %H:%M:%S}) must be after start_date ({start:%Y-%m-%d %H:%M:%S})."
        )
    return start, stop
