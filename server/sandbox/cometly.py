"""Cometly's Public API v1 contacts endpoints, under `/cometly/public-api/v1`.

Follows Cometly's API pages as `UPSTREAMS.md` records them: get one contact (unwrapped, with
optional comet tokens, events and browsing session hits), list contacts by creation time with
Laravel cursor pagination and custom-field filters, and create a contact. Errors are
`{"message": ...}`, with Laravel's `errors` on a 422.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import cast

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .filters import parse_conditions
from .laravel import Cursor, ValidationErrors, attribute, is_numeric, parse_boolean, parse_integer
from .model import (
    DATETIME_FORMAT,
    EMAIL,
    SLOT_COUNT,
    BrowsingHit,
    ContactRow,
    ContactSummary,
    CustomValue,
    Event,
    NewContact,
    Profile,
    SlotType,
    Stamped,
    laravel_timestamp,
    parse_date_value,
    parse_slot_key,
    render_value,
    slot_key,
    slot_type,
    unix,
    utc_text,
)
from .ratelimit import Decision
from .routing import (
    Caller,
    Sandbox,
    Vendor,
    anonymous,
    bearer_token,
    guarded,
    same_key,
    standard_rate_headers,
)
from .store import ListQuery

PREFIX = "/cometly/public-api/v1"

MAX_COLLECTION = 25
MAX_COMET_TOKENS = 5
MAX_BROWSING_HITS = 1000
MAX_PER_PAGE = 5000
DEFAULT_PER_PAGE = 200
MAX_TEXT_FIELD = 10_240
MAX_STRING = 255

_GET_FLAGS = {
    "include_comet_tokens": False,
    "include_events": False,
    "hide_direct_touchpoints": True,
    "use_custom_field_labels": False,
    "include_browsing_session_data": False,
}
_LIST_FLAGS = {
    "include_comet_tokens": False,
    "include_all_emails": False,
    "include_custom_fields": False,
    "use_custom_field_labels": False,
}
# The element key of each stamped collection in a contact's arrays.
_COLLECTIONS = (("emails", "email"), ("phones", "phone"), ("names", "name"), ("locations", "location"))
_CONTACT_ID = re.compile(r"[0-9]+")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def build(sandbox: Sandbox, key: str) -> Vendor:
    """Cometly's routes over the sandbox, accepting `key` as the Space's API key."""
    rules = CometlyRules(key)
    api = _CometlyApi(sandbox)
    limiter = sandbox.limiter
    return Vendor(
        prefix="/cometly",
        rules=rules,
        routes=[
            Route(
                f"{PREFIX}/contacts/{{contact_id}}",
                guarded("cometly.get_contact", rules, limiter, api.get_contact),
                methods=["GET"],
                name="cometly.get_contact",
            ),
            Route(
                f"{PREFIX}/contacts",
                guarded("cometly.list_contacts", rules, limiter, api.list_contacts),
                methods=["GET"],
                name="cometly.list_contacts",
            ),
            Route(
                f"{PREFIX}/contacts",
                guarded("cometly.create_contact", rules, limiter, api.create_contact),
                methods=["POST"],
                name="cometly.create_contact",
            ),
            Route(
                f"{PREFIX}/contacts/{{contact_id}}",
                guarded("cometly.update_contact", rules, limiter, api.update_contact),
                methods=["PUT"],
                name="cometly.update_contact",
            ),
        ],
    )


def _message(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status_code)


INACTIVE_KEY = "sbx-cm-off-K6wP1zR8dT3y"
"""A key the sandbox knows but refuses with 403, as Cometly does for an inactive subscription.

Random like `SANDBOX_KEYS`: a server holding this key redacts any 8 characters of it ("inactive" too).
"""


class CometlyRules:
    """Bearer-key authentication and Laravel's error and throttle shapes."""

    def __init__(self, key: str) -> None:
        self._key = key

    def identify(self, request: Request) -> Caller:
        """The Space's key; the inactive Space's key, refused with 403; or anyone else, refused with 401."""
        token = bearer_token(request)
        if same_key(token, self._key):
            return Caller(client=self._key)
        if same_key(token, INACTIVE_KEY):
            return Caller(client=INACTIVE_KEY, rejection=_message(403, "Your subscription is inactive."))
        return Caller(client=anonymous(request), rejection=_message(401, "Unauthenticated."))

    def too_many_requests(self, decision: Decision) -> Response:
        """Laravel's throttle answer, with `Retry-After` as Cometly documents."""
        response = _message(429, "Too Many Attempts.")
        response.headers["Retry-After"] = str(decision.retry_after)
        return response

    def rate_headers(self, decision: Decision) -> Mapping[str, str]:
        """The standard pair; a refusal also carries Laravel's `X-RateLimit-Reset` (Unix time)."""
        headers = standard_rate_headers(decision)
        if not decision.allowed:
            headers["X-RateLimit-Reset"] = str(int(time.time()) + decision.retry_after)
        return headers

    def route_error(self, request: Request, status_code: int) -> Response:
        """Laravel's answers for an unknown route or a method the route does not allow."""
        path = request.url.path.removeprefix("/cometly/")
        if status_code == 405:
            return _message(405, f"The {request.method} method is not supported for route {path}.")
        return _message(status_code, f"The route {path} could not be found.")


@dataclass(frozen=True)
class _ListParams:
    start: datetime
    end: datetime
    per_page: int
    cursor: Cursor | None
    flags: Mapping[str, bool]


class _CometlyApi:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._store = sandbox.store
        self._fold = 0 if sandbox.ambiguous == "earlier" else 1

    async def get_contact(self, request: Request) -> Response:
        raw_id: str = request.path_params["contact_id"]
        # Digits only: Laravel's integer rule would let a sign through, but no id has one.
        contact_id = parse_integer(raw_id) if _CONTACT_ID.fullmatch(raw_id) else None
        if contact_id is None:
            return _message(422, "Invalid contact ID provided")
        errors = ValidationErrors()
        flags = _flags(request.query_params, _GET_FLAGS, errors)
        if errors:
            return errors.response()
        store = self._store
        row = await store.run(lambda: store.contact(contact_id))
        if row is None:
            return _message(404, "Contact not found.")
        body = await store.run(lambda: self._contact_detail(row, flags))
        return JSONResponse(body)

    def _contact_detail(self, row: ContactRow, flags: Mapping[str, bool]) -> dict[str, object]:
        store = self._store
        body: dict[str, object] = {"id": row.id}
        for plural, singular in _COLLECTIONS:
            values = store.values([row.id], singular, limit=MAX_COLLECTION)[row.id]
            body[plural] = _stamped(values, singular)
        if flags["include_comet_tokens"]:
            tokens = store.values([row.id], "comet_token", limit=MAX_COMET_TOKENS)[row.id]
            body["comet_tokens"] = _stamped(tokens, "comet_token")
        if flags["include_events"]:
            events = store.events(row.id, include_direct=not flags["hide_direct_touchpoints"])
            body["events"] = [_event(event_id, event) for event_id, event in events]
        labels: Mapping[int, str] = store.labels if flags["use_custom_field_labels"] else {}
        body["custom_fields"] = _custom_fields(row.custom_fields, _field_keys(labels))
        if flags["include_browsing_session_data"]:
            body["browsing_session_hits"] = [_hit(hit) for hit in store.browsing_hits(row.id, limit=MAX_BROWSING_HITS)]
        return body

    async def list_contacts(self, request: Request) -> Response:
        errors = ValidationErrors()
        params = _list_params(request.query_params, errors, zone=self._sandbox.zone, fold=self._fold)
        conditions = parse_conditions(request.query_params.multi_items(), self._store.labels, errors)
        if errors or params is None:
            return errors.response()
        cursor = params.cursor
        backwards = cursor is not None and not cursor.points_to_next_items
        query = ListQuery(
            start=unix(params.start),
            end=unix(params.end),
            conditions=conditions,
            today=self._sandbox.clock().date(),
            limit=params.per_page,
            after_id=cursor.id if cursor is not None and not backwards else None,
            before_id=cursor.id if cursor is not None and backwards else None,
        )
        store = self._store
        rows = await store.run(lambda: store.list_contacts(query))
        # Laravel's CursorPaginator: one extra row tells whether there is more in the walking direction.
        has_more = len(rows) > params.per_page
        rows = rows[: params.per_page]
        if backwards:
            rows.reverse()
        next_cursor = None
        if rows and (backwards or has_more):
            next_cursor = Cursor(rows[-1].id, points_to_next_items=True).encode()
        prev_cursor = None
        if rows and cursor is not None and (not backwards or has_more):
            prev_cursor = Cursor(rows[0].id, points_to_next_items=False).encode()
        items = await store.run(lambda: self._list_items(rows, params.flags))
        path = str(request.url.replace(query=""))
        return JSONResponse(
            {
                "data": items,
                "path": path,
                "per_page": params.per_page,
                "next_cursor": next_cursor,
                "next_page_url": f"{path}?cursor={next_cursor}" if next_cursor else None,
                "prev_cursor": prev_cursor,
                "prev_page_url": f"{path}?cursor={prev_cursor}" if prev_cursor else None,
            }
        )

    def _list_items(self, rows: Sequence[ContactSummary], flags: Mapping[str, bool]) -> list[dict[str, object]]:
        store = self._store
        ids = [row.id for row in rows]
        tokens = store.values(ids, "comet_token", limit=MAX_COMET_TOKENS) if flags["include_comet_tokens"] else {}
        emails = store.values(ids, "email") if flags["include_all_emails"] else {}
        keys = _field_keys(store.labels if flags["use_custom_field_labels"] else {})
        items: list[dict[str, object]] = []
        for row in rows:
            item: dict[str, object] = {
                "id": row.id,
                "email": row.email,
                "name": row.name,
                "phone": row.phone,
                "location": row.location,
            }
            if flags["include_comet_tokens"]:
                item["comet_tokens"] = _stamped(tokens[row.id], "comet_token")
            if flags["include_all_emails"]:
                item["emails"] = _stamped(emails[row.id], "email")
            if flags["include_custom_fields"]:
                item.update(_custom_fields(row.custom_fields, keys))
            items.append(item)
        return items

    async def create_contact(self, request: Request) -> Response:
        try:
            payload: object = json.loads(await request.body())
        except ValueError:
            # Laravel reads a body it cannot parse as no input at all, so the answer is "emails is required".
            payload = None
        fields = cast("dict[str, object]", payload) if isinstance(payload, dict) else {}
        errors = ValidationErrors()
        emails = _string_list(fields, "emails", errors, required=True, email=True)
        phones = _string_list(fields, "phones", errors)
        names = _string_list(fields, "names", errors)
        locations = _string_list(fields, "locations", errors)
        custom = _custom_field_input(fields.get("custom_fields"), errors)
        if errors:
            return errors.response()
        now = unix(self._sandbox.clock())
        given = {"emails": emails, "phones": phones, "names": names, "locations": locations}
        stamped = {plural: [Stamped(value, now) for value in values] for plural, values in given.items()}
        first, _, last = names[0].partition(" ") if names else ("", "", "")

        def new_contact(contact_id: int) -> NewContact:
            return NewContact(
                id=contact_id,
                created_at=now,
                emails=stamped["emails"],
                phones=stamped["phones"],
                names=stamped["names"],
                locations=stamped["locations"],
                custom_fields={slot: value for slot, value in (custom or {}).items() if value is not None},
                profile=Profile(first_name=first or None, last_name=last or None, source="api"),
            )

        store = self._store
        row = await store.run(lambda: store.create(new_contact))
        body: dict[str, object] = {"id": row.id}
        body.update((plural, _stamped(stamped[plural], singular)) for plural, singular in _COLLECTIONS)
        if custom is not None:
            body["custom_fields"] = {
                slot_key(slot): render_value(slot, value) for slot, value in sorted(custom.items())
            }
        return JSONResponse(body, status_code=201)

    async def update_contact(self, request: Request) -> Response:
        """Sparse replacement: each collection sent replaces that collection (`[]` wipes it, the first item is
        primary); `custom_fields`, when sent, replaces all 30 slots (a slot not sent becomes null). The answer
        holds the id and what was sent: collections as stamped, `custom_fields` with all 30 slots."""
        raw_id: str = request.path_params["contact_id"]
        contact_id = parse_integer(raw_id) if _CONTACT_ID.fullmatch(raw_id) else None
        if contact_id is None:
            return _message(422, "Invalid contact ID provided")
        try:
            payload: object = json.loads(await request.body())
        except ValueError:
            payload = None
        fields = cast("dict[str, object]", payload) if isinstance(payload, dict) else {}
        errors = ValidationErrors()
        sent = [plural for plural, _ in _COLLECTIONS if plural in fields]
        if not sent and "custom_fields" not in fields:
            errors.add(
                "emails",
                "The emails field is required when none of phones / names / locations / custom fields are present.",
            )
        lists = {plural: _string_list(fields, plural, errors, email=plural == "emails") for plural in sent}
        custom = _custom_field_input(fields.get("custom_fields"), errors) if "custom_fields" in fields else None
        if "custom_fields" in fields and fields.get("custom_fields") is None:
            custom = {}
        if errors:
            return errors.response()
        store = self._store
        row = await store.run(lambda: store.contact(contact_id))
        if row is None:
            return _message(404, "Contact not found.")
        now = unix(self._sandbox.clock())
        canonical = row.id
        singular = dict(_COLLECTIONS)
        slots = None if custom is None else {slot: custom.get(slot) for slot in range(1, SLOT_COUNT + 1)}
        collections = {singular[plural]: values for plural, values in lists.items()}
        await store.run(lambda: store.update(canonical, now=now, collections=collections, slots=slots))
        body: dict[str, object] = {"id": canonical}
        for plural in sent:
            stored = await store.run(lambda plural=plural: store.values([canonical], singular[plural])[canonical])
            body[plural] = _stamped(stored[:MAX_COLLECTION], singular[plural])
        if slots is not None:
            body["custom_fields"] = {slot_key(slot): render_value(slot, value) for slot, value in slots.items()}
        return JSONResponse(body)


def _flags(params: QueryParams, defaults: Mapping[str, bool], errors: ValidationErrors) -> dict[str, bool]:
    flags = dict(defaults)
    for name in defaults:
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        value = parse_boolean(raw)
        if value is None:
            errors.add(name, f"The {attribute(name)} field must be true or false.")
        else:
            flags[name] = value
    return flags


def _list_params(params: QueryParams, errors: ValidationErrors, *, zone: tzinfo, fold: int) -> _ListParams | None:
    start = _datetime(params, "start_date", errors, zone=zone, fold=fold)
    end = _datetime(params, "end_date", errors, zone=zone, fold=fold)
    if start is not None and end is not None and end <= start:
        errors.add("end_date", "The end date field must be a date after start date.")
    per_page = DEFAULT_PER_PAGE
    raw = params.get("per_page", "")
    if raw != "":
        number = parse_integer(raw)
        if number is None:
            errors.add("per_page", "The per page field must be an integer.")
        elif number < 1:
            errors.add("per_page", "The per page field must be at least 1.")
        elif number > MAX_PER_PAGE:
            errors.add("per_page", f"The per page field must not be greater than {MAX_PER_PAGE}.")
        else:
            per_page = number
    cursor = None
    raw = params.get("cursor", "")
    if raw != "":
        cursor = Cursor.decode(raw)
        if cursor is None:
            errors.add("cursor", "The cursor is invalid; use a next_cursor or prev_cursor from an earlier page.")
    flags = _flags(params, _LIST_FLAGS, errors)
    if errors or start is None or end is None:
        return None
    # Labels rename custom-field keys only where the fields are included at all.
    flags["use_custom_field_labels"] = flags["use_custom_field_labels"] and flags["include_custom_fields"]
    return _ListParams(start=start, end=end, per_page=per_page, cursor=cursor, flags=flags)


def _datetime(params: QueryParams, name: str, errors: ValidationErrors, *, zone: tzinfo, fold: int) -> datetime | None:
    raw = params.get(name, "")
    if raw == "":
        errors.required(name)
        return None
    if _DATETIME.fullmatch(raw):
        try:
            # Wall time in the Space's timezone (UTC unless the sandbox was given another).
            wall = datetime.strptime(raw, DATETIME_FORMAT)
            return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    errors.add(name, f"The {attribute(name)} field must match the format Y-m-d H:i:s.")
    return None


def _string_list(
    fields: Mapping[str, object], name: str, errors: ValidationErrors, *, required: bool = False, email: bool = False
) -> list[str]:
    raw = fields.get(name)
    if raw is None or raw == []:
        if required:
            errors.required(name)
        return []
    if not isinstance(raw, list):
        errors.add(name, f"The {attribute(name)} field must be an array.")
        return []
    values: list[str] = []
    for index, item in enumerate(cast("list[object]", raw)):
        key = f"{name}.{index}"
        # Laravel's TrimStrings and ConvertEmptyStringsToNull run before validation.
        text = (item.strip() or None) if isinstance(item, str) else item
        if text is None and email:
            errors.required(key)
        elif email and (not isinstance(text, str) or EMAIL.fullmatch(text) is None):
            errors.add(key, f"The {attribute(key)} field must be a valid email address.")
        elif not isinstance(text, str):
            errors.add(key, f"The {attribute(key)} field must be a string.")
        elif len(text) > MAX_STRING:
            errors.add(key, f"The {attribute(key)} field must not be greater than {MAX_STRING} characters.")
        else:
            values.append(text)
    return values


def _custom_field_input(raw: object, errors: ValidationErrors) -> dict[int, CustomValue] | None:
    """The validated `custom_fields` of a create body, by slot; None when none were sent."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.add("custom_fields", "The custom fields field must be an array.")
        return None
    given = cast("dict[str, object]", raw)
    invalid = [key for key in given if parse_slot_key(key) is None]
    if invalid:
        errors.add(
            "custom_fields",
            f"The custom fields field has invalid keys: {', '.join(invalid)}. "
            f"Keys are profile_field_1 to profile_field_{SLOT_COUNT}.",
        )
        return None
    values: dict[int, CustomValue] = {}
    for key, item in given.items():
        slot = parse_slot_key(key)
        assert slot is not None
        name = f"custom_fields.{key}"
        value = item.strip() if isinstance(item, str) else item
        if value is None or value == "":
            values[slot] = None
            continue
        kind = slot_type(slot)
        if kind is SlotType.TEXT:
            if not isinstance(value, str):
                errors.add(name, f"The {attribute(name)} field must be a string.")
            elif len(value) > MAX_TEXT_FIELD:
                errors.add(name, f"The {attribute(name)} field must not be greater than {MAX_TEXT_FIELD} characters.")
            else:
                values[slot] = value
        elif kind is SlotType.NUMBER:
            number = _number(value)
            if number is None:
                errors.add(name, f"The {attribute(name)} field must be a number.")
            else:
                values[slot] = number
        else:
            date_value = parse_date_value(value) if isinstance(value, str) else None
            if date_value is None:
                errors.add(name, f"The {attribute(name)} field must match the format Y-m-d or Y-m-d H:i:s.")
            else:
                values[slot] = date_value
    return values


def _number(value: object) -> float | None:
    """A JSON number or numeric string as a finite float (Laravel's `numeric`); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or not is_numeric(str(value)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _stamped(values: Sequence[Stamped], key: str) -> list[dict[str, object]]:
    return [{key: item.value, "created_at": laravel_timestamp(item.created_at)} for item in values]


def _field_keys(labels: Mapping[int, str]) -> list[tuple[int, str]]:
    """Each slot with the key it shows under: its label when `labels` has one, else `profile_field_N`."""
    return [(slot, labels.get(slot, slot_key(slot))) for slot in range(1, SLOT_COUNT + 1)]


def _custom_fields(values: Mapping[int, CustomValue], keys: Sequence[tuple[int, str]]) -> dict[str, object]:
    """All 30 slots in order under `keys`, unset ones null."""
    return {key: render_value(slot, values[slot]) if slot in values else None for slot, key in keys}


def _event(event_id: int, event: Event) -> dict[str, object]:
    if event.kind == "conversion":
        conversion: dict[str, object] = {
            "type": "conversion",
            "id": event_id,
            "event_name": event.event_name,
            "amount": event.amount,
            "event_time_utc": utc_text(event.event_time),
            "event_url": event.event_url,
            "order_id": event.order_id,
            "order_name": event.order_name,
            "channel": event.channel,
        }
        if event.channel == "server":
            conversion["integration"] = event.integration
        return conversion
    return {
        "type": "touchpoint",
        "event_time_utc": utc_text(event.event_time),
        "source": event.source,
        "touchpoint_url": event.touchpoint_url,
        "referrer_url": event.referrer_url,
        "ad_id": event.ad_id,
        "ad_name": event.ad_name,
        "adset_id": event.adset_id,
        "adset_name": event.adset_name,
        "campaign_id": event.campaign_id,
        "campaign_name": event.campaign_name,
        "account_id": event.account_id,
        "account_name": event.account_name,
    }


def _hit(hit: BrowsingHit) -> dict[str, object]:
    return {
        "event_url": hit.event_url,
        "referrer_host": hit.referrer_host,
        "source": hit.source,
        "country": hit.country,
        "device_type": hit.device_type,
        "browser": hit.browser,
        "os": hit.os,
        "event_name": hit.event_name,
        "event_time_utc": utc_text(hit.event_time),
    }
