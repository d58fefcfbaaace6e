"""update_contact's vocabulary: what a call asks to change, and what changed.

An update is a list of set/add/remove changes, each of which a repeat leaves as it is, so the tool
is idempotent. Providers read the contact first, apply the changes here (`merged`), send only what
differs, read the contact back and compare (`compared`): a value the call did not name that moved,
or a named one that did not land as sent, is a `Conflict` naming both values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator

from ..server.errors import Conflict
from .models import Contact, Scalar, ShortText, _valid_emails  # pyright: ignore[reportPrivateUsage]

CustomValue = Scalar | list[str] | None
"""A custom field's new value: text, a number, a date (YYYY-MM-DD), a list (HighLevel checkboxes), or null to clear."""
Collection = Literal["emails", "phones", "names", "locations", "tags"]
COLLECTIONS: tuple[Collection, ...] = ("emails", "phones", "names", "locations", "tags")
_Value = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Values = Annotated[list[_Value], Field(max_length=25)]


class UpdateFields(BaseModel):
    """A provider's own scalar fields to set; a field given as null is cleared, one left out is untouched."""

    model_config = ConfigDict(extra="forbid")

    first_name: ShortText | None = Field(default=None, description="HighLevel: the first name (firstName).")
    last_name: ShortText | None = Field(default=None, description="HighLevel: the last name (lastName).")
    company_name: ShortText | None = Field(
        default=None,
        description="HighLevel: the company; its update endpoint cannot change it, so it is refused with what "
        "to do instead.",
    )
    source: ShortText | None = Field(default=None, description="HighLevel: where the lead came from.")
    website: ShortText | None = Field(default=None, description="HighLevel: the contact's website.")
    status: ShortText | None = Field(default=None, description="Clemta: the contact's status, e.g. active.")
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = Field(
        default=None, description="Clemta: a description of the contact."
    )
    tax_id: ShortText | None = Field(default=None, description="Clemta: the tax id on the billing details.")
    bcc_emails: Annotated[list[str], Field(max_length=25)] | None = Field(
        default=None, description="Clemta: addresses blind-copied on invoices (the whole list)."
    )
    contact_type: Literal["customer", "vendor"] | None = Field(
        default=None, description="Clemta: whether the contact is a customer or a vendor."
    )

    def given(self) -> dict[str, object]:
        """The fields the call named, null (clear) included, by name."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    @field_validator("bcc_emails")
    @classmethod
    def _bcc_emails(cls, emails: list[str] | None) -> list[str] | None:
        return None if emails is None else _valid_emails(emails)


class ContactChanges(BaseModel):
    """What one update_contact call asks to change on one contact."""

    contact_id: str
    custom_fields: dict[str, CustomValue] = Field(default_factory=dict[str, CustomValue])
    add: dict[Collection, list[str]] = Field(default_factory=dict[Collection, list[str]])
    remove: dict[Collection, list[str]] = Field(default_factory=dict[Collection, list[str]])
    fields: UpdateFields = Field(default_factory=UpdateFields)

    @field_validator("add", "remove")
    @classmethod
    def _no_empty_lists(cls, lists: dict[Collection, list[str]]) -> dict[Collection, list[str]]:
        return {key: values for key, values in lists.items() if values}

    @field_validator("add")
    @classmethod
    def _emails(cls, lists: dict[Collection, list[str]]) -> dict[Collection, list[str]]:
        if "emails" in lists:
            lists["emails"] = _valid_emails(lists["emails"])
        return lists

    def given(self) -> list[str]:
        """The arguments the call gave, as `Provider.update_takes` names them (`add_emails`, `fields.source`, ...)."""
        given = ["custom_fields"] if self.custom_fields else []
        given += [f"add_{key}" for key in self.add]
        given += [f"remove_{key}" for key in self.remove]
        given += [f"fields.{name}" for name in sorted(self.fields.given())]
        return given

    @property
    def empty(self) -> bool:
        return not self.given()


class FieldChange(BaseModel):
    """One field the call named: its value before and after, and whether it changed."""

    field: str = Field(
        description="The field: emails, phones, names, locations, tags, a custom field by label (or slot / id), "
        "or a provider field such as source."
    )
    before: JsonValue = Field(default=None, description="Its value before the call (absent: unset).")
    after: JsonValue = Field(default=None, description="Its value after the call, as read back (absent: unset).")
    changed: bool = Field(description="False when it already had the value asked for: nothing was sent for it.")


class ContactUpdate(BaseModel):
    """update_contact's answer: the contact as it is now, and each named field before and after."""

    contact: Contact = Field(description="The contact after the update, as read back from the provider.")
    changes: list[FieldChange] = Field(description="Each field the call named, in the order given.")
    changed: bool = Field(description="Whether anything was written; false means nothing to change, nothing sent.")
    note: str | None = Field(default=None, description="What else to know: a merged id, nothing to change.")


# --- Applying and comparing ---------------------------------------------------------------------------------------

Same = Callable[[str, str], bool]


def same_text(left: str, right: str) -> bool:
    return left.strip() == right.strip()


def same_email(left: str, right: str) -> bool:
    return left.strip().casefold() == right.strip().casefold()


def merged_list(current: Sequence[str], add: Sequence[str], remove: Sequence[str], same: Same = same_text) -> list[str]:
    """`current` without `remove`, then `add` that it does not hold yet, in order.

    The first item is the primary value: removing it promotes the next; adding keeps it (added values
    go last). To make a value primary, remove the ones before it.
    """
    kept = [value for value in current if not any(same(value, gone) for gone in remove)]
    for value in add:
        if not any(same(value, held) for held in kept):
            kept.append(value)
    return kept


_DATE_WITH_ZERO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]00:00:00(?:\.0+)?Z?)?$")


def same_value(left: JsonValue, right: JsonValue) -> bool:
    """Whether two values read or sent are one value written two ways: 25 and "25.0", a date with a zero time,
    blank and null."""
    if left in (None, "", []) and right in (None, "", []):
        return True
    if isinstance(left, list) and isinstance(right, list):
        return sorted(str(item).casefold() for item in left) == sorted(str(item).casefold() for item in right)
    if left is None or right is None or isinstance(left, dict | list) or isinstance(right, dict | list):
        return left == right
    if isinstance(left, bool) or isinstance(right, bool):
        return left == right
    if left == right:
        return True
    try:
        return float(left) == float(right)
    except (TypeError, ValueError):
        pass
    dates = [_DATE_WITH_ZERO_TIME.match(str(value).strip()) for value in (left, right)]
    if dates[0] and dates[1]:
        return dates[0].group(1) == dates[1].group(1)
    return str(left).strip() == str(right).strip()


def same_state(left: JsonValue, right: JsonValue, same: Same = same_text) -> bool:
    """Whether two states of one field agree: lists item by item in order (with `same`), scalars by `same_value`."""
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(str(a), str(b)) for a, b in zip(left, right, strict=True))
    return same_value(left, right)


def compared(
    label: str,
    contact_id: str,
    before: Mapping[str, JsonValue],
    intended: Mapping[str, JsonValue],
    after: Mapping[str, JsonValue],
    *,
    named: Sequence[str],
    sameness: Mapping[str, Same] | None = None,
    exempt: Sequence[str] = (),
) -> str | None:
    """Check a read-back against the read before and what was sent.

    Args:
        label: The vendor, for the message.
        contact_id: The contact's id, for the message.
        before: Every field's value read before the write.
        intended: The same with the change applied (what the write should have left).
        after: Every field's value read back after the write.
        named: The fields the call named.
        sameness: How to compare the items of a list field (emails by case, ...).
        exempt: Fields the vendor may change along with a named one (a lower-cased copy, a derived name).

    Returns:
        A note for the result when a named field was cleared and the vendor kept or filled in a value of its
        own (a default); the result's `after` shows it as read.

    Raises:
        Conflict: A field the call did not name changed, or one it named is not as sent; the message
            names each with its values.
    """
    sameness = sameness or {}
    moved: list[str] = []
    filled: list[str] = []
    for key in dict.fromkeys([*before, *after]):
        same = sameness.get(key.partition(".")[0], same_text)
        if key in exempt:
            continue
        if key in named:
            if same_state(intended.get(key), after.get(key), same):
                continue
            if intended.get(key) in (None, "", []) and not same_state(before.get(key), after.get(key), same):
                # A clear answered with a value the contact did not have: the vendor's own default (Clemta's
                # docs do not say whether a status may be empty). Shown as read, not a conflict.
                filled.append(
                    f"{key.removeprefix('fields.')} was cleared and {label} set it to {_shown(after.get(key))}"
                )
            elif intended.get(key) in (None, "", []):
                filled.append(
                    f"{key.removeprefix('fields.')} cannot be cleared in {label}: it kept {_shown(after.get(key))}"
                )
            else:
                moved.append(f"{key} was sent as {_shown(intended.get(key))} but reads {_shown(after.get(key))}")
        elif not same_state(before.get(key), after.get(key), same):
            moved.append(f"{key} was {_shown(before.get(key))} and is now {_shown(after.get(key))}")
    if moved:
        raise Conflict(
            f"{label} contact {contact_id} changed while it was being updated (someone else is editing it): "
            f"{'; '.join(moved)}. The update was sent; read the contact with get_contact, check these fields, and "
            "call update_contact again for any that should differ."
        )
    return "; ".join(filled) + "." if filled else None


def _shown(value: JsonValue) -> str:
    text = "unset" if value in (None, "", []) else repr(value)
    return text if len(text) <= 120 else text[:119] + "…"


def changes_of(
    named: Sequence[tuple[str, str]],
    before: Mapping[str, JsonValue],
    after: Mapping[str, JsonValue],
    *,
    sameness: Mapping[str, Same] | None = None,
) -> list[FieldChange]:
    """The result's `changes`: for each named field (state key, name to show), its value before and after."""
    sameness = sameness or {}
    changes: list[FieldChange] = []
    for key, shown in named:
        same = sameness.get(key.partition(".")[0], same_text)
        old, new = before.get(key), after.get(key)
        changes.append(FieldChange(field=shown, before=old, after=new, changed=not same_state(old, new, same)))
    return changes


def nothing_to_change(label: str) -> str:
    return f"Nothing to change: the contact already has every value asked for, so nothing was sent to {label}."
