"""Crafted cursors are refused as `[validation_error]`, never an internal error, however they are made.

A model passes back whatever it likes as `cursor`. The server's own resume cursor (`r1.` + base64url
JSON) and Clemta's (base64url JSON `{"skip": n}`) are read strictly; anything else reaches Cometly
(here the sandbox), which refuses it. Deep nesting, huge numbers, bytes that are not UTF-8, wrong
types, NaN, duplicate keys and lone surrogates are the forms that once crashed or slipped through.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from mcp import Client
from mcp_types import CallToolResult
from starlette.applications import Starlette

from contacts_mcp.server.errors import ValidationFailed
from contacts_mcp.server.paging import MAX_PAGE, RESUME_PREFIX, Resume
from contacts_mcp.server.providers.clemta import MAX_SKIP, decode_cursor, encode_cursor
from contacts_mcp.server.sandbox import create_app, sandbox_of
from tests.conftest import sandboxed_server, text_of
from tests.sandbox.support import NOW, UNLIMITED

PROVIDERS = ("cometly", "clemta")
WINDOW = {"start_date": "2026-01-01", "end_date": "2026-03-15"}


def b64(payload: str | bytes) -> str:
    """base64url without padding, as the server writes its cursors; `payload` may hold lone surrogates."""
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def resume(payload: str | bytes) -> str:
    return RESUME_PREFIX + b64(payload)


CRAFTED: dict[str, str] = {
    "resume nested 1490 deep": resume("[" * 1490),
    "clemta nested 1490 deep": b64("[" * 1490),
    "clemta skip nested deep": b64('{"skip": ' + "[" * 1400 + "}"),
    "resume cursor nested deep": resume('{"c": ' + "{" * 1400 + "}"),
    "resume upstream cursor a lone surrogate": resume('{"c":"\\ud800","a":"1","n":1}'),
    "resume after a lone surrogate": resume('{"c":null,"a":"\\udfff","n":1}'),
    "resume after a list": resume('{"c":null,"a":[1],"n":1}'),
    "resume after a number": resume('{"c":null,"a":7,"n":1}'),
    "resume shown of 1400 digits": resume('{"c":null,"a":"1","n":' + "9" * 1400 + "}"),
    "resume shown past a page": resume(json.dumps({"c": None, "a": "1", "n": MAX_PAGE + 1})),
    "resume shown NaN": resume('{"c":null,"a":"1","n":NaN}'),
    "resume shown Infinity": resume('{"c":null,"a":"1","n":Infinity}'),
    "resume shown a float": resume('{"c":null,"a":"1","n":1.0}'),
    "resume shown true": resume('{"c":null,"a":"1","n":true}'),
    "resume a key twice": resume('{"c":null,"a":"1","n":1,"n":2}'),
    "resume an extra key": resume('{"c":null,"a":"1","n":1,"x":0}'),
    "resume not UTF-8": resume(b'{"c":"\xff","a":"1","n":1}'),
    "resume UTF-16": resume('{"c":null,"a":"1","n":1}'.encode("utf-16")),
    "resume not base64": RESUME_PREFIX + "!!!!",
    "resume of 1997 characters": RESUME_PREFIX + "A" * 1997,
    "clemta skip of 1400 digits": b64('{"skip": ' + "9" * 1400 + "}"),
    "clemta skip past the bound": encode_cursor(MAX_SKIP + 1),
    "clemta skip 1e400": b64('{"skip": 1e400}'),
    "clemta skip NaN": b64('{"skip": NaN}'),
    "clemta skip -Infinity": b64('{"skip": -Infinity}'),
    "clemta skip twice": b64('{"skip": 1, "skip": 2}'),
    "clemta skip a string": b64('{"skip": "1"}'),
    "clemta skip negative": encode_cursor(-1),
    "cometly id in superscript digits": b64('{"id":"\u00b2","_pointsToNextItems":true}'),
    "cometly id nested deep": b64('{"id":' + "[" * 1400 + "}"),
}
"""Cursors that once ended in `[internal_error]` or were taken as if the server had made them."""


@pytest.fixture(scope="module")
def sandbox_app() -> Iterator[Starlette]:
    app = create_app(contacts=40, now=NOW, rate_limits=UNLIMITED)
    yield app
    sandbox_of(app).store.close()


class Session:
    """A client connected to the sandboxed server, called from synchronous code (hypothesis's examples)."""

    def __init__(self, portal: BlockingPortal, client: Client) -> None:
        self._portal = portal
        self._client = client

    def list_contacts(self, provider: str, cursor: str) -> CallToolResult:
        return self._portal.call(self._call, {**WINDOW, "provider": provider, "cursor": cursor})

    async def _call(self, arguments: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(20):
            return await self._client.call_tool("list_contacts", arguments)


@pytest.fixture(scope="module")
def session(sandbox_app: Starlette) -> Iterator[Session]:
    server = sandboxed_server(sandbox_app, max_wait_seconds=0)
    with start_blocking_portal("asyncio") as portal, portal.wrap_async_context_manager(Client(server)) as client:
        yield Session(portal, client)


def refused(result: CallToolResult) -> str:
    """The text of a call that must have been refused as a validation error."""
    text = text_of(result)
    assert result.is_error, text[:300]
    assert text.startswith("[validation_error]"), text[:300]
    return text


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("cursor", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_cursor_is_a_validation_error(session: Session, provider: str, cursor: str) -> None:
    text = refused(session.list_contacts(provider, cursor))

    if cursor.startswith(RESUME_PREFIX) or provider == "clemta":  # read here; others are Cometly's to refuse
        assert "pass next_cursor" in text


@pytest.mark.parametrize("cursor", [c for c in CRAFTED.values() if c.startswith(RESUME_PREFIX)])
def test_resume_decode_refuses_a_crafted_cursor_as_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationFailed):
        Resume.decode(cursor)


@pytest.mark.parametrize("cursor", [c for c in CRAFTED.values() if not c.startswith(RESUME_PREFIX)])
def test_clemta_decode_refuses_a_crafted_cursor_as_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationFailed):
        decode_cursor(cursor)


@given(
    upstream=st.none() | st.text(max_size=200),
    after=st.text(min_size=1, max_size=40),
    shown=st.integers(1, MAX_PAGE),
    skip=st.integers(0, MAX_SKIP),
)
def test_the_servers_own_cursors_read_back_as_written(upstream: str | None, after: str, shown: int, skip: int) -> None:
    written = Resume(cursor=upstream, after=after, shown=shown)

    assert Resume.decode(written.encode()) == (upstream, written)
    assert decode_cursor(encode_cursor(skip)) == skip


# --- Any cursor at all -------------------------------------------------------------------------------------------
# Hypothesis raises the recursion limit while it runs, so deep nesting is checked by the cases above instead.

TEXTS: SearchStrategy[str] = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(categories=["Cs", "Ll", "Nd"]), min_size=1, max_size=5),  # lone surrogates: "\\ud800"
)
JSON_SCALARS: SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and infinities included: json.dumps writes them as NaN, Infinity, -Infinity
    TEXTS,
)
JSON_VALUES: SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
FIELDS: SearchStrategy[dict[str, Any]] = st.one_of(
    st.fixed_dictionaries({"c": JSON_VALUES, "a": st.one_of(TEXTS, JSON_VALUES), "n": st.integers(1, 10)}),
    st.fixed_dictionaries({"c": st.none() | TEXTS, "a": TEXTS, "n": JSON_VALUES}),
    st.fixed_dictionaries({"skip": JSON_VALUES}),
    st.dictionaries(st.sampled_from(["c", "a", "n", "skip", "id", "_pointsToNextItems"]), JSON_VALUES, max_size=4),
)
"""Objects of the keys the cursors have, their values hostile, valid but for one, or any."""
PAYLOADS: SearchStrategy[str | bytes] = st.one_of(
    FIELDS.map(json.dumps),
    FIELDS.map(lambda fields: json.dumps(fields)[:-1] + ', "skip": 1, "n": 2}'),  # keys given twice
    JSON_VALUES.map(json.dumps),
    st.integers(1, 1_490).map(lambda depth: "[" * depth),
    st.text(max_size=300),
    st.binary(max_size=1_400),
)
CURSORS: SearchStrategy[str] = st.one_of(
    PAYLOADS.map(resume),
    PAYLOADS.map(b64),
    st.text(max_size=2_000),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.", max_size=2_000),
)


@given(cursor=CURSORS)
@settings(max_examples=400)
def test_a_cursor_is_read_as_one_the_server_could_have_made_or_refused_as_a_validation_error(cursor: str) -> None:
    with contextlib.suppress(ValidationFailed):  # any other exception fails the test
        upstream, resumed = Resume.decode(cursor)
        if upstream is not None:
            upstream.encode("utf-8")  # raises on a lone surrogate, which no upstream request can carry
        if resumed is not None:
            assert isinstance(resumed.after, str)
            assert type(resumed.shown) is int
            assert 1 <= resumed.shown <= MAX_PAGE
    with contextlib.suppress(ValidationFailed):
        skip = decode_cursor(cursor)
        assert type(skip) is int
        assert 0 <= skip <= MAX_SKIP


@given(cursor=CURSORS, provider=st.sampled_from(PROVIDERS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_cursor_makes_list_contacts_an_internal_error(session: Session, cursor: str, provider: str) -> None:
    result = session.list_contacts(provider, cursor)

    text = text_of(result)
    assert not result.is_error or text.startswith("[validation_error]"), text[:300]
