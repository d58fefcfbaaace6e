"""Cold start over stdio: how long from spawning the server until its tools/list reply, against the SDK floor?

    uv run python -m bench.cold_start [--runs 15] [--legacy] [--no-import-floor] [--imports] [--json PATH]

Desktop clients start every configured MCP server when they open, so a slow start is paid by every user
on every launch. Each run spawns a server with the SDK's stdio client (`Client(StdioServerParameters(...))`)
and times spawn until the tools/list reply has arrived: process start, imports, building the server,
negotiating the protocol (`server/discover`, or the initialize handshake with `--legacy`), and tools/list.

- ours: the installed `contacts-mcp` entry point of this environment, spawned directly (not through
  `uv run`), as a desktop client spawns it: `serve` over stdio with a dummy `COMETLY_API_KEY`
  (nothing is requested upstream at start) and `CONTACTS_MCP_LOG_LEVEL=WARNING`;
- floor: `bench/floor_server.py`, a minimal `MCPServer` with four trivial tools, on the same interpreter;
- import floor (context, not judged): `python -c "import mcp.server.mcpserver"`, spawn until exit, which it
  takes through `os._exit(0)`: a normal exit tears the interpreter down first, for longer than the MCP arms
  spend on anything after the import.

Every process gets the environment a desktop client passes (the SDK's `get_default_environment()`:
HOME, PATH, ...) plus the two variables above, and an empty working directory, so neither the shell's
variables nor a developer's `.env` take part. One untimed warm-up of each comes first (file cache,
bytecode), then the variants take turns, floor, ours, import floor, floor, ours, ..., so that they
share the machine's noise. The client's own connection work is inside both MCP arms alike.

Exits 0 when ours/floor on the medians is at most `TARGET`, 1 when not, 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client

from bench.tables import print_table

TARGET = 1.15
"""ours/floor on the medians may be at most this."""
ENTRY_POINT = Path(sys.executable).parent / "contacts-mcp"
FLOOR_SERVER = Path(__file__).with_name("floor_server.py")
SERVER_ENV = {"COMETLY_API_KEY": "cold-start-bench-dummy-key", "CONTACTS_MCP_LOG_LEVEL": "WARNING"}
IMPORT_FLOOR = "import mcp.server.mcpserver; import os; os._exit(0)"
"""The import alone; `os._exit` skips the interpreter's clean-up at exit (about 0.4 s here), which no MCP arm times."""
MIN_RUNS = 10
"""Fewer timed runs than this still print a verdict, marked as indicative."""
PROFILE_RUNS = 3
"""`--imports`: profiled starts of each MCP variant, after the timed ones."""
_IMPORT_TIME = re.compile(r"^import time:\s+(\d+) \|\s+\d+ \| *(\S+)$", re.MULTILINE)


class BenchFailed(Exception):
    """The bench could not run (a server did not start or answer), as opposed to a slow result."""


def percentile(values: Sequence[float], which: int) -> float:
    """The `which`-th percentile (10, 20, ... 90) of `values`, within the observed range."""
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=10, method="inclusive")[which // 10 - 1]


@dataclass(frozen=True)
class Variant:
    """One way of starting a process: `mcp` ones are timed to the tools/list reply, others to their exit."""

    name: str
    command: tuple[str, ...]
    mcp: bool = True
    min_tools: int = 1
    """An MCP variant must list at least this many tools, or the run did not measure what it claims."""


@dataclass
class Timings:
    """The timed runs of one variant, in seconds."""

    variant: Variant
    seconds: list[float] = field(default_factory=list[float])
    protocol: str | None = None
    """The protocol version an MCP variant negotiated."""

    @property
    def median(self) -> float:
        return percentile(self.seconds, 50)

    def percentile(self, which: int) -> float:
        return percentile(self.seconds, which)


@dataclass(frozen=True)
class Package:
    """Modules of one top-level package that ours imports at start and the floor does not."""

    name: str
    modules: tuple[str, ...]
    self_ms: float
    """Their import time without their imports' (`-X importtime`'s self column), median over the profiled runs."""


@dataclass
class Report:
    """What one run of the bench measured."""

    mode: str
    runs: int
    timings: list[Timings]
    extra_imports: list[Package] | None = None
    """With `--imports`: what ours imports that the floor does not, heaviest first."""

    def of(self, name: str) -> Timings:
        return next(timing for timing in self.timings if timing.variant.name == name)

    @property
    def ratio(self) -> float:
        """ours/floor on the medians."""
        return self.of("ours").median / self.of("floor").median

    @property
    def passed(self) -> bool:
        return self.ratio <= TARGET

    @property
    def paired(self) -> list[float]:
        """ours/floor within each round, where both share the moment's noise: a second look, not the verdict."""
        ours, floor = self.of("ours").seconds, self.of("floor").seconds
        return [o / f for o, f in zip(ours, floor, strict=True)]

    def as_json(self) -> dict[str, Any]:
        """The numbers, for `--json`."""
        return {
            "mode": self.mode,
            "runs": self.runs,
            "target": TARGET,
            "ratio": self.ratio,
            "passed": self.passed,
            "paired_ratio": {f"p{which}": percentile(self.paired, which) for which in (10, 50, 90)},
            "extra_imports": None
            if self.extra_imports is None
            else [{"package": p.name, "modules": list(p.modules), "self_ms": p.self_ms} for p in self.extra_imports],
            "python": platform.python_version(),
            "mcp": importlib.metadata.version("mcp"),
            "variants": [
                {
                    "name": timing.variant.name,
                    "command": list(timing.variant.command),
                    "until": "tools/list reply" if timing.variant.mcp else "exit",
                    "protocol": timing.protocol,
                    "median_ms": timing.median * 1000,
                    "p10_ms": timing.percentile(10) * 1000,
                    "p90_ms": timing.percentile(90) * 1000,
                    "samples_ms": [seconds * 1000 for seconds in timing.seconds],
                }
                for timing in self.timings
            ],
        }


def variants(import_floor: bool) -> list[Variant]:
    """The variants in the order they take turns."""
    found = [
        Variant("floor", (sys.executable, str(FLOOR_SERVER)), min_tools=4),
        Variant("ours", (str(ENTRY_POINT), "serve")),
    ]
    if import_floor:
        found.append(Variant("import floor", (sys.executable, "-c", IMPORT_FLOOR), mcp=False))
    return found


def reason(exc: BaseException) -> str:
    """What went wrong, from the first leaf of the task groups the SDK's transports raise through."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BaseExceptionGroup) and (leaves := cast("BaseExceptionGroup[BaseException]", exc).exceptions):
        return reason(leaves[0])
    return text


async def time_mcp(
    variant: Variant, env: Mapping[str, str], cwd: Path, mode: str, limit_seconds: float
) -> tuple[float, str]:
    """Seconds from spawning `variant` until its tools/list reply arrived, and the protocol version negotiated.

    Raises:
        BenchFailed: It did not start, did not answer within `limit_seconds`, or listed too few tools.
    """
    params = StdioServerParameters(command=variant.command[0], args=list(variant.command[1:]), env=dict(env), cwd=cwd)
    client = Client(params, mode=mode)  # built before the clock starts: the spawn is in __aenter__
    try:
        with anyio.fail_after(limit_seconds):
            start = time.monotonic()
            async with client:
                listed = await client.list_tools()
                elapsed = time.monotonic() - start
                protocol = client.protocol_version
    except TimeoutError:
        raise BenchFailed(f"{variant.name} did not answer tools/list within {limit_seconds:g} s") from None
    except Exception as exc:  # whatever the transport raises, the run measured nothing
        raise BenchFailed(f"{variant.name} failed: {reason(exc)} (whatever it wrote to stderr is above)") from exc
    if len(listed.tools) < variant.min_tools:
        raise BenchFailed(f"{variant.name} listed {len(listed.tools)} tools, expected at least {variant.min_tools}")
    return elapsed, protocol


async def time_exit(variant: Variant, env: Mapping[str, str], cwd: Path, limit_seconds: float) -> float:
    """Seconds from spawning `variant` until it exited.

    Raises:
        BenchFailed: It failed, or ran longer than `limit_seconds`.
    """
    try:
        with anyio.fail_after(limit_seconds):
            start = time.monotonic()
            result = await anyio.run_process(list(variant.command), env=dict(env), cwd=cwd, check=False)
            elapsed = time.monotonic() - start
    except TimeoutError:
        raise BenchFailed(f"{variant.name} did not exit within {limit_seconds:g} s") from None
    if result.returncode != 0:
        error = result.stderr.decode("utf-8", errors="replace")[-2000:]
        raise BenchFailed(f"{variant.name} exited with status {result.returncode}:\n{error}")
    return elapsed


def self_times(profile: str) -> dict[str, float]:
    """Every module in `-X importtime` output, with its self time in ms."""
    return {module: int(micros) / 1000 for micros, module in _IMPORT_TIME.findall(profile)}


async def profile_imports(
    variant: Variant, env: Mapping[str, str], cwd: Path, mode: str, limit_seconds: float
) -> dict[str, float]:
    """The modules `variant` imports by its tools/list reply, with their self times in ms.

    Raises:
        BenchFailed: It did not start or answer within `limit_seconds`.
    """
    params = StdioServerParameters(
        command=variant.command[0],
        args=list(variant.command[1:]),
        env=dict(env) | {"PYTHONPROFILEIMPORTTIME": "1"},
        cwd=cwd,
    )
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        try:
            with anyio.fail_after(limit_seconds):
                async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
                    await client.list_tools()
        except Exception as exc:  # the timeout included: the profile is incomplete
            raise BenchFailed(f"{variant.name} failed under -X importtime: {reason(exc)}") from exc
        errlog.seek(0)
        return self_times(errlog.read())


def extra_imports(floor: Sequence[Mapping[str, float]], ours: Sequence[Mapping[str, float]]) -> list[Package]:
    """What the `ours` profiles import that no `floor` profile does, by top-level package, heaviest first."""
    seen = set[str]().union(*floor)
    packages: dict[str, set[str]] = {}
    for module in set[str]().union(*ours) - seen:
        packages.setdefault(module.split(".")[0], set()).add(module)
    found = [
        Package(name, tuple(sorted(modules)), statistics.median(sum(p.get(m, 0.0) for m in modules) for p in ours))
        for name, modules in packages.items()
    ]
    return sorted(found, key=lambda package: -package.self_ms)


async def measure(
    runs: int,
    *,
    mode: str = "auto",
    import_floor: bool = True,
    imports: bool = False,
    limit_seconds: float = 60.0,
    progress: bool = True,
) -> Report:
    """One untimed warm-up of each variant, then `runs` timed rounds of each in turn.

    With `imports`, then `PROFILE_RUNS` starts of floor and ours in turn under `-X importtime`, untimed.

    Raises:
        BenchFailed: The entry point is missing, or a variant did not start or answer.
    """
    if not ENTRY_POINT.is_file():
        raise BenchFailed(f"no {ENTRY_POINT}: install the project into this environment first (`uv sync`)")
    env = get_default_environment() | SERVER_ENV
    timings = [Timings(variant) for variant in variants(import_floor)]
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as workdir:
        cwd = Path(workdir)  # empty: no developer's .env

        async def once(timing: Timings) -> float:
            if not timing.variant.mcp:
                return await time_exit(timing.variant, env, cwd, limit_seconds)
            seconds, timing.protocol = await time_mcp(timing.variant, env, cwd, mode, limit_seconds)
            return seconds

        for timing in timings:
            await once(timing)
        for round_ in range(1, runs + 1):
            for timing in timings:
                timing.seconds.append(await once(timing))
            if progress:
                done = ", ".join(f"{t.variant.name} {t.seconds[-1] * 1000:.0f}" for t in timings)
                print(f"  round {round_}/{runs}: {done} ms", file=sys.stderr, flush=True)
        report = Report(mode=mode, runs=runs, timings=timings)
        if imports:
            profiles: dict[str, list[dict[str, float]]] = {"floor": [], "ours": []}
            for _ in range(PROFILE_RUNS):
                for name, found in profiles.items():
                    found.append(await profile_imports(report.of(name).variant, env, cwd, mode, limit_seconds))
            report.extra_imports = extra_imports(profiles["floor"], profiles["ours"])
    return report


def print_report(report: Report) -> None:
    """The table of the variants, then the verdict."""
    floor = report.of("floor").median
    rows = [
        (
            timing.variant.name,
            f"tools/list ({timing.protocol})" if timing.variant.mcp else "exit",
            str(len(timing.seconds)),
            f"{timing.median * 1000:.0f}",
            f"{timing.percentile(10) * 1000:.0f}",
            f"{timing.percentile(90) * 1000:.0f}",
            f"{timing.median / floor:.2f}",
        )
        for timing in report.timings
    ]
    print_table(("variant", "until", "runs", "median ms", "p10 ms", "p90 ms", "/ floor"), rows)
    ours = report.of("ours").median
    verdict = "PASS" if report.passed else "FAIL"
    print(
        f"\n{verdict}: ours/floor {report.ratio:.2f} on the medians (target <= {TARGET:.2f}); "
        f"ours takes {(ours - floor) * 1000:+.0f} ms over the floor"
    )
    paired = report.paired
    print(
        f"within each round ours/floor is {percentile(paired, 50):.2f} at the median "
        f"(p10 {percentile(paired, 10):.2f}, p90 {percentile(paired, 90):.2f}), for a second look"
    )
    if report.runs < MIN_RUNS:
        print(f"(only {report.runs} runs: indicative; judge on {MIN_RUNS} or more)")
    if report.extra_imports is not None:
        print_imports(report.extra_imports)


def print_imports(packages: Sequence[Package]) -> None:
    """The packages ours imports beyond the floor; those under 0.5 ms summed in one row."""
    print(f"\nimported by ours, not by the floor (-X importtime self times, median of {PROFILE_RUNS} starts each):\n")
    shown = [package for package in packages if package.self_ms >= 0.5]
    rows = [(package.name, str(len(package.modules)), f"{package.self_ms:.1f}") for package in shown]
    rest = packages[len(shown) :]
    if rest:
        rows.append(
            (f"{len(rest)} more", str(sum(len(p.modules) for p in rest)), f"{sum(p.self_ms for p in rest):.1f}")
        )
    total = sum(package.self_ms for package in packages)
    rows.append(("total", str(sum(len(package.modules) for package in packages)), f"{total:.1f}"))
    print_table(("package", "modules", "self ms"), rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.cold_start",
        description="Cold start over stdio, spawn until tools/list reply: contacts-mcp against the SDK floor.",
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each variant (15)")
    parser.add_argument(
        "--legacy",
        action="store_true",
        help="the 2025-11-25 initialize handshake older desktop clients use (default: the SDK's negotiation)",
    )
    parser.add_argument(
        "--no-import-floor", action="store_true", help="skip the context variant, the SDK's import alone"
    )
    parser.add_argument(
        "--imports",
        action="store_true",
        help=f"then {PROFILE_RUNS} untimed starts of each under -X importtime: what ours imports beyond the floor",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one start may take (60)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers to PATH as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.timeout <= 0:
        parser.error("--runs and --timeout must be positive")
    return args


async def run(args: argparse.Namespace) -> int:
    """Measure, print the report; return the exit status."""
    print(f"command: {shlex.join([Path(sys.executable).name, '-m', 'bench.cold_start', *sys.argv[1:]])}")
    try:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except (AttributeError, OSError):  # not on every platform
        load = "-"
    mode = "legacy" if args.legacy else "auto"
    print(
        f"python {platform.python_version()}, mcp {importlib.metadata.version('mcp')}, "
        f"{os.cpu_count()} CPUs, load average {load}; client mode {mode}"
    )
    try:
        report = await measure(
            args.runs,
            mode=mode,
            import_floor=not args.no_import_floor,
            imports=args.imports,
            limit_seconds=args.timeout,
        )
    except BenchFailed as exc:
        print(f"the bench could not run: {exc}", file=sys.stderr)
        return 2
    print()
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    return 0 if report.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the bench; 0 when ours starts within `TARGET` of the floor."""
    return anyio.run(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
