"""The one place upstream HTTP happens: one client per provider, its budgets, retries, and error mapping.

Providers describe a request (budget name, method, path, query, body) and get parsed JSON back or a
`ContactsError` whose message the model can act on. Nothing here ever puts an API key into an
error, a log line or a result: keys live only in the client's default headers. And an upstream
that echoes a secret back (whole, in part, split across fields) has it taken out here, by the
server's `Redactor`, before any provider, cap or quote reads its answer, so no cut can leave a piece.

Whatever the upstream does, a call ends: each try within the timeout, body included; a body over
the size limit is refused unread; and the upstream's own words reach the model only quoted as a
short JSON string, so they read as data, never as an instruction.
"""

from __future__ import annotations

import email.utils
import functools
import json as jsonlib
import logging
import math
import random
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from .budgets import Budget, Budgets, Observation
from .budgets.background import Priority
from .errors import (
    AuthenticationFailed,
    ContactsError,
    NotFound,
    PermissionDenied,
    RateLimited,
    UpstreamUnavailable,
    ValidationFailed,
)
from .results import Redactor

logger = logging.getLogger(__name__)

QueryParams = Sequence[tuple[str, str]]
ErrorReader = Callable[[Any], str | None]
"""Pulls the upstream's own error message out of a parsed error body, if it has one."""

MAX_ATTEMPTS = 3
"""Tries of one GET that fails in transit or with a 5xx (each try draws on the budget)."""
MAX_429_RETRIES = 2
BACKGROUND_429_RETRIES = 10
"""429s a background request (the index's sync) waits out before it fails: it has no caller waiting on it."""
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures raised before any byte of the request left: safe to retry even for a create."""
DAY_SECONDS = 86_400.0
MAX_ERROR_BODY_BYTES = 64 * 1024
"""How much of an error answer is read: enough for its message, never a whole page of HTML."""
QUOTED_CHARS = 300
"""The most of an upstream's own message quoted in an error."""


def backoff_seconds(retry: int) -> float:
    """Exponential backoff with jitter before retry `retry` (1, 2, ...): half fixed, half random."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (retry - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


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


def _number(headers: httpx.Headers, name: str) -> float | None:
    try:
        value = float(headers.get(name, ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _count(headers: httpx.Headers, name: str) -> int | None:
    value = _number(headers, name)
    return None if value is None else int(value)


def reset_seconds(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """`X-RateLimit-Reset` as seconds from `now` (Unix time; default the system clock), if sent.

    The header is a Unix time (Clemta, Laravel's throttle on Cometly) or a number of seconds; a
    value past 1e9 can only be the former.
    """
    reset = _number(headers, "X-RateLimit-Reset")
    if reset is not None and reset > 1e9:
        reset = max(0.0, reset - (time.time() if now is None else now))
    return reset


def rate_limit_observations(headers: httpx.Headers, *, now: float | None = None) -> list[Observation]:
    """What a response's rate-limit headers say, for the budget to follow.

    Understood: `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix time or
    seconds; Cometly, Clemta) about the budget's shortest rule; HighLevel's `X-RateLimit-Max`,
    `X-RateLimit-Remaining` and `X-RateLimit-Interval-Milliseconds` about the rule with that window,
    and `X-RateLimit-Limit-Daily` / `X-RateLimit-Daily-Remaining` about its day rule. Clemta's
    `X-RateLimit-Type: resource` says the limit is a resource's (its company's), not the key's: it
    may hold the budget down but never lifts it (`Observation.may_raise`).
    """
    observations: list[Observation] = []
    limit = _count(headers, "X-RateLimit-Max")
    if limit is None:
        limit = _count(headers, "X-RateLimit-Limit")
    remaining = _count(headers, "X-RateLimit-Remaining")
    if limit is not None or remaining is not None:
        interval = _number(headers, "X-RateLimit-Interval-Milliseconds")
        window = interval / 1000 if interval else None
        scope = headers.get("X-RateLimit-Type", "").strip().lower()
        observations.append(
            Observation(
                window=window,
                limit=limit,
                remaining=remaining,
                reset_after=reset_seconds(headers, now=now),
                may_raise=scope != "resource",
            )
        )
    daily_limit = _count(headers, "X-RateLimit-Limit-Daily")
    daily_remaining = _count(headers, "X-RateLimit-Daily-Remaining")
    if daily_limit is not None or daily_remaining is not None:
        observations.append(Observation(window=DAY_SECONDS, limit=daily_limit, remaining=daily_remaining))
    return observations


def wait_after_429(headers: httpx.Headers, *, shortest_window: float, now: float | None = None) -> tuple[float, str]:
    """How long a 429 asks every caller of its budget to wait, and which header said so.

    The first of: `Retry-After`; `X-RateLimit-Reset`; HighLevel's `X-RateLimit-Interval-Milliseconds`
    (HighLevel documents no `Retry-After`; its burst window is 10 s); else `shortest_window`, the
    budget's shortest rule (a minute for Cometly and Clemta), after which that window has rolled over.

    Args:
        headers: The 429's headers.
        shortest_window: The window of the budget's shortest rule, in seconds.
        now: The current Unix time (default: the system clock).
    """
    moment = None if now is None else datetime.fromtimestamp(now, UTC)
    wait = retry_after_seconds(headers.get("Retry-After"), now=moment)
    if wait is not None:
        return wait, "Retry-After"
    wait = reset_seconds(headers, now=now)
    if wait is not None:
        return wait, "X-RateLimit-Reset"
    interval = _number(headers, "X-RateLimit-Interval-Milliseconds")
    if interval:
        return interval / 1000, "X-RateLimit-Interval-Milliseconds"
    return shortest_window, "the budget's shortest window"


def daily_limit_used_up(headers: httpx.Headers) -> bool:
    """Whether the answer says the day's requests are all spent (HighLevel's `X-RateLimit-Daily-Remaining: 0`)."""
    return _count(headers, "X-RateLimit-Daily-Remaining") == 0


def _tries(attempts: int) -> str:
    """How many tries an error message mentions: none for the usual one."""
    return f" ({attempts} tries)" if attempts > 1 else ""


def quoted(text: str) -> str:
    """An upstream's text as a JSON string of at most `QUOTED_CHARS` characters.

    The vendor's words are data: quoted and cut, they cannot read as an instruction to the model.
    `text` must already be redacted (`Upstream` redacts all it reads): a cut would leave a key in part.
    """
    if len(text) > QUOTED_CHARS:
        text = text[: QUOTED_CHARS - 1] + "\u2026"
    return jsonlib.dumps(text, ensure_ascii=False)


def public_url(url: httpx.URL) -> str:
    """A URL fit for an error message: no user, password, query or fragment, which may hold secrets."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def _size(limit: int) -> str:
    return f"{limit / 2**20:.3g} MB" if limit >= 2**20 else f"{limit / 2**10:.3g} KB"


def _try_again(headers: httpx.Headers) -> str:
    """When to call again: what the upstream's `Retry-After` says, else in a moment."""
    wait = retry_after_seconds(headers.get("Retry-After"))
    return "Try again in a moment." if wait is None else f"Try again in {max(1, math.ceil(wait))} s."


def _after_unreadable(unsure: str | None) -> str:
    """What to do after a success whose body cannot be read: check a create, try a read again."""
    if unsure is not None:
        return f"The request probably took effect: {unsure}."
    return "Try again in a moment; if it persists, the server's base URL setting may be wrong."


@dataclass(frozen=True)
class Answer:
    """An upstream response, its body read within the size limit."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: The body is not JSON (or is empty).
        """
        return jsonlib.loads(self.body)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context (httpx's defaults: certifi's CA bundle) for every provider's client."""
    return httpx.create_ssl_context()


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
        max_response_bytes: int,
        redactor: Redactor,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Callable[[int], float] = backoff_seconds,
    ) -> None:
        self.label = label
        self._redactor = redactor
        self._backoff = backoff
        self._budgets = budgets
        self._max_wait = max_wait_seconds
        self._timeout = timeout_seconds
        self._max_bytes = max_response_bytes
        self._read_error = read_error
        self._base_url = httpx.URL(base_url)
        self._headers = {"Accept": "application/json", "User-Agent": "contacts-mcp", **headers}
        self._transport = transport
        self._opened: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        """The provider's one client, made at its first request and kept (keep-alive) for the server's life.

        Made late on purpose: a client over the network loads the CA bundle into an SSL context
        (about 30 ms each), which a desktop client's start of every configured server would pay for
        providers it may never call. The context itself is shared by every provider.
        """
        if self._opened is None:
            self._opened = httpx.AsyncClient(
                base_url=self._base_url,
                headers=self._headers,
                timeout=httpx.Timeout(self._timeout),
                transport=self._transport,
                verify=shared_ssl_context() if self._transport is None else True,
                follow_redirects=False,
            )
        return self._opened

    async def aclose(self) -> None:
        if self._opened is not None:
            await self._opened.aclose()

    async def request(
        self,
        budget: str,
        method: str,
        url: str,
        *,
        params: QueryParams | None = None,
        json: Any = None,
        not_found: str = "Not found.",
        unsure: str = "check whether it took effect before sending it again",
        priority: Priority | None = None,
    ) -> Any:
        """Send one request within `budget` and return its parsed JSON body.

        Every try draws on the budget, and the budget follows the response's rate-limit headers. A
        429 blocks the budget for as long as the upstream says (`wait_after_429`) and is retried while
        that fits in the caller's allowed wait (the upstream did not process it); a 429 saying the
        day's requests are used up fails at once, as no wait within a call can help. A GET is also
        retried on connection errors, timeouts and 5xx: after the 5xx's `Retry-After` when it fits in
        the allowed wait (when it does not, the call fails at once), else with backoff. Anything
        else is sent once: a create that may have reached the upstream is never sent twice; its
        error says so, and `unsure` says how to check. Each try ends within the timeout, body
        included, and a body larger than the size limit is refused, not read.

        With `priority` (the index's sync), every try takes its slot through `priority.slot` instead,
        below the tool calls, and may wait as long as that takes: no caller waits on it, so a 429
        blocks the budget for everyone as usual and the request waits it out, up to
        `BACKGROUND_429_RETRIES` times, rather than failing the sync.

        Raises:
            ContactsError: The classified failure, with a message for the model.
        """
        safe = method == "GET"
        unsure_if_sent = None if safe else unsure  # a GET changes nothing, so it is never in doubt
        deadline = math.inf if priority is not None else anyio.current_time() + self._max_wait
        described = f"{method} {url}"  # for errors and logs: never the query or headers, so never a key
        limiter = self._budgets[budget]
        failed = limited = 0
        most_429s = MAX_429_RETRIES if priority is None else BACKGROUND_429_RETRIES
        while True:
            slot = (
                limiter.slot(max_wait=max(0.0, deadline - anyio.current_time()))
                if priority is None
                else priority.slot(limiter)
            )
            async with slot:
                response = await self._send(
                    method, url, params=params, json=json, described=described, unsure=unsure_if_sent
                )
            if isinstance(response, httpx.TransportError):
                failure = response
                sent = not isinstance(failure, NOT_SENT)
                if (safe or not sent) and failed + 1 < MAX_ATTEMPTS:
                    failed += 1
                    await self._back_off(described, type(failure).__name__, failed)
                    continue
                raise self._transport_error(failure, described, attempts=failed + 1, unsure=unsure_if_sent)
            await self._observe(limiter, response, described)
            status = response.status
            if status == 429:
                if daily_limit_used_up(response.headers):
                    raise self._day_used_up(response, budget=budget, described=described)
                wait, source = wait_after_429(response.headers, shortest_window=limiter.shortest_window)
                await limiter.block_for(wait)
                logger.warning(
                    "%s: 429 from %s, budget %s blocked for %.1f s (%s)", described, self.label, budget, wait, source
                )
                if limited < most_429s and anyio.current_time() + wait <= deadline:
                    limited += 1
                    continue
                message = self._message(response)
                said = f" ({self.label} said: {quoted(message)})" if message else ""
                raise RateLimited(
                    f"{self.label}'s rate limit was hit{said}.",
                    retry_after=wait,
                    status=429,
                    request=described,
                )
            if status >= 500 and safe:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None and anyio.current_time() + wait > deadline:
                    raise self._unavailable_for(response, wait, described=described, attempts=failed + 1)
                if failed + 1 < MAX_ATTEMPTS:
                    failed += 1
                    await self._back_off(described, f"HTTP {status}", failed, delay=wait)
                    continue
            return self._parse(
                response, described=described, not_found=not_found, attempts=failed + 1, unsure=unsure_if_sent
            )

    async def _send(
        self, method: str, url: str, *, params: QueryParams | None, json: Any, described: str, unsure: str | None
    ) -> Answer | httpx.TransportError:
        """One try: the answer read whole within the timeout, or how it failed in transit.

        Raises:
            UpstreamUnavailable: The answer is larger than the size limit (it is not read).
        """
        request = self._client.build_request(method, url, params=list(params or ()), json=json)
        try:
            # httpx's timeouts bound each connect, write and read; this bounds the whole try, so a
            # body that trickles in cannot hold the call past its timeout.
            with anyio.fail_after(self._timeout):
                response = await self._client.send(request, stream=True)
                try:
                    return await self._read(response, described=described, unsure=unsure)
                finally:
                    await response.aclose()
        except httpx.TransportError as exc:
            return exc
        except TimeoutError:
            return httpx.ReadTimeout(f"no whole answer within {self._timeout:g} s", request=request)

    async def _read(self, response: httpx.Response, *, described: str, unsure: str | None) -> Answer:
        """The body, up to the size limit for a success and `MAX_ERROR_BODY_BYTES` (then cut) otherwise."""
        success = response.is_success
        limit = self._max_bytes if success else MAX_ERROR_BODY_BYTES
        declared = response.headers.get("Content-Length", "")
        if success and declared.isdigit() and int(declared) > limit:
            raise self._too_large(response.status_code, described=described, unsure=unsure)
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():  # decoded: a small compressed body cannot grow past the limit
                body += chunk
                if len(body) > limit:
                    if success:
                        raise self._too_large(response.status_code, described=described, unsure=unsure)
                    del body[limit:]
                    break
        except httpx.DecodingError:
            if not success:  # the status says enough without the message
                return Answer(status=response.status_code, headers=response.headers, body=b"")
            encoding = quoted(self._redactor.text(response.headers.get("Content-Encoding", ""))[:40])
            logger.warning("%s: %s sent a body that could not be decoded (%s)", described, self.label, encoding)
            raise UpstreamUnavailable(
                f"{self.label} answered HTTP {response.status_code} with a body that could not be decoded "
                f"(Content-Encoding {encoding}). {_after_unreadable(unsure)}",
                status=response.status_code,
                request=described,
            ) from None
        return Answer(status=response.status_code, headers=response.headers, body=bytes(body))

    def _too_large(self, status: int, *, described: str, unsure: str | None) -> UpstreamUnavailable:
        size = _size(self._max_bytes)
        logger.warning("%s: %s answered with more than %s; not read", described, self.label, size)
        if unsure is not None:
            message = (
                f"{self.label} answered HTTP {status}, so the request probably took effect, but with more than "
                f"{size}, which was not read: {unsure}."
            )
        else:
            message = (
                f"{self.label} answered with more than {size}, more than this server reads; ask for less, "
                "e.g. a smaller per_page or fewer include_ options."
            )
        return UpstreamUnavailable(message, status=status, request=described)

    def _day_used_up(self, answer: Answer, *, budget: str, described: str) -> RateLimited:
        """A 429 after the day's last request: no wait within a call helps, so it is neither waited out nor retried.

        A budget with a day rule (HighLevel's default) has already followed the same headers'
        `Daily-Remaining: 0`, so the next calls are refused without sending for a day (no reset is sent).
        """
        logger.warning("%s: 429 from %s, daily limit used up (budget %s); not retried", described, self.label, budget)
        message = self._message(answer)
        said = f" ({self.label} said: {quoted(message)})" if message else ""
        return RateLimited(
            f"{self.label}'s daily rate limit is used up{said}: it accepts no more requests until its day resets, "
            "so retrying sooner will not help.",
            retry_after=DAY_SECONDS,
            status=429,
            request=described,
        )

    def _unavailable_for(self, answer: Answer, wait: float, *, described: str, attempts: int) -> UpstreamUnavailable:
        seconds = max(1, math.ceil(wait))
        logger.warning(
            "%s: HTTP %d from %s asks for %d s; more than the call may wait",
            described,
            answer.status,
            self.label,
            seconds,
        )
        message = self._message(answer)
        said = f" {self.label} said: {quoted(message)}." if message else ""
        return UpstreamUnavailable(
            f"{self.label} is unavailable (HTTP {answer.status}){_tries(attempts)} and asks callers to wait "
            f"{seconds} s, longer than this call may wait.{said} Try again in {seconds} s.",
            status=answer.status,
            request=described,
        )

    async def _back_off(self, described: str, what: str, retry: int, *, delay: float | None = None) -> None:
        """Wait before retry `retry`: `delay` (the upstream's `Retry-After`) when given, else the backoff."""
        delay = self._backoff(retry) if delay is None else delay
        logger.warning("%s: %s from %s; retry %d in %.2f s", described, what, self.label, retry, delay)
        await anyio.sleep(delay)

    async def _observe(self, limiter: Budget, response: Answer, described: str) -> None:
        try:
            for observation in rate_limit_observations(response.headers):
                await limiter.observe(observation)
        except ContactsError:  # the answer arrived; losing one hint about the limit must not lose it
            logger.warning("%s: could not record %s's rate-limit headers", described, self.label)

    def _transport_error(
        self, exc: httpx.TransportError, described: str, *, attempts: int, unsure: str | None
    ) -> UpstreamUnavailable:
        kind = type(exc).__name__
        logger.warning("%s: %s failed in transit (%s) after %d tries", described, self.label, kind, attempts)
        sent = not isinstance(exc, NOT_SENT)
        timed_out = f"did not answer within {self._timeout:g} s"
        if sent and unsure is not None:
            what = timed_out if isinstance(exc, httpx.TimeoutException) else f"dropped the connection ({kind})"
            return UpstreamUnavailable(
                f"{self.label} {what} after the request was sent, so it may have taken effect: {unsure}.",
                request=described,
            )
        if sent and isinstance(exc, httpx.TimeoutException):
            return UpstreamUnavailable(
                f"{self.label} {timed_out}{_tries(attempts)}. Try again in a moment.", request=described
            )
        return UpstreamUnavailable(
            f"Could not reach {self.label} at {public_url(self._base_url)} ({kind}){_tries(attempts)}. "
            "Try again in a moment; if it persists, the server's base URL setting may be wrong.",
            request=described,
        )

    def _json(self, response: Answer) -> Any:
        """The body parsed as JSON with every secret taken out, before anything reads or cuts it.

        Raises:
            ValueError: The body is not JSON (or is empty).
        """
        return self._redactor.value(response.json())

    def _message(self, response: Answer) -> str | None:
        try:
            body = self._json(response)
        except ValueError:
            return None
        try:
            message = self._read_error(body)
        except Exception:  # an error body of an unexpected shape must not hide the status
            return None
        return message.strip() or None if isinstance(message, str) else None

    def _parse(self, response: Answer, *, described: str, not_found: str, attempts: int, unsure: str | None) -> Any:
        status = response.status
        if 200 <= status < 300:
            try:
                return self._json(response)
            except ValueError:
                media = self._redactor.text(response.headers.get("Content-Type", "")).partition(";")[0].strip()[:60]
                kind = quoted(media) if media else "no content type"
                what = "an empty body" if not response.body.strip() else f"a body that is not JSON ({kind})"
                logger.warning("%s: %s sent HTTP %d with %s", described, self.label, status, what)
                raise UpstreamUnavailable(
                    f"{self.label} answered HTTP {status} with {what}. {_after_unreadable(unsure)}",
                    status=status,
                    request=described,
                ) from None
        logger.info("%s: %s answered HTTP %d", described, self.label, status)
        message = self._message(response)
        said = f" {self.label} said: {quoted(message)}." if message else ""
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
        elif status >= 500 and unsure is not None:
            error = UpstreamUnavailable(
                f"{self.label} failed with HTTP {status} after the request was sent, so it may have taken effect: "
                f"{unsure}.{said}"
            )
        elif status >= 500:
            error = UpstreamUnavailable(
                f"{self.label} failed with HTTP {status}{_tries(attempts)}.{said} {_try_again(response.headers)}"
            )
        else:
            error = UpstreamUnavailable(f"{self.label} answered with unexpected HTTP {status}.{said}")
        error.status = status
        error.request = described
        raise error
