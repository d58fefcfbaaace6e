"""The `contacts-mcp` command line: tools, call, and configuration errors for the person running it."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from server.cli import main
from tests.conftest import COMETLY_KEY, COMETLY_URL


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
