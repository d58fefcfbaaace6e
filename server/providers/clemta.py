"""Clemta: get a contact, list a company's contacts, find contacts by email or name, create one.

Requests carry `X-API-Key`; answers come in `{"success", "message", "data"}` and errors add
`{"error": {"code", "details"}}`. Contact ids are 24 hex characters, times are Unix seconds.
`CONTACT_KEYS` says where each key of a contact goes. Clemta limits requests per API key across
its endpoints, so every request spends one budget, `clemta.api_key`.

Listing maps the tools' arguments onto what Clemta's OpenAPI file offers:
- paging is `skip`/`limit` (at most 100 a page); the tools' opaque `cursor` carries the next `skip`;
- the date range's start becomes `created_at=gt` with `created_at_value` one second before it, and
  its end `end_date` (both Unix seconds); results are sorted `created_at desc`. How Clemta combines
  the two is undocumented, so contacts created after the range's end are still dropped here;
- Clemta's times are absolute (Unix seconds); date ranges and date words are read in `CLEMTA_TIMEZONE` (UTC).

`find_contacts` uses the list's `search` (name or email) and keeps only the contacts that really
match (the exact email, ignoring case; or the name or query, folded, within the name or email):
the search's own matching is undocumented.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar, cast
from zoneinfo import ZoneInfo

import httpx
import phonenumbers
from pydantic import JsonValue, ValidationError

from ...tools.models import (
    SORT_COVERS_ALL,
    ClemtaDetails,
    Contact,
    ContactMatches,
    ContactPage,
    CustomFields,
    GetContactQuery,
    ListContactsQuery,
    Lookup,
    NewContact,
    Sorted,
    iso_utc,
)
from ...tools.updates import (
    Collection,
    ContactChanges,
    ContactUpdate,
    Same,
    changes_of,
    compared,
    merged_list,
    nothing_to_change,
    same_email,
    same_value,
)
from ..budgets import Budgets
from ..cursors import decode_fields
from ..errors import ContactsError, NotFound, NotSupported, PermissionDenied, ValidationFailed
from ..http import Upstream, path, quoted
from ..settings import ClemtaSettings, Rate, Settings
from .base import (
    ID_SOURCES,
    Capability,
    Clock,
    Destination,
    Provider,
    created,
    look_up_before_creating_again,
    stripped,
    unexpected_shape,
    unmapped,
    upstream_id,
)
from .matching import EXACT, fold, rank, same_phone

_CONTACT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
MAX_LIMIT = 100
"""Clemta's page size is capped here: its bounds are unpublished, and 100 is what its examples use."""
_ADDRESS_KEYS = ("address_1", "address_2", "district", "postal_code", "state", "province", "country")
BUDGET = "clemta.api_key"
SEARCH_PAGES = 5
"""The most pages of search results (100 each) one find_contacts reads, over its plain and folded searches."""
MAX_SKIP = 2**31 - 1
"""The largest `skip` a cursor may carry: no company lists two billion contacts, so a bigger one is forged."""
_CURSOR_KEYS = frozenset({"skip"})

CONTACT_KEYS: Mapping[str, Destination] = {
    "id": "id",
    "full_name": "names",
    "email": "emails",
    "cc_emails": ("emails", "clemta.cc_emails"),
    "created_at": "created_at",
    "updated_at": "updated_at",
}
"""Where each key of Clemta's contact goes; any other key (`type`, `status`, `description`,
`bcc_emails`, `billing`) goes, as sent, to the contact's `clemta` section. `billing`'s phone and
address also make the contact's `phones` and `locations`."""

_BILLING_ADDRESS = {
    "line1": "address_1",
    "line2": "address_2",
    "district": "district",
    "state": "state",
    "province": "province",
    "postal_code": "postal_code",
    "country": "iso_code",
}
"""create_contact's address parts and the billing keys Clemta takes them under."""


def _read_error(body: Any) -> str | None:
    """Clemta errors are `{"message", "error": {"code", "details"}}`."""
    if not isinstance(body, dict):
        return None
    raw = cast(dict[str, Any], body)
    error = raw.get("error")
    code = cast(dict[str, Any], error).get("code") if isinstance(error, dict) else None
    details = cast(dict[str, Any], error).get("details") if isinstance(error, dict) else None
    parts = [str(part) for part in (raw.get("message"), details) if part]
    text = ": ".join(parts)
    return f"{text} ({code})" if code else text or None


def encode_cursor(skip: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"skip": skip}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The `skip` a cursor stands for.

    Raises:
        ValidationFailed: If the cursor was not made by this server.
    """
    fields = decode_fields(cursor, _CURSOR_KEYS)
    skip = fields["skip"] if fields else None
    if isinstance(skip, int) and 0 <= skip <= MAX_SKIP:
        return skip
    raise ValidationFailed("cursor is not one this server returned; pass next_cursor exactly as it came back.")


class Clemta(Provider):
    """Clemta contacts of one company."""

    name = "clemta"
    label = "Clemta"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"get_contact", "list_contacts", "find_contact", "create_contact", "update_contact"}
    )
    instead: ClassVar[Mapping[str, str]] = {
        "filter_by_custom_field": "Clemta contacts have no custom fields: list them with list_contacts over a "
        "date range, or look one up with find_contact (name or email)",
    }
    default_budgets: ClassVar[Mapping[str, tuple[Rate, ...]]] = {BUDGET: (Rate(100, 60.0),)}
    """Clemta counts per API key across endpoints; no number is published ("100 a minute" is its example)."""
    create_takes: ClassVar[frozenset[str]] = frozenset(
        {
            "phones",
            "names",
            *(f"address.{part}" for part in _BILLING_ADDRESS),
            *(f"fields.{name}" for name in ("status", "description", "tax_id", "bcc_emails")),
        }
    )
    update_takes: ClassVar[frozenset[str]] = frozenset(
        {
            *(f"{verb}_{key}" for verb in ("add", "remove") for key in ("emails", "phones", "names")),
            *(f"fields.{name}" for name in ("status", "description", "tax_id", "bcc_emails", "contact_type")),
        }
    )

    def __init__(self, settings: ClemtaSettings, upstream: Upstream) -> None:
        self._company = settings.company_id or ""
        self._zone = ZoneInfo(settings.timezone)
        self._upstream = upstream

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    async def custom_fields(self, *, refresh: bool = False) -> CustomFields:
        return CustomFields(
            provider=self.name,
            filterable=False,
            note="Clemta contacts have no custom fields: its API knows type, status, description, emails and billing.",
        )

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return settings.clemta.configured

    @classmethod
    def account(cls, settings: Settings) -> str:
        return f"clemta\0{settings.clemta.key()}"  # per key, whichever company it reads

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        budgets: Budgets,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> Clemta:
        upstream = cls._open_upstream(
            settings,
            settings.clemta,
            headers={"X-API-Key": settings.clemta.key()},
            read_error=_read_error,
            budgets=budgets,
            transport=transport,
        )
        return cls(settings.clemta, upstream)

    async def aclose(self) -> None:
        await self._upstream.aclose()

    def _need_company(self, tool: str) -> str:
        if not self._company:
            raise ValidationFailed(
                f"Clemta's {tool} needs a company id, and CLEMTA_COMPANY_ID is not set; "
                "the person running this server must set it."
            )
        return self._company

    async def get_contact(self, query: GetContactQuery) -> Contact:
        contact_id = query.contact_id.strip()
        if not _CONTACT_ID.match(contact_id):
            raise ValidationFailed(
                f"contact_id {query.contact_id[:40]!r} is not a Clemta contact id; ids are 24 hex characters "
                "such as 64b8f1a2e4b0c8d9f0123456 and come from list_contacts."
            )
        body = await self._upstream.request(
            BUDGET,
            "GET",
            path("contacts", contact_id),
            not_found=f"Clemta has no contact {contact_id}; {ID_SOURCES}.",
        )
        return self._contact(self._data(body, "a contact"))

    async def list_contacts(self, query: ListContactsQuery) -> ContactPage:
        if query.conditions:
            raise self._unsupported("filter_by_custom_field")
        company = self._need_company("list_contacts")
        until = int(query.range.aware()[1].timestamp())
        skip = decode_cursor(query.cursor) if query.cursor else 0
        raw_items, total = await self._contacts(self._list_params(query, company, skip=skip))
        contacts = [
            self._contact(item)
            for item in raw_items
            if not (isinstance(item.get("created_at"), int | float) and item["created_at"] > until)
        ]
        fetched = skip + len(raw_items)
        more = total is not None and fetched < total and bool(raw_items)
        return ContactPage(
            contacts=contacts,
            next_cursor=encode_cursor(fetched) if more else None,
            has_more=more,
            # Clemta's total counts what its filter matched: one it sent past the range's end (how end_date
            # combines with created_at is undocumented) means the total counts those too, so it is not given.
            total=total if len(contacts) == len(raw_items) else None,
            sorted=Sorted(by="created_at", order=query.order, covers=SORT_COVERS_ALL)
            if query.sort_by == "created_at"
            else None,
        )

    def _list_params(self, query: ListContactsQuery, company: str, *, skip: int) -> list[tuple[str, str]]:
        """The list request of `query`'s page at `skip`.

        Clemta sorts by created_at when asked (whole seconds, an order every page continues); by full_name or
        email its collation and where it puts a missing value are undocumented, so those sorts are the
        server's, over the newest first. All history sends no creation bound, or only the end's.
        """
        start, end = query.range.aware()
        until = int(end.timestamp())
        order = query.order if query.sort_by == "created_at" else "desc"
        params = [
            (key, order if key == "order" else value)
            for key, value in self._page(company, skip=skip, limit=min(query.per_page, MAX_LIMIT))
        ]
        if not query.open_start:
            params += [
                ("created_at", "gt"),
                ("created_at_value", str(int(start.timestamp()) - 1)),
                ("end_date", str(until)),
            ]
        elif not query.open_end:
            params += [("created_at", "lt"), ("created_at_value", str(until + 1))]
        return params

    async def find_contacts(self, lookup: Lookup, *, limit: int) -> ContactMatches:
        """The contacts matching `lookup`, found with the list's `search` (name or email) and checked here.

        An email keeps the contacts whose email or cc address is that email, ignoring case (none is
        `NotFound`). A name or query keeps those whose name or email contains it, folded (any case,
        accents ignored), best first: the whole name, then its start, then anywhere; newest first
        within. When folding changes the text, the folded text is searched too. A phone alone is
        refused: Clemta documents its search over names and emails only, so a search for a number
        would miss contacts that have it. A phone given with an email or name must be the contact's
        billing phone. At most `SEARCH_PAGES` pages of 100 are read in all.

        Raises:
            NotSupported: Only a phone was given.
            ValidationFailed: Nothing to look for, or no company id.
            NotFound: No contact has the email.
            ContactsError: Other classified failures of the upstream requests.
        """
        if lookup.email is None and lookup.name is None and lookup.query is None:
            if lookup.phone is not None:
                raise NotSupported(
                    "Clemta's search matches names and emails, not phone numbers; give the contact's email or "
                    "name (with the phone too, to keep only contacts with that billing phone)."
                )
            raise ValidationFailed("Give an email, a name or a query to look for.")
        company = self._need_company("find_contact")
        text = (lookup.email or lookup.name or lookup.query or "").strip()
        if not text:
            raise ValidationFailed("Give an email, a name or a query to look for.")
        searches = [text, *([folded] if (folded := fold(text)) != text.casefold() else [])]
        seen: dict[str, dict[str, Any]] = {}
        reported: list[int | None] = []
        read, bounded = 0, False
        for search in searches:
            skip = 0
            while True:
                if read == SEARCH_PAGES:
                    bounded = True
                    break
                params = [*self._page(company, skip=skip, limit=MAX_LIMIT), ("search", search)]
                raw_items, total = await self._contacts(params)
                read += 1
                if skip == 0:
                    reported.append(total)
                for item in raw_items:
                    item_id = upstream_id(item.get("id"))
                    if item_id is None:
                        raise unexpected_shape(self.label, "a contact list", "a contact without an `id`")
                    seen.setdefault(item_id, item)
                skip += len(raw_items)
                if not raw_items or total is None or skip >= total:
                    break
        ranked = sorted(
            ((found, item) for item in seen.values() if (found := _fits(item, lookup, text)) is not None),
            key=lambda pair: (pair[0], -_created(pair[1])),
        )
        where = f"among the first {read * MAX_LIMIT} its search returned" if bounded else ""
        if lookup.email is not None and not ranked:
            also = " and that phone" if lookup.phone is not None else ""
            raise NotFound(
                f"Clemta has no contact with email {lookup.email!r}{also}{' ' + where if where else ''}; check it, "
                "or look by name with find_contact."
            )
        # Clemta's own count stands only when it counted one search and every contact read fits.
        exact = len(searches) == 1 and len(ranked) == len(seen) and reported[:1] != [None]
        total = cast(int, reported[0]) if exact and reported else len(ranked)
        note = None
        if bounded:
            counted = (
                "total is Clemta's own count"
                if exact
                else "total counts those of them that fit, so it is a lower bound"
            )
            note = (
                f"Clemta's search matched more than the {read * MAX_LIMIT} newest contacts read, and only those were "
                f"ranked; {counted}: narrow the name or query to see the rest."
            )
        return ContactMatches(
            contacts=[self._contact(item) for _, item in ranked[:limit]],
            total=max(total, len(ranked)),
            matched_on=lookup.matched_on,
            source="live",
            as_of=None,
            note=note,
        )

    def _page(self, company: str, *, skip: int, limit: int) -> list[tuple[str, str]]:
        return [
            ("company_id", company),
            ("skip", str(skip)),
            ("limit", str(limit)),
            ("sort", "created_at"),
            ("order", "desc"),
        ]

    async def _contacts(self, params: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the list: its contacts as sent, and the `total` Clemta counts (None when absent)."""
        body = await self._upstream.request(BUDGET, "GET", path("contacts"), params=params)
        data = self._data(body, "a contact list")
        items = data.get("contacts")
        if not isinstance(items, list):
            raise unexpected_shape(self.label, "a contact list", "no `data.contacts` array")
        total = data.get("total")
        raw_items = [cast(dict[str, Any], item) for item in cast(list[Any], items) if isinstance(item, dict)]
        return raw_items, total if isinstance(total, int) and not isinstance(total, bool) else None

    def check_create(self, contact: NewContact) -> None:
        self._need_company("create_contact")
        if not contact.names:
            raise ValidationFailed("Clemta needs the contact's name: pass names (names[0] becomes its full_name).")
        self._refuse_what_it_cannot_hold(contact)
        if len(contact.phones) > 1:
            raise ValidationFailed("A Clemta contact holds one phone number (on its billing details); pass one.")

    async def create_contact(self, contact: NewContact) -> Contact:
        self.check_create(contact)
        company = self._need_company("create_contact")
        payload = _create_body(contact, company)
        unsure = look_up_before_creating_again(contact.emails[0])
        body = await self._upstream.request(BUDGET, "POST", path("contacts"), json=payload, unsure=unsure)
        with created(unsure):
            return self._contact(self._data(body, "a contact"))

    async def _read_raw(self, contact_id: str) -> dict[str, Any]:
        body = await self._upstream.request(
            BUDGET,
            "GET",
            path("contacts", contact_id),
            not_found=f"Clemta has no contact {contact_id}; ids come from list_contacts or find_contact. "
            "Nothing was sent.",
        )
        return self._data(body, "a contact")

    async def update(self, changes: ContactChanges) -> ContactUpdate:
        """Read, merge, `PATCH` the whole merged contact, read back and compare.

        Clemta's PATCH requires `type`, `full_name`, `email` and `company_id` every time and does not say
        whether optional keys left out are cleared or kept, so everything read is sent back with the change
        applied (a cleared value as "" or []): either way, nothing not named is lost. Nothing is sent when
        every value is already as asked.
        """
        if changes.custom_fields:
            raise ValidationFailed(
                "Clemta contacts have no custom fields (its API knows type, status, description, emails and "
                "billing); leave custom_fields out, or use fields for status, description, tax_id, bcc_emails or "
                "contact_type. Nothing was sent."
            )
        self._refuse_what_it_cannot_update(changes)
        company = self._need_company("update_contact")
        contact_id = changes.contact_id.strip()
        if not _CONTACT_ID.match(contact_id):
            raise ValidationFailed(
                f"contact_id {changes.contact_id[:40]!r} is not a Clemta contact id; ids are 24 hex characters "
                "such as 64b8f1a2e4b0c8d9f0123456 and come from list_contacts. Nothing was sent."
            )
        raw = await self._read_raw(contact_id)
        before = _update_state(raw)
        intended = dict(before)
        named: list[tuple[str, str]] = []
        lists: tuple[Collection, ...] = ("emails", "phones", "names")
        for key in lists:
            add, remove = changes.add.get(key, []), changes.remove.get(key, [])
            if not add and not remove:
                continue
            current = cast(list[str], before[key])
            merged = merged_list(current, add, remove, _SAMENESS.get(key, _same))
            if key != "emails" and len(merged) > 1:
                one = key.removesuffix("s")
                raise ValidationFailed(
                    f"A Clemta contact holds one {one}, and contact {contact_id} has {current[0]!r}; to replace it, "
                    f"pass remove_{key}=[{current[0]!r}] with add_{key} in the same call. Nothing was sent."
                )
            if key != "phones" and not merged:
                raise ValidationFailed(
                    f"A Clemta contact needs a{'n' if key == 'emails' else ''} {key.removesuffix('s')}: add another "
                    f"in the same call to replace {current[0]!r}. Nothing was sent."
                )
            intended[key] = merged
            named.append((key, key))
        for name, value in changes.fields.given().items():
            intended[f"fields.{name}"] = [] if name == "bcc_emails" and value is None else value
            named.append((f"fields.{name}", name))
        keys = [key for key, _ in named]
        if all(_same_state(before.get(key), intended.get(key), key) for key in keys):
            return ContactUpdate(
                contact=self._contact(raw),
                changes=changes_of(named, before, before, sameness=_SAMENESS),
                changed=False,
                note=nothing_to_change(self.label),
            )
        for key, theirs in (("names", "full_name"), ("emails", "email")):
            if not intended[key]:  # PATCH requires both every time; a contact read without one cannot be sent back
                raise ValidationFailed(
                    f"Clemta's update requires the contact's {theirs} every time, and contact {contact_id} has none; "
                    f"give one with add_{key} in the same call. Nothing was sent."
                )
        payload = _patch_body(raw, intended, company)
        again = "read it with get_contact to see whether it took effect (calling update_contact again is safe)"
        await self._upstream.request(BUDGET, "PATCH", path("contacts", contact_id), json=payload, unsure=again)
        raw_after = await self._read_raw(contact_id)
        after = _update_state(raw_after)
        # Clemta's billing email may follow the contact's email; its phone parts are compared as the phone.
        exempt = ["billing.email"] if "emails" in keys else []
        note = compared(self.label, contact_id, before, intended, after, named=keys, sameness=_SAMENESS, exempt=exempt)
        return ContactUpdate(
            contact=self._contact(raw_after),
            changes=changes_of(named, before, after, sameness=_SAMENESS),
            changed=True,
            note=note,
        )

    def _data(self, body: Any, what: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise unexpected_shape(self.label, what, "not an object")
        raw = cast(dict[str, Any], body)
        if raw.get("success") is False:
            raise self._failure(raw)
        data = raw.get("data")
        if not isinstance(data, dict):
            raise unexpected_shape(self.label, what, "no `data` object")
        return cast(dict[str, Any], data)

    def _failure(self, body: dict[str, Any]) -> ContactsError:
        """A `success: false` answer that came with a 2xx status, classified by its error code."""
        message = quoted(_read_error(body) or "no message")
        error = body.get("error")
        code = str(cast(dict[str, Any], error).get("code", "")) if isinstance(error, dict) else ""
        if code in ("NOT_FOUND", "CONTACT_NOT_FOUND"):  # the OpenAPI file and the docs pages name it apart
            return NotFound(f"Clemta: {message}")
        if code in ("ACCESS_DENIED", "COMPANY_NOT_FOUND"):
            return PermissionDenied(f"Clemta refused: {message}")
        return ValidationFailed(f"Clemta rejected the request: {message}")

    def _contact(self, raw: dict[str, Any]) -> Contact:
        contact_id = upstream_id(raw.get("id"))
        if contact_id is None:
            raise unexpected_shape(self.label, "a contact", "no `id`")
        billing = cast(dict[str, Any], raw["billing"]) if isinstance(raw.get("billing"), dict) else {}
        emails: list[str] = []
        cc = raw.get("cc_emails")
        for email in [raw.get("email"), *(cast(list[Any], cc) if isinstance(cc, list) else [])]:
            if (text := stripped(email)) and text not in emails:
                emails.append(text)
        phone = _billing_phone_of(raw)
        address = ", ".join(text for key in _ADDRESS_KEYS if (text := stripped(billing.get(key))))
        section = unmapped(raw, CONTACT_KEYS)
        if isinstance(raw.get("cc_emails"), list):
            section["cc_emails"] = cast(JsonValue, raw["cc_emails"])
        if billing:
            section["billing"] = {k: cast(JsonValue, v) for k, v in billing.items() if v not in (None, "")} or None
        try:
            details = ClemtaDetails.model_validate({k: v for k, v in section.items() if v not in (None, "", [])})
        except ValidationError:
            raise unexpected_shape(self.label, "a contact", "fields of unexpected types") from None
        return Contact(
            id=contact_id,
            provider=self.name,
            created_at=iso_utc(raw.get("created_at")),
            updated_at=iso_utc(raw.get("updated_at")),
            emails=emails,
            phones=[phone] if phone else [],
            names=[name] if (name := stripped(raw.get("full_name"))) else [],
            locations=[address] if address else [],
            clemta=details if details.model_dump(exclude_none=True) else None,
        )


def _create_body(contact: NewContact, company: str) -> dict[str, Any]:
    """The create body: each argument under the key Clemta documents for it, the phone split as it keeps it."""
    fields = contact.fields
    payload: dict[str, Any] = {
        "type": contact.contact_type,
        "full_name": contact.names[0],
        "email": contact.emails[0],
        "company_id": company,
    }
    if len(contact.emails) > 1:
        payload["cc_emails"] = contact.emails[1:]
    for name in ("status", "description", "bcc_emails"):
        value = getattr(fields, name)
        if value:
            payload[name] = value
    address = contact.address.given() if contact.address else {}
    billing: dict[str, str] = {_BILLING_ADDRESS[part]: value for part, value in address.items()}
    if contact.phones:
        billing.update(billing_phone(contact.phones[0], country=address.get("country")))
    if fields.tax_id:
        billing["tax_id"] = fields.tax_id
    if billing:
        payload["billing"] = billing
    return payload


_UNCOMPARED = frozenset({"id", "updated_at", "created_at", "type", "status", "description", "full_name", "email"})
_UNCOMPARED_BILLING = frozenset({"phone", "phone_code", "tax_id"})


def _same(left: str, right: str) -> bool:
    return left.strip() == right.strip()


_SAMENESS: Mapping[str, Same] = {"emails": same_email, "phones": same_phone}


def _same_state(left: Any, right: Any, key: str) -> bool:
    if isinstance(left, list) and isinstance(right, list):
        items_left, items_right = cast(list[Any], left), cast(list[Any], right)
        same = _SAMENESS.get(key, _same)
        return len(items_left) == len(items_right) and all(
            same(str(a), str(b)) for a, b in zip(items_left, items_right, strict=True)
        )
    return same_value(cast(JsonValue, left), cast(JsonValue, right))


def _update_state(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What an update compares of a Clemta contact: emails (email then cc_emails), its phone and name, the
    fields update_contact sets, and every other key and billing key as sent."""
    billing = cast(dict[str, Any], raw["billing"]) if isinstance(raw.get("billing"), dict) else {}
    cc = raw.get("cc_emails")
    bcc = raw.get("bcc_emails")
    state: dict[str, Any] = {
        "emails": [
            text
            for email in [raw.get("email"), *(cast(list[Any], cc) if isinstance(cc, list) else [])]
            if (text := stripped(email))
        ],
        "phones": [phone] if (phone := _billing_phone_of(dict(raw))) else [],
        "names": [name] if (name := stripped(raw.get("full_name"))) else [],
        "fields.status": stripped(raw.get("status")),
        "fields.description": stripped(raw.get("description")),
        "fields.tax_id": stripped(billing.get("tax_id")),
        "fields.bcc_emails": [str(item) for item in cast(list[Any], bcc)] if isinstance(bcc, list) else [],
        "fields.contact_type": stripped(raw.get("type")),
    }
    state.update(
        {f"other.{key}": value for key, value in raw.items() if key not in _UNCOMPARED and key not in CONTACT_KEYS}
    )
    state.pop("other.billing", None)
    state.pop("other.bcc_emails", None)
    state.update({f"billing.{key}": value for key, value in billing.items() if key not in _UNCOMPARED_BILLING})
    return state


def _patch_body(raw: Mapping[str, Any], intended: Mapping[str, Any], company: str) -> dict[str, Any]:
    """The whole contact as read, with the change applied: the four keys PATCH requires and every optional one
    (a cleared text as "", a cleared list as [])."""
    emails = cast(list[str], intended["emails"])
    billing = {
        str(key): value
        for key, value in (cast(dict[str, Any], raw["billing"]) if isinstance(raw.get("billing"), dict) else {}).items()
        if isinstance(value, str) and value.strip()
    }
    phones = cast(list[str], intended["phones"])
    if phones != _update_state(raw)["phones"]:  # the phone is re-split only when it changes: kept as read otherwise
        if phones:
            billing.update(billing_phone(phones[0], country=stripped(billing.get("iso_code"))))
        else:
            billing.update({"phone": "", "phone_code": ""})
    billing["tax_id"] = intended["fields.tax_id"] or ""
    return {
        "type": intended["fields.contact_type"] or "customer",
        "full_name": cast(list[str], intended["names"])[0],
        "email": emails[0],
        "company_id": company,
        "status": intended["fields.status"] or "",
        "description": intended["fields.description"] or "",
        "cc_emails": emails[1:],
        "bcc_emails": intended["fields.bcc_emails"] or [],
        "billing": billing,
    }


def billing_phone(number: str, *, country: str | None) -> dict[str, str]:
    """A phone number as Clemta's billing keeps it: the calling code as `phone_code` (+1), the rest as `phone`.

    A number without a calling code is read in `country`; one that cannot be read is sent as given.
    """
    try:
        parsed = phonenumbers.parse(number, country)
    except phonenumbers.NumberParseException:
        return {"phone": number.strip()}
    return {"phone_code": f"+{parsed.country_code}", "phone": phonenumbers.national_significant_number(parsed)}


def _addresses(item: dict[str, Any]) -> list[str]:
    """A listed contact's email and cc addresses, the ones find_contacts matches an email against."""
    cc = item.get("cc_emails")
    listed = [item.get("email"), *(cast(list[Any], cc) if isinstance(cc, list) else [])]
    return [text for address in listed if (text := stripped(address))]


def _billing_phone_of(item: dict[str, Any]) -> str | None:
    """A listed contact's billing phone with its calling code, as its `phones` shows it."""
    billing = cast(dict[str, Any], item["billing"]) if isinstance(item.get("billing"), dict) else {}
    phone = stripped(billing.get("phone"))
    if phone and (code := stripped(billing.get("phone_code"))) and not phone.startswith("+"):
        phone = f"{code}{phone}"
    return phone


def _fits(item: dict[str, Any], lookup: Lookup, searched: str) -> int | None:
    """How well a contact Clemta's search returned fits every argument given (EXACT first); None: it does not."""
    addresses = _addresses(item)
    best = EXACT
    if lookup.email is not None and lookup.email.casefold() not in {address.casefold() for address in addresses}:
        return None
    if lookup.phone is not None and not same_phone(lookup.phone, _billing_phone_of(item)):
        return None
    name = stripped(item.get("full_name"))
    for text in (lookup.name, lookup.query):
        if text is None or not text.strip():
            continue
        found = rank(fold(text.strip()), [name, *addresses])
        if found is None:
            return None
        if text.strip() == searched:
            best = found
    return best


def _created(item: dict[str, Any]) -> float:
    """A listed contact's creation time, for newest first; those without one go last."""
    created = item.get("created_at")
    return float(created) if isinstance(created, int | float) and not isinstance(created, bool) else -math.inf
