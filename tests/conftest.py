"""Shared fixtures: settings built in code (never from a developer's .env), a mocked Cometly, a client.

Every test also runs under the vendors' contracts (`tests/contracts`): each request the product
sends to a vendor, and each answer an in-process sandbox gives, is checked against the vendor's own
contract, and a test that saw a violation fails at teardown listing them all. The session ends
with the violations grouped by endpoint. `--no-contracts` runs without the checks (to time them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from mcp import Client
from mcp_types import CallToolResult, TextContent
from pydantic import SecretStr
from starlette.applications import Starlette

from contacts_mcp.server.app import ContactsServer, build_server
from contacts_mcp.server.sandbox import sandbox_settings
from contacts_mcp.server.settings import ClemtaSettings, CometlySettings, HighLevelSettings, Settings
from tests.contracts import recording
from tests.contracts.checks import contracts

COMETLY_KEY = "cm-7Qx2Lw9Rk4Tz8Vn3Hd"
"""Keys are random like real ones: the server redacts any 8 characters of a key, so "0123456789" would hit phones."""
COMETLY_URL = "https://cometly.test/public-api/v1"
HIGHLEVEL_KEY = "pit-4Jc8Wq2Zx6Lm9Tr1Vb"
HIGHLEVEL_URL = "https://highlevel.test"
HIGHLEVEL_LOCATION = "ve9EPM428h8vShlRW1KT"
CLEMTA_KEY = "cl-5Hs3Nd8Kv2Px7Wy4Gq"
CLEMTA_URL = "https://clemta.test"
CLEMTA_COMPANY = "64b8f1a2e4b0c8d9f0aaaaaa"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-contracts",
        action="store_true",
        help="do not check requests and sandbox answers against the vendors' contracts (to time the checks)",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if config.getoption("--no-contracts"):
        return
    tally, *kinds = recording.summary()
    terminalreporter.section(f"contract violations: {len(kinds)} kinds" if kinds else "contract checks: no violation")
    terminalreporter.write_line(tally)
    for line in kinds:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def _contract_hooks(request: pytest.FixtureRequest) -> Iterator[bool]:
    """The checks hooked in for the whole session, the contracts loaded once up front; False with --no-contracts."""
    if request.config.getoption("--no-contracts"):
        yield False
        return
    contracts()
    with pytest.MonkeyPatch.context() as patch:
        recording.install(patch)
        yield True


@pytest.fixture(autouse=True)
def _contracts_kept(request: pytest.FixtureRequest, _contract_hooks: bool) -> Iterator[None]:
    """Fail the test at teardown with every contract violation seen while it ran (never inside the app or client)."""
    if not _contract_hooks:
        yield
        return
    with recording.collecting() as collector:
        yield
    found = collector.found()
    if found:
        recording.remember(request.node.nodeid, found)
        pytest.fail(recording.report(found), pytrace=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's own provider settings out of every test, and the contact index off."""
    for name in list(os.environ):
        if name.startswith(("COMETLY_", "HIGHLEVEL_", "CLEMTA_", "CONTACTS_MCP_")):
            monkeypatch.delenv(name)
    # The contact index is off unless a test turns it on: it would sync in the background against
    # every mocked Cometly, and its default file is in the user's data directory, not the test's.
    monkeypatch.setenv("CONTACTS_MCP_INDEX", "off")


def text_of(result: CallToolResult) -> str:
    """The text of a tool result's single text block."""
    [block] = result.content
    assert isinstance(block, TextContent)
    return block.text


def make_settings(**overrides: Any) -> Settings:
    """Settings with Cometly configured against the mocked base URL; `overrides` are Settings fields."""
    cometly = CometlySettings(api_key=SecretStr(COMETLY_KEY), base_url=COMETLY_URL)
    return Settings.model_validate({"cometly": cometly, **overrides})


def highlevel_settings(*, location: str | None = HIGHLEVEL_LOCATION) -> HighLevelSettings:
    return HighLevelSettings(api_key=SecretStr(HIGHLEVEL_KEY), base_url=HIGHLEVEL_URL, location_id=location)


def clemta_settings(*, company: str | None = CLEMTA_COMPANY) -> ClemtaSettings:
    return ClemtaSettings(api_key=SecretStr(CLEMTA_KEY), base_url=CLEMTA_URL, company_id=company)


def make_all_settings(**overrides: Any) -> Settings:
    """Settings with every provider configured against its mocked base URL."""
    return make_settings(highlevel=highlevel_settings(), clemta=clemta_settings(), **overrides)


@pytest.fixture
def clemta() -> Iterator[respx.MockRouter]:
    """A mocked Clemta API."""
    with respx.mock(base_url=CLEMTA_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def highlevel() -> Iterator[respx.MockRouter]:
    """A mocked HighLevel API."""
    with respx.mock(base_url=HIGHLEVEL_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def cometly() -> Iterator[respx.MockRouter]:
    """A mocked Cometly API; a test adds its routes, and unmatched requests fail the test."""
    with respx.mock(base_url=COMETLY_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(build_server(make_settings())) as connected:
        yield connected


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server for the whole run; tests keep apart by using their own budget names or keys."""
    from tests.redis_support import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def sandboxed_server(app: Starlette, **overrides: Any) -> ContactsServer:
    """The server with every provider answered in process by the sandbox `app`; `overrides` are Settings fields.

    The same wiring as `contacts-mcp --sandbox`, with the app (its data, clock and limits) chosen by the test.
    """
    settings = make_settings(**{**sandbox_settings("http://sandbox"), **overrides})
    return build_server(settings, transport=lambda: httpx.ASGITransport(app=app), sandbox=True)
