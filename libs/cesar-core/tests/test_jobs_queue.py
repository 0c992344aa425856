"""cesar_core.jobs: the queue API, the registry and backoff (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from cesar_core.db import Database
from cesar_core.errors import InvalidJobState, InvalidPayload, JobNotFound, UnknownJobType
from cesar_core.jobs import JobQueue, JobSettings, JobStatus, load_registry
from cesar_core.jobs.backoff import backoff_seconds
from cesar_core.jobs.dispatch import arq_job_id
from cesar_core.redis import RedisClient, create_redis


@pytest_asyncio.fixture
async def queue(db: Database, redis: RedisClient, redis_prefix: str) -> AsyncIterator[JobQueue]:
    settings = JobSettings(job_queue_name=f"{redis_prefix}queue")  # type: ignore[call-arg]
    q = JobQueue(db, redis, settings, load_registry())
    yield q
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT id, dispatch_token FROM job_queue")
    keys = [f"arq:job:{arq_job_id(r['id'], r['dispatch_token'])}" for r in rows if r[1]]
    if keys:
        await redis.delete(*keys)


async def test_enqueue_writes_row_and_arq_job(queue: JobQueue, redis: RedisClient) -> None:
    job = await queue.enqueue("maintenance.noop", {"echo": "x"})
    assert job.status == JobStatus.QUEUED
    row = await queue.get(job.id)
    assert row.status == JobStatus.QUEUED and row.payload == {
        "sleep_seconds": 0.0,
        "fail": None,
        "echo": "x",
    }
    arq_id = arq_job_id(row.id, row.dispatch_token or "")
    assert await redis.exists(f"arq:job:{arq_id}")
    assert await redis.zscore(queue.queue_name, arq_id) is not None


async def test_unique_key_returns_the_active_job(queue: JobQueue) -> None:
    first = await queue.enqueue("maintenance.noop", {}, unique_key="daily")
    second = await queue.enqueue("maintenance.noop", {"echo": 1}, unique_key="daily")
    assert second.id == first.id
    assert len(await queue.list()) == 1
    await queue.cancel(first.id)
    third = await queue.enqueue("maintenance.noop", {}, unique_key="daily")
    assert third.id != first.id


async def arq_deliveries(queue: JobQueue, redis: RedisClient, job_id: uuid.UUID) -> list[str]:
    """Every arq delivery of the row: its queue entries and its job keys (one per token)."""
    queued = [
        m.decode() if isinstance(m, bytes) else m
        for m in await redis.zrange(queue.queue_name, 0, -1)
    ]
    keys = [k async for k in redis.scan_iter(match=f"arq:job:{job_id}:*")]
    assert len(keys) == len([m for m in queued if m.startswith(f"{job_id}:")])
    return queued


async def test_unique_key_pushes_one_delivery(queue: JobQueue, redis: RedisClient) -> None:
    first = await queue.enqueue("maintenance.noop", {}, unique_key="once")
    again = await queue.enqueue("maintenance.noop", {"echo": 1}, unique_key="once")
    assert again.id == first.id
    row = await queue.get(first.id)
    assert await arq_deliveries(queue, redis, first.id) == [
        arq_job_id(first.id, row.dispatch_token or "")
    ]


async def test_concurrent_unique_key_enqueues_push_one_delivery(
    queue: JobQueue, redis: RedisClient
) -> None:
    jobs = await asyncio.gather(
        *(queue.enqueue("maintenance.noop", {"echo": i}, unique_key="race") for i in range(8))
    )
    assert len({j.id for j in jobs}) == 1
    assert len(await queue.list()) == 1
    row = await queue.get(jobs[0].id)
    assert row.status == JobStatus.QUEUED
    assert await arq_deliveries(queue, redis, row.id) == [
        arq_job_id(row.id, row.dispatch_token or "")
    ]


async def test_scheduled_job_stays_pending_without_arq_job(
    queue: JobQueue, redis: RedisClient
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    job = await queue.enqueue("maintenance.noop", {}, run_after=later)
    row = await queue.get(job.id)
    assert (row.status, row.dispatch_token, row.run_after) == (JobStatus.PENDING, None, later)
    assert await redis.zcard(queue.queue_name) == 0


async def test_validation_errors_name_the_problem(queue: JobQueue) -> None:
    with pytest.raises(UnknownJobType, match=r"no\.such"):
        await queue.enqueue("no.such", {})
    with pytest.raises(InvalidPayload, match="sleep_seconds"):
        await queue.enqueue("maintenance.noop", {"sleep_seconds": -1})
    with pytest.raises(InvalidPayload, match="unexpected"):
        await queue.enqueue("maintenance.noop", {"unexpected": 1})
    with pytest.raises(InvalidPayload, match="template_id or template_name"):
        await queue.enqueue("workflow.execute", {})
    with pytest.raises(InvalidPayload, match="cannot sync"):
        await queue.enqueue("sync.supabase", {"tables": ["api_keys"]})
    with pytest.raises(InvalidPayload, match="max_attempts"):
        await queue.enqueue("maintenance.noop", {}, max_attempts=0)
    assert await queue.list() == []


async def test_sync_target_url_is_refused(queue: JobQueue) -> None:
    """Sync targets are the operator's configuration: a payload may only name one."""
    secret = "s3" + "cret"  # built at runtime: no credential-looking literal in the repo
    refused = [
        f"postgresql://sync:{secret}@replica.example:5432/cesar",
        "postgresql://sync@replica/cesar",
        "postgresql://10.0.0.7:6379/x",
    ]
    for url in refused:
        with pytest.raises(InvalidPayload, match="SUPABASE_TARGETS") as caught:
            await queue.enqueue("sync.supabase", {"target_url": url})
        assert secret not in str(caught.value)
    with pytest.raises(InvalidPayload, match="target"):
        await queue.enqueue("sync.supabase", {"target": "Not A Name!"})
    assert await queue.list() == []
    job = await queue.enqueue("sync.supabase", {"target": "replica-2"})
    assert (await queue.get(job.id)).payload["target"] == "replica-2"


async def test_cancel_and_retry_states(queue: JobQueue) -> None:
    job = await queue.enqueue("maintenance.noop", {})
    with pytest.raises(InvalidJobState, match="only failed or cancelled"):
        await queue.retry(job.id)
    cancelled = await queue.cancel(job.id)
    assert cancelled.status == JobStatus.CANCELLED and cancelled.finished_at is not None
    with pytest.raises(InvalidJobState, match="already cancelled"):
        await queue.cancel(job.id)
    retried = await queue.retry(job.id)
    assert retried.status == JobStatus.QUEUED and retried.attempts == 0
    with pytest.raises(JobNotFound):
        await queue.get(uuid.UUID(int=0))


async def test_list_filters_search_and_pagination(queue: JobQueue) -> None:
    jobs = [await queue.enqueue("maintenance.noop", {"echo": f"item-{i}"}) for i in range(5)]
    await queue.cancel(jobs[0].id)
    assert [j.id for j in await queue.list(status="cancelled")] == [jobs[0].id]
    assert len(await queue.list(job_type="maintenance.noop")) == 5
    assert [j.id for j in await queue.list(search="ITEM-3")] == [jobs[3].id]
    assert [j.id for j in await queue.list(search=str(jobs[2].id)[:8])] == [jobs[2].id]
    page1 = await queue.list(limit=2)
    page2 = await queue.list(limit=2, before=(page1[-1].created_at, page1[-1].id))
    page3 = await queue.list(limit=2, before=(page2[-1].created_at, page2[-1].id))
    seen = [j.id for j in page1 + page2 + page3]
    assert sorted(seen) == sorted(j.id for j in jobs) and len(set(seen)) == 5


async def test_redis_down_leaves_rows_pending(db: Database, redis_prefix: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = create_redis(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    settings = JobSettings(job_queue_name=f"{redis_prefix}queue")  # type: ignore[call-arg]
    queue = JobQueue(db, dead, settings, load_registry())
    try:
        job = await queue.enqueue("maintenance.noop", {})
        many = await queue.enqueue_many("maintenance.noop", [{}, {}])
    finally:
        await dead.aclose()
    assert job.status == JobStatus.PENDING
    rows = await queue.list()
    assert {r.status for r in rows} == {JobStatus.PENDING} and len(rows) == 3
    # tokens released: the reconciler may dispatch them at once
    assert all(r.dispatch_token is None for r in rows) and len(many) == 2


def test_backoff_doubles_with_jitter_and_cap() -> None:
    def mid() -> float:
        return 0.5

    assert [backoff_seconds(n, base_minutes=5, max_minutes=60, rand=mid) for n in (1, 2, 3)] == [
        300.0,
        600.0,
        1200.0,
    ]
    assert backoff_seconds(10, base_minutes=5, max_minutes=60, rand=mid) == 3600.0
    assert backoff_seconds(1, base_minutes=5, max_minutes=60, rand=lambda: 0.0) == 240.0
    assert backoff_seconds(1, base_minutes=5, max_minutes=60, rand=lambda: 1.0) == 360.0


def test_registry_lists_builtins_and_plugins() -> None:
    registry = load_registry()
    assert {
        "workflow.execute",
        "ingest.financial",
        "sync.supabase",
        "maintenance.refresh_views",
        "maintenance.noop",
    } <= set(registry.names())
    assert registry.validate("ingest.financial", {"data": "a,b"})["source"] == "manual"
