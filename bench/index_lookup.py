"""How fast the contact index answers a lookup, and how big it is, at a million contacts.

    uv run python -m bench.index_lookup [--contacts 1000000] [--lookups 3000] [--backends sqlite,postgres]
                                        [--postgres-url URL] [--seed 1]

For each backend it fills a fresh index with `--contacts` synthetic contacts (ids 1..N, one email,
one name of a first and a last name from accented lists, one US phone, a city) through `put`, in
pages of 5,000 as a sync would store them, then times `--lookups` calls of `find` (limit 5) for
each kind, on values of random existing contacts:

- email: the exact address, sent in upper case;
- phone: the national form "(415) 555-0123" with region US (stored as "+1 415-555-0123");
- name: a partial name, the first name and the first three letters of the last ("maria gon").

SQLite lives in a temporary directory; PostgreSQL is started as the tests start it (a throwaway
cluster on a free loopback port, `tests/postgres_support.py`) unless `--postgres-url` names one (a
fresh database is then not made: its contacts_mcp_ tables are forgotten first and at the end).
Prints p50/p95 per kind, the fill rate, and the size on disk per 100,000 contacts (the SQLite
file with its WAL after a checkpoint; PostgreSQL's `pg_total_relation_size` of the tables). Exits 1
when a target the product promises is missed (email p50 < 5 ms on SQLite, < 10 ms on PostgreSQL;
name p50 < 20 ms), 2 when a backend could not run.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import psycopg

from bench.tables import print_table
from contacts_mcp.server.index import normalize
from contacts_mcp.server.index.base import Entry, Query, Store
from contacts_mcp.server.index.postgres import PostgresStore
from contacts_mcp.server.index.sqlite import SqliteStore
from contacts_mcp.tools.models import Lookup
from tests.postgres_support import postgres_binaries, running_postgres


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ACCOUNT = "bench-account"
PAGE = 5_000
FIRST = words(
    "María José Ana Luis Carlos Jürgen Zoë François Søren Ætheling Chloé Noémie Björn Åsa Łukasz Dvořák Ömer Ayşe "
    "Nguyễn Thảo Jane John Mary Robert Linda Michael Sarah David Emma Oliver Sophia Liam Mia Noah Ava Lucas "
    "Isabella Mateo Camila Hugo Léa Paul Jeanne Marta Giulia Marco Sofia Pedro Beatriz Tiago Inês Ivan Olga "
    "Dmitri Yuki Haruto Wei Li Priya Arjun Fatima Omar Amina Kwame Ngozi Sione Aroha Freya Astrid Nils Ingrid"
)
LAST = words(
    "González Gonçalves Núñez García Martínez Rodríguez López Hernández Pérez Sánchez Ramírez Torres Flores "
    "Rivera Gómez Díaz Cruz Morales Ortiz Gutiérrez Chávez Ramos Ruiz Álvarez Mendoza Castillo Jiménez Moreno "
    "Romero Herrera Medina Aguilar Vargas Castro Guzmán Fernández Müller Schmidt Schneider Fischer Weber Meyer "
    "Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger "
    "Hofmann Hartmann Lange Schmitt Werner Krause Meier Lehmann Smith Johnson Williams Brown Jones Miller Davis "
    "Wilson Anderson Taylor Thomas Moore Jackson Martin Lee Thompson White Harris Clark Lewis Robinson Walker "
    "Young Allen King Wright Scott Hill Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips Dubois "
    "Lefèvre Moreau Laurent Simon Michel Leroy Roux Bonnet Girard Rossi Russo Ferrari Esposito Bianchi Romano "
    "Colombo Ricci Marino Greco Bruno Gallo Conti Costa Silva Santos Oliveira Souza Pereira Lima Carvalho "
    "Almeida Ribeiro Kowalski Nowak Wiśniewski Wójcik Novák Svoboda Dvořáková Nielsen Jensen Hansen Andersen "
    "Johansson Karlsson Nilsson Eriksson Larsson Öztürk Yilmaz Kaya Demir Şahin Çelik Nguyen Tran Le Pham "
    "Hoang Tanaka Suzuki Takahashi Watanabe Ito Yamamoto Wang Zhang Liu Chen Yang Huang Zhao Kumar Singh Sharma"
)
CITIES = ("Lisboa", "São Paulo", "México", "Zürich", "Kraków", "Montréal", "Reykjavík", "Austin", "Łódź", "Köln")
TARGETS = {("sqlite", "email"): 5.0, ("postgres", "email"): 10.0, ("sqlite", "name"): 20.0, ("postgres", "name"): 20.0}
"""The p50s the product promises, in milliseconds."""


def contact(number: int, rng: random.Random) -> Entry:
    """Contact `number` (1-based): unique email and phone, a common name."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = normalize.fold(f"{first}.{last}").replace(" ", "").encode("ascii", "ignore").decode()
    return Entry(
        id=str(number),
        emails=(f"{local}.{number}@example{number % 97}.com",),
        names=(f"{first} {last}",),
        phones=(f"+1 415-{number // 10_000 + 200:03d}-{number % 10_000:04d}",),
        locations=(rng.choice(CITIES),),
    )


@dataclass(frozen=True)
class Result:
    backend: str
    fill_seconds: float
    size_bytes: int
    timings: dict[str, list[float]]
    """Milliseconds per lookup, by kind."""
    totals: dict[str, float]
    """The mean number of matches per lookup, by kind (a partial name matches many)."""


async def fill(store: Store, contacts: int, seed: int) -> float:
    rng = random.Random(seed)
    started = time.perf_counter()
    seen = datetime.now(UTC)
    for low in range(1, contacts + 1, PAGE):
        page = [contact(number, rng) for number in range(low, min(low + PAGE, contacts + 1))]
        await store.put(ACCOUNT, page, seen_at=seen)
        if (low // PAGE) % 20 == 0:
            print(f"  {low + len(page) - 1:>9,} stored, {time.perf_counter() - started:6.1f} s", file=sys.stderr)
    return time.perf_counter() - started


def lookups(contacts: int, count: int, seed: int) -> dict[str, list[Query]]:
    """`count` queries of each kind, on random existing contacts (regenerated from the same seed)."""
    rng = random.Random(seed)
    chosen = set(random.Random(seed + 1).sample(range(1, contacts + 1), min(count, contacts)))
    queries: dict[str, list[Query]] = {"email": [], "phone": [], "name": []}
    for number in range(1, max(chosen) + 1):
        entry = contact(number, rng)  # the same draws as the fill, so the values exist
        if number not in chosen:
            continue
        national = entry.phones[0].removeprefix("+1 ").replace("-", "")
        phone = f"({national[:3]}) {national[3:6]}-{national[6:]}"
        first, last = entry.names[0].split(" ", 1)
        queries["email"].append(normalize.query(Lookup(email=entry.emails[0].upper())))
        queries["phone"].append(normalize.query(Lookup(phone=phone), region="US"))
        queries["name"].append(normalize.query(Lookup(name=f"{first} {last[:3]}")))
    for values in queries.values():
        rng.shuffle(values)
    return queries


async def measure(store: Store, queries: dict[str, list[Query]]) -> tuple[dict[str, list[float]], dict[str, float]]:
    timings: dict[str, list[float]] = {}
    totals: dict[str, float] = {}
    for kind, values in queries.items():
        spent: list[float] = []
        matched = 0
        for value in values:
            started = time.perf_counter()
            found = await store.find(ACCOUNT, value, limit=5)
            spent.append((time.perf_counter() - started) * 1000)
            if not found.entries:
                raise RuntimeError(f"a {kind} lookup found nothing: {value}")
            matched += found.total
        timings[kind] = spent
        totals[kind] = matched / len(values)
    return timings, totals


def sqlite_size(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(Path(f"{path}{suffix}").stat().st_size for suffix in ("", "-wal") if Path(f"{path}{suffix}").exists())


async def postgres_size(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND c.relname LIKE 'contacts\\_mcp\\_%' AND n.nspname = current_schema()"
        )
        row = await cursor.fetchone()
        return 0 if row is None else int(row[0])


@asynccontextmanager
async def postgres_url(given: str | None) -> AsyncGenerator[str]:
    """The database to bench in: `given`, or a fresh one in a throwaway cluster."""
    if given is not None:
        yield given
        return
    binaries = postgres_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (Debian/Ubuntu: apt-get install -y postgresql)")
    with running_postgres(binaries) as running:
        yield running.create_database()


async def bench(backend: str, args: argparse.Namespace, queries: dict[str, list[Query]]) -> Result:
    async with AsyncExitStack() as stack:
        if backend == "sqlite":
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="index-bench-")))
            path = directory / "contacts.db"
            store: Store = SqliteStore(path)
        else:
            url = await stack.enter_async_context(postgres_url(args.postgres_url))
            store = PostgresStore(url)
            await store.forget()
        stack.push_async_callback(store.aclose)
        if backend != "sqlite" and args.postgres_url is not None:
            stack.push_async_callback(store.forget)
        print(f"{backend}: filling {args.contacts:,} contacts", file=sys.stderr)
        fill_seconds = await fill(store, args.contacts, args.seed)
        if isinstance(store, PostgresStore):
            async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as connection:
                await connection.execute("VACUUM ANALYZE")
        timings, totals = await measure(store, queries)
        if isinstance(store, SqliteStore):
            await store.aclose()
            size_bytes = sqlite_size(store.path)
        else:
            size_bytes = await postgres_size(store.url)
        return Result(backend, fill_seconds, size_bytes, timings, totals)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results: Sequence[Result], contacts: int) -> bool:
    rows: list[list[str]] = []
    met = True
    for result in results:
        for kind, spent in result.timings.items():
            p50 = statistics.median(spent)
            target = TARGETS.get((result.backend, kind))
            ok = target is None or p50 < target
            met = met and ok
            rows.append(
                [
                    result.backend,
                    kind,
                    f"{len(spent):,}",
                    f"{p50:.2f}",
                    f"{percentile(spent, 0.95):.2f}",
                    f"{result.totals[kind]:.1f}",
                    "-" if target is None else f"< {target:g} {'ok' if ok else 'MISSED'}",
                ]
            )
    print_table(["backend", "lookup", "calls", "p50 ms", "p95 ms", "matches", "target p50"], rows)
    print()
    print_table(
        ["backend", "contacts", "fill s", "contacts/s", "size MiB", "MiB per 100,000"],
        [
            [
                r.backend,
                f"{contacts:,}",
                f"{r.fill_seconds:.1f}",
                f"{contacts / r.fill_seconds:,.0f}",
                f"{r.size_bytes / 2**20:.1f}",
                f"{r.size_bytes / 2**20 / (contacts / 100_000):.1f}",
            ]
            for r in results
        ],
    )
    return met


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=3_000, help="lookups of each kind")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=None, help="bench in this database instead of a throwaway cluster")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    queries = lookups(args.contacts, args.lookups, args.seed)
    results: list[Result] = []
    failed = False
    for backend in args.backends.split(","):
        try:
            results.append(await bench(backend, args, queries))
        except (RuntimeError, OSError, psycopg.Error) as error:
            print(f"{backend}: could not run: {error}", file=sys.stderr)
            failed = True
    met = report(results, args.contacts)
    return 2 if failed else (0 if met else 1)


def main(argv: Sequence[str] | None = None) -> int:
    return anyio.run(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
