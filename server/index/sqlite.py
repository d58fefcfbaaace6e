"""The contact index in one SQLite file (the default backend).

One connection, used from a worker thread so the event loop never waits on the disk, one call at a
time (an anyio lock). Each Store method is one transaction; writes take the write lock up front
(`BEGIN IMMEDIATE`) so two processes on the file (the server and `contacts-mcp index sync`) queue
for up to `BUSY_SECONDS` instead of failing halfway. WAL with `synchronous=NORMAL`: a process
killed at any moment leaves every committed transaction and nothing of the one in flight (a power
loss may lose the last few, never corrupt the file).

Layout: `contacts` holds each entry as JSON with its bounds (whole Unix seconds, UTC) and folded
names; `emails` and `phones` hold the normalized values (indexed, for exact and domain lookups);
`names` and `texts`, FTS5 trigram tables sharing the contacts' rowids, find names and free text by
substring (apart, so a name lookup reads only the names' trigram lists, half the size).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread

from ..errors import IndexUnavailable
from . import normalize
from .base import Entry, Found, Query, Status, Store, Window, WindowKind

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_SECONDS = 30.0
"""How long a write waits for another process's transaction on the same file before failing."""

WAL_ATTEMPTS = 40
"""How often opening tries to switch a new file to WAL while another connection holds it (about 30 s)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    row INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    id INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_after INTEGER,
    created_before INTEGER,
    seen_at INTEGER NOT NULL,
    name_key TEXT NOT NULL,
    UNIQUE (account, id)
);
CREATE TABLE IF NOT EXISTS emails (contact INTEGER NOT NULL, account TEXT NOT NULL, email TEXT NOT NULL,
                                   domain_rev TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS emails_email ON emails (account, email);
CREATE INDEX IF NOT EXISTS emails_domain ON emails (account, domain_rev);
CREATE INDEX IF NOT EXISTS emails_contact ON emails (contact);
CREATE TABLE IF NOT EXISTS phones (contact INTEGER NOT NULL, account TEXT NOT NULL, key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS phones_key ON phones (account, key);
CREATE INDEX IF NOT EXISTS phones_contact ON phones (contact);
CREATE VIRTUAL TABLE IF NOT EXISTS names USING fts5 (name_key, tokenize = 'trigram');
CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5 (text_key, tokenize = 'trigram');
CREATE TABLE IF NOT EXISTS windows (
    account TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    kind TEXT NOT NULL,
    cursor TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    contacts INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    walked_at INTEGER,
    owner TEXT,
    lease_until REAL,
    PRIMARY KEY (account, start, "end", kind)
);
CREATE TABLE IF NOT EXISTS meta (account TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                                 PRIMARY KEY (account, key));
"""

_WINDOW_COLUMNS = 'start, "end", kind, cursor, done, contacts, requests, walked_at'


def reversed_domain(domain: str) -> str:
    """A domain with its labels' characters reversed, so a domain and its subdomains share a prefix."""
    return domain[::-1]


def window_of(row: Sequence[Any]) -> Window:
    """A `windows` row (in `_WINDOW_COLUMNS` order) as a Window."""
    start, end, kind, cursor, done, contacts, requests, walked_at = row
    return Window(
        start=cast(datetime, normalize.moment(start)),
        end=cast(datetime, normalize.moment(end)),
        kind=kind,
        cursor=cursor,
        done=bool(done),
        contacts=contacts,
        requests=requests,
        walked_at=normalize.moment(walked_at),
    )


def entry_of(
    id: int, data: str | Mapping[str, Any], after: int | None, before: int | None, seen: float | None
) -> Entry:
    """A stored contact as an Entry."""
    fields: Mapping[str, Any] = json.loads(data) if isinstance(data, str) else data
    return Entry(
        id=str(id),
        emails=tuple(fields["emails"]),
        names=tuple(fields["names"]),
        phones=tuple(fields["phones"]),
        locations=tuple(fields["locations"]),
        custom_fields=dict(fields["custom_fields"]),
        created_after=normalize.moment(after),
        created_before=normalize.moment(before),
        seen_at=normalize.moment(seen),
    )


def data_of(entry: Entry) -> str:
    """What `contacts.data` holds for an entry."""
    fields = {
        "emails": list(entry.emails),
        "names": list(entry.names),
        "phones": list(entry.phones),
        "locations": list(entry.locations),
        "custom_fields": dict(entry.custom_fields),
    }
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def page_bounds(entry: Entry, held: normalize.Bounds | None, window: Window | None) -> normalize.Bounds:
    """An entry's new bounds: what it carries (narrowed to the window it was listed in) narrowing what is held."""
    carried = (normalize.seconds_after(entry.created_after), normalize.seconds_before(entry.created_before))
    if window is not None:
        # The window is this page's proof: it narrows what the entry carries, and wins if they disagree.
        carried = normalize.narrow(
            carried, (normalize.seconds_after(window.start), normalize.seconds_before(window.end))
        )
    return carried if held is None else normalize.narrow(held, carried)


def _wal(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL, trying again while another connection holds it.

    Changing the journal mode needs the file to itself, and SQLite answers "database is locked" at
    once instead of waiting out the busy timeout when another process (the server and `index sync`
    opening one new file together) holds it; the other's hold lasts only as long as its schema.
    """
    for attempt in range(WAL_ATTEMPTS):
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            busy = "locked" in str(error) or "busy" in str(error)
            if not busy or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(min(1.0, 0.01 * 2**attempt))


def window_key(account: str, window: Window) -> tuple[str, int, int, str]:
    """A window's identity in the `windows` table."""
    return account, _start(window), _end(window), window.kind


def _start(window: Window) -> int:
    return cast(int, normalize.seconds_after(window.start))


def _end(window: Window) -> int:
    return cast(int, normalize.seconds_before(window.end))


def kind_order(kinds: Sequence[WindowKind]) -> str:
    """A SQL CASE giving each kind its position in `kinds` (the kinds are Literal words, never user text)."""
    return "CASE kind " + " ".join(f"WHEN '{kind}' THEN {i}" for i, kind in enumerate(kinds)) + " END"


class SqliteStore(Store):
    """The index in one SQLite file at `path`, created (mode 0600, its directory 0700) on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._connection: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._lock = anyio.Lock()
        # Held by the worker thread around every use of the connection, and by close: a task cancelled
        # while its thread still runs gives up `_lock`, but its thread keeps this until it is done, so
        # the connection is never closed under a statement (which crashes the process).
        self._using = threading.RLock()

    # --- plumbing -------------------------------------------------------------------------------

    def _unavailable(self, error: BaseException) -> IndexUnavailable:
        return IndexUnavailable(
            f"the contact index {self.path} failed ({error}); if it persists, delete it with "
            "`contacts-mcp index forget` and let the next sync rebuild it."
        )

    def _file(self) -> int | None:
        try:
            return os.stat(self.path).st_ino
        except FileNotFoundError:
            return None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            if self._file() == self._inode:
                return self._connection
            # Another process forgot the index (deleted the file) since: go on in the new one, not the ghost.
            self._close()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created here, not by sqlite, so it is never readable by others even for a moment; its -wal
        # and -shm files take the database file's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
            _wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
            if row[0] is None:
                connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                connection.execute("ROLLBACK")
                raise IndexUnavailable(
                    f"the contact index {self.path} was made by a newer contacts-mcp (schema {row[0]}); "
                    "upgrade, or delete it with `contacts-mcp index forget`."
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._inode = self._file()
        return connection

    def _transaction(self, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        with self._using:
            return self._in_transaction(work, write)

    def _in_transaction(self, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result
        except (sqlite3.Error, OSError) as error:
            raise self._unavailable(error) from error

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._transaction, work, write)

    async def open(self) -> None:
        async with self._lock:
            try:
                await anyio.to_thread.run_sync(self._connected)
            except (sqlite3.Error, OSError) as error:
                raise self._unavailable(error) from error

    def _connected(self) -> None:
        with self._using:
            self._connect()

    def _close(self) -> None:
        with self._using:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def aclose(self) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._close)

    # --- contacts -------------------------------------------------------------------------------

    async def put(
        self,
        account: str,
        entries: Sequence[Entry],
        *,
        seen_at: datetime,
        window: Window | None = None,
        cursor: str | None = None,
        done: bool = False,
    ) -> None:
        page = normalize.unique(entries)
        seen = normalize.seconds_after(seen_at)

        def work(db: sqlite3.Connection) -> None:
            ids = [int(entry.id) for entry in page]
            held: dict[int, normalize.Bounds] = {
                row[0]: (row[1], row[2])
                for row in db.execute(
                    "SELECT id, created_after, created_before FROM contacts"
                    " WHERE account = ? AND id IN (SELECT value FROM json_each(?))",
                    (account, json.dumps(ids)),
                )
            }
            emails: list[tuple[int, str, str, str]] = []
            phones: list[tuple[int, str, str]] = []
            names_rows: list[tuple[int, str]] = []
            texts_rows: list[tuple[int, str]] = []
            replaced: list[tuple[int]] = []
            for entry, id in zip(page, ids, strict=True):
                after, before = page_bounds(entry, held.get(id), window)
                names = normalize.name_key(entry.names)
                [row] = db.execute(
                    "INSERT INTO contacts (account, id, data, created_after, created_before, seen_at, name_key)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, id) DO UPDATE SET data = excluded.data,"
                    " created_after = excluded.created_after, created_before = excluded.created_before,"
                    " seen_at = excluded.seen_at, name_key = excluded.name_key RETURNING row",
                    (account, id, data_of(entry), after, before, seen, names),
                ).fetchall()
                row_id: int = row[0]
                if id in held:
                    replaced.append((row_id,))
                addresses = dict.fromkeys(normalize.email(text) for text in entry.emails)
                emails.extend((row_id, account, a, reversed_domain(normalize.domain_of(a))) for a in addresses)
                phones.extend((row_id, account, key) for text in entry.phones for key in normalize.phone_keys(text))
                names_rows.append((row_id, names))
                texts_rows.append((row_id, normalize.text_key(entry)))
            if replaced:
                db.executemany("DELETE FROM emails WHERE contact = ?", replaced)
                db.executemany("DELETE FROM phones WHERE contact = ?", replaced)
                db.executemany("DELETE FROM names WHERE rowid = ?", replaced)
                db.executemany("DELETE FROM texts WHERE rowid = ?", replaced)
            db.executemany("INSERT INTO emails (contact, account, email, domain_rev) VALUES (?, ?, ?, ?)", emails)
            db.executemany("INSERT INTO phones (contact, account, key) VALUES (?, ?, ?)", list(dict.fromkeys(phones)))
            db.executemany("INSERT INTO names (rowid, name_key) VALUES (?, ?)", names_rows)
            db.executemany("INSERT INTO texts (rowid, text_key) VALUES (?, ?)", texts_rows)
            if window is not None:
                db.execute(
                    'INSERT INTO windows (account, start, "end", kind, cursor, done, contacts, requests, walked_at)'
                    ' VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT (account, start, "end", kind) DO UPDATE SET'
                    " cursor = excluded.cursor, done = excluded.done, contacts = contacts + excluded.contacts,"
                    " requests = requests + 1, walked_at = coalesce(excluded.walked_at, walked_at),"
                    " owner = CASE WHEN excluded.done THEN NULL ELSE owner END,"
                    " lease_until = CASE WHEN excluded.done THEN NULL ELSE lease_until END",
                    (
                        *window_key(account, window),
                        None if done else cursor,
                        int(done),
                        len(page),
                        seen if done else None,
                    ),
                )

        await self._run(work, write=True)

    @staticmethod
    def _delete(db: sqlite3.Connection, rows: Sequence[int]) -> None:
        params = [(row,) for row in rows]
        db.executemany("DELETE FROM emails WHERE contact = ?", params)
        db.executemany("DELETE FROM phones WHERE contact = ?", params)
        db.executemany("DELETE FROM names WHERE rowid = ?", params)
        db.executemany("DELETE FROM texts WHERE rowid = ?", params)
        db.executemany("DELETE FROM contacts WHERE row = ?", params)

    async def remove(self, account: str, ids: Sequence[str]) -> None:
        numbers = normalize.numeric_ids(ids)

        def work(db: sqlite3.Connection) -> None:
            rows = db.execute(
                "SELECT row FROM contacts WHERE account = ? AND id IN (SELECT value FROM json_each(?))",
                (account, json.dumps(numbers)),
            ).fetchall()
            self._delete(db, [row[0] for row in rows])

        await self._run(work, write=True)

    async def get(self, account: str, ids: Sequence[str]) -> dict[str, Entry]:
        numbers = normalize.numeric_ids(ids)

        def work(db: sqlite3.Connection) -> dict[str, Entry]:
            rows = db.execute(
                "SELECT id, data, created_after, created_before, seen_at FROM contacts"
                " WHERE account = ? AND id IN (SELECT value FROM json_each(?))",
                (account, json.dumps(numbers)),
            ).fetchall()
            return {str(row[0]): entry_of(*row) for row in rows}

        return await self._run(work)

    async def find(self, account: str, query: Query, *, limit: int) -> Found:
        # Unary + keeps the planner off the (account, id) index, which would scan the whole account: every
        # other condition is a rowid list (an exact email, phone, domain, or the trigram matches) to drive it.
        where = ["+c.account = ?"]
        params: list[Any] = [account]
        if query.email is not None:
            where.append("c.row IN (SELECT contact FROM emails WHERE account = ? AND email = ?)")
            params += [account, query.email]
        if query.phone is not None:
            keys = normalize.phone_candidates(query.phone)
            marks = ", ".join("?" * len(keys))
            where.append(f"c.row IN (SELECT contact FROM phones WHERE account = ? AND key IN ({marks}))")
            params += [account, *keys]
        if query.domain is not None:
            # "moc.emca" and its subdomains "moc.emca.bus...": "." sorts just before "/".
            reverse = reversed_domain(query.domain)
            where.append(
                "c.row IN (SELECT contact FROM emails WHERE account = ?"
                " AND (domain_rev = ? OR (domain_rev > ? AND domain_rev < ?)))"
            )
            params += [account, reverse, reverse + ".", reverse + "/"]
        for table, column, text in (("names", "name_key", query.name), ("texts", "text_key", query.text)):
            if text is None:
                continue
            if len(text) >= 3:
                where.append(f"c.row IN (SELECT rowid FROM {table} WHERE {table} MATCH ?)")
                params.append(normalize.phrase(text))
            else:
                # Too short for a trigram; it holds no wildcard (2 letters or digits), so LIKE scans safely.
                where.append(f"c.row IN (SELECT rowid FROM {table} WHERE {column} LIKE ?)")
                params.append(f"%{text}%")
        ranked = query.name if query.name is not None else query.text
        if query.email is not None or query.phone is not None or ranked is None:
            rank, rank_params = "0", []
        else:
            sep = normalize.KEY_SEPARATOR
            rank = "CASE WHEN instr(c.name_key, ?) > 0 THEN 1 WHEN instr(c.name_key, ?) > 0 THEN 2 ELSE 3 END"
            rank_params = [sep + ranked + sep, sep + ranked]
        conditions = " AND ".join(where)

        def work(db: sqlite3.Connection) -> Found:
            if limit <= 0:
                [(total,)] = db.execute(f"SELECT count(*) FROM contacts c WHERE {conditions}", params).fetchall()
                return Found(entries=[], total=total)
            rows = db.execute(
                f"SELECT c.id, c.data, c.created_after, c.created_before, c.seen_at, count(*) OVER () AS total,"
                f" {rank} AS rank FROM contacts c WHERE {conditions} ORDER BY rank, c.id DESC LIMIT ?",
                [*rank_params, *params, limit],
            ).fetchall()
            return Found(entries=[entry_of(*row[:5]) for row in rows], total=rows[0][5] if rows else 0)

        return await self._run(work)

    async def sweep(self, account: str, window: Window, *, seen_before: datetime) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT row, id FROM contacts WHERE account = ? AND created_after >= ? AND created_before <= ?"
                " AND seen_at < ? ORDER BY id",
                (account, _start(window), _end(window), normalize.seconds_after(seen_before)),
            ).fetchall()
            self._delete(db, [row[0] for row in rows])
            return [str(row[1]) for row in rows]

        return await self._run(work, write=True)

    # --- the sync's plan ------------------------------------------------------------------------

    async def plan(self, account: str, windows: Sequence[Window]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                'INSERT INTO windows (account, start, "end", kind, cursor, done, contacts, requests, walked_at)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (
                        *window_key(account, window),
                        window.cursor,
                        int(window.done),
                        window.contacts,
                        window.requests,
                        normalize.seconds_after(window.walked_at),
                    )
                    for window in windows
                ],
            )

        await self._run(work, write=True)

    async def claim(
        self, account: str, *, owner: str, now: datetime, lease_seconds: float, kinds: Sequence[WindowKind]
    ) -> Window | None:
        if not kinds:
            return None
        moment = now.timestamp()
        marks = ", ".join("?" * len(kinds))

        def work(db: sqlite3.Connection) -> Window | None:
            rows = db.execute(
                f"SELECT {_WINDOW_COLUMNS} FROM windows WHERE account = ? AND kind IN ({marks}) AND done = 0"
                " AND (owner IS NULL OR lease_until IS NULL OR lease_until <= ? OR owner = ?)"
                f" ORDER BY {kind_order(kinds)}, start DESC LIMIT 1",
                (account, *kinds, moment, owner),
            ).fetchall()  # all: a statement left unfinished would hold its read snapshot past the COMMIT
            if not rows:
                return None
            [row] = rows
            db.execute(
                "UPDATE windows SET owner = ?, lease_until = ?"
                ' WHERE account = ? AND start = ? AND "end" = ? AND kind = ?',
                (owner, moment + lease_seconds, account, row[0], row[1], row[2]),
            )
            return window_of(row)

        return await self._run(work, write=True)

    async def renew(self, account: str, window: Window, *, owner: str, until: datetime) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                'UPDATE windows SET lease_until = ? WHERE account = ? AND start = ? AND "end" = ? AND kind = ?'
                " AND owner = ? AND done = 0",
                (until.timestamp(), *window_key(account, window), owner),
            )
            return cursor.rowcount == 1

        return await self._run(work, write=True)

    async def release(self, account: str, window: Window, *, owner: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                'UPDATE windows SET owner = NULL, lease_until = NULL WHERE account = ? AND start = ? AND "end" = ?'
                " AND kind = ? AND owner = ?",
                (*window_key(account, window), owner),
            )

        await self._run(work, write=True)

    async def reopen(self, account: str, window: Window, *, kind: WindowKind) -> None:
        def work(db: sqlite3.Connection) -> None:
            # OR REPLACE: a window already planned with these bounds as `kind` is this one, reset.
            db.execute(
                "UPDATE OR REPLACE windows SET kind = ?, cursor = NULL, done = 0, contacts = 0, requests = 0,"
                ' owner = NULL, lease_until = NULL WHERE account = ? AND start = ? AND "end" = ? AND kind = ?',
                (kind, *window_key(account, window)),
            )

        await self._run(work, write=True)

    async def drop(self, account: str, windows: Sequence[Window]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                'DELETE FROM windows WHERE account = ? AND start = ? AND "end" = ? AND kind = ? AND done = 1',
                [window_key(account, window) for window in windows],
            )

        if windows:
            await self._run(work, write=True)

    async def windows(self, account: str) -> list[Window]:
        def work(db: sqlite3.Connection) -> list[Window]:
            rows = db.execute(
                f'SELECT {_WINDOW_COLUMNS} FROM windows WHERE account = ? ORDER BY start DESC, "end" DESC, kind',
                (account,),
            ).fetchall()
            return [window_of(row) for row in rows]

        return await self._run(work)

    # --- the account's sync state and the whole index --------------------------------------------

    async def meta(self, account: str) -> dict[str, str]:
        def work(db: sqlite3.Connection) -> dict[str, str]:
            return dict(db.execute("SELECT key, value FROM meta WHERE account = ?", (account,)).fetchall())

        return await self._run(work)

    async def set_meta(self, account: str, values: Mapping[str, str]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO meta (account, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
                [(account, key, value) for key, value in values.items()],
            )

        await self._run(work, write=True)

    async def status(self, account: str) -> Status:
        def work(db: sqlite3.Connection) -> Status:
            dated = dict.fromkeys(normalize.DATED, 0)
            total = 0
            for after, before, count in db.execute(
                "SELECT created_after, created_before, count(*) FROM contacts WHERE account = ?"
                " GROUP BY created_after IS NULL OR created_before IS NULL, created_before - created_after",
                (account,),
            ):
                dated[normalize.dated(after, before)] += count
                total += count
            [(windows, done, last, covered_from, covered_to)] = db.execute(
                "SELECT count(*), coalesce(sum(done), 0), max(walked_at), min(CASE WHEN done THEN start END),"
                ' max(CASE WHEN done THEN "end" END) FROM windows WHERE account = ?',
                (account,),
            ).fetchall()
            return Status(
                contacts=total,
                dated=dated,
                windows=windows,
                windows_done=done,
                last_sync=normalize.moment(last),
                covered_from=normalize.moment(covered_from),
                covered_to=normalize.moment(covered_to),
            )

        return await self._run(work)

    async def accounts(self) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT DISTINCT account FROM contacts UNION SELECT account FROM windows"
                " UNION SELECT account FROM meta ORDER BY 1"
            ).fetchall()
            return [row[0] for row in rows]

        return await self._run(work)

    async def forget(self) -> None:
        def work() -> None:
            with self._using:
                self._close()
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)

        async with self._lock:
            try:
                await anyio.to_thread.run_sync(work)
            except (sqlite3.Error, OSError) as error:
                raise self._unavailable(error) from error
