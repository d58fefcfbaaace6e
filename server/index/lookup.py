"""Cometly's find_contact: the index chooses the contacts, Cometly confirms each one live.

The index answers in milliseconds, but it is a copy: a contact may have changed or gone since the
sync saw it. So every contact shown is read again with one get request, and the answer is built
from that read: a contact Cometly no longer has (404) is dropped from the index and not shown; one
whose fields no longer match is updated in the index and not shown; one that was merged into
another comes back under the surviving id, which the index then holds instead. Only the contacts
shown are read (the best `limit`), so a lookup by email costs one request.

With the index off, a bounded live scan of the most recent contacts stands in, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio

from ...tools.models import Contact, ContactMatches, CreatedBetween, GetContactQuery, Lookup, iso_utc
from ..errors import ContactsError, NotFound
from . import normalize
from .base import Entry, Query
from .service import ContactIndex

if TYPE_CHECKING:
    from ..providers.cometly import Cometly

logger = logging.getLogger(__name__)

SCAN_DAYS = 30
"""With the index off: how far back the live scan reads (the most recent contacts)."""
SCAN_PAGES = 3
"""With the index off: the most list requests (5,000 contacts each) the live scan spends."""
BACKFILL_WAIT_SECONDS = 5.0
"""How long a lookup waits for a backfill still running (a server just started) before answering."""
ENABLE_INDEX = (
    "unset CONTACTS_MCP_INDEX=off (the index is on by default) so the server keeps a searchable copy of "
    "the Space's contacts"
)


def dated(contact: Contact, entry: Entry | None) -> Contact:
    """`contact` with what the index knows of its creation: `created_at` to the second, else `created_between`."""
    if contact.created_at is not None or entry is None:
        return contact
    after, before = entry.created_after, entry.created_before
    if after is None or before is None:
        return contact
    if after == before:
        return contact.model_copy(update={"created_at": iso_utc(after.timestamp()), "created_between": None})
    between = CreatedBetween(start=_iso(after), end=_iso(before))
    return contact.model_copy(update={"created_between": between})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def entry_of(contact: Contact, *, after: datetime | None = None, before: datetime | None = None) -> Entry:
    """What the index keeps of a contact the server read or created (custom fields by slot only)."""
    return Entry(
        id=contact.id,
        emails=tuple(contact.emails),
        names=tuple(contact.names),
        phones=tuple(contact.phones),
        locations=tuple(contact.locations),
        custom_fields={k: v for k, v in contact.custom_fields.items() if k.startswith("profile_field_")},
        created_after=after,
        created_before=before,
    )


def matches(contact: Contact, query: Query) -> bool:
    """Whether `contact` matches every field `query` sets, by the same keys the index matches on."""
    emails = [normalize.email(e) for e in contact.emails]
    if query.email is not None and query.email not in emails:
        return False
    if query.phone is not None and not any(normalize.phone_matches(p, query.phone) for p in contact.phones):
        return False
    if query.name is not None and query.name not in normalize.name_key(contact.names):
        return False
    if query.domain is not None and not any(
        (d := normalize.domain_of(e)) == query.domain or d.endswith(f".{query.domain}") for e in emails
    ):
        return False
    return query.text is None or query.text in normalize.text_key(entry_of(contact))


async def find_in_index(
    provider: Cometly, index: ContactIndex, lookup: Lookup, *, limit: int, wait: float = BACKFILL_WAIT_SECONDS
) -> ContactMatches:
    """The contacts the index finds for `lookup`, each read live from Cometly before it is shown.

    `wait` is how long to give a backfill still running (a server just started) before answering.

    Raises:
        ValidationFailed: If the lookup is empty or cannot match anything (what to send is said).
        NotFound: If an exact email or phone matches no contact.
        ContactsError: Classified failures of the confirming reads, when none could be made.
    """
    query = normalize.query(lookup)
    complete = await index.wait_backfilled(wait)
    found = await index.find(query, limit=limit)
    confirmed, missing, unconfirmed = await _confirm(provider, index, found.entries, query)
    total = max(found.total - missing, len(confirmed))
    status = await index.freshness()
    notes: list[str] = []
    if not complete:
        covered = (
            f" (so far it covers contacts created {_day(status.covered_from)} to {_day(status.covered_to)})"
            if status.covered_from and status.covered_to
            else ""
        )
        notes.append(
            f"The index is still being built{covered}; older contacts may be missing until it finishes "
            "(contacts-mcp index status shows its progress)."
        )
    if unconfirmed:
        notes.append(
            f"{len(unconfirmed)} more matching contact(s) could not be read live just now (rate budget): "
            f"{', '.join(unconfirmed)}; read them with get_contact."
        )
    if total > len(confirmed) + len(unconfirmed):
        notes.append(f"{total} contacts match; the best {len(confirmed)} are shown. Narrow the query to see others.")
    if not confirmed and not unconfirmed and lookup.exact:
        what = f"email {lookup.email}" if lookup.email else f"phone {lookup.phone}"
        extra = f" {notes[0]}" if not complete else ""
        raise NotFound(
            f"No Cometly contact has {what} in the index of this Space.{extra} Check the spelling, or search by "
            "name with find_contact(name=...)."
        )
    return ContactMatches(
        contacts=confirmed,
        total=total,
        matched_on=lookup.matched_on,
        source="index",
        as_of=_iso(status.last_sync) if status.last_sync else None,
        note=" ".join(notes) or None,
    )


async def _confirm(
    provider: Cometly, index: ContactIndex, entries: Sequence[Entry], query: Query
) -> tuple[list[Contact], int, list[str]]:
    """Read each entry live, and keep the index up to what the reads showed.

    Returns:
        The contacts that still match, in the index's order; how many entries no longer count (gone,
        changed so they no longer match, or merged into one already shown); the ids that could not
        be read now.

    Raises:
        ContactsError: The first failure, when not one entry could be read.
    """
    outcomes: dict[int, Contact | ContactsError] = {}

    async def read(position: int, entry: Entry) -> None:
        try:
            outcomes[position] = await provider.read_contact(GetContactQuery(contact_id=entry.id))
        except ContactsError as exc:
            outcomes[position] = exc

    async with anyio.create_task_group() as group:
        for position, entry in enumerate(entries):
            group.start_soon(read, position, entry)

    shown: dict[str, Contact] = {}
    gone: list[str] = []
    learned: list[Entry] = []
    unread: list[str] = []
    failures: list[ContactsError] = []
    for position, entry in enumerate(entries):
        outcome = outcomes[position]
        if isinstance(outcome, NotFound):
            gone.append(entry.id)
        elif isinstance(outcome, ContactsError):
            failures.append(outcome)
            unread.append(entry.id)
        else:
            if outcome.id != entry.id:  # merged into another contact: the survivor answers under its own id
                gone.append(entry.id)
            # A read keys custom fields by label; the index keeps slots, so it keeps the ones the sync read.
            kept = replace(
                entry_of(outcome, after=entry.created_after, before=entry.created_before),
                custom_fields=entry.custom_fields,
                seen_at=entry.seen_at,
            )
            if kept != entry:  # only what changed is written: a lookup that learns nothing writes nothing
                learned.append(kept)
            if matches(outcome, query) and outcome.id not in shown:
                shown[outcome.id] = dated(outcome, entry)
    if failures and not shown and not gone and not learned:
        raise failures[0]
    await index.drop(gone)
    await index.note(learned)
    return list(shown.values()), len(entries) - len(shown) - len(unread), unread


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).date().isoformat() if moment else "?"


async def scan_recent(provider: Cometly, lookup: Lookup, *, limit: int, now: datetime) -> ContactMatches:
    """With the index off: look through the contacts created in the last `SCAN_DAYS` days, live.

    Raises:
        ValidationFailed: If the lookup is empty or cannot match anything.
        NotFound: If an exact email or phone matches none of the contacts scanned.
        ContactsError: Classified failures of the list requests.
    """
    query = normalize.query(lookup)
    end = now.astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=SCAN_DAYS)
    hits: list[Contact] = []
    cursor: str | None = None
    scanned = pages = 0
    while pages < SCAN_PAGES:
        entries, cursor = await provider.list_entries(start, end, cursor=cursor)
        pages += 1
        scanned += len(entries)
        for entry in entries:
            contact = provider.contact_of(entry)
            if matches(contact, query):
                hits.append(dated(contact, entry))
        if cursor is None:
            break
    bounded = f"the {scanned:,} contacts created in the last {SCAN_DAYS} days" + (
        f" (the newest {scanned:,}; older ones in that range were not read)" if cursor is not None else ""
    )
    note = f"The contact index is off, so only {bounded} were searched, live. To search every contact, {ENABLE_INDEX}."
    if not hits and lookup.exact:
        what = f"email {lookup.email}" if lookup.email else f"phone {lookup.phone}"
        raise NotFound(f"No Cometly contact with {what} among {bounded}. {note.split('. ', 1)[1]}")
    shown = await _read_live(provider, hits[:limit])
    return ContactMatches(
        contacts=shown, total=len(hits), matched_on=lookup.matched_on, source="live", as_of=None, note=note
    )


async def _read_live(provider: Cometly, contacts: Sequence[Contact]) -> list[Contact]:
    """The full records of the few contacts a scan found (a list item carries only primary values)."""
    full: list[Contact] = []
    for contact in contacts:
        try:
            read = await provider.read_contact(GetContactQuery(contact_id=contact.id))
        except NotFound:
            continue
        full.append(read.model_copy(update={"created_between": contact.created_between}))
    return full
