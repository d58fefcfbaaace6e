"""Reading a whole date range in bulk: how close does a `list_contacts` walk come to its rate budget's lower bound?

    uv run python -m bench.bulk [--contacts 20000] [--limit 1] [--window 4] [--json PATH]

It starts `contacts-mcp sandbox` (the installed entry point next to this Python) on a free loopback port
with `--contacts` generated contacts and its own list limit raised out of the way, so that only the
server's budget paces the walk. Then, for each run, a fresh `contacts-mcp serve` over stdio (so each
starts with a fresh budget of `--limit` list requests per `--window` seconds) is asked for every contact
created from 2000-01-01 to today, 5,000 per upstream request:

- count: `count_only` with `max_results` = `--contacts` (reads every page, renders no contact);
- list: `max_results` = `--contacts`; the result stops at the ceiling (`CONTACTS_MCP_MAX_RESULT_TOKENS`,
  `--max-result-tokens`, 1,000,000 by default) with a `next_cursor`, and the bench calls again with it until
  `has_more` is false, checking that every contact id arrives exactly once.

Each call goes out as a plain `tools/call` request, so a run's time ends when its last result has arrived
and been parsed; the output-schema check that `Client.call_tool` would add (the SDK validates the result
with jsonschema) is made afterwards and shown apart, as is the ratio it would give.

Upstream requests are counted on the sandbox's side: its limiter reports the requests of the key in
`X-RateLimit-Remaining`, which a one-row request before and after each run reads. The bound is the
issue's: pages x window / limit. A fresh budget sends its first `limit` requests at once, so the budget
itself forces only (ceil(pages / limit) - 1) x window of waiting; the rest of the bound is what the
server may spend on the requests, on shaping the pages and on the result. Exits 0 when each run is
within `--target` of its bound and read every contact, 1 when not, 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolRequest, CallToolRequestParams, CallToolResult, TextContent

from bench.http_load import BenchFailed, child, clean_environment, status_kib
from bench.tables import print_table
from contacts_mcp.server.paging import MAX_PAGE
from contacts_mcp.server.sandbox import sandbox_environment

ENTRY = Path(sys.executable).parent / "contacts-mcp"
"""The installed entry point of this environment, as an MCP client would start it."""
RANGE = {"start_date": "2000-01-01", "end_date": "today"}
"""Every generated contact: the sandbox spreads them over the 90 days before it started ("last 90 days" starts
at 00:00 89 days ago, so it would miss the oldest hours)."""
SANDBOX_LIST_LIMIT = "cometly.list_contacts=1000000/86400"
"""The sandbox's own list limit: out of the way, and a day long, so its remaining count tallies a whole run."""
MAX_RESULT_TOKENS = 1_000_000
"""The highest ceiling the server accepts (the default here): as many contacts as possible in one result."""
TOOL = "list_contacts"
_SANDBOX_ANNOUNCE = re.compile(r"contacts-mcp sandbox on (http://\S+)")
_PAGE_REPORT = re.compile(r"^Read (\d+) pages?:")


@dataclass
class Run:
    """What one walk measured."""

    name: str
    arguments: dict[str, Any]
    calls: int = 0
    contacts: int = 0
    """Contacts the results held (the total, for count_only)."""
    distinct: int = 0
    """Distinct contact ids among them (count_only: not checked, equal to `contacts`)."""
    repeated: int = 0
    """Ids seen more than once."""
    pages: int | None = None
    """Upstream list requests, counted by the sandbox."""
    pages_reported: int = 0
    """Pages the server reported through progress notifications (a page the result stopped inside is not reported)."""
    seconds: float = math.nan
    """Wall time from the first call to the last result, the server already connected."""
    page_reports: list[float] = field(default_factory=list[float])
    """When each page report arrived, seconds from the start of the run. A report leaves the server when its event
    loop next turns, so the report of a result's last page arrives only once that result has been rendered."""
    result_times: list[float] = field(default_factory=list[float])
    """When each call's result arrived, seconds from the start of the run."""
    result_chars: list[int] = field(default_factory=list[int])
    """Characters of each result's text."""
    check_seconds: float = math.nan
    """What the SDK's output-schema check (`Client.call_tool` makes it) took over the run's results, apart."""
    server_peak_kib: int | None = None
    """The server process's peak resident memory (VmHWM)."""
    server_pid: int | None = None
    error: str | None = None
    """The text of a failed tool result."""


@dataclass(frozen=True)
class Verdict:
    """A run set against its bound."""

    bound: float
    """pages x window / limit."""
    waits: float
    """The waiting a fresh budget forces: (ceil(pages / limit) - 1) x window."""
    ratio: float
    complete: bool
    """Every contact read, each once, and no failed call."""
    passed: bool


def judge(run: Run, args: argparse.Namespace) -> Verdict:
    """The bound, the forced waiting and the ratio of `run`, and whether it met the target."""
    pages = run.pages or 0
    bound = pages * args.window / args.limit
    waits = max(0, math.ceil(pages / args.limit) - 1) * args.window
    ratio = run.seconds / bound if bound else math.nan
    complete = run.error is None and run.contacts == args.contacts and run.distinct == run.contacts
    return Verdict(bound, waits, ratio, complete, passed=complete and ratio <= args.target)


def served_child() -> int | None:
    """The pid of this process's child running `contacts-mcp serve` (the SDK's stdio client starts it directly)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text(encoding="utf-8").rpartition(")")[2].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if parent == me and b"serve" in argv:
            return int(entry.name)
    return None


async def sent_so_far(http: httpx.AsyncClient, base: str) -> int:
    """List requests the sandbox has counted for the Cometly key, this one included.

    Raises:
        BenchFailed: The sandbox did not answer with its rate-limit headers.
    """
    params = {"start_date": "2000-01-01 00:00:00", "end_date": "2000-01-02 00:00:00", "per_page": "1"}
    response = await http.get(f"{base}/contacts", params=params)
    limit, remaining = response.headers.get("X-RateLimit-Limit"), response.headers.get("X-RateLimit-Remaining")
    if response.status_code != 200 or limit is None or remaining is None:
        raise BenchFailed(f"the sandbox answered the request count with {response.status_code}: {response.text[:300]}")
    return int(limit) - int(remaining)


def server_env(sandbox: str, args: argparse.Namespace) -> dict[str, str]:
    """Cometly pointed at the sandbox, the short budget under test, and the widest result ceiling."""
    pages = math.ceil(args.contacts / MAX_PAGE)
    return clean_environment() | {
        **{name: value for name, value in sandbox_environment(sandbox).items() if name.startswith("COMETLY_")},
        "CONTACTS_MCP_LOG_LEVEL": "WARNING",
        "CONTACTS_MCP_RATE_LIMITS": f"cometly.list_contacts={args.limit}/{args.window:g}",
        "CONTACTS_MCP_MAX_WAIT_SECONDS": f"{(pages / args.limit + 2) * args.window + 60:g}",
        "CONTACTS_MCP_MAX_RESULT_TOKENS": str(args.max_result_tokens),
    }


def contact_ids(result: CallToolResult) -> list[str]:
    """The ids of a page's contacts, from its structured content."""
    content: dict[str, Any] = result.structured_content or {}
    contacts = cast(list[dict[str, Any]], content.get("contacts") or [])
    return [str(contact["id"]) for contact in contacts]


async def walk(client: Client, run: Run, *, limit_calls: int) -> None:
    """Make the run's calls, following `next_cursor` until `has_more` is false, timing and checking them.

    The calls go out as plain `tools/call` requests, so the clock stops when a result has arrived and
    been parsed; the output-schema check `Client.call_tool` adds is made afterwards and timed apart.
    """
    start = time.monotonic()
    seen: Counter[str] = Counter()
    pages_this_call = 0
    results: list[CallToolResult] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        nonlocal pages_this_call
        if message and (report := _PAGE_REPORT.match(message)):
            run.page_reports.append(time.monotonic() - start)
            pages_this_call = max(pages_this_call, int(report.group(1)))

    cursor: Any = None
    for _ in range(limit_calls):
        pages_this_call = 0
        arguments: dict[str, Any] = run.arguments | ({"cursor": str(cursor)} if cursor else {})
        request = CallToolRequest(params=CallToolRequestParams(name=TOOL, arguments=arguments))
        result = await client.session.send_request(request, CallToolResult, progress_callback=on_progress)
        run.result_times.append(time.monotonic() - start)
        results.append(result)
        run.calls += 1
        run.pages_reported += pages_this_call
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        run.result_chars.append(len(text))
        content: dict[str, Any] = result.structured_content or {}
        if result.is_error or not content:
            run.error = text[:500]
            break
        if run.arguments.get("count_only"):
            run.contacts += int(content.get("total", content.get("total_at_least", 0)))
        else:
            seen.update(contact_ids(result))
        cursor = content.get("next_cursor")
        if not content.get("has_more") or not cursor:
            break
    run.seconds = time.monotonic() - start
    if not run.arguments.get("count_only"):
        run.contacts = seen.total()
        run.distinct = len(seen)
        run.repeated = sum(1 for count in seen.values() if count > 1)
    else:
        run.distinct = run.contacts
    checking = time.monotonic()
    for result in results:
        if not result.is_error:
            try:
                await client.session.validate_tool_result(TOOL, result)
            except RuntimeError as exc:
                run.error = run.error or f"the result does not match the tool's output schema: {exc}"[:500]
    run.check_seconds = time.monotonic() - checking


async def measure(run: Run, sandbox: str, args: argparse.Namespace, workdir: Path) -> Run:
    """Start a fresh server, walk, and read the server's peak memory and the sandbox's request count.

    Raises:
        BenchFailed: The server did not start, or the sandbox did not count.
    """
    base = sandbox_environment(sandbox)["COMETLY_BASE_URL"]
    headers = {"Authorization": f"Bearer {sandbox_environment(sandbox)['COMETLY_API_KEY']}"}
    log_path = workdir / f"server-{run.name}.log"
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(headers=headers, timeout=30))
        log = stack.enter_context(log_path.open("w", encoding="utf-8"))
        # cwd is an empty directory, so a developer's .env cannot change the server's settings.
        params = StdioServerParameters(command=str(ENTRY), args=["serve"], env=server_env(sandbox, args), cwd=workdir)
        try:
            client = await stack.enter_async_context(Client(stdio_client(params, errlog=log)))
        except Exception as exc:
            log.flush()
            tail = log_path.read_text(encoding="utf-8")[-3000:]
            raise BenchFailed(f"the server did not start ({type(exc).__name__}); its log ends:\n{tail}") from exc
        run.server_pid = served_child()
        await client.list_tools()  # as a client does on connecting; it also gives the SDK the output schema
        before = await sent_so_far(http, base)
        await walk(client, run, limit_calls=args.contacts + 1)
        run.server_peak_kib = status_kib(run.server_pid, "VmHWM")
        run.pages = await sent_so_far(http, base) - before - 1  # the second count counts itself
    return run


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def print_report(runs: Sequence[Run], args: argparse.Namespace) -> None:
    """The runs against their bounds, then each run's timeline."""
    rows: list[list[str]] = []
    for run in runs:
        verdict = judge(run, args)
        contacts = f"{run.contacts:,}" if run.arguments.get("count_only") else f"{run.distinct:,}/{run.contacts:,}"
        with_check = (run.seconds + run.check_seconds) / verdict.bound if verdict.bound else math.nan
        rows.append(
            [
                run.name,
                str(run.calls),
                contacts,
                f"{run.pages}/{run.pages_reported}",
                f"{run.seconds:.2f}",
                f"{verdict.waits:.2f}",
                f"{verdict.bound:.2f}",
                f"{verdict.ratio:.3f}",
                f"{run.check_seconds:.2f}",
                f"{with_check:.3f}",
                mib(run.server_peak_kib),
                "PASS" if verdict.passed else ("FAIL" if verdict.complete else "FAIL (incomplete)"),
            ]
        )
    header = (
        "run",
        "calls",
        "contacts",
        "pages",
        "time s",
        "waits s",
        "bound s",
        "ratio",
        "SDK check s",
        "ratio +check",
        "server peak",
        "",
    )
    print_table(header, rows)
    print()
    timeline: list[list[str]] = []
    for run in runs:
        verdict = judge(run, args)
        timeline.append(
            [
                run.name,
                ", ".join(f"{at:.2f}" for at in run.page_reports),
                ", ".join(f"{at:.2f}" for at in run.result_times),
                f"{run.seconds - verdict.waits:.2f}",
                ", ".join(f"{chars:,}" for chars in run.result_chars),
            ]
        )
    header = ("run", "page reports at s", "results at s", "not waiting s", "text chars")
    print_table(header, timeline)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bulk", description="A bulk list_contacts walk against its rate budget's lower bound."
    )
    parser.add_argument("--contacts", type=int, default=20_000, help="contacts in the sandbox, all read (20000)")
    parser.add_argument("--limit", type=int, default=1, help="the server's list budget: requests per window (1)")
    parser.add_argument(
        "--window", type=float, default=4.0, help="the budget's window in seconds (4: Cometly's 15 a minute, no burst)"
    )
    parser.add_argument(
        "--max-result-tokens",
        type=int,
        default=MAX_RESULT_TOKENS,
        help="the server's result ceiling, 1000-1000000 (1000000); lower it to walk on with cursors",
    )
    parser.add_argument("--target", type=float, default=1.05, help="the highest time / bound that passes (1.05)")
    parser.add_argument(
        "--runs", default="count,list", help="which runs, comma-separated: count (count_only), list (count,list)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers to PATH as JSON")
    args = parser.parse_args(argv)
    args.runs = [name.strip() for name in args.runs.split(",") if name.strip()]
    if not args.runs or set(args.runs) - {"count", "list"}:
        parser.error("--runs takes a comma-separated subset of count,list")
    if not 1 <= args.contacts <= 100_000 or not 1_000 <= args.max_result_tokens <= MAX_RESULT_TOKENS:
        parser.error("--contacts must be 1-100000 and --max-result-tokens 1000-1000000")
    if args.limit < 1 or args.window <= 0 or args.target <= 0:
        parser.error("--limit, --window and --target must be positive")
    return args


async def run(args: argparse.Namespace) -> int:
    """Start the sandbox, make the runs, print the report; return the exit status."""
    print(f"command: {shlex.join([Path(sys.executable).name, '-m', 'bench.bulk', *sys.argv[1:]])}")
    pages = math.ceil(args.contacts / MAX_PAGE)
    print(
        f"parameters: {args.contacts:,} sandbox contacts, {MAX_PAGE:,} per request (at least {pages} upstream "
        f"request{'s' if pages != 1 else ''}); server budget cometly.list_contacts={args.limit}/{args.window:g} s; "
        f"result ceiling {args.max_result_tokens:,} tokens; target time <= {args.target:g} x bound"
    )
    common = {**RANGE, "per_page": MAX_PAGE, "max_results": args.contacts, "provider": "cometly"}
    planned = {"count": Run("count", common | {"count_only": True}), "list": Run("list", dict(common))}
    command = [str(ENTRY), "sandbox", "--port", "0", "--contacts", str(args.contacts)]
    command += ["--rate-limit", SANDBOX_LIST_LIMIT]
    runs: list[Run] = []
    sandbox_peak: int | None = None
    generation = math.nan
    try:
        with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
            started = time.monotonic()
            async with child("sandbox", command, clean_environment(), _SANDBOX_ANNOUNCE) as sandbox:
                generation = time.monotonic() - started
                print(
                    f"sandbox {sandbox.address} (pid {sandbox.pid}): started with {args.contacts:,} generated "
                    f"contacts in {generation:.1f} s (not part of any run)",
                    flush=True,
                )
                for name in args.runs:
                    print(f"running {name}...", flush=True)
                    pages_bound = pages * args.window / args.limit
                    with anyio.fail_after(3 * pages_bound + 120):
                        runs.append(await measure(planned[name], sandbox.address, args, Path(tmp)))
                sandbox_peak = status_kib(sandbox.pid, "VmHWM")
    except (BenchFailed, TimeoutError, OSError) as exc:
        print(f"the bench could not run: {str(exc) or 'a run did not finish in time'}", file=sys.stderr)
        return 2
    print()
    print_report(runs, args)
    print(
        f"\nsandbox peak memory (VmHWM, generation included): {mib(sandbox_peak)}; sandbox start with generation: "
        f"{generation:.1f} s"
    )
    print(
        "pages: upstream requests counted by the sandbox / pages the server reported by progress; time: first call "
        "issued to last result parsed; waits: what a fresh budget forces, (ceil(pages / limit) - 1) x window; bound: "
        "pages x window / limit (the issue's); ratio: time / bound (the target); SDK check: the output-schema "
        "validation Client.call_tool adds, timed apart; server peak: VmHWM of that run's server process."
    )
    for done in runs:
        if done.error:
            print(f"{done.name}: a call failed: {done.error}")
        if done.repeated:
            print(f"{done.name}: {done.repeated} ids arrived more than once")
    if args.json is not None:
        report = {
            "parameters": {
                "contacts": args.contacts,
                "per_page": MAX_PAGE,
                "limit": args.limit,
                "window": args.window,
                "target": args.target,
                "max_result_tokens": args.max_result_tokens,
            },
            "sandbox": {"start_seconds": generation, "peak_kib": sandbox_peak},
            "runs": [asdict(done) | {"verdict": asdict(judge(done, args))} for done in runs],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    passed = all(judge(done, args).passed for done in runs)
    print(f"\n{'PASS' if passed else 'FAIL'}: every run within {args.target:g} x its bound and complete: {passed}")
    return 0 if passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the bench; 0 when every run met its target."""
    return anyio.run(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
