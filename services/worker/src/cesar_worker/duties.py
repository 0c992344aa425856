"""Cron duties besides the reconciler: views, pruning, failure alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from cesar_core.db import Database
from cesar_core.jobs import repository as repo
from cesar_core.jobs.maintenance import prune_expired, refresh_materialized_views
from cesar_core.redis import RedisClient
from redis.exceptions import RedisError

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig

__all__ = ["FailureAlerts", "prune", "refresh_views"]

log = logging.getLogger(__name__)

# One sample per system and refresh, so the dashboard can chart lag over time.
RECORD_SYNC_LAG = """
INSERT INTO system_metrics (component, metric_name, metric_value, unit)
SELECT system_name, 'sync_lag_seconds', lag_seconds, 's'
FROM mv_sync_lag WHERE lag_seconds IS NOT NULL
RETURNING component, metric_value
"""
INGESTION_ERRORS = "SELECT source, rows_failed FROM mv_ingestion_errors"


async def refresh_views(db: Database) -> dict[str, float]:
    """Refresh the views, then publish what the alert rules watch: sync lag per system (as a
    gauge and a ``system_metrics`` sample) and failed ingestion rows per source."""
    timings = await refresh_materialized_views(db)
    lags = await db.transaction(lambda conn: conn.fetch(RECORD_SYNC_LAG))
    async with db.connection() as conn:
        errors = await conn.fetch(INGESTION_ERRORS)
    metrics.SYNC_LAG.clear()
    for row in lags:
        metrics.SYNC_LAG.labels(row["component"]).set(row["metric_value"])
    metrics.INGESTION_ERRORS.clear()
    for row in errors:
        metrics.INGESTION_ERRORS.labels(row["source"]).set(row["rows_failed"])
    log.info("refreshed materialized views", extra={"timings_ms": timings})
    return timings


async def prune(
    db: Database, now: datetime, *, retention_days: float, batch_size: int = 5000
) -> dict[str, int]:
    """Expired rows of the high-churn tables, and finished jobs (with their attempts) older
    than ``JOB_QUEUE_RETENTION_DAYS``. PostgreSQL only: CockroachDB's row-level TTL does both."""
    deleted = await prune_expired(db, now=now)
    if not db.engine.is_cockroach:
        cutoff = now - timedelta(days=retention_days)
        total = 0
        while True:
            count = await db.transaction(
                lambda conn: repo.prune_finished(conn, finished_before=cutoff, limit=batch_size)
            )
            total += count
            if count < batch_size:
                break
        deleted["job_queue"] = total
    if any(deleted.values()):
        log.info("pruned expired rows", extra={"deleted": deleted})
    return deleted


class FailureAlerts:
    """Jobs that failed in the last window: a warning line, a gauge, and a webhook POST.

    Each failure is announced once: the newest ``finished_at`` already announced is kept in
    Redis (per queue), so several workers running this duty do not repeat an alert.
    """

    def __init__(
        self,
        *,
        db: Database,
        redis: RedisClient,
        config: WorkerConfig,
        clock: Callable[[], datetime],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.redis = redis
        self.config = config
        self.clock = clock
        self.transport = transport
        self.marker_key = f"{config.job_queue_name}:cesar:alerted-until"

    async def run_once(self) -> dict[str, Any]:
        now = self.clock()
        since = now - timedelta(minutes=self.config.alert_window_minutes)
        async with self.db.connection() as conn:
            count, newest = await repo.recent_failures(conn, since=since, limit=20)
        metrics.RECENT_FAILURES.set(count)
        summary: dict[str, Any] = {
            "failed": count,
            "window_minutes": self.config.alert_window_minutes,
        }
        if not count:
            return {**summary, "alerted": False}
        latest: datetime = newest[0]["finished_at"]
        if not await self._is_new(latest):
            return {**summary, "alerted": False}
        log.warning(
            "%d job(s) failed in the last %g minutes",
            count,
            self.config.alert_window_minutes,
            extra={"failed_jobs": [str(r["id"]) for r in newest]},
        )
        body = {
            "event": "cesar.jobs.failed",
            "failed": count,
            "window_minutes": self.config.alert_window_minutes,
            "queue": self.config.job_queue_name,
            "at": now.isoformat(),
            "jobs": [
                {
                    "id": str(r["id"]),
                    "job_type": r["job_type"],
                    "last_error": (r["last_error"] or "")[:500],
                    "finished_at": r["finished_at"].isoformat(),
                }
                for r in newest
            ],
        }
        delivered = await self._post(body)
        if delivered is not False:
            await self._mark(latest)
        return {**summary, "alerted": True, "webhook": delivered}

    async def _is_new(self, latest: datetime) -> bool:
        try:
            raw = await self.redis.get(self.marker_key)
        except (RedisError, OSError):
            return True
        if raw is None:
            return True
        return latest.timestamp() > float(raw)

    async def _mark(self, latest: datetime) -> None:
        try:
            await self.redis.set(self.marker_key, str(latest.timestamp()), ex=86_400)
        except (RedisError, OSError) as exc:
            log.debug("alert marker not stored: %s", exc)

    async def _post(self, body: dict[str, Any]) -> bool | None:
        """True delivered, False failed, None when no webhook is configured."""
        if self.config.alert_webhook_url is None:
            return None
        url = self.config.alert_webhook_url.get_secret_value()
        try:
            async with httpx.AsyncClient(timeout=5.0, transport=self.transport) as client:
                response = await client.post(url, json=body)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            metrics.ALERTS_SENT.labels("error").inc()
            log.error("failure alert webhook failed: %s", type(exc).__name__)
            return False
        metrics.ALERTS_SENT.labels("sent").inc()
        return True
