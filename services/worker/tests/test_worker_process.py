"""The worker as a real process (and arq in-process): faults end with every job finished."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from cesar_core.db import Database
from cesar_core.jobs import JobQueue, JobRegistry, JobStatus
from cesar_core.redis import RedisClient, create_redis
from cesar_worker.config import WorkerConfig
from cesar_worker.main import serve
from cesar_worker.runtime import WorkerRuntime

from .conftest import RedisServer, WorkerProcess, free_port, wait_for


async def statuses(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, COUNT(*) AS n FROM job_queue GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


async def all_succeeded(db: Database, count: int) -> bool:
    return (await statuses(db)).get("succeeded", 0) == count


async def test_in_process_worker_runs_jobs_end_to_end(
    config: WorkerConfig,
    db: Database,
    redis: RedisClient,
    registry: JobRegistry,
    arq_cleanup: None,
) -> None:
    runtime = WorkerRuntime(config, db, redis, registry)
    await runtime.start(serve_metrics=False)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, runtime=runtime, stop=stop))
    try:
        queue = runtime.queue
        jobs = [await queue.enqueue("maintenance.noop", {"echo": i}) for i in range(20)]
        jobs += await queue.enqueue_many("maintenance.noop", [{} for _ in range(50)])
        await wait_for(lambda: all_succeeded(db, 70), timeout=30)
        first = await queue.get(jobs[0].id)
        assert first.result == {"ok": True, "echo": 0}
        assert first.attempts == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await runtime.stop()


async def _serve_with_jobs(
    config: WorkerConfig, db: Database, redis: RedisClient, registry: JobRegistry, grace: float
) -> tuple[WorkerRuntime, asyncio.Event, asyncio.Task[None]]:
    cfg = config.model_copy(update={"worker_shutdown_grace_seconds": grace})
    runtime = WorkerRuntime(cfg, db, redis, registry)
    await runtime.start(serve_metrics=False)
    stop = asyncio.Event()
    return runtime, stop, asyncio.create_task(serve(cfg, runtime=runtime, stop=stop))


async def test_graceful_stop_lets_running_jobs_finish(
    config: WorkerConfig, db: Database, redis: RedisClient, registry: JobRegistry, arq_cleanup: None
) -> None:
    runtime, stop, task = await _serve_with_jobs(config, db, redis, registry, grace=30)
    try:
        job = await runtime.queue.enqueue("maintenance.noop", {"sleep_seconds": 1.5})
        await wait_for(lambda: runtime.executor.running, timeout=20, interval=0.02)
        stop.set()  # what SIGTERM does
        await wait_for(lambda: runtime.executor.draining, timeout=20, interval=0.01)
        # a job enqueued while the worker drains (its first job still running) is not taken
        later = await runtime.queue.enqueue("maintenance.noop", {})
        assert runtime.executor.running and not task.done()
        await asyncio.wait_for(task, 30)
        await runtime.stop()
        done = await runtime.queue.get(job.id)
        assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
        left = await runtime.queue.get(later.id)
        assert (left.status, left.attempts) == (JobStatus.QUEUED, 0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_graceful_stop_interrupts_jobs_that_outlive_the_grace_period(
    config: WorkerConfig, db: Database, redis: RedisClient, registry: JobRegistry, arq_cleanup: None
) -> None:
    runtime, stop, task = await _serve_with_jobs(config, db, redis, registry, grace=0.3)
    try:
        job = await runtime.queue.enqueue("maintenance.noop", {"sleep_seconds": 60})
        await wait_for(lambda: runtime.executor.running, timeout=20, interval=0.02)
        stop.set()
        await asyncio.wait_for(task, 30)
        await runtime.stop()
        row = await runtime.queue.get(job.id)
        # left for the reconciler: due at once, the cut-short attempt not counted, old token void
        assert (row.status, row.attempts, row.dispatch_token) == (JobStatus.RETRYING, 0, None)
        assert row.last_error is not None and "interrupted" in row.last_error
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.slow
@pytest.mark.faults
async def test_kill_9_mid_job_another_worker_finishes_it(
    worker_env: dict[str, str],
    queue: JobQueue,
    db: Database,
    start_worker: Callable[..., WorkerProcess],
    arq_cleanup: None,
) -> None:
    port = free_port()
    first = start_worker({**worker_env, "WORKER_ID": "victim", "WORKER_METRICS_PORT": str(port)})
    job = await queue.enqueue("maintenance.noop", {"sleep_seconds": 4})

    async def running_on_victim() -> bool:
        row = await queue.get(job.id)
        return row.status == JobStatus.RUNNING and row.worker_id == "victim"

    await wait_for(running_on_victim, timeout=30)
    # the metrics endpoint of a live worker
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "cesar_jobs_running" in metrics
    first.kill9()
    start_worker({**worker_env, "WORKER_ID": "rescuer"})

    async def done() -> bool:
        return (await queue.get(job.id)).status == JobStatus.SUCCEEDED

    await wait_for(done, timeout=60)
    row = await queue.get(job.id)
    assert row.worker_id == "rescuer"
    assert row.attempts == 2  # the killed attempt counts, honestly
    assert row.last_error is not None and "victim" in row.last_error


@pytest.mark.slow
@pytest.mark.faults
async def test_flushed_redis_every_queued_job_still_ends(
    worker_env: dict[str, str],
    queue: JobQueue,
    db: Database,
    redis: RedisClient,
    queue_name: str,
    start_worker: Callable[..., WorkerProcess],
    arq_cleanup: None,
) -> None:
    jobs = await queue.enqueue_many("maintenance.noop", [{} for _ in range(30)])
    # "flush": delete this queue's arq keys only (Redis is shared with other tests)
    keys = [f"arq:job:{j.id}:{j.dispatch_token}" for j in jobs]
    await redis.delete(queue_name, *keys)
    assert (await statuses(db)) == {"queued": 30}
    start_worker(worker_env)
    await wait_for(lambda: all_succeeded(db, 30), timeout=60)


@pytest.mark.slow
@pytest.mark.faults
async def test_redis_stopped_during_enqueue_rows_wait_and_worker_reconnects(
    worker_env: dict[str, str],
    db: Database,
    config: WorkerConfig,
    registry: JobRegistry,
    own_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    env = {**worker_env, "REDIS_URL": own_redis.url}
    worker = start_worker(env)
    client = create_redis(own_redis.url, timeout=1)
    queue = JobQueue(db, client, config, registry)
    try:
        before = [await queue.enqueue("maintenance.noop", {}) for _ in range(5)]
        await wait_for(lambda: all_succeeded(db, 5), timeout=30)
        own_redis.stop()
        during = [await queue.enqueue("maintenance.noop", {}) for _ in range(5)]
        assert all(j.status == JobStatus.PENDING for j in during)
        assert (await statuses(db)).get("pending") == 5
        await asyncio.sleep(1.5)
        own_redis.start()
        await wait_for(lambda: all_succeeded(db, 10), timeout=60)
        assert worker.proc.poll() is None  # the same process: it reconnected by itself
        for job in before + during:  # each ran once: the outage repeated nothing
            row = await queue.get(job.id)
            assert (row.status, row.attempts) == (JobStatus.SUCCEEDED, 1)
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_health_probe_and_graceful_stop(
    worker_env: dict[str, str],
    db: Database,
    start_worker: Callable[..., WorkerProcess],
    arq_cleanup: None,
) -> None:
    env = {**os.environ, **worker_env, "WORKER_ID": "probe-me"}
    probe = [sys.executable, "-m", "cesar_worker", "check", "--worker-id", "probe-me"]
    first = await asyncio.to_thread(subprocess.run, probe, env=env, capture_output=True, timeout=30)
    assert first.returncode == 1
    worker = start_worker({**worker_env, "WORKER_ID": "probe-me"})

    async def healthy() -> bool:
        proc = await asyncio.create_subprocess_exec(
            *probe, env=env, stdout=asyncio.subprocess.DEVNULL
        )
        return await proc.wait() == 0

    await wait_for(healthy, timeout=30, interval=0.5)
    worker.proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.proc.wait(20)
    assert worker.proc.returncode == 0, worker.output()[-2000:]
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cesar_worker", "check"],
        env={**env, "JOB_QUEUE_MAX_ATTEMPTS": "zero"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "JOB_QUEUE_MAX_ATTEMPTS" in bad.stderr.upper()
