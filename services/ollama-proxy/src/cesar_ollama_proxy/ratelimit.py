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

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError

from cesar_ollama_proxy.errors import RateLimited

__all__ = ["RateLimiter", "client_key"]

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
                log.warning("rate limit check failed, serving anyway: %s", exc)
                if self._on_error is not None:
                    self._on_error("ratelimit")
                return
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            what = "model" if scope == "model" else "client"
            refused = RateLimited(
                f"rate limit exceeded for this {what} ({item}); retry in {retry_after}s",
                retry_after=retry_after,
            )
            refused.scope = scope
            raise refused

    async def close(self) -> None:
        try:
            await self.storage.bridge.storage.aclose()  # type: ignore[attr-defined]
        except Exception as exc:  # closing must never fail a shutdown
            log.debug("closing the rate-limit storage: %s", exc)
