"""The embedded sandbox as one Starlette app: all three vendors on one port, by path prefix.

`create_app` opens (or creates and seeds) the SQLite database and mounts each vendor's routes:
`/cometly/public-api/v1/...`, `/highlevel/...` and `/clemta/...`. Point a provider's base URL at
`<sandbox>/cometly/public-api/v1`, `<sandbox>/highlevel` or `<sandbox>/clemta` and use the key
from `SANDBOX_KEYS`.

Failures can be injected in front of all of it (`server.sandbox.faults`): pass `faults` here, switch
them with `sandbox_of(app).faults.set(...)`, or over HTTP with `POST /_sandbox/faults`. Given a
`control_token`, that route answers only `Authorization: Bearer <token>` (`contacts-mcp sandbox`
sets one whenever it listens off loopback).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, TypedDict, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..settings import ClemtaSettings, CometlySettings, HighLevelSettings
from . import clemta, cometly, highlevel
from .faults import CONTROL_PATH, FaultPlan, Faults, inject
from .generator import LABELS, generate
from .model import aware_utc
from .ratelimit import DEFAULT_RATE_LIMITS, SlidingWindowLimiter
from .routing import Sandbox, Vendor
from .store import Store

SANDBOX_KEYS: Mapping[str, str] = MappingProxyType(
    {"cometly": "sbx-cm-9fQ2xL7vTq4Wz8Kd", "highlevel": "sbx-hl-R3nY6pV1sJ8mC5Ga", "clemta": "sbx-cl-T7kD2wH9bX4qN6Ue"}
)
"""The one API key each vendor accepts, by vendor name.

Random like real keys: the server redacts any 8 characters of a key it holds, so a key made of
words ("highlevel") would take those words out of every result.
"""


_Model = TypeVar("_Model", bound=BaseSettings)


class SandboxProviders(TypedDict):
    """`Settings` fields that point all three providers at one sandbox."""

    cometly: CometlySettings
    highlevel: HighLevelSettings
    clemta: ClemtaSettings


def sandbox_environment(root: str) -> dict[str, str]:
    """The environment variables that point all three providers at the sandbox served at `root`."""
    return {
        "COMETLY_BASE_URL": f"{root}{cometly.PREFIX}",
        "COMETLY_API_KEY": SANDBOX_KEYS["cometly"],
        "COMETLY_TIMEZONE": "UTC",  # the sandbox's Space keeps its dates in UTC
        "HIGHLEVEL_BASE_URL": f"{root}/highlevel",
        "HIGHLEVEL_API_KEY": SANDBOX_KEYS["highlevel"],
        "HIGHLEVEL_LOCATION_ID": highlevel.LOCATION_ID,
        "CLEMTA_BASE_URL": f"{root}/clemta",
        "CLEMTA_API_KEY": SANDBOX_KEYS["clemta"],
        "CLEMTA_COMPANY_ID": clemta.COMPANY_ID,
    }


def sandbox_settings(root: str) -> SandboxProviders:
    """`sandbox_environment(root)` as settings models, for building `Settings` in code (`Settings(**...)`).

    Every field is given (the rest at their defaults), so no `COMETLY_*`, `HIGHLEVEL_*` or `CLEMTA_*`
    variable of the environment or a `.env` file is read: the sandbox is the same everywhere.
    """
    env = sandbox_environment(root)
    return SandboxProviders(
        cometly=_unread(
            CometlySettings,
            api_key=SecretStr(env["COMETLY_API_KEY"]),
            base_url=env["COMETLY_BASE_URL"],
            timezone=env["COMETLY_TIMEZONE"],
        ),
        highlevel=_unread(
            HighLevelSettings,
            api_key=SecretStr(env["HIGHLEVEL_API_KEY"]),
            base_url=env["HIGHLEVEL_BASE_URL"],
            location_id=env["HIGHLEVEL_LOCATION_ID"],
        ),
        clemta=_unread(
            ClemtaSettings,
            api_key=SecretStr(env["CLEMTA_API_KEY"]),
            base_url=env["CLEMTA_BASE_URL"],
            company_id=env["CLEMTA_COMPANY_ID"],
        ),
    )


def _unread(model: type[_Model], **values: Any) -> _Model:
    """`model` of `values` and its other fields' defaults: a value given wins over every source, so none is read."""
    defaults = {name: field.get_default(call_default_factory=True) for name, field in model.model_fields.items()}
    return model(**(defaults | values))


def create_app(
    *,
    db_path: str = ":memory:",
    contacts: int = 500,
    seed: int = 1,
    now: datetime | None = None,
    rate_limits: Mapping[str, tuple[int, float]] | None = None,
    faults: Faults | None = None,
    control_token: str | None = None,
    timezone: str = "UTC",
    ambiguous: Literal["earlier", "later"] = "earlier",
    span_days: int = 90,
) -> Starlette:
    """Build the sandbox app.

    Args:
        db_path: A SQLite file, or `:memory:`. A file that already holds a sandbox database is used
            as it is; a new file (or memory) is created and seeded.
        contacts: How many contacts to generate when seeding.
        seed: Seeds the generator; the same (seed, now, contacts) gives the same data.
        now: The aware time the sandbox treats as now: seed data spreads over the 90 days before it,
            and the clock runs on from it (creation times, "today" for age filters). Default: the
            current time.
        rate_limits: Budgets that replace entries of `DEFAULT_RATE_LIMITS` by endpoint name, as
            (requests, window seconds).
        faults: Failures to inject from the start (see `server.sandbox.faults`); default: none.
        control_token: When given, `/_sandbox/faults` (GET and POST) answers only requests with
            `Authorization: Bearer <control_token>`: 401 without one, 403 with another. Default:
            no token, for a sandbox only this machine reaches.
        timezone: The Cometly Space's IANA timezone, in which its list reads its dates (point
            `COMETLY_TIMEZONE` at the same one). Default UTC.
        ambiguous: Which moment a wall time shown twice by a DST fall-back means (see `Sandbox.ambiguous`).
        span_days: How many days back from `now` the seed data's creation times go.

    Returns:
        The app; its lifespan closes the database on shutdown (or call `sandbox_of(app).store.close()`).

    Raises:
        ValueError: `now` is naive, a rate limit names an unknown endpoint or allows nothing,
            `timezone` is unknown, or `db_path` holds a database that is not a sandbox.
    """
    start = aware_utc(now)
    try:
        zone = ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"unknown timezone {timezone!r}") from None
    limits = dict(DEFAULT_RATE_LIMITS)
    for name, budget in (rate_limits or {}).items():
        if name not in limits:
            raise ValueError(f"unknown rate limit {name!r}; known: {', '.join(limits)}")
        limits[name] = budget
    limiter = SlidingWindowLimiter(limits)
    store, is_new = Store.open(db_path)
    try:
        if is_new:
            store.seed(LABELS, generate(count=contacts, seed=seed, now=start, span_days=span_days))
    except BaseException:
        store.close()
        raise
    plan = FaultPlan(faults)
    sandbox = Sandbox(
        store=store,
        limiter=limiter,
        clock=_clock(start, pinned=now is not None),
        faults=plan,
        zone=zone,
        ambiguous=ambiguous,
    )
    vendors = [
        cometly.build(sandbox, SANDBOX_KEYS["cometly"]),
        highlevel.build(sandbox, SANDBOX_KEYS["highlevel"]),
        clemta.build(sandbox, SANDBOX_KEYS["clemta"]),
    ]

    async def route_error(request: Request, exc: Exception) -> Response:
        status_code = exc.status_code if isinstance(exc, HTTPException) else 404
        headers = exc.headers if isinstance(exc, HTTPException) else None
        vendor = _vendor_for(vendors, request.url.path)
        response = (
            vendor.rules.route_error(request, status_code)
            if vendor is not None
            else JSONResponse({"message": "Not Found"}, status_code=status_code)
        )
        response.headers.update(headers or {})
        return response

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        try:
            yield
        finally:
            store.close()

    async def control(request: Request) -> Response:
        refused = _control_refusal(request, control_token)
        if refused is not None:
            return refused
        if request.method == "POST":
            try:
                plan.set(Faults.model_validate_json(await request.body()))
            except ValidationError as exc:
                problems = exc.errors(include_url=False, include_context=False, include_input=False)
                return JSONResponse({"message": "not a valid fault plan", "errors": problems}, status_code=422)
        return JSONResponse(plan.faults.model_dump(mode="json"))

    app = SandboxApp(
        plan,
        routes=[
            *(route for vendor in vendors for route in vendor.routes),
            Route(CONTROL_PATH, control, methods=["GET", "POST"]),
        ],
        exception_handlers={404: route_error, 405: route_error},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app


def _control_refusal(request: Request, token: str | None) -> Response | None:
    """The answer to a control request without the right bearer token, or None when it may go on."""
    if token is None:
        return None
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return JSONResponse(
            {"message": "the sandbox's control routes need Authorization: Bearer <token>, the token printed at start"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="sandbox control"'},
        )
    # Digests of equal length, so the comparison takes the same time whatever was sent.
    if not hmac.compare_digest(_digest(given.strip()), _digest(token)):
        return JSONResponse({"message": "that is not the sandbox's control token"}, status_code=403)
    return None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class SandboxApp(Starlette):
    """The vendors' routes behind the fault plan: a faulted request never reaches routing, keys or budgets."""

    def __init__(self, faults: FaultPlan, **options: Any) -> None:
        super().__init__(**options)
        self._faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Here rather than in a middleware, so `send` is still the server's own (see `faults.inject`'s reset).
        picked = self._faults.pick(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if picked is None:
            await super().__call__(scope, receive, send)
        else:
            kind, faults = picked
            await inject(kind, faults, scope, receive, send, super().__call__)


def sandbox_of(app: Starlette) -> Sandbox:
    """The state behind an app from `create_app`: its store, limiter, clock and fault plan."""
    sandbox = app.state.sandbox
    if not isinstance(sandbox, Sandbox):
        raise TypeError("not an app made by create_app")
    return sandbox


def _clock(start: datetime, *, pinned: bool) -> Callable[[], datetime]:
    if not pinned:
        return lambda: aware_utc(None)
    # A pinned start still moves forward, so creation times stay in order within a run.
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def _vendor_for(vendors: list[Vendor], path: str) -> Vendor | None:
    return next((vendor for vendor in vendors if path == vendor.prefix or path.startswith(vendor.prefix + "/")), None)
