"""The Redis backend: every server process on one Redis shares each budget, atomically.

Several agents (Claude Desktop, an IDE, an HTTP deployment) each run a server process on the same
key; a budget kept in one process would let them send several times the upstream's limit. Here a
budget's whole state lives in Redis and every decision is one Lua script, run on the Redis server's
clock (`TIME`), so the hosts' clocks never matter. Keys of one budget share a hash tag, so they live
on one cluster slot:

    contacts-mcp:{<name>:<account fingerprint>}:queue    waiting callers, by arrival number
    ...:alive       heartbeat deadline of each waiter; a waiter that stops polling loses its place
    ...:live        requests in flight, each with a lease in case its process dies
    ...:done:<i>    completed requests, each counting until completion + T of rule i
    ...:foreign:<i> requests someone else sent (the upstream's Remaining said so), and until when
    ...:limits      what the upstream advertised, by rule i: its own limit (field i) and a cap from
                    another scope (field cap:i); each process reads them through its own ceiling
    ...:blocked     until when a 429 blocks the budget (see `server.http.wait_after_429`)

Times are integer microseconds of the Redis clock. Every key expires once the budget is idle.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from server.budgets.base import Budget, Observation, WaitProgress
from server.errors import ConfigurationError, UpstreamUnavailable
from server.settings import Rate

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""The longest a waiter sleeps between looks at the queue; it also proves the waiter is alive.

A waiter sleeps until its estimated turn. A cancelled waiter in this process wakes the others at
once; one in another process is noticed at the next look, so this also bounds how late that is.
"""
HEARTBEAT_SECONDS = 10.0
"""A waiter not heard from for this long is dropped from the queue (its process died)."""
LEASE_SECONDS = 120.0
"""A request in flight whose process died stops counting after this, plus the window."""
CONNECT_TIMEOUT_SECONDS = 2.0
COMMAND_TIMEOUT_SECONDS = 2.0

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

# KEYS: queue, seq, alive, live, blocked, limits, then done:<i>, foreign:<i> per rule.
# ARGV: ticket, slot, heartbeat_us, lease_us, ttl_ms, may_rise (1|0), then count, window_us per rule.
# Returns {1, 0} when the slot was taken, else {0, estimated wait in us}.
_ACQUIRE = (
    _NOW
    + _RULE_STATE
    + """
local queue, seq, alive, live, blocked, limits = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ticket, slot = ARGV[1], ARGV[2]
local heartbeat, lease, may_rise = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local now = now_us()

for _, gone in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', now)) do redis.call('ZREM', queue, gone) end
redis.call('ZREMRANGEBYSCORE', alive, '-inf', now)
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
if not redis.call('ZSCORE', queue, ticket) then redis.call('ZADD', queue, redis.call('INCR', seq), ticket) end
redis.call('ZADD', alive, now + heartbeat, ticket)
local position = redis.call('ZRANK', queue, ticket)

local send_at = now
local until_ = tonumber(redis.call('GET', blocked) or '0')
if until_ > send_at then send_at = until_ end
local in_flight = redis.call('ZCARD', live)
for i = 1, (#KEYS - 6) / 2 do
  local done_key, foreign_key = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local configured, window = tonumber(ARGV[5 + 2 * i]), tonumber(ARGV[6 + 2 * i])
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
if send_at > now then return {0, send_at - now} end
redis.call('ZREM', queue, ticket)
redis.call('ZREM', alive, ticket)
redis.call('ZADD', live, now + lease, slot)
return {1, 0}
"""
)

# KEYS: live, then done:<i> per rule. ARGV: slot, ttl_ms, then window_us per rule.
_RELEASE = (
    _NOW
    + """
local now = now_us()
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[i + 1]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
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
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local count, done, foreign, foreign_until = rule_state(
    KEYS[2], ARGV[1], tonumber(ARGV[2]), may_rise, KEYS[3], KEYS[4], now)
  local missing = count - remaining - (redis.call('ZCARD', KEYS[1]) + done + foreign)
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

# KEYS: queue, alive. ARGV: ticket.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS as _ACQUIRE's; ARGV: may_rise (1|0), then count, window_us per rule.
_REMAINING = (
    _NOW
    + _RULE_STATE
    + """
local now = now_us()
if tonumber(redis.call('GET', KEYS[5]) or '0') > now then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local in_flight = redis.call('ZCARD', KEYS[4])
local waiting = redis.call('ZCARD', KEYS[1])
local least = nil
local may_rise = tonumber(ARGV[1])
for i = 1, (#KEYS - 6) / 2 do
  local count, done, foreign = rule_state(
    KEYS[6], i, tonumber(ARGV[2 * i]), may_rise, KEYS[5 + 2 * i], KEYS[6 + 2 * i], now)
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


class RedisStore:
    """One connection pool to Redis and the scripts every budget runs on it."""

    def __init__(self, client: aioredis.Redis, url: str) -> None:
        self._client = client
        self.shown_url = shown_url(url)
        self.acquire = client.register_script(_ACQUIRE)
        self.release = client.register_script(_RELEASE)
        self.block = client.register_script(_BLOCK)
        self.observe = client.register_script(_OBSERVE)
        self.remaining = client.register_script(_REMAINING)
        self.current = client.register_script(_CURRENT)
        self.leave = client.register_script(_LEAVE)

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str) -> AsyncGenerator[RedisStore]:
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
        store = cls(client, url)
        logger.info("rate budgets shared through Redis at %s", store.shown_url)
        try:
            yield store
        finally:
            await client.aclose()

    def budget(self, name: str, rates: Sequence[Rate], *, account: str, may_rise: bool = False) -> RedisBudget:
        return RedisBudget(name, rates, store=self, account=account, may_rise=may_rise)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """Run one budget script.

        Raises:
            UpstreamUnavailable: Naming Redis, if it cannot be reached; the server keeps running.
        """
        try:
            return await script(keys=list(keys), args=list(args))
        except RedisError as exc:
            logger.warning("Redis at %s failed: %s", self.shown_url, type(exc).__name__)
            raise UpstreamUnavailable(
                f"The shared rate-budget store (Redis at {self.shown_url}) is unreachable ({type(exc).__name__}), "
                "so no request was sent. Try again in a moment; if it persists, the person running this server "
                "must bring Redis back or unset CONTACTS_MCP_REDIS_URL."
            ) from None


def _scrubbed(text: str, url: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


class RedisBudget(Budget):
    """A budget whose state lives in Redis, shared by every process that uses the same key."""

    def __init__(
        self, name: str, rates: Sequence[Rate], *, store: RedisStore, account: str, may_rise: bool = False
    ) -> None:
        super().__init__(name, rates, may_rise=may_rise)
        self._store = store
        prefix = f"contacts-mcp:{{{name}:{account}}}"
        self._keys = [f"{prefix}:{part}" for part in ("queue", "seq", "alive", "live", "blocked", "limits")]
        self._done = [f"{prefix}:done:{i}" for i in range(1, len(self.rates) + 1)]
        self._foreign = [f"{prefix}:foreign:{i}" for i in range(1, len(self.rates) + 1)]
        self._rule_keys = [key for pair in zip(self._done, self._foreign, strict=True) for key in pair]
        self._windows = [_us(rate.seconds) for rate in self.rates]
        self._rise = int(may_rise)
        self._rule_args = [
            value for rate, window in zip(self.rates, self._windows, strict=True) for value in (rate.count, window)
        ]
        longest = max(rate.seconds for rate in self.rates)
        self._ttl_ms = math.ceil((longest + LEASE_SECONDS + HEARTBEAT_SECONDS) * 1000)
        self._left = anyio.Event()  # set when a waiter of this process leaves the queue
        self._arrivals = anyio.Lock()  # fair: first come, first into the queue

    async def _acquire(self, max_wait: float, progress: WaitProgress) -> object:
        ticket, slot = uuid.uuid4().hex, uuid.uuid4().hex
        args = [ticket, slot, _us(HEARTBEAT_SECONDS), _us(LEASE_SECONDS), self._ttl_ms, self._rise, *self._rule_args]
        deadline = anyio.current_time() + max_wait
        first = True
        keys = self._keys + self._rule_keys
        try:
            async with self._arrivals:  # this process's callers join the shared queue in the order they came
                taken, wait_us = await self._store.run(self._store.acquire, keys, args)
            while True:
                if int(taken):
                    return slot
                wait = int(wait_us) / 1_000_000
                left = deadline - anyio.current_time()
                if (first and wait > max_wait) or left <= 0:
                    raise self._too_long(wait)
                first = False
                await progress.tick(wait)
                left_queue = self._left
                with anyio.move_on_after(min(wait, POLL_SECONDS, left, progress.due_in())):
                    await left_queue.wait()
                taken, wait_us = await self._store.run(self._store.acquire, keys, args)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(COMMAND_TIMEOUT_SECONDS):
                await self._leave(ticket)
            raise

    async def _leave(self, ticket: str) -> None:
        """Give up a place in the queue at once, so the callers behind move up."""
        try:
            await self._store.run(self._store.leave, [self._keys[0], self._keys[2]], [ticket])
        except UpstreamUnavailable:
            logger.warning("could not leave the %s queue; the place lapses in %g s", self.name, HEARTBEAT_SECONDS)
        self._left.set()
        self._left = anyio.Event()

    async def _release(self, token: object) -> None:
        try:
            await self._store.run(
                self._store.release, [self._keys[3], *self._done], [str(token), self._ttl_ms, *self._windows]
            )
        except UpstreamUnavailable:
            # The request is done either way; its lease keeps it counted, so the rule still holds.
            logger.warning("could not release a %s slot; its lease ends it within %g s", self.name, LEASE_SECONDS)

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
        return int(await self._store.run(self._store.remaining, keys, [self._rise, *self._rule_args]))

    async def current_rates(self) -> tuple[Rate, ...]:
        counts = await self._store.run(
            self._store.current, [self._keys[5]], [self._rise, *(rate.count for rate in self.rates)]
        )
        return tuple(Rate(int(count), rate.seconds) for count, rate in zip(counts, self.rates, strict=True))
