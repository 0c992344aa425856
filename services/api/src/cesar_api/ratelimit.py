"""Rate limits per API key and per client address, shared by every replica through Redis.

Fixed windows aligned to the clock. The budget of ``<prefix>:<scope>:<identity>:<window start>``
lives in Redis; a replica takes it in small leases (``INCRBY lease`` and ``EXPIRE`` in one
pipeline, one round trip) and spends a lease locally, so a busy client costs one Redis round
trip per lease instead of one per request. The lease is 1% of the limit, at least 1 and at
most :data:`MAX_LEASE`; with a limit under 200 per window every request goes to Redis.

What holds: no more requests than the limit are admitted per window across all replicas (a
lease is counted in Redis before it is spent). A replica may end a window holding unspent
tokens, so a client spread over several replicas can be refused up to ``lease - 1`` requests per
replica early. Refused requests get 429 with ``Retry-After`` (the seconds to the window's end).
When Redis fails the check is skipped (fail open, counted in a metric): a broken limiter must
not take the API down.

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

__all__ = ["MAX_LEASE", "RateLimits", "lease_size"]

log = logging.getLogger(__name__)

MAX_LEASE = 50
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


def lease_size(amount: int) -> int:
    return max(1, min(MAX_LEASE, amount // 100))


class _Scope:
    """One limit (per key or per address) and the tokens this replica holds in its window."""

    def __init__(self, name: str, item: RateLimitItem) -> None:
        self.name = name
        self.item = item
        self.window = item.get_expiry()
        self.lease = lease_size(item.amount)
        self.window_start = -1
        self.tokens: dict[str, int] = {}

    def current(self, now: float) -> int:
        start = int(now // self.window) * self.window
        if start != self.window_start:  # a new window: leases of the old one are void
            self.window_start = start
            self.tokens = {}
        return start


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
        self._key = _Scope("key", self.per_key)
        self._address = _Scope("address", self.per_address)
        # its own client with short timeouts: a slow Redis delays a request by at most ~1 s
        self.redis: RedisClient = create_redis(redis_url, timeout=1.0)

    async def _check(self, scope: _Scope, identity: str) -> None:
        now = self.clock()
        start = scope.current(now)
        held = scope.tokens.get(identity, 0)
        if held > 0:
            scope.tokens[identity] = held - 1
            return
        key = f"{self.prefix}:{scope.name}:{identity}:{start}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, scope.lease)
                pipe.expire(key, scope.window + 1)
                total, _ = await pipe.execute()
        except _REDIS_FAILURES as exc:  # fail open
            self.metrics.rate_limit_errors.inc()
            log.warning("rate limit check skipped: %s", exc or type(exc).__name__)
            return
        granted = min(scope.lease, scope.item.amount - (int(total) - scope.lease))
        if granted > 0:
            if scope.window_start == start:  # still the window the lease was taken in
                scope.tokens[identity] = scope.tokens.get(identity, 0) + granted - 1
            return
        retry_after = max(1, math.ceil(start + scope.window - now))
        self.metrics.rate_limited.labels(scope.name).inc()
        raise RateLimited(
            f"rate limit of {scope.item} per "
            f"{'API key' if scope.name == 'key' else 'client address'} "
            f"exceeded; retry in {retry_after}s",
            retry_after,
        )

    async def check_address(self, address: str) -> None:
        if self.enabled:
            await self._check(self._address, address)

    async def check_key(self, key_id: str) -> None:
        if self.enabled:
            await self._check(self._key, key_id)

    async def close(self) -> None:
        await self.redis.aclose()
