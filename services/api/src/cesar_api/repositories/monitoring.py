"""Reads of the three materialized views (refreshing them is
:func:`cesar_core.jobs.maintenance.refresh_materialized_views`)."""

from __future__ import annotations

from typing import Any

import asyncpg

from cesar_api.repositories import as_dicts

__all__ = ["ingestion_errors", "job_backlog", "sync_lag"]

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


async def sync_lag(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(SYNC_LAG))


async def job_backlog(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(JOB_BACKLOG))


async def ingestion_errors(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(INGESTION_ERRORS))
