"""No API key, token or password in any tool result, error or log line, even when the upstream echoes them.

The big test runs the installed entry point over stdio at DEBUG level against an upstream that fails
in every way it can and puts the key it received into its answers (error messages, HTML pages,
contact fields), then scans everything the server said for the keys.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import respx
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from contacts_mcp.server.app import build_server
from contacts_mcp.server.results import REDACTED, RedactingFilter, Redactor, secrets_of
from tests.conftest import COMETLY_KEY, make_settings, text_of
from tests.http_support import ENTRY_POINT, local_http_server, server_environment
from tests.test_oauth_http import DOWN, NEW_CONTACT, READER, TOKENS, WRITER, bearer, call, running, session

pytestmark = pytest.mark.anyio

KEYS = {
    "COMETLY_API_KEY": "cometly-secret-key-aaaaaaaaaaaa",
    "HIGHLEVEL_API_KEY": "highlevel-secret-token-bbbbbbbbbb",
    "CLEMTA_API_KEY": "clemta-secret-key-cccccccccccc",
}
BEHAVIOURS = ["401", "403", "422", "500", "502", "echo", "drop", "slow", "404", "429"]


class _Leaky(BaseHTTPRequestHandler):
    """An upstream that answers by the last path segment and puts the credential it got into the answer."""

    def _credential(self) -> str:
        return self.headers.get("X-API-Key") or self.headers.get("Authorization", "").removeprefix("Bearer ")

    def _answer(self) -> None:
        key = self._credential()
        behaviour = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if self.command == "POST" or behaviour in ("contacts", "duplicate"):
            behaviour = "422"
        if behaviour == "drop":
            self.connection.close()  # no answer at all
            return
        if behaviour == "slow":
            threading.Event().wait(3)  # longer than the server's timeout
        status, content_type, body = 200, "application/json", ""
        if behaviour == "echo":
            body = json.dumps({"id": "echo", "emails": [{"email": f"{key}@example.com"}], "names": [{"name": key}]})
        elif behaviour in ("502", "500"):
            status, content_type = int(behaviour), "text/html"
            body = f"<html><body>Bad gateway for key {key} at {self.path}</body></html>"
        elif behaviour.isdigit():
            status = int(behaviour)
            body = json.dumps({"message": f"Invalid key {key}", "error": f"key={key}", "key": key})
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def leaky_upstream() -> Iterator[str]:
    with local_http_server(_Leaky) as root:
        yield root


async def test_no_output_of_a_run_full_of_failures_contains_a_key(leaky_upstream: str, tmp_path: Path) -> None:
    env = server_environment(
        {
            **KEYS,
            "COMETLY_BASE_URL": f"{leaky_upstream}/cometly",
            "HIGHLEVEL_BASE_URL": f"{leaky_upstream}/highlevel",
            "HIGHLEVEL_LOCATION_ID": "location-1",
            "CLEMTA_BASE_URL": f"{leaky_upstream}/clemta",
            "CLEMTA_COMPANY_ID": "company-1",
            "CONTACTS_MCP_LOG_LEVEL": "DEBUG",
            "CONTACTS_MCP_TIMEOUT_SECONDS": "0.5",
            "CONTACTS_MCP_MAX_WAIT_SECONDS": "2",
        }
    )
    outputs: list[str] = []
    log = tmp_path / "stderr.log"
    with anyio.fail_after(120), log.open("w", encoding="utf-8") as errlog:
        params = StdioServerParameters(command=str(ENTRY_POINT), env=env)
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            for provider in ("cometly", "highlevel", "clemta"):
                calls: list[tuple[str, dict[str, Any]]] = [
                    ("get_contact", {"contact_id": behaviour}) for behaviour in BEHAVIOURS
                ]
                calls += [
                    ("list_contacts", {"start_date": "2026-01-01", "end_date": "2026-01-31"}),
                    ("create_contact", {"emails": ["new@example.com"], "names": ["New Lead"]}),
                    ("get_contact", {"contact_id": "", "unknown_argument": KEYS["COMETLY_API_KEY"][:4]}),
                ]
                if provider == "highlevel":
                    calls.append(("find_contact", {"email": "someone@example.com"}))
                for tool, arguments in calls:
                    result = await client.call_tool(tool, {**arguments, "provider": provider})
                    outputs += [block.model_dump_json() for block in result.content]
                    outputs.append(json.dumps(result.structured_content))
    logged = log.read_text(encoding="utf-8")
    everything = "\n".join([*outputs, logged])
    for name, key in KEYS.items():
        assert key not in everything, f"{name} leaked"
    assert REDACTED in everything  # the upstream did echo keys, and they were caught
    assert "Traceback" not in logged
    assert "HTTP 500" in logged  # the log did record the failures, only without the keys


async def test_an_upstream_error_that_echoes_the_key_reaches_the_model_redacted(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts/4821").respond(401, json={"message": f"The key {COMETLY_KEY} is revoked"})

    async with Client(build_server(make_settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert text_of(result).startswith("[authentication_error]")
    assert COMETLY_KEY not in text_of(result)
    assert REDACTED in text_of(result)


async def test_a_contact_field_holding_the_key_reaches_the_model_redacted(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts/4821").respond(200, json={"id": 4821, "names": [{"name": f"pasted {COMETLY_KEY} here"}]})

    async with Client(build_server(make_settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert result.structured_content is not None
    assert result.structured_content["names"] == [f"pasted {REDACTED} here"]
    assert COMETLY_KEY not in text_of(result)


def test_log_records_lose_every_secret_in_message_arguments_and_traceback() -> None:
    redactor = Redactor([COMETLY_KEY, "short"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("request to %s failed", f"https://x.test/?key={COMETLY_KEY}")
        try:
            raise RuntimeError(f"Authorization: Bearer {COMETLY_KEY}")
        except RuntimeError:
            logger.exception("crashed")
    finally:
        logger.removeHandler(handler)

    logged = stream.getvalue()
    assert COMETLY_KEY not in logged
    assert logged.count(REDACTED) == 2
    assert "short" not in logged or "short" in "request to"  # too short to be a secret: left alone


def test_the_secrets_are_every_key_the_tokens_and_the_redis_password() -> None:
    settings = make_settings(
        http_token=SecretStr("http-token-0123456789"),
        redis_url=SecretStr("redis://:hunter2-password@127.0.0.1:6379/0"),
        oauth_client_secret=SecretStr("oauth-client-secret-0123"),
    )

    assert set(secrets_of(settings)) >= {
        COMETLY_KEY,
        "http-token-0123456789",
        "hunter2-password",
        "oauth-client-secret-0123",
    }


async def test_no_bearer_token_of_an_oauth_caller_reaches_a_log_line_or_a_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over HTTP with OAuth, at DEBUG: accepted, refused, short-scoped and undecidable tokens are never written."""
    caplog.set_level(logging.DEBUG)
    async with running() as served, httpx.AsyncClient(timeout=30) as http:
        headers = await session(http, served.url, READER)
        refused = await http.post(served.url, json=call("create_contact", NEW_CONTACT), headers=headers)
        invalid = await http.post(served.url, json=call("list_contacts", {}), headers=bearer("forged-" + WRITER))
        down = await http.post(served.url, json=call("list_contacts", {}), headers=bearer(DOWN))
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {WRITER}"}, timeout=30) as sdk_http,
            Client(streamable_http_client(served.url, http_client=sdk_http)) as client,
        ):
            created = await client.call_tool("create_contact", NEW_CONTACT)

    said = caplog.text + refused.text + invalid.text + down.text + text_of(created)
    for token in [*TOKENS, DOWN, "forged-" + WRITER]:
        assert token not in said
