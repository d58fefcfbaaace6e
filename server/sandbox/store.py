"""The sandbox's SQLite storage: schema, seeding and every query the vendor routes make.

One connection serves the whole app. Calls are synchronous and serialised by a lock, so routes
run them in a worker thread (`Store.run`) and never block the event loop of a server that
embeds the sandbox.

Tables: `contacts` (one row per contact, the 30 slots as columns, vendor ids, profile columns),
`merged_profiles` (old ids answered by a surviving contact), `contact_values` (stamped emails,
phones, names, locations and comet tokens), `events`, `browsing_hits`, `custom_field_labels`
and `meta` (marks a file as a sandbox database).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import date
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from .filters import Condition, condition_sql, register_functions
from .model import (
    SLOT_COUNT,
    Attribution,
    BrowsingHit,
    ContactRow,
    ContactSummary,
    CustomValue,
    Event,
    NewContact,
    Profile,
    SlotType,
    Stamped,
    phone_digits,
    slot_key,
    slot_type,
    stable_base62,
)

T = TypeVar("T")

SCHEMA_MARK = "contacts-mcp-sandbox/1"

CLEMTA_SORTS: Mapping[str, str] = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "full_name": "name",
    "email": "email",
}
"""The fields Clemta's list sorts by, and the column behind each."""

_DIGITS_FUNCTION = "sandbox_digits"
_CASEFOLD_FUNCTION = "sandbox_casefold"
_CREATED_OPERATORS = {"gt": ">", "lt": "<", "eq": "="}

_PROFILE_FIELDS = tuple(f.name for f in fields(Profile))
_JSON_PROFILE_FIELDS = frozenset({"tags", "attributions", "bcc_emails"})
_EVENT_FIELDS = tuple(f.name for f in fields(Event))
_HIT_FIELDS = tuple(f.name for f in fields(BrowsingHit))
_ATTRIBUTION_FIELDS = tuple(f.name for f in fields(Attribution))
# attrgetter rather than dataclasses.astuple, which deep-copies and is most of the seeding time.
_event_values = attrgetter(*_EVENT_FIELDS)
_hit_values = attrgetter(*_HIT_FIELDS)
_attribution_values = attrgetter(*_ATTRIBUTION_FIELDS)
_SLOT_COLUMNS = tuple(slot_key(slot) for slot in range(1, SLOT_COUNT + 1))
_SUMMARY_SELECT = ", ".join(("id", "email", "name", "phone", "location", *_SLOT_COLUMNS))
_CONTACT_COLUMNS = (
    "id",
    "highlevel_id",
    "clemta_id",
    "created_at",
    "updated_at",
    "email",
    "name",
    "phone",
    "location",
    *_SLOT_COLUMNS,
    *_PROFILE_FIELDS,
)


def _slot_sql_type(slot: int) -> str:
    return "REAL" if slot_type(slot) is SlotType.NUMBER else "TEXT"


def _schema() -> str:
    slots = ",\n".join(f"    {slot_key(slot)} {_slot_sql_type(slot)}" for slot in range(1, SLOT_COUNT + 1))
    profile = ",\n".join(f"    {name} {'INTEGER' if name == 'dnd' else 'TEXT'}" for name in _PROFILE_FIELDS)
    events = ",\n".join(
        f"    {name} {'INTEGER' if name in {'event_time', 'is_direct'} else 'REAL' if name == 'amount' else 'TEXT'}"
        for name in _EVENT_FIELDS
    )
    hits = ",\n".join(f"    {name} {'INTEGER' if name == 'event_time' else 'TEXT'}" for name in _HIT_FIELDS)
    return f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE custom_field_labels (slot INTEGER PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    highlevel_id TEXT NOT NULL UNIQUE,
    clemta_id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    email TEXT,
    name TEXT,
    phone TEXT,
    location TEXT,
{slots},
{profile}
);
-- The list endpoint filters a creation-time range and pages by id.
CREATE INDEX contacts_by_created_at ON contacts (created_at, id);
CREATE TABLE merged_profiles (id INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL REFERENCES contacts (id));
CREATE TABLE contact_values (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX contact_values_by_contact ON contact_values (contact_id, kind, created_at DESC, id);
-- Lookups by email or phone (HighLevel's duplicate search) go through this one.
CREATE INDEX contact_values_by_value ON contact_values (kind, value COLLATE NOCASE);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
{events}
);
CREATE INDEX events_by_contact ON events (contact_id, event_time DESC, id DESC);
CREATE TABLE browsing_hits (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
{hits}
);
CREATE INDEX browsing_hits_by_contact ON browsing_hits (contact_id, event_time DESC, id DESC);
"""


def highlevel_id_for(contact_id: int) -> str:
    """The contact's HighLevel id: 20 letters and digits derived from its Cometly id."""
    return stable_base62(f"highlevel:contact:{contact_id}")


def clemta_id_for(contact_id: int, created_at: int) -> str:
    """The contact's Clemta id: 24 hex characters, a MongoDB ObjectId whose first 8 are the creation time."""
    return f"{created_at & 0xFFFFFFFF:08x}" + hashlib.sha256(f"clemta:{contact_id}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ListQuery:
    """A page request of Cometly's list: the creation-time range, filters, and where the page starts."""

    start: int
    end: int
    conditions: Sequence[Condition]
    today: date
    limit: int
    after_id: int | None = None
    """Only ids below this one (a cursor pointing to the next items)."""
    before_id: int | None = None
    """Only ids above this one (a cursor pointing to the previous items)."""


@dataclass(frozen=True)
class ClemtaQuery:
    """A page request of Clemta's list: search, sort, creation-time filters and the skip/limit window."""

    skip: int
    limit: int
    search: str = ""
    """Matched case-insensitively anywhere in the name or email; empty for all."""
    sort: str = "created_at"
    """A key of `CLEMTA_SORTS`."""
    descending: bool = True
    created: tuple[str, int] | None = None
    """(`gt`, `lt` or `eq`, Unix seconds) on the creation time, or None."""
    end: int | None = None
    """Only contacts created at or before these Unix seconds, or None."""


@dataclass(frozen=True)
class Duplicate:
    """An existing contact that a new one would duplicate, and the field that matched."""

    row: ContactRow
    field: str
    """`email` or `phone`."""


class UnusableDatabase(ValueError):
    """A path that cannot hold a sandbox database: not a regular file, no such directory, or not a sandbox."""


def _check_location(path: str) -> None:
    """Refuse a path that is neither a regular file nor a new file in an existing directory, before SQLite opens it.

    Raises:
        UnusableDatabase: If it is a directory, a device, a pipe or a socket, or its directory does not exist.
    """
    target = Path(path)
    try:
        if target.exists():
            if not target.is_file():
                raise UnusableDatabase(f"{path!r} is not a regular file (a directory or device holds no database)")
        elif not target.parent.is_dir():
            raise UnusableDatabase(f"{path!r} names no directory that exists to create the file in")
    except OSError as exc:
        raise UnusableDatabase(f"{path!r} cannot be looked at: {exc.strerror or exc}") from None


class Store:
    """The sandbox database behind every vendor route."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.labels: Mapping[int, str] = {}

    @classmethod
    def open(cls, path: str) -> tuple[Store, bool]:
        """Open or create a sandbox database.

        Args:
            path: A file path, or `:memory:`.

        Returns:
            The store, and whether it still needs seeding (new, or a seeding that never finished).

        Raises:
            UnusableDatabase: The path is not a regular file in an existing directory, SQLite cannot
                open or write it, or it holds a database that is not a sandbox; it is left untouched.
        """
        if path != ":memory:":
            _check_location(path)
        try:
            # Routes call in from worker threads; the lock in `_locked` keeps use of the connection serial.
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise UnusableDatabase(f"{path!r} is not a usable SQLite database: {exc}") from None
        try:
            connection.row_factory = sqlite3.Row
            register_functions(connection)
            connection.create_function(_DIGITS_FUNCTION, 1, phone_digits, deterministic=True)
            connection.create_function(_CASEFOLD_FUNCTION, 1, _casefold, deterministic=True)
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                connection.executescript(f"BEGIN;\n{_schema()}\nCOMMIT;")
            elif "meta" not in tables:
                raise UnusableDatabase(f"{path!r} holds a database that is not a {SCHEMA_MARK} sandbox")
            mark = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.Error as exc:
            connection.close()
            raise UnusableDatabase(f"{path!r} is not a usable SQLite database: {exc}") from None
        except ValueError:
            connection.close()
            raise
        if mark is not None and mark[0] != SCHEMA_MARK:
            connection.close()
            raise UnusableDatabase(f"{path!r} holds a {mark[0]} database, not a {SCHEMA_MARK} sandbox")
        store = cls(connection)
        store.labels = store._load_labels()
        is_new = mark is None
        return store, is_new

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            self._connection.close()

    async def run(self, call: Callable[[], T]) -> T:
        """Run a store call in a worker thread, so a long query does not stall the event loop."""
        return await anyio.to_thread.run_sync(call)

    @contextmanager
    def _locked(self) -> Generator[sqlite3.Connection]:
        with self._lock:
            yield self._connection

    @contextmanager
    def _transaction(self) -> Generator[sqlite3.Connection]:
        with self._locked() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _load_labels(self) -> dict[int, str]:
        with self._locked() as connection:
            rows = connection.execute("SELECT slot, label FROM custom_field_labels ORDER BY slot").fetchall()
        return {int(row["slot"]): str(row["label"]) for row in rows}

    def seed(self, labels: Mapping[int, str], contacts: Sequence[NewContact]) -> None:
        """Fill a new database with the Space's labels and the generated contacts, in one transaction.

        The transaction also marks the file as a seeded sandbox, so an interrupted seeding is redone
        on the next open rather than leaving a half-filled database that looks complete.
        """
        with self._transaction() as connection:
            connection.executemany(
                "INSERT INTO custom_field_labels (slot, label) VALUES (?, ?)", sorted(labels.items())
            )
            self._insert(connection, contacts)
            connection.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_MARK,))
        self.labels = dict(sorted(labels.items()))

    def create(self, build: Callable[[int], NewContact]) -> ContactRow:
        """Insert one contact under the next free id and return its row.

        Args:
            build: Makes the contact, given the id it will have.
        """
        with self._transaction() as connection:
            return self._create_in(connection, build)

    def create_unique(
        self, build: Callable[[int], NewContact], *, email: str | None, phone: str | None
    ) -> ContactRow | Duplicate:
        """Insert one contact unless one already holds its email or phone (checked in the same transaction).

        Args:
            build: Makes the contact, given the id it will have.
            email: Its email, compared case-insensitively; None for none.
            phone: Its phone, compared on digits; None for none.

        Returns:
            The new row, or the contact it would duplicate.
        """
        with self._transaction() as connection:
            found = _find_duplicate(connection, email, phone)
            return found if found is not None else self._create_in(connection, build)

    def _create_in(self, connection: sqlite3.Connection, build: Callable[[int], NewContact]) -> ContactRow:
        # Merged profiles keep their ids, so a new id must clear those too.
        row = connection.execute(
            "SELECT max(coalesce((SELECT max(id) FROM contacts), 0), "
            "coalesce((SELECT max(id) FROM merged_profiles), 0))"
        ).fetchone()
        contact = build(int(row[0]) + 1)
        self._insert(connection, [contact])
        return _contact_row(connection.execute("SELECT * FROM contacts WHERE id = ?", (contact.id,)).fetchone())

    def delete(self, contact_ids: Sequence[int]) -> None:
        """Delete contacts and everything that hangs off them, as a deletion in the vendor's UI would."""
        marks = ", ".join("?" for _ in contact_ids)
        with self._transaction() as connection:
            for table in ("merged_profiles", "contact_values", "events", "browsing_hits"):
                connection.execute(f"DELETE FROM {table} WHERE contact_id IN ({marks})", list(contact_ids))
            connection.execute(f"DELETE FROM contacts WHERE id IN ({marks})", list(contact_ids))

    def update(
        self,
        contact_id: int,
        *,
        now: int,
        collections: Mapping[str, Sequence[str]] | None = None,
        slots: Mapping[int, CustomValue] | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> ContactRow:
        """Change one contact in one transaction and return its row; what is not given is untouched.

        Args:
            contact_id: Its Cometly id (a canonical one: resolve merged ids with `contact` first).
            now: The time to stamp new values and `updated_at` with (Unix seconds).
            collections: Replaces each named kind (`email`, `phone`, `name`, `location`) with these
                values, the first primary; `[]` empties it. A kind whose values are already these is left as is.
            slots: Sets these slots (None clears one); the others keep their values.
            profile: Sets these `Profile` fields (their column names).
        """
        with self._transaction() as connection:
            for kind, values in (collections or {}).items():
                held = connection.execute(
                    "SELECT value FROM contact_values WHERE contact_id = ? AND kind = ? ORDER BY created_at DESC, id",
                    (contact_id, kind),
                ).fetchall()
                if [str(row[0]) for row in held] == list(values):
                    continue
                connection.execute("DELETE FROM contact_values WHERE contact_id = ? AND kind = ?", (contact_id, kind))
                connection.executemany(
                    "INSERT INTO contact_values (contact_id, kind, value, created_at) VALUES (?, ?, ?, ?)",
                    [(contact_id, kind, value, now) for value in values],
                )
                connection.execute(
                    f"UPDATE contacts SET {kind} = ? WHERE id = ?", (values[0] if values else None, contact_id)
                )
            for slot, value in (slots or {}).items():
                connection.execute(f"UPDATE contacts SET {slot_key(slot)} = ? WHERE id = ?", (value, contact_id))
            for name, value in (profile or {}).items():
                if name not in _PROFILE_FIELDS:
                    raise ValueError(f"no profile field {name}")
                stored: Any = value
                if name in _JSON_PROFILE_FIELDS:
                    stored = json.dumps(list(value))
                elif name == "dnd":
                    stored = int(value)
                connection.execute(f"UPDATE contacts SET {name} = ? WHERE id = ?", (stored, contact_id))
            connection.execute("UPDATE contacts SET updated_at = ? WHERE id = ?", (now, contact_id))
            return _contact_row(connection.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone())

    def creation_times(self) -> dict[int, int]:
        """Every contact's creation time (Unix seconds) by Cometly id: what tests check the index's dating against."""
        with self._locked() as connection:
            rows = connection.execute("SELECT id, created_at FROM contacts").fetchall()
        return {int(row[0]): int(row[1]) for row in rows}

    def find_duplicate(self, *, email: str | None, phone: str | None) -> Duplicate | None:
        """The oldest contact holding `email` (any case), else the oldest with a phone of the same digits.

        Every email and phone a contact has counts, not only its primary ones; None when nothing matches.
        """
        with self._locked() as connection:
            return _find_duplicate(connection, email, phone)

    def clemta_page(self, query: ClemtaQuery) -> tuple[list[ContactRow], int]:
        """One page of Clemta's list and the number of contacts matching its filters.

        Ties in the sort field are broken by id in the same direction, so skip/limit pages are stable.
        """
        where: list[str] = []
        params: list[object] = []
        if query.search:
            where.append(
                f"(instr({_CASEFOLD_FUNCTION}(coalesce(name, '')), ?1) > 0 "
                f"OR instr({_CASEFOLD_FUNCTION}(coalesce(email, '')), ?1) > 0)"
            )
            params.append(_casefold(query.search))
        if query.created is not None:
            operator, seconds = query.created
            where.append(f"created_at {_CREATED_OPERATORS[operator]} ?{len(params) + 1}")
            params.append(seconds)
        if query.end is not None:
            where.append(f"created_at <= ?{len(params) + 1}")
            params.append(query.end)
        condition = f"WHERE {' AND '.join(where)}" if where else ""
        direction = "DESC" if query.descending else "ASC"
        column = CLEMTA_SORTS[query.sort]
        with self._locked() as connection:
            total = int(connection.execute(f"SELECT count(*) FROM contacts {condition}", params).fetchone()[0])
            rows = connection.execute(
                f"SELECT * FROM contacts {condition} ORDER BY {column} {direction}, id {direction} "
                f"LIMIT ?{len(params) + 1} OFFSET ?{len(params) + 2}",
                [*params, query.limit, query.skip],
            ).fetchall()
        return [_contact_row(row) for row in rows], total

    def highlevel_search(self, text: str, *, limit: int, offset: int) -> tuple[list[ContactRow], int]:
        """One page of HighLevel's contact search for `text`, and how many contacts match it in all.

        A contact matches when its name, email or company (slot 1) contains `text` in any case, or,
        for a `text` written as a phone number, when its phone's digits contain that number's; an empty
        `text` matches every contact. Newest first, ties by id, so pages are stable.

        Args:
            text: The search text, stripped; accents are compared as written.
            limit: At most this many rows.
            offset: Rows to leave out before the page.
        """
        where: list[str] = []
        params: list[object] = []
        if text:
            params.append(_casefold(text))
            where.extend(
                f"instr({_CASEFOLD_FUNCTION}(coalesce({column}, '')), ?1) > 0"
                for column in ("name", "email", slot_key(1))
            )
            digits = phone_digits(text)
            if digits and re.fullmatch(r"\+?[0-9 ().-]+", text):
                params.append(digits)
                where.append(f"instr({_DIGITS_FUNCTION}(coalesce(phone, '')), ?2) > 0")
        condition = f"WHERE {' OR '.join(where)}" if where else ""
        with self._locked() as connection:
            total = int(connection.execute(f"SELECT count(*) FROM contacts {condition}", params).fetchone()[0])
            rows = connection.execute(
                f"SELECT * FROM contacts {condition} ORDER BY created_at DESC, id DESC "
                f"LIMIT ?{len(params) + 1} OFFSET ?{len(params) + 2}",
                [*params, limit, offset],
            ).fetchall()
        return [_contact_row(row) for row in rows], total

    def _insert(self, connection: sqlite3.Connection, contacts: Sequence[NewContact]) -> None:
        contact_rows: list[tuple[object, ...]] = []
        merged_rows: list[tuple[int, int]] = []
        value_rows: list[tuple[int, str, str, int]] = []
        event_rows: list[tuple[object, ...]] = []
        hit_rows: list[tuple[object, ...]] = []
        for contact in contacts:
            collections = {
                "email": contact.emails,
                "phone": contact.phones,
                "name": contact.names,
                "location": contact.locations,
                "comet_token": contact.comet_tokens,
            }
            latest = max([contact.created_at, *(item.created_at for items in collections.values() for item in items)])
            contact_rows.append(
                (
                    contact.id,
                    highlevel_id_for(contact.id),
                    clemta_id_for(contact.id, contact.created_at),
                    contact.created_at,
                    contact.updated_at or latest,
                    _primary(contact.emails),
                    _primary(contact.names),
                    _primary(contact.phones),
                    _primary(contact.locations),
                    *(contact.custom_fields.get(slot) for slot in range(1, SLOT_COUNT + 1)),
                    *_profile_values(contact.profile),
                )
            )
            merged_rows.extend((merged_id, contact.id) for merged_id in contact.merged_ids)
            value_rows.extend(
                (contact.id, kind, item.value, item.created_at) for kind, items in collections.items() for item in items
            )
            event_rows.extend((contact.id, *_event_values(event)) for event in contact.events)
            hit_rows.extend((contact.id, *_hit_values(hit)) for hit in contact.browsing_hits)
        placeholders = ", ".join("?" for _ in _CONTACT_COLUMNS)
        connection.executemany(
            f"INSERT INTO contacts ({', '.join(_CONTACT_COLUMNS)}) VALUES ({placeholders})", contact_rows
        )
        connection.executemany("INSERT INTO merged_profiles (id, contact_id) VALUES (?, ?)", merged_rows)
        connection.executemany(
            "INSERT INTO contact_values (contact_id, kind, value, created_at) VALUES (?, ?, ?, ?)", value_rows
        )
        connection.executemany(
            f"INSERT INTO events (contact_id, {', '.join(_EVENT_FIELDS)}) "
            f"VALUES (?, {', '.join('?' for _ in _EVENT_FIELDS)})",
            event_rows,
        )
        connection.executemany(
            f"INSERT INTO browsing_hits (contact_id, {', '.join(_HIT_FIELDS)}) "
            f"VALUES (?, {', '.join('?' for _ in _HIT_FIELDS)})",
            hit_rows,
        )

    def contact(self, contact_id: int) -> ContactRow | None:
        """A contact by Cometly id; the id of a merged profile answers with the contact it was merged into."""
        with self._locked() as connection:
            return self._contact_where(
                connection,
                "id = coalesce((SELECT contact_id FROM merged_profiles WHERE id = ?1), ?1)",
                contact_id,
            )

    def contact_by_highlevel_id(self, highlevel_id: str) -> ContactRow | None:
        """A contact by its HighLevel id (case-sensitive, as HighLevel's ids are)."""
        with self._locked() as connection:
            return self._contact_where(connection, "highlevel_id = ?", highlevel_id)

    def contact_by_clemta_id(self, clemta_id: str) -> ContactRow | None:
        """A contact by its Clemta id (lower-case hex)."""
        with self._locked() as connection:
            return self._contact_where(connection, "clemta_id = ?", clemta_id.lower())

    def _contact_where(self, connection: sqlite3.Connection, where: str, *params: object) -> ContactRow | None:
        row = connection.execute(f"SELECT * FROM contacts WHERE {where}", params).fetchone()
        return None if row is None else _contact_row(row)

    def values(self, contact_ids: Sequence[int], kind: str, *, limit: int | None = None) -> dict[int, list[Stamped]]:
        """Stamped values of one kind for each contact, most recent first (ties in insertion order).

        Args:
            contact_ids: The contacts to read.
            kind: `email`, `phone`, `name`, `location` or `comet_token`.
            limit: At most this many per contact; None for all.

        Returns:
            A list per contact id (empty when it has none).
        """
        found: dict[int, list[Stamped]] = {contact_id: [] for contact_id in contact_ids}
        if not contact_ids:
            return found
        marks = ", ".join("?" for _ in contact_ids)
        query = f"""
            SELECT contact_id, value, created_at FROM (
                SELECT contact_id, value, created_at,
                       row_number() OVER (PARTITION BY contact_id ORDER BY created_at DESC, id) AS position
                FROM contact_values
                WHERE kind = ? AND contact_id IN ({marks})
            )
            WHERE ? IS NULL OR position <= ?
            ORDER BY contact_id, position
        """
        with self._locked() as connection:
            rows = connection.execute(query, (kind, *contact_ids, limit, limit)).fetchall()
        for row in rows:
            found[int(row["contact_id"])].append(Stamped(value=str(row["value"]), created_at=int(row["created_at"])))
        return found

    def events(self, contact_id: int, *, include_direct: bool) -> list[tuple[int, Event]]:
        """A contact's conversions and touchpoints with their ids, most recent first."""
        direct = "" if include_direct else "AND is_direct = 0"
        with self._locked() as connection:
            rows = connection.execute(
                f"SELECT * FROM events WHERE contact_id = ? {direct} ORDER BY event_time DESC, id DESC", (contact_id,)
            ).fetchall()
        return [(int(row["id"]), _event(row)) for row in rows]

    def browsing_hits(self, contact_id: int, *, limit: int) -> list[BrowsingHit]:
        """A contact's most recent raw page views, newest first."""
        with self._locked() as connection:
            rows = connection.execute(
                "SELECT * FROM browsing_hits WHERE contact_id = ? ORDER BY event_time DESC, id DESC LIMIT ?",
                (contact_id, limit),
            ).fetchall()
        return [BrowsingHit(**{name: row[name] for name in _HIT_FIELDS}) for row in rows]

    def list_contacts(self, query: ListQuery) -> list[ContactSummary]:
        """One page of Cometly's list, plus one row to tell whether more follow.

        Rows come in the order the cursor walks: id descending, or ascending when the cursor
        points to previous items (the caller reverses those, as Laravel does).
        """
        sql, params = _list_sql(query)
        with self._locked() as connection:
            rows = connection.execute(sql, params).fetchall()
        return [_summary(row) for row in rows]

    def explain_list(self, query: ListQuery) -> list[str]:
        """SQLite's plan for `list_contacts`, one line per step (tests use it to keep paging on an index)."""
        sql, params = _list_sql(query)
        with self._locked() as connection:
            rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        return [str(row["detail"]) for row in rows]


def _list_sql(query: ListQuery) -> tuple[str, list[object]]:
    where = ["created_at BETWEEN ? AND ?"]
    params: list[object] = [query.start, query.end]
    if query.after_id is not None:
        where.append("id < ?")
        params.append(query.after_id)
    if query.before_id is not None:
        where.append("id > ?")
        params.append(query.before_id)
    for condition in query.conditions:
        sql, condition_params = condition_sql(condition, query.today)
        where.append(sql)
        params.extend(condition_params)
    order = "ASC" if query.before_id is not None else "DESC"
    return (
        f"SELECT {_SUMMARY_SELECT} FROM contacts WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?",
        [*params, query.limit + 1],
    )


def _find_duplicate(connection: sqlite3.Connection, email: str | None, phone: str | None) -> Duplicate | None:
    matches: list[tuple[str, str, object]] = []
    if email:
        matches.append(("email", "value = ? COLLATE NOCASE", email))
    digits = phone_digits(phone)
    if digits:
        matches.append(("phone", f"{_DIGITS_FUNCTION}(value) = ?", digits))
    for kind, predicate, value in matches:
        found = connection.execute(
            f"SELECT contact_id FROM contact_values WHERE kind = ? AND {predicate} ORDER BY contact_id LIMIT 1",
            (kind, value),
        ).fetchone()
        if found is not None:
            row = connection.execute("SELECT * FROM contacts WHERE id = ?", (found[0],)).fetchone()
            return Duplicate(row=_contact_row(row), field=kind)
    return None


def _casefold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _primary(items: Sequence[Stamped]) -> str | None:
    return items[0].value if items else None


def _profile_values(profile: Profile) -> list[object]:
    values: list[object] = []
    for name in _PROFILE_FIELDS:
        value: Any = getattr(profile, name)
        if name == "attributions":
            value = json.dumps([_attribution_values(item) for item in value])
        elif name in _JSON_PROFILE_FIELDS:
            value = json.dumps(list(value))
        elif name == "dnd":
            value = int(value)
        values.append(value)
    return values


def _event(row: sqlite3.Row) -> Event:
    values: dict[str, Any] = {name: row[name] for name in _EVENT_FIELDS}
    values["is_direct"] = bool(values["is_direct"])
    return Event(**values)


def _custom_fields(row: sqlite3.Row) -> dict[int, CustomValue]:
    values = (row[column] for column in _SLOT_COLUMNS)
    return {slot: value for slot, value in enumerate(values, start=1) if value is not None}


def _summary(row: sqlite3.Row) -> ContactSummary:
    # Positional access, in `_SUMMARY_SELECT` order: a page holds up to 5000 of these.
    values = tuple(row)
    return ContactSummary(
        id=values[0],
        email=values[1],
        name=values[2],
        phone=values[3],
        location=values[4],
        custom_fields={slot: value for slot, value in enumerate(values[5:], start=1) if value is not None},
    )


def _contact_row(row: sqlite3.Row) -> ContactRow:
    profile: dict[str, Any] = {}
    for name in _PROFILE_FIELDS:
        value = row[name]
        if name == "attributions":
            value = tuple(Attribution(*item) for item in json.loads(value))
        elif name in _JSON_PROFILE_FIELDS:
            value = tuple(json.loads(value))
        elif name == "dnd":
            value = bool(value)
        profile[name] = value
    return ContactRow(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        phone=row["phone"],
        location=row["location"],
        custom_fields=_custom_fields(row),
        highlevel_id=row["highlevel_id"],
        clemta_id=row["clemta_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        profile=Profile(**profile),
    )
