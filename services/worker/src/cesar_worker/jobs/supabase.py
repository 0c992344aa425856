"""``sync.supabase``: copy changed rows of the configured tables to a second PostgreSQL database.

The target is ``SUPABASE_DB_URL`` (or the payload's ``target_url``) and must have the same
tables. For each table (a fixed list: :data:`cesar_core.jobs.builtin.SYNCABLE_TABLES`, parents
first) rows are read in keyset order ``(updated_at, id)`` after the table's cursor in
``supabase_sync_state``, upserted into the target ``ON CONFLICT (id) DO UPDATE``, and the cursor
advances only after the target committed. Every run is logged in ``supabase_sync_runs``; the
health of the link (lag, records, last error) lands in ``sync_status`` under ``supabase``.
Idempotent: a repeated batch upserts the same rows again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.db import connect
from cesar_core.errors import CesarError, DatabaseUnavailable
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import SYNCABLE_TABLES, SupabaseSyncPayload
from cesar_core.jobs.registry import JobContext, JobType, PermanentJobError

from cesar_worker.config import WorkerConfig

__all__ = ["JOB", "SYSTEM_NAME"]

log = logging.getLogger(__name__)
SYSTEM_NAME = "supabase"

COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = $1
ORDER BY ordinal_position
"""
SELECT_STATE = "SELECT cursor_value FROM supabase_sync_state WHERE table_name = $1"
ENSURE_STATE = """
INSERT INTO supabase_sync_state (table_name, cursor_column, status, created_at, updated_at)
VALUES ($1, 'updated_at', 'running', $2, $2)
ON CONFLICT (table_name) DO UPDATE SET status = 'running', updated_at = EXCLUDED.updated_at
"""
ADVANCE_STATE = """
UPDATE supabase_sync_state
SET cursor_value = $2, rows_synced = rows_synced + $3, last_synced_at = $4, updated_at = $4
WHERE table_name = $1
"""
FINISH_STATE = """
UPDATE supabase_sync_state SET status = $2, last_error = $3, updated_at = $4
WHERE table_name = $1
"""
INSERT_RUN = """
INSERT INTO supabase_sync_runs (table_name, job_id, status, cursor_from, started_at, created_at)
VALUES ($1, $2, 'running', $3, $4, $4)
RETURNING id
"""
FINISH_RUN = """
UPDATE supabase_sync_runs
SET status = $2, cursor_to = $3, rows_read = $4, rows_written = $5, error = $6, finished_at = $7
WHERE id = $1
"""
UPSERT_STATUS = """
INSERT INTO sync_status (system_name, last_sync_at, last_success_at, lag_seconds, records_synced,
                         status, last_error, details, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, CAST($8 AS JSONB), $2, $2)
ON CONFLICT (system_name) DO UPDATE SET
    last_sync_at = EXCLUDED.last_sync_at,
    last_success_at = COALESCE(EXCLUDED.last_success_at, sync_status.last_success_at),
    lag_seconds = EXCLUDED.lag_seconds,
    records_synced = sync_status.records_synced + EXCLUDED.records_synced,
    status = EXCLUDED.status, last_error = EXCLUDED.last_error, details = EXCLUDED.details,
    updated_at = EXCLUDED.updated_at
"""


def _quote(identifier: str) -> str:
    """Quote a column name read from the catalog (never from input)."""
    return '"' + identifier.replace('"', '""') + '"'


def _statements(table: str, columns: list[str]) -> tuple[str, str]:
    if table not in SYNCABLE_TABLES:  # the fixed list is the only source of table names
        raise PermanentJobError(f"table {table!r} is not syncable")
    cols = ", ".join(_quote(c) for c in columns)
    select = (
        f"SELECT {cols} FROM {table} "
        "WHERE $1::TIMESTAMPTZ IS NULL OR (updated_at, id) > ($1::TIMESTAMPTZ, $2::UUID) "
        "ORDER BY updated_at, id LIMIT $3"
    )
    params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in columns if c != "id")
    upsert = (
        f"INSERT INTO {table} ({cols}) VALUES ({params}) ON CONFLICT (id) DO UPDATE SET {updates}"
    )
    return select, upsert


def _cursor(value: str | None) -> tuple[datetime | None, UUID | None]:
    if not value:
        return None, None
    ts, _, row_id = value.partition("|")
    return datetime.fromisoformat(ts), UUID(row_id)


async def _columns(conn: asyncpg.Connection, table: str) -> list[str]:
    return [r["column_name"] for r in await conn.fetch(COLUMNS, table)]


async def _sync_table(
    ctx: JobContext,
    target: asyncpg.Connection,
    table: str,
    payload: SupabaseSyncPayload,
) -> dict[str, Any]:
    now = ctx.clock()

    async def begin(conn: asyncpg.Connection) -> tuple[str | None, UUID]:
        await conn.execute(ENSURE_STATE, table, now)
        cursor = await conn.fetchval(SELECT_STATE, table)
        run_id = await conn.fetchval(INSERT_RUN, table, ctx.job.id, cursor, now)
        return cursor, run_id

    cursor_value, run_id = await ctx.db.transaction(begin)
    async with ctx.db.connection() as conn:
        source_columns = await _columns(conn, table)
    target_columns = set(await _columns(target, table))
    if not target_columns:
        raise PermanentJobError(f"the target database has no table {table}")
    columns = [c for c in source_columns if c in target_columns]
    select, upsert = _statements(table, columns)
    id_at, ts_at = columns.index("id"), columns.index("updated_at")
    read = written = 0
    remaining = False
    oldest_unsynced: datetime | None = None
    try:
        for batch_no in range(payload.max_batches):
            after_ts, after_id = _cursor(cursor_value)
            async with ctx.db.connection() as conn:
                rows = await conn.fetch(select, after_ts, after_id, payload.batch_size)
            if not rows:
                break
            values = [tuple(r[c] for c in columns) for r in rows]
            async with target.transaction():
                await target.executemany(upsert, values)
            last = values[-1]
            cursor_value = f"{last[ts_at].isoformat()}|{last[id_at]}"
            read += len(rows)
            written += len(rows)
            await ctx.db.transaction(_advance(table, cursor_value, len(rows), ctx.clock()))
            if len(rows) < payload.batch_size:
                break
            if batch_no == payload.max_batches - 1:
                remaining = True
                oldest_unsynced = last[ts_at]
    except (asyncpg.PostgresError, OSError, CesarError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        await ctx.db.transaction(
            lambda conn: _finish(
                conn, table, run_id, "failed", cursor_value, read, written, error, ctx
            )
        )
        raise
    await ctx.db.transaction(
        lambda conn: _finish(
            conn, table, run_id, "succeeded", cursor_value, read, written, None, ctx
        )
    )
    return {"rows": written, "remaining": remaining, "oldest_unsynced": oldest_unsynced}


def _advance(
    table: str, cursor_value: str, count: int, now: datetime
) -> Callable[[asyncpg.Connection], Awaitable[str]]:
    async def work(conn: asyncpg.Connection) -> str:
        return str(await conn.execute(ADVANCE_STATE, table, cursor_value, count, now))

    return work


async def _finish(
    conn: asyncpg.Connection,
    table: str,
    run_id: UUID,
    status: str,
    cursor_value: str | None,
    read: int,
    written: int,
    error: str | None,
    ctx: JobContext,
) -> None:
    now = ctx.clock()
    await conn.execute(FINISH_RUN, run_id, status, cursor_value, read, written, error, now)
    await conn.execute(FINISH_STATE, table, "ok" if error is None else "error", error, now)


async def sync(ctx: JobContext, payload: SupabaseSyncPayload) -> dict[str, Any]:
    config = ctx.settings
    assert isinstance(config, WorkerConfig)
    url = payload.target_url or (
        config.supabase_db_url.get_secret_value() if config.supabase_db_url else None
    )
    if not url:
        raise PermanentJobError("no target: set SUPABASE_DB_URL or give target_url")
    tables = payload.tables or config.sync_tables()
    started = ctx.clock()
    results: dict[str, Any] = {}
    error: str | None = None
    try:
        target = await connect(url)
    except DatabaseUnavailable as exc:
        await _status(ctx, started, {}, str(exc), None)
        raise
    try:
        for table in tables:
            try:
                results[table] = await _sync_table(ctx, target, table, payload)
            except (asyncpg.PostgresError, OSError, CesarError) as exc:
                error = f"{table}: {type(exc).__name__}: {exc}"[:2000]
                break
    finally:
        await target.close()
    lagging = [r["oldest_unsynced"] for r in results.values() if r["remaining"]]
    lag = (ctx.clock() - min(lagging)).total_seconds() if lagging else 0.0
    await _status(ctx, started, results, error, lag)
    if error:
        raise CesarError(f"sync.supabase failed at {error}")
    total = sum(r["rows"] for r in results.values())
    return {"tables": {t: r["rows"] for t, r in results.items()}, "rows": total, "lag_seconds": lag}


async def _status(
    ctx: JobContext,
    started: datetime,
    results: dict[str, Any],
    error: str | None,
    lag: float | None,
) -> None:
    total = sum(r["rows"] for r in results.values())
    status = "error" if error else ("lagging" if lag else "ok")
    details = {"tables": {t: r["rows"] for t, r in results.items()}, "job_id": str(ctx.job.id)}
    now = ctx.clock()
    await ctx.db.transaction(
        lambda conn: conn.execute(
            UPSERT_STATUS,
            SYSTEM_NAME,
            now,
            None if error else now,
            lag,
            total,
            status,
            error,
            json.dumps(details),
        )
    )
    log.info("sync.supabase: %s", details, extra={"started_at": started.isoformat()})


JOB = JobType(builtin.SUPABASE_SYNC, sync)
