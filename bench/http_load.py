"""Many MCP sessions over streamable HTTP at once: is every call answered, and does the server's memory stay flat?

    uv run python -m bench.http_load [--sessions 50] [--calls 1000] [--mode legacy|auto] [--json PATH]
    uv run python -m bench.http_load --url http://127.0.0.1:8000/mcp --token TOKEN [--pid PID]

Without `--url` it starts two processes on 127.0.0.1: `python -m contacts_mcp sandbox` (every sandbox rate limit
raised, so the load measures the server rather than the limits) and `python -m contacts_mcp serve --transport http`
pointed at it with all three providers and its own budgets raised the same way. With `--url` it drives a
server already running (which should have all three providers and generous budgets); `--pid` lets it read
that server's memory.

One preparation session first learns real ids (list_contacts on Cometly and Clemta, find_contact on
HighLevel; not counted). Then `sessions` sessions are opened and kept open while `calls` tool calls, a fixed
mix over the three providers (`MIX`), are shared out among them: every session issues one call at a time,
as an agent would. The first `--baseline` calls run to completion, the server's resident memory (VmRSS) is
read, the rest run, and it is read again; once more after every session has closed.

Each call ends as `ok`, an error class (`[not_found]` ...), `unclassified` (an error without one),
`timeout` or `exception:<type>`; the last three are lost calls. Every call in the mix has an expected
outcome (a real id: ok; an unknown id: not_found; ...), and a call that ends otherwise is unexpected.
Exits 0 when no call is lost or unexpected and memory after the load is within `MEMORY_LIMIT` of the
baseline, 1 when not, 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import secrets
import shlex
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from bench.tables import print_table
from contacts_mcp.server.errors import ContactsError
from contacts_mcp.server.providers import PROVIDERS
from contacts_mcp.server.sandbox import (
    DEFAULT_RATE_LIMITS,
    sandbox_environment,
)


def _kinds(error: type[ContactsError]) -> set[str]:
    return {error.kind}.union(*(_kinds(subclass) for subclass in error.__subclasses__()))


ERROR_KINDS = frozenset(_kinds(ContactsError))
"""Every error class a tool result can carry, from `server/errors.py`."""
_ERROR_KIND = re.compile(r"^\[([a-z_]+)\]", re.MULTILINE)
OWN_PREFIXES = ("COMETLY_", "HIGHLEVEL_", "CLEMTA_", "CONTACTS_MCP_")
UNLIMITED = "1000000/1"
"""A rate no load of this bench comes near, for every sandbox limit and server budget."""
MEMORY_LIMIT = 1.10
"""Resident memory after the load (and after the sessions close) may be at most this times the baseline."""
START_SECONDS = 60.0
RANGE = {"start_date": "2000-01-01", "end_date": "2100-01-01"}
UNKNOWN = {"cometly": "987654321", "highlevel": "zzzzzzzzzzzzzzzzzzzz", "clemta": "ffffffffffffffffffffffff"}
LOST = ("unclassified", "timeout", "exception")


class BenchFailed(Exception):
    """The bench could not run (a process did not start, a session did not connect), as opposed to a bad result."""


@dataclass(frozen=True)
class Call:
    """One planned tool call and what it should end as: `ok` or an error class."""

    label: str
    tool: str
    arguments: dict[str, Any]
    expect: str


@dataclass(frozen=True)
class Outcome:
    """How one call ended (`ok`, an error class, or one of `LOST`), how long it took, and which session made it."""

    call: Call
    result: str
    seconds: float
    session: int

    @property
    def lost(self) -> bool:
        """The call got no answer, or an error without a class."""
        return self.result.split(":")[0] in LOST


@dataclass(frozen=True)
class Known:
    """Real ids and emails learned from the server before the load."""

    cometly_ids: tuple[str, ...]
    clemta_ids: tuple[str, ...]
    highlevel_ids: tuple[str, ...]
    emails: tuple[str, ...]


@dataclass
class Report:
    """What one run measured."""

    sessions: int
    mode: str
    planned: int
    baseline_calls: int
    outcomes: list[Outcome] = field(default_factory=list[Outcome])
    seconds: float = math.nan
    """Wall time of the calls themselves (both parts, not the connects or the memory reads)."""
    rss_baseline: int | None = None
    """VmRSS in KiB once the first `baseline_calls` calls had ended (None: not measured)."""
    rss_end: int | None = None
    """VmRSS in KiB once every call had ended, the sessions still open."""
    rss_closed: int | None = None
    """VmRSS in KiB after every session closed."""
    cpu_seconds: float | None = None
    """CPU time the server spent during the calls, user and system (None: not measured)."""

    @property
    def results(self) -> Counter[str]:
        """How many calls ended each way."""
        return Counter(outcome.result for outcome in self.outcomes)

    @property
    def lost(self) -> int:
        """Calls without a result or a classified error, planned calls never recorded included."""
        return sum(outcome.lost for outcome in self.outcomes) + self.planned - len(self.outcomes)

    @property
    def unexpected(self) -> list[Outcome]:
        """Answered calls that did not end as their kind of call should."""
        return [o for o in self.outcomes if not o.lost and o.result != o.call.expect]

    def ratio(self, rss: int | None) -> float | None:
        """`rss` over the baseline, when both were measured."""
        return None if rss is None or not self.rss_baseline else rss / self.rss_baseline

    @property
    def memory_ok(self) -> bool | None:
        """Whether memory after the load and after closing stayed within `MEMORY_LIMIT` (None: not measured)."""
        end, closed = self.ratio(self.rss_end), self.ratio(self.rss_closed)
        if end is None or closed is None:
            return None
        return end <= MEMORY_LIMIT and closed <= MEMORY_LIMIT

    @property
    def passed(self) -> bool:
        """No call lost or unexpected, and memory within bounds where it was measured."""
        return self.lost == 0 and not self.unexpected and self.memory_ok is not False

    def latency(self, quantile: int) -> float:
        """The `quantile`-th percentile (1-99) of call latency in seconds, over all calls."""
        latencies = [outcome.seconds for outcome in self.outcomes]
        if len(latencies) < 2:
            return latencies[0] if latencies else math.nan
        return statistics.quantiles(latencies, n=100)[quantile - 1]

    def by_label(self) -> dict[str, Counter[str]]:
        """Outcomes per kind of call, in the order of `MIX`."""
        order = {kind.label: index for index, kind in enumerate(MIX)}
        grouped: dict[str, Counter[str]] = {}
        for outcome in sorted(self.outcomes, key=lambda o: order.get(o.call.label, len(order))):
            grouped.setdefault(outcome.call.label, Counter())[outcome.result] += 1
        return grouped

    def as_json(self) -> dict[str, Any]:
        """The numbers, for `--json`."""
        return {
            "sessions": self.sessions,
            "mode": self.mode,
            "calls": self.planned,
            "baseline_calls": self.baseline_calls,
            "results": dict(self.results.most_common()),
            "lost": self.lost,
            "unexpected": len(self.unexpected),
            "seconds": self.seconds,
            "calls_per_second": self.planned / self.seconds if self.seconds else None,
            "latency_seconds": {"p50": self.latency(50), "p95": self.latency(95), "p99": self.latency(99)},
            "server_cpu_seconds": self.cpu_seconds,
            "rss_kib": {"baseline": self.rss_baseline, "end": self.rss_end, "closed": self.rss_closed},
            "rss_ratio": {"end": self.ratio(self.rss_end), "closed": self.ratio(self.rss_closed)},
            "by_call": {label: {"expect": EXPECTED[label], **counts} for label, counts in self.by_label().items()},
            "passed": self.passed,
        }


class Planner:
    """Builds the calls of a run from what the server knows; `tag` keeps created contacts unique per run."""

    def __init__(self, known: Known, rng: random.Random, tag: str) -> None:
        self.known = known
        self.rng = rng
        self.tag = tag
        self.created = 0

    def pick(self, values: Sequence[str]) -> str:
        return self.rng.choice(values)

    def email(self) -> str:
        self.created += 1
        return f"load-{self.tag}-{self.created}@example.com"

    def get(self, provider: str, ids: Sequence[str], **extra: Any) -> dict[str, Any]:
        return {"contact_id": self.pick(ids), "provider": provider, **extra}


@dataclass(frozen=True)
class Kind:
    """One kind of call in the mix: how often it comes, what it must end as, and how its arguments are made."""

    label: str
    weight: int
    expect: str
    tool: str
    arguments: Callable[[Planner], dict[str, Any]]


def _pages(provider: str) -> Callable[[Planner], dict[str, Any]]:
    return lambda p: {**RANGE, "per_page": p.rng.choice((10, 25, 50)), "provider": provider}


def _new(provider: str, **extra: Any) -> Callable[[Planner], dict[str, Any]]:
    return lambda p: {"emails": [p.email()], "provider": provider, **extra}


def _unknown(provider: str) -> Callable[[Planner], dict[str, Any]]:
    return lambda p: {"contact_id": UNKNOWN[provider], "provider": provider}


def _fixed(**arguments: Any) -> Callable[[Planner], dict[str, Any]]:
    return lambda p: dict(arguments)


_PREMIUM = [{"field": "profile_field_5", "operator": "equal_to", "value": "Premium"}]
_UNLABELED = [{"field": "profile_field_9", "operator": "any"}]

MIX: tuple[Kind, ...] = (
    Kind("get_contact cometly", 14, "ok", "get_contact", lambda p: p.get("cometly", p.known.cometly_ids)),
    Kind(
        "get_contact cometly +events",
        4,
        "ok",
        "get_contact",
        lambda p: p.get("cometly", p.known.cometly_ids, include_events=True, include_comet_tokens=True),
    ),
    Kind("get_contact highlevel", 8, "ok", "get_contact", lambda p: p.get("highlevel", p.known.highlevel_ids)),
    Kind("get_contact clemta", 8, "ok", "get_contact", lambda p: p.get("clemta", p.known.clemta_ids)),
    Kind("list_contacts cometly", 7, "ok", "list_contacts", _pages("cometly")),
    Kind("list_contacts clemta", 6, "ok", "list_contacts", _pages("clemta")),
    Kind(
        "filter_by_custom_field cometly",
        6,
        "ok",
        "filter_by_custom_field",
        lambda p: {**RANGE, "conditions": _PREMIUM, "per_page": 25, "provider": "cometly"},
    ),
    Kind(
        "find_contact highlevel",
        8,
        "ok",
        "find_contact",
        lambda p: {"email": p.pick(p.known.emails), "provider": "highlevel"},
    ),
    Kind("create_contact cometly", 4, "ok", "create_contact", _new("cometly", names=["Load Test"])),
    Kind("create_contact highlevel", 3, "ok", "create_contact", _new("highlevel", names=["Load Test"])),
    Kind("create_contact clemta", 3, "ok", "create_contact", _new("clemta", names=["Load Test"])),
    Kind("get_contact unknown id cometly", 4, "not_found", "get_contact", _unknown("cometly")),
    Kind("get_contact unknown id highlevel", 2, "not_found", "get_contact", _unknown("highlevel")),
    Kind("get_contact unknown id clemta", 2, "not_found", "get_contact", _unknown("clemta")),
    Kind(
        "find_contact unknown email",
        2,
        "not_found",
        "find_contact",
        lambda p: {"email": f"nobody-{p.tag}@example.com", "provider": "highlevel"},
    ),
    Kind(
        "get_contact malformed id",
        1,
        "validation_error",
        "get_contact",
        _fixed(contact_id="not-a-number", provider="cometly"),
    ),
    Kind(
        "list_contacts end before start",
        2,
        "validation_error",
        "list_contacts",
        _fixed(start_date="2026-01-02", end_date="2026-01-01", provider="cometly"),
    ),
    Kind(
        "list_contacts per_page 0",
        1,
        "validation_error",
        "list_contacts",
        _fixed(**RANGE, per_page=0, provider="clemta"),
    ),
    Kind(
        "filter_by_custom_field unlabeled slot",
        2,
        "validation_error",
        "filter_by_custom_field",
        _fixed(**RANGE, conditions=_UNLABELED, provider="cometly"),
    ),
    Kind("find_contact without email or phone", 1, "validation_error", "find_contact", _fixed(provider="highlevel")),
    Kind("create_contact clemta without name", 2, "validation_error", "create_contact", _new("clemta")),
    Kind("list_contacts on highlevel", 1, "not_supported", "list_contacts", _fixed(**RANGE, provider="highlevel")),
    Kind("unknown tool", 1, "not_supported", "merge_contacts", _fixed(contact_ids=["1", "2"])),
)
"""Every kind of call in the load: about 3/4 must succeed, the rest fail with the class given."""
EXPECTED = {kind.label: kind.expect for kind in MIX}


def plan(count: int, known: Known, *, seed: int = 1) -> list[Call]:
    """`count` calls drawn from `MIX` by weight: the same kinds in the same order for the same seed.

    Created contacts get emails unique to this run, so a sandbox kept between runs takes them too.
    """
    rng = random.Random(seed)
    planner = Planner(known, rng, tag=secrets.token_hex(4))
    kinds = rng.choices(MIX, weights=[kind.weight for kind in MIX], k=count)
    return [Call(kind.label, kind.tool, kind.arguments(planner), kind.expect) for kind in kinds]


def classify(result: CallToolResult) -> str:
    """`ok`, the error class of a failed result, or `unclassified`."""
    if not result.is_error:
        return "ok"
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    kind = _ERROR_KIND.search(text)
    return kind.group(1) if kind and kind.group(1) in ERROR_KINDS else "unclassified"


def cpu_seconds(pid: int | None) -> float | None:
    """The CPU time process `pid` has used so far, user and system, from /proc (None without a pid or /proc)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int | None, name: str) -> int | None:
    """A `/proc/<pid>/status` figure in KiB, e.g. `VmRSS` or `VmHWM` (None without the process or /proc)."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


def rss_kib(pid: int | None) -> int | None:
    """The resident memory of process `pid` in KiB, from /proc (None without a pid or /proc)."""
    return status_kib(pid, "VmRSS")


@asynccontextmanager
async def session(url: str, token: str, mode: str, tls: ssl.SSLContext) -> AsyncGenerator[Client]:
    """One MCP session over streamable HTTP with its own HTTP client, as a separate agent would have.

    `tls` is shared: building a context per client loads the CA bundle each time (about 50 ms of CPU).
    """
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300), verify=tls) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


async def connect(stack: AsyncExitStack, url: str, token: str, mode: str, tls: ssl.SSLContext) -> Client:
    """Open a session that lasts as long as `stack`.

    Raises:
        BenchFailed: It did not connect.
    """
    try:
        return await stack.enter_async_context(session(url, token, mode, tls))
    except Exception as exc:
        raise BenchFailed(f"a session did not connect to {url}: {reason(exc)}") from exc


def reason(exc: BaseException) -> str:
    """What went wrong, from the first exception inside any exception groups (the SDK's task groups wrap them)."""
    leaf: BaseException = exc
    while isinstance(leaf, BaseExceptionGroup):
        leaf = cast("BaseExceptionGroup[BaseException]", leaf).exceptions[0]
    return f"{type(leaf).__name__}: {leaf}"


async def learn(client: Client) -> Known:
    """Real Cometly and Clemta ids (list_contacts) and HighLevel ids (find_contact by their emails).

    Raises:
        BenchFailed: The server could not list or find contacts.
    """

    async def contacts(tool: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
        result = await client.call_tool(tool, arguments)
        content = result.structured_content
        if result.is_error or content is None:
            text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
            raise BenchFailed(f"{tool} {arguments.get('provider')} failed while learning ids: {text[:300]}")
        return content.get("contacts", [content])  # a page, or one contact

    cometly = await contacts("list_contacts", {**RANGE, "per_page": 200, "provider": "cometly"})
    clemta = await contacts("list_contacts", {**RANGE, "per_page": 200, "provider": "clemta"})
    emails = [str(contact["emails"][0]) for contact in cometly if contact.get("emails")][:20]
    highlevel = [(await contacts("find_contact", {"email": email, "provider": "highlevel"}))[0] for email in emails]
    known = Known(
        cometly_ids=tuple(str(contact["id"]) for contact in cometly),
        clemta_ids=tuple(str(contact["id"]) for contact in clemta),
        highlevel_ids=tuple(str(contact["id"]) for contact in highlevel),
        emails=tuple(emails),
    )
    if not (known.cometly_ids and known.clemta_ids and known.highlevel_ids):
        raise BenchFailed("the server has no contacts to load with: is its sandbox empty?")
    return known


async def issue(client: Client, call: Call, session_index: int, limit_seconds: float) -> Outcome:
    """Make one call, timed from issue to result; whatever happens, it ends as an outcome."""
    start = time.monotonic()
    try:
        with anyio.fail_after(limit_seconds):
            result = classify(await client.call_tool(call.tool, call.arguments))
    except TimeoutError:
        result = "timeout"
    except Exception as exc:  # a broken session is a result of the run, not a reason to stop it
        result = f"exception:{type(exc).__name__}"
    return Outcome(call, result, time.monotonic() - start, session_index)


async def run_calls(
    clients: Sequence[Client], calls: Sequence[Call], limit_seconds: float, into: list[Outcome]
) -> None:
    """Share `calls` out among `clients`: each takes the next one as soon as its previous call ended."""
    queue: Iterator[Call] = iter(calls)

    async def work(index: int, client: Client) -> None:
        # One iterator shared by every session: whoever is free takes the next call.
        into.extend([await issue(client, call, index, limit_seconds) for call in queue])

    async with anyio.create_task_group() as group:
        for index, client in enumerate(clients):
            group.start_soon(work, index, client)


async def drive(
    url: str,
    token: str,
    *,
    sessions: int = 50,
    calls: int = 1000,
    baseline_calls: int = 100,
    pid: int | None = None,
    mode: str = "legacy",
    seed: int = 1,
    call_timeout: float = 60.0,
) -> Report:
    """Load the server at `url` and measure it; `pid` is the server's process, for its memory.

    Raises:
        BenchFailed: A session did not connect, or the ids to load with could not be learned.
    """
    tls = ssl.create_default_context()
    async with AsyncExitStack() as stack:
        known = await learn(await connect(stack, url, token, mode, tls))
    planned = plan(calls, known, seed=seed)
    report = Report(sessions=sessions, mode=mode, planned=calls, baseline_calls=min(baseline_calls, calls))
    async with AsyncExitStack() as stack:
        clients = [await connect(stack, url, token, mode, tls) for _ in range(sessions)]
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        await run_calls(clients, planned[: report.baseline_calls], call_timeout, report.outcomes)
        paused = time.monotonic()
        report.rss_baseline = rss_kib(pid)
        resumed = time.monotonic()
        await run_calls(clients, planned[report.baseline_calls :], call_timeout, report.outcomes)
        report.seconds = (paused - started) + (time.monotonic() - resumed)
        cpu_after = cpu_seconds(pid)
        if cpu_before is not None and cpu_after is not None:
            report.cpu_seconds = cpu_after - cpu_before
        report.rss_end = rss_kib(pid)
    report.rss_closed = rss_kib(pid)
    return report


def budget_names() -> list[str]:
    """Every rate budget the server keeps, from the providers' defaults."""
    return sorted({name for provider in PROVIDERS.values() for name in provider.default_budgets})


def clean_environment() -> dict[str, str]:
    """This process's environment without any provider or contacts-mcp setting."""
    return {name: value for name, value in os.environ.items() if not name.startswith(OWN_PREFIXES)}


def server_environment(sandbox: str, token: str) -> dict[str, str]:
    """Settings pointing all three providers at the sandbox at `sandbox`, with every budget out of the way."""
    return {
        **sandbox_environment(sandbox),
        "CONTACTS_MCP_HTTP_TOKEN": token,
        "CONTACTS_MCP_RATE_LIMITS": ",".join(f"{name}={UNLIMITED}" for name in budget_names()),
    }


@dataclass(frozen=True)
class Child:
    """A process this bench started: the address it announced, its pid, and the file its output goes to."""

    address: str
    pid: int
    log: Path

    def tail(self, lines: int = 30) -> str:
        """The last `lines` lines it wrote."""
        return "".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-lines:])


@asynccontextmanager
async def child(
    what: str, command: Sequence[str], env: Mapping[str, str], announce: re.Pattern[str]
) -> AsyncGenerator[Child]:
    """Run `command`, its stdout and stderr in a log file, until it writes `announce`; stop it on exit.

    The output goes to a file rather than a pipe, so nothing has to keep reading it for the process
    to go on writing (a full pipe would stall a server that logs every failed call).

    Raises:
        BenchFailed: It exited, or did not announce itself within `START_SECONDS`.
    """
    with tempfile.TemporaryDirectory(prefix="bench-http-load-") as workdir:
        log = Path(workdir) / f"{what.replace(' ', '-')}.log"
        with log.open("wb") as output:
            # cwd is an empty directory, so a developer's .env cannot change the settings.
            process = await anyio.open_process(
                list(command), env=dict(env), cwd=workdir, stdin=subprocess.DEVNULL, stdout=output, stderr=output
            )
        try:
            address = await announced(process, log, announce)
            if address is None:
                status = "still running" if process.returncode is None else f"exit status {process.returncode}"
                text = log.read_text(encoding="utf-8", errors="replace")[-3000:]
                raise BenchFailed(f"the {what} did not start ({status}); its output ends:\n{text}")
            yield Child(address, process.pid, log)
        finally:
            with anyio.CancelScope(shield=True):
                await stop(process)


async def announced(process: Process, log: Path, announce: re.Pattern[str]) -> str | None:
    """The address `process` writes to `log` once it listens (None: it exited or took over `START_SECONDS`)."""
    path = anyio.Path(log)
    with anyio.move_on_after(START_SECONDS):
        while process.returncode is None:
            if found := announce.search(await path.read_text(encoding="utf-8", errors="replace")):
                return found.group(1)
            await anyio.sleep(0.05)
    found = announce.search(await path.read_text(encoding="utf-8", errors="replace"))
    return found.group(1) if found else None


async def stop(process: Process) -> None:
    """Terminate `process`, kill it if it has not exited within 10 s, and release what it holds."""
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    await process.aclose()


_SANDBOX_ANNOUNCE = re.compile(r"contacts-mcp sandbox on (http://\S+)")
_SERVER_ANNOUNCE = re.compile(r"serving MCP over .* at (http://\S+)")


@asynccontextmanager
async def sandbox_process(contacts: int = 500) -> AsyncGenerator[Child]:
    """`python -m contacts_mcp sandbox` on a free loopback port with every rate limit raised; yields its root URL."""
    limits = [argument for name in DEFAULT_RATE_LIMITS for argument in ("--rate-limit", f"{name}={UNLIMITED}")]
    command = [sys.executable, "-m", "contacts_mcp", "sandbox", "--port", "0", "--contacts", str(contacts), *limits]
    async with child("sandbox", command, clean_environment(), _SANDBOX_ANNOUNCE) as sandbox:
        yield sandbox


@asynccontextmanager
async def server_process(sandbox: str, token: str) -> AsyncGenerator[Child]:
    """`python -m contacts_mcp serve --transport http` on a free loopback port against `sandbox`; yields its MCP URL."""
    env = clean_environment() | server_environment(sandbox, token)
    command = [sys.executable, "-m", "contacts_mcp", "serve", "--transport", "http", "--port", "0"]
    async with child("MCP server", command, env, _SERVER_ANNOUNCE) as server:
        yield server


def kib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f} MiB"


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_report(report: Report) -> None:
    """The summary, then each kind of call with what it was expected to end as and what it did."""
    results = report.results
    rows: list[tuple[str, str]] = [
        ("sessions", f"{report.sessions} ({report.mode})"),
        ("calls", str(report.planned)),
        ("ok", str(results["ok"])),
        *((kind, str(results[kind])) for kind in sorted(ERROR_KINDS) if results[kind]),
        *((name, str(count)) for name, count in sorted(results.items()) if name.split(":")[0] in LOST),
        ("lost", str(report.lost)),
        ("unexpected", str(len(report.unexpected))),
        ("throughput", f"{report.planned / report.seconds:.1f} calls/s over {report.seconds:.1f} s"),
        ("latency p50 / p95", f"{report.latency(50) * 1000:.0f} / {report.latency(95) * 1000:.0f} ms"),
        (
            "server CPU",
            "-"
            if report.cpu_seconds is None
            else f"{report.cpu_seconds:.1f} s, {report.cpu_seconds / report.planned * 1000:.1f} ms per call",
        ),
        (f"RSS after {report.baseline_calls} calls", kib(report.rss_baseline)),
        ("RSS after all calls", f"{kib(report.rss_end)} (ratio {ratio_text(report.ratio(report.rss_end))})"),
        (
            "RSS after sessions closed",
            f"{kib(report.rss_closed)} (ratio {ratio_text(report.ratio(report.rss_closed))})",
        ),
    ]
    print_table(("measure", "value"), rows)
    print()
    calls = [
        (label, str(counts.total()), EXPECTED[label], ", ".join(f"{name}:{n}" for name, n in counts.most_common()))
        for label, counts in report.by_label().items()
    ]
    print_table(("call", "n", "expected", "ended as"), calls)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_load", description="Many MCP HTTP sessions at once: every call answered?"
    )
    parser.add_argument("--sessions", type=int, default=50, help="concurrent MCP sessions (50)")
    parser.add_argument("--calls", type=int, default=1000, help="tool calls in total, shared among them (1000)")
    parser.add_argument("--baseline", type=int, default=100, help="calls before the baseline memory reading (100)")
    parser.add_argument(
        "--mode",
        choices=("legacy", "auto"),
        default="legacy",
        help="legacy: initialize handshake, a server-side session per client (default); "
        "auto: the SDK's negotiation (2026-07-28: no server-side session)",
    )
    parser.add_argument("--contacts", type=int, default=500, help="contacts in the sandbox the bench starts (500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the call mix (1)")
    parser.add_argument("--call-timeout", type=float, default=60.0, help="seconds before a call counts as lost (60)")
    parser.add_argument("--url", help="drive this running server's MCP endpoint instead of starting one")
    parser.add_argument("--token", help="with --url: its CONTACTS_MCP_HTTP_TOKEN")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, to read its memory")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers to PATH as JSON")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.calls < 1 or not 0 < args.baseline < args.calls or args.call_timeout <= 0:
        parser.error("--sessions, --calls and --call-timeout must be positive, and 0 < --baseline < --calls")
    if args.url is None and (args.token or args.pid):
        parser.error("--token and --pid go with --url")
    if args.url is not None and not args.token:
        parser.error("--url needs --token")
    return args


async def run(args: argparse.Namespace) -> int:
    """Start the processes unless given a URL, drive the load, print the report; return the exit status."""
    print(f"command: {shlex.join([Path(sys.executable).name, '-m', 'bench.http_load', *sys.argv[1:]])}")
    options = {
        "sessions": args.sessions,
        "calls": args.calls,
        "baseline_calls": args.baseline,
        "mode": args.mode,
        "seed": args.seed,
        "call_timeout": args.call_timeout,
    }
    try:
        if args.url is not None:
            report = await drive(args.url, args.token, pid=args.pid, **options)
        else:
            token = secrets.token_urlsafe(24)
            async with sandbox_process(args.contacts) as sandbox, server_process(sandbox.address, token) as server:
                print(f"sandbox {sandbox.address} (pid {sandbox.pid}); server {server.address} (pid {server.pid})")
                report = await drive(server.address, token, pid=server.pid, **options)
    except BenchFailed as exc:
        print(f"the bench could not run: {exc}", file=sys.stderr)
        return 2
    print()
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    verdict = "PASS" if report.passed else "FAIL"
    print(
        f"\n{verdict}: lost {report.lost}, unexpected {len(report.unexpected)}, memory within "
        f"{MEMORY_LIMIT:.2f}x of the baseline: {report.memory_ok}"
    )
    return 0 if report.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the bench; 0 when every call was answered as expected and memory stayed."""
    return anyio.run(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
