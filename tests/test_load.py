"""Load over streamable HTTP: 50 sessions share 1,000 tool calls; each gets its answer, and memory stays flat.

The MCP server is the installed entry point in a process of its own, so /proc shows its memory alone;
the sandbox runs in another process with every rate limit raised, and the server's budgets are raised
the same way, so the load measures the server rather than the limits. `bench/http_load.py` drives the
load (its `MIX` says what each kind of call must end as); `uv run python -m bench.http_load` runs the
same by hand and prints the numbers.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass

import anyio
import pytest

from bench.http_load import (
    ERROR_KINDS,
    MEMORY_LIMIT,
    MIX,
    Report,
    drive,
    print_report,
    sandbox_process,
    server_environment,
)
from tests.http_support import TOKEN, serve_http

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's memory from /proc")

SESSIONS = 50
CALLS = 1000
BASELINE_CALLS = 100
LOAD_SECONDS = 100
"""The whole load, start-up included; it takes about 30 s on 2 cores shared with other work."""
NEVER_FOR_A_GOOD_CALL = ("internal_error", "rate_limited", "upstream_unavailable")


@dataclass(frozen=True)
class Load:
    """What the load measured, and what the server wrote to stderr meanwhile (for failure messages)."""

    report: Report
    server_log: list[str]

    def summary(self) -> str:
        report = self.report
        wrong = Counter(f"{o.call.label} -> {o.result}" for o in report.outcomes if o.result != o.call.expect)
        log = "".join(self.server_log[-30:])
        return f"results {dict(report.results)}; not as expected: {dict(wrong)}; end of the server's log:\n{log}"


async def run_load() -> Load:
    with anyio.fail_after(LOAD_SECONDS):
        async with sandbox_process(contacts=300) as sandbox:
            with serve_http(["--transport", "http"], server_environment(sandbox.address, TOKEN)) as served:
                report = await drive(
                    served.url,
                    TOKEN,
                    sessions=SESSIONS,
                    calls=CALLS,
                    baseline_calls=BASELINE_CALLS,
                    pid=served.process.pid,
                    call_timeout=30,
                )
                return Load(report, list(served.stderr))


@pytest.fixture(scope="module")
def load() -> Load:
    """One load run, shared by the tests below; each asserts one property of it (its table is in the output)."""
    load = anyio.run(run_load)
    print_report(load.report)
    return load


def test_every_one_of_1000_calls_over_50_sessions_ends_in_a_result_or_a_classified_error(load: Load) -> None:
    assert len(load.report.outcomes) == CALLS
    assert load.report.lost == 0, load.summary()
    assert set(load.report.results) <= {"ok", *ERROR_KINDS}, load.summary()


def test_the_calls_are_shared_among_all_50_open_sessions(load: Load) -> None:
    assert {outcome.session for outcome in load.report.outcomes} == set(range(SESSIONS))


def test_each_kind_of_call_ends_as_it_should_good_calls_ok_bad_ones_with_their_error_class(load: Load) -> None:
    by_label = load.report.by_label()

    assert set(by_label) == {kind.label for kind in MIX}  # the load made every kind of call
    for kind in MIX:
        ended = dict(by_label[kind.label])
        assert set(ended) == {kind.expect}, f"{kind.label}: expected {kind.expect}, got {ended}\n{load.summary()}"
    assert not any(load.report.results[kind] for kind in NEVER_FOR_A_GOOD_CALL), load.summary()


def test_server_memory_after_the_load_is_within_10_percent_of_where_it_was_after_100_calls(load: Load) -> None:
    report = load.report
    assert report.rss_baseline is not None
    assert report.rss_end is not None
    assert report.rss_closed is not None

    assert report.rss_end <= MEMORY_LIMIT * report.rss_baseline, f"{report.rss_baseline} -> {report.rss_end} KiB"
    assert report.rss_closed <= MEMORY_LIMIT * report.rss_baseline, f"{report.rss_baseline} -> {report.rss_closed} KiB"
