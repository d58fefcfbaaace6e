"""How well the server's rate budgets use an upstream limit without exceeding it.

    uv run python -m bench.rate_budgets [--calls 100] [--limit 10] [--window 2] [--processes 3] [--scenarios a,b,c]

Each scenario serves a fresh sandbox (a fresh limiter allowing `limit` Cometly get-contact requests per
sliding `window` seconds) on 127.0.0.1, starts `python -m server serve` processes over stdio with the same
budget, waits until every one is connected, then fires all get_contact calls at once:

- a: one process, `calls` calls;
- b: `processes` processes sharing their budget through a Redis started here, `calls` calls each;
- c: the same processes with in-process budgets only, to show what Redis prevents.

The sandbox side records the receive time and status of every get-contact request. Exits 1 if a scenario
misses its target (a: sustained >= 0.97, b: sustained >= 0.95; both with no 429, peak <= 1 and no failed
call); c has no target.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import anyio
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import TextContent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.tables import print_table
from contacts_mcp.server.sandbox import SANDBOX_KEYS, create_app, sandbox_of
from contacts_mcp.server.sandbox.store import ListQuery

GET_CONTACT = re.compile(r"/cometly/public-api/v1/contacts/[^/]+")
ERROR_KIND = re.compile(r"\[([a-z_]+)\]")
OWN_PREFIXES = ("COMETLY_", "HIGHLEVEL_", "CLEMTA_", "CONTACTS_MCP_")


@dataclass(frozen=True)
class Scenario:
    """One way of running the servers, and the sustained utilisation it must reach (None: no target)."""

    name: str
    title: str
    processes: int
    redis: bool
    target: float | None


@dataclass
class Outcome:
    """What one scenario measured on both sides."""

    scenario: Scenario
    latencies: list[float] = field(default_factory=list[float])
    errors: Counter[str] = field(default_factory=Counter[str])
    upstream: list[tuple[float, int]] = field(default_factory=list[tuple[float, int]])
    """(receive time, status) of every get-contact request the sandbox saw, in arrival order."""
    redis: tuple[int, int] | None = None
    """Commands Redis ran during the scenario, and how many were script calls (None: no Redis)."""


class Recorder:
    """ASGI middleware noting when each get-contact request arrived and what status it got."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[float, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not GET_CONTACT.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        received = time.monotonic()

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.requests.append((received, int(message["status"])))
            await send(message)

        await self.app(scope, receive, record)


def free_port() -> int:
    """A loopback port nobody listens on right now (a process started next can take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncGenerator[str]:
    """Serve `app` with uvicorn in a thread on a free loopback port; yield its root URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await anyio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await anyio.to_thread.run_sync(thread.join, 10)
        sock.close()


@asynccontextmanager
async def redis_server(workdir: Path) -> AsyncGenerator[int]:
    """Run a throwaway, persistence-free redis-server on a free loopback port; yield the port."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with (workdir / "redis.log").open("w", encoding="utf-8") as log:
        process = await anyio.open_process([*command, "--dir", str(workdir)], stdout=log, stderr=log)
    try:
        with anyio.fail_after(10):
            while (await redis_cli(port, "ping", check=False)) != "PONG":  # noqa: ASYNC110 - no event to await
                await anyio.sleep(0.05)
        yield port
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def redis_cli(port: int, *command: str, check: bool = True) -> str:
    """Run one redis-cli command against the bench's Redis and return its output, stripped."""
    result = await anyio.run_process(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command], check=check)
    return result.stdout.decode().strip()


def server_env(upstream: str, args: argparse.Namespace, redis_port: int | None) -> dict[str, str]:
    """The machine's environment without any contacts-mcp setting, plus this run's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(OWN_PREFIXES)}
    env |= {
        "COMETLY_API_KEY": SANDBOX_KEYS["cometly"],
        "COMETLY_BASE_URL": f"{upstream}/cometly/public-api/v1",
        "CONTACTS_MCP_RATE_LIMITS": f"cometly.get_contact={args.limit}/{args.window:g}",
        "CONTACTS_MCP_MAX_WAIT_SECONDS": "600",
        "CONTACTS_MCP_LOG_LEVEL": "WARNING",
    }
    if redis_port is not None:
        env["CONTACTS_MCP_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    return env


class BenchFailed(Exception):
    """The bench could not run a scenario at all (as opposed to the server doing badly in it)."""


async def connect(stack: AsyncExitStack, env: dict[str, str], log_path: Path) -> Client:
    """Start one `python -m server serve` over stdio, its stderr in `log_path`, and connect to it.

    Raises:
        BenchFailed: The server did not start; the message holds the end of its log.
    """
    log = stack.enter_context(log_path.open("w", encoding="utf-8"))
    # cwd is the temp dir, so a developer's .env cannot change the server's settings.
    params = StdioServerParameters(command=sys.executable, args=["-m", "server", "serve"], env=env, cwd=log_path.parent)
    try:
        return await stack.enter_async_context(Client(stdio_client(params, errlog=log)))
    except Exception as exc:
        log.flush()
        tail = (await anyio.Path(log_path).read_text(encoding="utf-8"))[-3000:]
        raise BenchFailed(f"the server did not start ({type(exc).__name__}); the end of its log:\n{tail}") from exc


async def call(client: Client, contact_id: str, outcome: Outcome) -> None:
    """One get_contact call, timed from issue to result; a failure is counted by its error class."""
    start = time.monotonic()
    try:
        result = await client.call_tool("get_contact", {"contact_id": contact_id, "provider": "cometly"})
    except Exception as exc:  # a broken connection is a result of the run too, not a reason to stop it
        outcome.errors[f"exception:{type(exc).__name__}"] += 1
    else:
        if result.is_error:
            text = next((block.text for block in result.content if isinstance(block, TextContent)), "")
            kind = ERROR_KIND.match(text)
            outcome.errors[kind.group(1) if kind else "unclassified"] += 1
    outcome.latencies.append(time.monotonic() - start)


async def run_scenario(scenario: Scenario, args: argparse.Namespace, workdir: Path, redis_port: int | None) -> Outcome:
    """Run one scenario against a fresh sandbox and return what both sides saw."""
    total = args.calls * scenario.processes
    port = redis_port if scenario.redis else None
    app = create_app(contacts=max(500, total), rate_limits={"cometly.get_contact": (args.limit, args.window)})
    store = sandbox_of(app).store
    # Distinct real ids, so every call is a plain 200 and no process could answer from another's work.
    query = ListQuery(start=0, end=2**62, conditions=(), today=date.today(), limit=total)
    ids = [str(contact.id) for contact in store.list_contacts(query)][:total]
    recorder = Recorder(app)
    outcome = Outcome(scenario)
    # One deadline for the whole scenario: a client's exit must sit inside the same cancel scope as its entry.
    deadline = 30 + 30 * scenario.processes + 3 * (math.ceil(total / args.limit) + 1) * (args.window + 1)
    try:
        with anyio.fail_after(deadline):
            async with serve(recorder) as upstream, AsyncExitStack() as stack:
                if port is not None:
                    await redis_cli(port, "flushall")
                    await redis_cli(port, "config", "resetstat")
                env = server_env(upstream, args, port)
                clients = [
                    await connect(stack, env, workdir / f"{scenario.name}-{index + 1}.log")
                    for index in range(scenario.processes)
                ]
                async with anyio.create_task_group() as group:
                    for index, client in enumerate(clients):
                        for contact_id in ids[index * args.calls : (index + 1) * args.calls]:
                            group.start_soon(call, client, contact_id, outcome)
                if port is not None:
                    stats = await redis_cli(port, "info", "all")
                    total = re.findall(r"^total_commands_processed:(\d+)", stats, re.MULTILINE)
                    scripts = re.findall(r"^cmdstat_(?:evalsha|eval|fcall)(?:_ro)?:calls=(\d+)", stats, re.MULTILINE)
                    outcome.redis = (sum(map(int, total)), sum(map(int, scripts)))
    finally:
        store.close()
    outcome.upstream = sorted(recorder.requests)
    return outcome


def peak(times: Sequence[float], window: float) -> int:
    """The most requests with receive times in any half-open window (t, t + window]."""
    most, first = 0, 0
    for last, now in enumerate(times):
        while times[first] <= now - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def sustained(times: Sequence[float], limit: int, window: float) -> float:
    """Requests per window achieved after the free first burst of `limit`, as a share of `limit`."""
    if len(times) <= limit or times[-1] <= times[0]:
        return math.nan
    return (len(times) - limit) * window / (times[-1] - times[0]) / limit


@dataclass(frozen=True)
class Row:
    """One line of the table, and whether the scenario met its target (None: it has none)."""

    cells: tuple[str, ...]
    passed: bool | None
    note: str | None = None


def summarise(outcome: Outcome, args: argparse.Namespace) -> Row:
    """Turn a scenario's measurements into a table row and a verdict."""
    scenario = outcome.scenario
    calls = args.calls * scenario.processes
    failed = sum(outcome.errors.values())
    allowed = [at for at, status in outcome.upstream if status != 429]
    refused = len(outcome.upstream) - len(allowed)
    top = peak(allowed, args.window) / args.limit
    share = sustained(allowed, args.limit, args.window)
    latencies = sorted(outcome.latencies)
    p50, p95 = (statistics.quantiles(latencies, n=20)[i] for i in (9, 18)) if len(latencies) > 1 else (math.nan,) * 2
    passed = (
        None if scenario.target is None else share >= scenario.target and refused == 0 and top <= 1.0 and failed == 0
    )
    errors = ", ".join(f"{kind}:{count}" for kind, count in outcome.errors.most_common()) or "-"
    verdict = {None: "(no target)", True: "PASS", False: "FAIL"}[passed]
    cells = (
        f"{scenario.name} {scenario.title}",
        str(scenario.processes),
        f"{calls - failed}/{failed}",
        errors,
        str(len(outcome.upstream)),
        str(refused),
        f"{top:.2f}",
        f"{share:.3f}",
        f"{p50:.2f}",
        f"{p95:.2f}",
        verdict,
    )
    note = None
    if outcome.redis is not None:
        commands, scripts = outcome.redis
        note = f"{scenario.name}: Redis ran {commands} commands, {scripts} of them script calls"
        if commands < len(outcome.upstream):  # fewer than one per request: the budget is not kept in Redis
            note += ", too few to hold the budget there (does the server read CONTACTS_MCP_REDIS_URL?)"
    return Row(cells, passed, note)


HEADER = ("scenario", "procs", "ok/failed", "errors", "upstream", "429s", "peak", "sustained", "p50 s", "p95 s", "")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; `--scenarios` is checked against the known names."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.rate_budgets", description="How well the rate budgets use an upstream limit."
    )
    parser.add_argument("--calls", type=int, default=100, help="get_contact calls per server process (100)")
    parser.add_argument("--limit", type=int, default=10, help="requests the upstream allows per window (10)")
    parser.add_argument("--window", type=float, default=2.0, help="the upstream's sliding window in seconds (2)")
    parser.add_argument("--processes", type=int, default=3, help="server processes in scenarios b and c (3)")
    parser.add_argument("--scenarios", default="a,b,c", help="which scenarios to run, comma-separated (a,b,c)")
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if not args.scenarios or set(args.scenarios) - {"a", "b", "c"}:
        parser.error("--scenarios takes a comma-separated subset of a,b,c")
    if args.calls < 1 or args.limit < 1 or args.window <= 0 or args.processes < 1:
        parser.error("--calls, --limit, --processes and --window must be positive")
    return args


async def run(args: argparse.Namespace) -> int:
    """Run the chosen scenarios, print the table, and return the exit status."""
    known = {
        "a": Scenario("a", "one process", 1, redis=False, target=0.97),
        "b": Scenario("b", "shared via Redis", args.processes, redis=True, target=0.95),
        "c": Scenario("c", "in-process budgets", args.processes, redis=False, target=None),
    }
    scenarios = [known[name] for name in args.scenarios]
    print(f"command: {shlex.join([Path(sys.executable).name, '-m', 'bench.rate_budgets', *sys.argv[1:]])}")
    print(
        f"parameters: upstream limit {args.limit} per sliding {args.window:g} s; {args.calls} calls per process; "
        f"{args.processes} processes in b and c; scenarios {','.join(args.scenarios)}"
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-rate-budgets-") as tmp:
        workdir = Path(tmp)
        async with AsyncExitStack() as stack:
            redis_port = await stack.enter_async_context(redis_server(workdir)) if "b" in args.scenarios else None
            for scenario in scenarios:
                print(f"running {scenario.name} ({scenario.title})...", flush=True)
                try:
                    outcome = await run_scenario(scenario, args, workdir, redis_port)
                except (BenchFailed, TimeoutError) as exc:
                    reason = str(exc) or "it did not finish in time"
                    print(f"scenario {scenario.name} could not run: {reason}", file=sys.stderr)
                    return 2
                rows.append(summarise(outcome, args))
    print()
    print_table(HEADER, [row.cells for row in rows])
    for row in rows:
        if row.note:
            print(row.note)
    print(
        "\npeak: most non-429 requests in any window / limit (must be <= 1); sustained: requests per window after "
        "the first free burst / limit; latency: issue to result, all calls."
    )
    return 1 if any(row.passed is False for row in rows) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the benchmark; 0 when every scenario with a target met it."""
    return anyio.run(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
