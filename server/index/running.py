"""The contact index inside a running server: opened with the lifespan, synced in its background.

The server opens the index before it serves (so a database it cannot reach stops it at start, in
one line), hands it to the Cometly provider, and runs the sync as a background task for its whole
life: the backfill first, then catch-up, dating and refresh, each request at a lower priority than
the tools' and within `CONTACTS_MCP_INDEX_SHARE` of each budget. The task's failures are logged and
retried; they never reach a tool call or stop the server.

Under `--sandbox` the index is a file in a temporary directory, deleted at exit: the sandbox's
contacts are generated afresh by every process, so keeping them would only mislead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import anyio

from ..budgets.background import Background
from ..errors import ConfigurationError, ContactsError
from ..providers.cometly import Cometly
from ..settings import Settings
from .base import Store
from .service import ContactIndex, open_store
from .sqlite import SqliteStore
from .sync import Sync

logger = logging.getLogger(__name__)

SANDBOX_SHARE = 0.5
"""The least share of a budget the sandbox's sync takes: no one else is on its key, and its small Space
is then indexed within the first seconds (a demo asks find_contact right away)."""
SYNC_INTERVAL_SECONDS = 60.0
"""How often the background sync looks for new contacts once it has caught up."""


def owner_name() -> str:
    """Who holds a window's lease: this host and process, so a restarted server is a new owner."""
    return f"{socket.gethostname()}:{os.getpid()}"


@asynccontextmanager
async def open_index(
    settings: Settings, cometly: Cometly, *, account: str, sandbox: bool = False
) -> AsyncGenerator[ContactIndex | None]:
    """The Space's index, open and syncing in the background until the block ends; None when it is off.

    Raises:
        ConfigurationError: If the index cannot be opened (a file that cannot be written, a database
            that cannot be reached), saying which and why.
    """
    if settings.index_off:
        yield None
        return
    scratch_dir = tempfile.TemporaryDirectory(prefix="contacts-mcp-index-") if sandbox else nullcontext(None)
    with scratch_dir as scratch:
        store: Store | None = SqliteStore(Path(scratch) / "index.sqlite3") if scratch else open_store(settings)
        if store is None:
            yield None
            return
        try:
            await store.open()
        except ContactsError as exc:
            raise ConfigurationError(f"contacts-mcp: the contact index cannot be opened: {exc.message}") from None
        try:
            index = ContactIndex(store, account, clock=cometly.clock)
            sync = Sync(
                store,
                cometly,
                account=account,
                owner=owner_name(),
                clock=cometly.clock,
                priority=Background(max(settings.index_share, SANDBOX_SHARE) if sandbox else settings.index_share),
                on_backfilled=index.backfill_finished,
            )
            index.sync = sync
            # A task of its own, not a task group's: the lifespan is shared (`state.SharedState`), so
            # the task that leaves it last, and closes this, need not be the one that opened it, and
            # a task group must be left by the task that entered it. The server runs on asyncio. It
            # is stopped through an anyio cancel scope, not `Task.cancel`, so what it shields (a
            # store call whose thread is still running) finishes first.
            scope = anyio.CancelScope()

            async def background() -> None:
                with scope:
                    await sync.run_forever(interval=SYNC_INTERVAL_SECONDS)

            task = asyncio.get_running_loop().create_task(background(), name="contacts-mcp index sync")
            try:
                yield index
            finally:
                scope.cancel()
                with anyio.CancelScope(shield=True):
                    await task
        finally:
            with anyio.CancelScope(shield=True):
                await store.aclose()
