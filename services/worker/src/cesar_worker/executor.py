"""The job wrapper: what the worker does with each arq delivery ``<row id>:<token>``.

1. Claim the row (``running``, attempts + 1, lease taken) through the mirror and wait for
   it: a stale, cancelled or already finished delivery is refused here and nothing runs.
   The claim joins the claims of the other jobs arq starts meanwhile in one statement (see
   :mod:`cesar_worker.mirror`); when every job slot is taken no other claim can come, so it
   is written at once. A claim the database could not take (it is unreachable) is handed
   back to arq to deliver again shortly, instead of waiting for the reconciler.
2. Look the type up and validate the payload. A type this worker does not know (an older
   worker during a rolling deploy) is not a failure: the job goes back to ``retrying``
   without counting the attempt, with a ``last_error`` saying it waits for a worker that
   knows the type. A bad payload and :class:`PermanentJobError` fail at once.
3. Run the function under the type's timeout; a timeout is a failed attempt (``timed_out``).
4. Hand the outcome to the mirror: ``succeeded`` (result made storable and bounded in size;
   a result that cannot be stored at all fails the job with that reason), ``retrying``
   (backoff doubled per attempt, with jitter, capped) or ``failed`` once attempts run out.

Each attempt runs in a task the executor owns, keyed by (row id, token), not in arq's task:
a Redis outage that makes the worker close and reopen arq never cancels running jobs, and a
stale attempt of a row finishing never touches the entry of the row's newer attempt. The
attempt's lease is renewed by :mod:`cesar_worker.leases`; when the renewal says the worker
lost an attempt (taken over, cancelled), the attempt is *fenced*: its task is cancelled and
it writes nothing. At graceful shutdown the attempts still running after the grace period
are cancelled and recorded as interrupted (``retrying``, due at once, the attempt not
counted).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from cesar_core.jobs.storable import UnstorableValue, storable_json, storable_text
from cesar_core.redis import RedisClient

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.mirror import MirrorBatcher

__all__ = ["Attempt", "Executor", "bounded_result"]

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 4000


def bounded_result(result: Any, max_bytes: int) -> str:
    """The result as storable JSON, replaced by a preview when larger than ``max_bytes``.

    Raises :class:`UnstorableValue` when the result cannot be made into JSON at all.
    """
    if result is None:
        return "null"
    text = storable_json(result)
    size = len(text.encode())
    if size <= max_bytes:
        return text
    return storable_json({"truncated": True, "bytes": size, "preview": text[:1000]})


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return storable_text(text[:MAX_ERROR_CHARS])


@dataclass(eq=False)
class Attempt:
    """One claimed attempt running in this worker."""

    row_id: UUID
    token: str
    task: asyncio.Task[Any]
    fenced: bool = False  # the worker lost the lease: cancelled, writes nothing


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
        # claimed attempts whose function runs, by (row id, token)
        self.running: dict[tuple[UUID, str], Attempt] = {}
        self._tasks: set[asyncio.Task[str]] = set()
        # deliveries between arq's start and our return (claiming, running, reporting);
        # when they fill every slot no other claim can join the mirror's batch
        self.inflight = 0
        self.slots = config.worker_max_jobs
        self.draining = False  # set at graceful shutdown: new deliveries go back to arq

    def running_jobs(self) -> list[tuple[UUID, str]]:
        return list(self.running)

    async def run(self, arq_job_id: str) -> str:
        """Run one delivery in a task this executor owns; returns the outcome.

        If the caller (arq's job task) is cancelled, the attempt goes on unless the worker is
        draining (graceful stop past its grace period), in which case it is interrupted.
        """
        try:
            row_id, token = parse_arq_job_id(arq_job_id)
        except ValueError:
            log.error("ignoring arq job %r: not a cesar job id", arq_job_id)
            return "invalid"
        task = asyncio.create_task(self._deliver(row_id, token), name=f"job-{row_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if self.draining:
                task.cancel()
            raise

    def fence(self, lost: set[tuple[UUID, str]]) -> int:
        """Cancel the attempts this worker no longer owns; returns how many."""
        count = 0
        for key in lost:
            attempt = self.running.get(key)
            if attempt is not None and not attempt.fenced:
                attempt.fenced = True
                attempt.task.cancel()
                count += 1
        return count

    async def stop(self, *, grace: float = 0.0, timeout: float = 10.0) -> None:
        """Let running attempts finish for up to ``grace`` seconds, then interrupt the rest
        (recorded as interrupted) and wait up to ``timeout`` for them to wind down."""
        self.draining = True
        if grace > 0 and self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _deliver(self, row_id: UUID, token: str) -> str:
        self.inflight += 1
        try:
            return await self._claim_and_execute(row_id, token)
        finally:
            self.inflight -= 1

    async def _claim_and_execute(self, row_id: UUID, token: str) -> str:
        try:
            job = await self.mirror.claim(row_id, token, flush_now=self.inflight >= self.slots)
        except DatabaseError as exc:
            log.warning("job %s: cannot claim (%s); arq delivers it again", row_id, exc)
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
        except UnknownJobType:
            return self._wait_for_type(job, token)
        try:
            payload = self.registry.parse(job_type, job.payload)
        except InvalidPayload as exc:
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
        current = asyncio.current_task()
        assert current is not None
        key = (job.id, token)
        attempt = self.running[key] = Attempt(job.id, token, current)
        metrics.JOBS_RUNNING.inc()
        started = time.perf_counter()
        try:
            try:
                async with asyncio.timeout(spec.timeout_seconds):
                    result = await function(ctx, payload)
            except TimeoutError:
                if time.perf_counter() - started >= spec.timeout_seconds:
                    message = f"timed out after {spec.timeout_seconds:g}s"
                    return self._attempt_failed(job, token, message, timed_out=True)
                raise
            result_json = bounded_result(result, self.config.job_queue_result_max_bytes)
        except asyncio.CancelledError:
            if attempt.fenced:
                log.warning("job %s: lease lost (taken over or cancelled); stopped here", job.id)
                metrics.JOBS.labels(job_type, "fenced").inc()
            else:
                self.mirror.interrupt(job.id, token, "interrupted by worker shutdown; runs again")
                metrics.JOBS.labels(job_type, "interrupted").inc()
            raise
        except UnstorableValue as exc:
            return self._finish_failed(job, token, f"the job's result cannot be stored: {exc}")
        except PermanentJobError as exc:
            return self._finish_failed(job, token, _error_text(exc))
        except (CesarError, Exception) as exc:
            log.warning("job %s (%s) attempt %d failed: %s", job.id, job_type, job.attempts, exc)
            return self._attempt_failed(job, token, _error_text(exc))
        finally:
            # only this attempt's entry: a stale attempt of the same row must never remove
            # the entry of the row's newer attempt
            if self.running.get(key) is attempt:
                del self.running[key]
            metrics.JOBS_RUNNING.dec()
            metrics.JOB_DURATION.labels(job_type).observe(time.perf_counter() - started)
        self.mirror.succeed(job.id, token, result_json)
        metrics.JOBS.labels(job_type, "succeeded").inc()
        return "succeeded"

    def _wait_for_type(self, job: Job, token: str) -> str:
        delay = self.config.job_queue_unknown_type_delay_seconds
        known = ", ".join(sorted(self.registry.names()))
        reason = (
            f"waiting for a worker that knows job type {job.job_type!r} (worker "
            f"{self.worker_id} knows: {known}); tried again every {delay:g}s"
        )
        log.warning("job %s: %s", job.id, reason)
        when = self.clock() + timedelta(seconds=delay)
        self.mirror.interrupt(job.id, token, reason, run_after=when)
        metrics.JOBS.labels("unknown", "unknown_type").inc()
        return "unknown_type"

    def _attempt_failed(self, job: Job, token: str, error: str, *, timed_out: bool = False) -> str:
        if job.attempts >= job.max_attempts:
            return self._finish_failed(job, token, error, timed_out=timed_out)
        delay = backoff_seconds(
            job.attempts,
            base_minutes=self.config.job_queue_backoff_minutes,
            max_minutes=self.config.job_queue_backoff_max_minutes,
            rand=self.rand,
        )
        when = self.clock() + timedelta(seconds=delay)
        self.mirror.retry(job.id, token, error, when, timed_out=timed_out)
        metrics.JOBS.labels(job.job_type, "retrying").inc()
        metrics.JOB_RETRIES.labels(job.job_type).inc()
        return "retrying"

    def _finish_failed(self, job: Job, token: str, error: str, *, timed_out: bool = False) -> str:
        log.warning(
            "job %s (%s) failed after %d attempt(s): %s", job.id, job.job_type, job.attempts, error
        )
        self.mirror.fail(job.id, token, error, timed_out=timed_out)
        metrics.JOBS.labels(job.job_type, "failed").inc()
        return "failed"
