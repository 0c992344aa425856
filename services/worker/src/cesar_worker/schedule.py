"""Scheduled jobs: arq cron entries that *enqueue* jobs (as opposed to the cron duties).

One mechanism for every job the worker starts by itself on a period:

| schedule | period setting (0 or unset: off) | job(s), each with a fixed unique key |
|---|---|---|
| `schedule.memory.consolidate` | `MEMORY_CONSOLIDATE_SECONDS` | `memory.consolidate` |
| `schedule.reputation.compute` | `REPUTATION_COMPUTE_SECONDS` | `reputation.compute` |
| `supabase_sync` | `SUPABASE_SYNC_INTERVAL_SECONDS`, with a sync target configured | one `sync.supabase` per target |
| `email_ingest` | `EMAIL_INGEST_INTERVAL_SECONDS`, with `IMAP_URL` set | `ingest.email` |

Each job is enqueued with its unique key, so however many workers tick (only one does per
tick, arq's cron ids) and however slow a run is, at most one such job is active at a time;
the job itself runs like any other (``job_queue`` row, retries, idempotent function).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine
from cesar_core.errors import CesarError
from cesar_core.jobs import Job, builtin

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.sync_targets import DEFAULT_TARGET, configured_targets

__all__ = ["SCHEDULED_JOBS", "Schedule", "every", "scheduled_job_crons", "schedules"]

log = logging.getLogger(__name__)

# brain job type -> the WorkerConfig field holding its period in seconds
SCHEDULED_JOBS = {
    "memory.consolidate": "memory_consolidate_seconds",
    "reputation.compute": "reputation_compute_seconds",
}

Run = tuple[str, dict[str, Any], str]  # (job type, payload, unique key)


@dataclass(frozen=True)
class Schedule:
    name: str  # the cron id after the queue's prefix, and the metric label
    seconds: float
    runs: tuple[Run, ...]

    async def enqueue(self, runtime: Any) -> list[Job]:
        """Enqueue every run (an active job with the same unique key is reused); errors are
        logged and counted, never raised into arq."""
        try:
            jobs = [
                await runtime.queue.enqueue(job_type, payload, unique_key=key)
                for job_type, payload, key in self.runs
            ]
        except Exception:
            metrics.CRON_RUNS.labels(self.name, "error").inc()
            log.exception("scheduled %s: enqueue failed", self.name)
            return []
        metrics.CRON_RUNS.labels(self.name, "ok").inc()
        return jobs


# periods arq's cron can keep exactly: divisors of a minute, of an hour, of a day
_SECOND_STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_MINUTE_STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12, 24)


def every(seconds: float) -> dict[str, Any]:
    """arq cron arguments for "every ``seconds``", rounded *up* to the next period a cron can
    keep exactly (a divisor of a minute, an hour or a day; a day at most), so a schedule never
    fires more often than its setting asks: 45 s runs every minute, 90 s every 2 minutes,
    7,200 s every 2 hours, 86,400 s and longer once a day (at 00:00 UTC)."""
    step = max(1, math.ceil(seconds))
    for second in _SECOND_STEPS:
        if step <= second:
            return {"second": set(range(0, 60, second))}
    for minute in _MINUTE_STEPS:
        if step <= minute * 60:
            return {"minute": set(range(0, 60, minute)), "second": {0}}
    hours = next((h for h in _HOUR_STEPS if step <= h * 3600), 24)
    return {"hour": set(range(0, 24, hours)), "minute": {0}, "second": {0}}


def _sync_runs(config: WorkerConfig) -> tuple[Run, ...]:
    try:
        targets = sorted(configured_targets(config))
    except CesarError as exc:  # each sync job reports it too; the worker still starts
        log.error("sync targets misconfigured, no scheduled sync: %s", exc)
        return ()
    name = builtin.SUPABASE_SYNC.name
    return tuple(
        (name, {} if target == DEFAULT_TARGET else {"target": target}, f"{name}:{target}")
        for target in targets
    )


def schedules(config: WorkerConfig) -> list[Schedule]:
    """The schedules that are on for this configuration."""
    found = [
        Schedule(
            f"schedule.{job_type}",
            float(getattr(config, setting)),
            ((job_type, {"trigger": "scheduled"}, f"scheduled:{job_type}"),),
        )
        for job_type, setting in SCHEDULED_JOBS.items()
    ]
    if config.supabase_sync_interval_seconds > 0:
        found.append(
            Schedule("supabase_sync", config.supabase_sync_interval_seconds, _sync_runs(config))
        )
    if config.imap_url:
        email: tuple[Run, ...] = (("ingest.email", {}, "cron:ingest.email"),)
        found.append(Schedule("email_ingest", config.email_ingest_interval_seconds or 0, email))
    return [s for s in found if s.seconds > 0 and s.runs]


def _cron_function(schedule: Schedule, runtime_key: str) -> WorkerCoroutine:
    async def run(ctx: dict[str, Any]) -> None:
        await schedule.enqueue(ctx[runtime_key])

    run.__qualname__ = run.__name__ = f"scheduled_{schedule.name.replace('.', '_')}"
    return run


def scheduled_job_crons(config: WorkerConfig, prefix: str, runtime_key: str) -> list[CronJob]:
    """One arq cron entry per schedule that is on."""
    return [
        cron(
            _cron_function(schedule, runtime_key),
            name=f"{prefix}.{schedule.name}",
            timeout=60,
            **every(schedule.seconds),
        )
        for schedule in schedules(config)
    ]
