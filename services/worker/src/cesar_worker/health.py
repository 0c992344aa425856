"""The health probe: ``cesar-worker check`` (or ``python -m cesar_worker.health``).

Exits 0 when a worker on this host (or the given ``--worker-id``) wrote its heartbeat row
in ``worker_heartbeats`` recently; 1 otherwise. The age is measured by the database clock.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import asyncpg
from cesar_core.db import connect
from cesar_core.errors import CesarError
from cesar_core.settings import load_settings

from cesar_worker.config import WorkerConfig

__all__ = ["check_health", "heartbeat_age"]

AGE_BY_HOST = """
SELECT CAST(EXTRACT(EPOCH FROM (now() - MAX(last_seen_at))) AS FLOAT8)
FROM worker_heartbeats WHERE hostname = $1
"""
AGE_BY_ID = """
SELECT CAST(EXTRACT(EPOCH FROM (now() - MAX(last_seen_at))) AS FLOAT8)
FROM worker_heartbeats WHERE worker_id = $1
"""


async def heartbeat_age(config: WorkerConfig, worker_id: str | None = None) -> float | None:
    conn = await connect(config.require_database_url(), timeout=5)
    try:
        if worker_id:
            value = await conn.fetchval(AGE_BY_ID, worker_id, timeout=5)
        else:
            value = await conn.fetchval(AGE_BY_HOST, socket.gethostname(), timeout=5)
    finally:
        await conn.close()
    return None if value is None else float(value)


def check_health(
    config: WorkerConfig, *, max_age: float | None = None, worker_id: str | None = None
) -> int:
    limit = max_age if max_age is not None else 3 * config.job_queue_heartbeat_seconds + 10
    try:
        age = asyncio.run(heartbeat_age(config, worker_id or config.worker_id))
    except CesarError as exc:
        print(f"unhealthy: {exc}")
        return 1
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:  # one line, no traceback
        print(f"unhealthy: the database did not answer the probe: {exc or type(exc).__name__}")
        return 1
    if age is None:
        print("unhealthy: no worker heartbeat recorded for this host")
        return 1
    if age > limit:
        print(f"unhealthy: last worker heartbeat {age:.1f}s ago (limit {limit:g}s)")
        return 1
    print(f"healthy: last worker heartbeat {age:.1f}s ago")
    return 0


if __name__ == "__main__":
    sys.exit(check_health(load_settings(WorkerConfig)))
