"""The one place upstream HTTP happens: one client per provider, its budgets, and error mapping.

Providers describe a request (budget name, method, path, query, body) and get parsed JSON back or a
`ContactsError` whose message the model can act on. Nothing here ever puts an API key into an
error, a log line or a result: keys live only in the client's default headers.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from server.budgets import Budgets
from server.errors import (
    AuthenticationFailed,
    ContactsError,
    NotFound,
    PermissionDenied,
    RateLimited,
    UpstreamUnavailable,
    ValidationFailed,
)

logger = logging.getLogger(__name__)

QueryParams = Sequence[tuple[str, str]]
ErrorReader = Callable[[Any], str | None]
"""Pulls the upstream's own error message out of a parsed error body, if it has one."""

MAX_429_RETRIES = 2
DEFAULT_RETRY_AFTER_SECONDS = 60.0


def path(*segments: str) -> str:
    """Join path segments, percent-encoding each whole, so no argument can reach another path."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a `Retry-After` header: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Upstream:
    """An HTTP client for one provider that keeps every request within its endpoint's budget."""

    def __init__(
        self,
        *,
        label: str,
        base_url: str,
        headers: Mapping[str, str],
        budgets: Budgets,
        max_wait_seconds: float,
        timeout_seconds: float,
        read_error: ErrorReader,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.label = label
        self._budgets = budgets
        self._max_wait = max_wait_seconds
        self._read_error = read_error
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Accept": "application/json", "User-Agent": "contacts-mcp", **headers},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        budget: str,
        method: str,
        url: str,
        *,
        params: QueryParams | None = None,
        json: Any = None,
        not_found: str = "Not found.",
    ) -> Any:
        """Send one request within `budget` and return its parsed JSON body.

        A 429 blocks the budget for its `Retry-After`, and the request is sent again when that
        wait fits in what is left of the caller's allowed wait (the upstream did not process it).

        Raises:
            ContactsError: The classified failure, with a message for the model.
        """
        deadline = anyio.current_time() + self._max_wait
        described = f"{method} {url}"  # for errors and logs: never the query or headers, so never a key
        for attempt in range(MAX_429_RETRIES + 1):
            limiter = self._budgets[budget]
            max_wait = max(0.0, deadline - anyio.current_time())
            async with limiter.slot(max_wait=max_wait):
                response = await self._send(method, url, params=params, json=json, described=described)
            if response.status_code != 429:
                return self._parse(response, described=described, not_found=not_found)
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            wait = DEFAULT_RETRY_AFTER_SECONDS if wait is None else wait
            limiter.block_for(wait)
            logger.warning("%s: 429 from %s, budget %s blocked for %.1f s", described, self.label, budget, wait)
            if attempt == MAX_429_RETRIES or anyio.current_time() + wait > deadline:
                message = self._message(response)
                raise RateLimited(
                    f"{self.label}'s rate limit was hit{f' ({message})' if message else ''}.",
                    retry_after=wait,
                    status=429,
                    request=described,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, method: str, url: str, *, params: QueryParams | None, json: Any, described: str
    ) -> httpx.Response:
        try:
            return await self._client.request(method, url, params=list(params or ()), json=json)
        except httpx.TimeoutException as exc:
            logger.warning("%s: %s timed out (%s)", described, self.label, type(exc).__name__)
            raise UpstreamUnavailable(
                f"{self.label} did not answer within {self._client.timeout.read:g} s. Try again in a moment.",
                request=described,
            ) from None
        except httpx.TransportError as exc:
            logger.warning("%s: cannot reach %s (%s)", described, self.label, type(exc).__name__)
            raise UpstreamUnavailable(
                f"Could not reach {self.label} at {self._client.base_url} ({type(exc).__name__}). "
                "Try again in a moment; if it persists, the server's base URL setting may be wrong.",
                request=described,
            ) from None

    def _message(self, response: httpx.Response) -> str | None:
        try:
            body = response.json()
        except ValueError:
            return None
        try:
            return self._read_error(body)
        except Exception:  # an error body of an unexpected shape must not hide the status
            return None

    def _parse(self, response: httpx.Response, *, described: str, not_found: str) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                kind = response.headers.get("content-type", "no content type")
                logger.warning(
                    "%s: %s sent HTTP %d with a body that is not JSON (%s)", described, self.label, status, kind
                )
                raise UpstreamUnavailable(
                    f"{self.label} answered HTTP {status} with a body that is not JSON ({kind}). "
                    "Try again in a moment.",
                    status=status,
                    request=described,
                ) from None
        logger.info("%s: %s answered HTTP %d", described, self.label, status)
        message = self._message(response)
        said = f" {self.label} said: {message}" if message else ""
        error: ContactsError
        if status == 401:
            error = AuthenticationFailed(
                f"{self.label} rejected the API key.{said} The person running this server must set a valid key; "
                "retrying will not help.",
            )
        elif status == 403:
            error = PermissionDenied(
                f"{self.label} refused the request: the API key lacks permission or the subscription is inactive."
                f"{said} Retrying will not help.",
            )
        elif status == 404:
            error = NotFound(f"{not_found}{said}")
        elif status in (400, 409, 422):
            error = ValidationFailed(f"{self.label} rejected the arguments.{said} Fix them and call again.")
        elif status >= 500:
            error = UpstreamUnavailable(f"{self.label} failed with HTTP {status}.{said} Try again in a moment.")
        else:
            error = UpstreamUnavailable(f"{self.label} answered with unexpected HTTP {status}.{said}")
        error.status = status
        error.request = described
        raise error
