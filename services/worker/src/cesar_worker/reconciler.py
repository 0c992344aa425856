"""The reconciler: makes Redis agree with ``job_queue`` again, whatever happened in between.

Each pass (an arq cron every ``JOB_QUEUE_POLL_INTERVAL`` seconds, rounded up to whole seconds):

1. ``running`` rows whose ``heartbeat_at`` is older than ``JOB_QUEUE_STALL_SECONDS`` (the worker
   was killed or is stuck): the lost attempt counts; back to ``retrying`` (due now) while
   attempts remain, else ``failed``. Claimed with ``FOR UPDATE SKIP LOCKED``.
2. ``queued`` rows older than the grace period whose arq job Redis no longer holds (flushed or
   restarted Redis): back to ``pending`` without a token, conditioned on the old token.
3. Due ``pending`` / ``retrying`` rows without a live dispatch: claimed in one statement
   (``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``) with a fresh
   token each, pushed to arq in one pipeline, then marked ``queued``.

Several workers may reconcile at once: the claims skip each other's rows and every write is
a compare-and-set on the token, so no row is dispatched twice under the same token, and a
superseded token only produces a delivery the worker refuses.
The clock is injectable, so tests move time instead of sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from cesar_core.db import Database
from cesar_core.errors import RedisUnavailable
from cesar_core.jobs import repository as repo
from cesar_core.jobs.dispatch import missing_from_redis
from cesar_core.jobs.queue import JobQueue
from cesar_core.jobs.settings import JobSettings
from cesar_core.redis import RedisClient

from cesar_worker import metrics

__all__ = ["ReconcileReport", "Reconciler"]

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    dispatched: int = 0
    redispatched_lost: int = 0
    redispatched_stalled: int = 0
    failed_stalled: int = 0
    redis_available: bool = True

    def total(self) -> int:
        return self.dispatched + self.redispatched_lost + self.failed_stalled


class Reconciler:
    def __init__(
        self,
        *,
        db: Database,
        redis: RedisClient,
        queue: JobQueue,
        settings: JobSettings,
        clock: Callable[[], datetime],
        batch_size: int = 1000,
        max_batches: int = 20,
    ) -> None:
        self.db = db
        self.redis = redis
        self.queue = queue
        self.settings = settings
        self.clock = clock
        self.batch_size = batch_size
        self.max_batches = max_batches

    async def run_once(self) -> ReconcileReport:
        report = ReconcileReport()
        now = self.clock()
        await self._stalled(now, report)
        await self._lost(now, report)
        await self._due(now, report)
        await self._gauges()
        if report.total():
            log.info("reconciler: %s", report)
        return report

    async def _stalled(self, now: datetime, report: ReconcileReport) -> None:
        cutoff = now - timedelta(seconds=self.settings.job_queue_stall_seconds)

        async def work(conn: asyncpg.Connection) -> list[tuple[object, str, str]]:
            return list(
                await repo.claim_stalled(
                    conn, now=now, heartbeat_before=cutoff, limit=self.batch_size
                )
            )

        for row_id, status, job_type in await self.db.transaction(work):
            if status == "failed":
                report.failed_stalled += 1
                metrics.RECONCILER_ACTIONS.labels("failed_stalled").inc()
                metrics.JOBS.labels(job_type, "failed").inc()
                log.warning("job %s (%s): worker lost, no attempts left: failed", row_id, job_type)
            else:
                report.redispatched_stalled += 1
                metrics.RECONCILER_ACTIONS.labels("redispatched_stalled").inc()
                log.warning("job %s (%s): worker lost; dispatching again", row_id, job_type)

    async def _lost(self, now: datetime, report: ReconcileReport) -> None:
        cutoff = now - timedelta(seconds=self.settings.job_queue_lost_grace_seconds)
        async with self.db.connection() as conn:
            candidates = await repo.lost_candidates(
                conn, queued_before=cutoff, limit=self.batch_size
            )
        if not candidates:
            return
        try:
            missing = await missing_from_redis(
                self.redis, self.queue.queue_name, [(c[0], c[1]) for c in candidates]
            )
        except RedisUnavailable as exc:
            report.redis_available = False
            log.warning("reconciler: cannot check Redis for lost jobs: %s", exc)
            return
        lost = [candidates[i] for i in missing]
        if not lost:
            return
        requeued = await self.db.transaction(lambda conn: repo.requeue_lost(conn, lost, now))
        report.redispatched_lost += len(requeued)
        metrics.RECONCILER_ACTIONS.labels("redispatched_lost").inc(len(requeued))
        log.warning("reconciler: %d queued job(s) were missing from Redis", len(requeued))

    async def _due(self, now: datetime, report: ReconcileReport) -> None:
        taken_before = now - timedelta(seconds=self.settings.job_queue_lost_grace_seconds)
        for _ in range(self.max_batches):

            async def work(conn: asyncpg.Connection) -> list[repo.Dispatch]:
                return await repo.claim_due(
                    conn, now=now, taken_before=taken_before, limit=self.batch_size
                )

            claimed = await self.db.transaction(work)
            if not claimed:
                return
            if not await self.queue.dispatch(claimed):
                report.redis_available = False
                return
            report.dispatched += len(claimed)
            metrics.RECONCILER_ACTIONS.labels("dispatched").inc(len(claimed))
            if len(claimed) < self.batch_size:
                return

    async def _gauges(self) -> None:
        try:
            async with self.db.connection() as conn:
                counts = await repo.count_active(conn)
            for status in ("pending", "queued", "running", "retrying"):
                metrics.QUEUE_DEPTH.labels(status).set(counts.get(status, 0))
            metrics.ARQ_QUEUE_LENGTH.set(await self.redis.zcard(self.queue.queue_name))
        except Exception as exc:  # gauges are best effort
            log.debug("reconciler: gauges not updated: %s", exc)
