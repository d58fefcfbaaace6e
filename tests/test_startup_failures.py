"""Every start-up failure is one line on stderr and exit 2, naming what to change.

Each refusal runs the installed entry point, as a user would meet it: an address that cannot be
bound (in use, not this machine's), a bad value in `.env` or the environment (named with where it
came from, never with a secret's value), an unreachable Redis. The sandbox path reads no provider
setting at all, and an empty value is "not set" everywhere.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contacts_mcp.server.cli import main
from contacts_mcp.server.settings import ClemtaSettings, CometlySettings, HighLevelSettings, Settings, load_settings
from tests.conftest import COMETLY_KEY, HIGHLEVEL_KEY
from tests.http_support import ENTRY_POINT, TOKEN, server_environment
from tests.redis_support import free_port
from tests.startup_support import PASSWORD, assert_refused_in_one_line, run_entry_point

UNASSIGNABLE_HOST = "10.255.255.1"
"""An address no test machine has: binding it fails (EADDRNOTAVAIL), and nothing is ever sent to it."""
UNRESOLVABLE_HOST = "no-such-host.invalid"
"""A name that resolves nowhere: `.invalid` is reserved (RFC 2606)."""

LISTENERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "serve http": (["serve", "--transport", "http"], {"COMETLY_API_KEY": COMETLY_KEY}),
    "serve sse": (["serve", "--transport", "sse"], {"COMETLY_API_KEY": COMETLY_KEY}),
    "serve --sandbox http": (["serve", "--sandbox", "--transport", "http"], {}),
    "sandbox": (["sandbox"], {}),
}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port this test holds, listening, for the length of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


# --- Addresses -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "env"), LISTENERS.values(), ids=LISTENERS.keys())
def test_a_busy_port_is_one_line_naming_the_address_and_port(
    tmp_path: Path, busy_port: int, command: list[str], env: dict[str, str]
) -> None:
    result = run_entry_point(tmp_path, *command, "--port", str(busy_port), **env)

    line = assert_refused_in_one_line(result, f"127.0.0.1:{busy_port}", "--port")
    assert "in use" in line


@pytest.mark.parametrize("host", [UNASSIGNABLE_HOST, UNRESOLVABLE_HOST])
@pytest.mark.parametrize(("command", "env"), LISTENERS.values(), ids=LISTENERS.keys())
def test_a_host_that_is_not_this_machines_is_one_line_naming_host(
    tmp_path: Path, host: str, command: list[str], env: dict[str, str]
) -> None:
    remote = ["--allow-remote"] if command == ["sandbox"] else []
    env = env | {"CONTACTS_MCP_HTTP_TOKEN": TOKEN}  # off loopback, serve needs one before it binds

    result = run_entry_point(tmp_path, *command, *remote, "--host", host, "--port", "0", **env)

    line = assert_refused_in_one_line(result, "--host", host)
    assert TOKEN not in line


def test_a_port_the_process_may_not_bind_is_one_line_naming_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tests may run as root, which binds any port: the kernel's refusal is stood in for, on port 80 only.
    monkeypatch.chdir(tmp_path)
    bind = socket.socket.bind

    def refusing_bind(self: socket.socket, address: Any) -> None:
        if address[1] == 80:
            raise PermissionError(errno.EACCES, "Permission denied")
        bind(self, address)

    monkeypatch.setattr(socket.socket, "bind", refusing_bind)

    assert main(["sandbox", "--port", "80"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert "--port" in line
    assert "127.0.0.1:80" in line


def test_the_sandbox_on_port_0_still_listens_where_it_says(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(ENTRY_POINT), "sandbox", "--port", "0"],
        cwd=tmp_path,
        env=server_environment({}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
    )
    watchdog = threading.Timer(30, process.kill)  # bounds the readline below
    watchdog.start()
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("contacts-mcp sandbox on http://127.0.0.1:"), first
        root = first.split()[3]
        answer = httpx.get(f"{root}/_sandbox/faults", timeout=10)
        assert answer.status_code == 200
    finally:
        watchdog.cancel()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# --- Settings: which variable, and where it came from ----------------------------------------------------------------


def test_a_bad_value_in_dotenv_names_the_variable_and_the_file(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"COMETLY_API_KEY={COMETLY_KEY}\nCOMETLY_TIMEZONE=Mars/Base\n", encoding="utf-8")

    result = run_entry_point(tmp_path, "serve")

    line = assert_refused_in_one_line(result, f"COMETLY_TIMEZONE in {dotenv}", "Mars/Base")
    assert COMETLY_KEY not in line


def test_a_bad_value_in_the_environment_is_named_as_the_environment_even_when_dotenv_has_a_good_one(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(f"COMETLY_API_KEY={COMETLY_KEY}\nCOMETLY_TIMEZONE=UTC\n", encoding="utf-8")

    result = run_entry_point(tmp_path, "serve", COMETLY_TIMEZONE="Mars/Base")

    line = assert_refused_in_one_line(result, "COMETLY_TIMEZONE in the environment")
    assert ".env" not in line


def test_a_good_value_in_the_environment_wins_over_a_bad_one_in_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"COMETLY_API_KEY={COMETLY_KEY}\nCOMETLY_TIMEZONE=Mars/Base\n", encoding="utf-8")

    result = run_entry_point(tmp_path, "call", "server_info", COMETLY_TIMEZONE="Europe/Berlin")

    assert result.returncode == 0, result.stderr
    assert '"Europe/Berlin"' in result.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONTACTS_MCP_REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:abc/0"),
        ("CONTACTS_MCP_HTTP_TOKEN", PASSWORD[:12]),  # too short
    ],
)
def test_a_secret_refused_in_dotenv_is_named_with_its_file_never_shown(
    tmp_path: Path, variable: str, value: str
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"COMETLY_API_KEY={COMETLY_KEY}\n{variable}={value}\n", encoding="utf-8")

    result = run_entry_point(tmp_path, "serve")

    line = assert_refused_in_one_line(result, f"{variable} in {dotenv}")
    assert value not in line
    assert COMETLY_KEY not in line


# --- Redis (and whatever else the lifespan connects to) --------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["serve"], ["serve", "--transport", "http", "--port", "0"], ["serve", "--transport", "sse", "--port", "0"]],
)
def test_an_unreachable_redis_is_one_line_naming_the_variable_without_the_password(
    tmp_path: Path, command: list[str]
) -> None:
    closed = free_port()  # nothing listens there

    result = run_entry_point(
        tmp_path,
        *command,
        COMETLY_API_KEY=COMETLY_KEY,
        CONTACTS_MCP_REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{closed}/0",
    )

    assert_refused_in_one_line(result, "CONTACTS_MCP_REDIS_URL")


# --- The sandbox path reads no provider setting ----------------------------------------------------------------------

BROKEN_PROVIDERS = (
    "COMETLY_TIMEZONE=Mars/Base\n"
    "COMETLY_BASE_URL=ftp://example.com\n"
    "HIGHLEVEL_BASE_URL=not a url\n"
    f"CLEMTA_API_KEY={COMETLY_KEY}\n"  # without CLEMTA_COMPANY_ID
    "CLEMTA_TIMEZONE=Nowhere/At_All\n"
    f"CONTACTS_MCP_REDIS_URL=redis://:{PASSWORD}@127.0.0.1:abc/0\n"
)

SANDBOX_COMMANDS: dict[str, list[str]] = {
    "tools --sandbox": ["tools", "--sandbox"],
    "call --sandbox": ["call", "server_info", "{}", "--sandbox"],
    "serve --sandbox": ["serve", "--sandbox"],  # over stdio, which ends when stdin (closed) does
}
"""The demo, which reads no setting at all, is `test_the_demo_reads_no_settings_at_all`'s (one run of it)."""


@pytest.mark.parametrize("command", SANDBOX_COMMANDS.values(), ids=SANDBOX_COMMANDS.keys())
def test_the_sandbox_path_ignores_a_broken_dotenv_of_provider_settings(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / ".env").write_text(BROKEN_PROVIDERS, encoding="utf-8")

    result = run_entry_point(tmp_path, *command)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_the_sandbox_path_ignores_provider_settings_and_redis_in_the_environment(tmp_path: Path) -> None:
    closed = free_port()
    env = {
        "COMETLY_TIMEZONE": "Europe/Berlin",  # valid, yet not the sandbox Space's
        "CLEMTA_TIMEZONE": "Asia/Tokyo",
        "HIGHLEVEL_API_KEY": HIGHLEVEL_KEY,
        "CONTACTS_MCP_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{closed}/0",
    }

    result = run_entry_point(tmp_path, "call", "server_info", "{}", "--sandbox", **env)

    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.split("\n", 1)[1])
    assert info["shared_budgets"] == "memory"
    assert info["sandbox"] is True
    providers = info["providers"]
    zone = providers["columns"].index("timezone")
    timezones = {row[0]: row[zone] for row in providers["rows"] if row[zone] is not None}
    assert timezones == {"cometly": "UTC", "clemta": "UTC"}


def test_the_sandbox_path_still_reads_the_servers_own_settings(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(BROKEN_PROVIDERS + "CONTACTS_MCP_READ_ONLY=true\n", encoding="utf-8")

    listed = run_entry_point(tmp_path, "tools", "--sandbox")
    refused = run_entry_point(tmp_path, "tools", "--sandbox", CONTACTS_MCP_READ_ONLY="maybe")

    assert listed.returncode == 0, listed.stderr
    assert "get_contact  (" in listed.stdout
    assert "create_contact  (" not in listed.stdout
    assert_refused_in_one_line(refused, "CONTACTS_MCP_READ_ONLY in the environment")


def test_the_demo_reads_no_settings_at_all(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        BROKEN_PROVIDERS + "CONTACTS_MCP_READ_ONLY=true\nCONTACTS_MCP_TOOLS=get_contact\n", encoding="utf-8"
    )

    result = run_entry_point(tmp_path, "demo", CONTACTS_MCP_MAX_WAIT_SECONDS="-1")

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "steps worked" in result.stdout
    assert "Traceback" not in result.stderr


# --- Empty values mean "not set" -------------------------------------------------------------------------------------


def _every_variable() -> list[str]:
    models: tuple[tuple[str, type[Any]], ...] = (
        ("COMETLY_", CometlySettings),
        ("HIGHLEVEL_", HighLevelSettings),
        ("CLEMTA_", ClemtaSettings),
        ("CONTACTS_MCP_", Settings),
    )
    return [
        f"{prefix}{name.upper()}"
        for prefix, model in models
        for name in model.model_fields
        if name not in ("cometly", "highlevel", "clemta")
    ]


def test_every_setting_given_empty_is_as_if_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTACTS_MCP_INDEX")  # the conftest turns the index off; here it must be truly unset
    unset = load_settings(env_file=None)
    for variable in _every_variable():
        monkeypatch.setenv(variable, "")

    assert load_settings(env_file=None) == unset


def test_every_setting_given_empty_in_dotenv_is_as_if_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTACTS_MCP_INDEX")  # else the conftest's `off` would outrank the file's empty value
    unset = load_settings(env_file=None)
    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f'{variable}=""\n' for variable in _every_variable()), encoding="utf-8")

    assert load_settings(env_file=dotenv) == unset


def test_an_empty_value_in_the_environment_leaves_the_dotenv_value_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"COMETLY_API_KEY={COMETLY_KEY}\nCONTACTS_MCP_READ_ONLY=true\n", encoding="utf-8")
    monkeypatch.setenv("COMETLY_API_KEY", "")
    monkeypatch.setenv("CONTACTS_MCP_READ_ONLY", "")

    settings = load_settings(env_file=dotenv)

    assert settings.cometly.key() == COMETLY_KEY
    assert settings.read_only is True


def test_a_client_bundle_passing_blank_optional_settings_starts(tmp_path: Path) -> None:
    blanks = {variable: "" for variable in _every_variable() if variable != "COMETLY_API_KEY"}

    result = run_entry_point(tmp_path, "call", "server_info", COMETLY_API_KEY=COMETLY_KEY, **blanks)

    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout)
    assert (info["read_only"], info["default_provider"], info["shared_budgets"]) == (False, "cometly", "memory")
