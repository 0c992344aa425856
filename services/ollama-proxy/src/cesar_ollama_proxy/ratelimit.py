"""Rate limits per client key and per model, shared by every replica through Redis.

Moving-window limits by default (``PROXY_RATE_LIMIT_STRATEGY``: ``moving-window`` exact,
``fixed-window`` or ``sliding-window-counter`` cheaper at very high limits), through ``limits``
with its asyncio Redis storage (redis-py implementation),
keys under ``<PROXY_REDIS_PREFIX>ratelimit``. The client key is a hash of the bearer token
when there is one (tokens are never stored), else the client address. When Redis fails the
proxy fails open (serves, logs, counts ``redis_errors``) rather than refusing all traffic.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from cesar_ollama_proxy.errors import RateLimited

__all__ = ["Admission", "RateLimiter", "client_key"]

log = logging.getLogger(__name__)

_STRATEGIES: dict[
    str,
    type[MovingWindowRateLimiter]
    | type[FixedWindowRateLimiter]
    | type[SlidingWindowCounterRateLimiter],
] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


#: One round trip for the hot path: the client limits, then (if the client may pass) the cache
#: lookup, then (on a miss, for model work) the model limits. Same keys and same algorithms as
#: ``limits`` (its moving-window and fixed-window scripts), so replicas, ``get_window_stats``
#: and older versions agree. Returns {0, i} refused by client limit i, {1, value} a cache hit,
#: {2, i} refused by model limit i, {3} admitted to go upstream.
_ADMIT_LUA = """
local now = tonumber(ARGV[1])
local fixed = ARGV[2] == 'fixed'
local n_client = tonumber(ARGV[3])
local n_model = tonumber(ARGV[4])
local has_cache = ARGV[5] == '1'
local function acquire(key, limit, expiry)
    if fixed then
        local current = redis.call('incrby', key, 1)
        if current == 1 then
            redis.call('expire', key, expiry)
        end
        return current <= limit
    end
    local entry = redis.call('lindex', key, limit - 1)
    if entry and tonumber(entry) >= now - expiry then
        return false
    end
    redis.call('lpush', key, ARGV[1])
    redis.call('ltrim', key, 0, limit - 1)
    redis.call('expire', key, expiry)
    return true
end
local k = 1
local a = 6
for i = 1, n_client do
    if not acquire(KEYS[k], tonumber(ARGV[a]), tonumber(ARGV[a + 1])) then
        return {0, i}
    end
    k = k + 1
    a = a + 2
end
if has_cache then
    local value = redis.call('get', KEYS[k])
    if value then
        return {1, value}
    end
    k = k + 1
end
for i = 1, n_model do
    if not acquire(KEYS[k], tonumber(ARGV[a]), tonumber(ARGV[a + 1])) then
        return {2, i}
    end
    k = k + 1
    a = a + 2
end
return {3}
"""
_SCRIPTED = {"moving-window": "moving", "fixed-window": "fixed"}


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of :meth:`RateLimiter.admit` when nothing was refused: the cached answer
    (raw, as stored) or ``None``."""

    cached: bytes | None = None


def client_key(authorization: str | None, address: str | None) -> str:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:24]
    return f"addr:{address or 'unknown'}"


class RateLimiter:
    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str,
        client_limits: Sequence[RateLimitItem],
        model_limits: Sequence[RateLimitItem],
        timeout: float,
        strategy: str = "moving-window",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.client_limits = list(client_limits)
        self.model_limits = list(model_limits)
        self._on_error = on_error
        self.storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=f"{prefix}ratelimit",
            wrap_exceptions=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.limiter = _STRATEGIES[strategy](self.storage)
        self._scripted = _SCRIPTED.get(strategy)
        self._redis: Redis | None = None
        self._admit_sha: str | None = None

    def use_redis(self, redis: Redis) -> None:
        """Serve :meth:`admit` in one Lua round trip on ``redis`` (moving and fixed window)."""
        self._redis = redis

    async def admit(self, client: str, cache_key: str | None, model: str | None) -> Admission:
        """Client limits, then the cache lookup (when ``cache_key``), then on a miss the model
        limits (when ``model`` is not ``None``); raises :class:`RateLimited`. One Redis round
        trip when it can; Redis failures fail open (a miss, no limit), counted per op."""
        if self._redis is None or self._scripted is None:
            return await self._admit_slowly(client, cache_key, model)
        model_items = self.model_limits if model is not None else []
        if cache_key is None and not self.client_limits and not model_items:
            return Admission()  # nothing to ask Redis
        keys: list[str] = []
        args: list[str] = [repr(time.time()), self._scripted,
                                 str(len(self.client_limits)), str(len(model_items)),
                                 "1" if cache_key is not None else "0"]  # fmt: skip
        for item in self.client_limits:
            keys.append(self.storage.bridge.prefixed_key(item.key_for("client", client)))
            args += (str(item.amount), str(item.get_expiry()))
        if cache_key is not None:
            keys.append(cache_key)
        for item in model_items:
            keys.append(self.storage.bridge.prefixed_key(item.key_for("model", model or "-")))
            args += (str(item.amount), str(item.get_expiry()))
        try:
            reply = await self._eval(keys, args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            if cache_key is not None and self._on_error is not None:
                self._on_error("cache_get")
            return Admission()
        code = int(reply[0])
        if code == 1:
            return Admission(bytes(reply[1]))
        if code == 0:
            await self._refuse(self.client_limits[int(reply[1]) - 1], "client", client)
        if code == 2:
            await self._refuse(model_items[int(reply[1]) - 1], "model", model or "-")
        return Admission()

    async def _eval(self, keys: list[str], args: list[str]) -> list[Any]:
        assert self._redis is not None
        if self._admit_sha is None:
            self._admit_sha = str(await self._redis.script_load(_ADMIT_LUA))
        try:
            reply = await self._redis.evalsha(self._admit_sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:  # Redis restarted or SCRIPT FLUSH: load it again
            self._admit_sha = str(await self._redis.script_load(_ADMIT_LUA))
            reply = await self._redis.evalsha(self._admit_sha, len(keys), *keys, *args)  # type: ignore[misc]
        return list(reply)

    async def _admit_slowly(
        self, client: str, cache_key: str | None, model: str | None
    ) -> Admission:
        await self.check_client(client)
        cached = None
        if cache_key is not None and self._redis is not None:
            try:
                cached = await self._redis.get(cache_key)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("cache get failed: %s", exc or type(exc).__name__)
                if self._on_error is not None:
                    self._on_error("cache_get")
        if cached is None and model is not None:
            await self.check_model(model)
        return Admission(cached)

    def _failed(self, exc: BaseException) -> None:
        log.warning("rate limit check failed, serving anyway: %s", exc or type(exc).__name__)
        if self._on_error is not None:
            self._on_error("ratelimit")

    async def _refuse(self, item: RateLimitItem, scope: str, identity: str) -> None:
        try:
            stats = await self.limiter.get_window_stats(item, scope, identity)
            reset_time = stats.reset_time
        except StorageError:
            reset_time = time.time() + item.get_expiry()
        self._raise(item, scope, reset_time)

    @staticmethod
    def _raise(item: RateLimitItem, scope: str, reset_time: float) -> None:
        retry_after = max(1, math.ceil(reset_time - time.time()))
        what = "model" if scope == "model" else "client"
        refused = RateLimited(
            f"rate limit exceeded for this {what} ({item}); retry in {retry_after}s",
            retry_after=retry_after,
        )
        refused.scope = scope
        raise refused

    async def check_client(self, key: str) -> None:
        await self._check(self.client_limits, "client", key)

    async def check_model(self, model: str) -> None:
        await self._check(self.model_limits, "model", model or "-")

    async def _check(self, items: list[RateLimitItem], scope: str, identity: str) -> None:
        for item in items:
            try:
                allowed = await self.limiter.hit(item, scope, identity)
                if allowed:
                    continue
                stats = await self.limiter.get_window_stats(item, scope, identity)
            except StorageError as exc:
                self._failed(exc)
                return
            self._raise(item, scope, stats.reset_time)

    async def close(self) -> None:
        try:
            await self.storage.bridge.storage.aclose()  # type: ignore[attr-defined]
        except Exception as exc:  # closing must never fail a shutdown
            log.debug("closing the rate-limit storage: %s", exc)
