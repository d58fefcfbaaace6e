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

from server.errors import ValidationFailed
from tools.dates import DateRange, period

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
    cuts: list[Cut] = Field(default_factory=list[Cut], description="Each value cut; none when whole items were.")


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


class AppliedFilter(BaseModel):
    """One condition as it was sent: its field as a slot, date words as dates."""

    field: str = Field(description="The slot filtered on, e.g. profile_field_5.")
    label: str | None = Field(default=None, description="The label the condition named, when it named one.")
    operator: str
    value: str | int | float | None = None
    start: str | None = None
    end: str | None = None


class ContactPage(BaseModel):
    """Contacts of a date range (one page, or several when max_results is given) and how to read on."""

    contacts: list[Contact] = Field(description="The contacts, newest first; empty with count_only.")
    count: int = Field(
        default=0,
        description="How many contacts this result holds; with count_only, how many match (up to max_results).",
    )
    has_more: bool = Field(description="Whether more contacts match after these.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor`, with the same other arguments, to read on."
    )
    range: Range | None = Field(default=None, description="The creation-date range used, date words resolved.")
    filters: list[AppliedFilter] | None = Field(
        default=None, description="The conditions as sent, labels resolved to slots and date words to dates."
    )
    truncated: Truncated | None = Field(default=None, description="Present when something was cut.")


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


def _as_date(value: Scalar, what: str, *, words: bool = False) -> str:
    text = str(value).strip()
    if words and period(text, today=_ANY_DAY) is not None:
        return " ".join(text.lower().replace("_", " ").split())  # resolved once the account's today is known
    if not _DATE_VALUE.match(text):
        accepted = "YYYY-MM-DD (or YYYY-MM-DD HH:MM:SS)"
        if words:
            accepted += ", YYYY-MM, or a date word: today, yesterday, last 7 days, this week, last month, ..."
        raise ValueError(f"{what} must be a date {accepted}, not {str(value)[:40]!r}")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} is not a real date: {str(value)[:40]!r}") from None
    return text


ECHO_CHARS = 200
"""How much of a condition's text value a result's `filters` repeats."""
_ANY_DAY = date(2000, 1, 1)
"""Any day will do to ask `period` whether a text is a date word at all."""

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
            "`any` = has a value, `unknown` = empty or unset."
        )
    )
    value: Scalar | None = Field(
        default=None,
        description="The value to compare with; not used by any/unknown/between. Dates are YYYY-MM-DD or a "
        "date word (today, yesterday; after/before a period with greater_than/less_than: 'last month').",
    )
    start: Scalar | None = Field(
        default=None, description="First date of a `between` range: YYYY-MM-DD, YYYY-MM or a word like 'last week'."
    )
    end: Scalar | None = Field(
        default=None, description="Last date of a `between` range: YYYY-MM-DD, YYYY-MM or a word like 'last week'."
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
            if self.start is None or self.end is None:
                raise ValueError(f"{self.field} between needs both `start` and `end` dates")
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
        runs from its start's first day to its end's last day; `equal_to` takes one day.

        Raises:
            ValidationFailed: If `equal_to` names a period longer than a day, or the range runs backwards.
        """
        if self.slot is None or slot_type(self.slot) != "date":
            return self
        update: dict[str, str] = {}
        for key in ("value", "start", "end"):
            text = getattr(self, key)
            try:
                days = period(text, today=today) if isinstance(text, str) else None
            except ValueError as exc:  # a period past year 9999 or before year 1
                raise ValidationFailed(f"{self.field} {key}: {exc}.") from None
            if days is None:
                continue
            first, last = days
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
    """One custom-field slot the account has given a label: what filter_by_custom_field can filter on."""

    slot: str = Field(description="The slot, e.g. profile_field_5; filter_by_custom_field takes it or the label.")
    label: str = Field(description="The label the account gave it, e.g. 'Customer Plan'.")
    type: SlotType = Field(description="text, number or date: it decides the operators (see `operators`).")


class CustomFields(BaseModel):
    """The custom fields of one provider's account, as the server found them."""

    provider: str = Field(description="The provider they belong to.")
    filterable: bool = Field(description="Whether filter_by_custom_field can filter this provider's contacts.")
    fields: list[CustomField] = Field(
        default_factory=list[CustomField], description="The labelled slots, in slot order."
    )
    operators: dict[str, list[Operator]] = Field(
        default_factory=dict[str, list[Operator]],
        description="The operators filter_by_custom_field accepts, by field type (for the types listed).",
    )
    checked_at: str | None = Field(default=None, description="When the server last read them (ISO 8601 UTC).")
    note: str | None = Field(default=None, description="How they were found, and what is not known.")

    @model_validator(mode="after")
    def _operators(self) -> Self:
        if not self.operators:
            types: dict[SlotType, None] = dict.fromkeys(field.type for field in self.fields)
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
