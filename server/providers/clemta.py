"""Clemta: get a contact, list a company's contacts, find one by email, create one.

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

`find_contact` uses the list's `search` (name or email) and keeps the contacts whose email is the
one asked for, ignoring case; the search's own matching is undocumented.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar, cast
from zoneinfo import ZoneInfo

import httpx
import phonenumbers
from pydantic import JsonValue, ValidationError

from ...tools.models import (
    ClemtaDetails,
    Contact,
    ContactPage,
    CustomFields,
    GetContactQuery,
    ListContactsQuery,
    NewContact,
    iso_utc,
)
from ..budgets import Budgets
from ..cursors import decode_fields
from ..errors import ContactsError, NotFound, NotSupported, PermissionDenied, ValidationFailed
from ..http import Upstream, path, quoted
from ..settings import ClemtaSettings, Rate, Settings
from .base import (
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

_CONTACT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
MAX_LIMIT = 100
"""Clemta's page size is capped here: its bounds are unpublished, and 100 is what its examples use."""
_ADDRESS_KEYS = ("address_1", "address_2", "district", "postal_code", "state", "province", "country")
BUDGET = "clemta.api_key"
SEARCH_PAGES = 5
"""The most pages of search results find_contact reads looking for the exact email (100 each)."""
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
        {"get_contact", "list_contacts", "find_contact", "create_contact"}
    )
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
            not_found=f"Clemta has no contact {contact_id}; ids come from list_contacts.",
        )
        return self._contact(self._data(body, "a contact"))

    async def list_contacts(self, query: ListContactsQuery) -> ContactPage:
        if query.conditions:
            raise self._unsupported("filter_by_custom_field")
        company = self._need_company("list_contacts")
        start, end = query.range.aware()
        until = int(end.timestamp())
        skip = decode_cursor(query.cursor) if query.cursor else 0
        params = [
            *self._page(company, skip=skip, limit=min(query.per_page, MAX_LIMIT)),
            ("created_at", "gt"),
            ("created_at_value", str(int(start.timestamp()) - 1)),
            ("end_date", str(until)),
        ]
        raw_items, total = await self._contacts(params)
        contacts = [
            self._contact(item)
            for item in raw_items
            if not (isinstance(item.get("created_at"), int | float) and item["created_at"] > until)
        ]
        fetched = skip + len(raw_items)
        more = total is not None and fetched < total and bool(raw_items)
        return ContactPage(contacts=contacts, next_cursor=encode_cursor(fetched) if more else None, has_more=more)

    async def find_contact(self, *, email: str | None, phone: str | None) -> Contact:
        if not email:
            raise NotSupported("Clemta's search matches names and emails, not phone numbers; give the contact's email.")
        company = self._need_company("find_contact")
        wanted = email.casefold()
        skip = 0
        for _ in range(SEARCH_PAGES):
            params = [*self._page(company, skip=skip, limit=MAX_LIMIT), ("search", email)]
            raw_items, total = await self._contacts(params)
            for item in raw_items:
                addresses = [item.get("email"), *(cast(list[Any], item.get("cc_emails") or []))]
                if any(isinstance(address, str) and address.strip().casefold() == wanted for address in addresses):
                    return self._contact(item)  # newest first: the newest of several with this email
            skip += len(raw_items)
            if not raw_items or total is None or skip >= total:
                break
        else:
            raise NotFound(
                f"Clemta has no contact with email {email!r} among the first {skip} its search matched; "
                "narrow it with list_contacts over the dates it was created."
            )
        raise NotFound(f"Clemta has no contact with email {email!r}.")

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

    async def create_contact(self, contact: NewContact) -> Contact:
        company = self._need_company("create_contact")
        if not contact.names:
            raise ValidationFailed("Clemta needs the contact's name: pass names (names[0] becomes its full_name).")
        self._refuse_what_it_cannot_hold(contact)
        if len(contact.phones) > 1:
            raise ValidationFailed("A Clemta contact holds one phone number (on its billing details); pass one.")
        payload = _create_body(contact, company)
        unsure = look_up_before_creating_again(contact.emails[0])
        body = await self._upstream.request(BUDGET, "POST", path("contacts"), json=payload, unsure=unsure)
        with created(unsure):
            return self._contact(self._data(body, "a contact"))

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
        phone = stripped(billing.get("phone"))
        if phone and (code := stripped(billing.get("phone_code"))) and not phone.startswith("+"):
            phone = f"{code}{phone}"
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


def billing_phone(number: str, *, country: str | None) -> dict[str, str]:
    """A phone number as Clemta's billing keeps it: the calling code as `phone_code` (+1), the rest as `phone`.

    A number without a calling code is read in `country`; one that cannot be read is sent as given.
    """
    try:
        parsed = phonenumbers.parse(number, country)
    except phonenumbers.NumberParseException:
        return {"phone": number.strip()}
    return {"phone_code": f"+{parsed.country_code}", "phone": phonenumbers.national_significant_number(parsed)}
