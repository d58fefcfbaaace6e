"""HighLevel (LeadConnector) API v2: get a contact, create one, and find one by email or phone.

Every request carries `Authorization: Bearer <token>` and `Version: 2021-07-28`, the only version
the API accepts. Contacts come wrapped as `{"contact": {...}}`. HighLevel counts its limits per app
and location (100 requests per 10 s, 200,000 per day) across all routes, so every request spends one
budget, `highlevel.location`, that holds both rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import httpx
from pydantic import JsonValue, ValidationError

from server.budgets import Budgets
from server.errors import NotFound, ValidationFailed
from server.http import Upstream, path
from server.providers.base import Capability, Clock, Provider, created, stripped, unexpected_shape, upstream_id
from server.settings import HighLevelSettings, Rate, Settings
from tools.models import Contact, CustomFields, GetContactQuery, HighLevelDetails, NewContact, iso_utc

API_VERSION = "2021-07-28"
_LIMITS = (Rate(100, 10.0), Rate(200_000, 86_400.0))
_CONTACT_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
_ADDRESS_KEYS = ("address1", "city", "state", "postalCode", "country")


def _read_error(body: Any) -> str | None:
    """HighLevel errors are `{"statusCode", "message"}`; a 422's `message` is a list."""
    if not isinstance(body, dict):
        return None
    message = cast(dict[str, Any], body).get("message")
    if isinstance(message, list):
        return "; ".join(str(item) for item in cast(list[Any], message))
    return str(message) if message else None


class HighLevel(Provider):
    """HighLevel contacts of one sub-account (location)."""

    name = "highlevel"
    label = "HighLevel"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"get_contact", "create_contact", "find_contact"})
    default_budgets: ClassVar[Mapping[str, tuple[Rate, ...]]] = {"highlevel.location": _LIMITS}
    """One budget for every endpoint: HighLevel counts its limits per app and location, not per route."""

    def __init__(self, settings: HighLevelSettings, upstream: Upstream) -> None:
        self._location = settings.location_id or ""
        self._upstream = upstream

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
        return cls(settings.highlevel, upstream)

    async def aclose(self) -> None:
        await self._upstream.aclose()

    def _need_location(self, tool: str) -> str:
        if not self._location:
            raise ValidationFailed(
                f"HighLevel's {tool} needs the sub-account's location id, and HIGHLEVEL_LOCATION_ID is not set; "
                "the person running this server must set it."
            )
        return self._location

    async def custom_fields(self, *, refresh: bool = False) -> CustomFields:
        return CustomFields(
            provider=self.name,
            filterable=False,
            note="HighLevel custom fields show on get_contact under their field id (customFields); this server "
            "cannot list their names or filter by them (HighLevel's contacts API offers neither).",
        )

    async def get_contact(self, query: GetContactQuery) -> Contact:
        contact_id = query.contact_id.strip()
        if not _CONTACT_ID.match(contact_id):
            raise ValidationFailed(
                f"contact_id {query.contact_id[:40]!r} is not a HighLevel contact id; ids are letters and digits "
                "such as ocQHyuzHvuMOe5N5jjXF and come from find_contact."
            )
        body = await self._upstream.request(
            "highlevel.location",
            "GET",
            path("contacts", contact_id),
            not_found=f"HighLevel has no contact {contact_id}; find one by email or phone with find_contact.",
        )
        return self._unwrap(body)

    async def find_contact(self, *, email: str | None, phone: str | None) -> Contact:
        params = [("locationId", self._need_location("find_contact"))]
        if email:
            params.append(("email", email.strip()))
        if phone:
            params.append(("number", phone.strip()))
        body = await self._upstream.request(
            "highlevel.location", "GET", path("contacts", "search", "duplicate"), params=params
        )
        if isinstance(body, dict) and "contact" in body and cast(dict[str, Any], body)["contact"] is None:
            wanted = " or ".join(f"{what} {value!r}" for what, value in (("email", email), ("phone", phone)) if value)
            raise NotFound(f"HighLevel has no contact with {wanted}.")
        return self._unwrap(body)

    async def create_contact(self, contact: NewContact) -> Contact:
        location = self._need_location("create_contact")
        if len(contact.emails) > 1 or len(contact.phones) > 1:
            raise ValidationFailed(
                "A HighLevel contact holds one email and one phone number; pass at most one of each."
            )
        if contact.custom_fields:
            raise ValidationFailed(
                "custom_fields take Cometly's profile_field slots; HighLevel custom fields cannot be set through "
                "create_contact. Leave custom_fields out."
            )
        payload: dict[str, Any] = {"locationId": location, "email": contact.emails[0]}
        if contact.phones:
            payload["phone"] = contact.phones[0]
        if contact.names:
            payload["name"] = contact.names[0]
        if contact.locations:
            payload["address1"] = contact.locations[0]
        unsure = f"look it up with find_contact(email={contact.emails[0]!r}) before calling create_contact again"
        body = await self._upstream.request(
            "highlevel.location", "POST", path("contacts") + "/", json=payload, unsure=unsure
        )
        with created(unsure):
            return self._unwrap(body)

    def _unwrap(self, body: Any) -> Contact:
        raw = cast(dict[str, Any], body).get("contact") if isinstance(body, dict) else None
        if not isinstance(raw, dict) or "id" not in raw:
            raise unexpected_shape(self.label, "a contact", "no `contact.id`")
        return self._contact(cast(dict[str, Any], raw))

    def _contact(self, raw: dict[str, Any]) -> Contact:
        contact_id = upstream_id(raw.get("id"))
        if contact_id is None:
            raise unexpected_shape(self.label, "a contact", "a `contact.id` that is not an id")
        name = stripped(raw.get("name")) or stripped(
            " ".join(part for part in (raw.get("firstName"), raw.get("lastName")) if isinstance(part, str))
        )
        address = ", ".join(text for key in _ADDRESS_KEYS if (text := stripped(raw.get(key))))
        custom: dict[str, JsonValue] = {}
        fields = raw.get("customFields")
        if isinstance(fields, list):
            for field in cast(list[Any], fields):
                if isinstance(field, dict):
                    item = cast(dict[str, Any], field)
                    value = item.get("value", item.get("field_value"))
                    if item.get("id") and value not in (None, "", []):
                        custom[str(item["id"])] = cast(JsonValue, value)
        known = HighLevelDetails.model_fields
        present = {key: raw[key] for key in known if raw.get(key) not in (None, "", [], {})}
        try:
            details = HighLevelDetails.model_validate(present)
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
            highlevel=details,
        )
