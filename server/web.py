"""MCP over HTTP: streamable HTTP at `/mcp` (or SSE at `/sse`), behind a bearer token and Host/Origin checks.

```
connection ─> server.connections: a cap sized from the descriptor limit, deadlines for a request's head and body
request ─> AuthGate ──/healthz──> "ok" (no token, nothing revealed)
              ├──/.well-known/oauth-protected-resource[/mcp]──> RFC 9728 metadata (with OAuth; no token;
              │                                                  any other /.well-known/ path 404)
              │ Authorization: Bearer <CONTACTS_MCP_HTTP_TOKEN>, compared in constant time: every scope;
              │   or (OAuth) an access token the verifier accepts: its scopes; else 401 with the challenge,
              │   or 503 when the issuer cannot be reached for the key it needs
              │ short of a scope: the POST body is read; a tools/call past the caller's scopes is 403
              └─> AuthContextMiddleware: the caller where the SDK's get_access_token() finds it
                    └─> HostOriginGate: Host and Origin parsed and compared exactly with loopback, the bound
                          │ address, the public URL's host and CONTACTS_MCP_ALLOWED_*; else 421 / 403
                          └─> SessionCap (SSE): MAX_SESSIONS open streams at most; else 503
                                └─> the SDK's transport: its own Host/Origin check, a second line;
                                    sessions belong to the caller that opened them
```

An HTTP server holding a CRM key is a target, so the rules are checked before anything binds:
off loopback a token or OAuth is required, and on every address (0.0.0.0, ::, 0, ...) so is the list of Host
names clients use, which DNS rebinding protection cannot guess. The SDK's Host/Origin check matches
`host:*` patterns by prefix (it lets `Host: 127.0.0.1:8000@evil.com` through), so the exact check
here comes first and the SDK's stays behind it. This module is imported only by
`serve --transport http|sse`, so the stdio path never loads uvicorn.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
from collections.abc import AsyncGenerator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .app import ContactsServer, ToolScopes, audit_logger
from .binds import bind_host, binds_every_address, is_loopback
from .connections import Limits, collapse_repeated_logs, raise_descriptor_limit, uvicorn_options
from .errors import ConfigurationError
from .oauth import IssuerUnavailable, OAuthConfig, OAuthVerifier
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
    if not is_loopback(host) and settings.http_token is None and settings.oauth_issuer is None:
        raise ConfigurationError(
            f"contacts-mcp: refusing to serve on {host} without CONTACTS_MCP_HTTP_TOKEN or CONTACTS_MCP_OAUTH_ISSUER: "
            "anyone who can reach the port could read and create contacts with your API keys. Set a token (e.g. "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`), configure OAuth, or bind to 127.0.0.1."
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
    if settings.oauth_issuer is not None and settings.public_url:
        public = parse_authority(urlsplit(settings.public_url).netloc)
        if public is not None:  # the name clients reach the resource by, as its metadata says
            hosts.add(public)
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


STATIC_SUBJECT = "static-token"
"""The subject and client id of a caller holding CONTACTS_MCP_HTTP_TOKEN, as the audit line names it."""
WELL_KNOWN = "/.well-known/"
PRM_PATH = "/.well-known/oauth-protected-resource"
RETRY_AFTER_SECONDS = 30
"""What a 503 tells a client to wait when the issuer cannot be reached for a key the token needs."""


@dataclass(frozen=True)
class OAuthGuard:
    """What the gate needs to serve OAuth: the verified configuration and a started verifier."""

    config: OAuthConfig
    verifier: OAuthVerifier

    @property
    def metadata_url(self) -> str:
        """Where this resource's Protected Resource Metadata is (RFC 9728 §3.1), as clients reach it."""
        return str(build_resource_metadata_url(AnyHttpUrl(self.config.resource)))

    def metadata_routes(self, scopes: ToolScopes) -> Router:
        """The metadata at the path-suffixed and at the root well-known URL: clients differ on which they ask."""
        metadata = ProtectedResourceMetadata.model_validate(
            {
                "resource": self.config.resource,
                "authorization_servers": [self.config.issuer],  # as given: RFC 8414 compares issuers exactly
                "scopes_supported": scopes.advertised,
                "resource_name": "contacts-mcp",
            }
        )
        endpoint = cors_middleware(ProtectedResourceMetadataHandler(metadata).handle, ["GET", "OPTIONS"])
        paths = sorted({urlsplit(self.metadata_url).path, PRM_PATH})
        return Router(routes=[Route(path, endpoint=endpoint, methods=["GET", "OPTIONS"]) for path in paths])


class AuthGate:
    """ASGI middleware: every path but `/healthz` (and, with OAuth, the resource metadata) needs a bearer token.

    The static token (CONTACTS_MCP_HTTP_TOKEN) is compared as a SHA-256 digest with
    `hmac.compare_digest`, so neither its content nor its length shows in the response time; its
    holder has every scope. With OAuth, any other token goes to the verifier. The caller is put
    where the SDK's `AuthenticationMiddleware` puts it (`scope["user"]`, `scope["auth"]`), so its
    session-ownership check and `get_access_token()` see it. A caller short of a scope has its POST
    body read here: a tools/call of a tool it may not use is 403 `insufficient_scope`, never passed on.
    Without any token configured (loopback only) all pass, as nobody.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        scopes: ToolScopes,
        oauth: OAuthGuard | None = None,
        max_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        self.app = AuthContextMiddleware(app)
        self._digest = None if token is None else hashlib.sha256(token.encode()).digest()
        self._scopes = scopes
        self._oauth = oauth
        self._metadata = oauth.metadata_routes(scopes) if oauth is not None else None
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == HEALTH_PATH:
            await _health(scope, receive, send)
            return
        if self._metadata is not None and scope["path"].startswith(WELL_KNOWN):
            # No token for discovery; what is not this resource's metadata is 404, so a client probing
            # for authorization server metadata here (2025-03-26 clients) moves on to the issuer.
            await self._metadata(scope, receive, send)
            return
        if self._digest is None and self._oauth is None:
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, given = header.partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        caller = await self._caller(given)
        if isinstance(caller, Response):
            await caller(scope, receive, send)
            return
        scope["user"] = AuthenticatedUser(caller)
        scope["auth"] = AuthCredentials(caller.scopes)
        if not any(scope_name in caller.scopes for scope_name in self._scopes.all):
            logger.info("refused client %r: its token holds none of this server's scopes", caller.client_id)
            refusal = self._challenge(
                403,
                ("insufficient_scope", "The token grants none of this server's scopes"),
                scope=" ".join(self._scopes.all),
            )
            await refusal(scope, receive, send)
            return
        if all(scope_name in caller.scopes for scope_name in self._scopes.all) or scope["method"] != "POST":
            await self.app(scope, receive, send)  # only a POST calls a tool
            return
        body = await _read_body(receive, self._max_body_bytes)
        if body is None:
            await PlainTextResponse("Request body too large", status_code=413)(scope, receive, send)
            return
        refused = self._refusal(caller, body)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _caller(self, given: str) -> AccessToken | Response:
        """Who holds `given`, or the 401/503 to answer."""
        if self._digest is not None and hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._digest):
            return AccessToken(
                token="static", client_id=STATIC_SUBJECT, subject=STATIC_SUBJECT, scopes=self._scopes.static
            )
        if self._oauth is None:
            return _unauthorized(given != "")
        if not given:
            return self._challenge(401, None)
        try:
            verified = await self._oauth.verifier.verify_token(given)
        except IssuerUnavailable as exc:
            logger.warning("could not verify a bearer token: %s", exc)
            return JSONResponse(
                {
                    "error": "temporarily_unavailable",
                    "error_description": "The authorization server cannot be reached to check this token; retry.",
                },
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if verified is None:
            return self._challenge(401, ("invalid_token", "The access token is not valid for this server"))
        return verified

    def _refusal(self, caller: AccessToken, body: bytes) -> Response | None:
        """The 403 for a caller short of a scope whose request calls a tool that needs it; else None."""
        for name in _called_tools(body):
            needed = self._scopes.needed(name)
            if needed not in caller.scopes:
                audit_logger.info(
                    "%s",
                    json.dumps(
                        {
                            "event": "tool_call",
                            "subject": caller.subject,
                            "client_id": caller.client_id,
                            "tool": name[:80],
                            "provider": None,
                            "outcome": "insufficient_scope",
                        },
                        ensure_ascii=False,
                    ),
                )
                # The tool's name is the caller's text: it stays out of the header.
                return self._challenge(403, ("insufficient_scope", f"This tool needs the scope {needed}"), scope=needed)
        return None

    def _challenge(self, status: int, error: tuple[str, str] | None, *, scope: str | None = None) -> Response:
        """A 401 or 403 with the RFC 6750 challenge, always pointing at the resource metadata (RFC 9728 §5.1)."""
        assert self._oauth is not None
        parts: list[str] = []
        if error is not None:
            parts += [f'error="{error[0]}"', f'error_description="{error[1]}"']
        if scope is not None:
            parts.append(f'scope="{scope}"')
        parts.append(f'resource_metadata="{self._oauth.metadata_url}"')
        body = (
            {"error": error[0], "error_description": error[1]}
            if error
            else {
                "error": "unauthorized",
                "error_description": "This server needs Authorization: Bearer <access token>; sign in as the resource "
                "metadata says.",
            }
        )
        return JSONResponse(body, status_code=status, headers={"WWW-Authenticate": "Bearer " + ", ".join(parts)})


def _called_tools(body: bytes) -> list[str]:
    """The tool names a JSON-RPC body calls (one message or a batch); what is not JSON-RPC names none."""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    messages = cast(list[Any], parsed) if isinstance(parsed, list) else [parsed]
    names: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        fields = cast(dict[str, Any], message)
        params: Any = fields.get("params")
        if fields.get("method") == "tools/call":
            name: Any = cast(dict[str, Any], params).get("name") if isinstance(params, dict) else None
            names.append(name if isinstance(name, str) else "")
    return names


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then whatever the connection sends next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


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


def http_app(
    server: ContactsServer, settings: Settings, options: HttpOptions, *, verifier: OAuthVerifier | None = None
) -> ASGIApp:
    """The ASGI app serving `server` over HTTP as `options` say; with `verifier` (started), as an OAuth resource.

    Raises:
        ConfigurationError: If the options and settings would expose the server unsafely, or the
            settings configure OAuth and no verifier is given.
    """
    allowed = allowed_authorities(settings, options)
    if settings.oauth_issuer is not None and verifier is None:
        raise ConfigurationError("contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER is set but no verifier was started")
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
    oauth = OAuthGuard(config=verifier.config, verifier=verifier) if verifier is not None else None
    return AuthGate(HostOriginGate(app, allowed=allowed), token=token, scopes=server.scopes, oauth=oauth)


def warn_if_open(settings: Settings) -> None:
    """Log that any local program can call the tools when no token is set (`http_app` allows that on loopback only).

    Called once the server has its socket, so a server that cannot start says only why.
    """
    if settings.http_token is None and settings.oauth_issuer is None:
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
