"""Cometly's Public API v1: get, list (cursor pages, custom-field filters) and create contacts.

Every request carries `Authorization: Bearer <key>`, `Accept: application/json` and
`Content-Type: application/json`, as Cometly's authentication page asks (GET included). The docs
leave the element shape of `emails`, `phones`, `names` and `locations` open (typed `array`,
placeholder `[{}]`), so both plain strings and objects are read, taking the `email` / `phone` /
`name` / `location` / `value` key; anything else is skipped rather than crashing the call.
`CONTACT_KEYS` says where each key of a contact goes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast
from zoneinfo import ZoneInfo

import httpx
from pydantic import JsonValue

from ...tools.journey import journey_of
from ...tools.models import (
    CometlyDetails,
    Contact,
    ContactMatches,
    ContactPage,
    CustomFields,
    FilterCondition,
    GetContactQuery,
    ListContactsQuery,
    Lookup,
    NewContact,
    iso_utc,
    slot_value,
)
from ...tools.updates import (
    ContactChanges,
    ContactUpdate,
    changes_of,
    compared,
    merged_list,
    nothing_to_change,
    same_email,
    same_value,
)
from ..budgets import Budgets
from ..budgets.background import Priority
from ..errors import ContactsError, NotFound, NotSupported, RateLimited, ValidationFailed
from ..http import QueryParams, Upstream, path
from ..index.base import Entry
from ..index.dating import exact_created_at
from ..index.lookup import ENABLE_INDEX, dated, entry_of, find_in_index, scan_recent
from ..index.service import ContactIndex, narrowed
from ..settings import CometlySettings, Rate, Settings
from .base import (
    ID_SOURCES,
    Capability,
    Clock,
    Destination,
    Provider,
    created,
    look_up_before_creating_again,
    unexpected_shape,
    unmapped,
    upstream_id,
)
from .cometly_fields import (
    CONTACTS_PER_VALUE,
    MAX_VALUES_IN_USE,
    FieldCache,
    Labels,
    discover,
    keyed_by_label,
    named_fields,
    named_slots,
    named_unresolved,
    resolve_field,
)

logger = logging.getLogger(__name__)

_CONTACT_ID = re.compile(r"^[1-9][0-9]{0,18}$")
REFRESH_AFTER_422_SECONDS = 60.0
"""The least time between two re-reads of the labels that 422s about unlabelled slots set off."""
MAX_QUERY_CHARS = 60_000
"""The longest encoded query a list request sends; httpx refuses a URL part over 65,536 characters."""
LIST_ITEM_KEYS: Mapping[str, Destination] = {
    "id": "id",
    "email": "emails",
    "emails": "emails",  # with include_all_emails: every email, merged profiles' included
    "name": "names",
    "phone": "phones",
    "location": "locations",
    "comet_tokens": "comet_tokens",
    "created_at": "created_at",  # not documented on a list item; shown if Cometly ever sends it
}
"""Where each key of a list item goes; any other key is a custom field (labelled ones arrive under their labels)."""
CONTACT_KEYS: Mapping[str, Destination] = {
    "id": "id",
    "emails": "emails",
    "phones": "phones",
    "names": "names",
    "locations": "locations",
    "comet_tokens": "comet_tokens",
    "events": "events",
    "custom_fields": "custom_fields",  # unset slots are null, and results leave empty fields out
    "browsing_session_hits": "browsing_hits",
    "browsing_hits": "browsing_hits",  # the seed page's name for the hits; read too, in case it is seen
    "created_at": "created_at",  # not documented on a contact; shown if Cometly ever sends it
}
"""Where each key of Cometly's contact (get and create answers) goes; any other key goes to `cometly`."""
_UPDATE_COLLECTIONS = ("emails", "phones", "names", "locations")
_SLOTS = tuple(f"profile_field_{number}" for number in range(1, 31))
_ELEMENT_KEYS = {
    "emails": ("email", "value", "address"),
    "phones": ("phone", "number", "value"),
    "names": ("name", "full_name", "value"),
    "locations": ("location", "value"),
}


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _read_error(body: Any) -> str | None:
    """Cometly errors are `{"message": ...}`; Laravel's `errors` on a 422 name every field at fault.

    Laravel's `message` repeats the first field error, so when `errors` is there it stands alone.
    """
    if not isinstance(body, dict):
        return None
    body = cast(dict[str, Any], body)
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        details: list[str] = []
        for field, messages in cast(dict[str, Any], errors).items():
            texts = cast(list[Any], messages) if isinstance(messages, list) else [messages]
            details.append(f"{field}: {' '.join(str(text) for text in texts)}")
        return "; ".join(details)
    message = body.get("message")
    return str(message) if message else None


def _texts(items: Any, keys: tuple[str, ...]) -> list[str]:
    """Strings out of a list whose elements are strings or objects; unknown shapes are skipped."""
    if not isinstance(items, list):
        return []
    texts: list[str] = []
    for item in cast(list[Any], items):
        if isinstance(item, dict):
            fields = cast(dict[str, Any], item)
            item = next((fields[k] for k in keys if isinstance(fields.get(k), str | int | float)), None)
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            text = str(item).strip()
            if text and text not in texts:
                texts.append(text)
    return texts


def _objects(items: Any) -> list[dict[str, JsonValue]] | None:
    if not isinstance(items, list):
        return None
    return [cast(dict[str, JsonValue], item) for item in cast(list[Any], items) if isinstance(item, dict)]


def _set_fields(fields: Mapping[str, Any]) -> dict[str, JsonValue]:
    return {str(key): cast(JsonValue, value) for key, value in fields.items() if value is not None and value != ""}


class Cometly(Provider):
    """Cometly contacts, with the rate limits its API pages document (per Space, per minute)."""

    name = "cometly"
    label = "Cometly"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"get_contact", "list_contacts", "filter_by_custom_field", "create_contact", "find_contact", "update_contact"}
    )
    default_budgets: ClassVar[Mapping[str, tuple[Rate, ...]]] = {
        # The API page says 30 a minute, the MCP page 15: start at 15, and X-RateLimit-Limit raises it.
        "cometly.get_contact": (Rate(15, 60.0),),
        "cometly.list_contacts": (Rate(15, 60.0),),
        "cometly.create_contact": (Rate(60, 60.0),),
        # Not established: the create's 60 a minute (server/undocumented.py), and X-RateLimit-Limit corrects it.
        "cometly.update_contact": (Rate(60, 60.0),),
    }
    create_takes: ClassVar[frozenset[str]] = frozenset({"phones", "names", "locations", "custom_fields"})
    update_takes: ClassVar[frozenset[str]] = frozenset(
        {"custom_fields", *(f"{verb}_{key}" for verb in ("add", "remove") for key in _UPDATE_COLLECTIONS)}
    )

    def __init__(
        self,
        settings: CometlySettings,
        upstream: Upstream,
        *,
        fields_ttl_seconds: float = 3_600.0,
        clock: Clock | None = None,
    ) -> None:
        self._zone = ZoneInfo(settings.timezone)
        self._upstream = upstream
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._fields = FieldCache(
            discover=self._discover_fields, ttl_seconds=fields_ttl_seconds, wall_clock=lambda: self._clock()
        )
        self._fields_ttl = fields_ttl_seconds
        self._refreshed_at: float | None = None
        self._index: ContactIndex | None = None

    def attach_index(self, index: ContactIndex | None) -> None:
        """Use `index` for find_contact, duplicate checks and sign-up dates (None: the index is off)."""
        self._index = index

    @property
    def index(self) -> ContactIndex | None:
        return self._index

    def clock(self) -> datetime:
        """The current moment (aware), as this provider reads it."""
        return self._clock()

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return settings.cometly.configured

    @classmethod
    def account(cls, settings: Settings) -> str:
        return f"cometly\0{settings.cometly.key()}"  # limits are per Space, and a key belongs to one Space

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        budgets: Budgets,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> Cometly:
        upstream = cls._open_upstream(
            settings,
            settings.cometly,
            headers={"Authorization": f"Bearer {settings.cometly.key()}", "Content-Type": "application/json"},
            read_error=_read_error,
            budgets=budgets,
            transport=transport,
        )
        return cls(settings.cometly, upstream, fields_ttl_seconds=settings.custom_fields_ttl_seconds, clock=clock)

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def get_contact(self, query: GetContactQuery) -> Contact:
        if query.exact_created_at and self._index is None:
            raise NotSupported(
                "exact_created_at needs the contact index, which is off on this server; "
                f"{ENABLE_INDEX}, or leave exact_created_at out. Nothing was sent."
            )
        contact = await self.read_contact(query)
        if self._index is None:
            return contact
        if query.exact_created_at:
            try:
                moment = await exact_created_at(self, self._index.store, self._index.account, contact.id)
            except RateLimited as exc:
                raise RateLimited(
                    f"{exc.message} Dating to the second takes about 17 list requests; the window proved so far "
                    "is kept, so calling again once the budget has room goes on from there.",
                    retry_after=exc.retry_after,
                ) from exc
            if moment is not None:
                return contact.model_copy(update={"created_at": iso_utc(moment.timestamp()), "created_between": None})
        entry = (await self._index.get([contact.id])).get(contact.id)
        return dated(contact, entry)

    async def read_contact(self, query: GetContactQuery) -> Contact:
        """One contact as Cometly has it now, without what the index knows of its sign-up: one request.

        Raises:
            ContactsError: Classified failures (`NotFound` for an unknown id, ...).
        """
        contact_id = query.contact_id.strip()
        if not _CONTACT_ID.match(contact_id):
            raise ValidationFailed(
                f"contact_id {query.contact_id[:40]!r} is not a Cometly contact id; ids are whole numbers "
                "such as 4821 and come from list_contacts or filter_by_custom_field."
            )
        params = [
            ("include_comet_tokens", _flag(query.include_comet_tokens)),
            ("include_events", _flag(query.include_events)),
            ("use_custom_field_labels", _flag(query.use_custom_field_labels)),
            ("include_browsing_session_data", _flag(query.include_browsing_hits)),
        ]
        if query.include_events:  # Cometly reads it only with include_events=1
            params.insert(2, ("hide_direct_touchpoints", _flag(not query.include_direct_touchpoints)))
        body = await self._upstream.request(
            "cometly.get_contact",
            "GET",
            path("contacts", contact_id),
            params=params,
            not_found=f"Cometly has no contact {contact_id}; {ID_SOURCES}.",
        )
        contact = self._detail(body)
        if query.include_events and contact.events is not None:
            # Summed up here, from every event returned: the tool's `limit` cuts only the list.
            journey = journey_of(contact.events, direct_included=query.include_direct_touchpoints)
            contact = contact.model_copy(update={"journey": journey})
        return contact

    async def list_contacts(self, query: ListContactsQuery) -> ContactPage:
        conditions = await self._on_slots(query.conditions)
        try:
            page = await self._list(self._list_params(query, conditions))
        except ValidationFailed as exc:
            if exc.status != 422 or not set(named_slots(exc.message)) & {c.field for c, _ in conditions}:
                raise
            # A slot lost its label (or a label moved) since the labels were read: read them again, and
            # send once more if a label now names another slot; otherwise say which fields can be filtered.
            fields = await self._labels_after_422()
            again = _on_slots_with(query.conditions, fields) if fields is not None else conditions
            if [c.field for c, _ in again] == [c.field for c, _ in conditions]:
                raise ValidationFailed(f"{exc.message} {_labelled_now(fields)}", status=exc.status) from exc
            conditions = again
            page = await self._list(self._list_params(query, conditions))
        if conditions:
            page.filters = [condition.on_day(query.today).applied(label) for condition, label in conditions]
        return await self._dated_page(page, query)

    async def _dated_page(self, page: ContactPage, query: ListContactsQuery) -> ContactPage:
        """The page's contacts with their sign-up windows: the range listed proves each was created in it,
        and the index may know a narrower window."""
        after, before = _utc(query.range.start), _utc(query.range.end)
        known = await self._index.get([c.id for c in page.contacts]) if self._index and page.contacts else {}
        in_range = Entry(id="", created_after=after, created_before=before)
        dates = {contact_id: narrowed(entry, after, before) for contact_id, entry in known.items()}
        page.contacts = [dated(contact, dates.get(contact.id, in_range)) for contact in page.contacts]
        learned = [entry for contact_id, entry in dates.items() if _narrower(entry, known[contact_id])]
        if self._index is not None and learned:
            try:  # what this listing proved is kept: a later get_contact or find_contact shows it too
                await self._index.note(learned)
            except ContactsError as exc:
                logger.warning("could not keep the sign-up windows a list proved: %s", exc.kind)
        return page

    async def find_contacts(self, lookup: Lookup, *, limit: int) -> ContactMatches:
        if self._index is None:
            return await scan_recent(self, lookup, limit=limit, now=self._clock())
        return await find_in_index(self, self._index, lookup, limit=limit)

    async def duplicate_of(self, email: str) -> Contact | None:
        if self._index is None:
            return None  # no lookup without the index; a scan per create would spend the list budget
        try:
            # No wait for a backfill still running: the check covers what is indexed, the create goes on.
            found = await find_in_index(self, self._index, Lookup(email=email), limit=1, wait=0)
        except NotFound:
            return None
        return found.contacts[0] if found.contacts else None

    def contact_of(self, entry: Entry) -> Contact:
        """An index entry as a Contact (its primary values as the list endpoint gave them), dated.

        The index keeps custom fields by slot; they are keyed by the labels already discovered (no
        request is spent on it), and a slot no label is pinned to keeps its slot name.
        """
        discovered = self._fields.cached
        contact = Contact(
            id=entry.id,
            provider=self.name,
            emails=list(entry.emails),
            phones=list(entry.phones),
            names=list(entry.names),
            locations=list(entry.locations),
            custom_fields=keyed_by_label(entry.custom_fields, (discovered.fields if discovered else None) or []),
        )
        return dated(contact, entry)

    async def _labels_after_422(self) -> Labels | None:
        """The labels after Cometly refused a slot: read again, at most once a minute, never failing the call.

        A model that keeps naming unlabelled slots would otherwise spend two list requests of the tiny
        budget (15 a minute) on every try; and a failed re-read must not hide the 422 it follows.
        """
        cached = self._fields.cached
        now = time.monotonic()
        if self._refreshed_at is not None and now - self._refreshed_at < REFRESH_AFTER_422_SECONDS:
            return cached.labels if cached else None
        self._refreshed_at = now
        try:
            return (await self._fields.get(refresh=True)).labels
        except ContactsError as exc:
            logger.info("could not read Cometly's custom-field labels again after a 422: %s", exc.kind)
            return cached.labels if cached else None

    def _list_params(
        self, query: ListContactsQuery, conditions: Sequence[tuple[FilterCondition, str | None]]
    ) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = [
            # isoformat, not %Y: strftime writes year 1 as "1", which Cometly's Y-m-d H:i:s refuses
            ("start_date", query.range.start.isoformat(sep=" ", timespec="seconds")),
            ("end_date", query.range.end.isoformat(sep=" ", timespec="seconds")),
            ("per_page", str(query.per_page)),
        ]
        if query.cursor:
            params.append(("cursor", query.cursor))
        params += [
            ("include_all_emails", _flag(query.include_all_emails)),
            ("include_comet_tokens", _flag(query.include_comet_tokens)),
            ("include_custom_fields", _flag(query.include_custom_fields)),
            ("use_custom_field_labels", _flag(query.use_custom_field_labels)),
        ]
        for index, (condition, _) in enumerate(conditions):
            params += condition.on_day(query.today).query(index)
        encoded = len(str(httpx.QueryParams(tuple(params))))
        if encoded > MAX_QUERY_CHARS:
            raise ValidationFailed(
                f"The conditions are too long to send: the query would be {encoded} characters once encoded, "
                f"and at most {MAX_QUERY_CHARS} fit in a URL. Shorten the conditions' values."
            )
        return params

    async def _on_slots(self, conditions: Sequence[FilterCondition]) -> list[tuple[FilterCondition, str | None]]:
        """Each condition on its slot, with the label it named (None when it named the slot itself).

        Labels are read from Cometly (cached) only when a condition names one, so filtering by slot
        spends no extra request of the list budget.
        """
        if all(condition.slot is not None for condition in conditions):
            return [(condition, None) for condition in conditions]
        return _on_slots_with(conditions, (await self._fields.get()).labels)

    async def custom_fields(self, *, refresh: bool = False) -> CustomFields:
        found = await self._fields.get(refresh=refresh)
        checked_at = iso_utc(found.checked_at.timestamp())
        if found.fields is None:
            note = (
                "Cometly has no contact yet, and labels can only be read from a contact; until one exists, filter "
                "by slot (profile_field_1..15 text, 16..25 number, 26..30 date)."
            )
        else:
            note = (
                "Read from Cometly's contact list, where labelled slots show under their label; each label is tied "
                "to the slot whose values it shows. Only labelled slots can be filtered. Results key custom fields "
                "by these labels, and by slot where a slot has none or its label is not pinned. Text fields' "
                f"`values` are those in use among the {found.sampled} contacts read, listed only for fields with "
                f"at most {MAX_VALUES_IN_USE} distinct values that at least {CONTACTS_PER_VALUE} times as many of "
                "them have set (never emails, names or phones). Reused for "
                f"{self._fields_ttl / 60:g} minutes; refresh=true reads them again."
            )
            if found.unresolved:
                note += (
                    " The values read do not tie some labels to one slot (see `unresolved`): "
                    f"{named_unresolved(found.unresolved)}. Filtering by such a label fails; filter by its slot."
                )
            if found.unread:
                note += (
                    f" Labelled, with a label that could not be read (it may equal a key of the contact, such as "
                    f"email): {', '.join(found.unread)}."
                )
        fields = [
            field.model_copy(update={"values": found.values[field.slot], "values_from": "in_use"})
            if field.slot in found.values
            else field
            for field in found.fields or []
        ]
        return CustomFields(
            provider=self.name,
            filterable=True,
            fields=fields,
            unresolved=list(found.unresolved),
            sampled=found.sampled if found.fields is not None else None,
            checked_at=checked_at,
            note=note,
        )

    async def _discover_fields(self) -> Labels | None:
        now = self._clock().astimezone(self._zone).replace(tzinfo=None, microsecond=0)
        return await discover(self._fetch_list, now=now)

    async def _fetch_list(self, params: list[tuple[str, str]]) -> Any:
        return await self._upstream.request("cometly.list_contacts", "GET", path("contacts"), params=params)

    async def _list(self, params: QueryParams) -> ContactPage:
        body = await self._upstream.request("cometly.list_contacts", "GET", path("contacts"), params=params)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):  # pyright: ignore[reportUnknownMemberType]
            raise unexpected_shape(self.label, "a contact list", "no `data` array")
        page = cast(dict[str, Any], body)
        contacts = [
            self._list_item(cast(dict[str, Any], item))
            for item in cast(list[Any], page["data"])
            if isinstance(item, dict)
        ]
        cursor = page.get("next_cursor")
        next_cursor = str(cursor) if isinstance(cursor, str | int) and cursor != "" else None
        return ContactPage(contacts=contacts, next_cursor=next_cursor, has_more=next_cursor is not None)

    async def list_entries(
        self,
        start: datetime,
        end: datetime,
        *,
        cursor: str | None = None,
        per_page: int = 5_000,
        priority: Priority | None = None,
    ) -> tuple[list[Entry], str | None]:
        """One page of the contacts created from `start` to `end` (aware; both inclusive), as the index keeps them.

        Each entry carries every email, the primary name, phone and location, and the custom fields
        that are set, by slot; its creation bounds are the window's (in UTC). `priority` sends the
        request at a lower priority than the tools' (the contact index's sync).

        Returns:
            The page's entries and the cursor of the next page (None after the last).

        Raises:
            ContactsError: Classified failures of the request.
        """
        params = [
            ("start_date", _local(start, self._zone)),
            ("end_date", _local(end, self._zone)),
            ("per_page", str(per_page)),
            *([("cursor", cursor)] if cursor else []),
            ("include_all_emails", "1"),
            ("include_custom_fields", "1"),
            ("use_custom_field_labels", "0"),
        ]
        body = await self._upstream.request(
            "cometly.list_contacts", "GET", path("contacts"), params=params, priority=priority
        )
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):  # pyright: ignore[reportUnknownMemberType]
            raise unexpected_shape(self.label, "a contact list", "no `data` array")
        page = cast(dict[str, Any], body)
        after, before = start.astimezone(UTC), end.astimezone(UTC)
        entries: list[Entry] = []
        for item in cast(list[Any], page["data"]):
            if not isinstance(item, dict):
                continue
            contact = self._list_item(cast(dict[str, Any], item))
            entries.append(
                Entry(
                    id=contact.id,
                    emails=tuple(contact.emails),
                    names=tuple(contact.names),
                    phones=tuple(contact.phones),
                    locations=tuple(contact.locations),
                    custom_fields=contact.custom_fields,
                    created_after=after,
                    created_before=before,
                )
            )
        next_cursor = page.get("next_cursor")
        return entries, str(next_cursor) if isinstance(next_cursor, str | int) and next_cursor != "" else None

    async def create_contact(self, contact: NewContact) -> Contact:
        self.check_create(contact)
        slots = {slot: value for slot, (_, value) in (await self._slots_of(contact.custom_fields)).items()}
        payload: dict[str, Any] = {"emails": contact.emails}
        for key in ("phones", "names", "locations"):
            value = getattr(contact, key)
            if value:
                payload[key] = value
        if slots:
            payload["custom_fields"] = slots
        unsure = look_up_before_creating_again(contact.emails[0])
        sent = self._clock().astimezone(UTC).replace(microsecond=0)
        body = await self._upstream.request(
            "cometly.create_contact", "POST", path("contacts"), json=payload, unsure=unsure
        )
        with created(unsure):
            made = self._detail(body)
        answered = self._clock().astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        if self._index is not None:  # findable at once, not after the next catch-up
            try:
                await self._index.note([entry_of(made, after=sent, before=answered)])
            except ContactsError as exc:
                logger.warning("could not add contact %s to the index: %s", made.id, exc.kind)
        shown = await self._labelled(made)
        return dated(shown, Entry(id=made.id, created_after=sent, created_before=answered))

    # --- Updates ------------------------------------------------------------------------------------------------------

    async def _slots_of(self, given: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
        """Custom fields named by slot or label, on their slots: (the name the call used, the value checked
        against the slot's type; None stays None, a clear). Labels are read (cached) only when one is named.

        Raises:
            ValidationFailed: A name matches no label, two names are one slot, or a value does not suit its slot.
            UpstreamUnavailable: A label Cometly's answers do not pin to one slot.
        """
        if not given:
            return {}
        found = None
        if any(resolve_slot(name) is None for name in given):
            found = await self._fields.get()
        slots: dict[str, tuple[str, Any]] = {}
        for name, value in given.items():
            slot = resolve_slot(name) or resolve_field(
                name,
                None if found is None else found.fields,
                unresolved=() if found is None else found.unresolved,
                unread=() if found is None else found.unread,
            )
            if slot in slots:
                raise ValidationFailed(
                    f"{slots[slot][0]!r} and {name!r} are the same custom field ({slot}); name it once. "
                    "Nothing was sent."
                )
            try:
                slots[slot] = (name, None if value is None else slot_value(slot, value, name=name))
            except ValueError as exc:
                raise ValidationFailed(f"custom_fields: {exc}. Nothing was sent.") from None
        return slots

    async def _labelled(self, contact: Contact) -> Contact:
        """The contact with its custom fields under their labels where the Space has one (read, cached, if needed)."""
        if not contact.custom_fields:
            return contact
        try:
            labels = {field.slot: field.label for field in (await self._fields.get()).fields or []}
        except ContactsError as exc:  # the contact matters more than its labels
            logger.info("could not read Cometly's custom-field labels for a result: %s", exc.kind)
            return contact
        return contact.model_copy(
            update={"custom_fields": {labels.get(key, key): value for key, value in contact.custom_fields.items()}}
        )

    async def _read_slots(self, contact_id: str) -> dict[str, Any]:
        """The contact as `GET /contacts/{id}` answers it without labels: every slot under its own name."""
        body = await self._upstream.request(
            "cometly.get_contact",
            "GET",
            path("contacts", contact_id),
            params=[(flag, "0") for flag in ("include_comet_tokens", "include_events", "use_custom_field_labels")]
            + [("include_browsing_session_data", "0")],
            not_found=f"Cometly has no contact {contact_id}; ids come from list_contacts, filter_by_custom_field "
            "or find_contact. Nothing was sent.",
        )
        if not isinstance(body, dict) or upstream_id(cast(dict[str, Any], body).get("id")) is None:
            raise unexpected_shape(self.label, "a contact", "no `id`")
        return cast(dict[str, Any], body)

    async def update(self, changes: ContactChanges) -> ContactUpdate:
        """Read-modify-write over Cometly's replacing PUT, with the conflict check beside it.

        Cometly's PUT replaces each collection it is sent and, when `custom_fields` is sent, all 30
        slots. So labels are resolved first (they may spend the list budget), the contact is read by
        slot, only the collections the call touches are sent, each whole and merged (`merged_list`:
        the first is primary; added values go last), and `custom_fields` carries all 30 slots with
        every slot's current value but the named ones (a slot left out becomes null: that is a clear).
        Nothing is sent when every value is already as asked.
        Then the contact is read back, and anything that moved without being named is a `Conflict`.
        """
        self._refuse_what_it_cannot_update(changes)
        contact_id = changes.contact_id.strip()
        if not _CONTACT_ID.match(contact_id):
            raise ValidationFailed(
                f"contact_id {changes.contact_id[:40]!r} is not a Cometly contact id; ids are whole numbers such as "
                "4821 and come from list_contacts, filter_by_custom_field or find_contact. Nothing was sent."
            )
        slots = await self._slots_of(changes.custom_fields)  # before the read: the window to the write stays short
        raw = await self._read_slots(contact_id)
        canonical = cast(str, upstream_id(raw["id"]))
        before = _update_state(raw)
        intended = dict(before)
        body: dict[str, Any] = {}
        named: list[tuple[str, str]] = []
        for key in _UPDATE_COLLECTIONS:
            add, remove = changes.add.get(key, []), changes.remove.get(key, [])
            if not add and not remove:
                continue
            current = cast(list[str], before[key])
            if len(current) >= _MAX_SHOWN:
                raise ValidationFailed(
                    f"Cometly shows at most {_MAX_SHOWN} {key} of a contact and contact {canonical} has that many, so "
                    f"the whole list cannot be sent back without losing the rest; change its {key} in Cometly itself. "
                    "Nothing was sent."
                )
            merged = merged_list(current, add, remove, same_email if key == "emails" else _same)
            intended[key] = merged
            named.append((key, key))
            if merged != current:
                body[key] = merged
        cached = self._fields.cached
        labels = {field.slot: field.label for field in ((cached.fields if cached else None) or [])}
        for slot, (_, value) in slots.items():
            intended[slot] = value
            named.append((slot, labels.get(slot, slot)))
        if any(not same_value(before[slot], intended[slot]) for slot in slots):
            # Every slot that has a value, as read but the named ones: one left out becomes null, which is how a
            # clear is sent (the docs type no slot as taking null).
            body["custom_fields"] = {slot: intended[slot] for slot in _SLOTS if intended[slot] not in (None, "")}
        note = (
            f"Contact {contact_id} was merged into {canonical}; use {canonical} from now on."
            if canonical != contact_id
            else None
        )
        if not body:
            contact = await self._labelled(self._detail(raw))
            return ContactUpdate(
                contact=contact,
                changes=changes_of(named, before, before, sameness=_SAMENESS),
                changed=False,
                note=" ".join(part for part in (note, nothing_to_change(self.label)) if part),
            )
        await self._upstream.request(
            "cometly.update_contact",
            "PUT",
            path("contacts", canonical),
            json=body,
            unsure=f"read contact {canonical} with get_contact to see whether it took effect (calling update_contact "
            "again with the same changes is safe)",
        )
        raw_after = await self._read_slots(canonical)
        after = _update_state(raw_after)
        filled = compared(
            self.label, canonical, before, intended, after, named=[key for key, _ in named], sameness=_SAMENESS
        )
        return ContactUpdate(
            contact=await self._labelled(self._detail(raw_after)),
            changes=changes_of(named, before, after, sameness=_SAMENESS),
            changed=True,
            note=" ".join(part for part in (note, filled) if part) or None,
        )

    def _detail(self, body: Any) -> Contact:
        """A contact from the get/create endpoints (`ContactDetail`)."""
        raw: dict[str, Any] = cast(dict[str, Any], body) if isinstance(body, dict) else {}
        contact_id = upstream_id(raw.get("id"))
        if contact_id is None:
            raise unexpected_shape(self.label, "a contact", "no `id`")
        custom = raw.get("custom_fields")
        hits = raw.get("browsing_session_hits", raw.get("browsing_hits"))
        other = unmapped(raw, CONTACT_KEYS)
        return Contact(
            id=contact_id,
            provider=self.name,
            created_at=iso_utc(raw.get("created_at")),
            emails=_texts(raw.get("emails"), _ELEMENT_KEYS["emails"]),
            phones=_texts(raw.get("phones"), _ELEMENT_KEYS["phones"]),
            names=_texts(raw.get("names"), _ELEMENT_KEYS["names"]),
            locations=_texts(raw.get("locations"), _ELEMENT_KEYS["locations"]),
            custom_fields=_set_fields(cast(dict[str, Any], custom)) if isinstance(custom, dict) else {},
            comet_tokens=cast(list[JsonValue], raw["comet_tokens"])
            if isinstance(raw.get("comet_tokens"), list)
            else None,
            events=_objects(raw.get("events")),
            browsing_hits=_objects(hits),
            cometly=CometlyDetails.model_validate(other) if other else None,
        )

    def _list_item(self, raw: dict[str, Any]) -> Contact:
        """A contact from the list endpoint: primary values, plus custom fields as top-level keys."""
        contact_id = upstream_id(raw.get("id"))
        if contact_id is None:
            raise unexpected_shape(self.label, "a contact list", "an item without `id`")
        more = raw.get("emails")
        emails = _texts(
            [raw.get("email"), *(cast(list[Any], more) if isinstance(more, list) else [])], _ELEMENT_KEYS["emails"]
        )
        custom = {key: value for key, value in raw.items() if key not in LIST_ITEM_KEYS and key != "custom_fields"}
        nested = raw.get("custom_fields")
        if isinstance(nested, dict):
            custom.update(cast(dict[str, Any], nested))
        return Contact(
            id=contact_id,
            provider=self.name,
            created_at=iso_utc(raw.get("created_at")),
            emails=emails,
            phones=_texts([raw.get("phone")], _ELEMENT_KEYS["phones"]),
            names=_texts([raw.get("name")], _ELEMENT_KEYS["names"]),
            locations=_texts([raw.get("location")], _ELEMENT_KEYS["locations"]),
            custom_fields=_set_fields(custom),
            comet_tokens=cast(list[JsonValue], raw["comet_tokens"])
            if isinstance(raw.get("comet_tokens"), list)
            else None,
        )


_MAX_SHOWN = 25
"""The most values of one collection Cometly's get shows."""


def _same(left: str, right: str) -> bool:
    return left.strip() == right.strip()


_SAMENESS = {"emails": same_email}


def resolve_slot(name: str) -> str | None:
    """The slot a custom-field name is when it is one (`profile_field_N`, any case); None for a label."""
    text = name.strip().lower()
    return text if re.fullmatch(r"profile_field_([1-9]|[12][0-9]|30)", text) else None


def _update_state(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What an update compares of a contact read by slot: the four collections and all 30 slots."""
    state: dict[str, Any] = {key: _texts(raw.get(key), _ELEMENT_KEYS[key]) for key in _UPDATE_COLLECTIONS}
    custom = raw.get("custom_fields")
    slots = cast(dict[str, Any], custom) if isinstance(custom, dict) else {}
    state.update({slot: slots.get(slot) for slot in _SLOTS})
    return state


def _narrower(new: Entry, old: Entry) -> bool:
    """Whether `new`'s creation bounds say more than `old`'s."""
    return (new.created_after, new.created_before) != (old.created_after, old.created_before)


def _utc(moment: datetime) -> datetime:
    """An aware moment in UTC; one before year 1 or after 9999 there is the nearest that exists."""
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return datetime.min.replace(tzinfo=UTC) if moment.year < 5000 else datetime.max.replace(tzinfo=UTC)


def _local(moment: datetime, zone: ZoneInfo) -> str:
    """An aware moment as Cometly's list takes it: wall time in the Space's timezone, to the second."""
    return moment.astimezone(zone).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def _labelled_now(labels: Labels | None) -> str:
    """What a 422 about an unlabelled slot adds: the fields that can be filtered, as just read."""
    if labels is None:
        return "Cometly has no contact yet, so its labels cannot be read; only labelled slots can be filtered."
    unpinned = (
        f" Labels not tied to one slot (one of their slots can be filtered): {named_unresolved(labels.unresolved)}."
        if labels.unresolved
        else ""
    )
    if not labels.fields:
        return f"No custom field of this Cometly Space has a label that could be read.{unpinned}"
    return f"The fields that can be filtered now: {named_fields(labels.fields)}.{unpinned}"


def _on_slots_with(
    conditions: Sequence[FilterCondition], found: Labels | None
) -> list[tuple[FilterCondition, str | None]]:
    """Each condition on its slot by the labels `found`, with the field's label (None for a slot no label names).

    Raises:
        ValidationFailed: A condition names a label that matches no field, or several.
        UpstreamUnavailable: A condition names a label the labels found do not tie to one slot.
    """
    fields = None if found is None else found.fields
    labels = {field.slot: field.label for field in fields or []}
    resolved: list[tuple[FilterCondition, str | None]] = []
    for condition in conditions:
        if condition.slot is not None:
            resolved.append((condition, labels.get(condition.slot)))
            continue
        slot = resolve_field(
            condition.field,
            fields,
            unresolved=() if found is None else found.unresolved,
            unread=() if found is None else found.unread,
        )
        resolved.append((condition.for_slot(slot), labels.get(slot, condition.field)))
    return resolved
