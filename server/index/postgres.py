"""The contact index in PostgreSQL (`CONTACTS_MCP_INDEX_URL`), shared by every replica on the same key.

Tables live in the connection's default schema, prefixed `contacts_mcp_`, created on first use
(under an advisory lock, so replicas starting together do not race). Names and free text are found
through `pg_trgm` GIN indexes; where the role may not create that extension, one warning is logged
and the same LIKE searches run unindexed.

Leases are judged by the callers' clocks: `claim` compares `lease_until` with its `now` argument
and `renew` stores its `until`, never the database's `now()`, exactly as the SQLite backend does,
so replicas' clocks must agree to well within a lease. `claim` locks the row it picks with
`FOR UPDATE SKIP LOCKED`: two replicas claiming at once each get a different window, and a
window whose lease one just took is re-checked, not handed out again.

Connections: a few `AsyncConnection`s kept idle between calls (at most `connections` in use); one
that failed or was left mid-transaction is closed rather than reused.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, LiteralString, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import psycopg
import psycopg.errors
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from ..errors import IndexUnavailable
from . import normalize
from .base import Entry, Found, Query, Status, Store, Window, WindowKind
from .sqlite import data_of, entry_of, page_bounds, reversed_domain, window_key, window_of

T = TypeVar("T")
logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PREFIX = "contacts_mcp_"
TABLES: tuple[LiteralString, ...] = ("phones", "emails", "contacts", "windows", "meta", "schema")
CONNECT_TIMEOUT = 10

_SCHEMA: list[LiteralString] = [
    "CREATE TABLE IF NOT EXISTS contacts_mcp_schema (version integer NOT NULL)",
    """CREATE TABLE IF NOT EXISTS contacts_mcp_contacts (
        account text NOT NULL,
        id bigint NOT NULL,
        data jsonb NOT NULL,
        created_after bigint,
        created_before bigint,
        seen_at bigint NOT NULL,
        name_key text NOT NULL,
        text_key text NOT NULL,
        PRIMARY KEY (account, id))""",
    """CREATE TABLE IF NOT EXISTS contacts_mcp_emails (
        account text NOT NULL,
        id bigint NOT NULL,
        email text NOT NULL,
        domain_rev text COLLATE "C" NOT NULL,
        FOREIGN KEY (account, id) REFERENCES contacts_mcp_contacts ON DELETE CASCADE)""",
    "CREATE INDEX IF NOT EXISTS contacts_mcp_emails_email ON contacts_mcp_emails (account, email)",
    "CREATE INDEX IF NOT EXISTS contacts_mcp_emails_domain ON contacts_mcp_emails (account, domain_rev)",
    "CREATE INDEX IF NOT EXISTS contacts_mcp_emails_contact ON contacts_mcp_emails (account, id)",
    """CREATE TABLE IF NOT EXISTS contacts_mcp_phones (
        account text NOT NULL,
        id bigint NOT NULL,
        key text NOT NULL,
        FOREIGN KEY (account, id) REFERENCES contacts_mcp_contacts ON DELETE CASCADE)""",
    "CREATE INDEX IF NOT EXISTS contacts_mcp_phones_key ON contacts_mcp_phones (account, key)",
    "CREATE INDEX IF NOT EXISTS contacts_mcp_phones_contact ON contacts_mcp_phones (account, id)",
    """CREATE TABLE IF NOT EXISTS contacts_mcp_windows (
        account text NOT NULL,
        start_at bigint NOT NULL,
        end_at bigint NOT NULL,
        kind text NOT NULL,
        cursor text,
        done boolean NOT NULL DEFAULT false,
        contacts integer NOT NULL DEFAULT 0,
        requests integer NOT NULL DEFAULT 0,
        walked_at bigint,
        owner text,
        lease_until double precision,
        PRIMARY KEY (account, start_at, end_at, kind))""",
    """CREATE TABLE IF NOT EXISTS contacts_mcp_meta (
        account text NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY (account, key))""",
]
_TRIGRAM_INDEXES: list[LiteralString] = [
    "CREATE INDEX IF NOT EXISTS contacts_mcp_contacts_names ON contacts_mcp_contacts USING gin (name_key gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS contacts_mcp_contacts_text ON contacts_mcp_contacts USING gin (text_key gin_trgm_ops)",
]
_WINDOW_COLUMNS = "start_at, end_at, kind, cursor, done, contacts, requests, walked_at"
_WINDOW_KEY = "account = %s AND start_at = %s AND end_at = %s AND kind = %s"


def shown_url(url: str) -> str:
    """The connection string without its password, for logs and `index status`."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}"))
    try:
        fields = conninfo_to_dict(url)
    except psycopg.Error:
        return "(an unreadable PostgreSQL connection string)"
    fields.pop("password", None)
    return make_conninfo(**{key: str(value) for key, value in fields.items()})


def _password(url: str) -> str | None:
    try:
        value = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        return None
    return None if value is None else str(value)


def like_pattern(text: str) -> str:
    """`text` anywhere, as a LIKE pattern (its own wildcards escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PostgresStore(Store):
    """The index in the PostgreSQL database at `url` (tables created on first use)."""

    def __init__(self, url: str, *, connections: int = 4) -> None:
        self.url = url
        self.location = shown_url(url)
        self._secret = _password(url)
        self._idle: list[AsyncConnection] = []
        self._slots = anyio.Semaphore(connections)
        self._setup = anyio.Lock()
        self._ready = False
        self.trigram = True
        """Whether names are searched through pg_trgm indexes (False: the role could not create the extension)."""

    # --- plumbing -------------------------------------------------------------------------------

    def _unavailable(self, error: BaseException) -> IndexUnavailable:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if self._secret:
            detail = detail.replace(self._secret, "***")
        return IndexUnavailable(
            f"the contact index at {self.location} failed ({detail}); check that the database is reachable "
            "and CONTACTS_MCP_INDEX_URL is right, or clear it with `contacts-mcp index forget` and sync again."
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncGenerator[AsyncConnection]:
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            if connection is None:
                connection = await AsyncConnection.connect(self.url, connect_timeout=CONNECT_TIMEOUT)
            reusable = False
            try:
                yield connection
                reusable = not connection.closed and connection.info.transaction_status == TransactionStatus.IDLE
            finally:
                if reusable:
                    self._idle.append(connection)
                else:
                    await connection.close()

    async def _made(self, connection: AsyncConnection) -> bool:
        """Whether the tables are there at this schema version (then no DDL runs: it would lock out writers)."""
        cursor = await connection.execute(
            "SELECT to_regclass('contacts_mcp_schema') IS NOT NULL,"
            " to_regclass('contacts_mcp_contacts_names') IS NOT NULL"
        )
        row = await cursor.fetchone()
        if row is None or not row[0]:
            return False
        cursor = await connection.execute("SELECT max(version) FROM contacts_mcp_schema")
        version_row = await cursor.fetchone()
        version = None if version_row is None else version_row[0]
        if version is None:
            return False
        if version > SCHEMA_VERSION:
            raise IndexUnavailable(
                f"the contact index at {self.location} was made by a newer contacts-mcp (schema {version}); "
                "upgrade, or clear it with `contacts-mcp index forget`."
            )
        self.trigram = bool(row[1])
        if not self.trigram:
            self._warn_unindexed("its pg_trgm indexes are missing")
        return True

    def _warn_unindexed(self, reason: str) -> None:
        logger.warning(
            "the contact index at %s searches names without an index: %s; "
            "a superuser can run CREATE EXTENSION pg_trgm in that database, then `contacts-mcp index forget`",
            self.location,
            reason,
        )

    async def _create(self, connection: AsyncConnection) -> None:
        async with connection.transaction():
            # Replicas starting together would race on CREATE ... IF NOT EXISTS; one at a time.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('contacts_mcp_schema'))")
            if await self._made(connection):
                return
            for statement in _SCHEMA:
                await connection.execute(statement)
            try:
                async with connection.transaction():
                    await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                    for statement in _TRIGRAM_INDEXES:
                        await connection.execute(statement)
                self.trigram = True
            except psycopg.Error as error:
                self.trigram = False
                detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                self._warn_unindexed(f"pg_trgm is unavailable ({detail})")
            await connection.execute("INSERT INTO contacts_mcp_schema (version) VALUES (%s)", (SCHEMA_VERSION,))

    async def _ensure(self) -> None:
        if self._ready:
            return
        async with self._setup:
            if self._ready:
                return
            async with self._connection() as connection:
                await self._create(connection)
            self._ready = True

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        try:
            for attempt in range(2):
                await self._ensure()
                try:
                    async with self._connection() as connection, connection.transaction():
                        return await work(connection)
                except psycopg.errors.UndefinedTable:
                    # Another replica (or `index forget`) dropped the tables: make them again, once.
                    if attempt:
                        raise
                    self._ready = False
            raise AssertionError("unreachable")  # pragma: no cover
        except (psycopg.Error, OSError) as error:
            raise self._unavailable(error) from error

    async def open(self) -> None:
        try:
            await self._ensure()
        except (psycopg.Error, OSError) as error:
            raise self._unavailable(error) from error

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()

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
        ids = [int(entry.id) for entry in page]
        seen = normalize.seconds_after(seen_at)

        async def work(db: AsyncConnection) -> None:
            rows = await db.execute(
                "SELECT id, created_after, created_before FROM contacts_mcp_contacts"
                " WHERE account = %s AND id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
                (account, ids),
            )
            held: dict[int, normalize.Bounds] = {row[0]: (row[1], row[2]) for row in await rows.fetchall()}
            columns: list[list[Any]] = [[] for _ in range(6)]
            emails: list[list[Any]] = [[], [], []]
            phones: list[list[Any]] = [[], []]
            for entry, id in zip(page, ids, strict=True):
                after, before = page_bounds(entry, held.get(id), window)
                row = (id, data_of(entry), after, before, normalize.name_key(entry.names), normalize.text_key(entry))
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
                for address in dict.fromkeys(normalize.email(text) for text in entry.emails):
                    for column, value in zip(
                        emails, (id, address, reversed_domain(normalize.domain_of(address))), strict=True
                    ):
                        column.append(value)
                for key in {key for text in entry.phones for key in normalize.phone_keys(text)}:
                    phones[0].append(id)
                    phones[1].append(key)
            if held:
                await db.execute(
                    "DELETE FROM contacts_mcp_emails WHERE account = %s AND id = ANY(%s::bigint[])", (account, ids)
                )
                await db.execute(
                    "DELETE FROM contacts_mcp_phones WHERE account = %s AND id = ANY(%s::bigint[])", (account, ids)
                )
            await db.execute(
                "INSERT INTO contacts_mcp_contacts"
                " (account, id, data, created_after, created_before, seen_at, name_key, text_key)"
                " SELECT %s, id, data::jsonb, after, before, %s, name_key, text_key"
                " FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[])"
                " AS page (id, data, after, before, name_key, text_key)"
                " ON CONFLICT (account, id) DO UPDATE SET data = excluded.data,"
                " created_after = excluded.created_after, created_before = excluded.created_before,"
                " seen_at = excluded.seen_at, name_key = excluded.name_key, text_key = excluded.text_key",
                (account, seen, *columns),
            )
            await db.execute(
                "INSERT INTO contacts_mcp_emails (account, id, email, domain_rev)"
                " SELECT %s, * FROM unnest(%s::bigint[], %s::text[], %s::text[])",
                (account, *emails),
            )
            await db.execute(
                "INSERT INTO contacts_mcp_phones (account, id, key) SELECT %s, * FROM unnest(%s::bigint[], %s::text[])",
                (account, *phones),
            )
            if window is not None:
                await db.execute(
                    "INSERT INTO contacts_mcp_windows"
                    " (account, start_at, end_at, kind, cursor, done, contacts, requests, walked_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s) ON CONFLICT (account, start_at, end_at, kind)"
                    " DO UPDATE SET cursor = excluded.cursor, done = excluded.done,"
                    " contacts = contacts_mcp_windows.contacts + excluded.contacts,"
                    " requests = contacts_mcp_windows.requests + 1,"
                    " walked_at = coalesce(excluded.walked_at, contacts_mcp_windows.walked_at),"
                    " owner = CASE WHEN excluded.done THEN NULL ELSE contacts_mcp_windows.owner END,"
                    " lease_until = CASE WHEN excluded.done THEN NULL ELSE contacts_mcp_windows.lease_until END",
                    (*window_key(account, window), None if done else cursor, done, len(page), seen if done else None),
                )

        await self._run(work)

    async def remove(self, account: str, ids: Sequence[str]) -> None:
        numbers = normalize.numeric_ids(ids)

        async def work(db: AsyncConnection) -> None:
            await db.execute(
                "DELETE FROM contacts_mcp_contacts WHERE account = %s AND id = ANY(%s::bigint[])", (account, numbers)
            )

        await self._run(work)

    async def get(self, account: str, ids: Sequence[str]) -> dict[str, Entry]:
        numbers = normalize.numeric_ids(ids)

        async def work(db: AsyncConnection) -> dict[str, Entry]:
            rows = await db.execute(
                "SELECT id, data, created_after, created_before, seen_at FROM contacts_mcp_contacts"
                " WHERE account = %s AND id = ANY(%s::bigint[])",
                (account, numbers),
            )
            return {str(row[0]): entry_of(*row) for row in await rows.fetchall()}

        return await self._run(work)

    async def find(self, account: str, query: Query, *, limit: int) -> Found:
        where: list[LiteralString] = ["c.account = %s"]
        params: list[Any] = [account]
        if query.email is not None:
            where.append("c.id IN (SELECT id FROM contacts_mcp_emails WHERE account = %s AND email = %s)")
            params += [account, query.email]
        if query.phone is not None:
            where.append("c.id IN (SELECT id FROM contacts_mcp_phones WHERE account = %s AND key = ANY(%s::text[]))")
            params += [account, normalize.phone_candidates(query.phone)]
        if query.domain is not None:
            # "moc.emca" and its subdomains "moc.emca.bus...": "." sorts just before "/" (the column is "C").
            reverse = reversed_domain(query.domain)
            where.append(
                "c.id IN (SELECT id FROM contacts_mcp_emails WHERE account = %s"
                " AND (domain_rev = %s OR (domain_rev > %s AND domain_rev < %s)))"
            )
            params += [account, reverse, reverse + ".", reverse + "/"]
        if query.name is not None:
            where.append("c.name_key LIKE %s")
            params.append(like_pattern(query.name))
        if query.text is not None:
            where.append("c.text_key LIKE %s")
            params.append(like_pattern(query.text))
        ranked = query.name if query.name is not None else query.text
        rank: LiteralString = "0"
        rank_params: list[str] = []
        if query.email is None and query.phone is None and ranked is not None:
            sep = normalize.KEY_SEPARATOR
            rank = "CASE WHEN strpos(c.name_key, %s) > 0 THEN 1 WHEN strpos(c.name_key, %s) > 0 THEN 2 ELSE 3 END"
            rank_params = [sep + ranked + sep, sep + ranked]
        conditions = " AND ".join(where)

        async def work(db: AsyncConnection) -> Found:
            if limit <= 0:
                cursor = await db.execute(f"SELECT count(*) FROM contacts_mcp_contacts c WHERE {conditions}", params)
                row = await cursor.fetchone()
                return Found(entries=[], total=0 if row is None else row[0])
            cursor = await db.execute(
                f"SELECT c.id, c.data, c.created_after, c.created_before, c.seen_at, count(*) OVER () AS total,"
                f" {rank} AS rank FROM contacts_mcp_contacts c WHERE {conditions} ORDER BY rank, c.id DESC LIMIT %s",
                [*rank_params, *params, limit],
            )
            rows = await cursor.fetchall()
            return Found(entries=[entry_of(*row[:5]) for row in rows], total=rows[0][5] if rows else 0)

        return await self._run(work)

    async def sweep(self, account: str, window: Window, *, seen_before: datetime) -> list[str]:
        _, start, end, _ = window_key(account, window)

        async def work(db: AsyncConnection) -> list[str]:
            cursor = await db.execute(
                "DELETE FROM contacts_mcp_contacts WHERE account = %s AND created_after >= %s"
                " AND created_before <= %s AND seen_at < %s RETURNING id",
                (account, start, end, normalize.seconds_after(seen_before)),
            )
            return [str(row[0]) for row in sorted(await cursor.fetchall())]

        return await self._run(work)

    # --- the sync's plan ------------------------------------------------------------------------

    async def plan(self, account: str, windows: Sequence[Window]) -> None:
        async def work(db: AsyncConnection) -> None:
            async with db.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO contacts_mcp_windows"
                    " (account, start_at, end_at, kind, cursor, done, contacts, requests, walked_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [
                        (
                            *window_key(account, window),
                            window.cursor,
                            window.done,
                            window.contacts,
                            window.requests,
                            normalize.seconds_after(window.walked_at),
                        )
                        for window in windows
                    ],
                )

        await self._run(work)

    async def claim(
        self, account: str, *, owner: str, now: datetime, lease_seconds: float, kinds: Sequence[WindowKind]
    ) -> Window | None:
        if not kinds:
            return None
        moment = now.timestamp()
        order = list(kinds)

        async def work(db: AsyncConnection) -> Window | None:
            cursor = await db.execute(
                f"SELECT {_WINDOW_COLUMNS} FROM contacts_mcp_windows WHERE account = %s AND kind = ANY(%s::text[])"
                " AND NOT done AND (owner IS NULL OR lease_until IS NULL OR lease_until <= %s OR owner = %s)"
                " ORDER BY array_position(%s::text[], kind), start_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED",
                (account, order, moment, owner, order),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            await db.execute(
                f"UPDATE contacts_mcp_windows SET owner = %s, lease_until = %s WHERE {_WINDOW_KEY}",
                (owner, moment + lease_seconds, account, row[0], row[1], row[2]),
            )
            return window_of(row)

        return await self._run(work)

    async def renew(self, account: str, window: Window, *, owner: str, until: datetime) -> bool:
        async def work(db: AsyncConnection) -> bool:
            cursor = await db.execute(
                f"UPDATE contacts_mcp_windows SET lease_until = %s WHERE {_WINDOW_KEY} AND owner = %s AND NOT done",
                (until.timestamp(), *window_key(account, window), owner),
            )
            return cursor.rowcount == 1

        return await self._run(work)

    async def release(self, account: str, window: Window, *, owner: str) -> None:
        async def work(db: AsyncConnection) -> None:
            await db.execute(
                f"UPDATE contacts_mcp_windows SET owner = NULL, lease_until = NULL WHERE {_WINDOW_KEY} AND owner = %s",
                (*window_key(account, window), owner),
            )

        await self._run(work)

    async def reopen(self, account: str, window: Window, *, kind: WindowKind) -> None:
        key = window_key(account, window)

        async def work(db: AsyncConnection) -> None:
            if kind != window.kind:
                # A window already planned with these bounds as `kind` is this one, reset.
                await db.execute(f"DELETE FROM contacts_mcp_windows WHERE {_WINDOW_KEY}", (*key[:3], kind))
            await db.execute(
                "UPDATE contacts_mcp_windows SET kind = %s, cursor = NULL, done = false, contacts = 0, requests = 0,"
                f" owner = NULL, lease_until = NULL WHERE {_WINDOW_KEY}",
                (kind, *key),
            )

        await self._run(work)

    async def drop(self, account: str, windows: Sequence[Window]) -> None:
        async def work(db: AsyncConnection) -> None:
            async with db.cursor() as cursor:
                await cursor.executemany(
                    f"DELETE FROM contacts_mcp_windows WHERE {_WINDOW_KEY} AND done",
                    [window_key(account, window) for window in windows],
                )

        if windows:
            await self._run(work)

    async def windows(self, account: str) -> list[Window]:
        async def work(db: AsyncConnection) -> list[Window]:
            cursor = await db.execute(
                f"SELECT {_WINDOW_COLUMNS} FROM contacts_mcp_windows WHERE account = %s"
                " ORDER BY start_at DESC, end_at DESC, kind",
                (account,),
            )
            return [window_of(row) for row in await cursor.fetchall()]

        return await self._run(work)

    # --- the account's sync state and the whole index --------------------------------------------

    async def meta(self, account: str) -> dict[str, str]:
        async def work(db: AsyncConnection) -> dict[str, str]:
            cursor = await db.execute("SELECT key, value FROM contacts_mcp_meta WHERE account = %s", (account,))
            return {row[0]: row[1] for row in await cursor.fetchall()}

        return await self._run(work)

    async def set_meta(self, account: str, values: Mapping[str, str]) -> None:
        async def work(db: AsyncConnection) -> None:
            async with db.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO contacts_mcp_meta (account, key, value) VALUES (%s, %s, %s)"
                    " ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
                    [(account, key, value) for key, value in values.items()],
                )

        await self._run(work)

    async def status(self, account: str) -> Status:
        async def work(db: AsyncConnection) -> Status:
            dated = dict.fromkeys(normalize.DATED, 0)
            total = 0
            cursor = await db.execute(
                "SELECT min(created_after), min(created_before), count(*) FROM contacts_mcp_contacts"
                " WHERE account = %s GROUP BY created_after IS NULL OR created_before IS NULL,"
                " created_before - created_after",
                (account,),
            )
            for after, before, count in await cursor.fetchall():
                dated[normalize.dated(after, before)] += count
                total += count
            cursor = await db.execute(
                "SELECT count(*), count(*) FILTER (WHERE done), max(walked_at), min(start_at) FILTER (WHERE done),"
                " max(end_at) FILTER (WHERE done) FROM contacts_mcp_windows WHERE account = %s",
                (account,),
            )
            row = await cursor.fetchone()
            windows, done, last, covered_from, covered_to = row if row is not None else (0, 0, None, None, None)
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
        async def work(db: AsyncConnection) -> list[str]:
            cursor = await db.execute(
                "SELECT account FROM contacts_mcp_contacts UNION SELECT account FROM contacts_mcp_windows"
                " UNION SELECT account FROM contacts_mcp_meta ORDER BY 1"
            )
            return [row[0] for row in await cursor.fetchall()]

        return await self._run(work)

    async def forget(self) -> None:
        try:
            async with self._setup, self._connection() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext('contacts_mcp_schema'))")
                for table in TABLES:
                    await connection.execute(f"DROP TABLE IF EXISTS {PREFIX}{table} CASCADE")
                self._ready = False
        except (psycopg.Error, OSError) as error:
            raise self._unavailable(error) from error
