"""A real OAuth 2.1 / OpenID Connect authorization server for the tests: npm's oidc-provider on 127.0.0.1.

`running_issuer(resource=...)` starts `tests/oauth/issuer.mjs` (node) on a free loopback port and yields a
`RunningIssuer`: its URL, an automated login + consent (`authorize`, `authorization_response`, and
`sdk_handlers` for the MCP SDK's `OAuthClientProvider`), key rotation, down/up, the current private
signing key, and shortcuts for a whole code flow (`tokens`/`token`), refresh, introspection and
revocation. The issuer has open dynamic client registration, authorization code with PKCE (S256,
required), refresh tokens (always issued to a client allowed the grant), resource indicators (RFC 8707),
introspection and revocation. An access token is a JWT (RS256, `aud` = the resource, `scope` = what was
granted, `client_id`) when the token request names a `resource`, and an opaque token for the same
resource and scopes when it does not (so the introspection path has something to check).

State (clients, grants, tokens) lives in the node process's memory and survives `stop`/`start` and
`rotate_keys`; the process ends when the context exits (or when this process dies: its stdin closes).

CI installs node and runs `npm ci` (`.ci/run`); there a missing node or oidc-provider fails the tests.
Elsewhere they are skipped with the command that installs them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import anyio.to_thread
import httpx
import pytest
from mcp.client.auth import TokenStorage
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "oauth" / "issuer.mjs"
PACKAGE = ROOT / "node_modules" / "oidc-provider" / "package.json"
INSTALL_HINT = (
    "the tests' OAuth issuer needs node (20.18 or later) and oidc-provider: install Node.js, then run `npm ci`"
)
DEFAULT_SCOPES = ("contacts:read", "contacts:write")
DEFAULT_SUBJECT = "test-user"
REDIRECT_URI = "http://127.0.0.1:9/callback"
"""Where `tokens` sends the browser; nothing listens there: `authorize` stops at the redirect and reads it."""
START_SECONDS = 30.0
COMMAND_SECONDS = 15.0
_MARK = "@@issuer "
_MINIMUM_NODE = (20, 18)


class MemoryTokenStorage(TokenStorage):
    """The SDK client's token storage, in memory: one client registration and its tokens."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class AuthorizationRefused(Exception):
    """The issuer redirected back with an `error` (e.g. access_denied), or the flow did not reach the client."""


def node_binary() -> str:
    """The path of node with oidc-provider installed; fails the test in CI and skips it elsewhere otherwise."""
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node is not on PATH"
    elif not PACKAGE.is_file():
        problem = "node_modules/oidc-provider is missing"
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, encoding="utf-8", check=False)
        found = re.match(r"v(\d+)\.(\d+)", version.stdout.strip())
        if found is None or (int(found.group(1)), int(found.group(2))) < _MINIMUM_NODE:
            problem = f"node {version.stdout.strip() or '?'} is too old"
    if problem is not None:
        message = f"{problem}; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


def new_pkce() -> tuple[str, str]:
    """A PKCE pair (RFC 7636): the code verifier and its S256 code challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    flat = {name: values[-1] for name, values in query.items()}
    return urlunsplit(parts._replace(query=urlencode({**flat, **extra})))


class RunningIssuer:
    """An oidc-provider the test started; see the module docstring for what it issues."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        events: queue.Queue[dict[str, Any]],
        key_file: Path,
        log_file: Path,
        *,
        url: str,
        resource: str,
        scopes: Sequence[str],
    ) -> None:
        self.process = process
        self.url = url
        """The issuer identifier, exactly as its metadata says: http://127.0.0.1:PORT (no trailing slash)."""
        self.resource = resource
        """The resource tokens are for when a request names none."""
        self.scopes = tuple(scopes)
        self._events = events
        self._key_file = key_file
        self._log_file = log_file
        self._metadata: dict[str, Any] | None = None
        self._public_client: dict[str, Any] | None = None
        self._resource_server: tuple[str, str] | None = None

    # -- the process ------------------------------------------------------------------------------

    def _command(self, command: str, expected: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.await_event(expected, COMMAND_SECONDS)

    def await_event(self, expected: str, seconds: float) -> dict[str, Any]:
        """The issuer's next protocol line; fails the test unless it is `expected` and comes within `seconds`."""
        try:
            event = self._events.get(timeout=seconds)
        except queue.Empty:
            event = {"event": "timeout"}
        if event.get("event") != expected:
            pytest.fail(f"the OAuth issuer answered {event} instead of {expected!r}:\n{self.log_tail()}")
        return event

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the issuer wrote to stderr (no secrets: it never logs tokens or keys)."""
        try:
            text = self._log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rotate_keys(self) -> None:
        """Sign with a new RSA key from now on; the old key leaves the JWKS at once (no overlap)."""
        self._command("rotate", "rotated")

    def stop(self) -> None:
        """Close the port and every open connection: connections are refused until `start`."""
        self._command("stop", "stopped")

    def start(self) -> None:
        """Listen again on the same port, with the same state and key."""
        self._command("start", "ready")

    def signing_key(self) -> dict[str, Any]:
        """The current private signing JWK (RSA, RS256, with `kid`), so a test can forge tokens."""
        return cast(dict[str, Any], json.loads(self._key_file.read_text(encoding="utf-8")))

    @property
    def kid(self) -> str:
        """The `kid` of the current signing key."""
        return str(self.signing_key()["kid"])

    # -- HTTP -------------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=10.0, follow_redirects=False)

    def metadata(self) -> dict[str, Any]:
        """The issuer's OpenID Connect discovery document (also served at the RFC 8414 well-known URL)."""
        if self._metadata is None:
            with self._client() as client:
                response = client.get(f"{self.url}/.well-known/openid-configuration")
                response.raise_for_status()
                self._metadata = cast(dict[str, Any], response.json())
        return self._metadata

    def endpoint(self, name: str) -> str:
        """An endpoint from the metadata, e.g. `endpoint("token")` for `token_endpoint`."""
        return str(self.metadata()[f"{name}_endpoint"])

    def register_client(
        self, *, redirect_uris: Sequence[str] = (REDIRECT_URI,), confidential: bool = False
    ) -> dict[str, Any]:
        """Register a client dynamically (RFC 7591) and return the registration response.

        Public (`token_endpoint_auth_method: none`) by default, with authorization code and refresh
        token grants; `confidential=True` registers a client_secret_basic client with no grants and no
        redirect URIs, as a resource server uses for introspection.
        """
        if confidential:
            body: dict[str, Any] = {
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": [],
                "response_types": [],
                "redirect_uris": [],
            }
        else:
            body = {
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "redirect_uris": list(redirect_uris),
            }
        with self._client() as client:
            response = client.post(self.endpoint("registration"), json=body)
        if response.status_code != 201:
            raise AssertionError(f"registration answered {response.status_code}: {response.text[:300]}")
        return cast(dict[str, Any], response.json())

    def resource_server_credentials(self) -> tuple[str, str]:
        """A confidential client's (client_id, client_secret) for the introspection endpoint (registered once)."""
        if self._resource_server is None:
            registered = self.register_client(confidential=True)
            self._resource_server = (str(registered["client_id"]), str(registered["client_secret"]))
        return self._resource_server

    def authorize(
        self, authorization_url: str, *, scopes: str | None = None, subject: str | None = None
    ) -> tuple[str, str | None]:
        """Follow an authorization URL through the automated login and consent; the code and `state`.

        See `authorization_response` (which also returns the RFC 9207 `iss` the SDK's client checks).
        """
        result = self.authorization_response(authorization_url, scopes=scopes, subject=subject)
        return result.code, result.state

    def authorization_response(
        self, authorization_url: str, *, scopes: str | None = None, subject: str | None = None
    ) -> AuthorizationCodeResult:
        """Follow an authorization URL through the automated login and consent to the client's redirect.

        Args:
            authorization_url: The URL a client would open in the browser (the issuer's /auth?...).
            scopes: The scopes the user grants, space-separated (of those requested; the rest are refused);
                default: the `grant_scopes` the issuer was started with.
            subject: Who logs in (the tokens' `sub`); default: the issuer's subject.

        Returns:
            The redirect's code, state and iss, as the MCP SDK's callback handler returns them.

        Raises:
            AuthorizationRefused: The redirect carried an error, or the flow ended anywhere but a redirect.
        """
        interaction: dict[str, str] = {}
        if scopes is not None:
            interaction["grant"] = scopes
        if subject is not None:
            interaction["sub"] = subject
        url = authorization_url
        with self._client() as client:  # a fresh cookie jar: every call logs in and consents anew
            for _ in range(12):
                if url.startswith(f"{self.url}/interaction/") and interaction:
                    url = _with_query(url, interaction)
                response = client.get(url)
                location = response.headers.get("location")
                if response.status_code not in (302, 303) or location is None:
                    raise AuthorizationRefused(
                        f"the issuer answered {response.status_code} at {urlsplit(url).path}: {response.text[:300]}"
                    )
                url = urljoin(url, location)
                if not url.startswith(f"{self.url}/"):
                    break
            else:
                raise AuthorizationRefused("the authorization did not reach the client's redirect URI")
        query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        if "error" in query:
            raise AuthorizationRefused(f"{query['error']}: {query.get('error_description', '')}")
        if "code" not in query:
            raise AuthorizationRefused("the redirect carried no code")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def authorize_async(
        self, authorization_url: str, *, scopes: str | None = None, subject: str | None = None
    ) -> AuthorizationCodeResult:
        """`authorization_response` in a worker thread, for use inside an event loop."""
        return await anyio.to_thread.run_sync(
            lambda: self.authorization_response(authorization_url, scopes=scopes, subject=subject)
        )

    def sdk_handlers(
        self, *, scopes: str | None = None, subject: str | None = None
    ) -> tuple[Callable[[str], Awaitable[None]], Callable[[], Awaitable[AuthorizationCodeResult]]]:
        """A `redirect_handler` and `callback_handler` for the MCP SDK's `OAuthClientProvider`.

        The redirect handler runs the automated login and consent (`scopes`, `subject` as in
        `authorization_response`); the callback handler returns what the redirect carried.
        """
        results: list[AuthorizationCodeResult] = []

        async def redirect_handler(authorization_url: str) -> None:
            results.append(await self.authorize_async(authorization_url, scopes=scopes, subject=subject))

        async def callback_handler() -> AuthorizationCodeResult:
            return results.pop()

        return redirect_handler, callback_handler

    def tokens(
        self,
        *,
        scope: str = " ".join(DEFAULT_SCOPES),
        resource: str | None,
        grant_scopes: str | None = None,
        subject: str | None = None,
    ) -> dict[str, Any]:
        """A whole authorization code + PKCE flow with a public client; the token endpoint's response.

        Args:
            scope: The scopes asked for.
            resource: Named at the authorization and token endpoints: a JWT for it. None: the
                authorization falls back to the issuer's resource and the token is opaque.
            grant_scopes: What the user grants (see `authorize`).
            subject: Who logs in.
        """
        client_id = self._public_client_id()
        verifier, challenge = new_pkce()
        state = secrets.token_urlsafe(16)
        parameters = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if resource is not None:
            parameters["resource"] = resource
        code, returned_state = self.authorize(
            f"{self.endpoint('authorization')}?{urlencode(parameters)}", scopes=grant_scopes, subject=subject
        )
        assert returned_state == state
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
            "code_verifier": verifier,
        }
        if resource is not None:
            form["resource"] = resource
        return self._token_request(form)

    def token(
        self,
        *,
        scope: str = " ".join(DEFAULT_SCOPES),
        resource: str | None,
        grant_scopes: str | None = None,
        subject: str | None = None,
    ) -> str:
        """The access token of `tokens(...)`."""
        return str(
            self.tokens(scope=scope, resource=resource, grant_scopes=grant_scopes, subject=subject)["access_token"]
        )

    def refresh(self, refresh_token: str, *, resource: str | None = None) -> dict[str, Any]:
        """Redeem a refresh token from `tokens` (public client); the token endpoint's response."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self._public_client_id()}
        if resource is not None:
            form["resource"] = resource
        return self._token_request(form)

    def introspect(self, token: str) -> dict[str, Any]:
        """The introspection response (RFC 7662) for any token, asked as a resource server would."""
        with self._client() as client:
            response = client.post(
                self.endpoint("introspection"), data={"token": token}, auth=self.resource_server_credentials()
            )
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    def revoke(self, token: str) -> None:
        """Revoke a token `tokens` issued (access or refresh), as its client (RFC 7009)."""
        with self._client() as client:
            response = client.post(
                self.endpoint("revocation"), data={"token": token, "client_id": self._public_client_id()}
            )
        response.raise_for_status()

    def _public_client_id(self) -> str:
        if self._public_client is None:
            self._public_client = self.register_client()
        return str(self._public_client["client_id"])

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        with self._client() as client:
            response = client.post(self.endpoint("token"), data=form)
        if response.status_code != 200:
            raise AssertionError(f"the token endpoint answered {response.status_code}: {response.text[:300]}")
        return cast(dict[str, Any], response.json())


def _read_events(stdout: Iterator[str], events: queue.Queue[dict[str, Any]]) -> None:
    for line in stdout:
        if line.startswith(_MARK):
            events.put(cast(dict[str, Any], json.loads(line[len(_MARK) :])))
    events.put({"event": "exited"})


@contextmanager
def running_issuer(
    *,
    resource: str,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    grant_scopes: Sequence[str] | None = None,
    subject: str = DEFAULT_SUBJECT,
    access_token_ttl: int = 600,
) -> Generator[RunningIssuer]:
    """Run oidc-provider on 127.0.0.1 (a free port) until the context exits.

    Args:
        resource: The resource server's identifier (the MCP server's public URL): the default resource.
        scopes: The scopes every resource server has.
        grant_scopes: What the test user grants by default (of what is asked); default: all of `scopes`.
        subject: The test user's account id (`sub`).
        access_token_ttl: Access token lifetime in seconds.
    """
    node = node_binary()
    with tempfile.TemporaryDirectory(prefix="contacts-mcp-issuer-") as directory:
        key_file = Path(directory) / "signing-key.json"
        log_file = Path(directory) / "issuer.log"
        config = {
            "resource": resource,
            "scopes": list(scopes),
            "grantScopes": list(scopes if grant_scopes is None else grant_scopes),
            "subject": subject,
            "keyFile": str(key_file),
            "accessTokenTTL": access_token_ttl,
        }
        with log_file.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [node, str(SCRIPT), json.dumps(config)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                encoding="utf-8",
                env={**os.environ, "NODE_ENV": "test"},
            )
        assert process.stdout is not None
        events: queue.Queue[dict[str, Any]] = queue.Queue()
        reader = threading.Thread(target=_read_events, args=(process.stdout, events), daemon=True)
        reader.start()
        try:
            issuer = RunningIssuer(process, events, key_file, log_file, url="", resource=resource, scopes=scopes)
            ready = issuer.await_event("ready", START_SECONDS)
            issuer.url = str(ready["url"])
            yield issuer
        finally:
            if process.stdin is not None:
                process.stdin.close()  # the issuer exits when its stdin closes
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            reader.join(timeout=5)
            process.stdout.close()
