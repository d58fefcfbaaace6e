"""How much text a model reads from the server against the raw upstream JSON of the same request.

    uv run python -m bench.result_size [--contacts 500] [--seed 1] [--typical 20] [--json PATH]

Everything runs in this process: a sandbox (`create_app`, fixed seed and `NOW`, every rate limit
raised) answers the server's Cometly provider through its ASGI app, and the server is driven with
the SDK's in-memory `Client`, as the tests do. Before any call the bench waits until the server's
contact index has read the sandbox's history and dated every contact to its day (`dated`), as on a
server that has run a while; until then the index's own list requests would be logged against
whichever call was running. The transport between them records the body of every upstream
response, so each tool call is set against the exact requests it sent:

- text: the tool result's `TextContent` as the client receives it, without the sandbox's note line
  (`SANDBOX DATA: ...`, said once per result and not part of the data);
- added: the part of the text that is the server's own additions, in no upstream answer (`ADDED`:
  the contact index's `created_between`/`created_at`, the journey summary): the text's length less
  that of the same result written without them;
- raw: the response bodies of the upstream requests the call sent, as they came off the transport.

Ratio = text bytes / raw bytes, UTF-8 both; "less added" = (text - added) / raw, which is what the
targets are for: how compactly the server writes what the upstream sent. Tokens are estimated as
characters / 4. The cases:

1. get_contact with events and browsing hits (default `limit`): the `--typical` newest contacts that
   have both (median and total), and the heavy contact (1,100 browsing hits, of which the sandbox
   sends its cap of 1,000);
2. list_contacts, per_page=200 over the sandbox's whole 90 days, without and with custom fields;
3. filter_by_custom_field, Customer Plan equal_to Premium (by label), per_page=200. The requests that
   discover the labels are cached by the server and shown apart, not in the ratio.

Exits 0 when every row with a target meets it (get_contact <= 0.5, pages <= 0.6, both less added),
1 when one misses, 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp_types import TextContent
from pydantic import BaseModel
from starlette.applications import Starlette

from bench.tables import print_table
from contacts_mcp.server.app import SANDBOX_NOTE, build_server
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.results import CHARS_PER_TOKEN, as_text, shape
from contacts_mcp.server.sandbox import DEFAULT_RATE_LIMITS, create_app, sandbox_of, sandbox_settings
from contacts_mcp.server.sandbox.cometly import MAX_BROWSING_HITS
from contacts_mcp.server.sandbox.store import ListQuery
from contacts_mcp.server.settings import Settings, parse_rate_limits
from contacts_mcp.server.state import AppState
from contacts_mcp.tools.models import Contact, ContactPage

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
"""The sandbox's and the server's now: the same data and the same date resolution on every run."""
RANGE = {"start_date": (NOW - timedelta(days=91)).date().isoformat(), "end_date": NOW.date().isoformat()}
"""Every generated contact (they spread over the 90 days before `NOW`)."""
PER_PAGE = 200
UNLIMITED = "1000000/1"
GET_CONTACT_TARGET = 0.5
PAGE_TARGET = 0.6
INDEX_SECONDS = 60.0
"""How long the bench waits for the contact index to read and date the sandbox's history before measuring."""
OWN_PREFIXES = ("COMETLY_", "HIGHLEVEL_", "CLEMTA_", "CONTACTS_MCP_")
CUSTOM_FIELD_FILTER = "custom_field_filters["
"""How the list request carrying conditions is told apart from the label-discovery requests."""
ADDED = ("created_at", "created_between", "journey")
"""A contact's keys that no Cometly answer holds: the contact index's sign-up dating and the journey summary."""
MODELS: dict[str, type[BaseModel]] = {
    "get_contact": Contact,
    "list_contacts": ContactPage,
    "filter_by_custom_field": ContactPage,
}


class BenchFailed(Exception):
    """The bench could not run (a tool call failed, the sandbox lacks what a case needs)."""


@dataclass(frozen=True)
class Exchange:
    """One upstream request and the size of its response body."""

    method: str
    target: str
    """Path and query, as sent."""
    status: int
    body_bytes: int
    body_chars: int
    filtered: bool
    """It carried custom-field conditions (a label-discovery request does not)."""


Record = Callable[[httpx.Request, int, bytes], None]
"""Told of each exchange: the request, the response's status and its whole body as received."""


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to `inner`, reading each response body whole to tell `record` of it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, record: Record) -> None:
        self._inner = inner
        self._record = record

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        self._record(request, response.status_code, body)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(body),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True)
class Measured:
    """One tool call: the text the model reads and the upstream bodies behind it."""

    tool: str
    arguments: dict[str, Any]
    text_bytes: int
    text_chars: int
    added_bytes: int
    """Of `text_bytes`, what the server's own additions (`ADDED`) take: the text less them is set against the target."""
    data: tuple[Exchange, ...]
    """The requests whose bodies the result is made of."""
    discovery: tuple[Exchange, ...] = ()
    """Label discovery before the data request (cached by the server; not in the ratio)."""
    rows: int | None = None
    """Contacts in the result (pages), for the table."""
    has_more: bool | None = None
    cuts: tuple[str, ...] = ()
    """What the result says it cut, `path shown/total unit`."""

    @property
    def raw_bytes(self) -> int:
        return sum(exchange.body_bytes for exchange in self.data)

    @property
    def raw_chars(self) -> int:
        return sum(exchange.body_chars for exchange in self.data)

    @property
    def ratio(self) -> float:
        return self.text_bytes / self.raw_bytes

    @property
    def bare_ratio(self) -> float:
        return (self.text_bytes - self.added_bytes) / self.raw_bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "text_bytes": self.text_bytes,
            "added_bytes": self.added_bytes,
            "text_tokens": tokens(self.text_chars),
            "raw_bytes": self.raw_bytes,
            "raw_tokens": tokens(self.raw_chars),
            "ratio": round(self.ratio, 4),
            "bare_ratio": round(self.bare_ratio, 4),
            "rows": self.rows,
            "has_more": self.has_more,
            "cuts": list(self.cuts),
            "requests": [asdict(exchange) for exchange in self.data],
            "discovery_requests": [asdict(exchange) for exchange in self.discovery],
        }


@dataclass
class Row:
    """One line of the summary table."""

    case: str
    calls: int
    requests: int
    text_bytes: float
    added_bytes: float
    raw_bytes: float
    text_chars: float
    raw_chars: float
    ratio: float
    bare_ratio: float
    """The ratio of the text less the server's additions: what the target is for."""
    target: float | None
    note: str = ""
    measured: list[Measured] = field(default_factory=list[Measured])

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.bare_ratio <= self.target

    def cells(self) -> list[str]:
        verdict = {None: "-", True: "PASS", False: "FAIL"}[self.passed]
        return [
            self.case,
            str(self.calls),
            str(self.requests),
            f"{self.text_bytes:,.0f}",
            f"{self.added_bytes:,.0f}",
            f"{self.raw_bytes:,.0f}",
            f"{self.ratio:.3f}",
            f"{self.bare_ratio:.3f}",
            f"{tokens(self.text_chars):,}",
            f"{tokens(self.raw_chars):,}",
            "-" if self.target is None else f"<= {self.target}",
            verdict,
            self.note,
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "calls": self.calls,
            "requests": self.requests,
            "text_bytes": self.text_bytes,
            "added_bytes": self.added_bytes,
            "raw_bytes": self.raw_bytes,
            "text_tokens": tokens(self.text_chars),
            "raw_tokens": tokens(self.raw_chars),
            "ratio": round(self.ratio, 4),
            "bare_ratio": round(self.bare_ratio, 4),
            "target": self.target,
            "passed": self.passed,
            "note": self.note,
            "calls_measured": [measured.as_json() for measured in self.measured],
        }


HEADER = (
    "case",
    "calls",
    "requests",
    "text B",
    "added B",
    "raw B",
    "ratio",
    "less added",
    "text tok",
    "raw tok",
    "target",
    "",
    "note",
)


def tokens(chars: float) -> int:
    """Tokens estimated as characters / 4, as the server's result ceiling counts them."""
    return round(chars / CHARS_PER_TOKEN)


def single(case: str, measured: Measured, target: float | None, note: str = "") -> Row:
    return Row(
        case=case,
        calls=1,
        requests=len(measured.data),
        text_bytes=measured.text_bytes,
        added_bytes=measured.added_bytes,
        raw_bytes=measured.raw_bytes,
        text_chars=measured.text_chars,
        raw_chars=measured.raw_chars,
        ratio=measured.ratio,
        bare_ratio=measured.bare_ratio,
        target=target,
        note=note,
        measured=[measured],
    )


def aggregate(case: str, measured: list[Measured], target: float) -> list[Row]:
    """Two rows for a set of calls: the medians (of each size and of the ratios), and the totals."""
    median = Row(
        case=f"{case}, median",
        calls=len(measured),
        requests=sum(len(one.data) for one in measured),
        text_bytes=statistics.median(one.text_bytes for one in measured),
        added_bytes=statistics.median(one.added_bytes for one in measured),
        raw_bytes=statistics.median(one.raw_bytes for one in measured),
        text_chars=statistics.median(one.text_chars for one in measured),
        raw_chars=statistics.median(one.raw_chars for one in measured),
        ratio=statistics.median(one.ratio for one in measured),
        bare_ratio=statistics.median(one.bare_ratio for one in measured),
        target=target,
        note="median of each column",
    )
    text = sum(one.text_bytes for one in measured)
    added = sum(one.added_bytes for one in measured)
    raw = sum(one.raw_bytes for one in measured)
    total = Row(
        case=f"{case}, total",
        calls=len(measured),
        requests=median.requests,
        text_bytes=text,
        added_bytes=added,
        raw_bytes=raw,
        text_chars=sum(one.text_chars for one in measured),
        raw_chars=sum(one.raw_chars for one in measured),
        ratio=text / raw,
        bare_ratio=(text - added) / raw,
        target=target,
        note="sum text / sum raw",
        measured=measured,
    )
    return [median, total]


class Bench:
    """A client of the server, and the log its upstream requests go to."""

    def __init__(self, client: Client, log: list[Exchange]) -> None:
        self.client = client
        self.log = log

    async def call(self, tool: str, arguments: dict[str, Any]) -> Measured:
        """Call `tool` and measure its text against the upstream bodies it caused.

        Raises:
            BenchFailed: The call failed, or its text is not what the sandboxed server returns.
        """
        self.log.clear()
        result = await self.client.call_tool(tool, arguments)
        exchanges = tuple(self.log)
        [block] = result.content
        if result.is_error or not isinstance(block, TextContent):
            raise BenchFailed(f"{tool} {json.dumps(arguments)} failed: {block}")
        prefix = SANDBOX_NOTE + "\n"
        if not block.text.startswith(prefix):
            raise BenchFailed(f"{tool}'s text does not start with the sandbox note: {block.text[:120]!r}")
        text = block.text.removeprefix(prefix)
        if any(exchange.status != 200 for exchange in exchanges):
            raise BenchFailed(f"{tool} met an upstream failure: {exchanges}")
        structured: dict[str, Any] = result.structured_content or {}
        contacts: list[Any] | None = structured.get("contacts")
        truncated: dict[str, Any] = structured.get("truncated") or {}
        cuts: list[dict[str, Any]] = truncated.get("cuts", [])
        if tool == "filter_by_custom_field":
            data = tuple(exchange for exchange in exchanges if exchange.filtered)
            discovery = tuple(exchange for exchange in exchanges if not exchange.filtered)
        else:
            data, discovery = exchanges, ()
        return Measured(
            tool=tool,
            arguments=arguments,
            text_bytes=len(text.encode("utf-8")),
            text_chars=len(text),
            added_bytes=len(text.encode("utf-8")) - len(without_additions(tool, structured, text).encode("utf-8")),
            data=data,
            discovery=discovery,
            rows=None if contacts is None else len(contacts),
            has_more=structured.get("has_more"),
            cuts=tuple(f"{cut['path']} {cut['shown']}/{cut['total']} {cut['unit']}" for cut in cuts),
        )


def without_additions(tool: str, structured: dict[str, Any], text: str) -> str:
    """`structured` written as the server writes it, less the keys of `ADDED` on every contact in it.

    Raises:
        BenchFailed: Written whole, it is not `text`: the measure of the additions would be off.
    """
    model = MODELS[tool]
    if as_text(structured, model) != text:
        raise BenchFailed(f"{tool}'s text is not its structured content as the server writes it")

    def bare(contact: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in contact.items() if key not in ADDED}

    if model is Contact:
        return as_text(shape(bare(structured)), model)
    contacts: list[dict[str, Any]] = structured.get("contacts", [])
    return as_text(shape({**structured, "contacts": [bare(contact) for contact in contacts]}), model)


def journey_contacts(app: Starlette, typical: int) -> tuple[list[int], int]:
    """The `typical` newest contacts with events and browsing hits, and the heavy contact (the most hits).

    Events count without direct touchpoints, which get_contact hides unless asked.

    Raises:
        BenchFailed: The sandbox holds fewer such contacts.
    """
    store = sandbox_of(app).store
    everyone = store.list_contacts(
        ListQuery(start=0, end=int(NOW.timestamp()), conditions=(), today=NOW.date(), limit=1_000_000)
    )
    hits = {row.id: len(store.browsing_hits(row.id, limit=MAX_BROWSING_HITS + 1)) for row in everyone}
    heavy = max(hits, key=lambda contact_id: hits[contact_id])
    chosen = [
        row.id
        for row in everyone  # newest first
        if row.id != heavy and hits[row.id] and store.events(row.id, include_direct=False)
    ][:typical]
    if len(chosen) < typical:
        raise BenchFailed(f"the sandbox has only {len(chosen)} contacts with events and browsing hits")
    return chosen, heavy


async def dated(state: AppState) -> None:
    """Wait until Cometly's contact index has read the whole history and dated every contact to its day.

    That is how a server that has run for a while answers. Until then its sync sends list requests of
    its own, which the log would count against whichever call was running, and the sign-up windows
    (`created_between`) of listed contacts narrow from call to call: the figures would differ by run.

    Raises:
        BenchFailed: The index was not done within `INDEX_SECONDS`.
    """
    cometly = state.providers.get("cometly")
    index = cometly.index if isinstance(cometly, Cometly) else None
    if index is None:
        return
    with anyio.move_on_after(INDEX_SECONDS):
        while True:
            status = await index.status()
            coarse = sum(status.dated.get(kind, 0) for kind in ("month", "coarser", "unknown"))
            if status.windows and status.windows_done == status.windows and status.contacts and not coarse:
                return
            await anyio.sleep(0.1)
    raise BenchFailed(f"the contact index had not dated every contact after {INDEX_SECONDS:.0f} s")


def forget_environment() -> None:
    """Drop this process's provider and contacts-mcp variables, which `Settings` would read.

    A developer's CONTACTS_MCP_MAX_RESULT_TOKENS or CONTACTS_MCP_TOOLS would otherwise change the results.
    """
    for name in [name for name in os.environ if name.startswith(OWN_PREFIXES)]:
        del os.environ[name]


def settings() -> Settings:
    """Cometly against the sandbox, every budget out of the way so no call waits."""
    limits = ",".join(f"{name}={UNLIMITED}" for name in Cometly.default_budgets)
    return Settings.model_validate(
        {"cometly": sandbox_settings("http://sandbox")["cometly"], "rate_limits": parse_rate_limits(limits)}
    )


async def measure(contacts: int, seed: int, typical: int) -> list[Row]:
    """Run every case; one summary row each (two for the typical get_contact set).

    Raises:
        BenchFailed: A call failed or the sandbox lacks what a case needs.
    """
    limits = dict.fromkeys(DEFAULT_RATE_LIMITS, (1_000_000, 1.0))
    app = create_app(contacts=contacts, seed=seed, now=NOW, rate_limits=limits)
    log: list[Exchange] = []

    def record(request: httpx.Request, status: int, body: bytes) -> None:
        log.append(
            Exchange(
                method=request.method,
                target=request.url.raw_path.decode("ascii"),
                status=status,
                body_bytes=len(body),
                body_chars=len(body.decode("utf-8", errors="replace")),
                filtered=any(key.startswith(CUSTOM_FIELD_FILTER) for key in request.url.params),
            )
        )

    server = build_server(
        settings(),
        transport=lambda: RecordingTransport(httpx.ASGITransport(app=app), record),
        sandbox=True,
        clock=lambda: NOW,
    )
    try:
        chosen, heavy = journey_contacts(app, typical)
        async with Client(server) as client, server.state.hold() as state:
            await dated(state)
            bench = Bench(client, log)
            journey = {"include_events": True, "include_browsing_hits": True}
            each = [await bench.call("get_contact", {"contact_id": str(one), **journey}) for one in chosen]
            heaviest = await bench.call("get_contact", {"contact_id": str(heavy), **journey})
            plain = await bench.call("list_contacts", {**RANGE, "per_page": PER_PAGE})
            custom = await bench.call("list_contacts", {**RANGE, "per_page": PER_PAGE, "include_custom_fields": True})
            premium = {"field": "Customer Plan", "operator": "equal_to", "value": "Premium"}
            filtered = await bench.call(
                "filter_by_custom_field", {**RANGE, "conditions": [premium], "per_page": PER_PAGE}
            )
    finally:
        sandbox_of(app).store.close()
    for page in (plain, custom):
        if page.rows != PER_PAGE:
            raise BenchFailed(f"list_contacts returned {page.rows} contacts, not {PER_PAGE}: the ratio would mislead")
    if len(filtered.data) != 1:
        raise BenchFailed(f"filter_by_custom_field sent {len(filtered.data)} filtered list requests, not 1")
    discovery = filtered.discovery
    return [
        *aggregate(f"get_contact events+hits, {typical} newest", each, GET_CONTACT_TARGET),
        single(f"get_contact events+hits, heavy {heavy}", heaviest, GET_CONTACT_TARGET, "; ".join(heaviest.cuts)),
        single(f"list_contacts per_page={PER_PAGE}", plain, PAGE_TARGET, f"{plain.rows} contacts"),
        single(f"list_contacts per_page={PER_PAGE}, custom fields", custom, PAGE_TARGET, f"{custom.rows} contacts"),
        single(
            f"filter Customer Plan = Premium, per_page={PER_PAGE}",
            filtered,
            PAGE_TARGET,
            f"{filtered.rows} contacts; label discovery apart: {len(discovery)} requests, "
            f"{sum(exchange.body_bytes for exchange in discovery):,} B",
        ),
    ]


def print_each(measured: list[Measured]) -> None:
    print_table(
        ("contact", "text B", "raw B", "ratio"),
        [
            (str(one.arguments["contact_id"]), f"{one.text_bytes:,}", f"{one.raw_bytes:,}", f"{one.ratio:.3f}")
            for one in measured
        ],
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.result_size", description="Bytes a model reads from the server vs the raw upstream JSON."
    )
    parser.add_argument("--contacts", type=int, default=500, help="contacts in the sandbox (500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sandbox data (1)")
    parser.add_argument(
        "--typical", type=int, default=20, help="newest contacts with events and hits to get_contact (20)"
    )
    parser.add_argument("--each", action="store_true", help="also print every typical get_contact call")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers to PATH as JSON")
    args = parser.parse_args(argv)
    if args.contacts < PER_PAGE or args.typical < 1:
        parser.error(f"--contacts must be at least {PER_PAGE} and --typical at least 1")
    return args


async def run(args: argparse.Namespace) -> int:
    """Measure every case, print the table; return the exit status."""
    print(f"command: {shlex.join([Path(sys.executable).name, '-m', 'bench.result_size', *sys.argv[1:]])}")
    print(f"sandbox: {args.contacts} contacts, seed {args.seed}, now {NOW.isoformat()}; range {RANGE}")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream request otherwise
    forget_environment()
    started = time.monotonic()
    try:
        rows = await measure(args.contacts, args.seed, args.typical)
    except BenchFailed as exc:
        print(f"the bench could not run: {exc}", file=sys.stderr)
        return 2
    print()
    print_table(HEADER, [row.cells() for row in rows])
    if args.each:
        print()
        print_each(next(row.measured for row in rows if len(row.measured) > 1))
    failed = [row.case for row in rows if row.passed is False]
    print(f"\n{'FAIL: ' + '; '.join(failed) if failed else 'PASS'} ({time.monotonic() - started:.1f} s)")
    if args.json is not None:
        report = {
            "now": NOW.isoformat(),
            "contacts": args.contacts,
            "seed": args.seed,
            "range": RANGE,
            "rows": [row.as_json() for row in rows],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the bench; 0 when every target was met."""
    return anyio.run(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
