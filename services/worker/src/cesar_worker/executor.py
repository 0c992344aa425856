"""The job wrapper: what the worker does with each arq delivery ``<row id>:<token>``.

1. Claim the row (``running``, attempts + 1) through the mirror and wait for it: a stale,
   cancelled or already finished delivery is refused here and nothing runs. The claim joins
   the claims of the other jobs arq starts meanwhile in one statement (see
   :mod:`cesar_worker.mirror`); when every job slot is taken (``inflight`` = ``max_jobs``) no
   other claim can come, so it is written at once.
2. Validate the payload against the job type's model; unknown types and bad payloads fail
   at once (another attempt cannot help), as does :class:`PermanentJobError`.
3. Run the function under the type's timeout; a timeout is a failed attempt.
4. Hand the outcome to the mirror: ``succeeded`` (result bounded in size), ``retrying``
   (backoff doubled per attempt, with jitter, capped) or ``failed`` once attempts run out.

The wrapper never raises into arq (arq keeps no result and never retries on its own); the
only exception is cancellation at shutdown, recorded as an interrupted attempt. While the
worker drains (``draining``, set at SIGTERM) ``cesar_worker.main.run_job`` hands new
deliveries back to arq before they reach the wrapper.

Per job the wrapper costs little on purpose (it runs thousands of times a second): the
claimed row becomes a Job without re-validation (the values come from the database), the
payload is validated once against the type's model, nothing is logged unless something
fails, and a ``None`` result is written as ``null`` without a JSON round trip.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from cesar_core.db import Database
from cesar_core.errors import CesarError, DatabaseError, InvalidPayload, UnknownJobType
from cesar_core.jobs.backoff import backoff_seconds
from cesar_core.jobs.dispatch import parse_arq_job_id
from cesar_core.jobs.models import Job
from cesar_core.jobs.queue import JobQueue
from cesar_core.jobs.registry import JobContext, JobRegistry, PermanentJobError
from cesar_core.redis import RedisClient
from pydantic import BaseModel

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.mirror import MirrorBatcher

__all__ = ["Executor", "bounded_result"]

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 4000


def bounded_result(result: Any, max_bytes: int) -> str:
    """The result as JSON, replaced by a preview when it is larger than ``max_bytes``."""
    if result is None:
        return "null"
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    # PostgreSQL refuses U+0000 in JSONB and TEXT; one such value would fail the mirror's
    # whole statement again and again, so it is replaced here
    text = json.dumps(result, default=str).replace("\\u0000", "\\ufffd")
    if len(text.encode()) <= max_bytes:
        return text
    return json.dumps({"truncated": True, "bytes": len(text.encode()), "preview": text[:1000]})


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_CHARS].replace("\x00", "\ufffd")


class Executor:
    def __init__(
        self,
        *,
        db: Database,
        redis: RedisClient,
        queue: JobQueue,
        registry: JobRegistry,
        config: WorkerConfig,
        mirror: MirrorBatcher,
        worker_id: str,
        clock: Callable[[], datetime],
        rand: Callable[[], float] = random.random,
        resources: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.redis = redis
        self.queue = queue
        self.registry = registry
        self.config = config
        self.mirror = mirror
        self.worker_id = worker_id
        self.clock = clock
        self.rand = rand
        self.resources = resources if resources is not None else {}
        self.running: dict[UUID, str] = {}
        # deliveries between arq's start and our return (claiming, running, reporting);
        # when they fill every slot no other claim can join the mirror's batch
        self.inflight = 0
        self.slots = config.worker_max_jobs
        self.draining = False  # set at graceful shutdown: new deliveries go back to arq

    def running_jobs(self) -> list[tuple[UUID, str]]:
        return list(self.running.items())

    async def run(self, arq_job_id: str) -> str:
        """Run one delivery; returns the outcome (for logs, metrics and tests)."""
        try:
            row_id, token = parse_arq_job_id(arq_job_id)
        except ValueError:
            log.error("ignoring arq job %r: not a cesar job id", arq_job_id)
            return "invalid"
        self.inflight += 1
        try:
            return await self._claim_and_execute(row_id, token)
        finally:
            self.inflight -= 1

    async def _claim_and_execute(self, row_id: UUID, token: str) -> str:
        try:
            job = await self.mirror.claim(row_id, token, flush_now=self.inflight >= self.slots)
        except DatabaseError as exc:
            # the row stays queued; arq forgets the delivery, so the reconciler re-dispatches
            log.warning("job %s: cannot claim (%s); left for the reconciler", row_id, exc)
            metrics.JOBS.labels("unknown", "unclaimed").inc()
            return "unclaimed"
        if job is None:
            log.info(
                "job %s: delivery %s is stale (cancelled, re-dispatched or done)", row_id, token
            )
            metrics.JOBS.labels("unknown", "stale").inc()
            return "stale"
        return await self._execute(job, token)

    async def _execute(self, job: Job, token: str) -> str:
        job_type = job.job_type
        try:
            spec = self.registry.spec(job_type)
            function = self.registry.function(job_type)
            payload = self.registry.parse(job_type, job.payload)
        except (UnknownJobType, InvalidPayload) as exc:
            return self._finish_failed(job, token, _error_text(exc))
        ctx = JobContext(
            job=job,
            db=self.db,
            redis=self.redis,
            queue=self.queue,
            settings=self.config,
            worker_id=self.worker_id,
            clock=self.clock,
            resources=self.resources,
        )
        self.running[job.id] = token
        metrics.JOBS_RUNNING.inc()
        started = time.perf_counter()
        try:
            try:
                async with asyncio.timeout(spec.timeout_seconds):
                    result = await function(ctx, payload)
            except TimeoutError:
                if time.perf_counter() - started >= spec.timeout_seconds:
                    return self._attempt_failed(
                        job, token, f"timed out after {spec.timeout_seconds:g}s"
                    )
                raise
        except asyncio.CancelledError:
            self.mirror.interrupt(job.id, token, "interrupted by worker shutdown; runs again")
            metrics.JOBS.labels(job_type, "interrupted").inc()
            raise
        except PermanentJobError as exc:
            return self._finish_failed(job, token, _error_text(exc))
        except (CesarError, Exception) as exc:
            log.warning("job %s (%s) attempt %d failed: %s", job.id, job_type, job.attempts, exc)
            return self._attempt_failed(job, token, _error_text(exc))
        finally:
            self.running.pop(job.id, None)
            metrics.JOBS_RUNNING.dec()
            metrics.JOB_DURATION.labels(job_type).observe(time.perf_counter() - started)
        self.mirror.succeed(
            job.id, token, bounded_result(result, self.config.job_queue_result_max_bytes)
        )
        metrics.JOBS.labels(job_type, "succeeded").inc()
        return "succeeded"

    def _attempt_failed(self, job: Job, token: str, error: str) -> str:
        if job.attempts >= job.max_attempts:
            return self._finish_failed(job, token, error)
        delay = backoff_seconds(
            job.attempts,
            base_minutes=self.config.job_queue_backoff_minutes,
            max_minutes=self.config.job_queue_backoff_max_minutes,
            rand=self.rand,
        )
        self.mirror.retry(job.id, token, error, self.clock() + timedelta(seconds=delay))
        metrics.JOBS.labels(job.job_type, "retrying").inc()
        metrics.JOB_RETRIES.labels(job.job_type).inc()
        return "retrying"

    def _finish_failed(self, job: Job, token: str, error: str) -> str:
        log.warning(
            "job %s (%s) failed after %d attempt(s): %s", job.id, job.job_type, job.attempts, error
        )
        self.mirror.fail(job.id, token, error)
        metrics.JOBS.labels(job.job_type, "failed").inc()
        return "failed"
