"""Everything one worker process holds: connections, registry, mirror, executor, reconciler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from cesar_core.db import Database
from cesar_core.jobs.queue import JobQueue, utcnow
from cesar_core.jobs.registry import JobRegistry, load_registry
from cesar_core.redis import RedisClient, create_redis

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.duties import FailureAlerts, prune, record_worker_heartbeat, refresh_views
from cesar_worker.executor import Executor
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
        self.reconciler = Reconciler(
            db=db,
            redis=redis,
            queue=self.queue,
            settings=config,
            clock=clock,
            batch_size=config.worker_reconcile_batch,
        )
        self.alerts = FailureAlerts(db=db, redis=redis, config=config, clock=clock)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._metrics_server: metrics.MetricsServer | None = None

    @classmethod
    async def open(
        cls,
        config: WorkerConfig,
        *,
        registry: JobRegistry | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> WorkerRuntime:
        db = await Database.open(
            config.require_database_url(),
            min_size=config.db_pool_min_size,
            max_size=config.db_pool_max_size,
        )
        redis = create_redis(config.redis_url.get_secret_value())
        return cls(
            config,
            db,
            redis,
            registry if registry is not None else load_registry(),
            clock=clock,
            owns_connections=True,
        )

    async def start(self, *, serve_metrics: bool = True) -> None:
        self.mirror.start()
        self.resources["ollama"] = httpx.AsyncClient(
            base_url=self.config.ollama_url, timeout=self.config.ollama_timeout_seconds
        )
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat")
        if serve_metrics and self.config.worker_metrics_port:
            try:
                self._metrics_server = metrics.start_metrics_server(
                    self.config.worker_metrics_port, self.config.worker_metrics_host
                )
            except OSError as exc:
                log.error("metrics port %d unavailable: %s", self.config.worker_metrics_port, exc)
        log.info("worker %s started on queue %s", self.worker_id, self.config.job_queue_name)

    async def stop(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        await self.mirror.close()
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
        """One heartbeat: running jobs' heartbeat_at (via the mirror) and worker_heartbeats."""
        self.mirror.heartbeat(self.executor.running_jobs())
        await record_worker_heartbeat(
            self.db,
            worker_id=self.worker_id,
            queue_name=self.config.job_queue_name,
            jobs_running=len(self.executor.running),
            started_at=self.started_at,
            now=self.clock(),
        )
        if await self.db.recycle_if_migrated():
            log.info("schema migrated; database connections recycled")

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:
                log.warning("worker heartbeat failed: %s", exc)
            await asyncio.sleep(self.config.job_queue_heartbeat_seconds)

    # -- cron duties -------------------------------------------------------------------------
    async def duty(self, name: str) -> Any:
        """Run one cron duty by name, counting its outcome; errors are logged, not raised."""
        try:
            if name == "reconcile":
                result: Any = await self.reconciler.run_once()
            elif name == "refresh_views":
                result = await refresh_views(self.db)
            elif name == "prune":
                result = await prune(self.db, self.clock())
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
