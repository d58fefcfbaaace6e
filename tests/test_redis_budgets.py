"""Budgets shared through a real redis-server: processes on one key add up to the limit, never past it.

The shared behaviour of both backends is in test_budgets.py; here is what only Redis brings: several
processes (separate connections) sharing one budget, accounts kept apart, no key stored, and what
happens when Redis is missing at start or goes away later.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
import redis
import respx
from mcp import Client, StdioServerParameters
from pydantic import SecretStr

from contacts_mcp.server.app import build_server
from contacts_mcp.server.budgets import BudgetSpec, Observation, open_budgets
from contacts_mcp.server.budgets.redis_backend import RedisStore, shown_url
from contacts_mcp.server.errors import ConfigurationError
from contacts_mcp.server.sandbox import SANDBOX_KEYS
from contacts_mcp.server.settings import Rate
from tests.conftest import COMETLY_KEY, make_settings, text_of
from tests.redis_support import free_port, redis_server
from tests.test_budgets import max_in_any_window
from tests.test_sandbox_integration import serve_sandbox

pytestmark = pytest.mark.anyio

CONTACT = {"id": 4821, "emails": ["jane@example.com"]}


async def test_two_processes_on_one_key_share_the_budget(redis_url: str) -> None:
    account = uuid.uuid4().hex
    sent: list[float] = []
    async with RedisStore.connect(redis_url) as first, RedisStore.connect(redis_url) as second:
        budgets = [store.budget("cometly.get_contact", [Rate(4, 0.4)], account=account) for store in (first, second)]

        async def caller(number: int) -> None:
            async with budgets[number % 2].slot(max_wait=10):
                sent.append(anyio.current_time())
                await anyio.sleep(0.005)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for number in range(24):
                    tg.start_soon(caller, number)

    assert len(sent) == 24
    assert max_in_any_window(sent, 0.4) <= 4
    assert max(sent) - min(sent) < 0.4 * 5 + 1  # and the limit is used: five windows after the first burst


async def test_different_keys_never_share_a_budget(redis_url: str) -> None:
    async with RedisStore.connect(redis_url) as store:
        ours = store.budget("cometly.get_contact", [Rate(1, 30)], account=uuid.uuid4().hex)
        theirs = store.budget("cometly.get_contact", [Rate(1, 30)], account=uuid.uuid4().hex)
        async with ours.slot(max_wait=0):
            pass
        async with theirs.slot(max_wait=0):  # would raise RateLimited if the budget were shared
            pass


async def test_processes_on_one_key_follow_one_advertised_limit_each_within_its_own_ceiling(redis_url: str) -> None:
    # One process runs the vendor default, another a user's lower rule reserving part of the same key.
    account = uuid.uuid4().hex
    async with RedisStore.connect(redis_url) as first, RedisStore.connect(redis_url) as second:
        default = first.budget("cometly.get_contact", [Rate(5, 30)], account=account, may_rise=True)
        reserved = second.budget("cometly.get_contact", [Rate(3, 30)], account=account)

        await reserved.observe(Observation(window=None, limit=8))  # heard by one, followed by both
        raised = (await default.current_rates(), await reserved.current_rates())
        await default.observe(Observation(window=None, limit=2))
        lowered = (await default.current_rates(), await reserved.current_rates())
        await reserved.observe(Observation(window=None, limit=9, may_raise=False))  # a cap lifts nobody
        capped = (await default.current_rates(), await reserved.current_rates())

    assert raised == ((Rate(8, 30),), (Rate(3, 30),))
    assert lowered == ((Rate(2, 30),), (Rate(2, 30),))
    assert capped == lowered
    store = redis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    limits = f"contacts-mcp:{{cometly.get_contact:{account}}}:limits"
    assert store.hgetall(limits) == {"1": "2", "cap:1": "9"}  # pyright: ignore[reportUnknownMemberType]
    assert store.pttl(limits) > 0  # expires once the budget is idle, as every key of it
    store.close()


async def test_redis_holds_no_api_key_and_every_budget_key_expires(redis_url: str, cometly: respx.MockRouter) -> None:
    cometly.get("/contacts/4821").respond(200, json=CONTACT, headers={"X-RateLimit-Remaining": "29"})
    settings = make_settings(redis_url=SecretStr(redis_url))

    async with Client(build_server(settings)) as client:
        result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert not result.is_error, text_of(result)
    store = redis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    keys: list[str] = list(store.scan_iter("contacts-mcp:{cometly.get_contact:*"))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    assert keys, "the call must have used the shared budget"
    for key in keys:
        assert COMETLY_KEY not in key
        assert COMETLY_KEY not in str(store.dump(key))
        assert store.pttl(key) > 0
    store.close()


async def test_unreachable_redis_stops_the_start_with_the_url_but_not_its_password() -> None:
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    specs = {"cometly.get_contact": BudgetSpec(rates=(Rate(30, 60),), account="x")}

    with pytest.raises(ConfigurationError) as caught:
        async with open_budgets(specs, redis_url=url):
            pytest.fail("must not open")

    assert "CONTACTS_MCP_REDIS_URL" in str(caught.value)
    assert f"127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}" in str(caught.value)
    assert "s3cret-pass" not in str(caught.value)
    assert shown_url(url).startswith("redis://:***@127.0.0.1:")


def test_the_server_exits_2_naming_redis_when_it_is_unreachable_at_start() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COMETLY_", "CONTACTS_MCP_"))},
        "COMETLY_API_KEY": COMETLY_KEY,
        "CONTACTS_MCP_REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0",
        "CONTACTS_MCP_INDEX": "off",
    }

    finished = subprocess.run(
        [sys.executable, "-m", "contacts_mcp", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2, finished.stderr
    assert "cannot reach Redis" in finished.stderr
    assert "hunter2" not in finished.stderr
    assert finished.stdout == ""  # stdout belongs to the protocol


async def test_when_redis_goes_away_calls_fail_clearly_and_recover_when_it_is_back(
    tmp_path: Path, cometly: respx.MockRouter
) -> None:
    route = cometly.get("/contacts/4821").respond(200, json=CONTACT)
    port = free_port()
    async with AsyncExitStack() as stack:
        with redis_server(tmp_path, port=port) as url:
            client = await stack.enter_async_context(Client(build_server(make_settings(redis_url=SecretStr(url)))))
            before = await client.call_tool("get_contact", {"contact_id": "4821"})
        with anyio.fail_after(30):
            outage = await client.call_tool("get_contact", {"contact_id": "4821"})
        with redis_server(tmp_path, port=port):
            back = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert not before.is_error
    assert text_of(outage).startswith("[upstream_unavailable]")
    assert "Redis" in text_of(outage)
    assert not back.is_error, text_of(back)
    assert route.call_count == 2  # nothing was sent while the budget could not be checked


async def test_server_processes_sharing_redis_draw_no_429_from_the_upstream(redis_url: str) -> None:
    statuses: list[int] = []
    results: list[bool] = []
    for root in serve_sandbox(statuses=statuses, rate_limits={"cometly.get_contact": (3, 1.0)}):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("COMETLY_", "CONTACTS_MCP_"))},
            "COMETLY_API_KEY": SANDBOX_KEYS["cometly"],
            "COMETLY_BASE_URL": f"{root}/cometly/public-api/v1",
            "CONTACTS_MCP_RATE_LIMITS": "cometly.get_contact=3/1",
            "CONTACTS_MCP_MAX_WAIT_SECONDS": "60",
            "CONTACTS_MCP_REDIS_URL": redis_url,
            "CONTACTS_MCP_INDEX": "off",  # its sync would draw on the same budgets and answer 200s
        }
        server = StdioServerParameters(command=sys.executable, args=["-m", "contacts_mcp", "serve"], env=env)
        async with Client(server) as first, Client(server) as second:

            async def call(client: Client) -> None:
                result = await client.call_tool("get_contact", {"contact_id": "1"})
                results.append(text_of(result).startswith("[not_found]"))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for number in range(10):
                        tg.start_soon(call, (first, second)[number % 2])

    assert results == [True] * 10
    assert statuses == [404] * 10  # every request answered, not one 429
