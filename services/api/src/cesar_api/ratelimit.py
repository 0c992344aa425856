"""Rate limits per API key and per client address, shared by every replica through Redis.

Fixed windows from the ``limits`` library on its async Redis storage. When Redis fails the
check is skipped (fail open, counted in a metric): a broken limiter must not take the API down.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from cesar_api.errors import RateLimited
from cesar_api.metrics import ApiMetrics

__all__ = ["RateLimits"]

log = logging.getLogger(__name__)


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
    ) -> None:
        self.enabled = enabled
        self.per_key: RateLimitItem = parse(per_key)
        self.per_address: RateLimitItem = parse(per_address)
        self.metrics = metrics
        self.storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=prefix,
            wrap_exceptions=True,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )
        self.limiter = FixedWindowRateLimiter(self.storage)

    async def _check(self, item: RateLimitItem, scope: str, identity: str) -> None:
        try:
            if await self.limiter.hit(item, scope, identity):
                return
            stats = await self.limiter.get_window_stats(item, scope, identity)
        except Exception as exc:  # the storage wraps every Redis failure; fail open
            self.metrics.rate_limit_errors.inc()
            log.warning("rate limit check skipped: %s", exc or type(exc).__name__)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
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
        bridge = getattr(self.storage, "bridge", None)
        storage = getattr(bridge, "storage", None)
        aclose = getattr(storage, "aclose", None)
        if aclose is not None:
            await aclose()
