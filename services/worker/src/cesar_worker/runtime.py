"""Everything one worker process holds: connections, registry, mirror, executor, leases,
reconciler, and the loops that drive them (lease renewal + heartbeat, reconciliation).

The loops belong to the runtime, not to arq: they keep running while Redis is away, and the
job tasks (owned by the executor) outlive any arq worker the process opens and closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from cesar_core.db import Database
from cesar_core.errors import DatabaseUnavailable
from cesar_core.jobs.queue import JobQueue, utcnow
from cesar_core.jobs.registry import JobRegistry, load_registry
from cesar_core.redis import RedisClient, create_redis

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.duties import FailureAlerts, prune, refresh_views
from cesar_worker.executor import Executor
from cesar_worker.leases import LeaseKeeper
from cesar_worker.mirror import MirrorBatcher
from cesar_worker.reconciler import Reconciler

__all__ = ["WorkerRuntime"]

log = logging.getLogger(__name__)


class WorkerRuntime:
    def __init__(
        self,
        config: WorkerConfig,
        db: Database,
        redis: RedisClient,
        registry: JobRegistry,
        *,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
        owns_connections: bool = False,
    ) -> None:
        self.config = config
        self.db = db
        self.redis = redis
        self.registry = registry
        self.clock = clock
        self.owns_connections = owns_connections
        self.worker_id = config.resolved_worker_id()
        self.started_at = clock()
        self.resources: dict[str, Any] = {}
        self.queue = JobQueue(db, redis, config, registry, clock=clock)
        self.mirror = MirrorBatcher(
            db,
            worker_id=self.worker_id,
            clock=clock,
            lease=timedelta(seconds=config.job_queue_stall_seconds),
            flush_interval=config.worker_mirror_flush_ms / 1000,
            start_linger=config.worker_mirror_start_linger_ms / 1000,
        )
        self.executor = Executor(
            db=db,
            redis=redis,
            queue=self.queue,
            registry=registry,
            config=config,
            mirror=self.mirror,
            worker_id=self.worker_id,
            clock=clock,
            rand=rand,
            resources=self.resources,
        )
        self.leases = LeaseKeeper(
            db.url,
            self.executor,
            self.mirror,
            lease=timedelta(seconds=config.job_queue_stall_seconds),
            outage_gap=timedelta(seconds=config.outage_gap_seconds()),
            worker_id=self.worker_id,
            queue_name=config.job_queue_name,
            started_at=self.started_at,
        )
        self.reconciler = Reconciler(
            db=db,
            redis=redis,
            queue=self.queue,
            settings=config,
            clock=clock,
            batch_size=config.worker_reconcile_batch,
        )
        self.alerts = FailureAlerts(db=db, redis=redis, config=config, clock=clock)
        self._loops: list[asyncio.Task[None]] = []
        self._metrics_server: metrics.MetricsServer | None = None

    @classmethod
    async def open(
        cls,
        config: WorkerConfig,
        *,
        registry: JobRegistry | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> WorkerRuntime:
        db = await _open_database(config)
        redis = create_redis(config.redis_url.get_secret_value())
        return cls(
            config,
            db,
            redis,
            registry if registry is not None else load_registry(),
            clock=clock,
            owns_connections=True,
        )

    async def start(self, *, serve_metrics: bool = True, loops: bool = True) -> None:
        """Start the mirror and (unless ``loops`` is False: tests drive them by hand) the
        lease-renewal/heartbeat loop and the reconciler loop."""
        self.mirror.start()
        self.resources["ollama"] = httpx.AsyncClient(
            base_url=self.config.llm_base_url, timeout=self.config.ollama_timeout_seconds
        )
        if loops:
            self._loops = [
                asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
                asyncio.create_task(self.reconciler.run_forever(), name="worker-reconciler"),
            ]
        if serve_metrics and self.config.worker_metrics_port:
            try:
                self._metrics_server = metrics.start_metrics_server(
                    self.config.worker_metrics_port, self.config.worker_metrics_host
                )
            except OSError as exc:
                log.error("metrics port %d unavailable: %s", self.config.worker_metrics_port, exc)
        log.info("worker %s started on queue %s", self.worker_id, self.config.job_queue_name)

    async def stop(self, *, grace: float = 0.0) -> None:
        """Give the attempts still running up to ``grace`` seconds, interrupt the rest
        (recorded as interrupted), write everything the mirror holds, stop the loops, close
        what the runtime opened."""
        await self.executor.stop(grace=grace)
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        await self.mirror.close()
        await self.leases.close()
        client = self.resources.pop("ollama", None)
        if client is not None:
            await client.aclose()
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            server.server_close()
            thread.join(timeout=2)
            self._metrics_server = None
        if self.owns_connections:
            await self.redis.aclose()
            await self.db.close()

    async def beat(self) -> None:
        """Renew the leases (fencing lost attempts), tick the lease clock, then record this
        worker's heartbeat, unless the mirror has been failing for a while: the health probe
        then reports the worker unhealthy instead of green over a wedged mirror."""
        await self.leases.renew()
        await self.leases.tick()
        failing_since = self.mirror.failing_since
        if failing_since is not None:
            failing_for = time.monotonic() - failing_since
            if failing_for > 3 * self.config.job_queue_heartbeat_seconds:
                log.error("job state writes failing for %.0fs; heartbeat withheld", failing_for)
                return
        await self.leases.record_heartbeat(len(self.executor.running))
        if await self.db.recycle_if_migrated():
            log.info("schema migrated; database connections recycled")

    async def _heartbeat_loop(self) -> None:
        period = self.config.job_queue_heartbeat_seconds
        while True:
            started = time.monotonic()
            try:
                await self.beat()
            except Exception as exc:
                # try again soon: once the database is back, live workers must renew before
                # the reconciler's post-outage wait runs out
                log.warning("lease renewal / heartbeat failed: %s", exc)
                await asyncio.sleep(min(0.5, period))
                continue
            # a fixed cadence: the time the beat took counts against the period
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    # -- cron duties -------------------------------------------------------------------------
    async def duty(self, name: str) -> Any:
        """Run one cron duty by name, counting its outcome; errors are logged, not raised."""
        try:
            if name == "reconcile":
                result: Any = await self.reconciler.run_once()
            elif name == "refresh_views":
                result = await refresh_views(self.db)
            elif name == "prune":
                result = await prune(
                    self.db, self.clock(), retention_days=self.config.job_queue_retention_days
                )
            elif name == "failure_alerts":
                result = await self.alerts.run_once()
            else:
                raise ValueError(f"unknown duty {name!r}")
        except Exception:
            metrics.CRON_RUNS.labels(name, "error").inc()
            log.exception("cron duty %s failed", name)
            return None
        metrics.CRON_RUNS.labels(name, "ok").inc()
        return result


async def _open_database(config: WorkerConfig) -> Database:
    """The pool, waiting (with backoff, up to 30 s between tries) while the database is
    unreachable: a worker started before its database comes up waits instead of exiting."""
    delay = 0.5
    while True:
        try:
            return await Database.open(
                config.require_database_url(),
                min_size=config.db_pool_min_size,
                max_size=config.db_pool_max_size,
            )
        except DatabaseUnavailable as exc:
            log.warning("database not reachable yet (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
