"""A question across accounts: the demo's eleventh step, and `--sandbox --accounts N`, which serves the sandbox's
further accounts by name (as `contacts-mcp sandbox --accounts N` prints them) beside each vendor's `default`."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from contacts_mcp.server.cli import main
from contacts_mcp.server.demo import run_demo, server_command
from tests.http_support import ENTRY_POINT
from tests.startup_support import assert_refused_in_one_line, run_entry_point

pytestmark = pytest.mark.anyio

COUNTED = [
    ("default", "cometly"),
    ("cometly-2", "cometly"),
    ("cometly-3", "cometly"),
    ("default", "clemta"),
    ("clemta-2", "clemta"),
    ("clemta-3", "clemta"),
]
"""The accounts `--accounts 2` serves whose provider lists contacts (HighLevel does not), in the accounts' order."""


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env is read


async def test_the_demo_asks_which_account_got_the_most_leads_last_week_and_answers_from_its_rows() -> None:
    out = io.StringIO()

    status = await run_demo(server_command(), out=out)

    text = out.getvalue()
    assert status == 0, text
    assert "All 11 steps worked" in text
    step = text.split("\n11. ", 1)[1]
    assert step.startswith("Which account got the most leads last week?")
    assert '-> list_contacts {"account": "*", "start_date": "last week", "count_only": true}' in step
    rows = {name: int(total) for name, total in re.findall(r"^   (\S+ \(\w+\)) +(\d+)   \(last week in ", step, re.M)}
    assert list(rows) == [f"{name} ({provider})" for name, provider in COUNTED]
    # The further Space of 800 contacts leads any week by a dozen or more, whichever day the demo runs (its
    # contacts' ages are fixed by its seed); the default Space and company share one set of data and tie.
    assert max(rows, key=lambda name: rows[name]) == "cometly-3 (cometly)"
    assert rows["default (cometly)"] == rows["default (clemta)"]
    answer = f"Answer: cometly-3 (cometly) got the most leads last week, {rows['cometly-3 (cometly)']} of the"
    assert f"{answer} {sum(rows.values())} counted." in step
    assert "highlevel-2 (highlevel)" in step  # the note says who was left out, and why


async def test_serve_sandbox_with_accounts_serves_each_account_by_name_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=str(ENTRY_POINT),
        args=["serve", "--sandbox", "--accounts", "2", "--contacts", "50"],
        env={"CONTACTS_MCP_LOG_LEVEL": "WARNING", "CONTACTS_MCP_INDEX": "off"},
        cwd=tmp_path,
    )
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
            counted = await client.call_tool("list_contacts", {"account": "*", "count_only": True})
            one = await client.call_tool("list_contacts", {"account": "cometly-3", "per_page": 1})

    account = tools["get_contact"]["properties"]["account"]
    assert account["enum"] == [
        "default",
        "cometly-2",
        "cometly-3",
        "highlevel-2",
        "highlevel-3",
        "clemta-2",
        "clemta-3",
    ]
    assert "another of the sandbox's Cometly Spaces" in account["description"]
    fanned = tools["list_contacts"]["properties"]["account"]["anyOf"][0]["enum"]
    assert fanned == [*dict.fromkeys(name for name, _ in COUNTED), "*"]
    assert counted.structured_content is not None, counted.content
    rows: list[dict[str, Any]] = counted.structured_content["accounts"]["rows"]
    assert [(row["account"], row["provider"]) for row in rows] == COUNTED
    assert all(isinstance(row["total"], int) for row in rows)
    assert one.structured_content is not None, one.content
    assert one.structured_content["account"] == "cometly-3"
    assert int(one.structured_content["contacts"][0]["id"]) > 200_000  # its own ids, not the default Space's


def test_tools_and_call_take_accounts_with_sandbox_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--json", "--sandbox", "--accounts", "1", "--contacts", "20"]) == 0
    listed = {tool["name"]: tool["inputSchema"] for tool in json.loads(capsys.readouterr().out)}
    assert listed["find_contact"]["properties"]["account"]["enum"] == [
        "default",
        "cometly-2",
        "highlevel-2",
        "clemta-2",
    ]

    arguments = '{"account": "clemta-2", "per_page": 1}'
    assert main(["call", "list_contacts", arguments, "--sandbox", "--accounts", "1", "--contacts", "20"]) == 0
    assert '"account":"clemta-2"' in capsys.readouterr().out


def test_without_accounts_the_sandbox_serves_no_account_argument(capsys: pytest.CaptureFixture[str]) -> None:
    for extra in ([], ["--accounts", "0"]):
        assert main(["tools", "--json", "--sandbox", "--contacts", "20", *extra]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert all("account" not in tool["inputSchema"].get("properties", {}) for tool in listed)


@pytest.mark.parametrize("value", ["x", "-1", "21", "2.5", "²", ""])
def test_a_bad_number_of_accounts_is_refused_in_one_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--sandbox", "--accounts", value]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"contacts-mcp: --accounts {value!r} is not a number of further accounts from 0 to 20")


def test_accounts_without_sandbox_is_refused_in_one_line_by_the_entry_point(tmp_path: Path) -> None:
    assert "--sandbox" in assert_refused_in_one_line(
        run_entry_point(tmp_path, "serve", "--accounts", "2"), "--accounts"
    )
    assert_refused_in_one_line(run_entry_point(tmp_path, "call", "server_info", "--sandbox", "--accounts", "x"))
