"""HighLevel's (LeadConnector API v2) contacts endpoints, under `/highlevel`.

HighLevel is a NestJS service: errors are `{"statusCode", "message"}` (a 401 adds `"error"`), and
every call needs `Authorization: Bearer <token>` and `Version: 2021-07-28`. All sandbox contacts
belong to one sub-account, `LOCATION_ID`.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.sandbox.model import SLOT_COUNT, ContactRow, iso_millis, render_value, stable_base62
from server.sandbox.ratelimit import Decision
from server.sandbox.routing import (
    Caller,
    Sandbox,
    Vendor,
    anonymous,
    bearer_token,
    guarded,
    same_key,
    standard_rate_headers,
)

API_VERSION = "2021-07-28"
"""The only `Version` header value the contacts API accepts."""

LOCATION_ID = stable_base62("highlevel:location")
"""The sandbox sub-account every contact belongs to (HighLevel's `locationId`)."""

CUSTOM_FIELD_IDS: Mapping[int, str] = {
    slot: stable_base62(f"highlevel:custom-field:{slot}") for slot in range(1, SLOT_COUNT + 1)
}
"""HighLevel's custom-field id for each Cometly slot (the same stored values back both)."""

_DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")


def build(sandbox: Sandbox, token: str) -> Vendor:
    """HighLevel's routes over the sandbox, accepting `token` as the sub-account's bearer token."""
    rules = HighLevelRules(token)
    store = sandbox.store

    async def get_contact(request: Request) -> Response:
        contact_id: str = request.path_params["contactId"]
        row = await store.run(lambda: store.contact_by_highlevel_id(contact_id))
        if row is None:
            return _error(404, "Contact not found")
        return JSONResponse({"contact": _contact(row)})

    return Vendor(
        prefix="/highlevel",
        rules=rules,
        routes=[
            Route(
                "/highlevel/contacts/{contactId}",
                guarded("highlevel.get_contact", rules, sandbox.limiter, get_contact),
                methods=["GET"],
                name="highlevel.get_contact",
            )
        ],
    )


def _error(status_code: int, message: str, **extra: str) -> JSONResponse:
    return JSONResponse({"statusCode": status_code, "message": message, **extra}, status_code=status_code)


class HighLevelRules:
    """Bearer token plus `Version` header, and NestJS's error shapes."""

    def __init__(self, token: str) -> None:
        self._token = token

    def identify(self, request: Request) -> Caller:
        """The token's caller; a wrong token is a 401, a missing or unknown `Version` a 400 (counted on the token)."""
        if not same_key(bearer_token(request), self._token):
            return Caller(client=anonymous(request), rejection=_error(401, "Invalid JWT", error="Unauthorized"))
        version = request.headers.get("version")
        if version is None:
            return Caller(client=self._token, rejection=_error(400, "Version header was not found"))
        if version != API_VERSION:
            return Caller(client=self._token, rejection=_error(400, f"Invalid version header, use {API_VERSION}"))
        return Caller(client=self._token)

    def too_many_requests(self, decision: Decision) -> Response:
        """HighLevel's burst-limit answer."""
        return _error(429, "Too many requests")

    def rate_headers(self, decision: Decision) -> Mapping[str, str]:
        """The standard pair plus HighLevel's burst headers (`X-RateLimit-Max`, the interval in ms)."""
        return {
            **standard_rate_headers(decision),
            "X-RateLimit-Max": str(decision.limit),
            "X-RateLimit-Interval-Milliseconds": str(round(decision.window * 1000)),
        }

    def route_error(self, request: Request, status_code: int) -> Response:
        """NestJS's answer for a route it does not have."""
        path = request.url.path.removeprefix("/highlevel")
        error = "Method Not Allowed" if status_code == 405 else "Not Found"
        return _error(status_code, f"Cannot {request.method} {path}", error=error)


def _contact(row: ContactRow) -> dict[str, object]:
    profile = row.profile
    status = "active" if profile.dnd else "inactive"
    return {
        "id": row.highlevel_id,
        "name": row.name,
        "locationId": LOCATION_ID,
        "firstName": profile.first_name,
        "lastName": profile.last_name,
        "email": row.email,
        "emailLowerCase": row.email.lower() if row.email else None,
        "timezone": profile.timezone,
        "companyName": row.custom_fields.get(1),
        "phone": row.phone,
        "dnd": profile.dnd,
        "dndSettings": {channel: {"status": status, "message": "", "code": ""} for channel in _DND_CHANNELS},
        "type": profile.lead_type,
        "source": profile.source,
        "assignedTo": profile.assigned_to,
        "address1": profile.address1,
        "city": profile.city,
        "state": profile.state or profile.province,
        "country": profile.country,
        "postalCode": profile.postal_code,
        "website": profile.website,
        "tags": list(profile.tags),
        "dateOfBirth": profile.date_of_birth,
        "dateAdded": iso_millis(row.created_at),
        "dateUpdated": iso_millis(row.updated_at),
        "customFields": [
            {"id": CUSTOM_FIELD_IDS[slot], "value": render_value(slot, value)}
            for slot, value in sorted(row.custom_fields.items())
            if value != ""
        ],
        "attributions": [
            {
                "url": item.url,
                "campaign": item.campaign,
                "utmSource": item.utm_source,
                "utmMedium": item.utm_medium,
                "sessionSource": item.session_source,
            }
            for item in profile.attributions
        ],
    }
