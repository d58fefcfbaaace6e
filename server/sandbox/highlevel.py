"""HighLevel's (LeadConnector API v2) contacts endpoints, under `/highlevel`.

HighLevel is a NestJS service: errors are `{"statusCode", "message"}` (a 401 adds `"error"`, a 422
has a list of messages), and every call needs `Authorization: Bearer <token>` and
`Version: 2021-07-28`. All of a sandbox's contacts belong to one sub-account, `LOCATION_ID` (each
further account of a multi-account sandbox has its own), which keeps HighLevel's default of not
allowing duplicate contacts (by email, then phone). Every route also spends the token's day budget
(`highlevel.daily`).

Routes: get a contact, create one (`POST /contacts/`, with or without the slash), find one by
email or phone (`GET /contacts/search/duplicate`) and search them (`POST /contacts/search`: `query`
in any case over name, email, company and phone digits, newest first, answered
`{"contacts": [...GET shape], "total"}` — HighLevel leaves the answer's shape undocumented).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .model import (
    COUNTRIES,
    EMAIL,
    SLOT_COUNT,
    Attribution,
    ContactRow,
    CustomValue,
    NewContact,
    Profile,
    SlotType,
    Stamped,
    iso_millis,
    parse_date_value,
    phone_digits,
    render_value,
    slot_type,
    stable_base62,
    unix,
)
from .ratelimit import Decision
from .routing import (
    Caller,
    Handler,
    Sandbox,
    Vendor,
    anonymous,
    bearer_token,
    guarded,
    same_key,
)
from .store import Duplicate

API_VERSION = "2021-07-28"
"""The only `Version` header value the contacts API accepts."""

LOCATION_ID = stable_base62("highlevel:location")
"""The sandbox sub-account every contact belongs to (HighLevel's `locationId`)."""

CUSTOM_FIELD_IDS: Mapping[int, str] = {
    slot: stable_base62(f"highlevel:custom-field:{slot}") for slot in range(1, SLOT_COUNT + 1)
}
"""HighLevel's custom-field id for each Cometly slot (the same stored values back both)."""

BURST_BUDGET = "highlevel.location"
"""The rate-limit name of the burst budget (100 per 10 s) every HighLevel route of a location spends."""
DAILY_BUDGET = "highlevel.daily"
"""The rate-limit name of the day budget every HighLevel route spends."""

COMPANY_SLOT = 1
"""The Cometly slot whose value is the HighLevel contact's `companyName` (the Space labels it "Company")."""
_DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")
_SLOT_BY_FIELD_ID = {field_id: slot for slot, field_id in CUSTOM_FIELD_IDS.items()}
_STRING_FIELDS = (
    "firstName",
    "lastName",
    "name",
    "email",
    "gender",
    "phone",
    "address1",
    "city",
    "state",
    "postalCode",
    "website",
    "timezone",
    "source",
    "dateOfBirth",
    "country",
    "companyName",
    "assignedTo",
)
# The formats the create DTO documents for dateOfBirth: year first or year last, one separator.
_DATE_OF_BIRTH = (
    re.compile(r"(?P<year>\d{4})(?P<sep>[/._-])(?P<month>\d{2})(?P=sep)(?P<day>\d{2})"),
    re.compile(r"(?P<month>\d{2})(?P<sep>[/._-])(?P<day>\d{2})(?P=sep)(?P<year>\d{4})"),
)
SEARCH_MAX_PAGE = 500
"""The most contacts one page of `POST /contacts/search` holds (`pageLimit`)."""
SEARCH_MAX_QUERY = 75
SEARCH_MAX_RECORDS = 10_000
"""How far `page` paging reaches; beyond it HighLevel wants `searchAfter`."""
_NUMBER_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_UPDATE_STRINGS = tuple(key for key in _STRING_FIELDS if key not in ("gender", "companyName"))
"""The update DTO's string fields: the create's without `gender` and `companyName` (nor `locationId`)."""
_UPDATE_KEYS = frozenset({*_UPDATE_STRINGS, "dnd", "dndSettings", "inboundDndSettings", "tags", "customFields"})
_PROFILE_COLUMNS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "address1": "address1",
    "city": "city",
    "state": "state",
    "postalCode": "postal_code",
    "country": "country",
    "timezone": "timezone",
    "dateOfBirth": "date_of_birth",
    "website": "website",
    "source": "source",
    "assignedTo": "assigned_to",
}
"""The update DTO's keys kept in the contact's profile, and their columns."""
_SEARCH_KEYS = frozenset({"locationId", "pageLimit", "page", "query", "filters", "sort", "searchAfter"})
_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 15
_LOCATION_DENIED = "The token does not have access to this location."


def build(sandbox: Sandbox, token: str, *, location_id: str = LOCATION_ID) -> Vendor:
    """HighLevel's routes over the sandbox, accepting `token` as the bearer token of the sub-account `location_id`
    (whose contacts are the sandbox's; any other `locationId` is refused as another sub-account's)."""
    rules = HighLevelRules(token)
    store = sandbox.store
    ours = location_id  # `create_contact` reads the body's `locationId` into a local of that name

    def route(path: str, endpoint: str, handler: Handler, method: str) -> Route:
        return Route(
            path,
            guarded(BURST_BUDGET, rules, sandbox.limiter, handler, daily=DAILY_BUDGET),
            methods=[method],
            name=endpoint,
        )

    async def get_contact(request: Request) -> Response:
        contact_id: str = request.path_params["contactId"]
        row = await store.run(lambda: store.contact_by_highlevel_id(contact_id))
        if row is None:
            return _error(404, "Contact not found")
        return JSONResponse({"contact": _contact(row, store.labels, location_id)})

    async def custom_fields(request: Request) -> Response:
        refusal = _location_refusal(request.path_params["locationId"], location_id)
        if refusal is not None:
            return refusal
        model = request.query_params.get("model", "")
        if model not in ("", "contact", "opportunity", "all"):
            return _error(422, ["model must be one of the following values: contact, opportunity, all"])
        fields = [] if model == "opportunity" else _field_definitions(store.labels, location_id)
        return JSONResponse({"customFields": fields})

    async def find_contact(request: Request) -> Response:
        params = request.query_params
        refusal = _location_refusal(params.get("locationId"), location_id, missing=400)
        if refusal is not None:
            return refusal
        email = params.get("email", "").strip() or None
        number = params.get("number", "").strip() or None
        if email is None and number is None:
            return _error(400, "Either email or number is required")
        found = await store.run(lambda: store.find_duplicate(email=email, phone=None))
        if found is None and number is not None:
            found = await store.run(lambda: store.find_duplicate(email=None, phone=number))
        return JSONResponse({"contact": None if found is None else _contact(found.row, store.labels, location_id)})

    async def search_contacts(request: Request) -> Response:
        try:
            payload: object = json.loads(await request.body())
        except ValueError:
            return _error(400, "Unexpected token in JSON body")
        if not isinstance(payload, dict):
            return _error(400, "The body must be a JSON object")
        search = _search_body(cast("dict[str, object]", payload))
        if isinstance(search, str):
            return _error(400, search)
        refusal = _location_refusal(search.location_id, location_id, missing=400)
        if refusal is not None:
            return refusal
        rows, total = await store.run(
            lambda: store.highlevel_search(
                search.query, limit=search.page_limit, offset=(search.page - 1) * search.page_limit
            )
        )
        return JSONResponse({"contacts": [_contact(row, store.labels, location_id) for row in rows], "total": total})

    async def create_contact(request: Request) -> Response:
        try:
            payload: object = json.loads(await request.body())
        except ValueError:
            return _error(400, "Unexpected token in JSON body")
        fields = cast("dict[str, object]", payload) if isinstance(payload, dict) else {}
        messages: list[str] = []
        location_id = fields.get("locationId")
        if location_id is None or location_id == "":
            messages.append("locationId should not be empty")
        elif not isinstance(location_id, str):
            messages.append("locationId must be a string")
        texts = _texts(fields, messages)
        tags = _tags(fields.get("tags"), messages)
        custom = _custom_fields(fields.get("customFields"), messages)
        dnd = fields.get("dnd", False)
        if not isinstance(dnd, bool):
            messages.append("dnd must be a boolean value")
            dnd = False
        if messages:
            return _error(422, messages, error="Unprocessable Entity")
        refusal = _location_refusal(cast("str", location_id), ours)
        if refusal is not None:
            return refusal
        now = unix(sandbox.clock())
        first, last = texts.get("firstName"), texts.get("lastName")
        name = texts.get("name") or " ".join(part for part in (first, last) if part) or None
        if name and first is None and last is None:
            given, _, family = name.partition(" ")
            first, last = given or None, family or None
        email, phone = texts.get("email"), texts.get("phone")
        if "companyName" in texts:
            custom[COMPANY_SLOT] = texts["companyName"]
        location = _location_text(texts.get("city"), texts.get("state"), texts.get("country"))
        profile = Profile(
            first_name=first,
            last_name=last,
            address1=texts.get("address1"),
            city=texts.get("city"),
            state=texts.get("state"),
            postal_code=texts.get("postalCode"),
            country=texts.get("country"),
            timezone=texts.get("timezone"),
            date_of_birth=texts.get("dateOfBirth"),
            website=texts.get("website"),
            dnd=dnd,
            source=texts.get("source"),
            assigned_to=texts.get("assignedTo"),
            tags=tags,
        )

        def new_contact(contact_id: int) -> NewContact:
            return NewContact(
                id=contact_id,
                created_at=now,
                emails=[Stamped(email, now)] if email else [],
                phones=[Stamped(phone, now)] if phone else [],
                names=[Stamped(name, now)] if name else [],
                locations=[Stamped(location, now)] if location else [],
                custom_fields=custom,
                profile=profile,
            )

        created = await store.run(lambda: store.create_unique(new_contact, email=email, phone=phone))
        if isinstance(created, Duplicate):
            return JSONResponse(
                {
                    "statusCode": 400,
                    "message": "This location does not allow duplicated contacts.",
                    "meta": {"contactId": created.row.highlevel_id, "matchingField": created.field},
                },
                status_code=400,
            )
        return JSONResponse({"contact": _created_contact(created, store.labels, ours)}, status_code=201)

    async def update_contact(request: Request) -> Response:
        contact_id: str = request.path_params["contactId"]
        try:
            payload: object = json.loads(await request.body())
        except ValueError:
            return _error(400, "Unexpected token in JSON body")
        if not isinstance(payload, dict):
            return _error(400, "The body must be a JSON object")
        fields = cast("dict[str, object]", payload)
        messages = [f"property {key} should not exist" for key in fields if key not in _UPDATE_KEYS]
        cleared = {key for key in _UPDATE_STRINGS if key in fields and fields[key] in (None, "")}
        texts = _texts({key: fields.get(key) for key in _UPDATE_STRINGS if key not in cleared}, messages)
        tags = _tags(fields.get("tags"), messages) if "tags" in fields else None
        custom = _custom_fields(fields.get("customFields"), messages, clearing=True)
        dnd = fields.get("dnd")
        if dnd is not None and not isinstance(dnd, bool):
            messages.append("dnd must be a boolean value")
        if messages:
            return _error(422, messages, error="Unprocessable Entity")
        row = await store.run(lambda: store.contact_by_highlevel_id(contact_id))
        if row is None:
            return _error(404, "Contact not found")
        emails = await store.run(lambda: store.values([row.id], "email")[row.id])
        phones = await store.run(lambda: store.values([row.id], "phone")[row.id])
        names = await store.run(lambda: store.values([row.id], "name")[row.id])
        collections: dict[str, list[str]] = {}
        for key, kind, held in (("email", "email", emails), ("phone", "phone", phones), ("name", "name", names)):
            if key in fields:  # HighLevel holds one of each: the primary is replaced, or dropped when cleared
                rest = [item.value for item in held[1:]]
                collections[kind] = rest if key in cleared else [texts[key], *rest]
        profile: dict[str, object] = {
            column: None if key in cleared else texts[key] for key, column in _PROFILE_COLUMNS.items() if key in fields
        }
        if tags is not None:
            profile["tags"] = tags
        if isinstance(dnd, bool):
            profile["dnd"] = dnd
        now = unix(sandbox.clock())
        updated = await store.run(
            lambda: store.update(row.id, now=now, collections=collections, slots=custom, profile=profile)
        )
        return JSONResponse({"succeded": True, "contact": _contact(updated, store.labels, location_id)})

    def tagging(adding: bool) -> Handler:
        async def tags(request: Request) -> Response:
            contact_id: str = request.path_params["contactId"]
            try:
                payload: object = json.loads(await request.body())
            except ValueError:
                return _error(400, "Unexpected token in JSON body")
            messages: list[str] = []
            raw = cast("dict[str, object]", payload).get("tags") if isinstance(payload, dict) else None
            if raw is None:
                messages.append("tags should not be empty")
            given = _tags(raw, messages)
            if messages:
                return _error(422, messages, error="Unprocessable Entity")
            row = await store.run(lambda: store.contact_by_highlevel_id(contact_id))
            if row is None:
                return _error(404, "Contact not found")
            held = row.profile.tags
            now_tags = (
                tuple(dict.fromkeys([*held, *given])) if adding else tuple(tag for tag in held if tag not in given)
            )
            now = unix(sandbox.clock())
            if now_tags != held:
                await store.run(lambda: store.update(row.id, now=now, profile={"tags": now_tags}))
            return JSONResponse({"tags": list(now_tags)}, status_code=201 if adding else 200)

        return tags

    return Vendor(
        prefix="/highlevel",
        rules=rules,
        routes=[
            # Before `{contactId}`, which would not match it anyway (a path parameter stops at `/`).
            route("/highlevel/contacts/search/duplicate", "highlevel.find_contact", find_contact, "GET"),
            route("/highlevel/contacts/search", "highlevel.search_contacts", search_contacts, "POST"),
            route("/highlevel/contacts/{contactId}", "highlevel.get_contact", get_contact, "GET"),
            route("/highlevel/contacts/{contactId}", "highlevel.update_contact", update_contact, "PUT"),
            route("/highlevel/contacts/{contactId}/tags", "highlevel.add_tags", tagging(True), "POST"),
            route("/highlevel/contacts/{contactId}/tags", "highlevel.remove_tags", tagging(False), "DELETE"),
            route("/highlevel/contacts/", "highlevel.create_contact", create_contact, "POST"),
            route("/highlevel/contacts", "highlevel.create_contact", create_contact, "POST"),
            route("/highlevel/locations/{locationId}/customFields", "highlevel.custom_fields", custom_fields, "GET"),
        ],
    )


def _error(status_code: int, message: str | list[str], **extra: str) -> JSONResponse:
    return JSONResponse({"statusCode": status_code, "message": message, **extra}, status_code=status_code)


def _location_refusal(location_id: str | None, ours: str, *, missing: int = 422) -> Response | None:
    """HighLevel's refusal of a missing `locationId` (a 422, or a 400 where the route documents no 422), its 403
    for another sub-account's, None for ours."""
    if not location_id:
        if missing == 400:
            return _error(400, "locationId should not be empty")
        return _error(422, ["locationId should not be empty"], error="Unprocessable Entity")
    if location_id != ours:
        return _error(403, _LOCATION_DENIED)
    return None


@dataclass(frozen=True)
class _Search:
    """A contact search body the sandbox can answer."""

    location_id: str
    page_limit: int
    page: int
    query: str


def _search_body(fields: Mapping[str, object]) -> _Search | str:
    """The search body as the sandbox answers it, or why it is refused (HighLevel documents a bare 400).

    `locationId`, `pageLimit` (1-500), `page` (from 1, within the first 10,000 records) and `query`
    (at most 75 characters) are read; `filters` and `sort` only when empty, `searchAfter` not at all:
    the sandbox does not evaluate them, and a refusal is truer than an answer that ignores them.
    """
    unknown = [key for key in fields if key not in _SEARCH_KEYS]
    if unknown:
        return f"property {unknown[0]} should not exist"
    for key in ("filters", "sort"):
        if fields.get(key) not in (None, []):
            return f"the sandbox does not evaluate {key}; search with query alone"
    if "searchAfter" in fields:
        return "the sandbox pages with page, not searchAfter"
    location_id = fields.get("locationId")
    if location_id is not None and not isinstance(location_id, str):
        return "locationId must be a string"
    page_limit, page = fields.get("pageLimit"), fields.get("page", 1)
    if not isinstance(page_limit, int) or isinstance(page_limit, bool) or not 1 <= page_limit <= SEARCH_MAX_PAGE:
        return f"pageLimit must be a whole number from 1 to {SEARCH_MAX_PAGE}"
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        return "page must be a whole number from 1"
    if page * page_limit > SEARCH_MAX_RECORDS:
        return f"page and pageLimit reach past record {SEARCH_MAX_RECORDS}; use searchAfter"
    query = fields.get("query", "")
    if not isinstance(query, str):
        return "query must be a string"
    if len(query) > SEARCH_MAX_QUERY:
        return f"query must be shorter than or equal to {SEARCH_MAX_QUERY} characters"
    return _Search(location_id=location_id or "", page_limit=page_limit, page=page, query=query.strip())


def _texts(fields: Mapping[str, object], messages: list[str]) -> dict[str, str]:
    """The create DTO's string fields that were sent non-empty, validated and normalised."""
    texts: dict[str, str] = {}
    for name in _STRING_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            messages.append(f"{name} must be a string")
            continue
        value = value.strip()
        if value:
            texts[name] = value
    email = texts.get("email")
    if email is not None and EMAIL.fullmatch(email) is None:
        messages.append("email must be an email")
    phone = texts.get("phone")
    if phone is not None:
        normalised = _phone(phone)
        if normalised is None:
            messages.append("phone must be a valid phone number")
        else:
            texts["phone"] = normalised
    birth = texts.get("dateOfBirth")
    if birth is not None:
        parsed = _date_of_birth(birth)
        if parsed is None:
            messages.append("dateOfBirth must be a valid date")
        else:
            texts["dateOfBirth"] = parsed
    return texts


def _phone(text: str) -> str | None:
    """A phone as HighLevel stores it, E.164; a number without `+` is taken as national in the US location."""
    if re.fullmatch(r"\+?[0-9 ().-]+", text) is None:
        return None
    digits = phone_digits(text)
    if not _MIN_PHONE_DIGITS <= len(digits) <= _MAX_PHONE_DIGITS:
        return None
    if not text.startswith("+") and len(digits) == 10:
        digits = "1" + digits
    return "+" + digits


def _date_of_birth(text: str) -> str | None:
    for pattern in _DATE_OF_BIRTH:
        match = pattern.fullmatch(text)
        if match is not None:
            day = f"{match['year']}-{match['month']}-{match['day']}"
            return day if parse_date_value(day) is not None else None
    return None


def _tags(raw: object, messages: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        messages.append("tags must be an array")
        return ()
    items = cast("list[object]", raw)
    if not all(isinstance(item, str) for item in items):
        messages.append("each value in tags must be a string")
        return ()
    # HighLevel keeps tags lower-cased and without repeats.
    return tuple(dict.fromkeys(cast("str", item).strip().lower() for item in items if cast("str", item).strip()))


def _custom_fields(raw: object, messages: list[str], *, clearing: bool = False) -> dict[int, CustomValue]:
    """The create or update DTO's `customFields` (`[{"id", "field_value"}]`) as slot values.

    With `clearing` (an update), an empty `field_value` clears the field (None) instead of being skipped.
    """
    if raw is None:
        return {}
    if not isinstance(raw, list):
        messages.append("customFields must be an array")
        return {}
    values: dict[int, CustomValue] = {}
    for index, item in enumerate(cast("list[object]", raw)):
        entry = cast("dict[str, object]", item) if isinstance(item, dict) else None
        slot = _SLOT_BY_FIELD_ID.get(str(entry.get("id"))) if entry is not None else None
        if entry is None or slot is None:
            messages.append(f"customFields.{index}.id must be the id of one of the location's custom fields")
            continue
        value = entry.get("field_value")
        if value is None or value == "" or value == []:
            if clearing:
                values[slot] = None
            continue
        kind = slot_type(slot)
        if kind is SlotType.TEXT and isinstance(value, str):
            values[slot] = value
        elif kind is SlotType.NUMBER and isinstance(value, int | float) and not isinstance(value, bool):
            values[slot] = float(value)
        elif kind is SlotType.NUMBER and isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
            values[slot] = float(value)  # the spec types a number's field_value as an object; text is read too
        elif kind is SlotType.DATE and isinstance(value, str) and parse_date_value(value) is not None:
            values[slot] = parse_date_value(value)
        else:
            messages.append(f"customFields.{index}.field_value must be a {kind.value}")
    return values


def _location_text(city: str | None, state: str | None, country: str | None) -> str | None:
    """Cometly's one-line location for an address, as the seed data writes it."""
    if city is None:
        return None
    if state and country in {"US", "CA", "AU"}:
        return f"{city}, {state}"
    known = COUNTRIES.get(country or "")
    return f"{city}, {known.name}" if known else city


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
        """HighLevel's burst-limit answer: it documents no `Retry-After`, so none is sent."""
        return _error(429, "Too many requests")

    def rate_headers(self, decision: Decision) -> Mapping[str, str]:
        """The headers HighLevel documents: the burst budget (`X-RateLimit-Max`, `-Remaining`, the interval in ms)
        and the day budget."""
        headers = {
            "X-RateLimit-Max": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Interval-Milliseconds": str(round(decision.window * 1000)),
        }
        if decision.daily is not None:
            headers["X-RateLimit-Limit-Daily"] = str(decision.daily.limit)
            headers["X-RateLimit-Daily-Remaining"] = str(decision.daily.remaining)
        return headers

    def route_error(self, request: Request, status_code: int) -> Response:
        """NestJS's answer for a route it does not have."""
        path = request.url.path.removeprefix("/highlevel")
        error = "Method Not Allowed" if status_code == 405 else "Not Found"
        return _error(status_code, f"Cannot {request.method} {path}", error=error)


def _present(fields: Mapping[str, object]) -> dict[str, object]:
    """The fields that have a value: HighLevel's schema types them as not nullable, so absent ones are left out."""
    return {key: value for key, value in fields.items() if value is not None}


def _shown_slots(row: ContactRow, labels: Mapping[int, str]) -> list[int]:
    """The slots the location defines as custom fields: the labelled ones but slot 1, which is `companyName`."""
    return [slot for slot in sorted(row.custom_fields) if slot in labels and slot != COMPANY_SLOT]


def _custom_field_values(row: ContactRow, labels: Mapping[int, str]) -> list[dict[str, object]]:
    """`customFields` as HighLevel documents them: `{id, value}` with the value as a string."""
    values: list[dict[str, object]] = []
    for slot in _shown_slots(row, labels):
        value = render_value(slot, row.custom_fields[slot])
        if value is not None and value != "":
            values.append({"id": CUSTOM_FIELD_IDS[slot], "value": str(value)})
    return values


def _attribution(item: Attribution) -> dict[str, object]:
    return _present(
        {
            "url": item.url or "",
            "campaign": item.campaign,
            "utmSource": item.utm_source,
            "utmMedium": item.utm_medium,
            "medium": item.session_source,
        }
    )


def _common(row: ContactRow, labels: Mapping[int, str], location_id: str) -> dict[str, object]:
    """The keys the get and create answers share."""
    profile = row.profile
    status = "active" if profile.dnd else "inactive"
    full_name = row.name or " ".join(part for part in (profile.first_name, profile.last_name) if part) or None
    return _present(
        {
            "id": row.highlevel_id,
            "locationId": location_id,
            "firstName": profile.first_name,
            "firstNameLowerCase": profile.first_name.lower() if profile.first_name else None,
            "lastName": profile.last_name,
            "lastNameLowerCase": profile.last_name.lower() if profile.last_name else None,
            "fullNameLowerCase": full_name.lower() if full_name else None,
            "email": row.email,
            "emailLowerCase": row.email.lower() if row.email else None,
            "companyName": row.custom_fields.get(COMPANY_SLOT),
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
            "dateAdded": iso_millis(row.created_at),
            "dateUpdated": iso_millis(row.updated_at),
            "customFields": _custom_field_values(row, labels),
        }
    )


def _contact(row: ContactRow, labels: Mapping[int, str], location_id: str) -> dict[str, object]:
    """A contact as `GET /contacts/{contactId}` shows it (`GetContectByIdSchema`)."""
    profile = row.profile
    contact = _common(row, labels, location_id)
    extra = _present(
        {
            "name": row.name,
            "timezone": profile.timezone,
            "dateOfBirth": profile.date_of_birth,
            "attributionSource": _attribution(profile.attributions[0]) if profile.attributions else None,
            "lastAttributionSource": _attribution(profile.attributions[-1]) if profile.attributions else None,
        }
    )
    return {**contact, **extra}


def _created_contact(row: ContactRow, labels: Mapping[int, str], location_id: str) -> dict[str, object]:
    """A contact as `POST /contacts/` answers it (`CreateContactSchema`): no name or attribution, more flags."""
    birth = row.profile.date_of_birth
    extra = _present(
        {
            "deleted": False,
            "bounceEmail": False,
            "unsubscribeEmail": False,
            "dateOfBirth": f"{birth}T00:00:00.000Z" if birth else None,
            "birthMonth": int(birth[5:7]) - 1 if birth else None,
            "birthDay": int(birth[8:10]) if birth else None,
            "offers": [],
            "products": [],
        }
    )
    return {**_common(row, labels, location_id), **extra}


_DATA_TYPES = {SlotType.TEXT: "TEXT", SlotType.NUMBER: "NUMERICAL", SlotType.DATE: "DATE"}


def _field_definitions(labels: Mapping[int, str], location_id: str) -> list[dict[str, object]]:
    """The location's contact fields, as `GET /locations/{locationId}/customFields` lists them."""
    definitions: list[dict[str, object]] = []
    for position, (slot, label) in enumerate((slot, label) for slot, label in labels.items() if slot != COMPANY_SLOT):
        key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        definitions.append(
            {
                "id": CUSTOM_FIELD_IDS[slot],
                "name": label,
                "fieldKey": f"contact.{key}",
                "placeholder": label,
                "dataType": _DATA_TYPES[slot_type(slot)],
                "position": position * 50,
                "picklistOptions": [],
                "picklistImageOptions": [],
                "isAllowedCustomOption": False,
                "isMultiFileAllowed": False,
                "maxFileLimit": 0,
                "locationId": location_id,
                "model": "contact",
            }
        )
    return definitions
