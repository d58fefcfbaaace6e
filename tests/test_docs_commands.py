"""Every shell block the docs mark as runnable against the sandbox runs, as written, on a clean checkout.

A block is marked by its fence's info string, `sh sandbox` (optionally `expect="TEXT"`: TEXT must be in its
output); the convention is documented at the top of docs/README.md. The blocks run in a copy of the repository's
tracked files with a `.venv` of its own, made once per session from uv's cache (`UV_OFFLINE=1`: nothing is
downloaded), with no provider or `CONTACTS_MCP_*` variable and no proxy from the outer environment, so what passes
here is what a newcomer's fresh clone does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packaging_support import clean_copy

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "sandbox"
BLOCK_TIMEOUT_SECONDS = 60
SETUP_TIMEOUT_SECONDS = 120
STRIPPED_PREFIXES = ("COMETLY_", "HIGHLEVEL_", "CLEMTA_", "CONTACTS_MCP_")
STRIPPED_NAMES = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY"}
PORTS_LOCK = Path("/tmp/contacts-mcp-docs-ports.lock")
"""Held while a block runs, so two test runs on one machine never race for a documented port."""

_FENCE = re.compile(r"^(`{3,})(.*)$")
_PORT = re.compile(r"--port (\d+)")


@dataclass(frozen=True)
class Block:
    """One marked block: where it is, its text, and what its output must contain."""

    path: Path
    line: int
    script: str
    expect: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def marked_blocks(path: Path) -> list[Block]:
    """The blocks of `path` whose fence's info string is `sh sandbox ...`, with the line of their fence."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, info = opening.groups()
        end = next(
            (i for i in range(index + 1, len(lines)) if lines[i].startswith(fence) and not lines[i].strip("`")),
            len(lines),
        )
        words = shlex.split(info)
        if words[:2] == ["sh", MARKER]:
            options = {key: value for key, _, value in (word.partition("=") for word in words[2:])}
            blocks.append(Block(path, index + 1, "\n".join(lines[index + 1 : end]) + "\n", options.get("expect")))
        index = end + 1
    return blocks


BLOCKS = [block for path in DOCS for block in marked_blocks(path)]


def test_the_docs_mark_the_newcomers_commands() -> None:
    scripts = "".join(block.script for block in BLOCKS)
    assert "uv run contacts-mcp demo" in scripts
    assert re.search(r"contacts-mcp call \w+ .*--sandbox", scripts)


def _clean_environment(home: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(STRIPPED_PREFIXES) and name.upper() not in STRIPPED_NAMES
    }
    env.update(UV_OFFLINE="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", TMPDIR=str(home))
    return env


@dataclass(frozen=True)
class Checkout:
    """A copy of the repository's tracked files with its own `.venv`, and the environment to run commands in."""

    path: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Checkout:
    """The clean checkout, made and synced once per session."""
    if shutil.which("uv") is None:
        pytest.fail("uv is not on PATH; the docs' commands all start with it")
    target = clean_copy(tmp_path_factory.mktemp("checkout"))
    env = _clean_environment(tmp_path_factory.mktemp("tmp"))
    synced = subprocess.run(
        ["uv", "sync"], cwd=target, env=env, capture_output=True, text=True, timeout=SETUP_TIMEOUT_SECONDS
    )
    assert synced.returncode == 0, f"uv sync (offline) failed in the clean checkout:\n{synced.stderr}"
    return Checkout(target, env)


@contextlib.contextmanager
def _ports_lock() -> Generator[None]:
    with PORTS_LOCK.open("a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _run(block: Block, checkout: Checkout) -> subprocess.CompletedProcess[str]:
    """Run `block` in its own process group, killing the whole group after, so no background server outlives it."""
    process = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", block.script],
        cwd=checkout.path,
        env=checkout.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{block.name} ran over {BLOCK_TIMEOUT_SECONDS} s:\n{block.script}\nstdout:\n{stdout}\n{stderr}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_marked_block_runs_against_the_sandbox(block: Block, checkout: Checkout) -> None:
    with _ports_lock():
        busy = [port for port in map(int, _PORT.findall(block.script)) if _busy(port)]
        assert not busy, f"{block.name} needs port {busy[0]} free; something else listens on it"
        result = _run(block, checkout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{block.name} exited {result.returncode}:\n{block.script}\n{output}"
    if block.expect is not None:
        assert block.expect in output, f"{block.name}: {block.expect!r} not in its output:\n{output}"
