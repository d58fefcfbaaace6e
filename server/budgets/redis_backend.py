"""The Redis backend: every server process on one Redis shares each budget, atomically.

Several agents (Claude Desktop, an IDE, an HTTP deployment) each run a server process on the same
key; a budget kept in one process would let them send several times the upstream's limit. Here a
budget's whole state lives in Redis and every decision is one Lua script, run on the Redis server's
clock (`TIME`), so the hosts' clocks never matter. Keys of one budget share a hash tag, so they live
on one cluster slot:

    contacts-mcp:{<name>:<account fingerprint>}:queue    waiting callers, by arrival number
    ...:alive       heartbeat deadline of each waiter; a waiter that stops polling loses its place
    ...:live        requests in flight, each with a lease its process renews while the request runs
    ...:gone        callers that left, for a while: a command of theirs that Redis runs late is ignored
    ...:done:<i>    completed requests, each counting until completion + T of rule i
    ...:foreign:<i> requests someone else sent (the upstream's Remaining said so), and until when
    ...:limits      what the upstream advertised, by rule i: its own limit (field i) and a cap from
                    another scope (field cap:i); each process reads them through its own ceiling
    ...:blocked     until when a 429 blocks the budget (see `server.http.wait_after_429`)

Times are integer microseconds of the Redis clock. Every key expires once the budget is idle.

When Redis stalls (a pause, a failover, a network blip), what a process could not tell it is not
lost. A release or a leave that fails is kept and sent again in the background until Redis takes
it: a release carries how long ago its response arrived, so the slot still counts until that
completion + T and no longer. A command that timed out may still run when Redis wakes: a late
acquire of a caller that has left is undone by its leave (or refused, if the leave came first), a
late lease renewal never revives a released slot. A process that dies stops renewing: its slots
count until their lease ends, plus T. A process cut off from Redis stops its own request before the
lease could end, so "the lease ended" always means "the request was over by then".
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ..errors import ConfigurationError, UpstreamUnavailable
from ..settings import Rate
from .base import Budget, Observation, WaitProgress

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""The longest a waiter sleeps between looks at the queue; it also proves the waiter is alive.

A waiter sleeps until its estimated turn. A cancelled waiter in this process wakes the others at
once; one in another process is noticed at the next look, so this also bounds how late that is.
"""
HEARTBEAT_SECONDS = 10.0
"""A waiter not heard from for this long is dropped from the queue (its process died)."""
SILENT_SECONDS = 2 * POLL_SECONDS + 2.0
"""A waiter not heard from for this long (two polls and a command's timeout) is not counted ahead of
others in wait estimates, nor in `remaining`: it has most likely left, and Redis has not heard yet."""
LEASE_SECONDS = 15.0
"""A request in flight holds its slot on a lease this long, renewed every fifth of it while the request
runs. A lease that ends unreleased (the process died, or was cut off from Redis and stopped the request
a tenth of the lease before) counts as a request completed when the lease ended, for each window."""
RETRY_SECONDS = 0.5
"""How soon a release or leave that Redis did not take is sent again, and a failed renewal retried."""
UNSENT_SECONDS = 120.0
"""How long such a release or leave is retried; past that the slot's lease has long ended without it."""
MAX_UNSENT = 10_000
"""The most releases and leaves kept for Redis at once; past that the oldest are dropped (their leases end them)."""
GONE_SECONDS = 60.0
"""How long a caller that left is remembered, so a command of its that Redis runs late is ignored."""
CONNECT_TIMEOUT_SECONDS = 2.0
COMMAND_TIMEOUT_SECONDS = 2.0
PROMPT_SECONDS = 0.1
"""A round trip shorter than this ran promptly: a release it carried placed its completion that exactly."""
LATE_AFTER_SECONDS = COMMAND_TIMEOUT_SECONDS - 0.5
"""An acquire Redis runs this long after it was sent is ignored: its caller has likely timed out, and
a slot or place taken for it would be held for nobody."""

_NOW = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""

_RULE_COUNT = """
-- The count rule i enforces, as base.effective_count: the upstream's own advertised limit (above the
-- configured count only for a vendor default, may_rise 1), under the cap another scope advertised.
local function rule_count(limits, i, configured, may_rise)
  local count = configured
  local own = tonumber(redis.call('HGET', limits, tostring(i)) or '')
  if own and (may_rise == 1 or own < count) then count = own end
  local cap = tonumber(redis.call('HGET', limits, 'cap:' .. i) or '')
  if cap and cap < count then count = cap end
  return math.max(1, count)
end
"""

_RULE_STATE = (
    _RULE_COUNT
    + """
-- The count a rule allows now and what it counts.
local function rule_state(limits, i, configured, may_rise, done_key, foreign_key, now)
  local count = rule_count(limits, i, configured, may_rise)
  redis.call('ZREMRANGEBYSCORE', done_key, '-inf', now)
  local foreign, foreign_until = 0, 0
  local f = redis.call('HMGET', foreign_key, 'n', 'until')
  if f[1] and f[2] and tonumber(f[2]) > now then foreign, foreign_until = tonumber(f[1]), tonumber(f[2]) end
  return count, redis.call('ZCARD', done_key), foreign, foreign_until
end
"""
)

_END_LEASES = """
-- Requests whose lease ended unreleased: their process died, or was cut off and stopped the request
-- before the lease could end. Each now counts as completed when its lease ended, for each rule's
-- window. rules: {done key, window in us} per rule.
local function end_leases(live, now, rules, ttl_ms)
  local ended = redis.call('ZRANGEBYSCORE', live, '-inf', now, 'WITHSCORES')
  if #ended == 0 then return end
  for n = 1, #ended, 2 do
    for _, rule in ipairs(rules) do redis.call('ZADD', rule[1], tonumber(ended[n + 1]) + rule[2], ended[n]) end
  end
  for _, rule in ipairs(rules) do redis.call('PEXPIRE', rule[1], ttl_ms) end
  redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
end

-- Waiters whose process stopped polling lose their place.
local function drop_dead_waiters(queue, alive, now)
  for _, left in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', now)) do redis.call('ZREM', queue, left) end
  redis.call('ZREMRANGEBYSCORE', alive, '-inf', now)
end
"""

# KEYS: queue, seq, alive, live, blocked, limits, gone, then done:<i>, foreign:<i> per rule.
# ARGV: ticket, slot, heartbeat_us, lease_us, ttl_ms, may_rise (1|0), expires (Redis time in us; 0: never),
# silent_us (see SILENT_SECONDS), then count, window_us per rule. Returns {taken, wait, now}: {1, 0, now}
# when the slot was taken, else {0, estimated wait in us, now}, or {0, -1, now} when Redis ran it after
# `expires`, too late for its caller.
_ACQUIRE = (
    _NOW
    + _RULE_STATE
    + _END_LEASES
    + """
local queue, seq, alive, live, blocked, limits, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ticket, slot = ARGV[1], ARGV[2]
local heartbeat, lease, may_rise = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local now = now_us()

redis.call('ZREMRANGEBYSCORE', gone, '-inf', now)
-- A command of a caller that has already left (it timed out, and Redis runs it late): nobody waits for it.
if redis.call('ZSCORE', gone, ticket) then return {0, heartbeat, now} end
-- Past `expires` the caller has stopped waiting for the answer (it timed out and Redis runs this
-- late, after a stall): taking a slot or a place now would hold it for nobody.
local expires = tonumber(ARGV[7])
if expires > 0 and now > expires then return {0, -1, now} end
local rules = {}
for i = 1, (#KEYS - 7) / 2 do rules[i] = {KEYS[6 + 2 * i], tonumber(ARGV[8 + 2 * i])} end
drop_dead_waiters(queue, alive, now)
end_leases(live, now, rules, ARGV[5])
if not redis.call('ZSCORE', queue, ticket) then redis.call('ZADD', queue, redis.call('INCR', seq), ticket) end
redis.call('ZADD', alive, now + heartbeat, ticket)
-- The callers ahead that count in the estimate: those heard from lately. One silent longer has most
-- likely gone (its leave has not reached Redis yet, after a stall); it keeps its place until it
-- lapses, but refusing a caller for its sake would be wrong far more often than right.
local position, rank = 0, redis.call('ZRANK', queue, ticket)
local heard = now + heartbeat - tonumber(ARGV[8])
if rank > 0 then
  for _, ahead in ipairs(redis.call('ZRANGE', queue, 0, rank - 1)) do
    if tonumber(redis.call('ZSCORE', alive, ahead) or '0') > heard then position = position + 1 end
  end
end

local send_at = now
local until_ = tonumber(redis.call('GET', blocked) or '0')
if until_ > send_at then send_at = until_ end
local in_flight = redis.call('ZCARD', live)
for i = 1, #rules do
  local done_key, foreign_key = KEYS[6 + 2 * i], KEYS[7 + 2 * i]
  local configured, window = tonumber(ARGV[7 + 2 * i]), tonumber(ARGV[8 + 2 * i])
  local count, done, foreign, foreign_until = rule_state(limits, i, configured, may_rise, done_key, foreign_key, now)
  local used = in_flight + done + foreign
  -- When this caller, `position` behind the head, may send: A[k] is when the k-th next send may go.
  local need, free_now = position + 1, count - used
  local A = {}
  for _ = 1, math.max(0, math.min(need, free_now)) do A[#A + 1] = now end
  if #A < need then
    local skip = math.max(0, -free_now)  -- counted beyond a lowered limit: their expiry frees nothing
    local want = skip + need - #A
    local E = {}
    for n, score in ipairs(redis.call('ZRANGE', done_key, 0, math.min(want, done) - 1, 'WITHSCORES')) do
      if n % 2 == 0 then E[#E + 1] = tonumber(score) end
    end
    for _ = 1, math.min(want, foreign) do E[#E + 1] = foreign_until end
    for _ = 1, math.min(want, in_flight) do E[#E + 1] = now + window end  -- at the earliest
    table.sort(E)
    for j = skip + 1, #E do
      if #A < need then A[#A + 1] = E[j] end
    end
    -- Past what counts now, each send frees its slot one window later (at the earliest).
    for k = #A + 1, need do A[k] = A[k - count] + window end
  end
  if A[need] > send_at then send_at = A[need] end
end

for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[5]) end
if send_at > now then return {0, send_at - now, now} end
redis.call('ZREM', queue, ticket)
redis.call('ZREM', alive, ticket)
redis.call('ZADD', live, now + lease, slot)
return {1, 0, now}
"""
)

# KEYS: live, then done:<i> per rule. ARGV: slot, ttl_ms, us since the response arrived, then window_us per rule.
# The holder measured that age on its own clock just before sending, so `completed` is never earlier
# on Redis's clock than the response's arrival, however late Redis runs this. Every time already
# kept for the slot is no earlier either (an earlier send of this release, run late; the end of a
# lease, which came after the request was stopped), so the earliest of them is kept.
_RELEASE = (
    _NOW
    + """
local completed = now_us() - tonumber(ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, #KEYS do
  local until_ = completed + tonumber(ARGV[i + 2])
  local kept = tonumber(redis.call('ZSCORE', KEYS[i], ARGV[1]) or '')
  if not kept or until_ < kept then redis.call('ZADD', KEYS[i], until_, ARGV[1]) end
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
"""
)

# KEYS: live. ARGV: lease_us, ttl_ms, then the slots of this process's requests still in flight.
# XX: a renewal Redis runs late never brings back a slot already released.
_RENEW = (
    _NOW
    + """
local until_ = now_us() + tonumber(ARGV[1])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: blocked. ARGV: seconds in us.
_BLOCK = (
    _NOW
    + """
local now = now_us()
local until_ = now + tonumber(ARGV[1])
if until_ > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%d', until_), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
"""
)

# KEYS: live, limits, done:<i>, foreign:<i>. ARGV: i, configured count, window_us, limit (-1 when not
# said), remaining (-1), reset_us (-1), ttl_ms, may_rise (1|0), may_raise (1: the rule's own limit; 0: a cap).
_OBSERVE = (
    _NOW
    + _RULE_STATE
    + """
local now = now_us()
local limit, remaining, reset = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local may_rise = tonumber(ARGV[8])
if limit >= 0 then
  -- Stored as said, not clamped: each process applies its own ceiling when it reads (rule_count).
  local field = ARGV[1]
  if ARGV[9] ~= '1' then field = 'cap:' .. ARGV[1] end
  redis.call('HSET', KEYS[2], field, math.max(1, limit))
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
if remaining >= 0 then
  local count, done, foreign, foreign_until = rule_state(
    KEYS[2], ARGV[1], tonumber(ARGV[2]), may_rise, KEYS[3], KEYS[4], now)
  -- Leases that ended are not counted here (the next acquire turns them into completed requests):
  -- counting fewer of ours only makes more of the upstream's count someone else's, the safe side.
  local ours = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now), '+inf') + done + foreign
  local missing = count - remaining - ours
  if missing > 0 then
    if reset < 0 then reset = tonumber(ARGV[3]) end
    local until_ = math.max(foreign_until, now + reset)
    redis.call('HSET', KEYS[4], 'n', foreign + missing, 'until', string.format('%d', until_))
    redis.call('PEXPIRE', KEYS[4], math.ceil((until_ - now) / 1000) + 1000)
  end
end
return 1
"""
)

# KEYS: queue, alive, live, gone. ARGV: ticket, slot, gone_us.
# The slot goes too: a caller leaves only without it, so a late acquire that took it sent nothing.
_LEAVE = (
    _NOW
    + """
local now = now_us()
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[4], math.ceil(tonumber(ARGV[3]) / 1000))
return 1
"""
)

# KEYS as _ACQUIRE's; ARGV: ttl_ms, may_rise (1|0), heartbeat_us, silent_us, then count, window_us per rule.
_REMAINING = (
    _NOW
    + _RULE_STATE
    + _END_LEASES
    + """
local now = now_us()
local rules = {}
for i = 1, (#KEYS - 7) / 2 do rules[i] = {KEYS[6 + 2 * i], tonumber(ARGV[4 + 2 * i])} end
drop_dead_waiters(KEYS[1], KEYS[3], now)
end_leases(KEYS[4], now, rules, ARGV[1])
if tonumber(redis.call('GET', KEYS[5]) or '0') > now then return 0 end
local in_flight = redis.call('ZCARD', KEYS[4])
local heard = now + tonumber(ARGV[3]) - tonumber(ARGV[4])
local waiting = redis.call('ZCOUNT', KEYS[3], '(' .. string.format('%d', heard), '+inf')  -- those heard from lately
local least = nil
local may_rise = tonumber(ARGV[2])
for i = 1, #rules do
  local count, done, foreign = rule_state(
    KEYS[6], i, tonumber(ARGV[3 + 2 * i]), may_rise, KEYS[6 + 2 * i], KEYS[7 + 2 * i], now)
  local free = count - in_flight - done - foreign - waiting
  if least == nil or free < least then least = free end
end
return math.max(0, least)
"""
)

# KEYS: limits. ARGV: may_rise (1|0), then the configured count per rule. Returns the count each enforces.
_CURRENT = (
    _RULE_COUNT
    + """
local counts = {}
for i = 1, #ARGV - 1 do counts[i] = rule_count(KEYS[1], i, tonumber(ARGV[i + 1]), tonumber(ARGV[1])) end
return counts
"""
)


def shown_url(url: str) -> str:
    """The Redis URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit(parts._replace(netloc=netloc))


def _us(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000)


@dataclass(frozen=True)
class _Slot:
    """A slot this process holds."""

    id: str
    leased_at: float
    """When the command that took it was sent, on this process's clock: its lease began no earlier."""


@dataclass
class _Unsent:
    """A release or leave Redis has not taken yet."""

    what: str
    send: Callable[[bool], Awaitable[None]]
    """Tries once (quietly when True); raises `UpstreamUnavailable` if Redis does not take it."""
    since: float


class RedisStore:
    """One connection pool to Redis, the scripts every budget runs on it, and what Redis has yet to hear.

    A keeper task renews the leases of this process's requests in flight and, once Redis answers,
    sends every release and leave it missed.
    """

    def __init__(self, client: aioredis.Redis, url: str, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._client = client
        self.shown_url = shown_url(url)
        self.lease_seconds = lease_seconds
        self.acquire = client.register_script(_ACQUIRE)
        self.release = client.register_script(_RELEASE)
        self.renew = client.register_script(_RENEW)
        self.block = client.register_script(_BLOCK)
        self.observe = client.register_script(_OBSERVE)
        self.remaining = client.register_script(_REMAINING)
        self.current = client.register_script(_CURRENT)
        self.leave = client.register_script(_LEAVE)
        self._budgets: list[RedisBudget] = []
        self._unsent: dict[str, _Unsent] = {}
        self._wake = anyio.Event()
        self._failing = False
        self._redis_ahead: float | None = None  # Redis's clock minus ours, never more than it is (learn_clock)
        self._keeping = anyio.CancelScope()  # cancelled by the closing task to stop the keeper

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, *, lease_seconds: float = LEASE_SECONDS) -> AsyncGenerator[RedisStore]:
        """Connect, and prove Redis answers, before the server takes its first call.

        Raises:
            ConfigurationError: If Redis cannot be reached or refuses the credentials.
        """
        try:
            client = aioredis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=COMMAND_TIMEOUT_SECONDS,
                decode_responses=True,
            )
        except ValueError as exc:
            raise ConfigurationError(f"CONTACTS_MCP_REDIS_URL is not a Redis URL ({shown_url(url)}): {exc}") from None
        try:
            await client.ping()  # pyright: ignore[reportUnknownMemberType]
        except RedisError as exc:
            await client.aclose()
            raise ConfigurationError(
                f"CONTACTS_MCP_REDIS_URL: cannot reach Redis at {shown_url(url)} ({type(exc).__name__}: "
                f"{_scrubbed(str(exc), url)}). Start Redis, fix the URL, or unset it to keep budgets in this process."
            ) from None
        store = cls(client, url, lease_seconds=lease_seconds)
        logger.info("rate budgets shared through Redis at %s", store.shown_url)
        # A plain asyncio task, not a task group: the lifespan that opens the store may be closed by
        # another task (server.state.SharedState), which a task group forbids. redis.asyncio ties
        # this backend to asyncio anyway.
        keeper = asyncio.get_running_loop().create_task(store._keep(), name="contacts-mcp budget keeper")
        try:
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                store._keeping.cancel()
                await asyncio.wait([keeper])
                with anyio.move_on_after(COMMAND_TIMEOUT_SECONDS):
                    with suppress(UpstreamUnavailable):
                        await store._send_unsent()  # a last try; what stays unsent ends with its lease
                if store._unsent:
                    logger.warning("closing with %d releases and leaves Redis never took", len(store._unsent))
            await client.aclose()

    def budget(self, name: str, rates: Sequence[Rate], *, account: str, may_rise: bool = False) -> RedisBudget:
        budget = RedisBudget(name, rates, store=self, account=account, may_rise=may_rise)
        self._budgets.append(budget)
        return budget

    async def run(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | float], *, quiet: bool = False
    ) -> Any:
        """Run one budget script; `quiet` leaves the failure to the caller to log.

        Raises:
            UpstreamUnavailable: Naming Redis, if it cannot be reached; the server keeps running.
        """
        try:
            return await script(keys=list(keys), args=list(args))
        except RedisError as exc:
            if not quiet:
                logger.warning("Redis at %s failed: %s", self.shown_url, type(exc).__name__)
            raise UpstreamUnavailable(
                f"The shared rate-budget store (Redis at {self.shown_url}) is unreachable ({type(exc).__name__}), "
                "so no request was sent. Try again in a moment; if it persists, the person running this server "
                "must bring Redis back or unset CONTACTS_MCP_REDIS_URL."
            ) from None

    @property
    def holding(self) -> bool:
        """Whether a request of this process holds a slot of any budget now."""
        return any(budget.holds for budget in self._budgets)

    def learn_clock(self, redis_now_us: int, received: float) -> None:
        """Redis said its time, and the answer came at `received` on our clock (no earlier than Redis read it)."""
        self._redis_ahead = redis_now_us / 1_000_000 - received

    def redis_time_us(self, local: float) -> int:
        """The time on Redis's clock when ours reads `local`, never later than it is (0: not learned yet)."""
        return 0 if self._redis_ahead is None else math.floor((local + self._redis_ahead) * 1_000_000)

    def wake(self) -> None:
        """Have the keeper look now: a request began to hold a slot, or Redis missed something."""
        self._wake.set()

    async def deliver(self, key: str, what: str, send: Callable[[bool], Awaitable[None]]) -> None:
        """Tell Redis one release or leave now, or keep it and send it again until Redis takes it.

        Kept first, so a call whose bounded release is cut short by its deadline still leaves it here.
        """
        self._unsent[key] = _Unsent(what, send, anyio.current_time())
        while len(self._unsent) > MAX_UNSENT:
            oldest = self._unsent.pop(next(iter(self._unsent)))
            logger.warning("dropped the %s: too many wait for Redis; its lease ends it", oldest.what)
        try:
            await send(False)
        except UpstreamUnavailable:
            logger.warning("the %s waits for Redis; sent again in the background as soon as it answers", what)
        else:
            self._unsent.pop(key, None)
        finally:
            if key in self._unsent:
                self.wake()

    async def _keep(self) -> None:
        """Until the store closes: renew the leases of the requests in flight, send what Redis missed."""
        with self._keeping:
            while True:
                await self._keep_once()

    async def _keep_once(self) -> None:
        """One look: renew the leases, send what Redis missed, then sleep until the next is due or someone wakes it."""
        self._wake = wake = anyio.Event()
        delay = RETRY_SECONDS
        try:
            for budget in self._budgets:
                await budget.renew_leases()
            await self._send_unsent()
        except UpstreamUnavailable:
            if not self._failing:
                self._failing = True
                logger.warning(
                    "Redis at %s does not answer; %d releases and leaves wait for it",
                    self.shown_url,
                    len(self._unsent),
                )
        except Exception:  # a bug here must not end the renewals, or every request in flight would be stopped
            logger.exception("the rate-budget keeper failed; trying again")
        else:
            if self._failing:
                self._failing = False
                logger.info("Redis at %s answers again; what it missed is sent", self.shown_url)
            if not self._unsent:
                delay = self.lease_seconds / 5 if self.holding else math.inf
        with anyio.move_on_after(delay):
            await wake.wait()

    async def _send_unsent(self) -> None:
        """Send each kept release and leave, oldest first; stop at the first Redis does not take.

        Raises:
            UpstreamUnavailable: Redis did not take one; the rest wait for the next try.
        """
        now = anyio.current_time()
        for key, unsent in list(self._unsent.items()):
            if now - unsent.since > UNSENT_SECONDS:
                del self._unsent[key]
                logger.warning("gave up the %s after %g s; its lease ends it", unsent.what, UNSENT_SECONDS)
                continue
            await unsent.send(True)
            if self._unsent.get(key) is unsent:
                del self._unsent[key]


def _scrubbed(text: str, url: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def _held(token: object) -> _Slot:
    if not isinstance(token, _Slot):
        raise TypeError(f"not a slot of this backend: {token!r}")
    return token


class RedisBudget(Budget):
    """A budget whose state lives in Redis, shared by every process that uses the same key."""

    def __init__(
        self, name: str, rates: Sequence[Rate], *, store: RedisStore, account: str, may_rise: bool = False
    ) -> None:
        super().__init__(name, rates, may_rise=may_rise)
        self._store = store
        prefix = f"contacts-mcp:{{{name}:{account}}}"
        parts = ("queue", "seq", "alive", "live", "blocked", "limits", "gone")
        self._keys = [f"{prefix}:{part}" for part in parts]
        self._done = [f"{prefix}:done:{i}" for i in range(1, len(self.rates) + 1)]
        self._foreign = [f"{prefix}:foreign:{i}" for i in range(1, len(self.rates) + 1)]
        self._rule_keys = [key for pair in zip(self._done, self._foreign, strict=True) for key in pair]
        self._windows = [_us(rate.seconds) for rate in self.rates]
        self._rise = int(may_rise)
        self._rule_args = [
            value for rate, window in zip(self.rates, self._windows, strict=True) for value in (rate.count, window)
        ]
        longest = max(rate.seconds for rate in self.rates)
        self._ttl_ms = math.ceil((longest + store.lease_seconds + max(HEARTBEAT_SECONDS, GONE_SECONDS)) * 1000)
        self._left = anyio.Event()  # set when a waiter of this process leaves the queue
        self._arrivals = anyio.Lock()  # fair: first come, first into the queue
        self._held: dict[str, anyio.CancelScope] = {}  # this process's requests in flight, by slot

    @property
    def holds(self) -> bool:
        """Whether a request of this process holds a slot of the budget now."""
        return bool(self._held)

    async def _acquire(self, max_wait: float, progress: WaitProgress) -> object:
        ticket, slot = uuid.uuid4().hex, uuid.uuid4().hex
        deadline = anyio.current_time() + max_wait
        try:
            async with self._arrivals:  # this process's callers join the shared queue in the order they came
                sent, taken, wait_us = await self._poll(ticket, slot)
            while not taken:
                wait = max(0, wait_us) / 1_000_000
                left = deadline - anyio.current_time()
                if wait > left or left <= 0:  # at the first look, or later: a 429 came, a limit fell, a lease ended
                    raise self._too_long(wait)
                if wait_us > 0:  # else Redis ran the look too late to trust (a stall): look again at once
                    await progress.tick(wait)
                    left_queue = self._left
                    with anyio.move_on_after(min(wait, POLL_SECONDS, left, progress.due_in())):
                        await left_queue.wait()
                sent, taken, wait_us = await self._poll(ticket, slot)
            return _Slot(slot, leased_at=sent)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(COMMAND_TIMEOUT_SECONDS):
                await self._leave(ticket, slot)
            raise

    async def _poll(self, ticket: str, slot: str) -> tuple[float, bool, int]:
        """One look at the queue: (when it was sent, whether the slot was taken, the wait in us or -1)."""
        sent = anyio.current_time()
        args = [
            ticket,
            slot,
            _us(HEARTBEAT_SECONDS),
            _us(self._store.lease_seconds),
            self._ttl_ms,
            self._rise,
            self._store.redis_time_us(sent + LATE_AFTER_SECONDS),
            _us(SILENT_SECONDS),
            *self._rule_args,
        ]
        taken, wait_us, now_us = await self._store.run(self._store.acquire, self._keys + self._rule_keys, args)
        self._store.learn_clock(int(now_us), anyio.current_time())
        return sent, bool(int(taken)), int(wait_us)

    async def _leave(self, ticket: str, slot: str) -> None:
        """Give up a place in the queue at once, so the callers behind move up (and any slot a late acquire took)."""
        try:
            await self._store.deliver(
                ticket, f"leave of the {self.name} queue", partial(self._send_leave, ticket, slot)
            )
        finally:
            self._left.set()
            self._left = anyio.Event()

    async def _send_leave(self, ticket: str, slot: str, quiet: bool) -> None:
        keys = [self._keys[0], self._keys[2], self._keys[3], self._keys[6]]
        await self._store.run(self._store.leave, keys, [ticket, slot, _us(GONE_SECONDS)], quiet=quiet)

    @asynccontextmanager
    async def _holding(self, token: object) -> AsyncGenerator[None]:
        # The request runs only while its lease surely holds: stopped a tenth of the lease before it
        # could end, unless the keeper renews it first. So a lease that ended in Redis means the
        # request was over by then, and counting it from the lease's end is never too early.
        held = _held(token)
        lease = self._store.lease_seconds
        with anyio.CancelScope(deadline=held.leased_at + lease * 0.9) as scope:
            if not self._store.holding:
                self._store.wake()  # it sleeps until told while nothing is held
            self._held[held.id] = scope
            try:
                yield
            finally:
                del self._held[held.id]
        if scope.cancelled_caught:
            raise UpstreamUnavailable(
                f"The shared rate-budget store (Redis at {self._store.shown_url}) stopped answering while a "
                f"{self.name} request was in flight, so the request was stopped before its reservation could "
                "lapse; it may or may not have reached the upstream. Try again in a moment, and check that a "
                "create did not go through before sending it again."
            )

    async def renew_leases(self) -> None:
        """Renew the leases of this process's requests in flight on this budget (the keeper calls it).

        Raises:
            UpstreamUnavailable: Redis did not answer; the requests' deadlines stay where they were.
        """
        held = dict(self._held)
        if not held:
            return
        sent = anyio.current_time()
        lease = self._store.lease_seconds
        await self._store.run(self._store.renew, [self._keys[3]], [_us(lease), self._ttl_ms, *held], quiet=True)
        for slot, scope in held.items():
            if self._held.get(slot) is scope:
                scope.deadline = max(scope.deadline, sent + lease * 0.9)

    async def _release(self, token: object) -> None:
        held = _held(token)
        completed = anyio.current_time()  # the response has arrived: the request counts until this + T
        send = partial(self._send_release, held.id, completed)
        await self._store.deliver(held.id, f"release of a {self.name} slot", send)

    async def _send_release(self, slot: str, completed: float, quiet: bool) -> None:
        # The age is measured on this clock just before sending, a little short (NTP may slew the clocks
        # apart by up to 500 ppm), so Redis never places the completion earlier than it was; it places it
        # later by as long as the script waited to run. After a slow round trip (Redis had stalled) it is
        # sent once more, so what Redis keeps (the earliest) is exact to within a prompt round trip.
        for _ in range(2):
            sent = anyio.current_time()
            age_us = math.floor(max(0.0, sent - completed) * 0.999 * 1_000_000)
            await self._store.run(
                self._store.release,
                [self._keys[3], *self._done],
                [slot, self._ttl_ms, age_us, *self._windows],
                quiet=quiet,
            )
            if anyio.current_time() - sent < PROMPT_SECONDS:
                return

    async def block_for(self, seconds: float) -> None:
        await self._store.run(self._store.block, [self._keys[4]], [_us(seconds)])

    async def observe(self, observation: Observation) -> None:
        index = self._rule_for(observation.window)
        if index is None:
            return
        rate = self.rates[index]
        reset = -1 if observation.reset_after is None else _us(max(0.0, observation.reset_after))
        await self._store.run(
            self._store.observe,
            [self._keys[3], self._keys[5], self._done[index], self._foreign[index]],
            [
                index + 1,
                rate.count,
                _us(rate.seconds),
                -1 if observation.limit is None else observation.limit,
                -1 if observation.remaining is None else observation.remaining,
                reset,
                self._ttl_ms,
                self._rise,
                int(observation.may_raise),
            ],
        )

    async def remaining(self) -> int:
        keys = self._keys + self._rule_keys
        args = [self._ttl_ms, self._rise, _us(HEARTBEAT_SECONDS), _us(SILENT_SECONDS), *self._rule_args]
        return int(await self._store.run(self._store.remaining, keys, args))

    async def current_rates(self) -> tuple[Rate, ...]:
        counts = await self._store.run(
            self._store.current, [self._keys[5]], [self._rise, *(rate.count for rate in self.rates)]
        )
        return tuple(Rate(int(count), rate.seconds) for count, rate in zip(counts, self.rates, strict=True))
