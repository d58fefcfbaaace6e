"""What every vendor's routes share: the sandbox context, the caller's identity and rate limits.

Each vendor module supplies a `VendorRules` (how it authenticates and how its errors look) and a
list of routes built with `guarded`, which counts the request against the caller's budget,
answers the vendor's 401/429 when due, and stamps the rate-limit headers on every response.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Literal, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from .faults import FaultPlan
from .ratelimit import Decision, SlidingWindowLimiter
from .store import Store

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Sandbox:
    """The state every route reads: the database, the rate limiter and the clock; and the faults in force."""

    store: Store
    limiter: SlidingWindowLimiter
    clock: Callable[[], datetime]
    """The current aware UTC time: creation times and "today" for age filters."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    """The failures injected in front of every vendor; switch them while the sandbox runs."""
    zone: tzinfo = UTC
    """The Cometly Space's timezone, in which its list reads `start_date` and `end_date`."""
    ambiguous: Literal["earlier", "later"] = "earlier"
    """Which moment a wall time the zone shows twice (a DST fall-back hour) means, or, for one it skips,
    which side's offset it is read with: "earlier" is PHP's (and so, presumably, Cometly's) choice."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as budgets go, and the vendor's refusal if they may not proceed."""

    client: str
    """The API key, or `anonymous:<host>` when no valid key came (budgeted apart from every key)."""
    rejection: Response | None = None


class VendorRules(Protocol):
    """How one vendor authenticates and shapes its errors."""

    def identify(self, request: Request) -> Caller:
        """The caller behind a request, with the vendor's 401/400 when the request may not proceed."""
        ...

    def too_many_requests(self, decision: Decision) -> Response:
        """The vendor's 429, with the vendor's `Retry-After` if it sends one."""
        ...

    def rate_headers(self, decision: Decision) -> Mapping[str, str]:
        """The rate-limit headers this vendor puts on every response."""
        ...

    def route_error(self, request: Request, status_code: int) -> Response:
        """The vendor's answer for a path it does not serve (404) or a method it does not allow (405)."""
        ...


@dataclass(frozen=True)
class Vendor:
    """One upstream as the sandbox serves it: its path prefix, its rules and its routes."""

    prefix: str
    rules: VendorRules
    routes: list[BaseRoute]


def guarded(
    endpoint: str,
    rules: VendorRules,
    limiter: SlidingWindowLimiter,
    handler: Handler,
    *,
    daily: str | None = None,
) -> Handler:
    """Wrap a route handler in the vendor's authentication and the endpoint's rate limit.

    Args:
        endpoint: The budget's name, e.g. `cometly.get_contact`.
        rules: The vendor's rules.
        limiter: The app's limiter.
        handler: Runs only for an authenticated caller within budget.
        daily: A budget every route of the vendor spends as well (HighLevel's day budget), or None.
            It is spent only by requests the endpoint's budget lets through, and its answer rides
            on the decision the vendor's rate headers see.

    Returns:
        The Starlette endpoint.
    """

    async def respond(request: Request) -> Response:
        caller = rules.identify(request)
        decision = limiter.hit(endpoint, caller.client)
        if daily is not None:
            day = limiter.hit(daily, caller.client) if decision.allowed else limiter.peek(daily, caller.client)
            decision = replace(decision, daily=day)
        refusal = decision if not decision.allowed else decision.daily
        if refusal is not None and not refusal.allowed:
            response = rules.too_many_requests(refusal)
        elif caller.rejection is not None:
            response = caller.rejection
        else:
            response = await handler(request)
        response.headers.update(rules.rate_headers(decision))
        return response

    return respond


def standard_rate_headers(decision: Decision) -> dict[str, str]:
    """`X-RateLimit-Limit` and `X-RateLimit-Remaining`, which all three vendors send."""
    return {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(decision.remaining)}


def anonymous(request: Request) -> str:
    """The budget name of a caller without a valid key: its address, as Laravel's throttle does."""
    return f"anonymous:{request.client.host if request.client else 'unknown'}"


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def same_key(given: str | None, expected: str) -> bool:
    """Whether a presented key is the expected one, compared in constant time."""
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())
