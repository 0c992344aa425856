"""The Redis connector: one client per process, errors mapped to :class:`RedisUnavailable`."""

from __future__ import annotations

import asyncio
import time

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cesar_core.errors import RedisUnavailable

__all__ = ["RedisClient", "create_redis", "ping_redis"]

RedisClient = aioredis.Redis


def create_redis(url: str, *, timeout: float = 5.0) -> RedisClient:
    """A client for ``url``; it connects lazily, on first use, never at import or creation."""
    client: RedisClient = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
        decode_responses=False,
    )
    return client


async def ping_redis(client: RedisClient, timeout: float = 2.0) -> float:
    """Round-trip time of PING in milliseconds."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
        raise RedisUnavailable(f"Redis is not answering: {exc or type(exc).__name__}") from exc
    return (time.perf_counter() - started) * 1000
