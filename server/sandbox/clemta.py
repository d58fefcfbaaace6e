"""Clemta's contacts endpoints, under `/clemta`.

Every answer is the envelope `{"success", "message", "data"}`; errors set `data` to null and add
`{"error": {"code", "details"}}`. Authentication is the `X-API-Key` header.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.sandbox.model import COUNTRIES, ContactRow, Stamped, split_phone
from server.sandbox.ratelimit import Decision
from server.sandbox.routing import Caller, Sandbox, Vendor, anonymous, guarded, same_key, standard_rate_headers

_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")


def build(sandbox: Sandbox, key: str) -> Vendor:
    """Clemta's routes over the sandbox, accepting `key` as the API key."""
    rules = ClemtaRules(key)
    store = sandbox.store

    async def get_contact(request: Request) -> Response:
        contact_id: str = request.path_params["contact_id"]
        if _OBJECT_ID.fullmatch(contact_id) is None:
            return error(400, "Invalid contact ID", "INVALID_REQUEST", "contact_id must be a 24-character hex string")
        row = await store.run(lambda: store.contact_by_clemta_id(contact_id))
        if row is None:
            return error(404, "Contact not found", "NOT_FOUND")
        emails = await store.run(lambda: store.values([row.id], "email")[row.id])
        return success("Contact retrieved successfully", _contact(row, emails))

    return Vendor(
        prefix="/clemta",
        rules=rules,
        routes=[
            Route(
                "/clemta/contacts/{contact_id}",
                guarded("clemta.get_contact", rules, sandbox.limiter, get_contact),
                methods=["GET"],
                name="clemta.get_contact",
            )
        ],
    )


def success(message: str, data: object, status_code: int = 200) -> JSONResponse:
    """Clemta's success envelope."""
    return JSONResponse({"success": True, "message": message, "data": data}, status_code=status_code)


def error(status_code: int, message: str, code: str, details: str = "") -> JSONResponse:
    """Clemta's error envelope."""
    return JSONResponse(
        {"success": False, "message": message, "data": None, "error": {"code": code, "details": details}},
        status_code=status_code,
    )


class ClemtaRules:
    """`X-API-Key` authentication and Clemta's error envelope."""

    def __init__(self, key: str) -> None:
        self._key = key

    def identify(self, request: Request) -> Caller:
        """The key's caller, or an anonymous one refused with API_KEY_REQUIRED or INVALID_API_KEY."""
        given = request.headers.get("x-api-key", "")
        if same_key(given, self._key):
            return Caller(client=self._key)
        if not given:
            return Caller(client=anonymous(request), rejection=error(401, "API key is required", "API_KEY_REQUIRED"))
        return Caller(client=anonymous(request), rejection=error(401, "Invalid API key", "INVALID_API_KEY"))

    def too_many_requests(self, decision: Decision) -> Response:
        """Clemta's rate-limit answer."""
        return error(429, "Rate limit exceeded", "RATE_LIMIT_EXCEEDED", "Too many requests. Please try again later.")

    def rate_headers(self, decision: Decision) -> Mapping[str, str]:
        """The standard pair plus `X-RateLimit-Reset`, the Unix time the oldest counted request expires."""
        return {
            **standard_rate_headers(decision),
            "X-RateLimit-Reset": str(int(time.time() + decision.reset_after)),
        }

    def route_error(self, request: Request, status_code: int) -> Response:
        """Clemta's envelope for a route it does not have."""
        if status_code == 405:
            return error(405, "Method not allowed", "INVALID_REQUEST", f"{request.method} is not supported here")
        return error(status_code, "Route not found", "NOT_FOUND")


def _contact(row: ContactRow, emails: list[Stamped]) -> dict[str, object]:
    profile = row.profile
    phone_code, phone = split_phone(row.phone) if row.phone else ("", "")
    country = COUNTRIES.get(profile.country or "")
    return {
        "id": row.clemta_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "type": profile.clemta_type,
        "status": profile.clemta_status,
        "full_name": row.name or "",
        "email": row.email or "",
        "description": profile.description or "",
        # Cometly's other addresses for the person are the ones Clemta copies on invoices.
        "cc_emails": [item.value for item in emails if item.value != row.email],
        "bcc_emails": list(profile.bcc_emails),
        "billing": {
            "email": row.email or "",
            "phone": phone,
            "phone_code": phone_code,
            "iso_code": profile.country or "",
            "country": country.name if country else "",
            "address_1": profile.address1 or "",
            "address_2": profile.address2 or "",
            "postal_code": profile.postal_code or "",
            "district": profile.district or "",
            "state": profile.state or "",
            "province": profile.province or "",
            "tax_id": profile.tax_id or "",
        },
    }
