"""MCP over HTTP: streamable HTTP at `/mcp` (or SSE at `/sse`), behind a bearer token and Host/Origin checks.

```
connection ─> server.connections: a cap sized from the descriptor limit, deadlines for a request's head and body
request ─> BearerGate ──/healthz──> "ok" (no token, nothing revealed)
              │ Authorization: Bearer <CONTACTS_MCP_HTTP_TOKEN>, compared in constant time; else 401
              └─> HostOriginGate: Host and Origin parsed and compared exactly with loopback, the bound
                    │ address and CONTACTS_MCP_ALLOWED_*; else 421 / 403
                    └─> SessionCap (SSE): MAX_SESSIONS open streams at most; else 503
                          └─> the SDK's transport: its own Host/Origin check, a second line
```

An HTTP server holding a CRM key is a target, so the rules are checked before anything binds:
off loopback a token is required, and on every address (0.0.0.0, ::, 0, ...) so is the list of Host
names clients use, which DNS rebinding protection cannot guess. The SDK's Host/Origin check matches
`host:*` patterns by prefix (it lets `Host: 127.0.0.1:8000@evil.com` through), so the exact check
here comes first and the SDK's stays behind it. This module is imported only by
`serve --transport http|sse`, so the stdio path never loads uvicorn.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import AsyncGenerator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .app import ContactsServer
from .binds import bind_host, binds_every_address, is_loopback
from .connections import Limits, collapse_repeated_logs, raise_descriptor_limit, uvicorn_options
from .errors import ConfigurationError
from .settings import Settings

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

SESSION_IDLE_SECONDS = 600.0
"""A session no request has touched for this long is closed: a client that vanished must not hold memory."""
MAX_SESSIONS = 1_000
"""Open sessions at most, streamable HTTP and SSE alike (each holds 45-70 KiB); past it new ones get 503."""

Transport = Literal["http", "sse"]


@dataclass(frozen=True)
class HttpOptions:
    """How `serve` exposes the server over HTTP."""

    transport: Transport = "http"
    host: str = "127.0.0.1"
    port: int = 8000
    stateless: bool = False

    @property
    def path(self) -> str:
        """Where MCP clients connect."""
        return "/sse" if self.transport == "sse" else "/mcp"

    @property
    def bind_host(self) -> str:
        """The address as the socket layer takes it (an IPv6 address without its brackets)."""
        return bind_host(self.host)


_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Authority:
    """A host (a lower-case name, or an address in its canonical form) and the port given with it, if any."""

    host: str
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_authority(text: str) -> Authority | None:
    """`host[:port]` exactly, as a Host header or an origin holds it; None for anything else.

    Nothing may follow the port (no `@evil.com`, no path), and an IPv6 address must be in brackets.
    """
    if text.startswith("["):
        inside, bracket, after = text[1:].partition("]")
        if not bracket or "%" in inside:
            return None
        try:
            host = ipaddress.IPv6Address(inside).compressed
        except ValueError:
            return None
    else:
        name = text.partition(":")[0]
        after = text[len(name) :]
        if not _NAME.fullmatch(name):
            return None
        try:
            host = ipaddress.IPv4Address(name).compressed
        except ValueError:
            host = name.lower()
    if not after:
        return Authority(host, None)
    if not after.startswith(":") or not _PORT.fullmatch(after[1:]) or not 0 < int(after[1:]) <= 65535:
        return None
    return Authority(host, int(after[1:]))


def parse_origin(text: str) -> tuple[str, Authority] | None:
    """`http(s)://host[:port]` exactly, with the scheme's default port filled in; None for anything else."""
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    authority = parse_authority(rest) if separator and scheme in _DEFAULT_PORTS else None
    if authority is None:
        return None
    return scheme, Authority(authority.host, authority.port or _DEFAULT_PORTS[scheme])


@dataclass(frozen=True)
class Allowed:
    """The Host and Origin values the server answers: a port of None means any port."""

    hosts: frozenset[Authority]
    origins: frozenset[tuple[str, Authority]]

    def host(self, value: str) -> bool:
        """Whether a Host header of `value` names this server."""
        given = parse_authority(value)
        return given is not None and bool({given, Authority(given.host, None)} & self.hosts)

    def origin(self, value: str) -> bool:
        """Whether a request from a page of origin `value` is answered."""
        given = parse_origin(value)
        if given is None:
            return False
        scheme, authority = given
        return bool({given, (scheme, Authority(authority.host, None))} & self.origins)

    def sdk_settings(self) -> TransportSecuritySettings:
        """The same lists as the SDK's patterns, for its check behind ours (which only ever refuses more)."""
        hosts = [form for allowed in sorted(self.hosts, key=str) for form in _host_patterns(allowed)]
        origins = [form for allowed in sorted(self.origins, key=str) for form in _origin_patterns(*allowed)]
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )


def _host_patterns(allowed: Authority) -> list[str]:
    return [str(allowed)] if allowed.port is not None else [str(allowed), f"{allowed}:*"]


def _origin_patterns(scheme: str, allowed: Authority) -> list[str]:
    bare = f"{scheme}://{Authority(allowed.host, None)}"
    if allowed.port is None:
        return [bare, f"{bare}:*"]
    return [f"{bare}:{allowed.port}"] + ([bare] if allowed.port == _DEFAULT_PORTS[scheme] else [])


def _configured_hosts(values: Iterable[str]) -> set[Authority]:
    hosts: set[Authority] = set()
    for value in values:
        any_port = value.endswith(":*")
        parsed = parse_authority(value[:-2] if any_port else value)
        if parsed is None:
            raise ConfigurationError(
                f"contacts-mcp: CONTACTS_MCP_ALLOWED_HOSTS has {value[:80]!r}, which is not a host name or address "
                "with an optional :port (e.g. contacts.example.com,contacts.example.com:8443,[2001:db8::5])"
            )
        hosts.add(Authority(parsed.host, None) if any_port else parsed)
    return hosts


def _configured_origins(values: Iterable[str]) -> set[tuple[str, Authority]]:
    origins: set[tuple[str, Authority]] = set()
    for value in values:
        any_port = value.endswith(":*")
        parsed = parse_origin(value[:-2] if any_port else value)
        if parsed is None:
            raise ConfigurationError(
                f"contacts-mcp: CONTACTS_MCP_ALLOWED_ORIGINS has {value[:80]!r}, which is not an origin: "
                "http(s)://host with an optional :port and nothing after it (e.g. https://agents.example.com)"
            )
        scheme, authority = parsed
        origins.add((scheme, Authority(authority.host, None)) if any_port else parsed)
    return origins


def allowed_authorities(settings: Settings, options: HttpOptions) -> Allowed:
    """Loopback, the bound address and the configured lists, parsed; a bare host allows any port.

    Raises:
        ConfigurationError: If the server is bound off loopback without a token, or to every address
            without `CONTACTS_MCP_ALLOWED_HOSTS`, or a configured host or origin cannot be parsed.
    """
    host = options.host
    if not is_loopback(host) and settings.http_token is None:
        raise ConfigurationError(
            f"contacts-mcp: refusing to serve on {host} without CONTACTS_MCP_HTTP_TOKEN: anyone who can reach "
            "the port could read and create contacts with your API keys. Set a token (e.g. "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`) or bind to 127.0.0.1."
        )
    if binds_every_address(host) and not settings.allowed_hosts:
        raise ConfigurationError(
            f"contacts-mcp: serving on {host!r} (every address) needs CONTACTS_MCP_ALLOWED_HOSTS, the host names "
            "clients connect to (e.g. contacts.example.com), so requests for other names are refused."
        )
    hosts = {Authority(name, None) for name in LOOPBACK_NAMES}
    if not is_loopback(host) and not binds_every_address(host):
        bound = parse_authority(f"[{options.bind_host}]" if ":" in options.bind_host else options.bind_host)
        if bound is not None:
            hosts.add(bound)
    hosts |= _configured_hosts(settings.allowed_hosts)
    origins = {("http", Authority(name, None)) for name in LOOPBACK_NAMES}
    origins |= _configured_origins(settings.allowed_origins)
    return Allowed(hosts=frozenset(hosts), origins=frozenset(origins))


def transport_security(settings: Settings, options: HttpOptions) -> TransportSecuritySettings:
    """Host and Origin checks (DNS rebinding protection) as the SDK's settings: the second line behind ours.

    Raises:
        ConfigurationError: As `allowed_authorities` does.
    """
    return allowed_authorities(settings, options).sdk_settings()


class HostOriginGate:
    """ASGI middleware: a request whose Host or Origin is not exactly an allowed one gets 421 or 403.

    One Host header, parsed as `host[:port]` and nothing more; at most one Origin, parsed as
    `scheme://host[:port]`. No prefix matching: `127.0.0.1:8000@evil.com` and
    `http://localhost:1.evil.com` are not loopback.
    """

    def __init__(self, app: ASGIApp, *, allowed: Allowed) -> None:
        self.app = app
        self._allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            hosts = headers.getlist("host")
            origins = headers.getlist("origin")
            if len(hosts) != 1 or not self._allowed.host(hosts[0]):
                logger.warning(
                    "refused a request for Host %r: not loopback, the bound address or an allowed host", hosts[:2]
                )
                await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
                return
            if len(origins) > 1 or (origins and not self._allowed.origin(origins[0])):
                logger.warning("refused a request from Origin %r: not loopback or an allowed origin", origins[:2])
                await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SessionCap:
    """ASGI middleware for SSE: at most `limit` streams open at `path`; past it 503, as streamable HTTP answers."""

    def __init__(self, app: ASGIApp, *, path: str, limit: int) -> None:
        self.app = app
        self._path = path
        self._limit = limit
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self._path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if self.open >= self._limit:
            logger.warning("Refusing to open a new session: %d sessions are already open", self._limit)
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": "Too many open sessions"}}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1


class BearerGate:
    """ASGI middleware: every path but `/healthz` needs `Authorization: Bearer <token>`.

    The token is compared as a SHA-256 digest with `hmac.compare_digest`, so neither its content nor
    its length shows in the response time. Without a token configured (loopback only) all pass.
    """

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self._digest = None if token is None else hashlib.sha256(token.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == HEALTH_PATH:
            await _health(scope, receive, send)
            return
        if self._digest is not None:
            header = Headers(scope=scope).get("authorization", "")
            scheme, _, given = header.partition(" ")
            digest = hashlib.sha256(given.strip().encode()).digest()
            if scheme.lower() != "bearer" or not hmac.compare_digest(digest, self._digest):
                await _unauthorized(given.strip() != "")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unauthorized(token_given: bool) -> Response:
    challenge = 'Bearer realm="contacts-mcp"'
    if token_given:
        challenge += ', error="invalid_token", error_description="The bearer token is not valid"'
        description = "The bearer token is not valid."
    else:
        description = "This server needs Authorization: Bearer <token> (the server's CONTACTS_MCP_HTTP_TOKEN)."
    return JSONResponse(
        {"error": "invalid_token" if token_given else "unauthorized", "error_description": description},
        status_code=401,
        headers={"WWW-Authenticate": challenge},
    )


async def _health(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    response = PlainTextResponse("ok") if request.method in ("GET", "HEAD") else PlainTextResponse("", 405)
    await response(scope, receive, send)


def http_app(server: ContactsServer, settings: Settings, options: HttpOptions) -> ASGIApp:
    """The ASGI app serving `server` over HTTP as `options` say.

    Raises:
        ConfigurationError: If the options and settings would expose the server unsafely.
    """
    allowed = allowed_authorities(settings, options)
    security = allowed.sdk_settings()
    app: ASGIApp
    if options.transport == "sse":
        sse = server.sse_app(transport_security=security, host=options.host)
        # SSE enters the lifespan per connection: hold it for the app's life, so every connection
        # shares one set of budgets and clients, opened and closed by this lifespan's task.
        held = server.state

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncGenerator[None]:
            async with held.hold():
                yield

        sse.router.lifespan_context = lifespan
        app = SessionCap(sse, path=options.path, limit=MAX_SESSIONS)
    else:
        app = server.streamable_http_app(
            transport_security=security,
            stateless_http=options.stateless,
            host=options.host,
            session_idle_timeout=SESSION_IDLE_SECONDS,
            max_sessions=MAX_SESSIONS,
        )
    token = settings.http_token.get_secret_value() if settings.http_token else None
    return BearerGate(HostOriginGate(app, allowed=allowed), token=token)


def warn_if_open(settings: Settings) -> None:
    """Log that any local program can call the tools when no token is set (`http_app` allows that on loopback only).

    Called once the server has its socket, so a server that cannot start says only why.
    """
    if settings.http_token is None:
        logger.warning("no CONTACTS_MCP_HTTP_TOKEN: any program on this machine can call the tools")


def listener_options() -> dict[str, Any]:
    """Prepare this process to listen, and return the settings for `uvicorn.Config`.

    Raises the soft descriptor limit to the hard one, sizes the connection cap from it, collapses
    repeated log records from here on, and logs the limits in force once.
    """
    limits = Limits.for_descriptors(raise_descriptor_limit())
    logger.info(
        "HTTP limits: %d connections (descriptor limit %d), %d sessions, request head within %.0f s, body within "
        "%.0f s",
        limits.connections,
        limits.descriptors,
        MAX_SESSIONS,
        limits.head_seconds,
        limits.body_seconds,
    )
    return uvicorn_options(limits, every_second=collapse_repeated_logs())
