"""The reconciler: makes Redis agree with ``job_queue`` again, whatever happened in between.

It runs as its own loop in every worker (:meth:`Reconciler.run_forever`, every
``JOB_QUEUE_POLL_INTERVAL`` seconds), not as an arq job, so no backlog can delay it and a
Redis outage stops only its Redis side. Each pass:

1. Ticks the lease clock (``job_lease_clock``) and reads how long the database has been
   reachable without a gap. Only once that is at least one lease (``JOB_QUEUE_STALL_SECONDS``)
   does it take over ``running`` rows whose lease expired by the database's clock: after an
   outage, live workers get a full lease to renew before anything is taken over. The lost
   attempt counts (``lost`` in ``job_attempts``); back to ``retrying`` (due now) while
   attempts remain, else ``failed``.
2. Walks the ``queued`` rows older than the grace period, ``WORKER_RECONCILE_BATCH`` at a
   time, resuming where the previous pass stopped, so every queued row is looked at across
   passes however many there are. A row arq no longer holds (flushed or restarted Redis) goes
   back to ``pending``. A row arq has started but nobody claimed (the worker died between
   arq's start and the claim) is an orphan: seen so for longer than the grace period, it is
   re-dispatched under a new token (arq keeps the dead delivery's in-progress key for the
   longest job timeout, and would never run it again).
3. Claims due ``pending`` / ``retrying`` rows without a live dispatch (``FOR UPDATE SKIP
   LOCKED``), marking them ``queued`` under a fresh token each in the same statement, and
   pushes them to arq (one script call per 1,000); a refused push restores their status.

The queue-depth gauges (a count over ``job_queue``) are refreshed at most every
:data:`GAUGE_SECONDS`, not on every pass: at a million rows the count costs more than a pass
with work to do, and Prometheus does not scrape more often than that anyway.

Several workers may reconcile at once: the claims skip each other's rows and every write is
a compare-and-set on the token, so no row is dispatched twice under the same token, and a
superseded token only produces a delivery the worker refuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
from cesar_core.db import Database
from cesar_core.errors import RedisUnavailable
from cesar_core.jobs import repository as repo
from cesar_core.jobs.dispatch import arq_states
from cesar_core.jobs.queue import JobQueue
from cesar_core.jobs.settings import JobSettings
from cesar_core.redis import RedisClient

from cesar_worker import metrics

__all__ = ["GAUGE_SECONDS", "ReconcileReport", "Reconciler"]

log = logging.getLogger(__name__)

GAUGE_SECONDS = 10.0


@dataclass
class ReconcileReport:
    dispatched: int = 0
    redispatched_lost: int = 0
    redispatched_orphans: int = 0
    redispatched_stalled: int = 0
    failed_stalled: int = 0
    queued_checked: int = 0
    takeover_allowed: bool = True
    redis_available: bool = True

    def total(self) -> int:
        return (
            self.dispatched
            + self.redispatched_lost
            + self.redispatched_orphans
            + self.redispatched_stalled
            + self.failed_stalled
        )


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
        max_batches: int = 50,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.redis = redis
        self.queue = queue
        self.settings = settings
        self.clock = clock
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.monotonic = monotonic
        self.lease = timedelta(seconds=settings.job_queue_stall_seconds)
        self._walk_after: tuple[datetime, UUID] | None = None
        # (row id, token) started by arq but unclaimed -> when first seen so
        self._orphans: dict[tuple[UUID, str], float] = {}
        self._gauges_at = float("-inf")

    async def run_forever(self) -> None:
        """One pass every ``JOB_QUEUE_POLL_INTERVAL`` seconds until cancelled; errors are logged."""
        while True:
            started = self.monotonic()
            try:
                await self.run_once()
                metrics.CRON_RUNS.labels("reconcile", "ok").inc()
            except Exception as exc:
                metrics.CRON_RUNS.labels("reconcile", "error").inc()
                log.warning("reconciler pass failed: %s", exc)
            elapsed = self.monotonic() - started
            await asyncio.sleep(max(0.05, self.settings.job_queue_poll_interval - elapsed))

    async def run_once(self) -> ReconcileReport:
        report = ReconcileReport()
        now = self.clock()
        await self._expired(now, report)
        await self._lost(now, report)
        await self._due(now, report)
        if self.monotonic() - self._gauges_at >= GAUGE_SECONDS:
            self._gauges_at = self.monotonic()
            await self._gauges()
        if report.total():
            log.info("reconciler: %s", report)
        return report

    async def _expired(self, now: datetime, report: ReconcileReport) -> None:
        gap = timedelta(seconds=self.settings.outage_gap_seconds())

        async def tick(conn: asyncpg.Connection) -> float:
            return await repo.tick_lease_clock(conn, outage_gap=gap)

        reachable_for = await self.db.transaction(tick)
        if reachable_for < self.settings.job_queue_stall_seconds:
            report.takeover_allowed = False
            return

        async def work(conn: asyncpg.Connection) -> list[tuple[UUID, str, str]]:
            return await repo.claim_expired(conn, now=now, lease=self.lease, limit=self.batch_size)

        for row_id, status, job_type in await self.db.transaction(work):
            if status == "failed":
                report.failed_stalled += 1
                metrics.RECONCILER_ACTIONS.labels("failed_stalled").inc()
                metrics.JOBS.labels(job_type, "failed").inc()
                log.warning(
                    "job %s (%s): lease expired, no attempts left: failed", row_id, job_type
                )
            else:
                report.redispatched_stalled += 1
                metrics.RECONCILER_ACTIONS.labels("redispatched_stalled").inc()
                log.warning("job %s (%s): lease expired; dispatching again", row_id, job_type)

    async def _lost(self, now: datetime, report: ReconcileReport) -> None:
        cutoff = now - timedelta(seconds=self.settings.job_queue_lost_grace_seconds)
        lost: list[repo.Dispatch] = []
        orphans: list[repo.Dispatch] = []
        try:
            for _ in range(self.max_batches):
                async with self.db.connection() as conn:
                    page = await repo.queued_page(
                        conn, queued_before=cutoff, after=self._walk_after, limit=self.batch_size
                    )
                self._walk_after = (
                    (page[-1][3], page[-1][0]) if len(page) == self.batch_size else None
                )
                report.queued_checked += len(page)
                dispatches = [(p[0], p[1]) for p in page]
                states = await arq_states(self.redis, self.queue.queue_name, dispatches)
                for (row_id, token, job_type, _), state in zip(page, states, strict=True):
                    if state == "missing":
                        lost.append((row_id, token, job_type))
                    elif state == "in_progress" and self._orphaned((row_id, token)):
                        orphans.append((row_id, token, job_type))
                if self._walk_after is None:  # a whole walk done: forget stale suspects
                    self._forget_orphans_older_than(10 * self.settings.job_queue_lost_grace_seconds)
                    break
        except RedisUnavailable as exc:
            report.redis_available = False
            log.warning("reconciler: cannot check Redis for lost jobs: %s", exc)
        for found, label in ((lost, "redispatched_lost"), (orphans, "redispatched_orphans")):
            if not found:
                continue
            requeued = await self.db.transaction(
                lambda conn, rows=found: repo.requeue_lost(conn, rows, now)  # type: ignore[misc]
            )
            setattr(report, label, getattr(report, label) + len(requeued))
            metrics.RECONCILER_ACTIONS.labels(label).inc(len(requeued))
            log.warning("reconciler: %d queued job(s) %s", len(requeued), label.replace("_", " "))
        for key in [(o[0], o[1]) for o in orphans]:
            self._orphans.pop(key, None)

    def _forget_orphans_older_than(self, seconds: float) -> None:
        horizon = self.monotonic() - seconds
        for key in [k for k, seen in self._orphans.items() if seen < horizon]:
            del self._orphans[key]

    def _orphaned(self, key: tuple[UUID, str]) -> bool:
        """Started by arq, unclaimed, and seen so for longer than the grace period."""
        first_seen = self._orphans.setdefault(key, self.monotonic())
        if len(self._orphans) > 100_000:  # forget the oldest suspects rather than grow
            for old in list(self._orphans)[:10_000]:
                del self._orphans[old]
        return self.monotonic() - first_seen >= self.settings.job_queue_lost_grace_seconds

    async def _due(self, now: datetime, report: ReconcileReport) -> None:
        taken_before = now - timedelta(seconds=self.settings.job_queue_lost_grace_seconds)
        for _ in range(self.max_batches):

            async def work(conn: asyncpg.Connection) -> list[repo.Claim]:
                return await repo.claim_due(
                    conn, now=now, taken_before=taken_before, limit=self.batch_size
                )

            claimed = await self.db.transaction(work)
            if not claimed:
                return
            if not await self.queue.push_claimed(claimed):
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
