"""The rate limiter on its own: leased budgets never admit more than the limit across
replicas, Retry-After counts to the window's end, a new window starts afresh, and Redis down
means fail open."""

from __future__ import annotations

import pytest
from cesar_api.errors import RateLimited
from cesar_api.metrics import ApiMetrics
from cesar_api.ratelimit import RateLimits, lease_size


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _limits(redis_url: str, prefix: str, clock: Clock, per_address: str) -> RateLimits:
    return RateLimits(
        redis_url,
        per_key="10/minute",
        per_address=per_address,
        prefix=f"{prefix}rl",
        metrics=ApiMetrics(),
        clock=clock,
    )


async def _admitted(limits: RateLimits, address: str, tries: int) -> tuple[int, RateLimited | None]:
    for n in range(tries):
        try:
            await limits.check_address(address)
        except RateLimited as exc:
            return n, exc
    return tries, None


def test_lease_size() -> None:
    assert lease_size(3) == 1
    assert lease_size(600) == 6
    assert lease_size(100_000_000) == 50


async def test_small_limit_is_exact_and_shared(redis_url: str, redis_prefix: str) -> None:
    clock = Clock(1_000_040.0)  # 20 s into a minute window (1_000_020 is a window start)
    one = _limits(redis_url, redis_prefix, clock, "3/minute")
    two = _limits(redis_url, redis_prefix, clock, "3/minute")
    try:
        await one.check_address("10.0.0.1")
        await two.check_address("10.0.0.1")
        await one.check_address("10.0.0.1")
        with pytest.raises(RateLimited) as refused:
            await two.check_address("10.0.0.1")
        assert refused.value.headers == {"Retry-After": "40"}
        await one.check_address("10.0.0.2")  # another address has its own budget
        clock.now += 40  # the next window
        await two.check_address("10.0.0.1")
    finally:
        await one.close()
        await two.close()


async def test_leases_never_admit_more_than_the_limit(redis_url: str, redis_prefix: str) -> None:
    clock = Clock(2_000_000.0)
    replicas = [_limits(redis_url, redis_prefix, clock, "1000/minute") for _ in range(3)]
    try:
        admitted = 0
        refused = 0
        for n in range(1200):
            try:
                await replicas[n % 3].check_address("10.0.0.9")
                admitted += 1
            except RateLimited:
                refused += 1
        lease = lease_size(1000)
        assert 1000 - 3 * (lease - 1) <= admitted <= 1000
        assert refused == 1200 - admitted
        # every replica refuses now
        for limits in replicas:
            assert (await _admitted(limits, "10.0.0.9", 1))[0] == 0
    finally:
        for limits in replicas:
            await limits.close()


async def test_redis_down_fails_open(redis_prefix: str) -> None:
    limits = _limits("redis://127.0.0.1:1/0", redis_prefix, Clock(3_000_000.0), "1/minute")
    try:
        assert (await _admitted(limits, "10.0.0.3", 3))[0] == 3
        assert "cesar_api_rate_limit_errors_total 3.0" in _exposition(limits.metrics)
    finally:
        await limits.close()


def _exposition(metrics: ApiMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()
