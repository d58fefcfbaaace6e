"""The OAuth resource server's token check: access tokens of one external issuer, verified here.

The issuer (`CONTACTS_MCP_OAUTH_ISSUER`) is discovered at start (RFC 8414, then OpenID Connect
discovery); its metadata must name exactly that issuer. Tokens are then checked without a round trip:

- a JWT access token (RFC 9068) by PyJWT: signed by a key of the issuer's JWKS chosen by `kid`, with
  an asymmetric algorithm only (never `none`, never HS*, whose "secret" could be the public key),
  `iss` the issuer, `aud` holding the audience, `exp` required, `nbf`/`iat` honoured, 60 s of skew;
- an opaque token by the issuer's introspection endpoint (RFC 7662, client_secret_basic), when this
  server has credentials there; the answer is kept for a few seconds by the token's hash.

The JWKS is cached (Cache-Control max-age within bounds) and kept when the issuer goes down. A `kid`
it does not hold makes one refetch, so a key the issuer rotated in is accepted without a restart; a
second unknown `kid` within `REFETCH_SECONDS` makes none, so a flood of forged `kid`s costs the
issuer one request per interval. `verify_token` answers None for a token that is not valid (the
HTTP side says 401 invalid_token) and raises `IssuerUnavailable` when it cannot tell now (503).

Nothing here logs or raises with a token or a secret: refusals are logged in words ("expired").
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import quote_plus, urlsplit

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken

from .binds import is_loopback
from .errors import ConfigurationError
from .settings import Settings

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Signature algorithms accepted: asymmetric only, so a key from the JWKS can never be used as an HMAC secret."""
CLOCK_SKEW_SECONDS = 60
"""How far `exp`, `nbf` and `iat` may be off this machine's clock."""
JWKS_TTL_SECONDS = 15 * 60
"""How long the JWKS is kept when the issuer's answer gives no max-age."""
JWKS_TTL_BOUNDS = (60.0, 24 * 60 * 60.0)
"""The least and most a max-age keeps the JWKS: no refetch storm, no key kept for days."""
REFETCH_SECONDS = 30.0
"""The least time between refetches of the JWKS for a `kid` it did not hold (and after a failed fetch)."""
INTROSPECTION_TTL_SECONDS = 30.0
"""How long an introspection answer is reused (never past the token's `exp`)."""
INTROSPECTION_CACHE_ENTRIES = 10_000
MAX_DOCUMENT_BYTES = 1024 * 1024
"""The largest metadata, JWKS or introspection answer read."""
MAX_TOKEN_CHARS = 16 * 1024
"""Longer bearer tokens are refused unread."""
TIMEOUT = httpx.Timeout(10.0, connect=5.0)

_JWS_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
"""`typ` headers taken as an access token (RFC 9068 asks for at+jwt; many issuers still write JWT)."""
_REFRESH_TOKEN_TYPES = frozenset({"refresh_token", "urn:ietf:params:oauth:token-type:refresh_token"})


class IssuerUnavailable(Exception):
    """The token cannot be judged now: the issuer's metadata, keys or introspection could not be had."""


def _loopback_url(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


def _shown(url: str) -> str:
    """`url` for a message: scheme, host and path, never a query (which could carry a credential)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


@dataclass(frozen=True)
class OAuthConfig:
    """What the resource server checks tokens against, built from `Settings` and validated."""

    issuer: str
    resource: str
    audience: str
    read_scope: str
    write_scope: str
    client_id: str | None
    client_secret: str | None = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthConfig | None:
        """The configuration, or None when `CONTACTS_MCP_OAUTH_ISSUER` is not set (OAuth is off).

        Raises:
            ConfigurationError: In one line naming the setting, if the settings do not hold together: no
                public URL, an http public URL or issuer off loopback, a blank audience, a client id
                without its secret or the other way round, or OAuth settings without an issuer.
        """
        issuer = settings.oauth_issuer
        if issuer is None:
            strays = [
                name
                for name, value in (
                    ("CONTACTS_MCP_OAUTH_AUDIENCE", settings.oauth_audience),
                    ("CONTACTS_MCP_OAUTH_CLIENT_ID", settings.oauth_client_id),
                    ("CONTACTS_MCP_OAUTH_CLIENT_SECRET", settings.oauth_client_secret),
                )
                if value is not None
            ]
            if strays:
                raise ConfigurationError(
                    f"contacts-mcp: {' and '.join(strays)} set without CONTACTS_MCP_OAUTH_ISSUER; set the issuer "
                    "URL too, or unset them"
                )
            return None
        if not issuer.startswith("https://") and not _loopback_url(issuer):
            raise ConfigurationError(
                "contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER must be an https:// URL (plain http only for a loopback "
                "host such as 127.0.0.1 or localhost)"
            )
        public_url = settings.public_url
        if public_url is None:
            raise ConfigurationError(
                "contacts-mcp: CONTACTS_MCP_PUBLIC_URL is required with CONTACTS_MCP_OAUTH_ISSUER: the public "
                "https URL clients connect to, e.g. https://contacts.example.com/mcp"
            )
        if not public_url.startswith("https://") and not _loopback_url(public_url):
            raise ConfigurationError(
                "contacts-mcp: CONTACTS_MCP_PUBLIC_URL must be an https:// URL (behind a TLS proxy, the public "
                "one); plain http only for a loopback host such as 127.0.0.1 or localhost"
            )
        audience = settings.oauth_audience if settings.oauth_audience is not None else public_url
        if not audience:
            raise ConfigurationError(
                "contacts-mcp: CONTACTS_MCP_OAUTH_AUDIENCE is blank; unset it to use CONTACTS_MCP_PUBLIC_URL, or "
                "set the audience the issuer puts in the tokens' aud"
            )
        secret = settings.oauth_client_secret.get_secret_value() if settings.oauth_client_secret else None
        if (settings.oauth_client_id is None) != (secret is None):
            missing = "CONTACTS_MCP_OAUTH_CLIENT_SECRET" if secret is None else "CONTACTS_MCP_OAUTH_CLIENT_ID"
            raise ConfigurationError(
                f"contacts-mcp: {missing} is missing: introspection needs both CONTACTS_MCP_OAUTH_CLIENT_ID and "
                "CONTACTS_MCP_OAUTH_CLIENT_SECRET, or neither"
            )
        return cls(
            issuer=issuer,
            resource=public_url,
            audience=audience,
            read_scope=settings.oauth_read_scope,
            write_scope=settings.oauth_write_scope,
            client_id=settings.oauth_client_id,
            client_secret=secret,
        )


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be, in the order asked: RFC 8414's, then OpenID Connect's.

    RFC 8414 §3.1 inserts the well-known segment between the host and the issuer's path; OpenID
    Connect Discovery appends it to the issuer. For an issuer with a path, the OIDC document is
    asked at the inserted place too, as the MCP authorization spec has clients do.
    """
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
    urls.append(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    return list(dict.fromkeys(urls))


def _max_age(headers: httpx.Headers) -> float | None:
    directives = [part.strip().lower() for part in headers.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age" and value.strip().isdigit():
            return float(value.strip())
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _strings(value: object) -> list[str]:
    """A claim that is a space-separated string or a list of strings, as a list."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]  # pyright: ignore[reportUnknownVariableType]
    return []


def _audiences(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return _strings(value)


def _usable_jwk(key: object) -> TypeGuard[dict[str, Any]]:
    """Whether a JWKS entry may verify signatures: a public asymmetric key meant for signing."""
    if not isinstance(key, dict):
        return False
    entry: dict[str, Any] = key  # pyright: ignore[reportUnknownVariableType]
    if entry.get("kty") not in {"RSA", "EC", "OKP"} or entry.get("use", "sig") != "sig":
        return False
    operations = entry.get("key_ops")
    return operations is None or (isinstance(operations, list) and "verify" in operations)


@dataclass
class _Introspected:
    token: AccessToken | None
    until: float


class OAuthVerifier:
    """Verifies bearer tokens of one issuer (`mcp.server.auth.provider.TokenVerifier`)."""

    def __init__(
        self,
        config: OAuthConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        refetch_seconds: float = REFETCH_SECONDS,
        introspection_ttl_seconds: float = INTROSPECTION_TTL_SECONDS,
    ) -> None:
        self.config = config
        self._clock = clock
        self._refetch_seconds = refetch_seconds
        self._introspection_ttl = introspection_ttl_seconds
        self._client = httpx.AsyncClient(
            timeout=TIMEOUT,
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "contacts-mcp"},
        )
        self.jwks_uri: str | None = None
        self.introspection_endpoint: str | None = None
        self._keys: list[dict[str, Any]] = []
        self._parsed: dict[tuple[int, str], jwt.PyJWK] = {}
        self._keys_until = -math.inf
        self._last_miss_fetch = -math.inf
        self._last_failed_fetch = -math.inf
        self._last_fetch_failed = False
        self._lock = anyio.Lock()
        self._introspected: dict[str, _Introspected] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    # ---- start-up ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Discover the issuer and read its keys, before the server serves anything.

        Raises:
            ConfigurationError: Naming `CONTACTS_MCP_OAUTH_ISSUER`, if the issuer does not answer, has no
                metadata, its metadata names another issuer, or it offers no way to check a token.
        """
        issuer = self.config.issuer
        metadata = await self._discover()
        jwks_uri = metadata.get("jwks_uri")
        endpoint = metadata.get("introspection_endpoint")
        for name, value in (("jwks_uri", jwks_uri), ("introspection_endpoint", endpoint)):
            if value is None:
                continue
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise ConfigurationError(f"contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER: the metadata's {name} is not a URL")
            if not value.startswith("https://") and not _loopback_url(value):
                raise ConfigurationError(
                    f"contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER: the metadata's {name} is not https ({_shown(value)})"
                )
        self.jwks_uri = jwks_uri
        introspects = self.config.client_id is not None and self.config.client_secret is not None
        if introspects and endpoint is None:
            logger.warning(
                "the issuer %s has no introspection_endpoint: opaque tokens will be refused, and "
                "CONTACTS_MCP_OAUTH_CLIENT_ID/_SECRET are not used",
                issuer,
            )
        self.introspection_endpoint = endpoint if introspects else None
        if jwks_uri is None and self.introspection_endpoint is None:
            raise ConfigurationError(
                f"contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER: the metadata of {issuer} has no jwks_uri, so only "
                "introspection could check tokens; set CONTACTS_MCP_OAUTH_CLIENT_ID and _SECRET (and the issuer "
                "needs an introspection_endpoint)"
            )
        try:
            if jwks_uri is not None:
                await self._fetch_jwks()
            if self.introspection_endpoint is not None:
                await self._check_credentials(self.introspection_endpoint)
        except IssuerUnavailable as exc:
            raise ConfigurationError(f"contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER: {exc}") from None
        logger.info(
            "OAuth: tokens of %s for audience %s (%d signing keys%s)",
            issuer,
            self.config.audience,
            len(self._keys),
            ", opaque tokens introspected" if self.introspection_endpoint else "",
        )

    async def _check_credentials(self, endpoint: str) -> None:
        """Introspect a token that was never issued, so wrong credentials stop the start, not every request later.

        Raises:
            ConfigurationError: Naming CONTACTS_MCP_OAUTH_CLIENT_ID and _SECRET, if the issuer refuses them.
            IssuerUnavailable: If the endpoint does not answer.
        """
        status, _, _ = await self._send(self._introspection_request("contacts-mcp-start-check"), what="introspection")
        if status in (400, 401, 403):
            raise ConfigurationError(
                f"contacts-mcp: CONTACTS_MCP_OAUTH_CLIENT_ID / CONTACTS_MCP_OAUTH_CLIENT_SECRET: the issuer's "
                f"introspection endpoint {_shown(endpoint)} refused them ({status}); check both"
            )
        if status != 200:
            logger.warning("the issuer's introspection endpoint %s answered %d at start", _shown(endpoint), status)

    def _introspection_request(self, token: str) -> httpx.Request:
        assert self.introspection_endpoint is not None
        return self._client.build_request(
            "POST",
            self.introspection_endpoint,
            data={"token": token, "token_type_hint": "access_token"},
            headers={"Authorization": self._basic()},
        )

    async def _discover(self) -> dict[str, Any]:
        issuer = self.config.issuer
        tried: list[str] = []
        for url in metadata_urls(issuer):
            try:
                status, _, body = await self._get(url, what="the issuer's metadata")
            except IssuerUnavailable as exc:
                tried.append(str(exc))
                continue
            if status != 200:
                tried.append(f"{_shown(url)} answered {status}")
                continue
            document = self._json_object(body)
            if document is None:  # e.g. a login page served for any path: the next place may hold it
                tried.append(f"{_shown(url)} answered something other than a JSON object")
                continue
            named = document.get("issuer")
            if named != issuer:
                shown = repr(named)[:200] if isinstance(named, str) else "no issuer"
                raise ConfigurationError(
                    f"contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER is {issuer!r} but the metadata at {_shown(url)} names "
                    f"{shown}; set it to exactly the issuer the metadata names (tokens carry it in iss)"
                )
            return document
        raise ConfigurationError(
            f"contacts-mcp: CONTACTS_MCP_OAUTH_ISSUER: the issuer {issuer} did not answer with its metadata at start "
            f"({'; '.join(tried)})"
        )

    # ---- HTTP --------------------------------------------------------------------------------------

    async def _get(self, url: str, *, what: str) -> tuple[int, httpx.Headers, bytes]:
        return await self._send(self._client.build_request("GET", url), what=what)

    async def _send(self, request: httpx.Request, *, what: str) -> tuple[int, httpx.Headers, bytes]:
        """Status, headers and body (at most `MAX_DOCUMENT_BYTES`, decoded) of one request.

        Raises:
            IssuerUnavailable: If there is no answer, it breaks off, or it is too large; the message
                names `what` and the URL without its query, never a header or the body sent.
        """
        where = f"{what} at {_shown(str(request.url))}"
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise IssuerUnavailable(f"{where} did not answer ({type(exc).__name__})") from None
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise IssuerUnavailable(f"{where} answered more than {MAX_DOCUMENT_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise IssuerUnavailable(f"{where} broke off its answer ({type(exc).__name__})") from None
        finally:
            await response.aclose()
        return response.status_code, response.headers, bytes(body)

    @staticmethod
    def _json_object(body: bytes) -> dict[str, Any] | None:
        try:
            document = json.loads(body)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None  # pyright: ignore[reportUnknownVariableType]

    # ---- keys --------------------------------------------------------------------------------------

    async def _fetch_jwks(self) -> None:
        """Read the JWKS and keep its signing keys; on failure the keys held so far stay.

        Raises:
            IssuerUnavailable: If the JWKS cannot be read or is not a JWK Set.
        """
        assert self.jwks_uri is not None
        now = self._clock()
        try:
            status, headers, body = await self._get(self.jwks_uri, what="the issuer's JWKS")
            document = self._json_object(body) if status == 200 else None
            keys = document.get("keys") if document is not None else None
            if status != 200:
                raise IssuerUnavailable(f"the issuer's JWKS at {_shown(self.jwks_uri)} answered {status}")
            if not isinstance(keys, list):
                raise IssuerUnavailable(f"the issuer's JWKS at {_shown(self.jwks_uri)} is not a JWK Set")
        except IssuerUnavailable:
            self._last_fetch_failed = True
            self._last_failed_fetch = now
            raise
        entries: list[object] = keys  # pyright: ignore[reportUnknownVariableType]
        self._keys = [key for key in entries if _usable_jwk(key)]
        self._parsed = {}
        self._last_fetch_failed = False
        max_age = _max_age(headers)
        low, high = JWKS_TTL_BOUNDS
        self._keys_until = now + (JWKS_TTL_SECONDS if max_age is None else min(max(max_age, low), high))
        if not self._keys:
            logger.warning("the issuer's JWKS at %s holds no signing key", _shown(self.jwks_uri))

    def _find(self, kid: str | None, alg: str) -> list[jwt.PyJWK]:
        """The held keys the token may be signed with: those named by its `kid`, else every one that fits `alg`."""
        found: list[jwt.PyJWK] = []
        for index, key in enumerate(self._keys):
            if kid is not None and key.get("kid") != kid:
                continue
            if key.get("alg", alg) != alg:
                continue
            parsed = self._parsed.get((index, alg))
            if parsed is None:
                try:
                    parsed = jwt.PyJWK(key, algorithm=alg)
                except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                    continue  # a key of another type than `alg` needs, or not a key at all
                self._parsed[index, alg] = parsed
            found.append(parsed)
        return found

    async def _keys_for(self, kid: str | None, alg: str) -> list[jwt.PyJWK]:
        """The keys to check a token with (none: no such key), refetching the JWKS when it is stale or lacks `kid`.

        Raises:
            IssuerUnavailable: If the key is not held and the JWKS cannot be had now.
        """
        if self._clock() >= self._keys_until and self._clock() - self._last_failed_fetch >= self._refetch_seconds:
            async with self._lock:
                now = self._clock()
                if now >= self._keys_until and now - self._last_failed_fetch >= self._refetch_seconds:
                    try:
                        await self._fetch_jwks()
                    except IssuerUnavailable as exc:
                        logger.warning("%s; verifying with the %d keys held", exc, len(self._keys))
        keys = self._find(kid, alg)
        if keys:
            return keys
        async with self._lock:
            keys = self._find(kid, alg)  # another request may have refetched while this one waited
            if keys:
                return keys
            now = self._clock()
            last = max(self._last_miss_fetch, self._last_failed_fetch)
            if now - last >= self._refetch_seconds:
                self._last_miss_fetch = now
                await self._fetch_jwks()  # raises IssuerUnavailable: the key may exist, and cannot be had
                return self._find(kid, alg)
            if self._last_fetch_failed:
                raise IssuerUnavailable("the issuer's JWKS could not be read, and no held key fits the token")
            return []

    # ---- tokens ------------------------------------------------------------------------------------

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's access, or None when it is not a valid token of the issuer for this audience.

        Raises:
            IssuerUnavailable: If the token cannot be judged now (keys or introspection out of reach).
        """
        if not token or len(token) > MAX_TOKEN_CHARS:
            return self._refused("empty or too long")
        if _JWS_SHAPE.fullmatch(token):
            if self.jwks_uri is not None:
                return await self._verify_jwt(token)
            if self.introspection_endpoint is not None:
                return await self._introspect(token)
            return self._refused("a JWT, and the issuer publishes no keys")
        if self.introspection_endpoint is not None:
            return await self._introspect(token)
        return self._refused("not a JWT, and no introspection is configured")

    @staticmethod
    def _refused(why: str) -> None:
        logger.info("refused a bearer token: %s", why)

    async def _verify_jwt(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return self._refused("malformed")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            return self._refused("an algorithm that is not accepted (asymmetric signatures only)")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
            return self._refused("not an access token (its typ header)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            return self._refused("malformed (kid)")
        keys = await self._keys_for(kid, alg)
        if not keys:
            return self._refused("signed with a key the issuer does not publish")
        try:
            claims = self._decode(token, keys, alg)
        except jwt.ExpiredSignatureError:
            return self._refused("expired")
        except jwt.ImmatureSignatureError:
            return self._refused("not yet valid")
        except jwt.InvalidAudienceError:
            return self._refused("wrong audience")
        except jwt.InvalidIssuerError:
            return self._refused("wrong issuer")
        except jwt.MissingRequiredClaimError as exc:
            return self._refused(f"no {exc.claim} claim")
        except jwt.InvalidSignatureError:
            return self._refused("bad signature")
        except jwt.PyJWTError:
            return self._refused("malformed")
        return self._access(token, claims)

    def _decode(self, token: str, keys: list[jwt.PyJWK], alg: str) -> dict[str, Any]:
        """The token's claims, checked by PyJWT with the first of `keys` whose signature holds.

        Raises:
            jwt.PyJWTError: The first reason the token is not valid (`InvalidSignatureError` if no key fits).
        """
        for key in keys[:-1]:
            try:
                return self._checked(token, key, alg)
            except jwt.InvalidSignatureError:
                continue  # a kid-less token while two keys are published: the next may be the one
        # PyJWT checks the signature before any claim, so any other error is the token's own.
        return self._checked(token, keys[-1], alg)

    def _checked(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=self.config.audience,
            issuer=self.config.issuer,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )

    def _access(self, token: str, claims: dict[str, Any]) -> AccessToken:
        scopes = list(dict.fromkeys(_strings(claims.get("scope")) + _strings(claims.get("scp"))))
        client_id = next(
            (value for name in ("client_id", "azp", "cid") if isinstance(value := claims.get(name), str)), ""
        )
        expires = _number(claims.get("exp"))
        subject = claims.get("sub")
        return AccessToken(
            token=token,
            client_id=client_id,
            scopes=scopes,
            expires_at=int(expires) if expires is not None else None,
            resource=self.config.audience,
            subject=subject if isinstance(subject, str) else None,
            claims=claims,
        )

    # ---- introspection -----------------------------------------------------------------------------

    def _basic(self) -> str:
        # RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
        assert self.config.client_id is not None
        assert self.config.client_secret is not None
        pair = f"{quote_plus(self.config.client_id)}:{quote_plus(self.config.client_secret)}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    async def _introspect(self, token: str) -> AccessToken | None:
        """The token as the issuer's introspection endpoint describes it.

        Raises:
            IssuerUnavailable: If the endpoint does not answer, or not with a JSON object.
        """
        assert self.introspection_endpoint is not None
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        kept = self._introspected.get(digest)
        if kept is not None and kept.until > now:
            return kept.token if kept.token is not None else self._refused("inactive (introspection)")
        status, _, body = await self._send(
            self._introspection_request(token), what="the issuer's introspection endpoint"
        )
        where = _shown(self.introspection_endpoint)
        if status in (400, 401, 403):
            logger.error(
                "the issuer's introspection endpoint %s refused this server's credentials (%d); check "
                "CONTACTS_MCP_OAUTH_CLIENT_ID and CONTACTS_MCP_OAUTH_CLIENT_SECRET",
                where,
                status,
            )
        document = self._json_object(body) if status == 200 else None
        if document is None:
            raise IssuerUnavailable(f"the issuer's introspection endpoint at {where} answered {status}, not a result")
        access, why = self._introspected_access(token, document)
        until = now + self._introspection_ttl
        if access is not None and access.expires_at is not None:
            until = min(until, now + (access.expires_at - time.time()))
        self._keep(digest, _Introspected(access, until), now)
        return access if access is not None else self._refused(why)

    def _introspected_access(self, token: str, answer: dict[str, Any]) -> tuple[AccessToken | None, str]:
        if answer.get("active") is not True:
            return None, "inactive (introspection)"
        wall = time.time()
        expires = _number(answer.get("exp"))
        if expires is not None and expires <= wall - CLOCK_SKEW_SECONDS:
            return None, "expired (introspection)"
        not_before = _number(answer.get("nbf"))
        if not_before is not None and not_before > wall + CLOCK_SKEW_SECONDS:
            return None, "not yet valid (introspection)"
        if "iss" in answer and answer["iss"] != self.config.issuer:
            return None, "wrong issuer (introspection)"
        if "aud" in answer and self.config.audience not in _audiences(answer["aud"]):
            return None, "wrong audience (introspection)"
        token_type = answer.get("token_type")
        if isinstance(token_type, str) and token_type.lower() in _REFRESH_TOKEN_TYPES:
            return None, "a refresh token (introspection)"
        claims = {**answer, "iss": answer.get("iss", self.config.issuer)}
        return self._access(token, claims), ""

    def _keep(self, digest: str, entry: _Introspected, now: float) -> None:
        if len(self._introspected) >= INTROSPECTION_CACHE_ENTRIES:
            self._introspected = {key: kept for key, kept in self._introspected.items() if kept.until > now}
            while len(self._introspected) >= INTROSPECTION_CACHE_ENTRIES:
                del self._introspected[next(iter(self._introspected))]
        self._introspected[digest] = entry


@asynccontextmanager
async def open_verifier(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[OAuthVerifier | None]:
    """A started verifier for the settings' issuer, closed on exit; None when OAuth is not configured.

    Raises:
        ConfigurationError: If the settings do not hold together or the issuer does not answer at start.
    """
    config = OAuthConfig.from_settings(settings)
    if config is None:
        yield None
        return
    verifier = OAuthVerifier(config, transport=transport, clock=clock)
    try:
        await verifier.start()
        yield verifier
    finally:
        await verifier.aclose()
