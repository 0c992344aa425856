"""The proxy's Redis client: redis-py (with hiredis when installed) on a pool that skips the
per-command ``can_read_destructive`` probe.

redis-py checks every pooled connection before each command with a zero-timeout read, which
costs an extra event-loop turn and a cancellation per command on the hot path. A connection
only has unread data when a command was interrupted, and redis-py already disconnects a
connection whose read failed or was cancelled, so the probe buys nothing here; a connection
that is not connected is still (re)connected before use.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["LeanConnectionPool", "create_lean_redis"]


class LeanConnectionPool(ConnectionPool):
    async def ensure_connection(self, connection: AbstractConnection) -> None:
        await connection.connect()  # type: ignore[no-untyped-call]


def create_lean_redis(url: str, *, timeout: float, **options: Any) -> Redis:
    """A client for ``url`` (lazy: connects on first use). Without the probe, a connection
    left stale by a Redis restart fails its next command; that command is retried once on a
    fresh connection instead (what the probe achieved, at a cost only when it happens)."""
    pool = LeanConnectionPool.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        decode_responses=False,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
        **options,
    )
    return Redis(connection_pool=pool)
