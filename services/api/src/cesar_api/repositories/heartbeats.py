"""Worker liveness, as the workers record it in ``worker_heartbeats``."""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = ["newest_worker_seen"]

NEWEST_WORKER_SEEN = "SELECT max(last_seen_at) FROM worker_heartbeats"


async def newest_worker_seen(conn: asyncpg.Connection) -> datetime | None:
    value: datetime | None = await conn.fetchval(NEWEST_WORKER_SEEN)
    return value
