"""The three materialized views the dashboard reads, and their refresh.

A refresh runs in autocommit (never inside a transaction: CockroachDB refuses), CONCURRENTLY
so readers are not blocked on PostgreSQL (CockroachDB accepts the word and ignores it).
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from cesar_api.repositories import as_dicts

__all__ = ["REFRESH_VIEWS", "ingestion_errors", "job_backlog", "refresh_all", "sync_lag"]

SYNC_LAG = """
SELECT system_name, status, last_sync_at, last_success_at, lag_seconds, records_synced,
       last_error, refreshed_at
FROM mv_sync_lag ORDER BY system_name
"""

JOB_BACKLOG = """
SELECT job_type, status, job_count, oldest_created_at, oldest_age_seconds, next_run_after,
       last_updated_at, refreshed_at
FROM mv_job_queue_backlog ORDER BY job_type, status
"""

INGESTION_ERRORS = """
SELECT source, runs, failed_runs, partial_runs, rows_failed, last_failure_at, last_run_at,
       refreshed_at
FROM mv_ingestion_errors ORDER BY source
"""

# fixed list: view names are never taken from input
REFRESH_VIEWS: dict[str, str] = {
    "mv_sync_lag": "REFRESH MATERIALIZED VIEW CONCURRENTLY mv_sync_lag",
    "mv_job_queue_backlog": "REFRESH MATERIALIZED VIEW CONCURRENTLY mv_job_queue_backlog",
    "mv_ingestion_errors": "REFRESH MATERIALIZED VIEW CONCURRENTLY mv_ingestion_errors",
}


async def sync_lag(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(SYNC_LAG))


async def job_backlog(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(JOB_BACKLOG))


async def ingestion_errors(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(INGESTION_ERRORS))


async def refresh_all(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Refresh each view in its own autocommit statement; returns the time each took."""
    results = []
    for view, statement in REFRESH_VIEWS.items():
        started = time.perf_counter()
        await conn.execute(statement)
        results.append({"view": view, "ms": round((time.perf_counter() - started) * 1000, 3)})
    return results
