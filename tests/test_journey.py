"""get_contact's journey summary: first and last touch, conversions by name, and what it covers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from mcp import Client
from pydantic import JsonValue
from starlette.applications import Starlette

from contacts_mcp.server.app import build_server
from contacts_mcp.server.sandbox import create_app, sandbox_of
from contacts_mcp.server.sandbox.generator import FIRST_ID
from contacts_mcp.server.sandbox.model import Event, utc_text
from contacts_mcp.server.settings import Rate
from contacts_mcp.tools.journey import attribution_journey, journey_of, moment
from tests.conftest import HIGHLEVEL_LOCATION, highlevel_settings, make_settings, sandboxed_server, text_of
from tests.sandbox.support import NOW, UNLIMITED

pytestmark = pytest.mark.anyio


def touchpoint(at: str | None, campaign: str, **rest: JsonValue) -> dict[str, JsonValue]:
    return {
        "type": "touchpoint",
        "event_time_utc": at,
        "source": "facebook",
        "campaign_name": campaign,
        "adset_name": f"{campaign} set",
        "ad_name": f"{campaign} ad",
        "account_name": "Northpeak Ads",
        "touchpoint_url": f"https://northpeak.example/?utm_campaign={campaign}",
        **rest,
    }


def conversion(at: str | None, name: str, amount: JsonValue) -> dict[str, JsonValue]:
    return {"type": "conversion", "event_time_utc": at, "event_name": name, "amount": amount}


EVENTS: list[dict[str, JsonValue]] = [
    conversion("2026-03-09 10:00:00", "purchase", 49.99),
    touchpoint("2026-03-08 09:00:00", "Spring Sale"),
    conversion("2026-03-05 12:00:00", "purchase", "100.01"),
    conversion("2026-03-04 12:00:00", "demo_booked", None),
    touchpoint("2026-03-02 08:30:00", "Retargeting"),
    touchpoint("2026-02-20 07:00:00", "Brand Launch"),
]
"""Newest first, as Cometly documents."""


@pytest.mark.parametrize("seed", range(5))
def test_first_and_last_touch_are_the_oldest_and_newest_touchpoints_in_any_order(seed: int) -> None:
    events = list(EVENTS)
    random.Random(seed).shuffle(events)

    journey = journey_of(events, direct_included=False)

    assert journey.first_touch is not None
    assert journey.last_touch is not None
    assert journey.first_touch.model_dump(exclude_none=True) == {
        "at": "2026-02-20T07:00:00Z",
        "source": "facebook",
        "campaign": "Brand Launch",
        "ad_set": "Brand Launch set",
        "ad": "Brand Launch ad",
        "account": "Northpeak Ads",
        "url": "https://northpeak.example/?utm_campaign=Brand Launch",
    }
    assert (journey.last_touch.campaign, journey.last_touch.at) == ("Spring Sale", "2026-03-08T09:00:00Z")
    assert journey.basis == "ad_touchpoints"


def test_conversions_are_totalled_by_name_and_a_missing_amount_is_counted_not_summed() -> None:
    journey = journey_of(
        [*EVENTS, conversion("2026-03-01 00:00:00", "purchase", "n/a"), conversion(None, "purchase", True)],
        direct_included=True,
    )

    assert [item.model_dump() for item in journey.conversions or []] == [
        {
            "event_name": "purchase",
            "count": 4,
            "total_amount": 150.0,  # 49.99 + "100.01", summed exactly
            "amount_missing": 2,  # "n/a" and a boolean
            "first_at": "2026-03-01T00:00:00Z",
            "last_at": "2026-03-09T10:00:00Z",
        },
        {
            "event_name": "demo_booked",
            "count": 1,
            "total_amount": 0.0,
            "amount_missing": 1,
            "first_at": "2026-03-04T12:00:00Z",
            "last_at": "2026-03-04T12:00:00Z",
        },
    ]
    assert (journey.events, journey.touchpoints, journey.conversion_count) == (8, 3, 5)
    assert (journey.total_amount, journey.amount_missing) == (150.0, 3)
    assert journey.basis == "all_touchpoints"
    assert journey.note is not None
    assert "1 conversion(s) without a readable time" in journey.note


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-08 09:00:00", "2026-03-08T09:00:00+00:00"),  # no offset: the key says UTC
        ("2026-03-08T09:00:00Z", "2026-03-08T09:00:00+00:00"),
        ("2026-03-08T11:00:00+02:00", "2026-03-08T09:00:00+00:00"),
        (1772960400, "2026-03-08T09:00:00+00:00"),
        ("1772960400", "2026-03-08T09:00:00+00:00"),
        (1772960400000, "2026-03-08T09:00:00+00:00"),  # milliseconds
        ("08/03/2026", None),
        ("", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        ({"date": "2026-03-08"}, None),
    ],
)
def test_event_times_are_read_in_every_plausible_form_and_nothing_else(value: object, expected: str | None) -> None:
    read = moment(value)
    assert (read.isoformat() if read else None) == expected


def test_touchpoints_without_readable_times_do_not_crash_and_are_said() -> None:
    events = [touchpoint("yesterday", "Odd"), touchpoint("2026-03-02 08:30:00", "Timed"), {"type": "pageview"}]

    journey = journey_of(events, direct_included=False)

    assert journey.first_touch is not None

    assert journey.first_touch.campaign == "Timed"
    assert journey.last_touch is not None
    assert journey.last_touch.campaign == "Timed"
    assert journey.note is not None
    assert "1 touchpoint(s) without a readable time" in journey.note
    assert "1 event(s) of a type other than" in journey.note

    untimed = journey_of([touchpoint(None, "Newest"), touchpoint(None, "Oldest")], direct_included=False)
    assert untimed.first_touch is not None
    assert untimed.first_touch.campaign == "Oldest"  # Cometly's order
    assert untimed.last_touch is not None
    assert untimed.last_touch.campaign == "Newest"


def test_no_events_give_an_empty_summary() -> None:
    journey = journey_of([], direct_included=False)

    assert journey.model_dump(exclude_none=True) == {
        "basis": "ad_touchpoints",
        "events": 0,
        "touchpoints": 0,
        "conversions": [],
        "conversion_count": 0,
        "total_amount": 0.0,
        "amount_missing": 0,
    }


def test_highlevel_attribution_is_its_first_and_last_touch() -> None:
    journey = attribution_journey(
        {"url": "https://a.example/?x", "campaign": "Spring", "utmSource": "google"}, {"url": "https://b.example/"}
    )

    assert journey is not None
    assert journey.model_dump(exclude_none=True) == {
        "basis": "highlevel_attribution",
        "first_touch": {"source": "google", "campaign": "Spring", "url": "https://a.example/?x"},
        "last_touch": {"url": "https://b.example/"},
    }
    assert attribution_journey(None, {}) is None


# --- Through the tool -------------------------------------------------------------------------------------------------


async def test_get_contact_summarises_every_event_even_those_limit_leaves_out(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts/4821").respond(200, json={"id": 4821, "events": EVENTS, "custom_fields": {}})

    async with Client(build_server(make_settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": "4821", "include_events": True, "limit": 2})

    assert not result.is_error, text_of(result)
    contact = result.structured_content
    assert contact is not None
    assert len(contact["events"]) == 2
    journey = contact["journey"]
    assert journey["events"] == 6
    assert journey["first_touch"]["campaign"] == "Brand Launch"  # the 6th event, cut from `events`
    assert (journey["conversion_count"], journey["total_amount"], journey["amount_missing"]) == (3, 150.0, 1)


async def test_get_contact_without_events_has_no_journey(cometly: respx.MockRouter) -> None:
    cometly.get("/contacts/4821").respond(200, json={"id": 4821, "custom_fields": {}})

    async with Client(build_server(make_settings())) as client:
        result = await client.call_tool("get_contact", {"contact_id": "4821"})

    assert result.structured_content is not None
    assert "journey" not in result.structured_content


@pytest.fixture
def sandbox() -> Iterator[Starlette]:
    app = create_app(contacts=60, now=NOW, rate_limits=UNLIMITED)
    yield app
    sandbox_of(app).store.close()


def _journey_contact(app: Starlette, *, include_direct: bool) -> tuple[int, list[Event]]:
    """A generated contact with at least two touchpoints and two conversions, and its events."""
    store = sandbox_of(app).store
    for contact_id in range(FIRST_ID, FIRST_ID + 60):
        events = [event for _, event in store.events(contact_id, include_direct=include_direct)]
        kinds = [event.kind for event in events]
        if kinds.count("touchpoint") >= 2 and kinds.count("conversion") >= 2:
            return contact_id, events
    raise AssertionError("the sandbox generated no contact with a long journey")


@pytest.mark.parametrize("include_direct", [False, True])
async def test_the_sandbox_journey_matches_its_generated_events(sandbox: Starlette, include_direct: bool) -> None:
    contact_id, events = _journey_contact(sandbox, include_direct=include_direct)
    touches = sorted((event for event in events if event.kind == "touchpoint"), key=lambda event: event.event_time)
    conversions = [event for event in events if event.kind == "conversion"]
    limits: dict[str, Any] = {"cometly.get_contact": (Rate(1_000, 60.0),)}

    async with Client(sandboxed_server(sandbox, rate_limits=limits)) as client:
        result = await client.call_tool(
            "get_contact",
            {
                "contact_id": str(contact_id),
                "include_events": True,
                "include_direct_touchpoints": include_direct,
                "limit": 1,
            },
        )

    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    journey = result.structured_content["journey"]
    assert journey["basis"] == ("all_touchpoints" if include_direct else "ad_touchpoints")
    assert journey["events"] == len(events)
    assert journey["first_touch"]["at"] == utc_text(touches[0].event_time).replace(" ", "T") + "Z"
    assert journey["last_touch"]["at"] == utc_text(touches[-1].event_time).replace(" ", "T") + "Z"
    assert journey["first_touch"].get("campaign") == touches[0].campaign_name
    assert journey["conversion_count"] == len(conversions)
    paid = [event.amount for event in conversions if event.amount is not None]
    assert journey["total_amount"] == pytest.approx(sum(paid))
    assert journey.get("amount_missing", 0) == len(conversions) - len(paid)


async def test_a_highlevel_contact_carries_its_attribution_as_first_and_last_touch(
    highlevel: respx.MockRouter,
) -> None:
    contact = {
        "id": "abc123",
        "attributionSource": {"url": "https://a.example/", "campaign": "Spring", "utmSource": "google"},
        "lastAttributionSource": {"url": "https://b.example/", "campaign": "Retarget", "utmSource": "facebook"},
    }
    highlevel.get("/contacts/abc123").respond(200, json={"contact": contact})
    settings = make_settings(highlevel=highlevel_settings(location=HIGHLEVEL_LOCATION), default_provider="highlevel")

    async with Client(build_server(settings)) as client:
        result = await client.call_tool("get_contact", {"contact_id": "abc123", "provider": "highlevel"})

    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    journey = result.structured_content["journey"]
    assert journey["basis"] == "highlevel_attribution"
    assert journey["first_touch"]["campaign"] == "Spring"
    assert journey["last_touch"]["source"] == "facebook"
