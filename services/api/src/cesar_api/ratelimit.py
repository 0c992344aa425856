"""Rate limits per API key and per client address, shared by every replica through Redis.

Fixed windows aligned to the clock: a request counts against the key
``<prefix>:<scope>:<identity>:<window start>`` with ``INCR`` and ``EXPIRE`` sent together in one
pipeline (one round trip, no script, no second query: the window's end, and so
``Retry-After``, follows from the clock). Every replica computes the same key, so the budget is
shared. When Redis fails the check is skipped (fail open, counted in a metric): a broken
limiter must not take the API down.

Limits are written like ``600/minute`` (parsed by the ``limits`` library).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from cesar_core.redis import RedisClient, create_redis
from limits import RateLimitItem, parse
from redis.exceptions import RedisError

from cesar_api.errors import RateLimited
from cesar_api.metrics import ApiMetrics

__all__ = ["RateLimits"]

log = logging.getLogger(__name__)

_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


class RateLimits:
    def __init__(
        self,
        redis_url: str,
        *,
        per_key: str,
        per_address: str,
        prefix: str,
        metrics: ApiMetrics,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self.per_key: RateLimitItem = parse(per_key)
        self.per_address: RateLimitItem = parse(per_address)
        self.prefix = prefix
        self.metrics = metrics
        self.clock = clock
        # its own client with short timeouts: a slow Redis delays a request by at most ~1 s
        self.redis: RedisClient = create_redis(redis_url, timeout=1.0)

    async def _check(self, item: RateLimitItem, scope: str, identity: str) -> None:
        window = item.get_expiry()
        now = self.clock()
        start = int(now // window) * window
        key = f"{self.prefix}:{scope}:{identity}:{start}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, window + 1)
                count, _ = await pipe.execute()
        except _REDIS_FAILURES as exc:  # fail open
            self.metrics.rate_limit_errors.inc()
            log.warning("rate limit check skipped: %s", exc or type(exc).__name__)
            return
        if int(count) <= item.amount:
            return
        retry_after = max(1, math.ceil(start + window - now))
        self.metrics.rate_limited.labels(scope).inc()
        raise RateLimited(
            f"rate limit of {item} per {'API key' if scope == 'key' else 'client address'} "
            f"exceeded; retry in {retry_after}s",
            retry_after,
        )

    async def check_address(self, address: str) -> None:
        if self.enabled:
            await self._check(self.per_address, "address", address)

    async def check_key(self, key_id: str) -> None:
        if self.enabled:
            await self._check(self.per_key, "key", key_id)

    async def close(self) -> None:
        await self.redis.aclose()
