"""The job wrapper and the reconciler, driven directly with an injected clock (no sleeping)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from cesar_core.db import Database
from cesar_core.jobs import JobQueue, JobRegistry, JobSpec, JobStatus, JobType
from cesar_core.jobs.dispatch import arq_job_id
from cesar_core.redis import RedisClient
from cesar_worker.runtime import WorkerRuntime
from pydantic import BaseModel

from .conftest import FakeClock, expire_leases


class Flaky(BaseModel):
    fail_times: int = 0
    key: str = "k"
    sleep: float = 0.0


CALLS: dict[str, int] = {}


async def flaky(ctx: Any, payload: Flaky) -> dict[str, Any]:
    CALLS[payload.key] = CALLS.get(payload.key, 0) + 1
    if payload.sleep:
        await asyncio.sleep(payload.sleep)
    if CALLS[payload.key] <= payload.fail_times:
        raise RuntimeError(f"boom {CALLS[payload.key]}")
    return {"calls": CALLS[payload.key]}


GATES: dict[str, asyncio.Event] = {}


class Gated(BaseModel):
    gate: str


async def gated(ctx: Any, payload: Gated) -> str:
    await GATES[payload.gate].wait()
    return f"done by {ctx.worker_id}"


class Nul(BaseModel):
    fail: bool = False


async def nul(ctx: Any, payload: Nul) -> dict[str, Any]:
    if payload.fail:
        raise RuntimeError("bad\x00byte")
    return {"text": "a\x00b"}


@pytest.fixture
def registry() -> JobRegistry:
    from cesar_core.jobs import load_registry

    reg = load_registry()
    reg.register(JobType(JobSpec("test.flaky", Flaky, timeout_seconds=0.5), flaky))
    reg.register(JobType(JobSpec("test.gated", Gated, timeout_seconds=60), gated))
    reg.register(JobType(JobSpec("test.nul", Nul, timeout_seconds=5), nul))
    return reg


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    """The call counters and gates are per test: nothing leaks from one test to the next."""
    CALLS.clear()
    GATES.clear()


async def deliver(rt: WorkerRuntime, job_id: UUID) -> str:
    job = await rt.queue.get(job_id)
    assert job.dispatch_token
    outcome = await rt.executor.run(arq_job_id(job.id, job.dispatch_token))
    await rt.mirror.drain()
    return outcome


async def test_lifecycle_pending_queued_running_succeeded(
    runtime: WorkerRuntime, redis: RedisClient, queue_name: str
) -> None:
    job = await runtime.queue.enqueue("maintenance.noop", {"echo": {"a": 1}})
    assert job.status == JobStatus.QUEUED
    stored = await runtime.queue.get(job.id)
    assert stored.status == JobStatus.QUEUED
    assert await redis.zscore(queue_name, arq_job_id(job.id, stored.dispatch_token or ""))
    assert await deliver(runtime, job.id) == "succeeded"
    done = await runtime.queue.get(job.id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.attempts == 1
    assert done.result == {"ok": True, "echo": {"a": 1}}
    assert done.worker_id == runtime.worker_id
    assert done.started_at is not None and done.finished_at is not None


async def test_retry_with_backoff_then_success(runtime: WorkerRuntime, clock: FakeClock) -> None:
    job = await runtime.queue.enqueue("test.flaky", {"fail_times": 1, "key": "retry1"})
    assert await deliver(runtime, job.id) == "retrying"
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.RETRYING
    assert row.attempts == 1
    assert row.last_error == "RuntimeError: boom 1"
    # JOB_QUEUE_BACKOFF_MINUTES=0.001 -> 0.06 s for attempt 1 (rand fixed: no jitter)
    assert row.run_after == clock.now + timedelta(seconds=0.06)
    assert row.dispatch_token is None

    report = await runtime.reconciler.run_once()  # not due yet
    assert report.dispatched == 0
    clock.advance(seconds=1)
    report = await runtime.reconciler.run_once()
    assert report.dispatched == 1
    assert (await runtime.queue.get(job.id)).status == JobStatus.QUEUED
    assert await deliver(runtime, job.id) == "succeeded"
    row = await runtime.queue.get(job.id)
    assert (row.status, row.attempts, row.result) == (JobStatus.SUCCEEDED, 2, {"calls": 2})


async def test_backoff_doubles_per_attempt(
    db: Database,
    redis: RedisClient,
    registry: JobRegistry,
    clock: FakeClock,
    config: Any,
    arq_cleanup: None,
) -> None:
    cfg = config.model_copy(update={"job_queue_backoff_minutes": 5.0})
    rt = WorkerRuntime(cfg, db, redis, registry, clock=clock, rand=lambda: 0.5)
    await rt.start(serve_metrics=False)
    try:
        job = await rt.queue.enqueue("test.flaky", {"fail_times": 5, "key": "doubling"})
        delays = []
        for _ in range(3):
            before = clock.now
            assert await deliver(rt, job.id) == "retrying"
            row = await rt.queue.get(job.id)
            delays.append((row.run_after - before).total_seconds())
            clock.advance(hours=2)
            assert (await rt.reconciler.run_once()).dispatched == 1
        assert delays == [300.0, 600.0, 1200.0]
    finally:
        await rt.stop()


async def test_exhaustion_ends_failed_with_last_error(
    runtime: WorkerRuntime, clock: FakeClock
) -> None:
    job = await runtime.queue.enqueue(
        "test.flaky", {"fail_times": 99, "key": "exhaust"}, max_attempts=2
    )
    assert await deliver(runtime, job.id) == "retrying"
    clock.advance(minutes=1)
    await runtime.reconciler.run_once()
    assert await deliver(runtime, job.id) == "failed"
    row = await runtime.queue.get(job.id)
    assert (row.status, row.attempts) == (JobStatus.FAILED, 2)
    assert row.last_error == "RuntimeError: boom 2"
    assert row.finished_at == clock.now
    clock.advance(minutes=10)
    assert (await runtime.reconciler.run_once()).dispatched == 0


async def test_timeout_counts_as_a_failed_attempt(runtime: WorkerRuntime) -> None:
    job = await runtime.queue.enqueue("test.flaky", {"sleep": 5, "key": "slow"}, max_attempts=3)
    assert await deliver(runtime, job.id) == "retrying"
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.RETRYING
    assert row.last_error is not None and "timed out after 0.5s" in row.last_error


async def test_cancelled_job_is_not_run(runtime: WorkerRuntime) -> None:
    job = await runtime.queue.enqueue("test.flaky", {"key": "never"})
    token = (await runtime.queue.get(job.id)).dispatch_token
    cancelled = await runtime.queue.cancel(job.id)
    assert cancelled.status == JobStatus.CANCELLED
    assert await runtime.executor.run(arq_job_id(job.id, token or "")) == "stale"
    assert "never" not in CALLS
    assert (await runtime.queue.get(job.id)).status == JobStatus.CANCELLED


async def test_cancel_while_running_keeps_cancelled(runtime: WorkerRuntime) -> None:
    GATES["c"] = asyncio.Event()
    job = await runtime.queue.enqueue("test.gated", {"gate": "c"})
    task = asyncio.create_task(deliver(runtime, job.id))
    await _until_status(runtime.queue, job.id, JobStatus.RUNNING)
    await runtime.queue.cancel(job.id)
    GATES["c"].set()
    assert await task == "succeeded"  # the function finished, but its write is stale
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.CANCELLED
    assert row.result is None


async def test_stale_worker_late_update_changes_nothing(
    runtime: WorkerRuntime, clock: FakeClock, config: Any
) -> None:
    GATES["slow"] = asyncio.Event()
    job = await runtime.queue.enqueue("test.gated", {"gate": "slow"})
    first_token = (await runtime.queue.get(job.id)).dispatch_token or ""
    first = asyncio.create_task(runtime.executor.run(arq_job_id(job.id, first_token)))
    await _until_status(runtime.queue, job.id, JobStatus.RUNNING)
    # the first worker stops renewing its lease (as far as the row can tell): taken over
    await expire_leases(runtime.db)
    report = await runtime.reconciler.run_once()
    assert report.redispatched_stalled == 1 and report.dispatched == 1
    second_token = (await runtime.queue.get(job.id)).dispatch_token or ""
    assert second_token != first_token
    GATES["slow"].set()
    assert await runtime.executor.run(arq_job_id(job.id, second_token)) == "succeeded"
    await runtime.mirror.drain()
    done = await runtime.queue.get(job.id)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    finished_at = done.finished_at
    # now the stale first worker finishes and reports: nothing changes
    assert await first == "succeeded"
    runtime.mirror.fail(job.id, first_token, "late failure from a stale worker")
    await runtime.mirror.drain()
    after = await runtime.queue.get(job.id)
    assert (after.status, after.attempts, after.finished_at) == (
        JobStatus.SUCCEEDED,
        2,
        finished_at,
    )
    assert after.last_error is not None and "stopped renewing its lease" in after.last_error
    # and a late redelivery of the first token does not run again
    assert await runtime.executor.run(arq_job_id(job.id, first_token)) == "stale"


async def test_stalled_job_without_attempts_left_fails(
    runtime: WorkerRuntime, clock: FakeClock, config: Any
) -> None:
    GATES["stuck"] = asyncio.Event()
    job = await runtime.queue.enqueue("test.gated", {"gate": "stuck"}, max_attempts=1)
    token = (await runtime.queue.get(job.id)).dispatch_token or ""
    task = asyncio.create_task(runtime.executor.run(arq_job_id(job.id, token)))
    await _until_status(runtime.queue, job.id, JobStatus.RUNNING)
    await expire_leases(runtime.db)
    report = await runtime.reconciler.run_once()
    assert report.failed_stalled == 1
    row = await runtime.queue.get(job.id)
    assert (row.status, row.attempts) == (JobStatus.FAILED, 1)
    GATES["stuck"].set()
    await task


async def test_payload_broken_in_the_row_fails_without_retry(
    runtime: WorkerRuntime, db: Database
) -> None:
    job = await runtime.queue.enqueue("maintenance.noop", {})
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE job_queue SET payload = CAST($2 AS JSONB) WHERE id = $1",
            job.id,
            json.dumps({"sleep_seconds": "soon"}),
        )
    assert await deliver(runtime, job.id) == "failed"
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.FAILED
    assert row.last_error is not None and "sleep_seconds" in row.last_error


async def test_unknown_job_type_waits_visibly_for_a_worker_that_knows_it(
    runtime: WorkerRuntime, db: Database, clock: FakeClock
) -> None:
    """An older worker during a rolling deploy must not fail a job of a type it lacks."""
    job = await runtime.queue.enqueue("maintenance.noop", {}, max_attempts=1)
    async with db.connection() as conn:
        await conn.execute("UPDATE job_queue SET job_type = 'newer.type' WHERE id = $1", job.id)
    assert await deliver(runtime, job.id) == "unknown_type"
    row = await runtime.queue.get(job.id)
    assert (row.status, row.attempts, row.dispatch_token) == (JobStatus.RETRYING, 0, None)
    assert row.last_error is not None
    assert "waiting for a worker that knows job type 'newer.type'" in row.last_error
    delay = runtime.config.job_queue_unknown_type_delay_seconds
    assert row.run_after == clock.now + timedelta(seconds=delay)
    assert (await runtime.reconciler.run_once()).dispatched == 0  # not before the delay
    clock.advance(seconds=delay + 1)
    assert (await runtime.reconciler.run_once()).dispatched == 1  # offered again, still alive


async def test_lost_queued_job_is_dispatched_again(
    runtime: WorkerRuntime, redis: RedisClient, queue_name: str, clock: FakeClock, config: Any
) -> None:
    job = await runtime.queue.enqueue("maintenance.noop", {})
    token = (await runtime.queue.get(job.id)).dispatch_token or ""
    clock.advance(seconds=config.job_queue_lost_grace_seconds + 1)
    assert (await runtime.reconciler.run_once()).redispatched_lost == 0  # still in Redis
    # simulate a flushed Redis: remove exactly this job's arq keys
    await redis.delete(f"arq:job:{arq_job_id(job.id, token)}")
    await redis.zrem(queue_name, arq_job_id(job.id, token))
    report = await runtime.reconciler.run_once()
    assert report.redispatched_lost == 1 and report.dispatched == 1
    new_token = (await runtime.queue.get(job.id)).dispatch_token or ""
    assert new_token != token
    assert await redis.zscore(queue_name, arq_job_id(job.id, new_token))
    assert await runtime.executor.run(arq_job_id(job.id, token)) == "stale"
    assert await deliver(runtime, job.id) == "succeeded"


async def test_heartbeat_rows(runtime: WorkerRuntime, db: Database) -> None:
    await runtime.beat()
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT queue_name, pid, last_seen_at FROM worker_heartbeats WHERE worker_id = $1",
            runtime.worker_id,
        )
    assert row is not None and row["queue_name"] == runtime.config.job_queue_name


async def _until_status(queue: JobQueue, job_id: UUID, status: JobStatus) -> None:
    for _ in range(500):
        if (await queue.get(job_id)).status == status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"job never reached {status}")


async def test_nul_characters_do_not_poison_the_mirror(runtime: WorkerRuntime) -> None:
    """PostgreSQL refuses U+0000; such a result or error must not block the batch it is in."""
    ok = await runtime.queue.enqueue("test.nul", {})
    bad = await runtime.queue.enqueue("test.nul", {"fail": True}, max_attempts=1)
    plain = await runtime.queue.enqueue("maintenance.noop", {})
    ids = []
    for j in (ok, bad, plain):
        ids.append(arq_job_id(j.id, (await runtime.queue.get(j.id)).dispatch_token or ""))
    # delivered together, so the three claims and outcomes share mirror statements
    outcomes = await asyncio.gather(*(runtime.executor.run(i) for i in ids))
    await runtime.mirror.drain()
    assert outcomes == ["succeeded", "failed", "succeeded"]
    assert (await runtime.queue.get(ok.id)).result == {"text": "a\ufffdb"}
    failed = await runtime.queue.get(bad.id)
    assert failed.status == JobStatus.FAILED and failed.last_error == "RuntimeError: bad\ufffdbyte"
    assert (await runtime.queue.get(plain.id)).status == JobStatus.SUCCEEDED
