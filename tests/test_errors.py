"""Every failure is a tool result `[class] message` that says what to do next, and never leaks the key."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import respx
from mcp import Client

from contacts_mcp.server.app import build_server
from tests.conftest import COMETLY_KEY, make_settings, text_of

pytestmark = pytest.mark.anyio

LIST_ARGS = {"start_date": "2024-01-01", "end_date": "2024-01-31"}


def error_text(result: Any) -> str:
    assert result.is_error, result.content
    text: str = text_of(result)
    assert COMETLY_KEY not in text
    return text


def error_class(result: Any) -> str:
    found = re.findall(r"\[([a-z_]+)\]", error_text(result))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"message": "Unauthenticated."}, "authentication_error"),
        (403, {"message": "Subscription inactive."}, "permission_error"),
        (404, {"message": "Contact not found."}, "not_found"),
        (422, {"message": "Invalid contact ID provided"}, "validation_error"),
        (500, {"message": "Server Error"}, "upstream_unavailable"),
        (502, "<html><body>Bad gateway</body></html>", "upstream_unavailable"),
    ],
)
async def test_upstream_statuses_map_to_error_classes_with_the_upstream_message(
    cometly: respx.MockRouter, client: Client, status: int, body: Any, expected: str
) -> None:
    if isinstance(body, dict):
        cometly.get("/contacts/42").respond(status, json=body)
    else:
        cometly.get("/contacts/42").respond(status, text=body, headers={"content-type": "text/html"})

    result = await client.call_tool("get_contact", {"contact_id": "42"})

    assert error_class(result) == expected
    if isinstance(body, dict):
        assert body["message"] in error_text(result)


async def test_not_found_tells_the_model_where_ids_come_from(cometly: respx.MockRouter, client: Client) -> None:
    cometly.get("/contacts/42").respond(404, json={"message": "Contact not found."})

    text = error_text(await client.call_tool("get_contact", {"contact_id": "42"}))

    assert "list_contacts" in text


async def test_an_upstream_422_is_a_validation_error_carrying_laravel_field_errors(
    cometly: respx.MockRouter, client: Client
) -> None:
    cometly.get("/contacts").respond(
        422,
        json={
            "message": "The selected custom field is not configured.",
            "errors": {"custom_field_filters.0.field": ["profile_field_7 has no label in this space."]},
        },
    )

    result = await client.call_tool(
        "filter_by_custom_field",
        {**LIST_ARGS, "conditions": [{"field": "profile_field_7", "operator": "any"}]},
    )

    assert error_class(result) == "validation_error"
    assert "profile_field_7 has no label in this space." in error_text(result)


async def test_an_authentication_failure_is_not_retried(cometly: respx.MockRouter, client: Client) -> None:
    route = cometly.get("/contacts/42").respond(401, json={"message": "Unauthenticated."})

    result = await client.call_tool("get_contact", {"contact_id": "42"})

    assert error_class(result) == "authentication_error"
    assert route.call_count == 1


async def test_a_429_beyond_the_allowed_wait_is_rate_limited_with_the_seconds_to_wait(
    cometly: respx.MockRouter,
) -> None:
    route = cometly.get("/contacts/42").respond(
        429, json={"message": "Too Many Attempts."}, headers={"Retry-After": "45"}
    )

    async with Client(build_server(make_settings(max_wait_seconds=5))) as client:
        first = await client.call_tool("get_contact", {"contact_id": "42"})
        second = await client.call_tool("get_contact", {"contact_id": "42"})

    assert error_class(first) == "rate_limited"
    assert "Retry after 45 s" in error_text(first)
    # The 429 blocked the budget for every caller: the second call is refused without being sent.
    assert error_class(second) == "rate_limited"
    assert route.call_count == 1


async def test_a_short_retry_after_is_waited_out_and_the_call_succeeds(
    cometly: respx.MockRouter, client: Client
) -> None:
    cometly.get("/contacts/42").mock(
        side_effect=[
            httpx.Response(429, json={"message": "Too Many Attempts."}, headers={"Retry-After": "0.05"}),
            httpx.Response(200, json={"id": 42}),
        ]
    )

    result = await client.call_tool("get_contact", {"contact_id": "42"})

    assert not result.is_error
    assert result.structured_content == {"id": "42", "provider": "cometly"}


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("connection refused"), "Could not reach Cometly"),
        (httpx.ReadTimeout("timed out"), "did not answer within"),
    ],
)
async def test_network_failures_are_upstream_unavailable(
    cometly: respx.MockRouter, client: Client, failure: Exception, expected: str
) -> None:
    cometly.get("/contacts/42").mock(side_effect=failure)

    result = await client.call_tool("get_contact", {"contact_id": "42"})

    assert error_class(result) == "upstream_unavailable"
    assert expected in error_text(result)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}),
        httpx.Response(200),
        httpx.Response(200, json=["not", "a", "contact"]),
        httpx.Response(200, json={"no_id": True}),
    ],
)
async def test_a_body_that_is_not_a_contact_is_upstream_unavailable(
    cometly: respx.MockRouter, client: Client, response: httpx.Response
) -> None:
    cometly.get("/contacts/42").mock(return_value=response)

    result = await client.call_tool("get_contact", {"contact_id": "42"})

    assert error_class(result) == "upstream_unavailable"


async def test_a_list_without_data_is_upstream_unavailable(cometly: respx.MockRouter, client: Client) -> None:
    cometly.get("/contacts").respond(200, json={"message": "ok"})

    assert error_class(await client.call_tool("list_contacts", LIST_ARGS)) == "upstream_unavailable"


async def test_an_unknown_tool_is_not_supported_and_names_the_tools_there_are(client: Client) -> None:
    result = await client.call_tool("delete_contact", {"contact_id": "1"})

    assert error_class(result) == "not_supported"
    assert "get_contact" in error_text(result)


async def test_a_bug_in_the_server_is_an_internal_error_without_details(
    cometly: respx.MockRouter, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contacts_mcp.server.providers.cometly import Cometly

    def broken(self: Cometly, body: Any) -> Any:
        raise RuntimeError(f"secret detail {COMETLY_KEY}")

    monkeypatch.setattr(Cometly, "_detail", broken)
    cometly.get("/contacts/42").respond(200, json={"id": 42})

    result = await client.call_tool("get_contact", {"contact_id": "42"})

    assert error_class(result) == "internal_error"
    assert "secret detail" not in error_text(result)


async def test_the_server_keeps_serving_after_every_kind_of_failure(cometly: respx.MockRouter, client: Client) -> None:
    cometly.get("/contacts/1").mock(side_effect=httpx.ConnectError("refused"))
    cometly.get("/contacts/2").respond(500, text="oops")
    cometly.get("/contacts/3").respond(200, json={"id": 3})

    await client.call_tool("get_contact", {"contact_id": "1"})
    await client.call_tool("get_contact", {"contact_id": "2"})
    await client.call_tool("get_contact", {"contact_id": "x"})
    result = await client.call_tool("get_contact", {"contact_id": "3"})

    assert not result.is_error


async def test_no_output_or_log_line_contains_the_api_key(
    cometly: respx.MockRouter, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    cometly.get("/contacts/1").mock(side_effect=httpx.ConnectError("refused"))
    cometly.get("/contacts/2").respond(401, json={"message": "Unauthenticated."})
    cometly.get("/contacts/3").mock(side_effect=httpx.ReadTimeout("slow"))
    cometly.get("/contacts/4").respond(429, json={"message": "Too Many Attempts."}, headers={"Retry-After": "600"})

    texts = [
        error_text(await client.call_tool("get_contact", {"contact_id": str(contact_id)})) for contact_id in range(1, 5)
    ]

    assert len(texts) == 4
    assert COMETLY_KEY not in caplog.text
