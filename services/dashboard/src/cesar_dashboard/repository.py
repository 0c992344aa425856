"""Every query the dashboard runs, as SQL constants and functions taking a connection.

The functions return plain data (lists of dicts), never driver objects, so results can be
cached by ``st.cache_data`` and pages render without knowing about asyncpg. Time windows are
measured against the database clock (``now()``), never the dashboard's. Portable SQL only: the
same text runs on CockroachDB and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "FINAL_STATUSES",
    "RETRYABLE_STATUSES",
    "SYNC_LAG_METRIC",
    "JobFilter",
    "agent_event_rate",
    "agent_events",
    "agents",
    "backlog",
    "engine_banner",
    "escape_like",
    "failed_jobs_recent",
    "ingestion_errors",
    "ingestion_failures",
    "job",
    "job_ids",
    "job_status_counts",
    "job_types",
    "jobs",
    "llm_metrics",
    "ping",
    "sync_lag",
    "sync_lag_history",
    "workers",
]

Row = dict[str, Any]

ALL_STATUSES = ("pending", "queued", "running", "retrying", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("pending", "queued", "running", "retrying")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
RETRYABLE_STATUSES = ("failed", "cancelled")
# system_metrics rows with this metric_name (component = the system) give lag over time
SYNC_LAG_METRIC = "sync_lag_seconds"

ENGINE_SQL = "SELECT version()"
PING_SQL = "SELECT 1"

WORKERS_SQL = """
SELECT worker_id, hostname, queue_name, jobs_running, started_at, last_seen_at,
       CAST(EXTRACT(EPOCH FROM (now() - last_seen_at)) AS FLOAT8) AS age_seconds
FROM worker_heartbeats
ORDER BY last_seen_at DESC
LIMIT 50
"""

FAILED_RECENT_COUNT_SQL = """
SELECT COUNT(*)
FROM job_queue
WHERE status = 'failed'
  AND COALESCE(finished_at, updated_at) >= now() - CAST($1 AS FLOAT8) * INTERVAL '1 second'
"""

FAILED_RECENT_SQL = """
SELECT id, job_type, attempts, max_attempts, last_error,
       COALESCE(finished_at, updated_at) AS failed_at
FROM job_queue
WHERE status = 'failed'
  AND COALESCE(finished_at, updated_at) >= now() - CAST($1 AS FLOAT8) * INTERVAL '1 second'
ORDER BY COALESCE(finished_at, updated_at) DESC, id
LIMIT $2
"""

# ERROR/CRITICAL log records of every service (cesar_core.alerts), newest first
RECENT_ALERTS_SQL = """
SELECT component, severity, message, occurrences, fired_at, last_seen_at
FROM system_alerts
WHERE status <> 'resolved' AND last_seen_at >= now() - CAST($1 AS FLOAT8) * INTERVAL '1 second'
ORDER BY last_seen_at DESC
LIMIT $2
"""

BACKLOG_SQL = """
SELECT job_type, status, job_count, oldest_created_at, oldest_age_seconds, next_run_after,
       last_updated_at, refreshed_at
FROM mv_job_queue_backlog
ORDER BY job_type, status
"""

SYNC_LAG_SQL = """
SELECT system_name, status, last_sync_at, last_success_at, lag_seconds, records_synced,
       last_error, refreshed_at
FROM mv_sync_lag
ORDER BY (lag_seconds IS NULL), lag_seconds DESC, system_name
"""

SYNC_LAG_HISTORY_SQL = """
SELECT component AS system_name, recorded_at, metric_value AS lag_seconds
FROM system_metrics
WHERE metric_name = $1
  AND recorded_at >= now() - CAST($2 AS FLOAT8) * INTERVAL '1 second'
ORDER BY recorded_at, component
LIMIT 5000
"""

INGESTION_ERRORS_SQL = """
SELECT source, runs, failed_runs, partial_runs, rows_failed, last_failure_at, last_run_at,
       refreshed_at
FROM mv_ingestion_errors
ORDER BY failed_runs DESC, partial_runs DESC, source
"""

INGESTION_FAILURES_SQL = """
SELECT id, source, job_id, status, rows_total, rows_ok, rows_failed, error_message,
       CAST(errors AS TEXT) AS errors, started_at, finished_at
FROM ingestion_log
WHERE status IN ('failed', 'partial')
  AND expires_at > now()
ORDER BY started_at DESC, id
LIMIT $1
"""

JOB_TYPES_SQL = """
SELECT DISTINCT job_type FROM job_queue ORDER BY job_type LIMIT 500
"""

# $1 job types (NULL: any), $2 statuses (NULL: any), $3 window in seconds (NULL: any age),
# $4 id prefix pattern, $5 payload pattern (both NULL: no search)
_JOB_FILTER = """
WHERE (CAST($1 AS TEXT[]) IS NULL OR job_type = ANY(CAST($1 AS TEXT[])))
  AND (CAST($2 AS TEXT[]) IS NULL OR status = ANY(CAST($2 AS TEXT[])))
  AND (CAST($3 AS FLOAT8) IS NULL
       OR created_at >= now() - CAST($3 AS FLOAT8) * INTERVAL '1 second')
  AND (CAST($4 AS TEXT) IS NULL
       OR CAST(id AS TEXT) LIKE CAST($4 AS TEXT)
       OR CAST(payload AS TEXT) ILIKE CAST($5 AS TEXT))
"""

JOBS_SQL = (
    """
SELECT id, job_type, status, attempts, max_attempts, run_after, last_error, worker_id,
       created_at, started_at, updated_at, finished_at
FROM job_queue
"""
    + _JOB_FILTER
    + """
ORDER BY created_at DESC, id DESC
LIMIT $6
"""
)

JOB_STATUS_COUNTS_SQL = (
    """
SELECT status, COUNT(*) AS job_count
FROM job_queue
"""
    + _JOB_FILTER
    + """
GROUP BY status
ORDER BY status
"""
)

# $6: the statuses an action applies to, $7: limit
JOB_IDS_SQL = (
    """
SELECT id
FROM job_queue
"""
    + _JOB_FILTER
    + """
  AND status = ANY(CAST($6 AS TEXT[]))
ORDER BY created_at DESC, id DESC
LIMIT $7
"""
)

JOB_SQL = """
SELECT id, job_type, CAST(payload AS TEXT) AS payload, status, attempts, max_attempts,
       run_after, unique_key, last_error, CAST(result AS TEXT) AS result, worker_id,
       heartbeat_at, created_at, started_at, updated_at, finished_at
FROM job_queue
WHERE id = $1
"""

JOB_ATTEMPTS_SQL = """
SELECT attempt, worker_id, started_at, finished_at, outcome, error
FROM job_attempts WHERE job_id = $1
ORDER BY started_at, attempt
"""

AGENTS_SQL = """
SELECT a.id, a.name, a.agent_type, a.status, a.last_heartbeat_at,
       CAST(EXTRACT(EPOCH FROM (now() - a.last_heartbeat_at)) AS FLOAT8)
           AS heartbeat_age_seconds,
       r.score, r.reliability, r.quality, r.responsiveness, r.successes, r.failures
FROM agents AS a
LEFT JOIN agent_reputation AS r ON r.agent_id = a.id
ORDER BY (a.last_heartbeat_at IS NULL), a.last_heartbeat_at DESC, a.name
LIMIT 500
"""

AGENT_EVENTS_SQL = """
SELECT e.id, e.occurred_at, e.event_type, e.severity, e.source,
       COALESCE(a.name, '') AS agent_name, CAST(e.payload AS TEXT) AS payload
FROM agent_events AS e
LEFT JOIN agents AS a ON a.id = e.agent_id
WHERE e.expires_at > now()
ORDER BY e.occurred_at DESC, e.id
LIMIT $1
"""

AGENT_EVENT_RATE_SQL = """
SELECT date_trunc('minute', occurred_at) AS minute, severity, COUNT(*) AS events
FROM agent_events
WHERE occurred_at >= now() - CAST($1 AS FLOAT8) * INTERVAL '1 second'
  AND expires_at > now()
GROUP BY date_trunc('minute', occurred_at), severity
ORDER BY minute, severity
"""

LLM_METRICS_SQL = """
SELECT model, bucket_start, requests, cache_hits, cache_misses, prompt_tokens,
       completion_tokens, total_latency_ms, max_latency_ms, errors
FROM llm_cache_metrics
WHERE bucket_start >= now() - CAST($1 AS FLOAT8) * INTERVAL '1 second'
ORDER BY bucket_start, model
LIMIT 20000
"""


def _rows(records: Sequence[asyncpg.Record]) -> list[Row]:
    return [dict(record.items()) for record in records]


def escape_like(text: str) -> str:
    """``text`` with LIKE wildcards escaped (backslash is the default escape on both engines)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class JobFilter:
    """What the operator chose on the jobs page. Empty tuples mean "any"."""

    job_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    window_seconds: float | None = None
    search: str = ""

    def params(self) -> tuple[Any, ...]:
        search = self.search.strip()
        return (
            list(self.job_types) or None,
            list(self.statuses) or None,
            self.window_seconds,
            f"{escape_like(search.lower())}%" if search else None,
            f"%{escape_like(search)}%" if search else None,
        )


async def engine_banner(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval(ENGINE_SQL))


async def ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval(PING_SQL)


async def workers(conn: asyncpg.Connection) -> list[Row]:
    return _rows(await conn.fetch(WORKERS_SQL))


async def failed_jobs_recent(
    conn: asyncpg.Connection, window_seconds: float, limit: int = 20
) -> tuple[int, list[Row]]:
    count = int(await conn.fetchval(FAILED_RECENT_COUNT_SQL, window_seconds))
    rows = _rows(await conn.fetch(FAILED_RECENT_SQL, window_seconds, limit)) if count else []
    return count, rows


async def recent_alerts(
    conn: asyncpg.Connection, window_seconds: float, limit: int = 20
) -> list[Row]:
    return _rows(await conn.fetch(RECENT_ALERTS_SQL, window_seconds, limit))


async def backlog(conn: asyncpg.Connection) -> list[Row]:
    return _rows(await conn.fetch(BACKLOG_SQL))


async def sync_lag(conn: asyncpg.Connection) -> list[Row]:
    return _rows(await conn.fetch(SYNC_LAG_SQL))


async def sync_lag_history(conn: asyncpg.Connection, window_seconds: float) -> list[Row]:
    return _rows(await conn.fetch(SYNC_LAG_HISTORY_SQL, SYNC_LAG_METRIC, window_seconds))


async def ingestion_errors(conn: asyncpg.Connection) -> list[Row]:
    return _rows(await conn.fetch(INGESTION_ERRORS_SQL))


async def ingestion_failures(conn: asyncpg.Connection, limit: int = 50) -> list[Row]:
    return _rows(await conn.fetch(INGESTION_FAILURES_SQL, limit))


async def job_types(conn: asyncpg.Connection) -> list[str]:
    return [str(r["job_type"]) for r in await conn.fetch(JOB_TYPES_SQL)]


async def jobs(conn: asyncpg.Connection, flt: JobFilter, limit: int) -> list[Row]:
    return _rows(await conn.fetch(JOBS_SQL, *flt.params(), limit))


async def job_status_counts(conn: asyncpg.Connection, flt: JobFilter) -> dict[str, int]:
    return {
        str(r["status"]): int(r["job_count"])
        for r in await conn.fetch(JOB_STATUS_COUNTS_SQL, *flt.params())
    }


async def job_ids(
    conn: asyncpg.Connection, flt: JobFilter, statuses: Sequence[str], limit: int
) -> list[UUID]:
    records = await conn.fetch(JOB_IDS_SQL, *flt.params(), list(statuses), limit)
    return [r["id"] for r in records]


async def job(conn: asyncpg.Connection, job_id: UUID) -> Row | None:
    """The job's row, with its attempts (``job_attempts``, oldest first) under ``attempt_rows``."""
    record = await conn.fetchrow(JOB_SQL, job_id)
    if record is None:
        return None
    row = dict(record.items())
    row["attempt_rows"] = _rows(await conn.fetch(JOB_ATTEMPTS_SQL, job_id))
    return row


async def agents(conn: asyncpg.Connection) -> list[Row]:
    return _rows(await conn.fetch(AGENTS_SQL))


async def agent_events(conn: asyncpg.Connection, limit: int = 100) -> list[Row]:
    return _rows(await conn.fetch(AGENT_EVENTS_SQL, limit))


async def agent_event_rate(conn: asyncpg.Connection, window_seconds: float) -> list[Row]:
    return _rows(await conn.fetch(AGENT_EVENT_RATE_SQL, window_seconds))


async def llm_metrics(conn: asyncpg.Connection, window_seconds: float) -> list[Row]:
    return _rows(await conn.fetch(LLM_METRICS_SQL, window_seconds))
