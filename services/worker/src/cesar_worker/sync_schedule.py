"""The Supabase sync's own schedule: an arq cron entry that enqueues ``sync.supabase``.

Every ``SUPABASE_SYNC_INTERVAL_SECONDS`` (default 60; 0 = off) one worker of the queue enqueues
one ``sync.supabase`` job per configured target (``SUPABASE_DB_URL`` and ``SUPABASE_TARGETS``),
with the unique key ``sync.supabase:<target>``: while a target's job is still pending or
running no second one is added, so a slow sync never piles up runs. The job itself goes through
``job_queue`` like any other (retries, ``last_error``, the dashboard).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from arq.cron import CronJob, cron
from cesar_core.errors import CesarError
from cesar_core.jobs import builtin

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.sync_targets import DEFAULT_TARGET, configured_targets

__all__ = ["cron_jobs", "enqueue_syncs", "unique_key"]

log = logging.getLogger(__name__)
DUTY = "supabase_sync"


def unique_key(target: str) -> str:
    return f"{builtin.SUPABASE_SYNC.name}:{target}"


async def enqueue_syncs(runtime: Any) -> list[str]:
    """Enqueue one sync per configured target (idempotent while one is active); their names."""
    config: WorkerConfig = runtime.config
    names = sorted(configured_targets(config))
    for name in names:
        payload = {} if name == DEFAULT_TARGET else {"target": name}
        await runtime.queue.enqueue(
            builtin.SUPABASE_SYNC.name, payload, unique_key=unique_key(name)
        )
    return names


def _every(seconds: float) -> dict[str, Any]:
    """arq cron arguments for "every ``seconds``" (whole seconds, at most hourly)."""
    step = max(1, math.ceil(seconds))
    if step < 60:
        return {"second": set(range(0, 60, step))}
    minutes = min(60, max(1, step // 60))
    return {"minute": set(range(0, 60, minutes)), "second": {0}}


def cron_jobs(config: WorkerConfig, prefix: str, runtime_key: str) -> list[CronJob]:
    """The cron entry, or none when no target is configured or the interval is 0."""
    if config.supabase_sync_interval_seconds <= 0:
        return []
    try:
        if not configured_targets(config):
            return []
    except CesarError as exc:  # reported by each sync job as well; the worker still starts
        log.error("sync targets misconfigured, no scheduled sync: %s", exc)
        return []

    async def cron_supabase_sync(ctx: dict[str, Any]) -> None:
        try:
            await enqueue_syncs(ctx[runtime_key])
        except Exception:
            metrics.CRON_RUNS.labels(DUTY, "error").inc()
            log.exception("scheduling sync.supabase failed")
            return
        metrics.CRON_RUNS.labels(DUTY, "ok").inc()

    return [
        cron(
            cron_supabase_sync,
            name=f"{prefix}.supabase_sync",
            timeout=60,
            **_every(config.supabase_sync_interval_seconds),
        )
    ]
