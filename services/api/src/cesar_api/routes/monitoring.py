"""Sync status, the monitoring views (and their refresh), and LLM cache metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
from cesar_core.jobs.maintenance import refresh_materialized_views
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from cesar_api.database import read
from cesar_api.deps import DbDep, ReadKey, WriteKey
from cesar_api.errors import InvalidInput, NotFound, translate_db_error
from cesar_api.repositories import llm_metrics, monitoring, sync
from cesar_api.schemas import Timestamp

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class SyncStatusOut(BaseModel):
    system_name: str
    last_sync_at: datetime | None
    last_success_at: datetime | None
    lag_seconds: float | None
    records_synced: int
    status: str
    last_error: str | None
    details: dict[str, object]
    created_at: datetime
    updated_at: datetime


class SyncStatusList(BaseModel):
    items: list[SyncStatusOut]


class SyncLagRow(BaseModel):
    system_name: str
    status: str
    last_sync_at: datetime | None
    last_success_at: datetime | None
    lag_seconds: float | None
    records_synced: int
    last_error: str | None
    refreshed_at: datetime


class BacklogRow(BaseModel):
    job_type: str
    status: str
    job_count: int
    oldest_created_at: datetime | None
    oldest_age_seconds: float | None
    next_run_after: datetime | None
    last_updated_at: datetime | None
    refreshed_at: datetime


class IngestionErrorRow(BaseModel):
    source: str
    runs: int
    failed_runs: int
    partial_runs: int
    rows_failed: int
    last_failure_at: datetime | None
    last_run_at: datetime | None
    refreshed_at: datetime


class SyncLagView(BaseModel):
    items: list[SyncLagRow]


class BacklogView(BaseModel):
    items: list[BacklogRow]


class IngestionErrorsView(BaseModel):
    items: list[IngestionErrorRow]


class RefreshedView(BaseModel):
    view: str
    ms: float


class RefreshResult(BaseModel):
    views: list[RefreshedView]


class CacheBucket(BaseModel):
    model: str
    bucket_start: datetime
    requests: int
    cache_hits: int
    cache_misses: int
    prompt_tokens: int
    completion_tokens: int
    total_latency_ms: float
    max_latency_ms: float
    errors: int


class CacheTotals(BaseModel):
    model: str
    requests: int
    cache_hits: int
    cache_misses: int
    prompt_tokens: int
    completion_tokens: int
    total_latency_ms: float
    max_latency_ms: float
    errors: int
    hit_rate: float
    avg_latency_ms: float


class CacheMetrics(BaseModel):
    totals: list[CacheTotals]
    buckets: list[CacheBucket]


@router.get("/sync/status", response_model=SyncStatusList, tags=["sync"])
async def list_sync_status(db: DbDep, _key: ReadKey) -> SyncStatusList:
    """Every external system's last sync, lag and error."""
    rows = await read(db, sync.list_status)
    return SyncStatusList(items=[SyncStatusOut.model_validate(r) for r in rows])


@router.get("/sync/status/{system_name}", response_model=SyncStatusOut, tags=["sync"])
async def get_sync_status(
    system_name: Annotated[str, Path(min_length=1, max_length=200)], db: DbDep, _key: ReadKey
) -> SyncStatusOut:
    row = await read(db, lambda conn: sync.get_status(conn, system_name))
    if not row:
        raise NotFound(f"no sync status for {system_name!r}")
    return SyncStatusOut.model_validate(row)


@router.get("/monitoring/sync-lag", response_model=SyncLagView, tags=["monitoring"])
async def sync_lag(db: DbDep, _key: ReadKey) -> SyncLagView:
    """``mv_sync_lag`` as of its last refresh."""
    return SyncLagView(
        items=[SyncLagRow.model_validate(r) for r in await read(db, monitoring.sync_lag)]
    )


@router.get("/monitoring/job-backlog", response_model=BacklogView, tags=["monitoring"])
async def job_backlog(db: DbDep, _key: ReadKey) -> BacklogView:
    """``mv_job_queue_backlog`` as of its last refresh."""
    rows = await read(db, monitoring.job_backlog)
    return BacklogView(items=[BacklogRow.model_validate(r) for r in rows])


@router.get("/monitoring/ingestion-errors", response_model=IngestionErrorsView, tags=["monitoring"])
async def ingestion_errors(db: DbDep, _key: ReadKey) -> IngestionErrorsView:
    """``mv_ingestion_errors`` (last 24 hours) as of its last refresh."""
    rows = await read(db, monitoring.ingestion_errors)
    return IngestionErrorsView(items=[IngestionErrorRow.model_validate(r) for r in rows])


@router.post("/monitoring/refresh", response_model=RefreshResult, tags=["monitoring"])
async def refresh_views(db: DbDep, _key: WriteKey) -> RefreshResult:
    """Refresh the three materialized views now (autocommit, CONCURRENTLY)."""
    try:
        timings = await refresh_materialized_views(db)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise translate_db_error(exc) from exc
    return RefreshResult(
        views=[RefreshedView(view=view, ms=round(ms, 3)) for view, ms in timings.items()]
    )


@router.get("/llm/cache-metrics", response_model=CacheMetrics, tags=["llm"])
async def cache_metrics(
    db: DbDep,
    _key: ReadKey,
    model: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[Timestamp | None, Query(description="bucket_start >= since")] = None,
    until: Annotated[Timestamp | None, Query(description="bucket_start < until")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="buckets returned")] = 168,
) -> CacheMetrics:
    """Hourly cache counters per model, newest first, and totals with hit rate."""
    if since is not None and until is not None and until <= since:
        raise InvalidInput("query.until: must be after since")
    buckets = await read(
        db,
        lambda conn: llm_metrics.list_buckets(
            conn, model=model, since=since, until=until, limit=limit
        ),
    )
    totals = await read(
        db, lambda conn: llm_metrics.totals(conn, model=model, since=since, until=until)
    )
    out = []
    for row in totals:
        requests = row["requests"]
        lookups = row["cache_hits"] + row["cache_misses"]
        out.append(
            CacheTotals(
                **row,
                hit_rate=round(row["cache_hits"] / lookups, 4) if lookups else 0.0,
                avg_latency_ms=round(row["total_latency_ms"] / requests, 3) if requests else 0.0,
            )
        )
    return CacheMetrics(totals=out, buckets=[CacheBucket.model_validate(b) for b in buckets])
