"""The sync's tests' scaffolding: a sandbox Space with known creation times, Cometly pointed at it, the index.

Also a script (`python -m tests.index.sync_support ROOT DB NOW PER_PAGE`) that runs one sync against
a sandbox served at ROOT into the SQLite index DB, printing a line after every page, so a test
can SIGKILL it mid-walk and resume.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette

from contacts_mcp.server.budgets import BudgetSpec, fingerprint, open_budgets
from contacts_mcp.server.budgets.background import Background, Priority
from contacts_mcp.server.index.base import Entry, Store, Window
from contacts_mcp.server.index.sqlite import SqliteStore
from contacts_mcp.server.index.sync import Report, Sync
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.sandbox import SANDBOX_KEYS, create_app, sandbox_of, sandbox_settings
from contacts_mcp.server.sandbox.model import NewContact, Stamped
from contacts_mcp.server.settings import Rate, Settings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""The sandbox's (pinned) start, and the sync's clock unless a test moves it."""
ACCOUNT = fingerprint(f"cometly\0{SANDBOX_KEYS['cometly']}")
UNLIMITED = {"cometly.list_contacts": (1_000_000, 60.0), "cometly.get_contact": (1_000_000, 60.0)}
"""Sandbox limits out of the way: these tests are about what is walked, not how fast."""


def space(
    *,
    times: Sequence[int] = (),
    contacts: int = 0,
    timezone: str = "UTC",
    ambiguous: str = "earlier",
    span_days: int = 90,
    now: datetime = NOW,
    rate_limits: Mapping[str, tuple[int, float]] | None = None,
) -> Starlette:
    """A sandbox Space: `contacts` generated ones over `span_days`, then one contact at each of `times` (Unix s)."""
    app = create_app(
        contacts=contacts,
        now=now,
        timezone=timezone,
        ambiguous="later" if ambiguous == "later" else "earlier",
        span_days=span_days,
        rate_limits=UNLIMITED if rate_limits is None else rate_limits,
    )
    for at in sorted(times):
        add_contact(app, at)
    return app


def add_contact(app: Starlette, created_at: int, *, email: str | None = None) -> str:
    """Create a contact in the sandbox as of `created_at` (ids still grow); its id."""

    def build(contact_id: int) -> NewContact:
        address = email or f"lead{contact_id}@example.com"
        return NewContact(
            id=contact_id,
            created_at=created_at,
            emails=[Stamped(address, created_at)],
            names=[Stamped(f"Lead {contact_id}", created_at)],
        )

    return str(sandbox_of(app).store.create(build).id)


def truth(app: Starlette) -> dict[str, datetime]:
    """Every contact's real creation time, as the sandbox keeps it."""
    return {str(i): datetime.fromtimestamp(t, UTC) for i, t in sandbox_of(app).store.creation_times().items()}


def settings_for(root: str, *, timezone: str = "UTC") -> Settings:
    providers = sandbox_settings(root)
    providers["cometly"] = providers["cometly"].model_copy(update={"timezone": timezone})
    return Settings(**providers)


@asynccontextmanager
async def cometly(
    *,
    app: Starlette | None = None,
    root: str = "http://127.0.0.1",
    timezone: str = "UTC",
    rates: Sequence[Rate] = (Rate(1_000_000, 60.0),),
) -> AsyncGenerator[Cometly]:
    """Cometly against the sandbox: `app` in process, else the one served at `root`; its list budget `rates`."""
    settings = settings_for(root, timezone=timezone)
    account = fingerprint(Cometly.account(settings))
    specs = {name: BudgetSpec(rates=tuple(rates), account=account) for name in Cometly.default_budgets}
    transport = httpx.ASGITransport(app=app) if app is not None else None
    async with open_budgets(specs) as budgets:
        provider = Cometly.from_settings(settings, budgets=budgets, transport=transport)
        try:
            yield provider
        finally:
            await provider.aclose()


@asynccontextmanager
async def sqlite(path: Path) -> AsyncGenerator[Store]:
    store = SqliteStore(path)
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


def make_sync(
    store: Store,
    source: Cometly,
    *,
    owner: str = "test",
    clock: Any = None,
    priority: Priority | None = None,
    refresh_after: timedelta | None = None,
    per_page: int = 5_000,
) -> Sync:
    return Sync(
        store,
        source,
        account=ACCOUNT,
        owner=owner,
        clock=clock or (lambda: NOW),
        priority=priority or Background(1.0),
        refresh_after=refresh_after,
        per_page=per_page,
    )


async def contents(store: Store, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """What the index holds for `ids`, without when each was seen (that differs between runs)."""
    return {
        contact_id: (
            entry.emails,
            entry.names,
            entry.phones,
            entry.locations,
            dict(entry.custom_fields),
            entry.created_after,
            entry.created_before,
        )
        for contact_id, entry in (await store.get(ACCOUNT, ids)).items()
    }


def plan_of(windows: Sequence[Window]) -> set[tuple[datetime, datetime, str, bool]]:
    return {(w.start, w.end, w.kind, w.done) for w in windows}


def bounds_hold(entries: Mapping[str, Entry], real: Mapping[str, datetime]) -> list[str]:
    """The ids whose real creation time lies outside their bounds (or that have none)."""
    wrong: list[str] = []
    for contact_id, moment in real.items():
        entry = entries.get(contact_id)
        if (
            entry is None
            or entry.created_after is None
            or entry.created_before is None
            or not entry.created_after <= moment <= entry.created_before
        ):
            wrong.append(contact_id)
    return wrong


async def _script(root: str, db: str, per_page: int) -> None:
    async with sqlite(Path(db)) as store, cometly(root=root) as source:

        def page(report: Report, window: Window) -> None:
            print(f"page {report.requests}", flush=True)

        sync = make_sync(store, source, owner="script", per_page=per_page)
        await sync.run(kinds=("walk", "head", "date"), progress=page)
    print("done", flush=True)


if __name__ == "__main__":
    anyio.run(_script, sys.argv[1], sys.argv[2], int(sys.argv[3]))
