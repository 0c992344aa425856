"""Maintenance the worker runs on a schedule (and the API on demand).

- :func:`refresh_materialized_views`: ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` for each
  monitoring view, in autocommit (never inside a transaction: CockroachDB refuses).
- :func:`prune_expired`: on PostgreSQL, delete rows whose ``expires_at`` passed, in batches,
  from the fixed list of high-churn tables (CockroachDB's row-level TTL does this itself).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from cesar_core.db import Database
from cesar_core.errors import DatabaseError

__all__ = [
    "MATERIALIZED_VIEWS",
    "PRUNE_TABLES",
    "prune_expired",
    "refresh_materialized_views",
]

log = logging.getLogger(__name__)

MATERIALIZED_VIEWS = ("mv_sync_lag", "mv_job_queue_backlog", "mv_ingestion_errors")

# The tables with an expires_at column (migrations/014_ops_hardening.sql, header comment).
PRUNE_TABLES = (
    "agent_events",
    "routing_decisions",
    "attention_shifts",
    "llm_requests",
    "llm_response_cache",
    "llm_collaboration_responses",
    "supabase_sync_runs",
    "ingestion_log",
    "dashboard_snapshots",
    "system_metrics",
    "organism_snapshots",
    "api_audit_log",
)

_REFRESH = {
    view: (
        f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}",
        f"REFRESH MATERIALIZED VIEW {view}",
    )
    for view in MATERIALIZED_VIEWS
}
# PostgreSQL only (CockroachDB prunes by TTL): batches by ctid keep each delete short.
_PRUNE = {
    table: (
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {table} WHERE expires_at < $1 LIMIT $2))"
    )
    for table in PRUNE_TABLES
}


async def refresh_materialized_views(
    db: Database, views: Iterable[str] | None = None
) -> dict[str, float]:
    """Refresh the given (default: all three) views; returns milliseconds per view."""
    chosen = list(views) if views is not None else list(MATERIALIZED_VIEWS)
    unknown = sorted(set(chosen) - set(MATERIALIZED_VIEWS))
    if unknown:
        raise DatabaseError(f"not a monitoring view: {', '.join(unknown)}")
    timings: dict[str, float] = {}
    async with db.connection() as conn:
        for view in chosen:
            concurrent, plain = _REFRESH[view]
            started = time.perf_counter()
            try:
                await conn.execute(concurrent)
            except asyncpg.ObjectNotInPrerequisiteStateError:
                # never populated yet: CONCURRENTLY needs one plain refresh first
                await conn.execute(plain)
            except asyncpg.PostgresError as exc:
                raise DatabaseError(f"refreshing {view} failed: {exc}") from exc
            timings[view] = (time.perf_counter() - started) * 1000
    return timings


async def prune_expired(
    db: Database, *, now: datetime, batch_size: int = 5000, max_batches: int = 100
) -> dict[str, int]:
    """Delete expired rows on PostgreSQL; returns rows deleted per table ({} on CockroachDB)."""
    if db.engine.is_cockroach:
        return {}
    deleted: dict[str, int] = {}
    async with db.connection() as conn:
        for table in PRUNE_TABLES:
            total = 0
            for _ in range(max_batches):
                try:
                    status = await conn.execute(_PRUNE[table], now, batch_size)
                except asyncpg.UndefinedTableError:
                    log.debug("prune: table %s does not exist; skipped", table)
                    break
                except asyncpg.PostgresError as exc:
                    raise DatabaseError(f"pruning {table} failed: {exc}") from exc
                count = int(status.split()[-1])
                total += count
                if count < batch_size:
                    break
            deleted[table] = total
    return deleted
