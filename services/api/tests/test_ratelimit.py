"""The API's use of the shared limiter (``cesar_core.ratelimit``, tested there): a refusal is
a 429 ``RateLimited`` naming the scope, with Retry-After, counted by scope."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from cesar_api.deps import enforce_rate_limit
from cesar_api.errors import RateLimited
from cesar_api.metrics import ApiMetrics
from cesar_core.ratelimit import LeasedLimiter, parse_limits
from cesar_core.redis import RedisClient
from prometheus_client import generate_latest


async def test_refusal_is_rate_limited_with_retry_after(
    redis: RedisClient, redis_prefix: str
) -> None:
    limiter = LeasedLimiter(
        redis,
        prefix=f"{redis_prefix}rl",
        limits={"key": parse_limits("1/hour"), "address": []},
        clock=lambda: 7200.0 + 600,  # 10 minutes into an hour window
    )
    resources: Any = SimpleNamespace(limits=limiter, metrics=ApiMetrics())
    await enforce_rate_limit(resources, "address", "10.0.0.1")  # unlimited scope
    await enforce_rate_limit(resources, "key", "k1")
    with pytest.raises(RateLimited) as refused:
        await enforce_rate_limit(resources, "key", "k1")
    assert refused.value.headers == {"Retry-After": "3000"}
    assert "per API key" in str(refused.value)
    exposition = generate_latest(resources.metrics.registry).decode()
    assert 'cesar_api_rate_limited_total{scope="key"} 1.0' in exposition
