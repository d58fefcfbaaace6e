"""MCP over HTTP: streamable HTTP at `/mcp` (or SSE at `/sse`), behind a bearer token and Host/Origin checks.

```
request ─> BearerGate ──/healthz──> "ok" (no token, nothing revealed)
              │ Authorization: Bearer <CONTACTS_MCP_HTTP_TOKEN>, compared in constant time; else 401
              └──> the SDK's transport: Host and Origin checked against loopback + CONTACTS_MCP_ALLOWED_*
```

An HTTP server holding a CRM key is a target, so the rules are checked before anything binds:
off loopback a token is required, and on every address (0.0.0.0, ::) so is the list of Host names
clients use, which DNS rebinding protection cannot guess. This module is imported only by
`serve --transport http|sse`, so the stdio path never loads uvicorn.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import ContactsServer
from server.errors import ConfigurationError
from server.settings import Settings

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")

SESSION_IDLE_SECONDS = 600.0
"""A session no request has touched for this long is closed: a client that vanished must not hold memory."""
MAX_SESSIONS = 1_000
"""Open sessions at most (each holds about 45 KiB); past it new sessions are refused until some end."""

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


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine (a name other than localhost does not count)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _with_any_port(host: str) -> list[str]:
    """`host` as the SDK's Host patterns: as written, and with any port unless one is given."""
    if host.endswith("]") or host.count(":") != 1:  # a bare name, IPv4 or bracketed IPv6: no port given
        return [host, f"{host}:*"]
    return [host]


def transport_security(settings: Settings, options: HttpOptions) -> TransportSecuritySettings:
    """Host and Origin checks (DNS rebinding protection): loopback, the bound address, and the configured lists.

    Raises:
        ConfigurationError: If the server is bound off loopback without a token, or to every address
            without `CONTACTS_MCP_ALLOWED_HOSTS`.
    """
    host = options.host
    if not is_loopback(host) and settings.http_token is None:
        raise ConfigurationError(
            f"contacts-mcp: refusing to serve on {host} without CONTACTS_MCP_HTTP_TOKEN: anyone who can reach "
            "the port could read and create contacts with your API keys. Set a token (e.g. "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`) or bind to 127.0.0.1."
        )
    if _is_wildcard(host) and not settings.allowed_hosts:
        raise ConfigurationError(
            f"contacts-mcp: serving on {host} (every address) needs CONTACTS_MCP_ALLOWED_HOSTS, the host names "
            "clients connect to (e.g. contacts.example.com), so requests for other names are refused."
        )
    hosts = [*LOOPBACK_HOSTS]
    if not is_loopback(host) and not _is_wildcard(host):
        hosts += _with_any_port(f"[{host}]" if ":" in host else host)
    for allowed in settings.allowed_hosts:
        hosts += _with_any_port(allowed)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[*LOOPBACK_ORIGINS, *settings.allowed_origins],
    )


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
    security = transport_security(settings, options)
    app: Starlette
    if options.transport == "sse":
        app = server.sse_app(transport_security=security, host=options.host)
        # SSE enters the lifespan per connection: hold it for the app's life, so every connection
        # shares one set of budgets and clients, opened and closed by this lifespan's task.
        held = server.state

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncGenerator[None]:
            async with held.hold():
                yield

        app.router.lifespan_context = lifespan
    else:
        app = server.streamable_http_app(
            transport_security=security,
            stateless_http=options.stateless,
            host=options.host,
            session_idle_timeout=SESSION_IDLE_SECONDS,
            max_sessions=MAX_SESSIONS,
        )
    token = settings.http_token.get_secret_value() if settings.http_token else None
    if token is None:
        logger.warning("no CONTACTS_MCP_HTTP_TOKEN: any program on this machine can call the tools")
    return BearerGate(app, token=token)
