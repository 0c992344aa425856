"""Rate limits shared by every replica through Redis, spent from small local leases.

Fixed windows aligned to the clock. The budget of ``<prefix>:<scope>:<identity>:<window>:<start>``
lives in Redis; a replica takes it in leases (``INCRBY lease`` and ``EXPIRE`` in one pipeline,
one round trip) and spends a lease locally, so a busy identity costs one Redis round trip per
lease instead of one per request. The lease is 1% of the limit, at least 1 and at most
:data:`MAX_LEASE`; with a limit under 200 per window every request goes to Redis (exact).

What holds: no more requests than the limit are admitted per window across all replicas (a
lease is counted in Redis before it is spent). A replica may end a window holding unspent
tokens, so an identity spread over several replicas can be refused up to ``lease - 1`` requests
per replica early. A refusal says how many seconds remain in the window (``Retry-After``).
When Redis fails the check is skipped (fail open, reported to ``on_error``): a broken limiter
must not take a service down.

Limits are written like ``600/minute``, several separated by ``;`` (``limits``' syntax, parsed
by :func:`parse_limits`). A scope (e.g. ``"client"``, ``"model"``) may have several limits; a
request passes when every one of them admits it (limits checked before a refusing one keep the
token they gave).

Usage::

    limiter = LeasedLimiter(redis, prefix="cesar:ratelimit",
                            limits={"key": parse_limits("1200/minute")})
    refusal = await limiter.acquire("key", key_id)
    if refusal is not None:
        raise MyRateLimited(..., retry_after=refusal.retry_after)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["MAX_LEASE", "LeasedLimiter", "Refusal", "lease_size", "parse_limits"]

log = logging.getLogger(__name__)

MAX_LEASE = 50
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


def lease_size(amount: int) -> int:
    """How many requests one Redis round trip reserves for a limit of ``amount``."""
    return max(1, min(MAX_LEASE, amount // 100))


def parse_limits(text: str) -> list[RateLimitItem]:
    """``"60/minute; 1000/hour"`` -> limit items; an empty string means no limit.

    Raises :class:`ValueError` with an example of the syntax."""
    if not text.strip():
        return []
    try:
        return list(parse_many(text))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a rate limit; write e.g. '600/minute' or '10/second; 500/hour'"
        ) from exc


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why :meth:`LeasedLimiter.acquire` refused: the scope, the limit, seconds to wait."""

    scope: str
    limit: RateLimitItem
    retry_after: int


class _Budget:
    """One limit of one scope and the tokens this replica holds in the current window."""

    __slots__ = ("item", "lease", "scope", "tokens", "window", "window_start")

    def __init__(self, scope: str, item: RateLimitItem) -> None:
        self.scope = scope
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


class LeasedLimiter:
    """Fixed-window limits per ``(scope, identity)`` on a Redis client the caller owns.

    ``limits`` maps each scope to its limits (an empty sequence: the scope is unlimited).
    ``on_error`` is called with the exception when Redis fails (the request is admitted)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        limits: Mapping[str, Sequence[RateLimitItem]],
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limits = {scope: list(items) for scope, items in limits.items()}
        self._budgets = {
            scope: [_Budget(scope, item) for item in items] for scope, items in limits.items()
        }
        self._on_error = on_error
        self._clock = clock

    async def acquire(self, scope: str, identity: str) -> Refusal | None:
        """Spend one request of ``identity``'s budget in ``scope``: ``None`` when admitted,
        else the :class:`Refusal`. Unknown scopes are a :class:`KeyError`."""
        for budget in self._budgets[scope]:
            refusal = await self._take(budget, identity)
            if refusal is not None:
                return refusal
        return None

    async def _take(self, budget: _Budget, identity: str) -> Refusal | None:
        now = self._clock()
        start = budget.current(now)
        held = budget.tokens.get(identity, 0)
        if held > 0:
            budget.tokens[identity] = held - 1
            return None
        key = f"{self.prefix}:{budget.scope}:{identity}:{budget.window}:{start}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, budget.lease)
                pipe.expire(key, budget.window + 1)
                total, _ = await pipe.execute()
        except _REDIS_FAILURES as exc:  # fail open
            log.warning("rate limit check skipped: %s", exc or type(exc).__name__)
            if self._on_error is not None:
                self._on_error(exc)
            return None
        granted = min(budget.lease, budget.item.amount - (int(total) - budget.lease))
        if granted > 0:
            if budget.window_start == start:  # still the window the lease was taken in
                budget.tokens[identity] = budget.tokens.get(identity, 0) + granted - 1
            return None
        retry_after = max(1, math.ceil(start + budget.window - now))
        return Refusal(budget.scope, budget.item, retry_after)
