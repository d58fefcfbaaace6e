"""HighLevel (LeadConnector) API v2: get a contact, create one, find contacts, and its custom fields.

Every request carries `Authorization: Bearer <token>` and `Version: 2021-07-28`, the only version
the API accepts. Contacts come wrapped as `{"contact": {...}}`; `CONTACT_KEYS` says where each of
their keys goes. HighLevel counts its limits per app and location (100 requests per 10 s, 200,000
per day) across all routes, so every request spends one budget, `highlevel.location`, that holds
both rules.

A contact's custom fields arrive as `[{id, value}]`; the location's field definitions
(`GET /locations/{locationId}/customFields`) give them their names. The definitions are read once
and reused (`CONTACTS_MCP_CUSTOM_FIELDS_TTL_SECONDS`), again at most once a minute when a contact
shows a field id they do not know, and when they cannot be read a contact still shows its fields,
under their ids.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

import httpx
from pydantic import JsonValue, ValidationError

from ...tools.journey import attribution_journey
from ...tools.models import (
    Contact,
    ContactMatches,
    CustomField,
    CustomFields,
    FieldType,
    GetContactQuery,
    HighLevelDetails,
    Lookup,
    NewContact,
    iso_utc,
    typed_value,
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
from ..errors import ContactsError, NotFound, ValidationFailed
from ..http import Upstream, path
from ..settings import HighLevelSettings, Rate, Settings
from .base import (
    Capability,
    Clock,
    Destination,
    Dropped,
    Provider,
    created,
    stripped,
    unexpected_shape,
    unmapped,
    upstream_id,
)
from .cometly_fields import FieldCache
from .matching import fold, rank, same_phone

logger = logging.getLogger(__name__)

API_VERSION = "2021-07-28"
BUDGET = "highlevel.location"
_LIMITS = (Rate(100, 10.0), Rate(200_000, 86_400.0))
_CONTACT_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
_ADDRESS_KEYS = ("address1", "city", "state", "postalCode", "country")
MAX_QUERY = 75
"""The longest `query` HighLevel's contact search takes."""
MAX_PAGE_LIMIT = 500
"""The most contacts one page of HighLevel's contact search holds."""
_UPDATE_FIELDS = {"first_name": "firstName", "last_name": "lastName", "source": "source", "website": "website"}
"""update_contact's fields HighLevel's PUT takes, and their keys there (it has no companyName)."""
REREAD_UNKNOWN_FIELD_SECONDS = 60.0
"""The least time between two reads of the field definitions that unknown field ids set off."""

CONTACT_KEYS: Mapping[str, Destination] = {
    "id": "id",
    "name": "names",
    "email": "emails",
    "phone": "phones",
    **dict.fromkeys(_ADDRESS_KEYS, "locations"),
    "dateAdded": "created_at",
    "dateUpdated": "updated_at",
    "customFields": "custom_fields",
    "emailLowerCase": Dropped("a lower-cased copy of email"),
    "firstNameLowerCase": Dropped("a lower-cased copy of firstName"),
    "lastNameLowerCase": Dropped("a lower-cased copy of lastName"),
    "fullNameLowerCase": Dropped("a lower-cased copy of the name"),
    "locationId": Dropped("the sub-account this server is configured for (HIGHLEVEL_LOCATION_ID)"),
    "ssn": Dropped("a national identity number: never put into a model's context"),
    "birthMonth": Dropped("the month of dateOfBirth (create answers only)"),
    "birthDay": Dropped("the day of dateOfBirth (create answers only)"),
}
"""Where each key of HighLevel's contact (get, create and search answers) goes.

A key not named here goes, as sent, to the contact's `highlevel` section: `firstName`, `lastName`,
`companyName`, `tags`, `type`, `source`, `assignedTo`, `dnd`, `dndSettings`, `attributionSource`,
`lastAttributionSource`, `dateOfBirth`, `timezone`, `website`, `lastActivity`, `businessId`,
`visitorId`, `attachments`, `keyword`, the create answer's `deleted`, `bounceEmail`,
`unsubscribeEmail`, `lastSessionActivityAt`, `offers`, `products`, and the deprecated list's
`attributions` should it ever arrive.
"""

DEFINITION_KEYS: Mapping[str, Destination] = {
    "id": "slot",
    "name": "label",
    "fieldKey": "key",
    "dataType": ("data_type", "type"),
    "picklistOptions": "options",
    "model": Dropped("always contact: the definitions are asked for with model=contact"),
    "locationId": Dropped("the sub-account this server is configured for"),
    "placeholder": Dropped("the input hint HighLevel's own forms show"),
    "position": Dropped("where HighLevel's own forms place the field; the list keeps that order"),
    "picklistImageOptions": Dropped("images for HighLevel's own forms"),
    "isAllowedCustomOption": Dropped("a setting of HighLevel's own forms"),
    "isMultiFileAllowed": Dropped("a setting of HighLevel's file uploads"),
    "maxFileLimit": Dropped("a setting of HighLevel's file uploads"),
}
"""Where each key of a custom-field definition goes in a `CustomField`."""

_TYPES: Mapping[str, FieldType] = {
    "TEXT": "text",
    "LARGE_TEXT": "text",
    "TEXTBOX_LIST": "text_list",
    "SINGLE_OPTIONS": "picklist",
    "MULTIPLE_OPTIONS": "multi_select",
    "RADIO": "radio",
    "CHECKBOX": "checkbox",
    "PHONE": "phone",
    "EMAIL": "email",
    "NUMERICAL": "number",
    "MONETORY": "number",
    "FLOAT": "number",
    "DATE": "date",
    "FILE_UPLOAD": "file",
    "SIGNATURE": "signature",
}
"""HighLevel data types named plainly; HighLevel does not publish the full list, and any other is `other`."""


def _read_error(body: Any) -> str | None:
    """HighLevel errors are `{"statusCode", "message"}`; a 422's `message` is a list.

    A refused duplicate is seen to add `meta: {contactId, matchingField}`, which names the contact.
    """
    if not isinstance(body, dict):
        return None
    raw = cast(dict[str, Any], body)
    message = raw.get("message")
    text = "; ".join(str(item) for item in cast(list[Any], message)) if isinstance(message, list) else message
    text = str(text) if text else None
    meta = raw.get("meta")
    if isinstance(meta, dict) and (existing := upstream_id(cast(dict[str, Any], meta).get("contactId"))):
        field = stripped(cast(dict[str, Any], meta).get("matchingField"))
        matched = f" by {field}" if field else ""
        text = f"{text or 'A duplicate'} (the existing contact{matched} is {existing}; read it with get_contact)"
    return text


def _says_not_found(message: str) -> bool:
    return "not found" in message.lower()


class HighLevel(Provider):
    """HighLevel contacts of one sub-account (location)."""

    name = "highlevel"
    label = "HighLevel"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"get_contact", "create_contact", "find_contact", "update_contact"}
    )
    instead: ClassVar[Mapping[str, str]] = {
        "list_contacts": "look people up with find_contact (email, phone, name or any text) instead",
        "filter_by_custom_field": "look people up with find_contact (email, phone, name or any text) instead",
    }
    default_budgets: ClassVar[Mapping[str, tuple[Rate, ...]]] = {BUDGET: _LIMITS}
    """One budget for every endpoint: HighLevel counts its limits per app and location, not per route."""
    create_takes: ClassVar[frozenset[str]] = frozenset(
        {
            "phones",
            "names",
            "tags",
            "custom_fields",
            *(f"address.{part}" for part in ("line1", "city", "state", "postal_code", "country")),
            *(f"fields.{name}" for name in ("first_name", "last_name", "company_name", "source", "website")),
        }
    )
    update_takes: ClassVar[frozenset[str]] = frozenset(
        {
            "custom_fields",
            *(f"{verb}_{key}" for verb in ("add", "remove") for key in ("emails", "phones", "names", "tags")),
            *(f"fields.{name}" for name in _UPDATE_FIELDS),
        }
    )

    def __init__(
        self,
        settings: HighLevelSettings,
        upstream: Upstream,
        *,
        fields_ttl_seconds: float = 3_600.0,
        clock: Clock | None = None,
    ) -> None:
        self._location = settings.location_id or ""
        self._upstream = upstream
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._fields = FieldCache(
            discover=self._read_definitions, ttl_seconds=fields_ttl_seconds, wall_clock=lambda: self._clock()
        )
        self._fields_ttl = fields_ttl_seconds
        self._reread_at: float | None = None

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return settings.highlevel.configured

    @classmethod
    def account(cls, settings: Settings) -> str:
        return f"highlevel\0{settings.highlevel.key()}\0{settings.highlevel.location_id or ''}"  # per location

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        budgets: Budgets,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> HighLevel:
        upstream = cls._open_upstream(
            settings,
            settings.highlevel,
            headers={"Authorization": f"Bearer {settings.highlevel.key()}", "Version": API_VERSION},
            read_error=_read_error,
            budgets=budgets,
            transport=transport,
        )
        return cls(settings.highlevel, upstream, fields_ttl_seconds=settings.custom_fields_ttl_seconds, clock=clock)

    async def aclose(self) -> None:
        await self._upstream.aclose()

    def _need_location(self, tool: str) -> str:
        if not self._location:
            raise ValidationFailed(
                f"HighLevel's {tool} needs the sub-account's location id, and HIGHLEVEL_LOCATION_ID is not set; "
                "the person running this server must set it."
            )
        return self._location

    # --- Custom fields ------------------------------------------------------------------------------------------------

    async def _read_definitions(self) -> list[CustomField] | None:
        """The location's contact fields, from `GET /locations/{locationId}/customFields?model=contact`."""
        location = self._need_location("describe_custom_fields")
        body = await self._upstream.request(
            BUDGET, "GET", path("locations", location, "customFields"), params=[("model", "contact")]
        )
        items = cast(dict[str, Any], body).get("customFields") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise unexpected_shape(self.label, "the custom-field definitions", "no `customFields` array")
        fields: list[CustomField] = []
        for item in sorted(cast(list[Any], items), key=_position):
            raw = cast(dict[str, Any], item) if isinstance(item, dict) else {}
            field_id, name = upstream_id(raw.get("id")), stripped(raw.get("name"))
            if field_id is None or name is None or raw.get("model") not in (None, "contact"):
                continue
            data_type = stripped(raw.get("dataType"))
            options = raw.get("picklistOptions")
            offered = [str(option) for option in cast(list[Any], options)] if isinstance(options, list) else None
            offered = offered or None
            fields.append(
                CustomField(
                    slot=field_id,
                    label=name,
                    type=_TYPES.get(data_type.upper(), "other") if data_type else None,
                    key=stripped(raw.get("fieldKey")),
                    data_type=data_type,
                    options=offered,
                    values=offered,
                    values_from="options" if offered else None,
                )
            )
        return fields

    async def custom_fields(self, *, refresh: bool = False) -> CustomFields:
        found = await self._fields.get(refresh=refresh)
        return CustomFields(
            provider=self.name,
            filterable=False,
            fields=found.fields or [],
            checked_at=iso_utc(found.checked_at.timestamp()),
            note="The location's contact fields, read from HighLevel (GET /locations/{locationId}/customFields). "
            "Results key a contact's custom fields by these names (by id when no definition names one; two "
            "fields of one name as 'name (id)'); this server cannot filter HighLevel contacts by them. `values` "
            "are a picklist's options; values in use are not sampled (it would cost searches of contacts). "
            f"Reused for {self._fields_ttl / 60:g} minutes; refresh=true reads them again.",
        )

    async def _names(self, ids: Sequence[str]) -> Mapping[str, str]:
        """The name to show each of these field ids under; empty when the definitions cannot be read.

        Two fields of the same name show as `name (id)`, so neither hides the other.
        """
        if not ids:
            return {}
        try:
            fields = (await self._fields.get()).fields or []
            if not set(ids) <= {field.slot for field in fields} and self._may_reread():
                fields = (await self._fields.get(refresh=True)).fields or []
        except ContactsError as exc:  # the contact matters more than its field names
            logger.info("could not read HighLevel's custom-field definitions: %s", exc.kind)
            return {}
        counts: dict[str, int] = {}
        for field in fields:
            counts[field.label] = counts.get(field.label, 0) + 1
        return {
            field.slot: field.label if counts[field.label] == 1 else f"{field.label} ({field.slot})" for field in fields
        }

    def _may_reread(self) -> bool:
        now = time.monotonic()
        if self._reread_at is not None and now - self._reread_at < REREAD_UNKNOWN_FIELD_SECONDS:
            return False
        self._reread_at = now
        return True

    # --- Contacts -----------------------------------------------------------------------------------------------------

    async def get_contact(self, query: GetContactQuery) -> Contact:
        contact_id = query.contact_id.strip()
        if not _CONTACT_ID.match(contact_id):
            raise ValidationFailed(
                f"contact_id {query.contact_id[:40]!r} is not a HighLevel contact id; ids are letters and digits "
                "such as ocQHyuzHvuMOe5N5jjXF and come from find_contact."
            )
        missing = f"HighLevel has no contact {contact_id}; find one by email or phone with find_contact."
        try:
            body = await self._upstream.request(BUDGET, "GET", path("contacts", contact_id), not_found=missing)
        except ValidationFailed as exc:
            # HighLevel documents no 404 here; an unknown id may come back as a 400 that says so.
            if exc.status in (400, 422) and _says_not_found(exc.message):
                raise NotFound(missing, status=exc.status, request=exc.request) from None
            raise
        return await self._unwrap(body, use_names=query.use_custom_field_labels)

    async def find_contacts(self, lookup: Lookup, *, limit: int) -> ContactMatches:
        """The contacts matching `lookup`, best first as HighLevel ranks them.

        An email or phone is looked up exactly with HighLevel's duplicate search
        (`GET /contacts/search/duplicate`), which answers one contact: with an email, by the email
        alone, and a phone given too must be that contact's (compared as E.164), so both must match.
        A name or query goes to `POST /contacts/search` as its `query` (HighLevel matches it itself,
        partially and in any case); when folding accents changes the text, the folded text is
        searched too and its new matches follow. Any other argument given narrows what comes back:
        a name or query must then be contained, folded, in the contact's name, email, company or phone.

        Raises:
            ValidationFailed: Nothing to look for, a query over 75 characters, or no location id.
            NotFound: No contact has the email or phone.
            ContactsError: Other classified failures of the upstream requests.
        """
        location = self._need_location("find_contact")
        if lookup.exact:
            return await self._find_exact(lookup, location)
        text = lookup.name if lookup.name is not None else lookup.query
        if not text or not text.strip():
            raise ValidationFailed("Give an email, a phone, a name or a query to look for.")
        text = text.strip()
        wanted = [text, *([folded] if (folded := fold(text)) != text.casefold() else [])]
        for query in wanted:
            if len(query) > MAX_QUERY:
                raise ValidationFailed(
                    f"HighLevel searches at most {MAX_QUERY} characters and {text[:40]!r}... has {len(query)}; "
                    "shorten it to its most telling part (a surname, an email domain)."
                )
        page_limit = max(1, min(limit, MAX_PAGE_LIMIT))
        seen: dict[str, dict[str, Any]] = {}
        totals: list[int | None] = []
        complete = True
        for query in wanted:
            raws, total = await self._search(location, query, page_limit)
            totals.append(total)
            # A page shorter than asked for, or a total no larger than it, is every match there is.
            complete = complete and (len(raws) < page_limit or (total is not None and total <= len(raws)))
            for raw in raws:
                seen.setdefault(cast(str, raw["id"]), raw)
        narrowed = [raw for raw in seen.values() if self._narrows(raw, lookup, searched=text)]
        contacts = await self._contacts_of(narrowed[:limit])
        counted = [total for total in totals if total is not None]
        if complete:
            total, note = len(narrowed), None
        elif len(narrowed) < len(seen):
            total = len(narrowed)
            note = f"total is a lower bound: it counts those of HighLevel's first {page_limit} matches that fit"
        elif len(counted) == len(wanted) == 1:
            total, note = counted[0], None
        elif counted:
            total = max([*counted, len(seen)])
            note = "total is a lower bound: the plain and the accent-folded searches' matches may overlap"
        else:
            total, note = len(seen), "total is a lower bound: HighLevel's search answer did not say how many matched"
        if note is not None:
            note += "; narrow the query to see the rest."
        return ContactMatches(
            contacts=contacts, total=total, matched_on=lookup.matched_on, source="live", as_of=None, note=note
        )

    async def _find_exact(self, lookup: Lookup, location: str) -> ContactMatches:
        """One contact by email (else phone) from the duplicate search; the other arguments given must match it.

        Raises:
            NotFound: No contact has the email or phone, or the one that has it does not match the rest.
        """
        by = "email" if lookup.email is not None else "phone"
        value = cast(str, lookup.email if by == "email" else lookup.phone)
        params = [("locationId", location), ("email" if by == "email" else "number", value)]
        body = await self._upstream.request(BUDGET, "GET", path("contacts", "search", "duplicate"), params=params)
        # The 200 is documented without a schema: `{"contact": {...} | null}` is what is seen; a list is read too.
        raw: dict[str, Any] = cast(dict[str, Any], body) if isinstance(body, dict) else {}
        if "contact" not in raw and isinstance(raw.get("contacts"), list):
            listed: list[Any] = [item for item in cast(list[Any], raw["contacts"]) if isinstance(item, dict)]
            raw = {"contact": listed[0] if listed else None}
        if "contact" in raw and raw["contact"] is None:
            raise NotFound(
                f"HighLevel has no contact with {by} {value!r}; check it, or search by name with find_contact."
            )
        contact = await self._unwrap(raw)
        found = cast(dict[str, Any], raw["contact"])
        if not self._narrows(found, lookup, searched=None):
            given = ", ".join(
                f"{what} {getattr(lookup, what)!r}"
                for what in ("phone", "name", "query")
                if what != by and getattr(lookup, what)
            )
            raise NotFound(
                f"HighLevel's contact with {by} {value!r} ({contact.id}) does not match {given}; "
                f"look it up by {by} alone to see it."
            )
        return ContactMatches(
            contacts=[contact],
            total=1,
            matched_on=lookup.matched_on,
            source="live",
            as_of=None,
            note="HighLevel's duplicate search answers one contact per email or phone; if the location allows "
            f"duplicate contacts, search query={value!r} to see any others.",
        )

    def _narrows(self, raw: Mapping[str, Any], lookup: Lookup, *, searched: str | None) -> bool:
        """Whether a contact HighLevel returned matches every argument given beyond the one it was found by.

        A phone given with an email must be the contact's; a name or query other than `searched` must
        be contained, folded, in its name, email, company or phone.
        """
        if (
            lookup.email is not None
            and lookup.phone is not None
            and not same_phone(lookup.phone, stripped(raw.get("phone")))
        ):
            return False
        full = " ".join(part for part in (raw.get("firstName"), raw.get("lastName")) if isinstance(part, str))
        values = [raw.get(key) for key in ("name", "email", "companyName", "phone")]
        held = [value for value in (*values, full) if isinstance(value, str)]
        for text in (lookup.name, lookup.query):
            if (
                text is not None
                and text.strip()
                and text.strip() != searched
                and rank(fold(text.strip()), held) is None
            ):
                return False
        return True

    async def _search(self, location: str, query: str, page_limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """The first page of `POST /contacts/search` for `query`: its contacts as sent, and the total it counts.

        The answer's shape is undocumented: contacts are read from `contacts`, the total from `total`,
        `count` or `meta.total` (None when there is none); anything else is an unexpected shape.

        Raises:
            UpstreamUnavailable: The answer does not have one of those shapes.
        """
        payload = {"locationId": location, "page": 1, "pageLimit": page_limit, "query": query}
        body = await self._upstream.request(BUDGET, "POST", path("contacts", "search"), json=payload)
        raw = cast(dict[str, Any], body) if isinstance(body, dict) else None
        items = raw.get("contacts") if raw is not None else None
        if raw is None or not isinstance(items, list):
            raise unexpected_shape(self.label, "a contact search", "no `contacts` array")
        contacts: list[dict[str, Any]] = []
        for item in cast(list[Any], items):
            if not isinstance(item, dict) or upstream_id(cast(dict[str, Any], item).get("id")) is None:
                raise unexpected_shape(self.label, "a contact search", "a contact without an id")
            contacts.append({**cast(dict[str, Any], item), "id": upstream_id(cast(dict[str, Any], item)["id"])})
        if len(contacts) > page_limit:
            raise unexpected_shape(
                self.label, "a contact search", f"{len(contacts)} contacts for pageLimit {page_limit}"
            )
        meta = raw.get("meta")
        candidates = [
            raw.get("total"),
            raw.get("count"),
            cast(dict[str, Any], meta).get("total") if isinstance(meta, dict) else None,
        ]
        given = [value for value in candidates if value is not None]
        if not given:
            return contacts, None
        total = given[0]
        if isinstance(total, float) and total.is_integer():
            total = int(total)
        if not isinstance(total, int) or isinstance(total, bool) or total < len(contacts):
            raise unexpected_shape(
                self.label, "a contact search", f"a total of {str(total)[:20]} for {len(contacts)} contacts"
            )
        return contacts, total

    async def _contacts_of(self, raws: Sequence[dict[str, Any]]) -> list[Contact]:
        """Search results (GET-shaped) as `Contact`s, their custom fields named with one read of the definitions."""
        values = [_custom_values(raw.get("customFields")) for raw in raws]
        names = await self._names(list(dict.fromkeys(field_id for custom in values for field_id in custom)))
        return [
            self._contact(raw, {names.get(field_id, field_id): value for field_id, value in custom.items()})
            for raw, custom in zip(raws, values, strict=True)
        ]

    def check_create(self, contact: NewContact) -> None:
        self._need_location("create_contact")
        self._refuse_what_it_cannot_hold(contact)
        if len(contact.emails) > 1 or len(contact.phones) > 1:
            raise ValidationFailed(
                "A HighLevel contact holds one email and one phone number; pass at most one of each."
            )

    async def create_contact(self, contact: NewContact) -> Contact:
        self.check_create(contact)
        location = self._need_location("create_contact")
        resolved = await self._field_ids_of(contact.custom_fields)
        payload = _create_body(contact, location)
        if resolved:
            payload["customFields"] = [
                {"id": field_id, "field_value": _sent_value(value)}
                for field_id, (_, value) in resolved.items()
                if value is not None
            ]
        unsure = f"look it up with find_contact(email={contact.emails[0]!r}) before calling create_contact again"
        body = await self._upstream.request(BUDGET, "POST", path("contacts") + "/", json=payload, unsure=unsure)
        with created(unsure):
            return await self._unwrap(body)

    # --- Updates ------------------------------------------------------------------------------------------------------

    async def _field_ids_of(self, given: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
        """Custom fields named by name (any case), id or key (`contact.x` or `x`), on their ids: (the name to show,
        the value checked against the field's type where it is clear; None stays None, a clear).

        Raises:
            ValidationFailed: A name matches no field or several, or a value does not suit its field's type.
        """
        if not given:
            return {}
        fields = (await self._fields.get()).fields or []
        resolved: dict[str, tuple[str, Any]] = {}
        for name, value in given.items():
            field = _field_named(name, fields)
            if field.slot in resolved:
                raise ValidationFailed(f"{name!r} names a custom field already named; name it once. Nothing was sent.")
            try:
                checked = None if value is None else typed_value(value, field.type, field.data_type, what=field.label)
            except ValueError as exc:
                raise ValidationFailed(f"custom_fields: {exc}. Nothing was sent.") from None
            resolved[field.slot] = (field.label, checked)
        return resolved

    async def _read_raw(self, contact_id: str) -> dict[str, Any]:
        missing = f"HighLevel has no contact {contact_id}; find one by email or phone with find_contact."
        try:
            body = await self._upstream.request(BUDGET, "GET", path("contacts", contact_id), not_found=missing)
        except ValidationFailed as exc:
            if exc.status in (400, 422) and _says_not_found(exc.message):
                raise NotFound(missing, status=exc.status, request=exc.request) from None
            raise
        raw = cast(dict[str, Any], body).get("contact") if isinstance(body, dict) else None
        if not isinstance(raw, dict) or upstream_id(cast(dict[str, Any], raw).get("id")) is None:
            raise unexpected_shape(self.label, "a contact", "no `contact.id`")
        return cast(dict[str, Any], raw)

    async def update(self, changes: ContactChanges) -> ContactUpdate:
        """Read, send only what differs (`PUT /contacts/{id}` with the changed keys, tags through the tag
        endpoints, since a PUT's `tags` replaces them all), read back and compare.

        HighLevel holds one email, one phone and one name: adding a second is refused, and replacing one
        is `remove_*` of the old with `add_*` of the new in the same call.
        """
        if "company_name" in changes.fields.given():
            raise ValidationFailed(
                "HighLevel's update (PUT /contacts/{id}) has no companyName, so this server cannot change a "
                "contact's company; change it in HighLevel itself and leave company_name out. Nothing was sent."
            )
        self._refuse_what_it_cannot_update(changes)
        contact_id = changes.contact_id.strip()
        if not _CONTACT_ID.match(contact_id):
            raise ValidationFailed(
                f"contact_id {changes.contact_id[:40]!r} is not a HighLevel contact id; ids are letters and digits "
                "such as ocQHyuzHvuMOe5N5jjXF and come from find_contact. Nothing was sent."
            )
        resolved = await self._field_ids_of(changes.custom_fields)  # before the read: the window stays short
        raw = await self._read_raw(contact_id)
        before = _update_state(raw)
        intended = dict(before)
        body: dict[str, Any] = {}
        named: list[tuple[str, str]] = []
        singles: tuple[tuple[Collection, str], ...] = (("emails", "email"), ("phones", "phone"), ("names", "name"))
        for key, theirs in singles:
            add, remove = changes.add.get(key, []), changes.remove.get(key, [])
            if not add and not remove:
                continue
            current = cast(list[str], before[key])
            merged = merged_list(current, add, remove, _SAMENESS.get(key, _same))
            if len(merged) > 1:
                one = key.removesuffix("s")
                raise ValidationFailed(
                    f"A HighLevel contact holds one {one}, and contact {contact_id} has {current[0]!r}; to replace it, "
                    f"pass remove_{key}=[{current[0]!r}] with add_{key} in the same call. Nothing was sent."
                )
            intended[key] = merged
            named.append((key, key))
            if not _same_list(merged, current, key):
                body[theirs] = merged[0] if merged else None
        for name, value in changes.fields.given().items():
            key, theirs = f"fields.{name}", _UPDATE_FIELDS[name]
            intended[key] = value
            named.append((key, name))
            if not same_value(cast(Any, before.get(key)), cast(Any, value)):
                body[theirs] = value
        custom: list[dict[str, Any]] = []
        for field_id, (label, value) in resolved.items():
            key = f"custom_fields.{field_id}"
            intended[key] = value
            named.append((key, label))
            if not same_value(before.get(key), value):
                custom.append({"id": field_id, "field_value": _sent_value(value)})
        if custom:
            body["customFields"] = custom
        held = cast(list[str], before["tags"])
        adding = [tag for tag in changes.add.get("tags", []) if not any(_same_tag(tag, h) for h in held)]
        removing = [tag for tag in changes.remove.get("tags", []) if any(_same_tag(tag, h) for h in held)]
        if "tags" in changes.add or "tags" in changes.remove:
            intended["tags"] = merged_list(held, changes.add.get("tags", []), changes.remove.get("tags", []), _same_tag)
            named.append(("tags", "tags"))
        if not body and not adding and not removing:
            return ContactUpdate(
                contact=await self._contact_of_raw(raw),
                changes=changes_of(named, before, before, sameness=_SAMENESS),
                changed=False,
                note=nothing_to_change(self.label),
            )
        again = "read it with get_contact to see whether it took effect (calling update_contact again is safe)"
        if body:
            await self._upstream.request(BUDGET, "PUT", path("contacts", contact_id), json=body, unsure=again)
        if adding:
            await self._upstream.request(
                BUDGET, "POST", path("contacts", contact_id, "tags"), json={"tags": adding}, unsure=again
            )
        if removing:
            await self._upstream.request(
                BUDGET, "DELETE", path("contacts", contact_id, "tags"), json={"tags": removing}, unsure=again
            )
        raw_after = await self._read_raw(contact_id)
        after = _update_state(raw_after)
        keys = [key for key, _ in named]
        # HighLevel may derive the name from the first and last name, and keeps lower-cased copies of them.
        exempt = [*(("names", "fields.first_name", "fields.last_name") if set(keys) & _NAME_KEYS else ())]
        note = compared(self.label, contact_id, before, intended, after, named=keys, sameness=_SAMENESS, exempt=exempt)
        return ContactUpdate(
            contact=await self._contact_of_raw(raw_after),
            changes=changes_of(named, before, after, sameness=_SAMENESS),
            changed=True,
            note=note,
        )

    async def _contact_of_raw(self, raw: dict[str, Any]) -> Contact:
        return await self._unwrap({"contact": raw})

    async def _unwrap(self, body: Any, *, use_names: bool = True) -> Contact:
        raw = cast(dict[str, Any], body).get("contact") if isinstance(body, dict) else None
        if not isinstance(raw, dict) or "id" not in raw:
            raise unexpected_shape(self.label, "a contact", "no `contact.id`")
        contact = cast(dict[str, Any], raw)
        values = _custom_values(contact.get("customFields"))
        names: Mapping[str, str] = await self._names(list(values)) if use_names else {}
        return self._contact(contact, {names.get(field_id, field_id): value for field_id, value in values.items()})

    def _contact(self, raw: dict[str, Any], custom: dict[str, JsonValue]) -> Contact:
        contact_id = upstream_id(raw.get("id"))
        if contact_id is None:
            raise unexpected_shape(self.label, "a contact", "a `contact.id` that is not an id")
        name = stripped(raw.get("name")) or stripped(
            " ".join(part for part in (raw.get("firstName"), raw.get("lastName")) if isinstance(part, str))
        )
        address = ", ".join(text for key in _ADDRESS_KEYS if (text := stripped(raw.get(key))))
        section = unmapped(raw, CONTACT_KEYS)
        try:
            details = HighLevelDetails.model_validate(section)
        except ValidationError:
            raise unexpected_shape(self.label, "a contact", "fields of unexpected types") from None
        return Contact(
            id=contact_id,
            provider=self.name,
            created_at=iso_utc(raw.get("dateAdded")),
            updated_at=iso_utc(raw.get("dateUpdated")),
            emails=[email] if (email := stripped(raw.get("email"))) else [],
            phones=[phone] if (phone := stripped(raw.get("phone"))) else [],
            names=[name] if name else [],
            locations=[address] if address else [],
            custom_fields=custom,
            journey=attribution_journey(raw.get("attributionSource"), raw.get("lastAttributionSource")),
            highlevel=details if section else None,
        )


_NAME_KEYS = frozenset({"names", "fields.first_name", "fields.last_name"})
_UNCOMPARED = frozenset(
    {"id", "dateUpdated", "lastActivity", "emailLowerCase", "firstNameLowerCase", "lastNameLowerCase"}
    | {"fullNameLowerCase", "email", "phone", "name", "firstName", "lastName", "source", "website", "tags"}
    | {"customFields"}
)
"""Keys a read-back is not compared on as they are: changed by every write, or compared in their own state key."""


def _same(left: str, right: str) -> bool:
    return left.strip() == right.strip()


def _sent_value(value: Any) -> Any:
    """A custom field's value as sent: a clear as "", a number as its text (the spec types a numeric field's
    `field_value` as an object; text is what every field type's schema takes)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _same_tag(left: str, right: str) -> bool:
    return left.strip().casefold() == right.strip().casefold()


_SAMENESS: Mapping[str, Same] = {"emails": same_email, "phones": same_phone, "tags": _same_tag}


def _same_list(left: Sequence[str], right: Sequence[str], key: str) -> bool:
    same = _SAMENESS.get(key, _same)
    return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))


def _update_state(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What an update compares of a contact as HighLevel's GET shows it: each named kind of value under its own
    key, every custom field by id, and every other key as sent (`other.<key>`)."""
    full = " ".join(part for part in (raw.get("firstName"), raw.get("lastName")) if isinstance(part, str)).strip()
    name = stripped(raw.get("name")) or full or None
    tags = raw.get("tags")
    state: dict[str, Any] = {
        "emails": [email] if (email := stripped(raw.get("email"))) else [],
        "phones": [phone] if (phone := stripped(raw.get("phone"))) else [],
        "names": [name] if name else [],
        "tags": [str(tag) for tag in cast(list[Any], tags)] if isinstance(tags, list) else [],
        **{f"fields.{ours}": raw.get(theirs) for ours, theirs in _UPDATE_FIELDS.items()},
        **{f"custom_fields.{field_id}": value for field_id, value in _custom_values(raw.get("customFields")).items()},
    }
    state.update({f"other.{key}": value for key, value in raw.items() if key not in _UNCOMPARED})
    return state


def _field_named(name: str, fields: Sequence[CustomField]) -> CustomField:
    """The field definition a name means: its id, its key (`contact.x` or `x`), or its name in any case.

    Raises:
        ValidationFailed: None matches, or several do; the message lists the fields.
    """
    text = name.strip()
    for matches in (
        [field for field in fields if field.slot == text],
        [field for field in fields if field.key and text in (field.key, field.key.removeprefix("contact."))],
        [field for field in fields if field.label.casefold() == text.casefold()],
        [field for field in fields if " ".join(field.label.split()).casefold() == " ".join(text.split()).casefold()],
    ):
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ValidationFailed(
                f"the custom field {name[:80]!r} is ambiguous: it matches {', '.join(f.slot for f in matches)}; "
                "pass the field's id instead. Nothing was sent."
            )
    known = ", ".join(f"{field.label!r} ({field.key or field.slot})" for field in fields) or "none"
    raise ValidationFailed(
        f"HighLevel has no custom field named {name[:80]!r}. The location's contact fields are: {known}. Pass one "
        "of these names, keys or ids; describe_custom_fields lists them. Nothing was sent."
    )


def _position(item: Any) -> float:
    """Where HighLevel's forms place a field definition; those without a position go last."""
    position = cast(dict[str, Any], item).get("position") if isinstance(item, dict) else None
    return float(position) if isinstance(position, int | float) and not isinstance(position, bool) else math.inf


def _custom_values(fields: Any) -> dict[str, JsonValue]:
    """A contact's `customFields` (`[{id, value}]`) as values by field id, empty ones left out.

    `value` is typed string, and other field types' values are undocumented: any JSON value is kept.
    """
    values: dict[str, JsonValue] = {}
    for field in cast(list[Any], fields) if isinstance(fields, list) else []:
        item = cast(dict[str, Any], field) if isinstance(field, dict) else {}
        field_id = upstream_id(item.get("id"))
        value = item.get("value", item.get("field_value"))
        if field_id is not None and value not in (None, "", [], {}):
            values[field_id] = cast(JsonValue, value)
    return values


def _create_body(contact: NewContact, location: str) -> dict[str, Any]:
    """The create body: each argument under the key HighLevel documents for it."""
    fields = contact.fields
    payload: dict[str, Any] = {"locationId": location, "email": contact.emails[0]}
    if contact.phones:
        payload["phone"] = contact.phones[0]
    if contact.names:
        payload["name"] = contact.names[0]
    given, _, family = contact.names[0].strip().partition(" ") if contact.names else ("", "", "")
    first, last = fields.first_name or given.strip() or None, fields.last_name or family.strip() or None
    if first:
        payload["firstName"] = first
    if last:
        payload["lastName"] = last
    address = contact.address.given() if contact.address else {}
    for ours, theirs in (
        ("line1", "address1"),
        ("city", "city"),
        ("state", "state"),
        ("postal_code", "postalCode"),
        ("country", "country"),
    ):
        if ours in address:
            payload[theirs] = address[ours]
    for ours, theirs in (("company_name", "companyName"), ("source", "source"), ("website", "website")):
        value = getattr(fields, ours)
        if value is not None:
            payload[theirs] = value
    if contact.tags:
        payload["tags"] = contact.tags
    return payload
