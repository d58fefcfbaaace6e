"""Fan-out: `list_contacts` / `filter_by_custom_field` with count_only and `account: "*"` or a list count each
account apart, concurrently, one row per account; a failing account gives its own row's error and a slow one
holds only its own row.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from contacts_mcp.server.app import ContactsServer, build_server
from contacts_mcp.server.sandbox import (
    Faults,
    sandbox_accounts,
    sandbox_of,
    sandbox_settings,
)
from tests import test_accounts_routing as routing
from tests.conftest import make_settings
from tests.test_accounts_routing import ALIAS, ROOT, call, error, server_for

pytestmark = pytest.mark.anyio

EVERY = [
    ("default", "cometly"),
    ("cometly-2", "cometly"),
    (ALIAS, "cometly"),
    ("default", "clemta"),
    ("clemta-2", "clemta"),
]
"""The accounts whose provider lists contacts (HighLevel does not), in the accounts' order."""


app = routing.app
accounts_file = routing.accounts_file


@pytest.fixture
async def client(app: Starlette, accounts_file: Path) -> AsyncGenerator[Client]:
    async with Client(server_for(app, accounts_file)) as connected:
        yield connected


def rows(page: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["account"], row["provider"]): row for row in page["accounts"]["rows"]}


async def test_every_account_is_counted_in_its_own_row(client: Client) -> None:
    page = await call(client, "list_contacts", {"account": "*", "count_only": True})
    counted = rows(page)
    assert list(counted) == EVERY
    for each in counted.values():
        assert "error" not in each
        assert each["total"] == (await call(client, "list_contacts", {**_one(each), "count_only": True}))["total"]
    assert page["total"] == sum(each["total"] for each in counted.values())
    assert "highlevel" in page["accounts"]["note"]  # left out: HighLevel lists no contacts


def _one(row: dict[str, Any]) -> dict[str, Any]:
    return {"account": row["account"], "provider": row["provider"]}


async def test_a_list_of_accounts_counts_those_and_refuses_one_whose_provider_cannot(client: Client) -> None:
    page = await call(client, "list_contacts", {"account": ["cometly-2", "clemta-2"], "count_only": True})
    assert list(rows(page)) == [("cometly-2", "cometly"), ("clemta-2", "clemta")]
    counted = await call(
        client,
        "filter_by_custom_field",
        {"account": "*", "count_only": True, "conditions": [{"field": "profile_field_1", "operator": "any"}]},
    )
    assert [name for name, _ in rows(counted)] == ["default", "cometly-2", ALIAS]
    assert "clemta" in counted["accounts"]["note"]
    # Clemta has no custom fields to filter: its account is not offered, and naming it is refused unsent.
    assert (await error(client, "filter_by_custom_field", _filter_named("clemta-2"))).startswith("[validation_error]")


def _filter_named(account: str) -> dict[str, Any]:
    conditions = [{"field": "profile_field_1", "operator": "any"}]
    return {"account": [account], "count_only": True, "conditions": conditions}


async def test_several_accounts_without_count_only_is_a_validation_error(client: Client) -> None:
    for account in ("*", ["default", "cometly-2"]):
        text = await error(client, "list_contacts", {"account": account})
        assert text.startswith("[validation_error]")
        assert "count_only" in text
    assert (await error(client, "list_contacts", {"account": ["nobody"], "count_only": True})).startswith(
        "[validation_error]"
    )


async def test_a_failing_account_gives_its_rows_error_while_the_others_have_counts(
    app: Starlette, client: Client
) -> None:
    plan = sandbox_of(app).faults
    try:
        plan.set(Faults(kinds=("500",), account="cometly-2"))
        page = await call(client, "list_contacts", {"account": "*", "count_only": True})
    finally:
        plan.clear()
    counted = rows(page)
    assert counted["cometly-2", "cometly"]["error"].startswith("[upstream_unavailable]")
    assert "total" not in counted["cometly-2", "cometly"]
    for key, each in counted.items():
        if key != ("cometly-2", "cometly"):
            assert isinstance(each["total"], int)
            assert "error" not in each
    assert "total" not in page  # not exact while one account has no count
    assert page["has_more"] is True


class Completions:
    """An ASGI wrapper around the sandbox noting, in order, whose request's answer has been sent in full."""

    def __init__(self, app: Starlette, keys: dict[str, str]) -> None:
        self.app, self.keys, self.done = app, keys, list[str]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = b" ".join(value for _, value in scope.get("headers", [])).decode("latin-1")
        whose = next((name for key, name in self.keys.items() if key in headers), "?")

        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.done.append(whose)

        await self.app(scope, receive, sending)


async def test_a_slow_account_does_not_hold_the_others_rows(app: Starlette, accounts_file: Path) -> None:
    keys = {account.key: account.name for account in sandbox_accounts(app) if account.name != "default"}
    watched = Completions(app, keys)
    plan = sandbox_of(app).faults
    slow = "cometly-2"  # the first of the file's accounts: counted one after another, it would answer first
    try:
        plan.set(Faults(kinds=("timeout",), account=slow, delay=1.0))
        async with Client(_watched_server(watched, accounts_file)) as client:
            with anyio.fail_after(30):
                page = await call(client, "list_contacts", {"account": "*", "count_only": True})
    finally:
        plan.clear()
    assert all("error" not in row for row in page["accounts"]["rows"])
    # The others' answers were all sent while the slow account's request was still held.
    assert "clemta-2" in watched.done, watched.done
    assert watched.done.index(slow) > max(i for i, name in enumerate(watched.done) if name == "clemta-2")


def _watched_server(watched: Completions, accounts_file: Path) -> ContactsServer:
    settings = make_settings(**{**sandbox_settings(ROOT), "index": "off", "accounts_file": accounts_file})
    return build_server(settings, transport=lambda: httpx.ASGITransport(app=watched), sandbox=True)
