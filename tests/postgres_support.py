"""A real PostgreSQL for the tests (and the index bench), on a free loopback port, in a throwaway directory.

CI installs the `postgresql` package (`.ci/run`); there missing binaries fail the tests. On a
developer's machine without them, the PostgreSQL tests are skipped with the command that installs
them. Debian keeps the server binaries in /usr/lib/postgresql/<version>/bin, off the PATH; both are
searched.

PostgreSQL refuses to run as root, so as root the cluster belongs to an unprivileged user (the
`postgres` account when the package made one, else `nobody`), and initdb and the server run as it
through `setpriv`. The cluster is made once per session with `fsync=off` (nothing here needs to
outlive a crash of the machine); each test gets its own database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.redis_support import free_port

INSTALL_HINT = "PostgreSQL is not installed (Debian/Ubuntu: apt-get install -y postgresql)"
USER = "contacts"
PASSWORD = "pg-Wq7Zr2Kx9Lm4Tv"
"""The test cluster's password: connections over TCP must send it (scram-sha-256), as real ones do."""


def postgres_binaries() -> Path | None:
    """The directory holding initdb and postgres: on the PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("postgres") is not None:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def required_binaries() -> Path:
    """`postgres_binaries`, or fail the test in CI and skip it elsewhere."""
    binaries = postgres_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    return binaries


def _unprivileged() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "contacts-mcp-pg"], check=True)
    return pwd.getpwnam("contacts-mcp-pg")


@dataclass(frozen=True)
class RunningPostgres:
    """A cluster the tests started: its port, and URLs of its databases."""

    port: int

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def running_postgres(binaries: Path) -> Generator[RunningPostgres]:
    """Make a cluster in a new temporary directory and run it on 127.0.0.1 (TCP only); removed at the end."""
    # Not under pytest's tmp_path: its parents are root's 0700 directories the server's user cannot enter.
    directory = Path(tempfile.mkdtemp(prefix="contacts-mcp-pg-"))
    data = directory / "data"
    data.mkdir()
    (directory / "password").write_text(PASSWORD + "\n", encoding="utf-8")
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = _unprivileged()
        for path in (directory, data, directory / "password"):
            os.chown(path, user.pw_uid, user.pw_gid)
        as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]
    environment = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    subprocess.run(
        [
            *as_user,
            str(binaries / "initdb"),
            "--pgdata",
            str(data),
            "--username",
            USER,
            "--pwfile",
            str(directory / "password"),
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        ],
        check=True,
        cwd=directory,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            *as_user,
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        cwd=directory,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = RunningPostgres(port)
    try:
        deadline = time.monotonic() + 30
        while not _answers(running.url()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start on port {port} (exit status {process.poll()})")
            time.sleep(0.05)
        yield running
    finally:
        process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown: SIGTERM's would wait for the clients
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
