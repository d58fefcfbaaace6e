"""A contact's journey summed up: first and last touch, and conversions by name with their amounts.

`journey_of` reads Cometly's `events` (UPSTREAMS.md: conversions carry `event_name`, `amount`,
`event_time_utc`; touchpoints carry `source`, `campaign_name`, `adset_name`, `ad_name`,
`account_name`, `touchpoint_url`, `event_time_utc`) and `attribution_journey` reads HighLevel's
`attributionSource`/`lastAttributionSource`, so both give the same `Journey` shape. Nothing here
applies an attribution model: first and last touch are the oldest and newest touchpoints, and
amounts are summed as the provider reported them, in the account's currency (none is returned).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal, cast

from pydantic import BaseModel, Field, JsonValue

_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_MILLISECONDS = 100_000_000_000
"""A Unix time above this is read as milliseconds (seconds would be past the year 5000)."""


class Touch(BaseModel):
    """One touchpoint: where the contact came from at that moment. Fields the provider left empty are left out."""

    at: str | None = Field(default=None, description="When it happened (ISO 8601 UTC), when the provider says.")
    source: str | None = Field(default=None, description="The ad platform or source, e.g. facebook, google.")
    campaign: str | None = Field(default=None, description="The campaign's name.")
    ad_set: str | None = Field(default=None, description="The ad set's name.")
    ad: str | None = Field(default=None, description="The ad's name.")
    account: str | None = Field(default=None, description="The ad account's name.")
    url: str | None = Field(default=None, description="The page it landed on, with its query (utm_... parameters).")


class ConversionTotal(BaseModel):
    """The conversions of one event name."""

    event_name: str = Field(description="The conversion's name as Cometly sends it, e.g. purchase.")
    count: int = Field(description="How many there are.")
    total_amount: float = Field(description="Their amounts added up, as reported (see amount_missing).")
    amount_missing: int = Field(
        default=0, description="How many had no amount, or one that is not a number: counted, not summed."
    )
    first_at: str | None = Field(default=None, description="The oldest one's time (ISO 8601 UTC).")
    last_at: str | None = Field(default=None, description="The newest one's time (ISO 8601 UTC).")


class Journey(BaseModel):
    """The contact's journey summed up, computed from every event the provider returned (before `limit`).

    No attribution model is applied: first_touch and last_touch are simply the oldest and newest
    touchpoints. Amounts are in the account's currency as Cometly reports them (no currency is
    returned) and are summed as reported.
    """

    basis: Literal["ad_touchpoints", "all_touchpoints", "highlevel_attribution"] = Field(
        description="What first/last touch are taken from. ad_touchpoints: Cometly's events with direct (non-ad) "
        "touchpoints hidden (include_direct_touchpoints false), so they are the first and last AD touch; "
        "all_touchpoints: direct ones included; highlevel_attribution: HighLevel's attributionSource (first) "
        "and lastAttributionSource (last), which carry no time and no conversions."
    )
    first_touch: Touch | None = Field(default=None, description="The oldest touchpoint.")
    last_touch: Touch | None = Field(default=None, description="The newest touchpoint.")
    events: int | None = Field(default=None, description="Cometly: how many events were summed up (all returned).")
    touchpoints: int | None = Field(default=None, description="Cometly: how many of them are touchpoints.")
    conversions: list[ConversionTotal] | None = Field(
        default=None, description="Cometly: the conversions by event_name, the most frequent first."
    )
    conversion_count: int | None = Field(default=None, description="Cometly: how many conversions in all.")
    total_amount: float | None = Field(
        default=None,
        description="Cometly: every conversion's amount added up, as reported, in the account's currency "
        "(Cometly returns none).",
    )
    amount_missing: int | None = Field(
        default=None, description="Cometly: conversions without a usable amount (counted, not summed)."
    )
    note: str | None = Field(default=None, description="What the summary could not read, when something.")


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def moment(value: object) -> datetime | None:
    """An event's time: ISO 8601 text (read as UTC without an offset), or Unix seconds or milliseconds.

    Cometly documents `event_time_utc` without its format; anything else is None, never a guess.
    """
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        value = float(value.strip())
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                return None
            seconds = value / 1000 if abs(value) >= _MILLISECONDS else value
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(value: object) -> Decimal | None:
    """An amount as reported: a number, or text that is one; None when it is neither (or not finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _touch(event: Mapping[str, JsonValue], at: datetime | None) -> Touch:
    return Touch(
        at=_iso(at),
        source=_text(event.get("source")),
        campaign=_text(event.get("campaign_name")),
        ad_set=_text(event.get("adset_name")),
        ad=_text(event.get("ad_name")),
        account=_text(event.get("account_name")),
        url=_text(event.get("touchpoint_url")),
    )


def _kind(event: Mapping[str, JsonValue]) -> Literal["conversion", "touchpoint"] | None:
    kind = event.get("type")
    return kind if kind in ("conversion", "touchpoint") else None


def journey_of(events: Sequence[Mapping[str, JsonValue]], *, direct_included: bool) -> Journey:
    """Sum up Cometly's events: first and last touch, and conversions by name.

    Args:
        events: Every event Cometly returned (documented newest first; any order is read right).
        direct_included: Whether direct touchpoints were asked for (`hide_direct_touchpoints=0`).

    Returns:
        The summary; with no events, one that says so (zero counts, no touch).
    """
    touches: list[tuple[datetime | None, int, Mapping[str, JsonValue]]] = []
    by_name: dict[str, list[tuple[datetime | None, Decimal | None]]] = {}
    unknown = 0
    for position, event in enumerate(events):
        at = moment(event.get("event_time_utc"))
        kind = _kind(event)
        if kind is None:
            unknown += 1
            continue
        if kind == "touchpoint":
            touches.append((at, position, event))
        else:
            name = _text(event.get("event_name")) or "(no name)"
            by_name.setdefault(name, []).append((at, _amount(event.get("amount"))))

    timed = sorted((at, position, event) for at, position, event in touches if at is not None)
    notes: list[str] = []
    if timed:
        first, last = timed[0], timed[-1]
        if len(timed) < len(touches):
            notes.append(f"{len(touches) - len(timed)} touchpoint(s) without a readable time are not ranked")
    elif touches:
        # No time to rank by: Cometly lists events newest first, so its order stands in.
        first, last = touches[-1], touches[0]
        notes.append("no touchpoint has a readable time: first/last touch follow Cometly's order (newest first)")
    else:
        first = last = None

    conversions: list[ConversionTotal] = []
    overall, missing = Decimal(0), 0
    for name, rows in by_name.items():
        amounts = [amount for _, amount in rows if amount is not None]
        times = sorted(at for at, _ in rows if at is not None)
        total = sum(amounts, Decimal(0))
        overall += total
        missing += len(rows) - len(amounts)
        conversions.append(
            ConversionTotal(
                event_name=name,
                count=len(rows),
                total_amount=float(total),
                amount_missing=len(rows) - len(amounts),
                first_at=_iso(times[0]) if times else None,
                last_at=_iso(times[-1]) if times else None,
            )
        )
    conversions.sort(key=lambda item: (-item.count, item.event_name))
    if unknown:
        notes.append(f"{unknown} event(s) of a type other than conversion or touchpoint are not summed up")
    untimed = sum(at is None for rows in by_name.values() for at, _ in rows)
    if untimed:
        notes.append(f"{untimed} conversion(s) without a readable time are counted but not in first_at/last_at")
    return Journey(
        basis="all_touchpoints" if direct_included else "ad_touchpoints",
        first_touch=None if first is None else _touch(first[2], first[0]),
        last_touch=None if last is None else _touch(last[2], last[0]),
        events=len(events),
        touchpoints=len(touches),
        conversions=conversions,
        conversion_count=sum(item.count for item in conversions),
        total_amount=float(overall),
        amount_missing=missing,
        note="; ".join(notes) + "." if notes else None,
    )


def _attribution(raw: object) -> Touch | None:
    if not isinstance(raw, Mapping):
        return None
    source = cast(Mapping[str, JsonValue], raw)
    touch = Touch(
        source=_text(source.get("utmSource")) or _text(source.get("medium")),
        campaign=_text(source.get("campaign")),
        url=_text(source.get("url")),
    )
    return touch if touch.model_dump(exclude_none=True) else None


def attribution_journey(first: object, last: object) -> Journey | None:
    """HighLevel's first and last touch (`attributionSource`, `lastAttributionSource`); None when it has neither."""
    first_touch, last_touch = _attribution(first), _attribution(last)
    if first_touch is None and last_touch is None:
        return None
    return Journey(basis="highlevel_attribution", first_touch=first_touch, last_touch=last_touch)
