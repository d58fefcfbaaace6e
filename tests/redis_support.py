"""A real `redis-server` for the tests, on a free loopback port, started and stopped by the tests.

CI installs redis-server (`.ci/run`); there a missing binary fails the tests. On a developer's
machine without it, the Redis tests are skipped with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import pytest

INSTALL_HINT = "redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_server_binary() -> str:
    """The path of redis-server; fails the test in CI and skips it elsewhere when it is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    return binary


class RunningRedis:
    """A redis-server the test started: its URL, and a pause (SIGSTOP) that stalls it as a GC pause would."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.url = f"redis://127.0.0.1:{port}/0"

    def pause(self) -> None:
        """Stop the server: connections stay open and commands queue unanswered, until `resume`."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def running_redis(directory: Path, *, port: int | None = None) -> Generator[RunningRedis]:
    """Run a throwaway redis-server on 127.0.0.1 (no persistence); stopped (and resumed first) at the end."""
    binary = redis_server_binary()
    port = port or free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = RunningRedis(process, port)
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port} (exit status {process.poll()})")
            time.sleep(0.02)
        yield running
    finally:
        if process.poll() is None:
            running.resume()  # a stopped process would not act on the SIGTERM
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def redis_server(directory: Path, *, port: int | None = None) -> Generator[str]:
    """Run a throwaway redis-server on 127.0.0.1 (no persistence); yield its URL."""
    with running_redis(directory, port=port) as running:
        yield running.url
