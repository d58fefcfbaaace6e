"""`contacts-mcp index sync|status|forget`: the contact index from a terminal.

Each prints what it did to stdout (these commands serve no protocol) and fails in one line with
exit status 2 on a configuration problem, as every other command does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from ..budgets import fingerprint
from ..errors import ConfigurationError, ContactsError
from ..settings import Settings
from .base import Status, Store
from .service import open_store

OFF = "The contact index is off (CONTACTS_MCP_INDEX=off); unset it to turn it on."


def account_of(settings: Settings) -> str | None:
    """The index's account for the configured Cometly Space (a fingerprint of its key), None without one."""
    from ..providers.cometly import Cometly

    return fingerprint(Cometly.account(settings)) if Cometly.configured(settings) else None


def _store(settings: Settings) -> Store:
    """The configured backend.

    Raises:
        ConfigurationError: If the index is off.
    """
    store = open_store(settings)
    if store is None:
        raise ConfigurationError(f"contacts-mcp: {OFF}")
    return store


async def status(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Print where the index is and what it holds for the configured Space."""
    store = open_store(settings)
    if store is None:
        print(OFF, file=out)
        return 0
    await _open(store)
    try:
        print(f"index: {store.location}", file=out)
        account = account_of(settings)
        if account is None:
            held = len(await store.accounts())
            print(f"No Cometly Space is configured (COMETLY_API_KEY); the index holds {held} Space(s).", file=out)
            return 0
        _print_status(await store.status(account), out)
        backfilled = (await store.meta(account)).get("backfilled_at")
        print(f"backfill:   {'complete since ' + backfilled if backfilled else 'not complete yet'}", file=out)
    except ContactsError as exc:
        raise ConfigurationError(f"contacts-mcp: {exc.message}") from None
    finally:
        await store.aclose()
    return 0


def _print_status(found: Status, out: TextIO) -> None:
    print(f"contacts:   {found.contacts:,}", file=out)
    print(f"last sync:  {_when(found.last_sync)}", file=out)
    if found.covered_from and found.covered_to:
        covered = f"created {_when(found.covered_from)} to {_when(found.covered_to)}"
    else:
        covered = "nothing yet"
    print(f"coverage:   {covered} ({found.windows_done:,} of {found.windows:,} windows walked)", file=out)
    order = ("second", "day", "month", "coarser", "unknown")
    dated = ", ".join(f"{found.dated.get(key, 0):,} to the {key}" for key in order[:3])
    rest = f"{found.dated.get('coarser', 0):,} coarser, {found.dated.get('unknown', 0):,} not dated"
    print(f"dates:      {dated}, {rest}", file=out)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else "never"


async def forget(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Delete the whole index (every Space's contacts, plan and dates)."""
    store = _store(settings)
    await _open(store)
    try:
        await store.forget()
    except ContactsError as exc:
        raise ConfigurationError(f"contacts-mcp: {exc.message}") from None
    finally:
        await store.aclose()
    print(f"Deleted the contact index at {store.location}; the next sync builds it again from Cometly.", file=out)
    return 0


async def _open(store: Store) -> None:
    """Open the store, a failure being the operator's to fix.

    Raises:
        ConfigurationError: If it cannot be opened, saying why.
    """
    try:
        await store.open()
    except ContactsError as exc:
        raise ConfigurationError(f"contacts-mcp: the contact index cannot be opened: {exc.message}") from None


Printer = Callable[[str], None]
