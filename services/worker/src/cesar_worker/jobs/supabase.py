"""``sync.supabase``: copy the configured tables to a sync target (a second PostgreSQL database).

Targets are the operator's configuration (:mod:`cesar_worker.sync_targets`): the job names
one (``target``; default ``SUPABASE_DB_URL``) and never gives a URL. Each (target, table) has
its own cursor in ``supabase_sync_cursors``; the target must have the same tables. Tables come
from a fixed list (:data:`cesar_core.jobs.builtin.SYNCABLE_TABLES`, parents first).

A run, per table:

1. **Key comparison** when due (``SUPABASE_SYNC_COMPARE_SECONDS`` since the last one, or after a
   unique-key conflict): ``(id, updated_at)`` of both sides are walked in id order, a page at a
   time, the target's page read *before* the source's (a row found in the target was committed
   in the source earlier, so its absence from the later source read means it was deleted).
   Rows missing or older in the target are copied (parents first), rows missing from the
   source are deleted from the target (children first); a copy that collides with a unique key
   still held by a row about to be deleted waits until after the deletes. This is how deletes
   propagate without triggers, and it repairs anything the incremental copy could have missed.
2. **Incremental copy** in keyset order ``(updated_at, id)``, starting
   ``SUPABASE_SYNC_SAFETY_WINDOW_SECONDS`` *behind* the cursor: a transaction that stamped its
   row before the cursor but committed after the previous run read past it (commits out of
   timestamp order) is picked up by this re-read. Only rows missing or older in the target are
   written (``ON CONFLICT (id) DO UPDATE ... WHERE target.updated_at < new.updated_at``), so the
   re-read costs reads, not writes, and a stale copy never overwrites a newer one. The cursor
   only moves forward, after the target committed.

Every run is logged in ``supabase_sync_runs``; the health of the link lands in ``sync_status``
(``supabase`` for the default target, ``supabase:<name>`` for the others): ``last_success_at``
is the start of the last run that left the target complete, and ``lag_seconds`` the time since
then, which is what ``mv_sync_lag``, the dashboard and the alert rules show. Errors name the
target and its host, never its URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.db import connect
from cesar_core.errors import CesarError, ConfigurationError, DatabaseUnavailable
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import SYNCABLE_TABLES, SupabaseSyncPayload
from cesar_core.jobs.registry import JobContext, JobType, PermanentJobError

from cesar_worker.config import WorkerConfig
from cesar_worker.sync_targets import SyncTarget, resolve_target

__all__ = ["JOB", "SYSTEM_NAME", "format_cursor"]

log = logging.getLogger(__name__)
SYSTEM_NAME = "supabase"
_NIL = UUID(int=0)

COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = $1
ORDER BY ordinal_position
"""
ENSURE_STATE = """
INSERT INTO supabase_sync_state (table_name, cursor_column, status, created_at, updated_at)
VALUES ($1, 'updated_at', 'running', $2, $2)
ON CONFLICT (table_name) DO UPDATE SET status = 'running', updated_at = EXCLUDED.updated_at
"""
ENSURE_CURSOR = """
INSERT INTO supabase_sync_cursors (target_name, table_name, status, created_at, updated_at)
VALUES ($1, $2, 'running', $3, $3)
ON CONFLICT (target_name, table_name) DO UPDATE
SET status = 'running', updated_at = EXCLUDED.updated_at
"""
SELECT_CURSOR = """
SELECT cursor_value, compared_at FROM supabase_sync_cursors
WHERE target_name = $1 AND table_name = $2
"""
# never backwards: two runs for one target may overlap (a manual job next to the schedule)
ADVANCE_CURSOR = """
UPDATE supabase_sync_cursors SET cursor_value = $3, updated_at = $4
WHERE target_name = $1 AND table_name = $2 AND (cursor_value IS NULL OR cursor_value < $3)
"""
MARK_COMPARED = """
UPDATE supabase_sync_cursors SET compared_at = $3, updated_at = $3
WHERE target_name = $1 AND table_name = $2
"""
COMPARE_SOON = """
UPDATE supabase_sync_cursors SET compared_at = NULL WHERE target_name = $1 AND table_name = $2
"""
FINISH_CURSOR = """
UPDATE supabase_sync_cursors
SET status = $3, last_error = $4, rows_synced = rows_synced + $5,
    rows_deleted = rows_deleted + $6, last_synced_at = COALESCE($7, last_synced_at),
    updated_at = $8
WHERE target_name = $1 AND table_name = $2
"""
FINISH_STATE = """
UPDATE supabase_sync_state
SET status = $2, last_error = $3, rows_synced = rows_synced + $4,
    last_synced_at = COALESCE($5, last_synced_at), updated_at = $6
WHERE table_name = $1
"""
INSERT_RUN = """
INSERT INTO supabase_sync_runs (table_name, target_name, job_id, status, cursor_from, started_at,
                                created_at)
VALUES ($1, $2, $3, 'running', $4, $5, $5)
RETURNING id
"""
FINISH_RUN = """
UPDATE supabase_sync_runs
SET status = $2, cursor_to = $3, rows_read = $4, rows_written = $5, error = $6, finished_at = $7,
    updated_at = $7
WHERE id = $1
"""
# lag_seconds: 0 after a complete run; otherwise the time since the last complete one (what
# mv_sync_lag computes too); before any success, the larger of the oldest uncopied row's age
# and the time since the first attempt (so a target that never works still shows growing lag)
UPSERT_STATUS = """
INSERT INTO sync_status (system_name, last_sync_at, last_success_at, lag_seconds, records_synced,
                         status, last_error, details, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, CAST($8 AS JSONB), $2, $2)
ON CONFLICT (system_name) DO UPDATE SET
    last_sync_at = EXCLUDED.last_sync_at,
    last_success_at = COALESCE(EXCLUDED.last_success_at, sync_status.last_success_at),
    lag_seconds = CASE
        WHEN EXCLUDED.last_success_at IS NOT NULL THEN EXCLUDED.lag_seconds
        WHEN sync_status.last_success_at IS NOT NULL THEN CAST(
            EXTRACT(EPOCH FROM (EXCLUDED.last_sync_at - sync_status.last_success_at)) AS FLOAT8)
        ELSE GREATEST(EXCLUDED.lag_seconds, CAST(
            EXTRACT(EPOCH FROM (EXCLUDED.last_sync_at - sync_status.created_at)) AS FLOAT8))
    END,
    records_synced = sync_status.records_synced + EXCLUDED.records_synced,
    status = EXCLUDED.status, last_error = EXCLUDED.last_error, details = EXCLUDED.details,
    updated_at = EXCLUDED.updated_at
"""


def _quote(identifier: str) -> str:
    """Quote a column name read from the catalog (never from input)."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Statements:
    """The SQL for one table; the table name comes only from the fixed list."""

    columns: list[str]
    select_after: str  # full rows in keyset order after ($1 ts, $2 id), $3 rows
    select_ids: str  # full rows whose id = ANY($1)
    keys_after: str  # (id, updated_at) in id order after $1, $2 rows
    keys_in: str  # (id, updated_at) whose id = ANY($1)
    upsert: str
    delete: str

    @classmethod
    def build(cls, table: str, columns: list[str]) -> _Statements:
        if table not in SYNCABLE_TABLES:
            raise PermanentJobError(f"table {table!r} is not syncable")
        cols = ", ".join(_quote(c) for c in columns)
        params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        updates = ", ".join(f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in columns if c != "id")
        return cls(
            columns=columns,
            select_after=(
                f"SELECT {cols} FROM {table} "
                "WHERE $1::TIMESTAMPTZ IS NULL OR (updated_at, id) > ($1::TIMESTAMPTZ, $2::UUID) "
                "ORDER BY updated_at, id LIMIT $3"
            ),
            select_ids=f"SELECT {cols} FROM {table} WHERE id = ANY($1::UUID[])",
            keys_after=(
                f"SELECT id, updated_at FROM {table} "
                "WHERE $1::UUID IS NULL OR id > $1::UUID ORDER BY id LIMIT $2"
            ),
            keys_in=f"SELECT id, updated_at FROM {table} WHERE id = ANY($1::UUID[])",
            upsert=(
                f"INSERT INTO {table} ({cols}) VALUES ({params}) ON CONFLICT (id) DO UPDATE "
                f"SET {updates} WHERE {table}.updated_at < EXCLUDED.updated_at"
            ),
            delete=f"DELETE FROM {table} WHERE id = ANY($1::UUID[])",
        )


def format_cursor(ts: datetime, row_id: UUID) -> str:
    """``<UTC timestamp, fixed width>|<id>``: text order is keyset order (guarded advances)."""
    return f"{ts.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')}+00:00|{row_id}"


def _parse_cursor(value: str | None) -> tuple[datetime, UUID] | None:
    if not value:
        return None
    ts, _, row_id = value.partition("|")
    return datetime.fromisoformat(ts), UUID(row_id)


@dataclass
class _TableResult:
    copied: int = 0
    deleted: int = 0
    read: int = 0
    remaining: bool = False
    oldest_unsynced: datetime | None = None
    cursor: str | None = None
    doomed: list[UUID] = field(default_factory=list)
    # rows whose copy hit a unique key the target still gives to a row about to be deleted
    deferred: list[UUID] = field(default_factory=list)


class _TableSync:
    """One (target, table) pair within a run."""

    def __init__(
        self,
        ctx: JobContext,
        target: SyncTarget,
        conn: asyncpg.Connection,
        table: str,
        sql: _Statements,
        payload: SupabaseSyncPayload,
    ) -> None:
        self.ctx = ctx
        self.target = target
        self.conn = conn
        self.table = table
        self.sql = sql
        self.payload = payload
        self.result = _TableResult()

    async def _write_missing(self, rows: Sequence[asyncpg.Record]) -> None:
        """Upsert the rows the target lacks or holds in an older version."""
        if not rows:
            return
        have = {
            r["id"]: r["updated_at"]
            for r in await self.conn.fetch(self.sql.keys_in, [r["id"] for r in rows])
        }
        wanted = [
            tuple(r[c] for c in self.sql.columns)
            for r in rows
            if r["id"] not in have or have[r["id"]] < r["updated_at"]
        ]
        if wanted:
            async with self.conn.transaction():
                await self.conn.executemany(self.sql.upsert, wanted)
        self.result.copied += len(wanted)

    async def compare(self) -> None:
        """Walk both sides' keys in id order; copy what the target lacks, note what it must lose.

        The target's page is read first, then the source's: see the module docstring.
        """
        size = self.payload.batch_size
        after: UUID | None = None
        while True:
            theirs = await self.conn.fetch(self.sql.keys_after, after, size)
            async with self.ctx.db.connection() as src:
                ours = await src.fetch(self.sql.keys_after, after, size)
            # compare up to the smaller last id of the two full pages; the rest comes next time
            limits = [page[-1]["id"] for page in (theirs, ours) if len(page) == size]
            upper = min(limits) if limits else None
            ours_map = {r["id"]: r["updated_at"] for r in ours if upper is None or r["id"] <= upper}
            theirs_map = {
                r["id"]: r["updated_at"] for r in theirs if upper is None or r["id"] <= upper
            }
            self.result.doomed.extend(sorted(set(theirs_map) - set(ours_map)))
            stale = [i for i, ts in ours_map.items() if i not in theirs_map or theirs_map[i] < ts]
            if stale:
                async with self.ctx.db.connection() as src:
                    rows = await src.fetch(self.sql.select_ids, stale)
                self.result.read += len(rows)
                try:
                    await self._write_missing(rows)
                except asyncpg.UniqueViolationError:
                    # e.g. an agent deleted and re-created under the same name: copy it after
                    # the deletes (the batch rolled back as a whole)
                    self.result.deferred.extend(stale)
            if upper is None:
                return
            after = upper

    async def delete_doomed(self) -> None:
        doomed = self.result.doomed
        for start in range(0, len(doomed), self.payload.batch_size):
            chunk = doomed[start : start + self.payload.batch_size]
            async with self.conn.transaction():
                status = await self.conn.execute(self.sql.delete, chunk)
            self.result.deleted += int(status.split()[-1])
        doomed.clear()

    async def write_deferred(self) -> None:
        """The copies the deletes made room for (a conflict now is a real one)."""
        deferred = self.result.deferred
        for start in range(0, len(deferred), self.payload.batch_size):
            chunk = deferred[start : start + self.payload.batch_size]
            async with self.ctx.db.connection() as src:
                rows = await src.fetch(self.sql.select_ids, chunk)
            await self._write_missing(rows)
        deferred.clear()

    async def _advance(self, cursor: str) -> None:
        """Only after the target committed the rows up to ``cursor``."""
        name, table, now = self.target.name, self.table, self.ctx.clock()
        await self.ctx.db.transaction(lambda c: c.execute(ADVANCE_CURSOR, name, table, cursor, now))
        self.result.cursor = cursor

    async def incremental(self, cursor_value: str | None, window: timedelta) -> None:
        """Keyset copy from ``window`` behind the cursor; batches behind it are not counted."""
        config_cursor = _parse_cursor(cursor_value)
        position: tuple[datetime, UUID] | None = None
        if config_cursor is not None:
            position = (config_cursor[0] - window, _NIL)
        self.result.cursor = cursor_value
        counted = 0
        while True:
            after_ts, after_id = position if position is not None else (None, None)
            async with self.ctx.db.connection() as src:
                rows = await src.fetch(
                    self.sql.select_after, after_ts, after_id, self.payload.batch_size
                )
            if not rows:
                return
            self.result.read += len(rows)
            await self._write_missing(rows)
            last = rows[-1]
            position = (last["updated_at"], last["id"])
            if config_cursor is None or position > config_cursor:
                counted += 1
                await self._advance(format_cursor(*position))
            if len(rows) < self.payload.batch_size:
                return
            if counted >= self.payload.max_batches:
                self.result.remaining = True
                self.result.oldest_unsynced = last["updated_at"]
                return


async def _columns(conn: asyncpg.Connection, table: str) -> list[str]:
    return [r["column_name"] for r in await conn.fetch(COLUMNS, table)]


def _describe(target: SyncTarget, table: str, exc: BaseException) -> str:
    return target.scrub(f"{table}: {type(exc).__name__}: {exc}")[:2000]


async def _connect(target: SyncTarget) -> asyncpg.Connection:
    try:
        return await connect(target.url.get_secret_value())
    except DatabaseUnavailable as exc:
        # cesar_core's message quotes the URL; ours names the target and host only
        reason = exc.__cause__ or exc
        raise DatabaseUnavailable(
            target.scrub(f"cannot connect to sync target {target.label}: {reason}")[:2000]
        ) from None


async def sync(ctx: JobContext, payload: SupabaseSyncPayload) -> dict[str, Any]:
    config = ctx.settings
    assert isinstance(config, WorkerConfig)
    try:
        target = resolve_target(config, payload.target)
    except ConfigurationError as exc:  # unknown, misconfigured or insecure: never connect
        raise PermanentJobError(str(exc)) from exc
    tables = payload.tables or config.sync_tables()
    started = ctx.clock()
    try:
        conn = await _connect(target)
    except DatabaseUnavailable as exc:
        await _status(ctx, target, started, {}, str(exc), 0.0)
        raise
    results: dict[str, _TableResult] = {}
    try:
        error, permanent = await _sync_tables(ctx, config, target, conn, tables, payload, results)
    finally:
        await conn.close()
    lagging = [r.oldest_unsynced for r in results.values() if r.oldest_unsynced is not None]
    lag = (ctx.clock() - min(lagging)).total_seconds() if lagging else 0.0
    await _status(ctx, target, started, results, error, lag)
    if error:
        message = f"sync.supabase to {target.label} failed at {error}"
        raise PermanentJobError(message) if permanent else CesarError(message)
    return {
        "target": target.name,
        "tables": {t: r.copied for t, r in results.items()},
        "deleted": {t: r.deleted for t, r in results.items()},
        "rows": sum(r.copied for r in results.values()),
        "lag_seconds": lag,
    }


async def _sync_tables(
    ctx: JobContext,
    config: WorkerConfig,
    target: SyncTarget,
    conn: asyncpg.Connection,
    tables: list[str],
    payload: SupabaseSyncPayload,
    results: dict[str, _TableResult],
) -> tuple[str | None, bool]:
    """Compare (when due) and copy every table; the first error stops the run.

    Returns the error (``None`` when all went well) and whether retrying cannot help.
    """
    now = ctx.clock()
    window = timedelta(seconds=config.supabase_sync_safety_window_seconds)
    runs: dict[str, UUID] = {}
    cursors: dict[str, str | None] = {}
    syncs: dict[str, _TableSync] = {}
    due: list[str] = []
    current = ""
    try:
        for table in tables:
            current = table
            cursor_value, compared_at, run_id = await ctx.db.transaction(
                lambda c, t=table: _begin(c, ctx, target, t, now)  # type: ignore[misc]
            )
            runs[table], cursors[table] = run_id, cursor_value
            async with ctx.db.connection() as src:
                source_columns = await _columns(src, table)
            target_columns = set(await _columns(conn, table))
            if not target_columns:
                raise PermanentJobError(f"the target has no table {table}")
            columns = [c for c in source_columns if c in target_columns]
            syncs[table] = _TableSync(
                ctx, target, conn, table, _Statements.build(table, columns), payload
            )
            results[table] = syncs[table].result
            if compared_at is None or (now - compared_at).total_seconds() >= (
                config.supabase_sync_compare_seconds
            ):
                due.append(table)
        # key comparison: copies parents first, deletes children first, then the copies
        # that had to wait for a delete
        for table in due:
            current = table
            await syncs[table].compare()
        for table in reversed(due):
            current = table
            await syncs[table].delete_doomed()
        for table in due:
            current = table
            await syncs[table].write_deferred()
            await ctx.db.transaction(
                lambda c, t=table: c.execute(  # type: ignore[misc]
                    MARK_COMPARED, target.name, t, ctx.clock()
                )
            )
        for table in tables:
            current = table
            await syncs[table].incremental(cursors[table], window)
    except (asyncpg.PostgresError, OSError, CesarError, PermanentJobError) as exc:
        error = _describe(target, current, exc)
        if isinstance(exc, asyncpg.UniqueViolationError):
            # a row deleted and re-created under the same unique key: the next run compares
            # first, which deletes the old row before copying the new one
            await ctx.db.transaction(lambda c: c.execute(COMPARE_SOON, target.name, current))
        for table, run_id in runs.items():
            # every table's run failed: the others were stopped before they finished
            why = error if table == current else f"not finished: the run stopped at {current}"
            await ctx.db.transaction(
                lambda c, t=table, r=run_id, w=why: _finish(  # type: ignore[misc]
                    c, ctx, target, t, r, results.get(t), w, True
                )
            )
        return error, isinstance(exc, PermanentJobError)
    for table, run_id in runs.items():
        await ctx.db.transaction(
            lambda c, t=table, r=run_id: _finish(  # type: ignore[misc]
                c, ctx, target, t, r, results[t], None, False
            )
        )
    return None, False


async def _begin(
    conn: asyncpg.Connection, ctx: JobContext, target: SyncTarget, table: str, now: datetime
) -> tuple[str | None, datetime | None, UUID]:
    await conn.execute(ENSURE_STATE, table, now)
    await conn.execute(ENSURE_CURSOR, target.name, table, now)
    row = await conn.fetchrow(SELECT_CURSOR, target.name, table)
    assert row is not None
    run_id = await conn.fetchval(INSERT_RUN, table, target.name, ctx.job.id, row[0], now)
    return row["cursor_value"], row["compared_at"], run_id


async def _finish(
    conn: asyncpg.Connection,
    ctx: JobContext,
    target: SyncTarget,
    table: str,
    run_id: UUID,
    result: _TableResult | None,
    error: str | None,
    failed: bool,
) -> None:
    now = ctx.clock()
    result = result or _TableResult()
    status = "failed" if failed else "succeeded"
    synced_at = None if failed else now
    await conn.execute(
        FINISH_RUN, run_id, status, result.cursor, result.read, result.copied, error, now
    )
    await conn.execute(
        FINISH_CURSOR,
        target.name,
        table,
        "error" if failed else "ok",
        error,
        result.copied,
        result.deleted,
        synced_at,
        now,
    )
    await conn.execute(
        FINISH_STATE, table, "error" if failed else "ok", error, result.copied, synced_at, now
    )


async def _status(
    ctx: JobContext,
    target: SyncTarget,
    started: datetime,
    results: dict[str, _TableResult],
    error: str | None,
    lag: float,
) -> None:
    total = sum(r.copied for r in results.values())
    remaining = any(r.remaining for r in results.values())
    status = "error" if error else ("lagging" if remaining else "ok")
    complete = error is None and not remaining
    details = {
        "target": target.name,
        "host": target.host,
        "tables": {t: r.copied for t, r in results.items()},
        "deleted": {t: r.deleted for t, r in results.items()},
        "job_id": str(ctx.job.id),
    }
    now = ctx.clock()
    await ctx.db.transaction(
        lambda conn: conn.execute(
            UPSERT_STATUS,
            target.system_name,
            now,
            started if complete else None,
            0.0 if complete else lag,
            total,
            status,
            error,
            json.dumps(details),
        )
    )
    log.info("sync.supabase: %s", details, extra={"started_at": started.isoformat()})


JOB = JobType(builtin.SUPABASE_SYNC, sync)
