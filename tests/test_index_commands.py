"""`contacts-mcp index sync|status|forget` against a sandbox served on loopback, as an operator runs them."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from starlette.applications import Starlette

from contacts_mcp.server.accounts import load_accounts
from contacts_mcp.server.cli import main
from contacts_mcp.server.index import commands
from contacts_mcp.server.index.base import Store
from contacts_mcp.server.index.service import open_store
from contacts_mcp.server.sandbox import (
    SANDBOX_KEYS,
    SandboxAccount,
    create_app,
    sandbox_accounts,
    sandbox_environment,
    sandbox_of,
)
from contacts_mcp.server.settings import load_settings
from tests.index.sync_support import NOW, UNLIMITED, space
from tests.sandbox.serving import serve

LIFTED = "cometly.list_contacts=100000/60,cometly.get_contact=100000/60"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, int]]:
    app = space(contacts=120)
    count = len(sandbox_of(app).store.creation_times())
    yield from ((root, count) for root in serve(app))


@pytest.fixture
def index_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: tuple[str, int]) -> Path:
    root, _ = served
    for name, value in sandbox_environment(root).items():
        if name.startswith("COMETLY_"):
            monkeypatch.setenv(name, value)
    path = tmp_path / "data" / "index.sqlite3"
    monkeypatch.setenv("CONTACTS_MCP_INDEX", str(path))
    monkeypatch.setenv("CONTACTS_MCP_INDEX_SHARE", "1")
    monkeypatch.setenv("CONTACTS_MCP_RATE_LIMITS", LIFTED)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    return path


def test_sync_builds_the_index_and_status_shows_every_contact_and_the_backfill_done(
    index_file: Path, served: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, count = served

    assert main(["index", "sync"]) == 0
    synced = capsys.readouterr().out
    assert main(["index", "status"]) == 0
    shown = capsys.readouterr().out

    assert "Done:" in synced
    assert f"index: {index_file}" in shown
    assert f"contacts:   {count:,}" in shown
    assert "backfill:   complete since" in shown
    assert stat.S_IMODE(index_file.stat().st_mode) == 0o600
    assert SANDBOX_KEYS["cometly"] not in synced + shown
    stored = b"".join(path.read_bytes() for path in index_file.parent.iterdir())
    assert SANDBOX_KEYS["cometly"].encode() not in stored  # contacts are kept under the key's fingerprint


def test_a_second_sync_right_after_spends_next_to_nothing(index_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "sync"]) == 0
    capsys.readouterr()

    assert main(["index", "sync"]) == 0

    again = capsys.readouterr().out
    requests = int(again.split("Done: ")[1].split(" list requests")[0].replace(",", ""))
    assert requests <= 1  # at most the catch-up of the seconds since


def test_forget_deletes_the_index_file(index_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "sync"]) == 0
    assert index_file.exists()

    assert main(["index", "forget"]) == 0

    assert not index_file.exists()
    assert "Deleted the contact index" in capsys.readouterr().out


def test_status_with_the_index_off_says_how_to_turn_it_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTACTS_MCP_INDEX", "off")

    assert main(["index", "status"]) == 0

    assert "off" in capsys.readouterr().out


def test_sync_without_a_cometly_key_stops_in_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTACTS_MCP_INDEX", str(tmp_path / "index.sqlite3"))
    monkeypatch.chdir(tmp_path)

    assert main(["index", "sync"]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["contacts-mcp: index sync needs a Cometly Space: set COMETLY_API_KEY"]


def test_sync_with_a_refused_key_stops_in_one_line_with_exit_2_and_no_key(
    index_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-key-0123456789abcdef"
    monkeypatch.setenv("COMETLY_API_KEY", wrong)

    assert main(["index", "sync"]) == 2

    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert "Cometly refused the key" in line
    assert wrong not in captured.err + captured.out


def test_a_bad_index_url_stops_at_start_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTACTS_MCP_INDEX_URL", "mysql://user:hunter2hunter2@db/contacts")
    monkeypatch.chdir(tmp_path)

    assert main(["index", "status"]) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert "CONTACTS_MCP_INDEX_URL" in line
    assert "hunter2hunter2" not in line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_sync_on_a_terminal_draws_a_progress_bar(index_file: Path) -> None:
    out, err = io.StringIO(), _Terminal()

    status = anyio.run(commands.sync, load_settings(), False, out, err)

    assert status == 0
    assert "\r[" in err.getvalue()
    assert "ranges" in err.getvalue()


# --- --account: any Cometly account of the accounts file ----------------------------------------------------------

SPACES = [
    SandboxAccount("eu-space", "cometly", contacts=40, timezone="Europe/Berlin"),
    SandboxAccount("hl", "highlevel"),
]
"""A second Space, and a HighLevel location, besides the sandbox's default accounts."""


@pytest.fixture(scope="module")
def several() -> Iterator[tuple[str, Starlette]]:
    app = create_app(contacts=30, now=NOW, rate_limits=UNLIMITED, accounts=SPACES)
    try:
        yield from ((root, app) for root in serve(app))
    finally:
        for account in sandbox_accounts(app):
            sandbox_of(app, account.name).store.close()


@pytest.fixture
def accounts_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, several: tuple[str, Starlette], index_file: Path
) -> Path:
    """The environment's Space (the default one) and an accounts file naming the second Space and the location."""
    root, app = several
    for name, value in sandbox_environment(root).items():
        if name.startswith("COMETLY_"):
            monkeypatch.setenv(name, value)
    space, location = (account for account in sandbox_accounts(app) if account.name != "default")
    monkeypatch.setenv("BRAND_EU_KEY", space.key)
    monkeypatch.setenv("ACME_HL_KEY", location.key)
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'[accounts.brand-eu]\nprovider = "cometly"\ndescription = "the EU brand"\napi_key_env = "BRAND_EU_KEY"\n'
        f'base_url = "{space.base_url(root)}"\ntimezone = "Europe/Berlin"\n'
        'rate_limits = { list_contacts = "100000/60", get_contact = "100000/60" }\n\n'
        f'[accounts.acme-hl]\nprovider = "highlevel"\ndescription = "Acme"\napi_key_env = "ACME_HL_KEY"\n'
        f'base_url = "{location.base_url(root)}"\nlocation_id = "{location.location_id}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CONTACTS_MCP_ACCOUNTS_FILE", str(path))
    return path


def test_sync_and_status_with_account_index_that_space_under_the_entry_a_server_keeps_for_it(
    accounts_file: Path, several: tuple[str, Starlette], capsys: pytest.CaptureFixture[str]
) -> None:
    _, app = several
    held = len(sandbox_of(app, "eu-space").store.creation_times())

    assert main(["index", "sync", "--account", "brand-eu"]) == 0
    synced = capsys.readouterr().out
    assert main(["index", "status", "--account", "brand-eu"]) == 0
    theirs = capsys.readouterr().out
    assert main(["index", "status"]) == 0
    ours = capsys.readouterr().out

    assert f"{held:,} contacts in the index" in synced
    assert synced.startswith("account: brand-eu (cometly)\n")
    assert theirs.startswith("account: brand-eu (cometly)\n")  # says whose index it shows
    assert not ours.startswith("account:")
    assert f"contacts:   {held:,}" in theirs
    assert "backfill:   complete since" in theirs
    assert "contacts:   0" in ours  # the environment's Space is not synced by it
    [brand_eu] = [account for account in load_accounts(accounts_file, os.environ) if account.name == "brand-eu"]
    assert anyio.run(_indexed_accounts, open_store(load_settings())) == [brand_eu.fingerprint]
    assert os.environ["BRAND_EU_KEY"] not in synced + theirs


async def _indexed_accounts(store: Store | None) -> list[str]:
    assert store is not None
    await store.open()
    try:
        return list(await store.accounts())
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("name", "said"),
    [("acme-hl", "is a highlevel account"), ("nobody", "names no Cometly account"), ("BRAND-EU", "names no")],
)
def test_account_that_is_not_a_cometly_one_is_refused_in_one_line_listing_those_there_are(
    accounts_file: Path, name: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in ("sync", "status"):
        assert main(["index", action, "--account", name]) == 2

        captured = capsys.readouterr()
        [line] = captured.err.strip().splitlines()
        assert said in line
        assert line.endswith("the Cometly accounts: default, brand-eu")
        assert captured.out == ""
        assert os.environ["ACME_HL_KEY"] not in line


def test_account_without_an_accounts_file_says_none_is_set(
    index_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", "sync", "--account", "brand-eu"]) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "contacts-mcp: index --account 'brand-eu' names no Cometly account; the Cometly accounts: default "
        "(no accounts file: CONTACTS_MCP_ACCOUNTS_FILE is not set)"
    )
