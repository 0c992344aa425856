"""Scheduled jobs: cron entries that enqueue a job type (as opposed to the cron *duties*).

Each entry enqueues its job with a fixed ``unique_key``, so however many workers tick (and
however often), at most one such job is active at a time; the job itself runs like any other
(``job_queue`` row, retries, at-least-once, idempotent function). Intervals come from the
worker's settings (``MEMORY_CONSOLIDATE_SECONDS``, ``REPUTATION_COMPUTE_SECONDS``; 0 turns an
entry off).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig

__all__ = ["SCHEDULED_JOBS", "enqueue_scheduled", "scheduled_job_crons"]

log = logging.getLogger(__name__)

# job type -> the WorkerConfig field holding its interval in seconds
SCHEDULED_JOBS = {
    "memory.consolidate": "memory_consolidate_seconds",
    "reputation.compute": "reputation_compute_seconds",
}


def _every(seconds: float) -> dict[str, Any]:
    """arq cron arguments for "every ``seconds``" (whole seconds, at most hourly)."""
    step = max(1, math.ceil(seconds))
    if step < 60:
        return {"second": set(range(0, 60, step))}
    minutes = min(60, max(1, step // 60))
    return {"minute": set(range(0, 60, minutes)), "second": {0}}


async def enqueue_scheduled(runtime: Any, job_type: str) -> Any:
    """Enqueue one scheduled run (the active one is reused); errors are logged, not raised."""
    duty = f"schedule:{job_type}"
    try:
        job = await runtime.queue.enqueue(
            job_type, {"trigger": "scheduled"}, unique_key=f"scheduled:{job_type}"
        )
    except Exception:
        metrics.CRON_RUNS.labels(duty, "error").inc()
        log.exception("scheduling %s failed", job_type)
        return None
    metrics.CRON_RUNS.labels(duty, "ok").inc()
    return job


def _enqueuer(job_type: str, runtime_key: str) -> WorkerCoroutine:
    async def run(ctx: dict[str, Any]) -> None:
        await enqueue_scheduled(ctx[runtime_key], job_type)

    run.__qualname__ = run.__name__ = f"schedule_{job_type.replace('.', '_')}"
    return run


def scheduled_job_crons(config: WorkerConfig, prefix: str, runtime_key: str) -> list[CronJob]:
    """One arq cron entry per scheduled job type whose interval is not 0."""
    entries = []
    for job_type, setting in SCHEDULED_JOBS.items():
        seconds = float(getattr(config, setting))
        if seconds <= 0:
            continue
        entries.append(
            cron(
                _enqueuer(job_type, runtime_key),
                name=f"{prefix}.schedule.{job_type}",
                timeout=60,
                **_every(seconds),
            )
        )
    return entries
