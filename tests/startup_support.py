"""Running the installed `contacts-mcp` to see it refuse to start: exit 2, one line on stderr, nothing on stdout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.http_support import ENTRY_POINT

PASSWORD = "s3cret-Redis-pw"
"""A password that must never be shown: the URLs of the tests carry it."""


def run_entry_point(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `contacts-mcp` with `args`, in a clean environment plus `env`, stdin closed."""
    return subprocess.run(
        [str(ENTRY_POINT), *args],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "CONTACTS_MCP_LOG_LEVEL": "INFO", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_refused_in_one_line(result: subprocess.CompletedProcess[str], *named: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr naming each of `named`, no traceback or password."""
    assert (result.returncode, result.stdout) == (2, ""), result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    for name in named:
        assert name in lines[0]
    assert "Traceback" not in lines[0]
    assert PASSWORD not in lines[0]
    assert PASSWORD.split("-")[0] not in lines[0]
    return lines[0]
