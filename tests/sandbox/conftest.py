"""Fixtures for the sandbox tests: one seeded app per module, clients per test, and the data behind it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping

import httpx
import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import create_app, sandbox_of
from contacts_mcp.server.sandbox.generator import generate
from contacts_mcp.server.sandbox.model import NewContact
from tests.sandbox.support import COUNT, NOW, SEED, UNLIMITED, MakeApp, client_for


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def seeded_app() -> Generator[Starlette]:
    """A read-only app seeded with the standard data; tests that write make their own."""
    app = create_app(contacts=COUNT, seed=SEED, now=NOW, rate_limits=UNLIMITED)
    yield app
    sandbox_of(app).store.close()


@pytest.fixture(scope="module")
def dataset() -> list[NewContact]:
    """The contacts `seeded_app` was seeded with, for computing expected answers in Python."""
    return generate(count=COUNT, seed=SEED, now=NOW)


@pytest.fixture
async def client(seeded_app: Starlette) -> AsyncGenerator[httpx.AsyncClient]:
    async with client_for(seeded_app) as http:
        yield http


@pytest.fixture
def make_app() -> Generator[MakeApp]:
    apps: list[Starlette] = []

    def make(
        *,
        contacts: int = 20,
        db_path: str = ":memory:",
        seed: int = SEED,
        rate_limits: Mapping[str, tuple[int, float]] | None = None,
    ) -> Starlette:
        app = create_app(
            db_path=db_path, contacts=contacts, seed=seed, now=NOW, rate_limits={**UNLIMITED, **(rate_limits or {})}
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        sandbox_of(app).store.close()
