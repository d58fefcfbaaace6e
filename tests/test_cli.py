"""The `contacts-mcp` command line: tools, call, and configuration errors for the person running it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import respx

from contacts_mcp.server.cli import main
from tests.conftest import COMETLY_KEY, COMETLY_URL
from tests.startup_support import assert_refused_in_one_line, run_entry_point


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env is read


def test_tools_lists_the_four_tools_even_without_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools"]) == 0

    out = capsys.readouterr().out
    for name in ("get_contact", "list_contacts", "filter_by_custom_field", "create_contact"):
        assert f"{name}  (" in out


def test_call_runs_a_tool_and_prints_its_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMETLY_API_KEY", COMETLY_KEY)
    monkeypatch.setenv("COMETLY_BASE_URL", COMETLY_URL)
    with respx.mock(base_url=COMETLY_URL) as cometly:
        cometly.get("/contacts/4821").respond(200, json={"id": 4821, "emails": ["jane@example.com"]})

        status = main(["call", "get_contact", '{"contact_id": "4821"}'])

    assert status == 0
    assert '"emails":["jane@example.com"]' in capsys.readouterr().out


def test_call_exits_1_and_prints_the_error_class_when_the_tool_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMETLY_API_KEY", COMETLY_KEY)

    assert main(["call", "get_contact", '{"contact_id": "../admin"}']) == 1
    assert capsys.readouterr().out.startswith("[validation_error]")


def test_call_with_arguments_that_are_not_json_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMETLY_API_KEY", COMETLY_KEY)

    assert main(["call", "get_contact", "{contact_id: 1}"]) == 2
    assert "not JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COMETLY_TIMEZONE", "Mars/Olympus"),
        ("COMETLY_BASE_URL", "ftp://example.com"),
        ("CONTACTS_MCP_RATE_LIMITS", "cometly.get_contact=lots"),
        ("CONTACTS_MCP_MAX_WAIT_SECONDS", "-1"),
    ],
)
def test_an_invalid_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv("COMETLY_API_KEY", COMETLY_KEY)
    monkeypatch.setenv(variable, value)

    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert variable in err
    assert COMETLY_KEY not in err


def test_an_override_of_an_unknown_budget_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMETLY_API_KEY", COMETLY_KEY)
    monkeypatch.setenv("CONTACTS_MCP_RATE_LIMITS", "cometly.get_contacts=5/60")

    assert main(["serve"]) == 2
    assert "cometly.get_contacts" in capsys.readouterr().err


def test_settings_are_read_from_a_dotenv_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".env").write_text(f"COMETLY_API_KEY={COMETLY_KEY}\nCONTACTS_MCP_READ_ONLY=true\n", encoding="utf-8")

    assert main(["tools"]) == 0

    out = capsys.readouterr().out
    assert "get_contact  (" in out
    assert "create_contact  (" not in out


# --- Start-up refusals: one line on stderr, exit 2, nothing on stdout ----------------------------------------------


def _not_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "notes.txt"
    path.write_text("just text, long enough to not look like an empty database file", encoding="utf-8")
    return str(path)


def _other_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "other.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    return str(path)


UNUSABLE_DBS: dict[str, Callable[[Path], str]] = {
    "/dev/null": lambda _: "/dev/null",
    "a directory": str,
    "a missing directory": lambda tmp_path: str(tmp_path / "missing" / "sandbox.sqlite3"),
    "a file that is not SQLite": _not_sqlite,
    "a SQLite file that is not a sandbox": _other_sqlite,
    "/proc/self/status": lambda _: "/proc/self/status",
}


@pytest.mark.parametrize("command", [["serve", "--sandbox"], ["sandbox", "--port", "0"], ["tools", "--sandbox"]])
@pytest.mark.parametrize("db", UNUSABLE_DBS.values(), ids=UNUSABLE_DBS.keys())
def test_an_unusable_sandbox_db_is_one_line_naming_the_option(
    tmp_path: Path, command: list[str], db: Callable[[Path], str]
) -> None:
    result = run_entry_point(tmp_path, *command, "--db", db(tmp_path))

    assert_refused_in_one_line(result, "--db")
    assert not (tmp_path / "missing").exists()


def test_a_configuration_error_from_the_sandbox_db_in_process_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tools", "--sandbox", "--db", str(tmp_path)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--db" in captured.err


@pytest.mark.parametrize("level", ["verbose", "5", "info "])
def test_an_unknown_log_level_is_one_line_naming_the_variable(tmp_path: Path, level: str) -> None:
    result = run_entry_point(tmp_path, "tools", CONTACTS_MCP_LOG_LEVEL=level)

    if level.strip() == "info":  # surrounding blanks are forgiven
        assert result.returncode == 0, result.stderr
    else:
        assert_refused_in_one_line(result, "CONTACTS_MCP_LOG_LEVEL")


def test_a_negative_contact_count_is_refused_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--sandbox", "--contacts", "-1"])

    assert exited.value.code == 2
    assert "--contacts" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "sandbox"])
def test_a_port_out_of_range_is_refused_before_anything_binds(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--port", "99999"])

    assert exited.value.code == 2
    assert "99999" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--transport", "bogus"], "invalid choice: 'bogus'"),
        (["sandbox", "--accounts", "x"], "'x' is not a number of further accounts"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["index"], "the following arguments are required: ACTION"),
        (["call"], "the following arguments are required: tool"),
        (["serve", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line_naming_it_and_the_help(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()  # no usage block
    assert named in line
    assert line.endswith("--help`")
