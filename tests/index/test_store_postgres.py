"""What only the PostgreSQL backend brings: replicas claiming on one database, no password shown, pg_trgm refused."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import anyio
import psycopg
import pytest
from psycopg import sql

from contacts_mcp.server.errors import IndexUnavailable
from contacts_mcp.server.index.base import Entry, Query, Window
from contacts_mcp.server.index.postgres import PostgresStore, shown_url
from tests.postgres_support import PASSWORD, RunningPostgres

pytestmark = pytest.mark.anyio

A = "account-a"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def day(n: int) -> Window:
    start = datetime(2026, 5, 1, tzinfo=UTC) + timedelta(days=n)
    return Window(start=start, end=start + timedelta(days=1, seconds=-1), kind="walk")


async def test_replicas_claiming_from_many_tasks_never_hold_one_window_at_once(postgres_url: str) -> None:
    replicas = [PostgresStore(postgres_url, connections=8), PostgresStore(postgres_url, connections=8)]
    await replicas[0].plan(A, [day(n) for n in range(30)])
    held: dict[datetime, str] = {}
    overlaps: list[tuple[datetime, str, str]] = []

    async def walker(store: PostgresStore, name: str) -> None:
        # Claim, hold for a moment of work, finish; never may another owner hold the same window meanwhile.
        for turn in range(100):
            owner = f"{name}-{turn}"
            window = await store.claim(A, owner=owner, now=NOW, lease_seconds=300, kinds=["walk"])
            if window is None:
                return
            if window.start in held:
                overlaps.append((window.start, held[window.start], owner))
            held[window.start] = owner
            await store.put(A, [Entry(id=str(turn))], seen_at=NOW, window=window, done=True)
            del held[window.start]

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for replica, store in enumerate(replicas):
                    for task in range(10):
                        group.start_soon(walker, store, f"replica{replica}-task{task}")
        assert overlaps == []
        assert all(window.done for window in await replicas[1].windows(A))
    finally:
        for store in replicas:
            await store.aclose()


async def test_a_lapsed_lease_is_taken_over_by_another_replica_and_a_live_one_is_not(postgres_url: str) -> None:
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    try:
        await first.plan(A, [day(1)])
        mine = await first.claim(A, owner="first", now=NOW, lease_seconds=30, kinds=["walk"])
        assert mine is not None
        assert (
            await second.claim(A, owner="second", now=NOW + timedelta(seconds=29), lease_seconds=30, kinds=["walk"])
            is None
        )
        taken = await second.claim(A, owner="second", now=NOW + timedelta(seconds=30), lease_seconds=30, kinds=["walk"])
        assert taken == mine
        assert not await first.renew(A, mine, owner="first", until=NOW + timedelta(seconds=90))
    finally:
        await first.aclose()
        await second.aclose()


async def test_replicas_starting_together_create_the_tables_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(4)]
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for store in stores:
                    group.start_soon(store.open)
        await stores[0].put(A, [Entry(id="1", names=("Jane",))], seen_at=NOW)
        assert (await stores[3].find(A, Query(name="jane"), limit=5)).total == 1
    finally:
        for store in stores:
            await store.aclose()


def test_the_location_shown_has_no_password() -> None:
    url = f"postgresql://contacts:{PASSWORD}@db.internal:5432/index?sslmode=require"
    assert PostgresStore(url).location == "postgresql://contacts@db.internal:5432/index?sslmode=require"
    assert PASSWORD not in shown_url(f"host=db.internal user=contacts password={PASSWORD} dbname=index")
    assert shown_url("postgresql://db.internal/index") == "postgresql://db.internal/index"


async def test_a_refused_connection_is_index_unavailable_without_the_password(postgres: RunningPostgres) -> None:
    wrong = "pg-Wrong7Secret3Value"
    store = PostgresStore(postgres.url("postgres", password=wrong))
    with pytest.raises(IndexUnavailable) as raised:
        await store.get(A, ["1"])
    assert wrong not in raised.value.message
    assert "127.0.0.1" in raised.value.message
    await store.aclose()


async def test_without_pg_trgm_one_warning_is_logged_and_names_are_still_found(
    postgres: RunningPostgres, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A role that may create tables but not extensions (no CREATE on the database; pg_trgm is trusted).
    role, password = "plain_role", "pg-Plain4Role8Pass"
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    url = f"postgresql://{role}:{password}@127.0.0.1:{postgres.port}/{database}"
    store = PostgresStore(url)
    try:
        with caplog.at_level(logging.WARNING, logger="contacts_mcp.server.index.postgres"):
            await store.put(A, [Entry(id="1", names=("José Núñez",)), Entry(id="2", names=("Nunes",))], seen_at=NOW)
            found = await store.find(A, Query(name="nunez"), limit=5)
            assert [e.id for e in (await store.find(A, Query(name="nu"), limit=5)).entries] == ["2", "1"]
        assert [e.id for e in found.entries] == ["1"]
        assert not store.trigram
        assert [r.levelno for r in caplog.records] == [logging.WARNING]
        assert password not in caplog.text
    finally:
        await store.aclose()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_forget_drops_the_tables(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.put(A, [Entry(id="1")], seen_at=NOW)
    await store.forget()
    await store.aclose()
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'contacts_mcp%'").fetchall()
    assert rows == []
