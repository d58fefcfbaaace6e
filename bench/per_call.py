"""Per-call overhead: `get_contact` over stdio against the sandbox, beside a raw GET of the same URL.

    uv run python -m bench.per_call [--calls 500] [--warmup 50] [--mode auto|legacy] [--json PATH]
    uv run python -m bench.per_call --calls 200 --profile /tmp/ours.prof

One process drives three arms against one sandbox (`contacts-mcp sandbox`, its rate limits raised far
above this load) on a free loopback port:

- raw: an `httpx.AsyncClient` with keep-alive GETs the URL, query and headers our server sends for
  `get_contact` (`server/providers/cometly.py`);
- floor: a minimal `MCPServer` over stdio (this module, `--floor-server URL`) whose one tool does that
  same GET with a kept-alive client and returns the JSON as a dict: the SDK, stdio and the client's
  result validation, without any of our code;
- ours: `contacts-mcp serve` (the installed entry point) over stdio, Cometly pointed at the sandbox,
  budgets enabled but roomy (`CONTACTS_MCP_RATE_LIMITS=cometly.get_contact=1000000/60`), so the
  budget code runs on every call.

Each arm is warmed up, then every round calls each arm once, in an order that rotates from round to
round, over a few real contact ids, each call timed with `time.perf_counter`. Ours minus floor is what
our code costs; floor minus raw is what the SDK and stdio cost any server. The target is
p50(ours) - p50(raw) <= 2 ms. The differences are also given as the median of the round-by-round
differences, which load that drifts during the run moves less. Beside the latencies: the client's and
each server's CPU time per call (`time.process_time`, /proc), and the client-side cost of one result
(parsing its JSON-RPC line, validating it against the tool's output schema), timed apart.

`--profile PATH` then starts a second pair of servers, ours (`server.cli.main`, what the entry point
runs) and the floor, each under a cProfile profiler of its event loop's thread that a signal switches
on after the warm-up and off after `--calls` interleaved calls (ours to PATH, the floor to PATH.floor).
It prints both servers' busy time per call and the functions of `server/` and `tools/` with the most
cumulative time per call. cProfile slows Python code down several times, so these rank, they do not
replace the latencies above.

Exits 0 when the target is met, 1 when not, 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import re
import shlex
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, cast

import anyio
import httpx
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent

from bench.http_load import BenchFailed, Child, child, clean_environment, cpu_seconds, reason
from bench.tables import print_table
from contacts_mcp import server, tools
from contacts_mcp.server.cli import main as contacts_mcp
from contacts_mcp.server.sandbox import SANDBOX_KEYS, sandbox_environment

TARGET_MS = 2.0
"""p50(ours) - p50(raw) must be at most this."""
FLOOR_GAP_MS = 1.0
"""Beyond this p50(ours) - p50(floor), the report suggests `--profile`."""
ROOMY = "1000000/60"
"""A rate far above what this bench sends: the budget code runs, but never waits."""
QUERY = (
    ("include_comet_tokens", "0"),
    ("include_events", "0"),
    ("hide_direct_touchpoints", "1"),
    ("use_custom_field_labels", "1"),
    ("include_browsing_session_data", "0"),
)
"""What our server sends for `get_contact` with its defaults (`CometlyProvider.get_contact`)."""
HEADERS = {"Accept": "application/json", "User-Agent": "contacts-mcp"}
"""Our upstream client's default headers (`server/http.py`), beside the bearer key."""
TIMEOUT = httpx.Timeout(20.0)
CALL_SECONDS = 30.0
"""The longest one call may take before the bench gives up."""
REPEATS = 200
"""How often the client-side parse and validation of one result are repeated to time them."""
ENTRY = Path(sys.executable).parent / "contacts-mcp"
"""Our server's installed entry point, in this environment."""
REPO = Path(__file__).resolve().parent.parent
OUR_CODE = (Path(server.__file__).resolve().parent, Path(tools.__file__).resolve().parent)
_SANDBOX_ANNOUNCE = re.compile(r"contacts-mcp sandbox on (http://\S+)")


@dataclass
class Arm:
    """One way of getting a contact, and what it measured."""

    name: str
    call: Callable[[str], Awaitable[None]]
    pid: int | None = None
    samples: list[float] = field(default_factory=list[float])
    """Seconds per measured call."""
    cpu_seconds: float | None = None
    """The server process's CPU time over the measured calls (None: no server process, or no /proc)."""
    client_cpu_seconds: float = 0.0
    """This process's CPU time (`time.process_time`) over the measured calls, all threads."""
    result_bytes: int | None = None
    """The size of one result: the JSON-RPC response line an MCP arm's client reads, or the raw body."""
    parse_ms: float | None = None
    """Client side: parsing one result's JSON-RPC line into a `CallToolResult`, median."""
    validate_ms: float | None = None
    """Client side: validating one result's structured content against the tool's output schema, median."""

    def quantile(self, q: int) -> float:
        """The `q`-th percentile (1-99) of the measured calls, in ms."""
        if len(self.samples) < 2:
            return self.samples[0] * 1000 if self.samples else float("nan")
        return statistics.quantiles(self.samples, n=100)[q - 1] * 1000

    @property
    def mean(self) -> float:
        """The mean of the measured calls, in ms."""
        return statistics.fmean(self.samples) * 1000

    @property
    def cpu_ms_per_call(self) -> float | None:
        """The server's CPU time per measured call, in ms."""
        return None if self.cpu_seconds is None else self.cpu_seconds / len(self.samples) * 1000

    @property
    def client_cpu_ms_per_call(self) -> float:
        """The client's CPU time per measured call, in ms."""
        return self.client_cpu_seconds / len(self.samples) * 1000

    def as_json(self) -> dict[str, Any]:
        """The numbers, for `--json`."""
        return {
            "calls": len(self.samples),
            "p50_ms": self.quantile(50),
            "p95_ms": self.quantile(95),
            "mean_ms": self.mean,
            "client_cpu_ms_per_call": self.client_cpu_ms_per_call,
            "server_cpu_ms_per_call": self.cpu_ms_per_call,
            "result_bytes": self.result_bytes,
            "client_parse_ms": self.parse_ms,
            "client_validate_ms": self.validate_ms,
        }


@dataclass(frozen=True)
class Hotspot:
    """One function of our code in the server's profile."""

    function: str
    calls: str
    tottime_ms: float
    """Time in the function itself per tool call."""
    cumtime_ms: float
    """Time in it and what it called per tool call."""


@dataclass(frozen=True)
class Profile:
    """What cProfile saw in our server: its busy time, our code's share, and our top functions; all per call."""

    calls: int
    busy_ms: float
    """Everything the profile counted per tool call, less the event loop's idle wait in `select`."""
    our_self_ms: float
    """The time spent in the bodies of functions in `server/` and `tools/` per tool call."""
    hotspots: list[Hotspot]


@dataclass
class Measured:
    """One run: the arms, the sandbox's CPU time over the measured calls, and the profile if one was asked for."""

    arms: list[Arm]
    sandbox_cpu_seconds: float | None
    profile: Profile | None = None
    """Ours under cProfile, when asked for."""
    floor_profile: Profile | None = None
    """The floor under cProfile, beside it."""


# The floor server: run as `python -m bench.per_call --floor-server URL` in a child process.


def floor_server(base_url: str, key: str) -> MCPServer:
    """A minimal MCPServer whose one tool GETs a Cometly contact with a kept-alive client: no code of ours."""

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncGenerator[httpx.AsyncClient]:
        headers = {**HEADERS, "Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=TIMEOUT) as http:
            yield http

    floor = MCPServer("per-call-floor", version="0.0.0", lifespan=lifespan)

    @floor.tool()
    async def get_contact(ctx: Context[httpx.AsyncClient, Any], contact_id: str) -> dict[str, Any]:
        """The contact's JSON as the upstream sends it."""
        http = ctx.request_context.lifespan_context
        response = await http.get(f"/contacts/{contact_id}", params=QUERY)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    return floor


def serve_floor(base_url: str) -> None:
    """Serve the floor over stdio until stdin closes; the key comes from `COMETLY_API_KEY`."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    floor_server(base_url, os.environ["COMETLY_API_KEY"]).run("stdio")


def profiled(path: Path, serve: Callable[[], int | None]) -> int | None:
    """Run `serve` with a profiler of this (the event loop's) thread that SIGUSR1 starts and SIGUSR2 stops.

    On SIGUSR2 the stats go to `path`, whole (written aside, then renamed), so the bench can profile
    the measured calls only, not the start-up or the warm-up.
    """
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        partial = path.with_name(path.name + ".partial")
        profiler.dump_stats(partial)
        partial.replace(path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return serve()


# The bench.


def children() -> set[int]:
    """The processes this one started that are still there, from /proc (empty without /proc)."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


async def stdio_session(
    stack: AsyncExitStack, command: Sequence[str], env: dict[str, str], cwd: Path, errlog: TextIO, mode: str
) -> tuple[Client, int | None]:
    """An MCP session over stdio with `command`, lasting as long as `stack`, and the process's pid.

    Raises:
        BenchFailed: It did not connect.
    """
    before = children()
    params = StdioServerParameters(command=command[0], args=list(command[1:]), env=env, cwd=cwd)
    # Each request, the connecting ones too, is bounded by the client's read timeout: a cancel scope
    # around entering would wrap the SDK's task groups and cannot be exited from here.
    connection = Client(stdio_client(params, errlog=errlog), mode=mode, read_timeout_seconds=CALL_SECONDS)
    try:
        client = await stack.enter_async_context(connection)
        await client.list_tools()
    except Exception as exc:
        raise BenchFailed(f"{shlex.join(command)} did not connect: {reason(exc)}") from exc
    started = children() - before
    return client, started.pop() if len(started) == 1 else None


def tool_call(client: Client, into: list[CallToolResult]) -> Callable[[str], Awaitable[None]]:
    """A get_contact call through `client` that fails the bench on an error result; keeps the last result."""

    async def call(contact_id: str) -> None:
        result = await client.call_tool("get_contact", {"contact_id": contact_id})
        if result.is_error:
            text = " ".join(block.text for block in result.content if isinstance(block, TextContent))
            raise BenchFailed(f"get_contact {contact_id} failed: {text[:300]}")
        into[:] = [result]

    return call


def raw_call(http: httpx.AsyncClient, into: list[bytes]) -> Callable[[str], Awaitable[None]]:
    """The GET our server sends for get_contact, with keep-alive; keeps the last body."""

    async def call(contact_id: str) -> None:
        response = await http.get(f"/contacts/{contact_id}", params=QUERY)
        if response.status_code != 200:
            raise BenchFailed(f"GET /contacts/{contact_id} answered {response.status_code}: {response.text[:300]}")
        into[:] = [response.content]

    return call


async def contact_ids(http: httpx.AsyncClient, count: int) -> list[str]:
    """The ids of the sandbox's `count` newest contacts.

    Raises:
        BenchFailed: The sandbox listed none.
    """
    params = {"start_date": "2000-01-01 00:00:00", "end_date": "2100-01-01 00:00:00", "per_page": str(count)}
    response = await http.get("/contacts", params=params)
    ids = [str(item["id"]) for item in response.json().get("data", [])] if response.status_code == 200 else []
    if not ids:
        raise BenchFailed(f"the sandbox listed no contacts: {response.status_code} {response.text[:300]}")
    return ids


def median_ms(action: Callable[[], object], repeats: int = REPEATS) -> float:
    """The median time of `action` in ms, over `repeats` runs."""
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def client_costs(arm: Arm, client: Client, result: CallToolResult) -> None:
    """Time what the client does with one result after it arrives: parse its JSON-RPC line, then validate it.

    The line is rebuilt from the result as the server would send it; validation is the SDK's own
    `validate_tool_result` (a compiled jsonschema validator of the tool's output schema, cached).
    """
    payload = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "result": payload}, ensure_ascii=False)
    arm.result_bytes = len(line.encode())

    def parse() -> None:
        message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        assert isinstance(message, mcp_types.JSONRPCResponse)
        CallToolResult.model_validate(message.result, by_name=False)

    arm.parse_ms = median_ms(parse)
    times: list[float] = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        await client.session.validate_tool_result("get_contact", result)
        times.append(time.perf_counter() - start)
    arm.validate_ms = statistics.median(times) * 1000


async def measure(arms: Sequence[Arm], ids: Sequence[str], warmup: int, calls: int, sandbox: int) -> float | None:
    """Warm every arm up, then `calls` rounds of one call per arm, the order rotating each round.

    Returns the sandbox's CPU time over the measured rounds (None without /proc).
    """
    with anyio.fail_after(CALL_SECONDS * (warmup + calls) * len(arms)):
        for index in range(warmup):
            for arm in arms:
                await arm.call(ids[index % len(ids)])
        cpu_before = [cpu_seconds(arm.pid) for arm in arms]
        sandbox_before = cpu_seconds(sandbox)
        for index in range(calls):
            contact_id = ids[index % len(ids)]
            shift = index % len(arms)
            for arm in (*arms[shift:], *arms[:shift]):
                cpu = time.process_time()
                start = time.perf_counter()
                await arm.call(contact_id)
                arm.samples.append(time.perf_counter() - start)
                arm.client_cpu_seconds += time.process_time() - cpu
        for arm, before in zip(arms, cpu_before, strict=True):
            after = cpu_seconds(arm.pid)
            if before is not None and after is not None:
                arm.cpu_seconds = after - before
        sandbox_after = cpu_seconds(sandbox)
    return None if sandbox_before is None or sandbox_after is None else sandbox_after - sandbox_before


def our_environment(sandbox: str) -> dict[str, str]:
    """Our server's settings: Cometly at the sandbox, quiet logs, its get_contact budget on but roomy."""
    env = sandbox_environment(sandbox)
    return {
        **clean_environment(),
        **{name: value for name, value in env.items() if name.startswith("COMETLY_")},
        "CONTACTS_MCP_LOG_LEVEL": "WARNING",
        "CONTACTS_MCP_RATE_LIMITS": f"cometly.get_contact={ROOMY}",
    }


@asynccontextmanager
async def sandbox_process() -> AsyncGenerator[Child]:
    """`contacts-mcp sandbox` on a free loopback port, its Cometly limits raised; yields it with its root URL."""
    limits = ["--rate-limit", f"cometly.get_contact={ROOMY}", "--rate-limit", f"cometly.list_contacts={ROOMY}"]
    command = [str(ENTRY), "sandbox", "--port", "0", *limits]
    async with child("sandbox", command, clean_environment(), _SANDBOX_ANNOUNCE) as sandbox:
        yield sandbox


async def bench(args: argparse.Namespace, workdir: Path) -> Measured:
    """Start the sandbox and both servers, measure the three arms, and profile ours if asked.

    Raises:
        BenchFailed: A process did not start, a session did not connect, or a call failed.
    """
    async with sandbox_process() as sandbox, AsyncExitStack() as stack:
        base_url = sandbox_environment(sandbox.address)["COMETLY_BASE_URL"]
        key = SANDBOX_KEYS["cometly"]
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, headers={**HEADERS, "Authorization": f"Bearer {key}"}, timeout=TIMEOUT)
        )
        ids = await contact_ids(http, args.ids)
        errlog = stack.enter_context((workdir / "servers.log").open("w", encoding="utf-8"))
        env = our_environment(sandbox.address)
        ours, ours_pid = await stdio_session(stack, [str(ENTRY), "serve"], env, workdir, errlog, args.mode)
        floor_env = {**clean_environment(), "COMETLY_API_KEY": key}
        floor_command = [sys.executable, "-m", "bench.per_call", "--floor-server", base_url]
        floor, floor_pid = await stdio_session(stack, floor_command, floor_env, REPO, errlog, args.mode)
        bodies: list[bytes] = []
        ours_results: list[CallToolResult] = []
        floor_results: list[CallToolResult] = []
        arms = [
            Arm("raw", raw_call(http, bodies)),
            Arm("floor", tool_call(floor, floor_results), pid=floor_pid),
            Arm("ours", tool_call(ours, ours_results), pid=ours_pid),
        ]
        try:
            measured = Measured(arms, await measure(arms, ids, args.warmup, args.calls, sandbox.pid))
        except TimeoutError as exc:
            raise BenchFailed("the calls took too long") from exc
        arms[0].result_bytes = len(bodies[0])
        await client_costs(arms[1], floor, floor_results[0])
        await client_costs(arms[2], ours, ours_results[0])
        if args.profile is not None:
            measured.profile, measured.floor_profile = await profile(
                args, (env, floor_env), base_url, workdir, errlog, ids
            )
    return measured


async def profile(
    args: argparse.Namespace,
    envs: tuple[dict[str, str], dict[str, str]],
    base_url: str,
    workdir: Path,
    errlog: TextIO,
    ids: Sequence[str],
) -> tuple[Profile, Profile]:
    """Profile a second pair of servers, ours and the floor, over `--calls` interleaved calls after the warm-up.

    Each runs under `profiled` (this module with `--our-server` or `--floor-server`, `--profiled
    PATH`): SIGUSR1 after the warm-up starts its profiler, SIGUSR2 after the calls writes the stats,
    ours to `--profile`, the floor's beside it with `.floor` appended.

    Raises:
        BenchFailed: A server did not connect or wrote no profile, or a call failed.
    """
    paths = (anyio.Path(args.profile), anyio.Path(f"{args.profile}.floor"))
    roles = (["--our-server"], ["--floor-server", base_url])
    sessions: list[tuple[Callable[[str], Awaitable[None]], int]] = []
    async with AsyncExitStack() as stack:
        for path, role, env in zip(paths, roles, envs, strict=True):
            await path.unlink(missing_ok=True)
            command = [sys.executable, "-m", "bench.per_call", *role, "--profiled", str(path)]
            # cwd stays the empty work directory (no .env); the bench package comes from PYTHONPATH.
            client, pid = await stdio_session(
                stack, command, env | {"PYTHONPATH": str(REPO)}, workdir, errlog, args.mode
            )
            if pid is None:
                raise BenchFailed(f"could not tell which process is {shlex.join(command)}")
            sessions.append((tool_call(client, []), pid))
        with anyio.fail_after(CALL_SECONDS * (args.warmup + args.calls) * len(sessions)):
            for index in range(args.warmup):
                for call, _ in sessions:
                    await call(ids[index % len(ids)])
            for _, pid in sessions:
                os.kill(pid, signal.SIGUSR1)
            for index in range(args.calls):
                shift = index % len(sessions)
                for call, _ in (*sessions[shift:], *sessions[:shift]):
                    await call(ids[index % len(ids)])
            for _, pid in sessions:
                os.kill(pid, signal.SIGUSR2)
        for path in paths:
            if not await written(path):
                raise BenchFailed(f"a profiled server wrote no profile to {path}")
    ours, floor = (read_profile(Path(path), args.calls) for path in paths)
    return ours, floor


async def written(path: anyio.Path, seconds: float = 30.0) -> bool:
    """Whether `path` exists within `seconds`: the profile a signal handler writes in its own time."""
    for _ in range(int(seconds / 0.05)):
        if await path.exists():
            return True
        await anyio.sleep(0.05)
    return await path.exists()


def read_profile(path: Path, calls: int, top: int = 15) -> Profile:
    """Our server's profile per tool call, with the `top` functions of `server/` and `tools/` by cumulative time.

    Only functions that ran at least once per tool call are ranked, which leaves out start-up
    (`build_server`, opening the clients). Coroutines count one call per resumption, and their time
    is only the time they ran, not the time they waited.
    """
    # `Stats.stats` is not in typeshed; `get_stats_profile()` keys functions by bare name, so
    # `get_contact` of the tool and of the provider would collide there.
    stats = cast(
        dict[tuple[str, int, str], tuple[int, int, float, float, object]], vars(pstats.Stats(str(path)))["stats"]
    )
    total = sum(tottime for _, _, tottime, _, _ in stats.values())
    idle = sum(entry[2] for (_, _, name), entry in stats.items() if "select.epoll" in name or "select.select" in name)
    ours: list[Hotspot] = []
    our_self = 0.0
    for (file_name, line, name), (primitive, ncalls, tottime, cumtime, _) in stats.items():
        file = Path(file_name)
        root = next((root for root in OUR_CODE if file.is_relative_to(root)), None)
        if root is None:
            continue
        our_self += tottime
        if ncalls >= calls:
            where = f"{root.name}/{file.relative_to(root)}:{line} {name}"
            count = str(ncalls) if ncalls == primitive else f"{ncalls}/{primitive}"
            ours.append(Hotspot(where, count, tottime / calls * 1e3, cumtime / calls * 1e3))
    ours.sort(key=lambda spot: spot.cumtime_ms, reverse=True)
    return Profile(calls, (total - idle) / calls * 1e3, our_self / calls * 1e3, ours[:top])


def ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def paired_median(a: Arm, b: Arm) -> float:
    """The median of `a` minus `b` round by round, in ms: less moved by load that drifts during the run."""
    return statistics.median(x - y for x, y in zip(a.samples, b.samples, strict=True)) * 1000


def print_report(measured: Measured) -> tuple[float, float]:
    """The tables; returns p50(ours) - p50(raw) and p50(ours) - p50(floor), in ms."""
    arms = measured.arms
    by_name = {arm.name: arm for arm in arms}
    print_table(
        ("arm", "calls", "p50 ms", "p95 ms", "mean ms"),
        [(arm.name, str(len(arm.samples)), ms(arm.quantile(50)), ms(arm.quantile(95)), ms(arm.mean)) for arm in arms],
    )
    print()
    pairs = (("ours - raw", "ours", "raw"), ("ours - floor", "ours", "floor"), ("floor - raw", "floor", "raw"))
    rows = [
        (
            label,
            ms(by_name[a].quantile(50) - by_name[b].quantile(50)),
            ms(by_name[a].quantile(95) - by_name[b].quantile(95)),
            ms(by_name[a].mean - by_name[b].mean),
            ms(paired_median(by_name[a], by_name[b])),
        )
        for label, a, b in pairs
    ]
    print_table(("difference", "p50 ms", "p95 ms", "mean ms", "paired median ms"), rows)
    print("\nwhere a call's time goes (CPU per measured call; parse and check: one result, timed apart):")
    print_table(
        ("arm", "client CPU ms", "server CPU ms", "result bytes", "client parse ms", "client check ms"),
        [
            (
                arm.name,
                ms(arm.client_cpu_ms_per_call),
                ms(arm.cpu_ms_per_call),
                "-" if arm.result_bytes is None else f"{arm.result_bytes:,}",
                ms(arm.parse_ms, 3),
                ms(arm.validate_ms, 3),
            )
            for arm in arms
        ],
    )
    if measured.sandbox_cpu_seconds is not None:
        requests = sum(len(arm.samples) for arm in arms)
        print(f"sandbox CPU per request (all arms): {ms(measured.sandbox_cpu_seconds / requests * 1e3)} ms")
    profile, floor_profile = measured.profile, measured.floor_profile
    if profile is not None and floor_profile is not None:
        print(
            f"\nunder cProfile, {profile.calls} calls each after the warm-up (the event loop's thread; times inflated "
            f"by the profiler):\nbusy per call: ours {ms(profile.busy_ms)} ms, floor {ms(floor_profile.busy_ms)} ms; "
            f"in the bodies of server/ and tools/ functions: {ms(profile.our_self_ms)} ms.\n"
            "Our functions that run at least once per call, by cumulative time per call (coroutines: time running, "
            "not waiting; ncalls counts resumptions):"
        )
        print_table(
            ("function", "ncalls", "tottime ms", "cumtime ms"),
            [(spot.function, spot.calls, ms(spot.tottime_ms, 3), ms(spot.cumtime_ms, 3)) for spot in profile.hotspots],
        )
    ours, raw, floor = by_name["ours"], by_name["raw"], by_name["floor"]
    return ours.quantile(50) - raw.quantile(50), ours.quantile(50) - floor.quantile(50)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.per_call", description="Per-call overhead of get_contact over stdio against a raw GET."
    )
    parser.add_argument("--calls", type=int, default=500, help="measured rounds, one call per arm each (500)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured calls per arm first (50)")
    parser.add_argument("--ids", type=int, default=8, help="how many real contact ids the rounds go over (8)")
    parser.add_argument(
        "--mode",
        choices=("auto", "legacy"),
        default="auto",
        help="the client's protocol negotiation for both MCP arms: auto (the SDK's default) or legacy (handshake)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers to PATH as JSON")
    parser.add_argument(
        "--profile", type=Path, metavar="PATH", help="then profile our server under cProfile, stats to PATH"
    )
    # How the bench runs its own children: the floor, and (under --profiled) either server.
    parser.add_argument("--floor-server", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--our-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profiled", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls < 2 or args.warmup < 0 or args.ids < 1:
        parser.error("--calls must be at least 2, --warmup at least 0 and --ids at least 1")
    if args.profile is not None:
        args.profile = args.profile.absolute()  # the servers run in another directory
    return args


def leaf(exc: BaseException) -> BaseException:
    """The first exception inside any exception groups: the SDK's task groups wrap what a session raises."""
    while isinstance(exc, BaseExceptionGroup):
        exc = cast("BaseExceptionGroup[BaseException]", exc).exceptions[0]
    return exc


async def run(args: argparse.Namespace) -> int:
    """Run the bench, print the report; return the exit status."""
    print(f"command: {shlex.join([Path(sys.executable).name, '-m', 'bench.per_call', *sys.argv[1:]])}")
    with tempfile.TemporaryDirectory(prefix="bench-per-call-") as workdir:
        try:
            measured = await bench(args, Path(workdir))
        except Exception as exc:
            if not isinstance(failure := leaf(exc), BenchFailed | OSError):  # OSError: a process did not start
                raise
            log = Path(workdir) / "servers.log"
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
            print(f"the bench could not run: {failure}\n{tail}", file=sys.stderr)
            return 2
    print()
    over_raw, over_floor = print_report(measured)
    passed = over_raw <= TARGET_MS
    by_name = {arm.name: arm for arm in measured.arms}
    if args.json is not None:
        report = {
            "calls": args.calls,
            "warmup": args.warmup,
            "mode": args.mode,
            "arms": {arm.name: arm.as_json() for arm in measured.arms},
            "p50_ours_minus_raw_ms": over_raw,
            "p50_ours_minus_floor_ms": over_floor,
            "paired_median_ms": {
                "ours_minus_raw": paired_median(by_name["ours"], by_name["raw"]),
                "ours_minus_floor": paired_median(by_name["ours"], by_name["floor"]),
                "floor_minus_raw": paired_median(by_name["floor"], by_name["raw"]),
            },
            "target_ms": TARGET_MS,
            "passed": passed,
            "sandbox_cpu_seconds": measured.sandbox_cpu_seconds,
            "profile": None if measured.profile is None else asdict(measured.profile),
            "floor_profile": None if measured.floor_profile is None else asdict(measured.floor_profile),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"\n{'PASS' if passed else 'FAIL'}: p50(ours) - p50(raw) = {over_raw:.2f} ms (target <= {TARGET_MS:.0f} ms). "
        f"Our code's own cost is ours - floor: {over_floor:.2f} ms at p50; floor - raw is the SDK and stdio."
    )
    if over_floor > FLOOR_GAP_MS and measured.profile is None:
        print(f"ours is more than {FLOOR_GAP_MS:.0f} ms over the floor: --profile PATH shows where our code spends it.")
    return 0 if passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the bench (or serve the floor); 0 when the target is met."""
    args = parse_args(argv)
    if args.floor_server is not None or args.our_server:
        url = args.floor_server

        def serve() -> int | None:
            if url is not None:
                serve_floor(url)
                return None
            return contacts_mcp(["serve"])

        return (serve() if args.profiled is None else profiled(args.profiled, serve)) or 0
    return anyio.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
