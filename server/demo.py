"""`contacts-mcp demo`: a guided tour of the server against the sandbox, over real stdio.

It starts `contacts-mcp serve --sandbox --accounts 2` as a subprocess (the sandbox with two further
accounts of each vendor), connects the SDK's stdio client, and makes the calls an agent would make
for the README's questions, printing each call and a compact result. It exits 0 only if every step
worked, so it doubles as an end-to-end check of an installation.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult, TextContent

from .app import SANDBOX_NOTE

RESULT_CHARS = 400
FURTHER_ACCOUNTS = 2
"""Further sandbox accounts of each vendor the demo's server serves, for its question across accounts."""


def server_command() -> list[str]:
    """The server the demo starts: this Python's `contacts-mcp serve --sandbox --accounts 2`."""
    return [sys.executable, "-m", "contacts_mcp", "serve", "--sandbox", "--accounts", str(FURTHER_ACCOUNTS)]


class DemoFailed(Exception):
    """A step of the tour did not produce what it should."""


def _compact(result: CallToolResult) -> str:
    text = " ".join(block.text for block in result.content if isinstance(block, TextContent))
    text = text.removeprefix(f"{SANDBOX_NOTE}\n")  # said once at the start of the tour
    return text if len(text) <= RESULT_CHARS else f"{text[:RESULT_CHARS]}... ({len(text):,} characters in all)"


def last_week(today: datetime) -> tuple[str, str]:
    """Monday to Sunday of the week before `today`'s."""
    monday = today.date() - timedelta(days=today.weekday() + 7)
    return monday.isoformat(), (monday + timedelta(days=6)).isoformat()


class _Tour:
    def __init__(self, client: Client, out: TextIO) -> None:
        self._client = client
        self._out = out
        self.steps = 0

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    async def call(self, title: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.steps += 1
        self.say(f"\n{self.steps}. {title}\n   -> {tool} {json.dumps(arguments)}")
        result = await self._client.call_tool(tool, arguments)
        self.say(f"   <- {_compact(result)}")
        if result.is_error or result.structured_content is None:
            raise DemoFailed(f"{tool} failed: {_compact(result)}")
        return result.structured_content


async def run_demo(command: list[str], *, out: TextIO = sys.stdout, now: Callable[[], datetime] | None = None) -> int:
    """Run the tour against the server started by `command`; 0 when every step worked, else 1.

    The server reads none of the settings of the person running the demo: the SDK hands it only a
    few safe variables of the environment (PATH, HOME, ...) and this its log level, and it starts in
    an empty directory, so no `.env` applies either. The tour shows what the tools do and checks an
    installation; a `.env` that serves fewer tools, is read-only, or is broken must not fail it.
    """
    today = (now or (lambda: datetime.now(UTC)))()
    with tempfile.TemporaryDirectory(prefix="contacts-mcp-demo-") as empty:
        params = StdioServerParameters(
            command=command[0], args=command[1:], env={"CONTACTS_MCP_LOG_LEVEL": "WARNING"}, cwd=empty
        )
        return await _tour(params, out, today)


async def _tour(params: StdioServerParameters, out: TextIO, today: datetime) -> int:
    try:
        with anyio.fail_after(120):
            async with Client(params) as client:
                tour = _Tour(client, out)
                await _steps(tour, client, today)
    except DemoFailed as exc:
        print(f"\ndemo failed: {exc}", file=out)
        return 1
    except Exception as exc:  # the server did not start or the connection broke: say so, do not trace
        print(f"\ndemo failed: could not run the server ({type(exc).__name__}: {exc})", file=out)
        return 1
    print(f"\nAll {tour.steps} steps worked. Attach the server to your client with the README's config.", file=out)
    return 0


async def _steps(tour: _Tour, client: Client, today: datetime) -> None:
    tools = await client.list_tools()
    tour.say(f"contacts-mcp sandbox tour: {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}")
    tour.say(f"Every result below starts with the line {SANDBOX_NOTE!r} (left out here).")

    page = await tour.call(
        "Who signed up last week? (dates may be words, read in the Space's timezone)",
        "list_contacts",
        {"start_date": "last week", "per_page": 5},
    )
    if not page.get("contacts"):
        raise DemoFailed("the sandbox has no contacts from last week")
    start, end = last_week(today)
    if not page.get("range", {}).get("start", "").startswith(start):
        raise DemoFailed(f"'last week' resolved to {page.get('range')}, not {start} to {end}")

    counted = await tour.call(
        "How many signed up this month?", "list_contacts", {"start_date": "this month", "count_only": True}
    )
    if not isinstance(counted.get("total"), int):
        raise DemoFailed(f"count_only answered {counted}")

    someone = page["contacts"][0]
    email = someone["emails"][0]
    found = await tour.call(
        f"What do we have on {email}? (Cometly has no search: the server's index finds, Cometly confirms)",
        "find_contact",
        {"email": email},
    )
    if [c.get("id") for c in found.get("contacts", [])] != [someone["id"]]:
        raise DemoFailed(f"find_contact did not find {email}: {found}")
    signed_up = await tour.call(
        "When did they sign up? (Cometly sends no creation time; the server proves a window)",
        "get_contact",
        {"contact_id": someone["id"]},
    )
    window = signed_up.get("created_at") or signed_up.get("created_between")
    if not window:
        raise DemoFailed(f"get_contact gave no sign-up date: {signed_up}")
    tour.say(f"   (signed up: {window})")

    contact_id = page["contacts"][0]["id"]
    contact = await tour.call(
        f"Look up contact {contact_id} with its ad journey",
        "get_contact",
        {"contact_id": contact_id, "include_events": True},
    )
    tour.say(f"   ({len(contact.get('events') or [])} events)")

    fields = await tour.call("Which custom fields can be filtered?", "describe_custom_fields", {})
    if "Customer Plan" not in {field.get("label") for field in fields.get("fields", [])}:
        raise DemoFailed(f"describe_custom_fields did not find Customer Plan: {fields}")

    premium = await tour.call(
        "Find leads whose Customer Plan is Premium (the field named by its label)",
        "filter_by_custom_field",
        {
            "start_date": "last 90 days",
            "conditions": [{"field": "Customer Plan", "operator": "equal_to", "value": "Premium"}],
            "per_page": 5,
        },
    )
    plans = {str(c.get("custom_fields", {}).get("Customer Plan")) for c in premium.get("contacts", [])}
    if not premium.get("contacts") or plans != {"Premium"}:
        raise DemoFailed(f"the Premium filter returned plans {sorted(plans)}")

    plan = str(signed_up.get("custom_fields", {}).get("Customer Plan") or "")
    target = "Basic" if plan == "Premium" else "Premium"
    moved = await tour.call(
        f"Move {email} to the {target} plan (the field named by its label; nothing else changes)",
        "update_contact",
        {"contact_id": someone["id"], "custom_fields": {"Customer Plan": target}},
    )
    change = next((c for c in moved.get("changes", []) if c.get("field") == "Customer Plan"), None)
    if change is None or change.get("after") != target:
        raise DemoFailed(f"update_contact did not move the lead to {target}: {moved}")
    tour.say(f"   (Customer Plan: {change.get('before') or 'unset'} -> {change.get('after')})")

    created = await tour.call(
        "Create a lead",
        "create_contact",
        {"emails": ["demo.lead@example.com"], "names": ["Demo Lead"], "custom_fields": {"profile_field_5": "Premium"}},
    )
    fetched = await tour.call("Read the new lead back", "get_contact", {"contact_id": created["id"]})
    if fetched.get("emails") != ["demo.lead@example.com"]:
        raise DemoFailed(f"the new contact came back as {fetched}")

    await _most_leads(tour)


async def _most_leads(tour: _Tour) -> None:
    """Which account got the most leads last week: one count per account, each in its own timezone (whose
    "last week" is another one than UTC's for a few hours each Monday)."""
    counted = await tour.call(
        "Which account got the most leads last week? (one count per account, each in its own timezone)",
        "list_contacts",
        {"account": "*", "start_date": "last week", "count_only": True},
    )
    rows: list[dict[str, Any]] = counted.get("accounts", {}).get("rows", [])
    if len(rows) < 2:
        raise DemoFailed(f"the count across accounts answered {len(rows)} rows: {counted}")
    totals: dict[str, int] = {}
    for row in rows:
        name = f"{row.get('account')} ({row.get('provider')})"
        if not isinstance(row.get("total"), int):
            raise DemoFailed(f"{name} was not counted: {row.get('error') or row}")
        window: dict[str, Any] = row.get("range") or {}
        today = str(window.get("today", ""))
        if not today or not str(window.get("start", "")).startswith(last_week(datetime.fromisoformat(today))[0]):
            raise DemoFailed(f"{name}'s 'last week' resolved to {window}, not the week before its today")
        totals[name] = row["total"]
        tour.say(f"   {name:<22} {row['total']:>4}   (last week in {window.get('timezone')})")
    if counted.get("accounts", {}).get("note"):
        tour.say(f"   ({counted['accounts']['note']})")
    most = max(totals.values())
    leaders = [name for name, total in totals.items() if total == most]
    if len(leaders) == 1:
        tour.say(f"   Answer: {leaders[0]} got the most leads last week, {most} of the {sum(totals.values())} counted.")
    else:
        tour.say(f"   Answer: {' and '.join(leaders)} tied for the most leads last week, {most} each.")
