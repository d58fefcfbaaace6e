"""The SQLite store: file databases persist and are never reseeded, and paging stays on an index."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from contacts_mcp.server.sandbox import sandbox_of
from contacts_mcp.server.sandbox.model import NewContact, Stamped
from contacts_mcp.server.sandbox.store import ListQuery, Store, UnusableDatabase
from tests.sandbox.support import COMETLY, CONTACTS_PATH, EVERYTHING, MakeApp, client_for

pytestmark = pytest.mark.anyio


async def test_a_file_database_keeps_created_contacts_across_apps(make_app: MakeApp, tmp_path: Path) -> None:
    db_path = str(tmp_path / "sandbox.sqlite3")
    first = make_app(db_path=db_path, contacts=30)
    async with client_for(first) as client:
        created = await client.post(CONTACTS_PATH, json={"emails": ["kept@example.com"]}, headers=COMETLY)
    sandbox_of(first).store.close()

    second = make_app(db_path=db_path, contacts=5, seed=99)
    async with client_for(second) as client:
        fetched = await client.get(f"{CONTACTS_PATH}/{created.json()['id']}", headers=COMETLY)
        listed = await client.get(CONTACTS_PATH, params={**EVERYTHING, "per_page": 5000}, headers=COMETLY)

    assert fetched.status_code == 200
    assert fetched.json()["emails"][0]["email"] == "kept@example.com"
    assert len(listed.json()["data"]) == 31, "the second app reuses the file as it is, without reseeding"


def test_a_database_that_is_not_a_sandbox_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    connection.close()
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("just text, long enough to not look like an empty database file", encoding="utf-8")

    with pytest.raises(ValueError, match="not a"):
        Store.open(str(other))
    with pytest.raises(ValueError, match="not a usable SQLite database"):
        Store.open(str(not_sqlite))

    with sqlite3.connect(other) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
    connection.close()
    assert tables == ["notes"]


def test_an_interrupted_seeding_is_redone_on_the_next_open(tmp_path: Path) -> None:
    db_path = str(tmp_path / "sandbox.sqlite3")
    store, is_new = Store.open(db_path)
    store.close()

    reopened, still_new = Store.open(db_path)
    reopened.close()

    assert is_new
    assert still_new


def test_new_ids_skip_past_merged_profile_ids() -> None:
    store, _ = Store.open(":memory:")
    try:
        store.seed({5: "Plan"}, [NewContact(id=7, created_at=1, emails=[Stamped("a@example.com", 1)], merged_ids=[9])])

        row = store.create(lambda new_id: NewContact(id=new_id, created_at=2, emails=[Stamped("b@example.com", 2)]))

        assert row.id == 10
        merged = store.contact(9)
        assert merged is not None
        assert merged.id == 7
    finally:
        store.close()


def test_paging_with_a_cursor_walks_the_primary_key_instead_of_sorting(make_app: MakeApp) -> None:
    store = sandbox_of(make_app(contacts=200)).store
    base = ListQuery(start=0, end=2**40, conditions=[], today=date(2026, 3, 15), limit=5000)

    next_page = store.explain_list(replace(base, after_id=10_100))
    prev_page = store.explain_list(replace(base, before_id=10_100))

    for plan in (next_page, prev_page):
        assert any("INTEGER PRIMARY KEY" in step or "USING INDEX" in step for step in plan)
        assert not any("TEMP B-TREE" in step for step in plan)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/dev/null", "not a regular file"),
        ("/proc/self/status", "not a usable SQLite database"),
        ("/proc/sandbox.sqlite3", "not a usable SQLite database"),  # a directory no one can create files in
        ("{tmp}", "not a regular file"),
        ("{tmp}/missing/sandbox.sqlite3", "no directory"),
        ("{tmp}/notes.txt/sandbox.sqlite3", "no directory"),
    ],
)
def test_a_path_that_cannot_hold_a_sandbox_is_refused_as_unusable(tmp_path: Path, path: str, problem: str) -> None:
    (tmp_path / "notes.txt").write_text("just text", encoding="utf-8")

    with pytest.raises(UnusableDatabase, match=problem):
        Store.open(path.format(tmp=tmp_path))

    assert sorted(child.name for child in tmp_path.iterdir()) == ["notes.txt"], "nothing was created"
