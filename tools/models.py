"""The pydantic models the tools take and return: the server's public vocabulary.

Providers turn their upstream's shapes into these models, so every provider answers the same way.
Validation that needs no upstream (custom-field slots and operators, emails, dates) lives here, so
a bad argument is reported before any request is sent.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Annotated, Literal, Self, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from ..server.errors import ValidationFailed
from .dates import DateRange, names_period, period
from .journey import Journey

# --- Results -------------------------------------------------------------------------------------------------------

AccountName = SkipJsonSchema[str | None]
"""Which named account answered: set only on a server with an accounts file, so it stays out of the output
schemas (and every result) of a server with one account per provider, which is what they always were."""
ACCOUNT_HELP = "The named account that answered (server_info lists them); present only when accounts are configured."


class HighLevelDetails(BaseModel):
    """What only HighLevel holds about a contact, under HighLevel's own names.

    Any key HighLevel sends that this server does not know is kept here too, as sent.
    """

    model_config = ConfigDict(extra="allow")

    firstName: str | None = None
    lastName: str | None = None
    companyName: str | None = None
    tags: list[str] | None = None
    type: str | None = Field(default=None, description="HighLevel's contact type, e.g. lead or customer.")
    source: str | None = Field(default=None, description="Where the contact came from, e.g. 'public api'.")
    assignedTo: str | None = Field(default=None, description="The id of the user the contact is assigned to.")
    dnd: bool | None = Field(default=None, description="Do not disturb: true means no messages at all.")
    dndSettings: dict[str, JsonValue] | None = Field(
        default=None, description="Do not disturb per channel (Call, Email, SMS, WhatsApp, GMB, FB)."
    )
    attributionSource: dict[str, JsonValue] | None = Field(
        default=None, description="First-touch attribution: the url, campaign, utm fields and click ids it came with."
    )
    lastAttributionSource: dict[str, JsonValue] | None = Field(
        default=None, description="Last-touch attribution, the same fields as attributionSource."
    )
    dateOfBirth: str | None = None
    timezone: str | None = None
    website: str | None = None
    lastActivity: str | None = Field(default=None, description="When the contact was last active (ISO 8601).")
    businessId: str | None = Field(default=None, description="The business (company) record it belongs to.")
    visitorId: str | None = Field(default=None, description="The live-chat visitor id.")


class ClemtaDetails(BaseModel):
    """What only Clemta holds about a contact, under Clemta's own names.

    Any key Clemta sends that this server does not know is kept here too, as sent.
    """

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(default=None, description="customer or vendor.")
    status: str | None = Field(default=None, description="The contact's status, e.g. active.")
    description: str | None = None
    cc_emails: list[str] | None = Field(default=None, description="Addresses copied on invoices; also in emails.")
    bcc_emails: list[str] | None = Field(default=None, description="Addresses blind-copied on invoices.")
    billing: dict[str, JsonValue] | None = Field(
        default=None,
        description="The billing details as Clemta holds them: email, phone, phone_code, iso_code, country, "
        "address_1, address_2, postal_code, district, state, province, tax_id.",
    )


class CometlyDetails(BaseModel):
    """Keys Cometly sent that its documentation does not name, kept as sent (none are documented)."""

    model_config = ConfigDict(extra="allow")


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
    cuts: list[Cut] = Field(default_factory=list[Cut], description="Each value cut; none when whole items were.")


class CreatedBetween(BaseModel):
    """When a contact was created, as far as it is known: at or after `start`, at or before `end`."""

    start: str = Field(description="The earliest moment it can have been created (ISO 8601 UTC).")
    end: str = Field(description="The latest moment it can have been created (ISO 8601 UTC).")


class Contact(BaseModel):
    """One contact, the same shape whichever provider it came from. Empty sections are left out."""

    id: str = Field(description="The contact's id at its provider; pass it to get_contact.")
    provider: str = Field(description="The provider the contact lives in.")
    account: AccountName = Field(default=None, description=ACCOUNT_HELP)
    created_at: str | None = Field(
        default=None,
        description="When the contact was created (ISO 8601 UTC): HighLevel's dateAdded, Clemta's created_at. "
        "Cometly returns no creation time: its contacts carry created_at only when the server has dated one "
        "to the second, else created_between.",
    )
    created_between: CreatedBetween | None = Field(
        default=None,
        description="Cometly: the narrowest window the contact is known to have been created in, when "
        "created_at is not known (from the date ranges the server listed it in).",
    )
    updated_at: str | None = Field(
        default=None,
        description="When the contact last changed (ISO 8601 UTC): HighLevel's dateUpdated, Clemta's updated_at; "
        "none for Cometly, whose API returns no such time.",
    )
    emails: list[str] = Field(default_factory=list[str], description="Email addresses, primary first.")
    phones: list[str] = Field(default_factory=list[str], description="Phone numbers, primary first.")
    names: list[str] = Field(default_factory=list[str], description="Names, primary first.")
    locations: list[str] = Field(
        default_factory=list[str],
        description="Locations, primary first: Cometly's free-text locations; HighLevel's and Clemta's address "
        "parts joined with ', '.",
    )
    custom_fields: dict[str, JsonValue] = Field(
        default_factory=dict[str, JsonValue],
        description="Custom fields that have a value, keyed by label wherever one is known (describe_custom_fields "
        "lists them): Cometly's label, or the slot (profile_field_N) for a slot without one or whose label "
        "could not be pinned; HighLevel's field name ('name (id)' when two share a name), or the field id when "
        "no definition names it. With use_custom_field_labels false, by slot or id. Unset ones are left out; "
        "Clemta contacts have none.",
    )
    comet_tokens: list[JsonValue] | None = Field(default=None, description="Latest comet tokens, when asked for.")
    events: list[dict[str, JsonValue]] | None = Field(
        default=None, description="Conversions and touchpoints (the ad journey), newest first, when asked for."
    )
    browsing_hits: list[dict[str, JsonValue]] | None = Field(
        default=None, description="Raw page views, newest first, when asked for."
    )
    journey: Journey | None = Field(
        default=None,
        description="The journey summed up: first and last touch, conversions by name with counts and amounts. "
        "Cometly: with events, from every event returned, even those `limit` leaves out of events; "
        "HighLevel: its first- and last-touch attribution.",
    )
    highlevel: HighLevelDetails | None = Field(default=None, description="What only HighLevel holds.")
    clemta: ClemtaDetails | None = Field(default=None, description="What only Clemta holds.")
    cometly: CometlyDetails | None = Field(
        default=None, description="Keys Cometly sent that its documentation does not name (normally absent)."
    )
    truncated: Truncated | None = Field(default=None, description="Present when long values were cut.")

    def limited(self, limit: int) -> Contact:
        """This contact with at most `limit` events and browsing hits (the newest), counting those left out."""
        update: dict[str, object] = {}
        cuts: list[Cut] = []
        for key in ("events", "browsing_hits"):
            items: list[dict[str, JsonValue]] | None = getattr(self, key)
            if items is not None and len(items) > limit:
                update[key] = items[:limit]
                cuts.append(Cut(path=key, shown=limit, total=len(items), unit="items"))
        if not cuts:
            return self
        note = (
            f"Only the newest {limit} of each were kept; call get_contact again with a larger limit "
            f"(at most {MAX_JOURNEY_ITEMS}) to see more."
        )
        return self.model_copy(update={**update, "truncated": Truncated(note=note, cuts=cuts)})


MAX_JOURNEY_ITEMS = 100
"""The most events and browsing hits get_contact's `limit` allows: one contact's journey, not its log."""


class Range(BaseModel):
    """The exact creation-date range a list covered, after date words were resolved."""

    start: str = Field(description="Its first moment, ISO 8601 with the timezone's offset at that moment.")
    end: str = Field(description="Its last moment, ISO 8601 with the timezone's offset at that moment.")
    timezone: str = Field(description="The IANA timezone the dates were read in (the account's).")
    today: str | None = Field(
        default=None,
        description="The account's date (YYYY-MM-DD) that date words were read against: with today 2026-12-02, "
        "'next week' is 2026-12-07 to 2026-12-13.",
    )


class AppliedFilter(BaseModel):
    """One condition as it was sent: its field as a slot, date words as dates."""

    field: str = Field(description="The slot filtered on, e.g. profile_field_5.")
    label: str | None = Field(default=None, description="The label the condition named, when it named one.")
    operator: str
    value: str | int | float | None = None
    start: str | None = None
    end: str | None = None


SORT_COVERS_ALL = "all matches"
"""`Sorted.covers` when the order holds across every match, not only across the contacts read."""


class Sorted(BaseModel):
    """How a list was sorted, and how much of the matches the order covers."""

    by: str = Field(description="What it was sorted by: name, email, created_at, or a custom field's label or slot.")
    order: Literal["asc", "desc"]
    covers: str = Field(
        description="'all matches': the contacts are in this order among every match (all were read, or the "
        "provider sorted them, so next_cursor goes on in order); else 'the N contacts read': only these were "
        "sorted, and a next page is sorted on its own."
    )
    missing: int = Field(
        default=0, description="How many of the contacts sorted have no value to sort by; they come last."
    )
    note: str | None = Field(default=None, description="What the order leaves out, and how to cover it.")


class AccountCount(BaseModel):
    """One account's row of a fan-out count (`account: "*"` or a list, with count_only)."""

    account: str = Field(description="The named account counted.")
    provider: str = Field(description="Its provider.")
    total: int | None = Field(default=None, description="How many contacts match in this account, when exact.")
    total_at_least: int | None = Field(
        default=None, description="When counting stopped at max_results (or 100,000): at least this many match."
    )
    has_more: bool = Field(default=False, description="Whether more contacts match than were counted.")
    range: Range | None = Field(default=None, description="The range used, in this account's timezone.")
    error: str | None = Field(
        default=None,
        description="Why this account has no count ('[kind] message'); the other rows are unaffected.",
    )


class FanOut(BaseModel):
    """Counts of several accounts, one row each, each counted within its own budget."""

    rows: list[AccountCount] = Field(description="One row per account, in the accounts file's order.")
    note: str | None = Field(default=None, description="Accounts left out, and why.")


class ContactPage(BaseModel):
    """Contacts of a date range (one page, or several when max_results is given) and how to read on."""

    account: AccountName = Field(default=None, description=ACCOUNT_HELP)
    contacts: list[Contact] = Field(
        description="The contacts, newest first unless sort_by says otherwise; empty with count_only."
    )
    count: int = Field(default=0, description="How many contacts this result holds (0 with count_only).")
    total: int | None = Field(
        default=None,
        description="How many contacts match in all: present when it is exact (every match was read, as "
        "count_only does, or the provider counts them, as Clemta does); absent otherwise, with has_more true.",
    )
    total_at_least: int | None = Field(
        default=None,
        description="With count_only, when counting stopped at max_results (or 100,000) before the end, or "
        "began at a cursor: at least this many match.",
    )
    sorted: Sorted | None = Field(default=None, description="With sort_by: how the contacts were sorted.")
    has_more: bool = Field(description="Whether more contacts match after these.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor`, with the same other arguments, to read on."
    )
    range: Range | None = Field(default=None, description="The creation-date range used, date words resolved.")
    filters: list[AppliedFilter] | None = Field(
        default=None, description="The conditions as sent, labels resolved to slots and date words to dates."
    )
    truncated: Truncated | None = Field(default=None, description="Present when something was cut.")
    accounts: SkipJsonSchema[FanOut | None] = Field(
        default=None,
        description='With `account: "*"` or a list and count_only: each account\'s count; present only then.',
    )


class ContactMatches(BaseModel):
    """find_contact's answer: the best matches, best first, how many matched, and how fresh it is."""

    account: AccountName = Field(default=None, description=ACCOUNT_HELP)
    contacts: list[Contact] = Field(description="The matching contacts, best match first (at most `limit`).")
    total: int = Field(description="How many contacts matched in all; more than shown means: narrow the query.")
    matched_on: Literal["email", "phone", "name", "query"] = Field(description="What the contacts were matched on.")
    source: Literal["live", "index"] = Field(
        description="live: the provider's own search answered now; index: the server's contact index chose the "
        "contacts, and each shown was then read live."
    )
    as_of: str | None = Field(
        default=None,
        description="With source index: when the index last caught up with the provider (ISO 8601 UTC); "
        "contacts created after it may be missing.",
    )
    note: str | None = Field(default=None, description="What the answer could not cover, and how to cover it.")
    truncated: Truncated | None = Field(default=None, description="Present when something was cut.")


# --- Custom-field filters ------------------------------------------------------------------------------------------

SlotType = Literal["text", "number", "date"]
FieldType = Literal[
    "text",
    "number",
    "date",
    "picklist",
    "multi_select",
    "radio",
    "checkbox",
    "text_list",
    "phone",
    "email",
    "file",
    "signature",
    "other",
]
"""A custom field's type named plainly: Cometly's slots are text, number or date; HighLevel has the rest too."""
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


def _as_date(value: Scalar, what: str, *, words: bool = False) -> str:
    text = str(value).strip()
    try:
        named = words and names_period(text)
    except ValueError as exc:  # a period's shape that names none: 'next 0 days', '2026-Q5', 'today..'
        raise ValueError(f"{what}: {exc}") from None
    if named:
        return " ".join(text.lower().replace("_", " ").split())  # resolved once the account's today is known
    if not _DATE_VALUE.match(text):
        accepted = "YYYY-MM-DD (or YYYY-MM-DD HH:MM:SS)"
        if words:
            accepted += f", {DATE_WORDS_HELP}"
        raise ValueError(f"{what} must be a date {accepted}, not {str(value)[:40]!r}")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} is not a real date: {str(value)[:40]!r}") from None
    return text


ECHO_CHARS = 200
"""How much of a condition's text value a result's `filters` repeats."""
DATE_WORDS_HELP = (
    "YYYY-MM, YYYY-Qn, YYYY, a date word (today, tomorrow, last/next N days, this/last/next week, month, quarter "
    "or year) or a range of days ('from X to Y', 'X..Y')"
)
"""The date forms a condition takes beyond YYYY-MM-DD: every period of `tools.dates`, whole days only."""

FieldName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class FilterCondition(BaseModel):
    """One condition on a custom field; conditions are AND-joined."""

    model_config = ConfigDict(extra="forbid")

    field: FieldName = Field(
        description="The custom field: its label as describe_custom_fields lists it (e.g. 'Customer Plan', any "
        "case) or its slot profile_field_1..profile_field_30 (1-15 text, 16-25 number, 26-30 date)."
    )
    operator: Operator = Field(
        description=(
            "text: equal_to, not_equal_to, contains, not_contains, starts_with, ends_with, contains_word, any, "
            "unknown. number: equal_to, not_equal_to, greater_than, greater_than_or_equal_to, less_than, "
            "less_than_or_equal_to, any, unknown. date: equal_to, between, greater_than, less_than, "
            "age_greater_than, age_equal_to, age_less_than (a whole number of days), any, unknown. "
            "`any` = has a value, `unknown` = empty or unset; on number fields `any` = greater than 0 and "
            "`unknown` = 0 or unset. not_equal_to and not_contains leave out contacts where the field is unset. "
            "Date comparisons are in the account's timezone; date equal_to matches the whole day. In text "
            "values, _ and \\ are literal characters, not wildcards."
        )
    )
    value: Scalar | None = Field(
        default=None,
        description="The value to compare with; not used by any/unknown. Dates are YYYY-MM-DD or a period "
        "(today, tomorrow, next 14 days, next quarter, 2026-Q3, 2026-01-01..2026-01-31, ...): greater_than/"
        "less_than a period is after its last/before its first day; between takes a period here instead of "
        "start and end ('next 14 days': today and the 13 days after).",
    )
    start: Scalar | None = Field(
        default=None,
        description="First date of a `between` range: YYYY-MM-DD or a period ('next week'), meaning its first day.",
    )
    end: Scalar | None = Field(
        default=None,
        description="Last date of a `between` range: YYYY-MM-DD or a period ('next month'), meaning its last day.",
    )

    @property
    def slot(self) -> str | None:
        """The slot this condition names, or None when it names a label still to be resolved."""
        return self.field if re.match(SLOT_PATTERN, self.field) else None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if re.fullmatch(r"profile_field_\d+", self.field.lower()) and not re.match(SLOT_PATTERN, self.field.lower()):
            raise ValueError(f"{self.field[:40]} is not a slot: slots are profile_field_1..profile_field_30")
        if re.match(SLOT_PATTERN, self.field.lower()):
            self.field = self.field.lower()
            return self._typed(slot_type(self.field))
        return self._untyped()  # a label: its type is known once it is resolved to a slot

    def _untyped(self) -> Self:
        """The checks that hold whatever the field's type."""
        if self.operator in ("any", "unknown"):
            self.value = self.start = self.end = None
        elif self.operator == "between":
            if self.start is None and self.end is None and self.value not in (None, ""):
                pass  # a period in `value` alone: on_day makes it start and end, once the account's today is known
            elif self.start is None or self.end is None:
                raise ValueError(
                    f"{self.field} between needs both `start` and `end` dates, or a period alone in `value` "
                    "(e.g. 'next 14 days')"
                )
            else:
                self.value = None
        elif self.start is not None or self.end is not None:
            raise ValueError(f"`start` and `end` are only for the between operator; use `value` with {self.operator}")
        elif self.value is None or self.value == "":
            raise ValueError(f"{self.field} {self.operator} needs a `value`")
        return self

    def _typed(self, kind: SlotType) -> Self:
        if self.operator not in OPERATORS[kind]:
            raise ValueError(
                f"operator {self.operator!r} is not valid for {self.field}, a {kind} field; "
                f"use one of: {', '.join(OPERATORS[kind])}"
            )
        self._untyped()
        if self.operator in ("any", "unknown"):
            return self
        if self.operator == "between" and self.start is None:  # _untyped made sure value holds the range
            value = _as_date(cast(Scalar, self.value), f"the value for {self.field} between", words=True)
            if not _DATE_VALUE.match(value):
                self.value = value  # a period: on_day turns it into start and end
            elif " " in value:
                raise ValueError(
                    f"{self.field} between takes a period in `value` (e.g. 'next 14 days'), not one moment; "
                    "give `start` and `end` instead"
                )
            else:  # one day
                self.start, self.end, self.value = value, value, None
            return self
        if self.operator == "between":
            start, end = cast(Scalar, self.start), cast(Scalar, self.end)  # _untyped made sure both are there
            self.start, self.end = _as_date(start, "start", words=True), _as_date(end, "end", words=True)
            if _DATE_VALUE.match(self.start) and _DATE_VALUE.match(self.end) and self.start > self.end:
                raise ValueError(f"{self.field} between: start {self.start} is after end {self.end}")
            return self
        if self.operator.startswith("age_"):
            days = _as_number(cast(Scalar, self.value), "an age in days")
            if not float(days).is_integer() or days < 0:
                raise ValueError(f"{self.operator} takes a whole number of days, not {self.value!r}")
            self.value = int(days)
        elif kind == "number":
            self.value = _as_number(cast(Scalar, self.value), f"the value for {self.field}")
        elif kind == "date":
            self.value = _as_date(cast(Scalar, self.value), f"the value for {self.field}", words=True)
        else:
            self.value = str(self.value)
            if len(self.value) > TEXT_MAX_CHARS:  # no text slot holds more, so no longer value can match
                raise ValueError(
                    f"the value for {self.field} is {len(self.value)} characters; text slots hold at most "
                    f"{TEXT_MAX_CHARS}"
                )
        return self

    def for_slot(self, slot: str) -> FilterCondition:
        """This condition on `slot`, the slot its label names, checked against the slot's type.

        Raises:
            ValidationFailed: If the operator or value does not suit the slot's type.
        """
        try:
            return FilterCondition(field=slot, operator=self.operator, value=self.value, start=self.start, end=self.end)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValidationFailed(
                f"The condition on {self.field[:80]!r} ({slot}, a {slot_type(slot)} field): {problem}. "
                "Fix it and call again; nothing was sent."
            ) from None

    def on_day(self, today: date) -> FilterCondition:
        """This condition with date words resolved against `today` (the account's date).

        `greater_than` a period means after its last day, `less_than` before its first; `between`
        runs from its start's first day to its end's last day, or over the period its `value` alone names
        (then sent as start and end); `equal_to` takes one day.

        Raises:
            ValidationFailed: If `equal_to` names a period longer than a day, a period is impossible on
                `today` (a range that runs backwards, a day past year 9999), or the range runs backwards.
        """
        if self.slot is None or slot_type(self.slot) != "date":
            return self
        update: dict[str, str | None] = {}
        for key in ("value", "start", "end"):
            text = getattr(self, key)
            try:
                days = period(text, today=today) if isinstance(text, str) else None
            except ValueError as exc:  # a period past year 9999 or before year 1, a range backwards today
                raise ValidationFailed(f"{self.field} {key}: {exc}.") from None
            if days is None:
                continue
            first, last = days
            if key == "value" and self.operator == "between":
                update.update(value=None, start=first.isoformat(), end=last.isoformat())
                continue
            if key == "value" and self.operator == "equal_to" and first != last:
                raise ValidationFailed(
                    f"{self.field} equal_to matches one day, and {text!r} is {first} to {last}; use between with "
                    f"start and end {text!r} instead."
                )
            use_last = key == "end" or (key == "value" and self.operator == "greater_than")
            update[key] = (last if use_last else first).isoformat()
        resolved = self.model_copy(update=update)
        if resolved.operator == "between" and str(resolved.start) > str(resolved.end):
            raise ValidationFailed(f"{self.field} between: start {resolved.start} is after end {resolved.end}.")
        return resolved

    def applied(self, label: str | None = None) -> AppliedFilter:
        """The condition as sent, for the result to show."""
        value = self.value
        if isinstance(value, str) and len(value) > ECHO_CHARS:  # the model sent it: a reminder is enough
            value = value[: ECHO_CHARS - 1] + "…"
        return AppliedFilter(
            field=self.field,
            label=label,
            operator=self.operator,
            value=value,
            start=None if self.start is None else str(self.start),
            end=None if self.end is None else str(self.end),
        )

    def query(self, index: int) -> list[tuple[str, str]]:
        """This condition as `custom_field_filters[i][key]=value` query pairs, as Cometly documents."""
        prefix = f"custom_field_filters[{index}]"
        pairs = [(f"{prefix}[field]", self.field), (f"{prefix}[operator]", self.operator)]
        for key in ("value", "start", "end"):
            value = getattr(self, key)
            if value is not None:
                pairs.append((f"{prefix}[{key}]", str(value)))
        return pairs


class CustomField(BaseModel):
    """One custom field of the account: for Cometly a labelled slot, for HighLevel a field definition."""

    slot: str = Field(
        description="The name to pass for it where the label is not enough: Cometly's slot, e.g. profile_field_5 "
        "(tools take it or the label); HighLevel's field id (or its key)."
    )
    label: str = Field(
        description="The name the account gave it, e.g. 'Customer Plan': results key custom fields by it."
    )
    type: FieldType | None = Field(
        default=None,
        description="text, number or date (for Cometly it decides the operators, see `operators`); HighLevel "
        "fields may also be picklist (one of `values`), multi_select, radio, checkbox, text_list, phone, email, "
        "file, signature, or other (see data_type).",
    )
    key: str | None = Field(default=None, description="HighLevel: the field's key, e.g. contact.pincode.")
    data_type: str | None = Field(default=None, description="HighLevel: its data type as HighLevel names it.")
    options: list[str] | None = Field(default=None, description="HighLevel: the values a picklist field offers.")
    values: list[str] | None = Field(
        default=None,
        description="The values to match exactly (e.g. in filter_by_custom_field equal_to): a picklist's options "
        "(values_from options), or a text field's distinct values among the contacts sampled (values_from "
        "in_use; others may exist). Values in use are listed only for a field with at most 20 distinct values "
        "that at least 3 times as many sampled contacts have set, so fields of personal data (emails, names, "
        "phones) never are.",
    )
    values_from: Literal["options", "in_use"] | None = Field(
        default=None, description="Where `values` come from: the field's options, or the contacts sampled."
    )


class UnresolvedField(BaseModel):
    """A label the account has that the server could not pin to one slot: filter by one of its slots instead."""

    label: str = Field(description="The label, as the provider shows it.")
    candidates: list[str] = Field(
        default_factory=list[str],
        description="The slots it may be, e.g. profile_field_7; filter_by_custom_field sends a slot as given.",
    )
    reason: Literal["tie", "mismatch"] = Field(
        description="tie: these slots held the same values on every contact read (e.g. all empty), so the "
        "values cannot tell them apart; mismatch: its values agreed with no slot's."
    )


class CustomFields(BaseModel):
    """The custom fields of one provider's account, as the server found them."""

    provider: str = Field(description="The provider they belong to.")
    account: AccountName = Field(default=None, description=ACCOUNT_HELP)
    filterable: bool = Field(description="Whether filter_by_custom_field can filter this provider's contacts.")
    fields: list[CustomField] = Field(
        default_factory=list[CustomField],
        description="Each field as label, slot (the name to pass), type and, where known, the values to match: "
        "Cometly's labelled slots, in slot order; HighLevel's contact fields, by position; none for Clemta.",
    )
    unresolved: list[UnresolvedField] = Field(
        default_factory=list[UnresolvedField],
        description="Cometly: labels the account has that could not be pinned to one slot; filtering by such a "
        "label fails, so filter by one of its candidate slots.",
    )
    operators: dict[str, list[Operator]] = Field(
        default_factory=dict[str, list[Operator]],
        description="The operators filter_by_custom_field accepts, by field type (for the types listed).",
    )
    sampled: int | None = Field(
        default=None, description="How many contacts the values in use (values_from in_use) were read from."
    )
    checked_at: str | None = Field(default=None, description="When the server last read them (ISO 8601 UTC).")
    note: str | None = Field(default=None, description="How they were found, and what is not known.")

    @model_validator(mode="after")
    def _operators(self) -> Self:
        if not self.operators and self.filterable:
            types: dict[SlotType, None] = dict.fromkeys(
                field.type for field in self.fields if field.type in ("text", "number", "date")
            )
            slots = [slot for field in self.unresolved for slot in field.candidates if re.match(SLOT_PATTERN, slot)]
            types.update(dict.fromkeys(kind for kind in OPERATORS if kind in {slot_type(slot) for slot in slots}))
            self.operators = {kind: list(OPERATORS[kind]) for kind in types}
        return self


def custom_field(slot: str, label: str) -> CustomField:
    """The `CustomField` of a labelled slot, its type taken from the slot's number."""
    return CustomField(slot=slot, label=label, type=slot_type(slot))


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
    exact_created_at: bool = False


class Lookup(BaseModel):
    """find_contact's arguments, each stripped, None when not given; at least one is set."""

    email: str | None = None
    phone: str | None = None
    name: str | None = None
    query: str | None = None

    @property
    def matched_on(self) -> Literal["email", "phone", "name", "query"]:
        """What the lookup matches on: an exact email or phone wins over a name or a free query."""
        if self.email is not None:
            return "email"
        if self.phone is not None:
            return "phone"
        return "name" if self.name is not None else "query"

    @property
    def exact(self) -> bool:
        """Whether it asks for an exact email or phone (none found is then [not_found])."""
        return self.email is not None or self.phone is not None


class ListContactsQuery(BaseModel):
    """What `list_contacts` and `filter_by_custom_field` ask of a provider for one page."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    range: DateRange
    """The creation-date range, date words already resolved in the provider's timezone."""
    per_page: int = 50
    cursor: str | None = None
    include_all_emails: bool = False
    include_comet_tokens: bool = False
    include_custom_fields: bool = False
    use_custom_field_labels: bool = True
    conditions: list[FilterCondition] = Field(default_factory=list[FilterCondition])
    today: date
    """The account's date when the range was resolved: date words in conditions are read against it."""
    open_start: bool = False
    """start_date was left out: the range starts at the history floor, and an API that can list without a lower
    creation bound (Clemta) sends none."""
    open_end: bool = False
    """With `open_start`, end_date was left out too: the range ends now, and such an API sends no bound at all."""
    sort_by: Literal["name", "email", "created_at"] | None = None
    """A sort on the contact's own fields that a provider may ask its API for (custom-field sorts are the
    server's); a provider that does sets the page's `sorted`."""
    order: Literal["asc", "desc"] = "desc"


ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class Address(BaseModel):
    """A postal address in parts, for the providers that hold one so (HighLevel, Clemta's billing address)."""

    model_config = ConfigDict(extra="forbid")

    line1: ShortText | None = Field(
        default=None, description="Street and number, e.g. '3535 1st St N' (HighLevel address1, Clemta address_1)."
    )
    line2: ShortText | None = Field(default=None, description="Clemta only: a second address line (address_2).")
    city: ShortText | None = Field(default=None, description="HighLevel only: the city, e.g. 'Austin'.")
    district: ShortText | None = Field(default=None, description="Clemta only: the district.")
    state: ShortText | None = Field(default=None, description="The state or region, e.g. 'TX'.")
    province: ShortText | None = Field(default=None, description="Clemta only: the province.")
    postal_code: ShortText | None = Field(default=None, description="The postal code, e.g. '78701'.")
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = Field(
        default=None, description="The country as its two-letter ISO 3166-1 code, e.g. US or DE."
    )

    def given(self) -> dict[str, str]:
        """The parts that were given, by name; the country in upper case."""
        parts = {key: value for key, value in self.model_dump().items() if value is not None}
        if "country" in parts:
            parts["country"] = parts["country"].upper()
        return parts


class ContactFields(BaseModel):
    """A provider's own fields of a contact, beyond the lists every provider has; each names who takes it."""

    model_config = ConfigDict(extra="forbid")

    first_name: ShortText | None = Field(
        default=None, description="HighLevel: the first name (default: the first word of names[0])."
    )
    last_name: ShortText | None = Field(
        default=None, description="HighLevel: the last name (default: the rest of names[0])."
    )
    company_name: ShortText | None = Field(default=None, description="HighLevel: the company (companyName).")
    source: ShortText | None = Field(default=None, description="HighLevel: where the lead came from, e.g. 'webinar'.")
    website: ShortText | None = Field(default=None, description="HighLevel: the contact's website.")
    status: ShortText | None = Field(default=None, description="Clemta: the contact's status, e.g. active.")
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = Field(
        default=None, description="Clemta: a description of the contact."
    )
    tax_id: ShortText | None = Field(default=None, description="Clemta: the tax id on the billing details.")
    bcc_emails: Annotated[list[str], Field(max_length=25)] | None = Field(
        default=None, description="Clemta: addresses blind-copied on invoices."
    )

    def given(self) -> dict[str, object]:
        """The fields that were given, by name."""
        return {key: value for key, value in self.model_dump().items() if value is not None}

    @field_validator("bcc_emails")
    @classmethod
    def _bcc_emails(cls, emails: list[str] | None) -> list[str] | None:
        return None if emails is None else _valid_emails(emails)


def _valid_emails(emails: list[str]) -> list[str]:
    emails = [email.strip() for email in emails]
    bad = [email for email in emails if not _EMAIL.match(email)]
    if bad:
        raise ValueError(f"not valid email addresses: {', '.join(repr(email) for email in bad)}")
    return emails


class NewContact(BaseModel):
    """A contact to create. At least one valid email; custom fields must suit their slot's type."""

    emails: list[str]
    phones: list[str] = Field(default_factory=list[str])
    names: list[str] = Field(default_factory=list[str])
    locations: list[str] = Field(default_factory=list[str])
    custom_fields: dict[str, Scalar | list[str]] = Field(default_factory=dict[str, Scalar | list[str]])
    """By Cometly slot or label, or HighLevel field name, id or key; slots are checked here, the rest by providers."""
    contact_type: Literal["customer", "vendor"] = "customer"
    """Clemta's contact type; other providers ignore it."""
    address: Address | None = None
    tags: list[str] = Field(default_factory=list[str])
    fields: ContactFields = Field(default_factory=ContactFields)
    allow_duplicate: bool = False
    """Create it even when a contact with its first email exists."""

    @field_validator("emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        if not emails:
            raise ValueError("at least one email is required")
        return _valid_emails(emails)

    @field_validator("custom_fields")
    @classmethod
    def _custom_fields(cls, fields: dict[str, Scalar | list[str]]) -> dict[str, Scalar | list[str]]:
        checked: dict[str, Scalar | list[str]] = {}
        for name, value in fields.items():
            key = name.strip()
            if re.fullmatch(r"profile_field_\d+", key, re.IGNORECASE):  # a slot: judged here, before any request
                if not re.match(SLOT_PATTERN, key.lower()):
                    raise ValueError(f"custom field key {key!r} is not profile_field_1..profile_field_30")
                checked[key.lower()] = slot_value(key.lower(), value)
            else:  # a label (Cometly) or a field name, id or key (HighLevel): the provider resolves it
                checked[key] = value
        return checked


CustomFieldValue = Scalar | list[str]
"""A custom field's value as a call gives it: text, a number, a date, or a list (HighLevel checkboxes)."""


def slot_value(slot: str, value: object, *, name: str | None = None) -> Scalar:
    """A value checked against a Cometly slot's type: 1-15 text (at most 10,240 characters), 16-25 a number,
    26-30 a date.

    Raises:
        ValueError: The value does not suit the slot, saying why (`name` is how the call named the field).
    """
    kind = slot_type(slot)
    what = f"{name} ({slot}, a {kind} field)" if name and name != slot else f"{slot} (a {kind} slot)"
    if isinstance(value, list | dict) or value is None:
        raise ValueError(f"{what} takes one {kind} value, not {str(cast(object, value))[:40]}")
    scalar = cast(Scalar, value)
    if kind == "number":
        return _as_number(scalar, what)
    if kind == "date":
        return _as_date(scalar, what)
    text = str(scalar)
    if len(text) > TEXT_MAX_CHARS:
        raise ValueError(f"{what} is {len(text)} characters; text slots hold at most {TEXT_MAX_CHARS}")
    return text


def typed_value(value: object, kind: str | None, data_type: str | None, *, what: str) -> JsonValue:
    """A HighLevel custom field's value checked against its type where the type is clear: numbers for
    NUMERICAL/MONETORY, dates for DATE, lists for checkboxes and multi-selects; other types as given.

    Raises:
        ValueError: The value does not suit the field's type.
    """
    multiple = kind in ("checkbox", "multi_select") or (data_type or "").upper() in ("CHECKBOX", "MULTIPLE_OPTIONS")
    if multiple:
        items = cast(list[object], value) if isinstance(value, list) else [value]
        return [str(item) for item in items]
    if isinstance(value, list | dict):
        raise ValueError(f"{what} takes one value, not a list")
    scalar = cast(Scalar, value)
    if kind == "number":
        return _as_number(scalar, what)
    if kind == "date":
        return _as_date(scalar, what)
    return cast(JsonValue, value)
