"""What only the SQLite file brings: its modes, its survival of a killed writer, and its errors."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from contacts_mcp.server.errors import IndexUnavailable
from contacts_mcp.server.index.base import Entry, Query, Window
from contacts_mcp.server.index.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

A = "account-a"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PAGE = 300
KILLED_PAGE = 25
WRITER = """
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import anyio

from contacts_mcp.server.index import sqlite
from contacts_mcp.server.index.base import Entry, Window
from contacts_mcp.server.index.sqlite import SqliteStore

PAGE, KILLED_PAGE = int(sys.argv[2]), int(sys.argv[3])
WINDOW = Window(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 31, tzinfo=UTC), kind="walk")
stored = 0
data_of = sqlite.data_of


def halting_data_of(entry: Entry) -> str:
    # Half-way through writing KILLED_PAGE (its first half already inserted in the open transaction),
    # say so and stop there until the parent's SIGKILL.
    global stored
    stored += 1
    if stored == KILLED_PAGE * PAGE + PAGE // 2:
        print("inside", flush=True)
        threading.Event().wait()
    return data_of(entry)


sqlite.data_of = halting_data_of


async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    await store.plan("account-a", [WINDOW])
    for page in range(100_000):
        entries = [
            Entry(id=str(page * PAGE + n), names=(f"Name {page} {n}",), emails=(f"p{page}.{n}@example.com",))
            for n in range(PAGE)
        ]
        await store.put("account-a", entries, seen_at=datetime.now(UTC), window=WINDOW, cursor=str(page + 1))
        print(page, flush=True)


anyio.run(main)
"""


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would let anyone read a new file: the index's modes must come from the store itself."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
async def test_the_file_is_created_on_first_use_readable_only_by_its_owner_with_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "contacts.db"
    store = SqliteStore(path)
    assert not path.parent.exists()
    try:
        await store.put(A, [Entry(id="1", emails=("a@example.com",))], seen_at=NOW)
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert (mode(path.parent), mode(path), mode(wal), mode(shm)) == (0o700, 0o600, 0o600, 0o600)
    finally:
        await store.aclose()


async def test_a_writer_killed_inside_a_page_leaves_exactly_the_pages_it_committed(sqlite_path: Path) -> None:
    sqlite_path.parent.mkdir(parents=True)
    script = sqlite_path.parent / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    output = b""
    with anyio.fail_after(120):
        async with await anyio.open_process(
            [sys.executable, str(script), str(sqlite_path), str(PAGE), str(KILLED_PAGE)], stderr=None
        ) as writer:
            assert writer.stdout is not None
            async for chunk in writer.stdout:
                output += chunk
                if output.endswith(b"inside\n"):
                    break
            writer.send_signal(signal.SIGKILL)
            await writer.wait()
    assert writer.returncode == -signal.SIGKILL

    with sqlite3.connect(sqlite_path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        [(count, low, high)] = raw.execute("SELECT count(*), min(id), max(id) FROM contacts").fetchall()
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store = SqliteStore(sqlite_path)
    try:
        [window] = await store.windows(A)
        assert window.cursor is not None
        pages = int(window.cursor)
        assert output.split()[-2:] == [str(KILLED_PAGE - 1).encode(), b"inside"]
        assert pages == KILLED_PAGE  # every page before the one being written, and nothing of that one
        assert (count, low, high) == (pages * PAGE, 0, pages * PAGE - 1)
        assert (window.contacts, window.requests) == (pages * PAGE, pages)
        last = pages * PAGE - 1
        found = await store.find(A, Query(email=f"p{pages - 1}.{PAGE - 1}@example.com"), limit=5)
        assert [e.id for e in found.entries] == [str(last)]
        assert (await store.find(A, Query(name=f"name {pages} "), limit=5)).total == 0
    finally:
        await store.aclose()


async def test_a_file_that_is_not_an_index_is_reported_with_its_path_and_the_way_out(sqlite_path: Path) -> None:
    sqlite_path.parent.mkdir(parents=True)
    await anyio.Path(sqlite_path).write_bytes(b"this is not a database" * 200)
    store = SqliteStore(sqlite_path)
    with pytest.raises(IndexUnavailable) as raised:
        await store.get(A, ["1"])
    assert str(sqlite_path) in raised.value.message
    assert "contacts-mcp index forget" in raised.value.message
    await store.forget()
    assert await store.get(A, ["1"]) == {}
    await store.aclose()


async def test_a_directory_that_cannot_be_made_is_index_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    store = SqliteStore(tmp_path / "file" / "contacts.db")
    with pytest.raises(IndexUnavailable):
        await store.open()


async def test_forget_removes_the_file_and_its_wal_and_shm(sqlite_path: Path) -> None:
    # Another process (the server, while the CLI forgets) keeps the WAL and SHM from going with the last close.
    store, other = SqliteStore(sqlite_path), SqliteStore(sqlite_path)
    window = Window(start=NOW, end=NOW.replace(hour=13), kind="head")
    await store.put(A, [Entry(id="1")], seen_at=NOW, window=window)
    assert await other.get(A, ["1"])
    assert await anyio.Path(f"{sqlite_path}-wal").exists()
    await store.forget()
    assert sorted(sqlite_path.parent.iterdir()) == []
    await store.aclose()
    await other.aclose()


async def test_two_stores_on_one_file_see_each_others_writes(sqlite_path: Path) -> None:
    server, cli = SqliteStore(sqlite_path), SqliteStore(sqlite_path)

    async def put(store: SqliteStore, n: int) -> None:
        await store.put(A, [Entry(id=str(n), names=("Shared",))], seen_at=NOW)

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for n in range(20):
                    group.start_soon(put, server if n % 2 else cli, n)
        assert (await server.find(A, Query(name="shared"), limit=50)).total == 20
        assert (await cli.find(A, Query(name="shared"), limit=50)).total == 20
    finally:
        await server.aclose()
        await cli.aclose()
