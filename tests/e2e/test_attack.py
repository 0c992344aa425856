"""Attacks on the job system with real processes (a private Redis; the worker as a process)."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
from cesar_core.db import Database
from cesar_core.jobs import JobQueue, load_registry
from cesar_core.jobs.settings import JobSettings
from cesar_core.redis import create_redis

from tests.e2e.helpers import query
from tests.e2e.processes import VENV_BIN, PrivateRedis, Service, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]


async def _enqueue(database_url: str, redis_url: str, payload: dict[str, object]) -> str:
    settings = JobSettings(DATABASE_URL=database_url, REDIS_URL=redis_url)  # type: ignore[call-arg]
    db = await Database.open(database_url)
    redis = create_redis(redis_url)
    try:
        job = await JobQueue(db, redis, settings, load_registry()).enqueue(
            "maintenance.noop", payload, max_attempts=1
        )
    finally:
        await redis.aclose()
        await db.close()
    return str(job.id)


def test_sigterm_during_a_redis_outage_still_gives_running_jobs_their_grace(
    database_url: str,
) -> None:
    """The grace period of a graceful stop (``WORKER_SHUTDOWN_GRACE_SECONDS``) is arq's
    ``job_completion_wait``: ``_stop_when`` asks the *current arq worker* to wait. During a
    Redis outage there is no arq worker (``serve`` is between reconnects), so SIGTERM leaves
    the loop at once and ``runtime.stop`` -> ``executor.stop`` cancels every running job
    immediately. Yet running jobs do not need Redis at all (they outlive arq by design): a job
    2 s from done is interrupted and runs again from scratch. Fix: implement the grace in the
    runtime (``executor.draining = True``; wait up to the grace for ``executor._tasks``;
    then ``executor.stop``), independent of arq."""
    redis = PrivateRedis().start()
    log_dir = Path(tempfile.mkdtemp(prefix="cesar-attack-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JOB_QUEUE_", "WORKER_"))},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "ENVIRONMENT": "development",
        "LOG_JSON": "false",
        "WORKER_METRICS_PORT": "0",
        "WORKER_ID": "attack-worker",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "20",
        "MEMORY_CONSOLIDATE_SECONDS": "0",
        "REPUTATION_COMPUTE_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    worker = Service("worker", [str(VENV_BIN / "cesar-worker")], env, log_dir).start()
    try:
        job_id = asyncio.run(_enqueue(database_url, redis.url, {"sleep_seconds": 6}))

        def status() -> str:
            return str(
                query(database_url, "SELECT status FROM job_queue WHERE id = $1::UUID", job_id)[0][
                    "status"
                ]
            )

        wait_until(lambda: status() == "running", 60, "the job running")
        redis.stop()  # Redis goes away; the job runs on (it needs no Redis)
        time.sleep(2)
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGTERM)  # a deploy: 20 s of grace
        worker.proc.wait(60)
        row = query(
            database_url, "SELECT status, last_error FROM job_queue WHERE id = $1::UUID", job_id
        )[0]
        assert row["status"] == "succeeded", (row["status"], row["last_error"], worker.tail())
    finally:
        worker.stop()
        redis.stop()
