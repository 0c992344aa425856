"""The leased limiter on real Redis: leases never admit more than the limit across replicas,
Retry-After counts to the window's end, a new window starts afresh, several limits per scope,
and Redis down means fail open."""

from __future__ import annotations

import pytest
from cesar_core.ratelimit import LeasedLimiter, Refusal, lease_size, parse_limits
from cesar_core.redis import RedisClient, create_redis


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _limiter(redis: RedisClient, prefix: str, clock: Clock, address: str) -> LeasedLimiter:
    return LeasedLimiter(
        redis,
        prefix=f"{prefix}rl",
        limits={"key": parse_limits("10/minute"), "address": parse_limits(address)},
        clock=clock,
    )


async def _admitted(
    limiter: LeasedLimiter, identity: str, tries: int
) -> tuple[int, Refusal | None]:
    for n in range(tries):
        refusal = await limiter.acquire("address", identity)
        if refusal is not None:
            return n, refusal
    return tries, None


def test_lease_size() -> None:
    assert lease_size(3) == 1
    assert lease_size(600) == 6
    assert lease_size(100_000_000) == 50


def test_parse_limits() -> None:
    assert parse_limits("") == [] and parse_limits("  ") == []
    assert [(i.amount, i.get_expiry()) for i in parse_limits("10/second; 500/hour")] == [
        (10, 1),
        (500, 3600),
    ]
    with pytest.raises(ValueError, match="600/minute"):
        parse_limits("lots")


async def test_small_limit_is_exact_and_shared(redis: RedisClient, redis_prefix: str) -> None:
    clock = Clock(1_000_040.0)  # 20 s into a minute window (1_000_020 is a window start)
    one = _limiter(redis, redis_prefix, clock, "3/minute")
    two = _limiter(redis, redis_prefix, clock, "3/minute")
    assert await one.acquire("address", "10.0.0.1") is None
    assert await two.acquire("address", "10.0.0.1") is None
    assert await one.acquire("address", "10.0.0.1") is None
    refusal = await two.acquire("address", "10.0.0.1")
    assert refusal is not None
    assert (refusal.scope, refusal.retry_after, refusal.limit.amount) == ("address", 40, 3)
    assert await one.acquire("address", "10.0.0.2") is None  # another identity, its own budget
    assert await one.acquire("key", "10.0.0.1") is None  # another scope, its own budget
    clock.now += 40  # the next window
    assert await two.acquire("address", "10.0.0.1") is None


async def test_leases_never_admit_more_than_the_limit(
    redis: RedisClient, redis_prefix: str
) -> None:
    clock = Clock(2_000_000.0)
    replicas = [_limiter(redis, redis_prefix, clock, "1000/minute") for _ in range(3)]
    admitted = 0
    refused = 0
    for n in range(1200):
        if await replicas[n % 3].acquire("address", "10.0.0.9") is None:
            admitted += 1
        else:
            refused += 1
    lease = lease_size(1000)
    assert 1000 - 3 * (lease - 1) <= admitted <= 1000
    assert refused == 1200 - admitted
    for limiter in replicas:  # every replica refuses now
        assert (await _admitted(limiter, "10.0.0.9", 1))[0] == 0


async def test_every_limit_of_a_scope_applies(redis: RedisClient, redis_prefix: str) -> None:
    clock = Clock(3_600_000.0)  # a window start for both limits
    limiter = _limiter(redis, redis_prefix, clock, "2/second; 3/hour")
    assert (await _admitted(limiter, "10.0.0.4", 5))[0] == 2  # the per-second limit
    clock.now += 1
    count, refusal = await _admitted(limiter, "10.0.0.4", 5)
    assert count == 1  # the hour's third request
    assert refusal is not None and refusal.limit.amount == 3
    assert refusal.retry_after == 3600 - 1


async def test_empty_scope_is_unlimited_and_unknown_scope_is_an_error(
    redis: RedisClient, redis_prefix: str
) -> None:
    limiter = LeasedLimiter(redis, prefix=f"{redis_prefix}rl", limits={"client": []})
    assert all([await limiter.acquire("client", "x") is None for _ in range(5)])
    with pytest.raises(KeyError):
        await limiter.acquire("model", "x")


async def test_redis_down_fails_open(redis_prefix: str) -> None:
    errors: list[BaseException] = []
    down = create_redis("redis://127.0.0.1:1/0", timeout=1.0)
    limiter = LeasedLimiter(
        down,
        prefix=f"{redis_prefix}rl",
        limits={"address": parse_limits("1/minute")},
        on_error=errors.append,
        clock=Clock(3_000_000.0),
    )
    try:
        assert (await _admitted(limiter, "10.0.0.3", 3))[0] == 3
        assert len(errors) == 3
    finally:
        await down.aclose()
