"""Clemta's contacts endpoints, under `/clemta`.

Every answer is the envelope `{"success", "message", "data"}`; errors set `data` to null and add
`{"error": {"code", "details"}}`. Authentication is the `X-API-Key` header. Every contact of a
sandbox belongs to one company, `COMPANY_ID` (each further account of a multi-account sandbox has
its own company and key).

Routes: get a contact, list a company's contacts (skip/limit paging, newest first by default) and
create one. As the OpenAPI file documents, bad list parameters are a 400 `INVALID_REQUEST`, a create
body that fails validation a 400 `VALIDATION_FAILED`, and a created contact answers 200.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import cast

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .model import COUNTRIES, EMAIL, ContactRow, NewContact, Profile, Stamped, split_phone, unix
from .ratelimit import Decision
from .routing import Caller, Sandbox, Vendor, anonymous, guarded, same_key, standard_rate_headers
from .store import CLEMTA_SORTS, ClemtaQuery

COMPANY_ID = "64b8f1a2e4b0c8d9f0c0ffee"
"""The sandbox company every contact belongs to (Clemta's `company_id`, a 24-hex ObjectId)."""

BUDGET = "clemta.api_key"
"""Clemta counts every route of an API key against one budget."""
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_STRING = 255
CONTACT_TYPES = ("customer", "vendor")

_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
_UNSIGNED = re.compile(r"[0-9]{1,12}")
_ISO_CODE = re.compile(r"[A-Za-z]{2}")
_PHONE_CODE = re.compile(r"\+?[0-9]{1,4}")
_PHONE = re.compile(r"[0-9 ().-]{4,20}")
_BILLING_FIELDS = (
    "email",
    "phone",
    "phone_code",
    "iso_code",
    "country",
    "address_1",
    "address_2",
    "postal_code",
    "district",
    "state",
    "province",
    "tax_id",
)

_BILLING_COLUMNS = {
    "address_1": "address1",
    "address_2": "address2",
    "postal_code": "postal_code",
    "district": "district",
    "state": "state",
    "province": "province",
    "iso_code": "country",
    "tax_id": "tax_id",
}
"""The billing keys an update keeps in the contact's profile, and their columns (phone and email go to the
collections; `country` is shown from `iso_code`)."""


def build(sandbox: Sandbox, key: str, *, company_id: str = COMPANY_ID) -> Vendor:
    """Clemta's routes over the sandbox, accepting `key` as the API key of the company `company_id` (whose
    contacts are the sandbox's; any other company is not found)."""
    rules = ClemtaRules(key)
    ours = company_id  # the routes read the request's `company_id` into a local of that name
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

    async def list_contacts(request: Request) -> Response:
        problems: list[str] = []
        company_id = _company_id(request.query_params.get("company_id"), problems)
        query = _list_query(request.query_params, problems)
        if problems or query is None:
            return error(400, "Invalid request", "INVALID_REQUEST", "; ".join(problems))
        if company_id != ours:
            return error(404, "Company not found", "COMPANY_NOT_FOUND")
        rows, total = await store.run(lambda: store.clemta_page(query))
        emails = await store.run(lambda: store.values([row.id for row in rows], "email"))
        contacts = [_contact(row, emails[row.id]) for row in rows]
        return success("Contacts retrieved successfully", {"contacts": contacts, "total": total})

    async def create_contact(request: Request) -> Response:
        try:
            payload: object = json.loads(await request.body())
        except ValueError:
            return error(400, "Invalid request data", "INVALID_REQUEST", "The body must be a JSON object")
        if not isinstance(payload, dict):
            return error(400, "Invalid request data", "INVALID_REQUEST", "The body must be a JSON object")
        fields = cast("dict[str, object]", payload)
        problems: list[str] = []
        contact_type = _text(fields, "type", problems, required=True)
        if contact_type is not None and contact_type not in CONTACT_TYPES:
            problems.append(f"Field 'type' must be one of {', '.join(CONTACT_TYPES)}")
        full_name = _text(fields, "full_name", problems, required=True)
        email = _text(fields, "email", problems, required=True, email=True)
        given_company = _text(fields, "company_id", problems, required=True)
        company_id = _company_id(given_company, problems) if given_company else None
        status = _text(fields, "status", problems) or "active"
        description = _text(fields, "description", problems)
        cc_emails = _emails(fields, "cc_emails", problems)
        bcc_emails = _emails(fields, "bcc_emails", problems)
        billing = _billing(fields.get("billing"), problems)
        if problems or contact_type is None or full_name is None or email is None:
            return error(400, "Validation failed", "VALIDATION_FAILED", "; ".join(problems))
        if company_id != ours:
            return error(404, "Company not found", "COMPANY_NOT_FOUND")
        now = unix(sandbox.clock())
        first, _, last = full_name.partition(" ")
        phone = _billing_phone(billing)
        extra = [address for address in dict.fromkeys(cc_emails) if address.lower() != email.lower()]
        profile = Profile(
            first_name=first or None,
            last_name=last or None,
            address1=billing.get("address_1"),
            address2=billing.get("address_2"),
            district=billing.get("district"),
            state=billing.get("state"),
            province=billing.get("province"),
            postal_code=billing.get("postal_code"),
            country=billing.get("iso_code"),
            clemta_type=contact_type,
            clemta_status=status,
            description=description,
            bcc_emails=tuple(dict.fromkeys(bcc_emails)),
            tax_id=billing.get("tax_id"),
        )

        def new_contact(contact_id: int) -> NewContact:
            return NewContact(
                id=contact_id,
                created_at=now,
                emails=[Stamped(address, now) for address in (email, *extra)],
                phones=[Stamped(phone, now)] if phone else [],
                names=[Stamped(full_name, now)],
                profile=profile,
            )

        row = await store.run(lambda: store.create(new_contact))
        emails = await store.run(lambda: store.values([row.id], "email")[row.id])
        return success("Contact created successfully", _contact(row, emails))

    async def update_contact(request: Request) -> Response:
        """PATCH with the create's body and its four required keys; optional keys left out keep their values
        (Clemta does not say), and `billing`'s keys likewise, one sent empty clearing its value."""
        contact_id: str = request.path_params["contact_id"]
        if _OBJECT_ID.fullmatch(contact_id) is None:
            return error(400, "Invalid contact ID", "INVALID_REQUEST", "contact_id must be a 24-character hex string")
        try:
            payload: object = json.loads(await request.body())
        except ValueError:
            return error(400, "Invalid request data", "INVALID_REQUEST", "The body must be a JSON object")
        if not isinstance(payload, dict):
            return error(400, "Invalid request data", "INVALID_REQUEST", "The body must be a JSON object")
        fields = cast("dict[str, object]", payload)
        problems: list[str] = []
        contact_type = _text(fields, "type", problems, required=True)
        if contact_type is not None and contact_type not in CONTACT_TYPES:
            problems.append(f"Field 'type' must be one of {', '.join(CONTACT_TYPES)}")
        full_name = _text(fields, "full_name", problems, required=True)
        email = _text(fields, "email", problems, required=True, email=True)
        given_company = _text(fields, "company_id", problems, required=True)
        company_id = _company_id(given_company, problems) if given_company else None
        status = _text(fields, "status", problems)
        description = _text(fields, "description", problems)
        cc_emails = _emails(fields, "cc_emails", problems)
        bcc_emails = _emails(fields, "bcc_emails", problems)
        billing = _billing(fields.get("billing"), problems)
        if problems or contact_type is None or full_name is None or email is None:
            return error(400, "Validation failed", "VALIDATION_FAILED", "; ".join(problems))
        if company_id != ours:
            return error(404, "Company not found", "COMPANY_NOT_FOUND")
        row = await store.run(lambda: store.contact_by_clemta_id(contact_id))
        if row is None:
            return error(404, "Contact not found", "NOT_FOUND")
        held = await store.run(lambda: store.values([row.id], "email")[row.id])
        names = await store.run(lambda: store.values([row.id], "name")[row.id])
        phones = await store.run(lambda: store.values([row.id], "phone")[row.id])
        others = [item.value for item in held if item.value.lower() != email.lower()]
        if "cc_emails" in fields:
            others = [address for address in dict.fromkeys(cc_emails) if address.lower() != email.lower()]
        collections: dict[str, list[str]] = {
            "email": [email, *others],
            "name": [full_name, *(item.value for item in names[1:])],
        }
        sent_billing = cast("dict[str, object]", fields["billing"]) if isinstance(fields.get("billing"), dict) else {}
        if "phone" in sent_billing or "phone_code" in sent_billing:
            phone = _billing_phone({**({"iso_code": row.profile.country} if row.profile.country else {}), **billing})
            collections["phone"] = [*([phone] if phone else []), *(item.value for item in phones[1:])]
        profile: dict[str, object] = {"clemta_type": contact_type}
        if "status" in fields:
            profile["clemta_status"] = status or "active"
        if "description" in fields:
            profile["description"] = description
        if "bcc_emails" in fields:
            profile["bcc_emails"] = tuple(dict.fromkeys(bcc_emails))
        for key, column in _BILLING_COLUMNS.items():
            if key in sent_billing:
                profile[column] = billing.get(key)
        now = unix(sandbox.clock())
        updated = await store.run(lambda: store.update(row.id, now=now, collections=collections, profile=profile))
        emails = await store.run(lambda: store.values([row.id], "email")[row.id])
        return success("Contact updated successfully", _contact(updated, emails))

    return Vendor(
        prefix="/clemta",
        rules=rules,
        routes=[
            Route(
                "/clemta/contacts/{contact_id}",
                guarded(BUDGET, rules, sandbox.limiter, get_contact),
                methods=["GET"],
                name="clemta.get_contact",
            ),
            Route(
                "/clemta/contacts",
                guarded(BUDGET, rules, sandbox.limiter, list_contacts),
                methods=["GET"],
                name="clemta.list_contacts",
            ),
            Route(
                "/clemta/contacts",
                guarded(BUDGET, rules, sandbox.limiter, create_contact),
                methods=["POST"],
                name="clemta.create_contact",
            ),
            Route(
                "/clemta/contacts/{contact_id}",
                guarded(BUDGET, rules, sandbox.limiter, update_contact),
                methods=["PATCH"],
                name="clemta.update_contact",
            ),
        ],
    )


def _company_id(raw: str | None, problems: list[str]) -> str | None:
    """The lower-cased company id; a missing or malformed one adds a problem."""
    if not raw:
        problems.append("company_id is required")
        return None
    if _OBJECT_ID.fullmatch(raw) is None:
        problems.append("company_id must be a 24-character hex string")
        return None
    return raw.lower()


def _unsigned(params: QueryParams, name: str, default: int, problems: list[str]) -> int:
    raw = params.get(name, "")
    if raw == "":
        return default
    if _UNSIGNED.fullmatch(raw) is None:
        problems.append(f"{name} must be a non-negative integer")
        return default
    return int(raw)


def _list_query(params: QueryParams, problems: list[str]) -> ClemtaQuery | None:
    skip = _unsigned(params, "skip", 0, problems)
    limit = _unsigned(params, "limit", DEFAULT_LIMIT, problems)
    if not 1 <= limit <= MAX_LIMIT:
        problems.append(f"limit must be between 1 and {MAX_LIMIT}")
    sort = params.get("sort", "") or "created_at"
    if sort not in CLEMTA_SORTS:
        problems.append(f"sort must be one of {', '.join(CLEMTA_SORTS)}")
    order = params.get("order", "") or "desc"
    if order not in {"asc", "desc"}:
        problems.append("order must be asc or desc")
    operator = params.get("created_at", "")
    has_value = params.get("created_at_value", "") != ""
    value = _unsigned(params, "created_at_value", 0, problems)
    created: tuple[str, int] | None = None
    if operator:
        if operator not in {"gt", "lt", "eq"}:
            problems.append("created_at must be one of gt, lt, eq")
        elif not has_value:
            problems.append("created_at_value is required with created_at")
        else:
            created = (operator, value)
    elif has_value:
        problems.append("created_at is required with created_at_value")
    end = _unsigned(params, "end_date", 0, problems) if params.get("end_date", "") != "" else None
    if problems:
        return None
    return ClemtaQuery(
        skip=skip,
        limit=limit,
        search=params.get("search", "").strip(),
        sort=sort,
        descending=order == "desc",
        created=created,
        end=end,
    )


def _text(
    fields: Mapping[str, object], name: str, problems: list[str], *, required: bool = False, email: bool = False
) -> str | None:
    """A trimmed string field; None when absent or empty (a problem if required)."""
    raw = fields.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            problems.append(f"Field '{name}' is required")
        return None
    if not isinstance(raw, str):
        problems.append(f"Field '{name}' must be a string")
        return None
    text = raw.strip()
    if len(text) > MAX_STRING:
        problems.append(f"Field '{name}' must be at most {MAX_STRING} characters")
        return None
    if email and EMAIL.fullmatch(text) is None:
        problems.append(f"Field '{name}' must be a valid email address")
        return None
    return text


def _emails(fields: Mapping[str, object], name: str, problems: list[str]) -> list[str]:
    raw = fields.get(name)
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"Field '{name}' must be an array of email addresses")
        return []
    items = cast("list[object]", raw)
    addresses = [item.strip() for item in items if isinstance(item, str)]
    if len(addresses) != len(items) or any(EMAIL.fullmatch(address) is None for address in addresses):
        problems.append(f"Field '{name}' must be an array of email addresses")
        return []
    return addresses


def _billing(raw: object, problems: list[str]) -> dict[str, str]:
    """The billing object's non-empty fields; `email` and `country` are checked but shown from the contact."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("Field 'billing' must be an object")
        return {}
    given = cast("dict[str, object]", raw)
    billing: dict[str, str] = {}
    for name in _BILLING_FIELDS:
        text = _text(given, name, problems, email=name == "email")
        if text is not None:
            billing[name] = text
    checks = (("iso_code", _ISO_CODE), ("phone_code", _PHONE_CODE), ("phone", _PHONE))
    for name, pattern in checks:
        if name in billing and pattern.fullmatch(billing[name]) is None:
            problems.append(f"Field 'billing.{name}' is not valid")
    if "iso_code" in billing:
        billing["iso_code"] = billing["iso_code"].upper()
    return billing


def _billing_phone(billing: Mapping[str, str]) -> str | None:
    """The stored phone: E.164 when a calling code came (from `phone_code` or the country), else digits."""
    digits = "".join(char for char in billing.get("phone", "") if char.isdigit())
    if not digits:
        return None
    code = billing.get("phone_code", "").lstrip("+")
    if not code:
        country = COUNTRIES.get(billing.get("iso_code", ""))
        code = country.calling_code if country else ""
    return f"+{code}{digits}" if code else digits


def _window_words(seconds: float) -> str:
    return "minute" if seconds == 60 else f"{seconds:g} seconds"


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
        """Clemta's rate-limit answer, with `Retry-After` as its rate-limiting page documents."""
        response = error(
            429, "Rate limit exceeded", "RATE_LIMIT_EXCEEDED", "Too many requests. Please try again later."
        )
        response.headers["Retry-After"] = str(decision.retry_after)
        return response

    def rate_headers(self, decision: Decision) -> Mapping[str, str]:
        """What Clemta's rate-limiting page lists for every response: the limit in words and numbers, its kind,
        what remains and the Unix time the oldest counted request expires."""
        return {
            "X-RateLimit-API": f"{decision.limit} requests per {_window_words(decision.window)}",
            **standard_rate_headers(decision),
            "X-RateLimit-Reset": str(int(time.time() + decision.reset_after)),
            "X-RateLimit-Type": "api_key",
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
