"""What the contact index's backfill costs in list requests, against the least any sync could spend.

    uv run python -m bench.index_backfill [--contacts 100000] [--months 24] [--timezone America/New_York]

Seeds a sandbox Space of `--contacts` contacts spread over `--months` months (in process, its rate
limits out of the way), and runs the real sync (`server.index.sync.Sync`, the real SQLite index)
against it through the real Cometly provider, with budgets so large that nothing waits: requests
are counted, not waited for. It prints:

- the backfill (every contact searchable and dated to its month): requests used against the bound
  ceil(N / 5000) + months (one page per 5000 contacts, one request per month boundary proved), and
  against the per-month floor, the sum of ceil(n / 5000) over the months (each month must be listed
  on its own to date its contacts to it, and its page proves its boundary too);
- how long that takes at Cometly's documented list limit (15 a minute) and at the sync's default
  one-third share of it (5 a minute);
- the date phase (every contact dated to its day): requests per day of history.

Exits 1 if a contact is missing or its real creation time lies outside its bounds.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx

from bench.tables import print_table
from contacts_mcp.server.budgets import BudgetSpec, fingerprint, open_budgets
from contacts_mcp.server.budgets.background import Background
from contacts_mcp.server.index.base import Entry
from contacts_mcp.server.index.sqlite import SqliteStore
from contacts_mcp.server.index.sync import HISTORY_START, Sync
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.sandbox import create_app, sandbox_of, sandbox_settings
from contacts_mcp.server.settings import Rate, Settings

LIST_LIMIT = 15
"""Cometly's documented list limit, per minute per Space."""
SHARE = 1 / 3
UNLIMITED = {"cometly.list_contacts": (10_000_000, 60.0), "cometly.get_contact": (10_000_000, 60.0)}


def _within(entry: Entry | None, moment: datetime) -> bool:
    if entry is None or entry.created_after is None or entry.created_before is None:
        return False
    return entry.created_after <= moment <= entry.created_before


def minutes(requests: int, per_minute: float) -> str:
    value = requests / per_minute
    return f"{value:.1f} min" if value < 120 else f"{value / 60:.1f} h"


async def bench(contacts: int, months: int, timezone: str) -> int:
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    app = create_app(
        contacts=contacts, now=now, span_days=max(1, round(months * 30.44)), timezone=timezone, rate_limits=UNLIMITED
    )
    seeded = time.perf_counter() - started
    real = {str(i): datetime.fromtimestamp(t, UTC) for i, t in sandbox_of(app).store.creation_times().items()}
    providers = sandbox_settings("http://127.0.0.1")
    providers["cometly"] = providers["cometly"].model_copy(update={"timezone": timezone})
    settings = Settings(**providers)
    account = fingerprint(Cometly.account(settings))
    specs = {name: BudgetSpec(rates=(Rate(10_000_000, 60.0),), account=account) for name in Cometly.default_budgets}
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "index.sqlite3")
        await store.open()
        try:
            async with open_budgets(specs) as budgets:
                source = Cometly.from_settings(settings, budgets=budgets, transport=httpx.ASGITransport(app=app))
                try:
                    sync = Sync(
                        store, source, account=account, owner="bench", clock=lambda: now, priority=Background(1.0)
                    )
                    walk_started = time.perf_counter()
                    backfill = await sync.run()
                    walk_seconds = time.perf_counter() - walk_started
                    date_started = time.perf_counter()
                    dating = await sync.run(kinds=("date",))
                    date_seconds = time.perf_counter() - date_started
                finally:
                    await source.aclose()
            history = datetime.fromisoformat((await store.meta(account))[HISTORY_START])
            # Each month must be listed on its own to date its contacts to it, so no sync spends less than this.
            floor = sum(
                max(1, math.ceil(w.contacts / 5000))
                for w in await store.windows(account)
                if w.kind == "walk" and w.start >= history
            )
            held = await store.get(account, list(real))
        finally:
            await store.aclose()
    sandbox_of(app).store.close()

    wrong = [i for i, moment in real.items() if not _within(held.get(i), moment)]
    day = timedelta(days=1)
    coarse = sum(
        1
        for entry in held.values()
        if entry.created_after is not None
        and entry.created_before is not None
        and entry.created_before - entry.created_after > day + timedelta(hours=2)
    )
    days = math.ceil((now - history) / day)
    print(
        f"Space: {len(real)} contacts over {months} months ({timezone}); history from {history:%Y-%m-%d %H:%M} UTC, "
        f"{backfill.months} months, {days} days; seeded in {seeded:.0f} s"
    )
    print()
    rate = LIST_LIMIT * SHARE
    print_table(
        ["phase", "requests", "lower bound", "over", f"at {LIST_LIMIT}/min", f"at {rate:g}/min", "local run"],
        [
            [
                "backfill: searchable, dated to the month",
                str(backfill.requests),
                f"{backfill.lower_bound} = ceil({backfill.indexed}/5000) + {backfill.months}",
                f"{backfill.requests - backfill.lower_bound:+d}",
                minutes(backfill.requests, LIST_LIMIT),
                minutes(backfill.requests, rate),
                f"{walk_seconds:.1f} s",
            ],
            [
                "date phase: dated to the day",
                str(dating.requests),
                f"{days} days",
                f"{dating.requests / days:.2f}/day",
                minutes(dating.requests, LIST_LIMIT),
                minutes(dating.requests, rate),
                f"{date_seconds:.1f} s",
            ],
        ],
    )
    print()
    print(
        f"per-month floor: sum of ceil(n/5000) over the {backfill.months} months = {floor} (a month's page proves "
        f"its boundary too); the backfill spent {backfill.requests - floor} more, proving where history starts"
    )
    print(
        f"contacts indexed: {len(held)} of {len(real)}; outside their bounds: {len(wrong)}; wider than a day: {coarse}"
    )
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--timezone", default="America/New_York")
    options = parser.parse_args(argv)
    return anyio.run(bench, options.contacts, options.months, options.timezone)


if __name__ == "__main__":
    sys.exit(main())
