"""find_contact through the MCP tool on a big Cometly index: server time per lookup, and upstream requests.

    uv run python -m bench.find_contact [--contacts 1000000] [--lookups 1000] [--backend sqlite|postgres]

It fills a SQLite index (or a throwaway PostgreSQL, as the tests start one) with `--contacts`
synthetic contacts under the account of the sandbox's Cometly key, the same contacts as
`bench.index_lookup`, then builds the real server (tool, provider, index, confirming read) with
Cometly answered in process by a stub: `GET /contacts/{id}` returns the contact at once, a list
returns an empty page (so the background sync, which runs as in any server, finishes its rounds
quickly and stays out of the way). It calls `find_contact` through the SDK's in-memory client:

- email: the exact address in upper case;
- name: a partial name ("maria gon", which matches about a hundred at a million).

The server time of a call runs from the server's tool entry (`ContactsServer.call_tool`) to its
result: argument validation, the index lookup, the confirming read against a stub that takes no
time, the result's shaping and redaction. The client time adds the SDK's in-memory transport and
the client's own validation of the result, for comparison. It prints p50/p95 per kind and the
upstream requests per lookup, and exits 1 when a promised figure is missed (email p50 < 5 ms on
SQLite, < 10 ms on PostgreSQL; name < 20 ms; one upstream request per email lookup).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client
from pydantic import SecretStr

from bench.index_lookup import PAGE, contact, percentile
from bench.tables import print_table
from contacts_mcp.server.app import build_server
from contacts_mcp.server.budgets import fingerprint
from contacts_mcp.server.index.base import Store
from contacts_mcp.server.index.postgres import PostgresStore
from contacts_mcp.server.index.sqlite import SqliteStore
from contacts_mcp.server.index.sync import BACKFILLED
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.sandbox import sandbox_settings
from contacts_mcp.server.settings import Settings, parse_rate_limits

TARGETS = {("sqlite", "email"): 5.0, ("postgres", "email"): 10.0, ("sqlite", "name"): 20.0, ("postgres", "name"): 20.0}
LIFTED = "cometly.list_contacts=1000000/60,cometly.get_contact=1000000/60"


class Stub(httpx.AsyncBaseTransport):
    """Cometly in process: each contact read answers at once from the synthetic data; lists are empty."""

    def __init__(self, seed: int) -> None:
        self.reads = 0
        self.lists = 0
        self._seed = seed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        last = request.url.path.rsplit("/", 1)[-1]
        if last.isdigit():
            self.reads += 1
            entry = contact(int(last), random.Random(f"{self._seed}:{last}"))
            body: dict[str, Any] = {
                "id": int(last),
                "emails": list(entry.emails),
                "phones": list(entry.phones),
                "names": list(entry.names),
                "locations": list(entry.locations),
                "custom_fields": {f"profile_field_{n}": None for n in range(1, 31)},
            }
            return httpx.Response(200, json=body)
        self.lists += 1
        return httpx.Response(200, json={"data": [], "next_cursor": None})


async def fill(store: Store, account: str, contacts: int, seed: int) -> list[tuple[str, str]]:
    """Store the contacts; (email, partial name) of each, to look up."""
    values: list[tuple[str, str]] = []
    seen = datetime.now(UTC)
    started = time.perf_counter()
    for low in range(1, contacts + 1, PAGE):
        page = [contact(n, random.Random(f"{seed}:{n}")) for n in range(low, min(low + PAGE, contacts + 1))]
        await store.put(account, page, seen_at=seen)
        values += [(e.emails[0], _partial(e.names[0])) for e in page]
        if (low // PAGE) % 20 == 0:
            print(f"  {low + len(page) - 1:>9,} stored, {time.perf_counter() - started:6.1f} s", file=sys.stderr)
    await store.set_meta(account, {BACKFILLED: seen.isoformat()})
    return values


def _partial(name: str) -> str:
    first, last = name.split(" ", 1)
    return f"{first} {last[:3]}"


async def run(args: argparse.Namespace) -> int:
    settings = Settings.model_validate(
        {**sandbox_settings("http://stub"), "rate_limits": parse_rate_limits(LIFTED), "index_share": 1.0}
    )
    account = fingerprint(Cometly.account(settings))
    async with AsyncExitStack() as stack:
        if args.backend == "postgres":
            from tests.postgres_support import postgres_binaries, running_postgres

            binaries = postgres_binaries()
            if binaries is None:
                print("PostgreSQL is not installed (apt-get install -y postgresql)", file=sys.stderr)
                return 2
            url = stack.enter_context(running_postgres(binaries)).create_database()
            settings = settings.model_copy(update={"index_url": SecretStr(url)})
            store: Store = PostgresStore(url)
        else:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "index.sqlite3"
            settings = settings.model_copy(update={"index": str(path)})
            store = SqliteStore(path)
        await store.open()
        try:
            print(f"filling {args.contacts:,} contacts ({args.backend}) ...", file=sys.stderr)
            values = await fill(store, account, args.contacts, args.seed)
        finally:
            await store.aclose()
        chosen = random.Random(args.seed + 1).sample(values, min(args.lookups, len(values)))
        stub = Stub(args.seed)
        server = build_server(settings, transport=lambda: stub)
        served: list[float] = []
        call_tool = server.call_tool

        async def timed(name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            started = time.perf_counter()
            try:
                return await call_tool(name, arguments, context)
            finally:
                served.append((time.perf_counter() - started) * 1000)

        server.call_tool = timed  # the server's own time: from its tool entry to its result, framing aside
        async with Client(server) as client:
            await anyio.sleep(2)  # the background sync's first round (empty lists) is over
            timings: dict[str, list[float]] = {"email": [], "name": []}
            clients: dict[str, list[float]] = {"email": [], "name": []}
            reads: dict[str, list[int]] = {"email": [], "name": []}
            for email, name in chosen:
                for kind, arguments in (("email", {"email": email.upper()}), ("name", {"name": name})):
                    before = stub.reads
                    started = time.perf_counter()
                    result = await client.call_tool("find_contact", arguments)
                    clients[kind].append((time.perf_counter() - started) * 1000)
                    timings[kind].append(served[-1])
                    reads[kind].append(stub.reads - before)
                    if result.is_error or result.structured_content is None:
                        print(f"{kind} lookup failed: {json.dumps(arguments)}: {result.content}", file=sys.stderr)
                        return 2
    rows: list[list[str]] = []
    met = True
    for kind, spent in timings.items():
        p50 = statistics.median(spent)
        target = TARGETS[(args.backend, kind)]
        ok = p50 < target and (kind != "email" or max(reads[kind]) == 1)
        met = met and ok
        rows.append(
            [
                args.backend,
                kind,
                f"{len(spent):,}",
                f"{p50:.2f}",
                f"{percentile(spent, 0.95):.2f}",
                f"{statistics.median(clients[kind]):.2f}",
                f"{statistics.mean(reads[kind]):.2f}",
                f"< {target:g} {'ok' if ok else 'MISSED'}",
            ]
        )
    print(f"find_contact through the MCP tool, {args.contacts:,} contacts in the index")
    print_table(
        [
            "backend",
            "lookup",
            "calls",
            "server p50 ms",
            "server p95 ms",
            "client p50 ms",
            "upstream / lookup",
            "target",
        ],
        rows,
    )
    return 0 if met else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=1_000, help="lookups of each kind")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return anyio.run(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
