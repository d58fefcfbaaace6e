"""The embedded sandbox as one Starlette app: all three vendors on one port, by path prefix.

`create_app` opens (or creates and seeds) the SQLite database and mounts each vendor's routes:
`/cometly/public-api/v1/...`, `/highlevel/...` and `/clemta/...`. Point a provider's base URL at
`<sandbox>/cometly/public-api/v1`, `<sandbox>/highlevel` or `<sandbox>/clemta` and use the key
from `SANDBOX_KEYS`.

More accounts can be served beside the default ones (`create_app(accounts=[SandboxAccount(...)])`),
each with its own generated data, timezone and identity on the wire as its vendor tells accounts
apart: a Cometly Space by its API key, a HighLevel location by its token and `locationId`, a Clemta
company by its key and `company_id`. `sandbox_accounts(app)` lists what an app serves.

Failures can be injected in front of all of it (`server.sandbox.faults`): pass `faults` here, switch
them with `sandbox_of(app).faults.set(...)`, or over HTTP with `POST /_sandbox/faults`. Given a
`control_token`, that route answers only `Authorization: Bearer <token>` (`contacts-mcp sandbox`
sets one whenever it listens off loopback).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, TypedDict, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings
from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from ..settings import ClemtaSettings, CometlySettings, HighLevelSettings
from . import clemta, cometly, highlevel
from .faults import CONTROL_PATH, ASGIApp, FaultPlan, Faults, inject
from .generator import FIRST_ID, LABELS, generate
from .model import aware_utc, stable_base62
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

Provider = Literal["cometly", "highlevel", "clemta"]
DEFAULT_ACCOUNT = "default"
"""The name of each vendor's first account, the one `SANDBOX_KEYS` opens (as the server names the
account its environment variables configure)."""
ACCOUNT_ID_SPACING = 100_000
"""Further account number n (from 1) numbers its contacts from `FIRST_ID + n * ACCOUNT_ID_SPACING`."""
_KEY_PREFIXES: Mapping[str, str] = MappingProxyType({"cometly": "sbx-cm-", "highlevel": "sbx-hl-", "clemta": "sbx-cl-"})
_PROVIDERS: tuple[Provider, ...] = ("cometly", "highlevel", "clemta")
_DEMO_ZONES = ("America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney", "America/Los_Angeles")
_EXTRA_SIZES: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"cometly": (300, 800, 150, 80), "highlevel": (300, 150, 80, 40), "clemta": (300, 150, 80, 40)}
)
"""How many contacts the further accounts of each vendor get, in turn. The second further Space is bigger than
the default one (500), about 62 sign-ups a week against 39, so a count across accounts (the demo's) has a clear
winner: the default Space and company share one set of data and would tie."""


@dataclass(frozen=True)
class SandboxAccount:
    """One more account for `create_app(accounts=...)` to serve beside the default ones."""

    name: str
    """Unique among the accounts (not `default`): letters, digits, `-` and `_`; it derives the key and ids."""
    provider: Provider
    contacts: int = 200
    """How many contacts to generate for it."""
    seed: int | None = None
    """Seeds its generator; None: one derived from the name, so each account's data differs."""
    timezone: str = "UTC"
    """Its IANA timezone: a Cometly Space reads its list dates in it; for the others it is what
    `sandbox_accounts` reports (their contact APIs report none)."""
    description: str = ""
    key: str | None = None
    """Clemta only: the key it answers to, when it shares one with other companies (a partner key
    linked to several, e.g. `SANDBOX_KEYS["clemta"]`); its budget is then theirs too. None: its own key."""


@dataclass(frozen=True)
class ServedAccount:
    """An account an app serves and how to reach it, as `sandbox_accounts(app)` lists them."""

    name: str
    provider: Provider
    key: str
    """The API key (Cometly, Clemta) or bearer token (HighLevel) it accepts. Public sandbox data, not a secret."""
    timezone: str
    description: str
    location_id: str | None = None
    """The HighLevel location, None for the other vendors."""
    company_id: str | None = None
    """The Clemta company, None for the other vendors."""
    first_id: int = FIRST_ID
    """The Cometly id its generated contacts start at."""

    def base_url(self, root: str) -> str:
        """Its vendor's base URL on a sandbox served at `root` (the same for every account of a vendor)."""
        return f"{root}{cometly.PREFIX}" if self.provider == "cometly" else f"{root}/{self.provider}"

    def settings(self, root: str) -> CometlySettings | HighLevelSettings | ClemtaSettings:
        """Provider settings that reach this account on a sandbox served at `root`, reading no environment."""
        key, url = SecretStr(self.key), self.base_url(root)
        match self.provider:
            case "cometly":
                return _unread(CometlySettings, api_key=key, base_url=url, timezone=self.timezone)
            case "highlevel":
                return _unread(HighLevelSettings, api_key=key, base_url=url, location_id=self.location_id)
            case "clemta":
                return _unread(
                    ClemtaSettings, api_key=key, base_url=url, company_id=self.company_id, timezone=self.timezone
                )

    @property
    def aliases(self) -> frozenset[str]:
        """What names it in a fault plan's `account`: its name, key, and location or company id."""
        return frozenset(item for item in (self.name, self.key, self.location_id, self.company_id) if item)


def extra_accounts(count: int) -> tuple[SandboxAccount, ...]:
    """`count` further accounts of each vendor, with their own sizes, seeds and timezones: e.g. `extra_accounts(1)`
    gives two HighLevel locations, two Cometly Spaces and two Clemta companies with the default ones, 300 contacts
    each; `extra_accounts(2)` adds `cometly-3` with 800 and `highlevel-3` and `clemta-3` with 150 (`_EXTRA_SIZES`).

    Raises:
        ValueError: `count` is negative.
    """
    if count < 0:
        raise ValueError("count must be 0 or more")
    return tuple(
        SandboxAccount(
            name=f"{provider}-{number + 1}",
            provider=provider,
            contacts=_EXTRA_SIZES[provider][(number - 1) % len(_EXTRA_SIZES[provider])],
            timezone=_DEMO_ZONES[(number - 1 + index) % len(_DEMO_ZONES)],
            description=f"sandbox {provider} account {number + 1}",
        )
        for number in range(1, count + 1)
        for index, provider in enumerate(_PROVIDERS)
    )


def _served(account: SandboxAccount, number: int) -> ServedAccount:
    """What `account`, the `number`-th further account, is served as: its key and ids, derived from its name."""
    return ServedAccount(
        name=account.name,
        provider=account.provider,
        key=account.key
        or _KEY_PREFIXES[account.provider] + stable_base62(f"sandbox:{account.provider}:key:{account.name}", 16),
        timezone=account.timezone,
        description=account.description,
        location_id=stable_base62(f"highlevel:location:{account.name}") if account.provider == "highlevel" else None,
        company_id=(
            hashlib.sha256(f"clemta:company:{account.name}".encode()).hexdigest()[:24]
            if account.provider == "clemta"
            else None
        ),
        first_id=FIRST_ID + number * ACCOUNT_ID_SPACING,
    )


def _default_accounts(timezone: str) -> tuple[ServedAccount, ...]:
    return (
        ServedAccount(DEFAULT_ACCOUNT, "cometly", SANDBOX_KEYS["cometly"], timezone, "the sandbox's Cometly Space"),
        ServedAccount(
            DEFAULT_ACCOUNT,
            "highlevel",
            SANDBOX_KEYS["highlevel"],
            "UTC",
            "the sandbox's HighLevel location",
            location_id=highlevel.LOCATION_ID,
        ),
        ServedAccount(
            DEFAULT_ACCOUNT,
            "clemta",
            SANDBOX_KEYS["clemta"],
            "UTC",
            "the sandbox's Clemta company",
            company_id=clemta.COMPANY_ID,
        ),
    )


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
    accounts: Sequence[SandboxAccount] = (),
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
        accounts: Further accounts to serve beside each vendor's default one (the one `SANDBOX_KEYS`
            opens, whose data `db_path`, `contacts` and `seed` make, unchanged by these). Each has its
            own database in memory, generated afresh at every start, with ids from
            `FIRST_ID + n * ACCOUNT_ID_SPACING` for the n-th; its own key and location or company
            (see `sandbox_accounts`); and its own budgets, as its vendor counts them per key or location.
            A request is answered by the account its key names; an unknown key gets the vendor's 401.

    Returns:
        The app; its lifespan closes the databases on shutdown (or call `sandbox_of(app, name).store.close()`
        for each account's).

    Raises:
        ValueError: `now` is naive, a rate limit names an unknown endpoint or allows nothing,
            a timezone is unknown, `db_path` holds a database that is not a sandbox, or an account's
            name is repeated, `default` or not made of letters, digits, `-` and `_`.
    """
    start = aware_utc(now)
    zone = _zone(timezone)
    served = _check_accounts(accounts)
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
    clock = _clock(start, pinned=now is not None)
    sandbox = Sandbox(store=store, limiter=limiter, clock=clock, faults=plan, zone=zone, ambiguous=ambiguous)
    vendors = [
        cometly.build(sandbox, SANDBOX_KEYS["cometly"]),
        highlevel.build(sandbox, SANDBOX_KEYS["highlevel"]),
        clemta.build(sandbox, SANDBOX_KEYS["clemta"]),
    ]
    route_error = _route_errors(vendors)
    routes: dict[tuple[str, str], list[AccountRoute]] = {
        (account.provider, account.key): [AccountRoute(account, None, store)] for account in _default_accounts(timezone)
    }
    sandboxes: dict[str, Sandbox] = {}
    try:
        for account, spec in zip(served, accounts, strict=True):
            extra_store, _ = Store.open(":memory:")
            extra = Sandbox(
                store=extra_store,
                limiter=limiter,
                clock=clock,
                faults=plan,
                zone=_zone(spec.timezone),
                ambiguous=ambiguous,
            )
            sandboxes[account.name] = extra
            seed_of = spec.seed if spec.seed is not None else _name_seed(spec.name)
            made = generate(
                count=spec.contacts, seed=seed_of, now=start, span_days=span_days, first_id=account.first_id
            )
            extra_store.seed(LABELS, made)
            vendor = _vendor(extra, account)
            sub_app = Starlette(
                routes=vendor.routes, exception_handlers=dict.fromkeys((404, 405), _route_errors([vendor]))
            )
            routes.setdefault((account.provider, account.key), []).append(AccountRoute(account, sub_app, extra_store))
    except BaseException:
        for extra in sandboxes.values():
            extra.store.close()
        store.close()
        raise

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        try:
            yield
        finally:
            store.close()
            for extra in sandboxes.values():
                extra.store.close()

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
        shown = plan.faults.model_dump(mode="json")
        if shown["account"] is None:
            del shown["account"]  # a plan for every account shows as it did before accounts existed
        return JSONResponse(shown)

    app = SandboxApp(
        plan,
        accounts=routes,
        routes=[
            *(route for vendor in vendors for route in vendor.routes),
            Route(CONTROL_PATH, control, methods=["GET", "POST"]),
        ],
        exception_handlers={404: route_error, 405: route_error},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    app.state.sandboxes = MappingProxyType(sandboxes)
    app.state.accounts = (*_default_accounts(timezone), *served)
    return app


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"unknown timezone {name!r}") from None


def _check_accounts(accounts: Sequence[SandboxAccount]) -> list[ServedAccount]:
    """What each further account is served as, once its name, size and timezone are checked.

    Raises:
        ValueError: A name is repeated, `default` or not letters, digits, `-` and `_`; a size is negative;
            a timezone unknown; or a provider unknown.
    """
    seen: set[str] = set()
    served: list[ServedAccount] = []
    for number, account in enumerate(accounts, start=1):
        name = account.name
        if not name or not all(char.isascii() and (char.isalnum() or char in "-_") for char in name):
            raise ValueError(f"account name {name!r} must be letters, digits, '-' and '_'")
        if name == DEFAULT_ACCOUNT or name in seen:
            raise ValueError(f"account name {name!r} is taken (by the default accounts or an earlier one)")
        if account.provider not in _PROVIDERS:
            raise ValueError(f"account {name!r}: unknown provider {account.provider!r}; known: {', '.join(_PROVIDERS)}")
        if account.contacts < 0:
            raise ValueError(f"account {name!r}: contacts must be 0 or more")
        if account.key is not None and account.provider != "clemta":
            raise ValueError(
                f"account {name!r}: only Clemta companies share a key ({account.provider} has one per account)"
            )
        _zone(account.timezone)
        seen.add(name)
        served.append(_served(account, number))
    return served


def _name_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"sandbox:seed:{name}".encode()).digest()[:4], "big")


def _vendor(sandbox: Sandbox, account: ServedAccount) -> Vendor:
    match account.provider:
        case "cometly":
            return cometly.build(sandbox, account.key)
        case "highlevel":
            return highlevel.build(sandbox, account.key, location_id=account.location_id or "")
        case "clemta":
            return clemta.build(sandbox, account.key, company_id=account.company_id or "")


def _route_errors(vendors: list[Vendor]) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The handler of a path no route serves (404) or a method a route does not allow (405): the vendor's answer."""

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

    return route_error


def sandbox_accounts(app: Starlette) -> tuple[ServedAccount, ...]:
    """The accounts an app from `create_app` serves: each vendor's `default` first, then the further ones in order.

    Everything an accounts file needs is here (provider, name, key, location or company, timezone),
    with `base_url(root)` and `settings(root)` for a sandbox served at `root`.
    """
    sandbox_of(app)
    accounts: tuple[ServedAccount, ...] = app.state.accounts
    return accounts


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
    """The vendors' routes behind the fault plan: a faulted request never reaches routing, keys or budgets.

    A request whose key names a further account goes to that account's routes; every other request
    (the default accounts', unknown keys', the control route) to this app's own.
    """

    def __init__(
        self,
        faults: FaultPlan,
        accounts: Mapping[tuple[str, str], Sequence[AccountRoute]] | None = None,
        **options: Any,
    ) -> None:
        """`accounts` maps (vendor, key) to the accounts that key opens, the vendor's first account first."""
        super().__init__(**options)
        self._faults = faults
        self._accounts = accounts or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        candidates = self._accounts_of(scope)
        found = candidates[0] if candidates else None
        if len(candidates) > 1:
            receive, body = await _buffered(receive)
            found = await _company_account(scope, candidates, body)
        target: ASGIApp = super().__call__ if found is None or found.app is None else found.app
        # Here rather than in a middleware, so `send` is still the server's own (see `faults.inject`'s reset).
        picked = self._faults.pick(scope["method"], scope["path"], found.account.aliases if found else ())
        if picked is None:
            await target(scope, receive, send)
        else:
            kind, faults = picked
            await inject(kind, faults, scope, receive, send, target)

    def _accounts_of(self, scope: Scope) -> Sequence[AccountRoute]:
        """The accounts a request's key opens, as its vendor reads the key; none for a key the sandbox does not know."""
        path: str = scope["path"]
        provider = next((name for name in _PROVIDERS if path.startswith(f"/{name}/")), None)
        if provider is None:
            return ()
        headers = Headers(scope=scope)
        if provider == "clemta":
            key = headers.get("x-api-key", "")
        else:
            scheme, _, key = headers.get("authorization", "").partition(" ")
            key = key.strip() if scheme.lower() == "bearer" else ""
        return self._accounts.get((provider, key), ()) if key else ()


@dataclass(frozen=True)
class AccountRoute:
    """Where a request of one account goes."""

    account: ServedAccount
    app: ASGIApp | None
    """The app with its routes; None: the `SandboxApp`'s own (the default accounts')."""
    store: Store


async def _buffered(receive: Receive) -> tuple[Receive, bytes]:
    """The request's body, read whole, and a `receive` that hands the app the same messages again."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(message.get("body", b"") for message in messages if message["type"] == "http.request")

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay, body


async def _company_account(scope: Scope, candidates: Sequence[AccountRoute], body: bytes) -> AccountRoute:
    """Which of the Clemta companies a partner key opens a request is for: the `company_id` of its query or body,
    else the one holding the contact its path names; the first when none matches (it answers the vendor's 404)."""
    company = QueryParams(scope.get("query_string", b"")).get("company_id")
    if company is None and body:
        try:
            payload: object = json.loads(body)
        except ValueError:
            payload = None
        given = cast("dict[str, object]", payload).get("company_id") if isinstance(payload, dict) else None
        company = given if isinstance(given, str) else None
    if company is not None:
        return next((item for item in candidates if item.account.company_id == company.lower()), candidates[0])
    path: str = scope["path"]
    contact_id = path.removeprefix("/clemta/contacts/")
    if contact_id != path and contact_id and "/" not in contact_id:
        for item in candidates:
            store = item.store
            if await store.run(lambda store=store: store.contact_by_clemta_id(contact_id)) is not None:
                return item
    return candidates[0]


def sandbox_of(app: Starlette, account: str = DEFAULT_ACCOUNT) -> Sandbox:
    """The state behind an app from `create_app`: its store, limiter, clock and fault plan.

    Args:
        app: The app.
        account: A further account's name, for its state (its own store and timezone; the limiter,
            clock and fault plan are the app's); default: the default accounts'.

    Raises:
        TypeError: `app` is not from `create_app`.
        KeyError: It serves no further account of that name.
    """
    sandbox = app.state.sandbox
    if not isinstance(sandbox, Sandbox):
        raise TypeError("not an app made by create_app")
    if account == DEFAULT_ACCOUNT:
        return sandbox
    sandboxes: Mapping[str, Sandbox] = app.state.sandboxes
    if account not in sandboxes:
        raise KeyError(f"the sandbox serves no account {account!r}; known: {', '.join(sandboxes) or 'none'}")
    return sandboxes[account]


def _clock(start: datetime, *, pinned: bool) -> Callable[[], datetime]:
    if not pinned:
        return lambda: aware_utc(None)
    # A pinned start still moves forward, so creation times stay in order within a run.
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def _vendor_for(vendors: list[Vendor], path: str) -> Vendor | None:
    return next((vendor for vendor in vendors if path == vendor.prefix or path.startswith(vendor.prefix + "/")), None)
