"""`contacts-mcp index sync|status|forget`: the contact index from a terminal.

Each prints what it did to stdout (these commands serve no protocol) and fails in one line with
exit status 2 on a configuration problem, as every other command does.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from ..budgets import fingerprint
from ..errors import ConfigurationError, ContactsError
from ..settings import Settings
from .base import Status, Store, Window, WindowKind
from .service import open_store
from .sync import BACKFILLED, Report

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


async def status(settings: Settings, out: TextIO | None = None) -> int:
    """Print where the index is and what it holds for the configured Space."""
    out = _stream(out, sys.stdout)
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
        backfilled = (await store.meta(account)).get(BACKFILLED)
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


def _stream(given: TextIO | None, default: TextIO) -> TextIO:
    """The stream given, else the one of the moment (a default bound at import would keep the original)."""
    return given if given is not None else default


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else "never"


async def forget(settings: Settings, out: TextIO | None = None) -> int:
    """Delete the whole index (every Space's contacts, plan and dates)."""
    out = _stream(out, sys.stdout)
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


async def sync(settings: Settings, dates: bool = False, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Catch the index up with Cometly now: the backfill (or what is left of it) and catch-up; with
    `dates`, also dating every contact to the day. Resumes where any earlier sync stopped.

    It draws on the same budgets as a running server would (shared through Redis when configured)
    at the same low priority and share, so running it beside a server or other clients is safe.

    Raises:
        ConfigurationError: If the index is off, Cometly is not configured, or the key is refused.
    """
    out, err = _stream(out, sys.stdout), _stream(err, sys.stderr)
    from ..app import budget_specs
    from ..budgets import open_budgets
    from ..budgets.background import Background
    from ..errors import AuthenticationFailed, PermissionDenied
    from ..providers.cometly import Cometly
    from .running import owner_name
    from .sync import Sync

    account = account_of(settings)
    if account is None:
        raise ConfigurationError("contacts-mcp: index sync needs a Cometly Space: set COMETLY_API_KEY")
    store = _store(settings)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    kinds: tuple[WindowKind, ...] = ("walk", "head", "date") if dates else ("walk", "head")
    bar = _Bar(err) if err.isatty() else None
    async with open_budgets(budget_specs(settings, [Cometly]), redis_url=redis_url) as budgets:
        cometly = Cometly.from_settings(settings, budgets=budgets)
        await _open(store)
        try:
            worker = Sync(
                store, cometly, account=account, owner=owner_name(), priority=Background(settings.index_share)
            )

            async def progress(report: Report, window: Window) -> None:
                if bar is not None:
                    planned = [w for w in await store.windows(account) if w.kind in kinds]
                    bar.show(sum(w.done for w in planned), len(planned), report)

            print(f"Syncing the contact index at {store.location} ...", file=out, flush=True)
            try:
                report = await worker.run(kinds=kinds, progress=progress)
            except (AuthenticationFailed, PermissionDenied) as exc:
                raise ConfigurationError(f"contacts-mcp: Cometly refused the key: {exc.message}") from None
            except ContactsError as exc:
                if bar is not None:
                    bar.end()
                print(f"The sync stopped: {exc.render()} Run it again to go on from there.", file=out)
                return 1
            finally:
                await cometly.aclose()
            if bar is not None:
                bar.end()
            print(
                f"Done: {report.requests:,} list requests, {report.windows:,} date ranges read, "
                f"{report.indexed:,} contacts in the index.",
                file=out,
            )
            _print_status(await store.status(account), out)
        finally:
            await store.aclose()
    return 0


class _Bar:
    """A one-line progress bar on a terminal (stderr), redrawn in place."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def show(self, done: int, planned: int, report: Report) -> None:
        share = done / planned if planned else 0.0
        filled = round(share * self.WIDTH)
        line = (
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{planned} ranges, "
            f"{report.contacts:,} contacts, {report.requests:,} requests"
        )
        self._stream.write(line)
        self._stream.flush()

    def end(self) -> None:
        self._stream.write("\n")
        self._stream.flush()
