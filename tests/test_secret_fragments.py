"""No piece of a secret, 8 characters or longer, in any output: wherever text is cut, and whatever the upstream echoes.

A secret cut short is still a secret: the server removes secrets from an upstream's answer before
anything shortens it, and every run of text covered by 8-character pieces of a secret becomes
`[redacted]`, so an upstream that pads the key, splits it or echoes only part of it leaks nothing
either. The sweeps move the key across every cut position of the server's caps (the quote of an
upstream's message, one contact's field, a page's row, the result ceiling, an echoed id) and scan
the result text, its structured content, the error text and the log at DEBUG for any 8-character
piece of the key.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from mcp import Client
from mcp_types import CallToolResult
from pydantic import SecretStr

from contacts_mcp.server.app import build_server
from contacts_mcp.server.http import QUOTED_CHARS
from contacts_mcp.server.results import CONTACT_CAPS, PAGE_CAPS, REDACTED, RedactingFilter, Redactor, secrets_of
from contacts_mcp.server.settings import CometlySettings, Settings, parse_rate_limits
from tests.conftest import COMETLY_URL, make_settings, text_of

pytestmark = pytest.mark.anyio

KEY = "sk_live_SECRETKEY_abcdef012345678"
TOKEN = "http-token-Zq8wPn3vKxRt"
PASSWORD = 'pa"ss\\word-Hq7Lm'
"""A Redis password with the characters JSON escapes, so values are redacted as JSON writes them too."""
PIECE_CHARS = 8
UNLIMITED = parse_rate_limits("cometly.get_contact=100000/1,cometly.list_contacts=100000/1")


def pieces(*secrets: str) -> set[str]:
    """Every 8-character piece of `secrets`: none may appear in any output."""
    return {secret[at : at + PIECE_CHARS] for secret in secrets for at in range(len(secret) - PIECE_CHARS + 1)}


PIECES = pieces(KEY, TOKEN, PASSWORD)


def leaked(*texts: str) -> list[str]:
    """The pieces of a secret found in `texts`."""
    return sorted({piece for piece in PIECES for text in texts if piece in text})


def said(result: CallToolResult) -> list[str]:
    """Everything a tool result shows: each text block and the structured content as JSON."""
    return [text_of(result), json.dumps(result.structured_content, ensure_ascii=False)]


def settings(**overrides: Any) -> Settings:
    return make_settings(
        cometly=CometlySettings(api_key=SecretStr(KEY), base_url=COMETLY_URL),
        http_token=SecretStr(TOKEN),
        rate_limits=UNLIMITED,  # a sweep calls the same endpoint more often than its budget allows
        **overrides,
    )


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """Every log line at DEBUG (tracebacks included) as the server's handlers write it, through its filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor(secrets_of(settings()))))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def padded_by_id(status: int, body: Callable[[int], Any]) -> Callable[[httpx.Request], httpx.Response]:
    """A side effect answering `/contacts/<n>` with `body(n)`: the id says how much padding comes before the key."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body(int(request.url.path.rsplit("/", 1)[-1])))

    return answer


# --- Sweeps over every cut position ---------------------------------------------------------------------------------


QUOTE_SWEEP = range(QUOTED_CHARS - len(KEY) - PIECE_CHARS, QUOTED_CHARS + 1)
FIELD_SWEEP = range(CONTACT_CAPS.string_chars - len(KEY) - PIECE_CHARS, CONTACT_CAPS.string_chars + 1)
ROW_SWEEP = range(PAGE_CAPS.string_chars - len(KEY) - PIECE_CHARS, PAGE_CAPS.string_chars + 1)


async def test_no_piece_of_a_key_an_error_echoes_survives_the_quote_limit_wherever_it_cuts(
    cometly: respx.MockRouter, log: io.StringIO
) -> None:
    cometly.route(method="GET", path__regex=r"/contacts/\d+$").mock(
        side_effect=padded_by_id(401, lambda pad: {"message": "Z" * pad + KEY})
    )

    outputs: list[str] = []
    async with Client(build_server(settings())) as client:
        for pad in QUOTE_SWEEP:
            result = await client.call_tool("get_contact", {"contact_id": str(pad)})
            assert text_of(result).startswith("[authentication_error]")
            assert "Cometly said:" in text_of(result)  # the quote is still there, only without the key
            outputs += said(result)

    assert leaked(*outputs, log.getvalue()) == []
    assert REDACTED in outputs[0]  # with the least padding, the key was within the quote


async def test_no_piece_of_a_key_in_a_contact_field_survives_the_field_cap_wherever_it_cuts(
    cometly: respx.MockRouter, log: io.StringIO
) -> None:
    cometly.route(method="GET", path__regex=r"/contacts/\d+$").mock(
        side_effect=padded_by_id(200, lambda pad: {"id": pad, "names": [{"name": "Y" * pad + KEY}]})
    )

    outputs: list[str] = []
    async with Client(build_server(settings())) as client:
        for pad in FIELD_SWEEP:
            result = await client.call_tool("get_contact", {"contact_id": str(pad)})
            assert result.structured_content is not None
            assert result.structured_content["names"][0].startswith("Y" * min(pad, CONTACT_CAPS.string_chars - 1))
            outputs += said(result)

    assert leaked(*outputs, log.getvalue()) == []


async def test_no_piece_of_a_key_in_a_page_survives_the_row_cap_wherever_it_cuts(
    cometly: respx.MockRouter, log: io.StringIO
) -> None:
    rows = [{"id": pad, "name": "Y" * pad + KEY, "email": f"c{pad}@example.com"} for pad in ROW_SWEEP]
    cometly.get("/contacts").respond(200, json={"data": rows, "per_page": len(rows), "next_cursor": None})

    async with Client(build_server(settings())) as client:
        result = await client.call_tool(
            "list_contacts", {"start_date": "2026-01-01", "end_date": "2026-01-31", "per_page": len(rows)}
        )

    assert result.structured_content is not None
    assert len(result.structured_content["contacts"]) == len(rows)
    assert leaked(*said(result), log.getvalue()) == []


async def test_no_piece_of_a_key_survives_the_result_ceiling_halving_a_long_value(cometly: respx.MockRouter) -> None:
    # About 4,500 characters pass the ceiling of 1,000 tokens: the longest value, the name, is halved.
    length = 1_990
    sweep = range(length // 2 - len(KEY) - PIECE_CHARS, length // 2 + 1)

    def contact(pad: int) -> dict[str, Any]:
        name = ("Y" * pad + KEY).ljust(length, "Y")
        return {"id": pad, "names": [{"name": name}], "locations": [{"location": "L" * 1_500}], "note": "N" * 1_000}

    cometly.route(method="GET", path__regex=r"/contacts/\d+$").mock(side_effect=padded_by_id(200, contact))

    outputs: list[str] = []
    async with Client(build_server(settings(max_result_tokens=1_000))) as client:
        for pad in sweep:
            result = await client.call_tool("get_contact", {"contact_id": str(pad)})
            assert result.structured_content is not None
            assert [cut["path"] for cut in result.structured_content["truncated"]["cuts"]] == ["names[0]"]
            outputs += said(result)

    assert leaked(*outputs) == []


async def test_no_piece_of_a_key_sent_as_an_argument_is_echoed_by_a_validation_message(
    cometly: respx.MockRouter, log: io.StringIO
) -> None:
    # The id check quotes the first 40 characters of a bad contact_id.
    route = cometly.route(method="GET", path__regex=r"/contacts/")

    outputs: list[str] = []
    async with Client(build_server(settings())) as client:
        for pad in range(40 - len(KEY) - PIECE_CHARS, 41):
            result = await client.call_tool("get_contact", {"contact_id": "x" * pad + KEY})
            assert text_of(result).startswith("[validation_error]")
            outputs += said(result)
        result = await client.call_tool("list_contacts", {"start_date": KEY, "end_date": "2026-01-31"})
        outputs += said(result)

    assert leaked(*outputs, log.getvalue()) == []
    assert route.call_count == 0


# --- Pieces: split, partial, in ids, in tracebacks ------------------------------------------------------------------


async def test_a_key_split_across_two_fields_and_interleaved_with_text_leaves_no_piece(
    cometly: respx.MockRouter, log: io.StringIO
) -> None:
    cometly.get("/contacts/4821").respond(
        200,
        json={
            "id": 4821,
            "names": [{"name": f"first {KEY[:16]}"}, {"name": f"token {TOKEN[:12]} and {TOKEN[12:]}"}],
            "emails": [{"email": f"{KEY[16:]}@example.com"}],
        },
    )

    async with Client(build_server(settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert result.structured_content is not None
    assert result.structured_content["names"] == [f"first {REDACTED}", f"token {REDACTED} and {REDACTED}"]
    assert leaked(*said(result), log.getvalue()) == []


async def test_a_key_the_upstream_cut_itself_leaves_no_piece_in_the_error_or_the_fields(
    cometly: respx.MockRouter, log: io.StringIO
) -> None:
    cometly.get("/contacts/4821").respond(401, json={"message": f"Invalid key ...{KEY[:13]}"})
    cometly.get("/contacts/4822").respond(200, json={"id": 4822, "names": [{"name": f"{KEY[5:20]}…"}]})

    async with Client(build_server(settings())) as client:
        failed = await client.call_tool("get_contact", {"contact_id": "4821"})
        fetched = await client.call_tool("get_contact", {"contact_id": "4822"})

    assert text_of(failed).startswith("[authentication_error]")
    assert f"...{REDACTED}" in text_of(failed)
    assert fetched.structured_content is not None
    assert fetched.structured_content["names"] == [f"{REDACTED}…"]
    assert leaked(*said(failed), *said(fetched), log.getvalue()) == []


async def test_a_piece_of_a_key_in_an_upstream_id_is_redacted_in_the_page(
    cometly: respx.MockRouter, log: io.StringIO
) -> None:
    rows = [{"id": f"c-{KEY[3:21]}", "email": "a@example.com"}, {"id": 7, "email": "b@example.com"}]
    cometly.get("/contacts").respond(200, json={"data": rows, "per_page": 2, "next_cursor": f"cur{KEY[:9]}"})

    async with Client(build_server(settings())) as client:
        result = await client.call_tool(
            "list_contacts", {"start_date": "2026-01-01", "end_date": "2026-01-31", "per_page": 2}
        )

    assert result.structured_content is not None
    assert [contact["id"] for contact in result.structured_content["contacts"]] == [f"c-{REDACTED}", "7"]
    assert leaked(*said(result), log.getvalue()) == []


async def test_a_piece_of_a_key_in_a_logged_traceback_is_redacted(cometly: respx.MockRouter, log: io.StringIO) -> None:
    cometly.get("/contacts/4821").mock(side_effect=RuntimeError(f"pool broke while sending {KEY[:-4]}"))

    async with Client(build_server(settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert text_of(result).startswith("[internal_error]")
    logged = log.getvalue()
    assert "Traceback" in logged
    assert f"pool broke while sending {REDACTED}" in logged
    assert leaked(*said(result), logged) == []


async def test_a_failed_resource_read_leaves_no_piece_of_the_key(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts").respond(401, json={"message": "Z" * (QUOTED_CHARS - 20) + KEY})

    async with Client(build_server(settings())) as client:
        with pytest.raises(Exception) as failed:  # noqa: PT011 - whatever the client raises for a resource error
            await client.read_resource("contacts://custom-fields")

    assert "[authentication_error]" in str(failed.value)
    assert leaked(str(failed.value)) == []


# --- The rule itself ------------------------------------------------------------------------------------------------


def test_every_run_covered_by_pieces_of_a_secret_becomes_one_redacted_and_shorter_pieces_stay() -> None:
    redactor = Redactor([KEY, TOKEN])

    assert redactor.text(f"a {KEY} b") == f"a {REDACTED} b"
    assert redactor.text(f"a{KEY[:8]}b{KEY[3:20]}!") == f"a{REDACTED}b{REDACTED}!"
    assert redactor.text(f"{KEY[:10]}{KEY[5:20]}{TOKEN[2:11]}!") == f"{REDACTED}!"  # touching runs are one run
    assert redactor.text(f"{KEY}{KEY}") == REDACTED
    # Pieces shorter than 8 characters, and secrets shorter than 8, are ordinary text.
    assert redactor.text(f"x{KEY[:7]}y{KEY[-7:]}z") == f"x{KEY[:7]}y{KEY[-7:]}z"
    assert not Redactor(["short12"])


def test_values_are_redacted_in_keys_and_strings_and_returned_as_they_were_when_clean() -> None:
    redactor = Redactor([KEY, PASSWORD])
    clean: dict[str, Any] = {"contacts": [{"id": "1", "names": ["Ann"], "n": 3, "ok": True, "x": None}]}
    holding = {f"k{KEY[:9]}": [f"{PASSWORD[1:12]}!", {"n": 1.5, "s": f"{KEY[9:30]}"}]}

    assert redactor.value(clean) is clean
    assert redactor.value(holding) == {f"k{REDACTED}": [f"{REDACTED}!", {"n": 1.5, "s": REDACTED}]}
    assert redactor.found_in(holding)
    assert not redactor.found_in(clean)


def test_the_redis_password_is_a_secret_as_written_and_as_decoded() -> None:
    found = secrets_of(make_settings(redis_url=SecretStr("redis://:p%40ss-w0rd-Hq7L@127.0.0.1:6379/0")))

    assert {"p%40ss-w0rd-Hq7L", "p@ss-w0rd-Hq7L"} <= set(found)
