"""The index backends under test: every conformance test runs against SQLite and PostgreSQL.

`stores` opens more instances on the same index (a second process on the SQLite file, a second
replica on the database) and closes them all at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from contacts_mcp.server.index.base import Store
from contacts_mcp.server.index.postgres import PostgresStore
from contacts_mcp.server.index.sqlite import SqliteStore
from tests.postgres_support import RunningPostgres, required_binaries, running_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[RunningPostgres]:
    """One PostgreSQL cluster for the session (initdb once); tests keep apart by database."""
    with running_postgres(required_binaries()) as running:
        yield running


@pytest.fixture
def postgres_url(postgres: RunningPostgres) -> Iterator[str]:
    """A fresh, empty database of the session's cluster, dropped after the test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "index" / "contacts.db"


@pytest.fixture(params=["sqlite", "postgres"])
async def stores(request: pytest.FixtureRequest, sqlite_path: Path) -> AsyncIterator[Callable[[], Store]]:
    """A factory of stores on one index of the backend; every store made is closed at teardown."""
    made: list[Store] = []
    if request.param == "sqlite":

        def factory() -> Store:
            made.append(SqliteStore(sqlite_path))
            return made[-1]

    else:
        url: str = request.getfixturevalue("postgres_url")

        def factory() -> Store:
            made.append(PostgresStore(url))
            return made[-1]

    yield factory
    for store in made:
        await store.aclose()


@pytest.fixture
def store(stores: Callable[[], Store]) -> Store:
    return stores()
