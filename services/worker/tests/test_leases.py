"""Jobs that survive real faults (leases, self-fencing, the reconciler loop, the mirror under
bad values, attempt history, retention). Each test names the failure it guards against."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from arq.constants import in_progress_key_prefix
from arq.worker import Retry
from cesar_core.db import Database
from cesar_core.jobs import JobRegistry, JobStatus
from cesar_core.jobs.dispatch import arq_job_id, arq_states, push_jobs
from cesar_core.redis import RedisClient
from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.main import run_job
from cesar_worker.reconciler import GAUGE_SECONDS
from cesar_worker.runtime import WorkerRuntime

from .conftest import FakeClock, RedisServer, expire_leases, wait_for
from .gates import (
    GATES,
    STARTS,
    fresh_gates,  # noqa: F401  (autouse: counters and gates per test)
    gate,
    gate_registry,
    token_of,
    until,
)


@pytest.fixture
def registry() -> JobRegistry:
    return gate_registry()


async def attempts(db: Database, job_id: UUID) -> list[tuple[int, str | None]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT attempt, outcome FROM job_attempts WHERE job_id = $1 ORDER BY started_at",
            job_id,
        )
    return [(r["attempt"], r["outcome"]) for r in rows]


# -- 1. attempts are keyed by (row, token), not by row --------------------------------------


async def test_stale_attempt_finishing_keeps_the_newer_attempt_of_the_same_row(
    runtime: WorkerRuntime,
) -> None:
    """Before: the worker keyed running jobs by row id, so the stale attempt's end removed the
    newer attempt's entry; the newer one stopped heartbeating and was taken over in turn."""
    first_gate = gate("g1")
    job = await runtime.queue.enqueue("test.gate", {"gate": "g1"}, max_attempts=3)
    first = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    await expire_leases(runtime.db)
    assert (await runtime.reconciler.run_once()).redispatched_stalled == 1
    second_token = await token_of(runtime, job.id)
    second = asyncio.create_task(runtime.executor.run(arq_job_id(job.id, second_token)))
    await wait_for(lambda: (job.id, second_token) in runtime.executor.running, timeout=10)
    # the first attempt is fenced by the worker's next renewal (it lost the lease) ...
    assert await runtime.leases.renew() == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    # ... and its end leaves the newer attempt's entry (and lease) alone
    assert (job.id, second_token) in runtime.executor.running
    assert await runtime.leases.renew() == 0
    first_gate.set()
    assert await second == "succeeded"
    await runtime.mirror.drain()
    done = await runtime.queue.get(job.id)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    assert await attempts(runtime.db, job.id) == [(1, "lost"), (2, "succeeded")]


# -- 2. an outage never turns live jobs into lost ones; lost leases fence ------------------


async def test_after_an_outage_live_workers_renew_before_any_takeover(
    runtime: WorkerRuntime, db: Database
) -> None:
    """Before: an outage longer than the stall threshold made the reconciler take over every
    live running job before its worker could renew, and the old copy kept running."""
    gate("live")
    job = await runtime.queue.enqueue("test.gate", {"gate": "live"})
    task = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    async with db.connection() as conn:  # the database was unreachable for a minute
        await conn.execute(
            "UPDATE job_queue SET lease_expires_at = now() - INTERVAL '50 seconds'"
            " WHERE status = 'running'"
        )
        await conn.execute(
            "INSERT INTO job_lease_clock (id, last_tick_at, reachable_since)"
            " VALUES (1, now() - INTERVAL '60 seconds', now() - INTERVAL '1 hour')"
            " ON CONFLICT (id) DO UPDATE SET last_tick_at = now() - INTERVAL '60 seconds',"
            " reachable_since = now() - INTERVAL '1 hour'"
        )
    report = await runtime.reconciler.run_once()
    assert report.takeover_allowed is False and report.redispatched_stalled == 0
    assert await runtime.leases.renew() == 0  # the live worker renews first
    await expire_leases_only_clock(db)  # a lease later, the database has been up all along
    assert (await runtime.reconciler.run_once()).redispatched_stalled == 0
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.RUNNING and STARTS == {"live": 1}
    GATES["live"].set()
    assert await task == "succeeded"


async def expire_leases_only_clock(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE job_lease_clock SET reachable_since = now() - INTERVAL '1 hour',"
            " last_tick_at = now()"
        )


async def test_a_taken_over_attempt_stops_within_one_renewal(runtime: WorkerRuntime) -> None:
    gate("twice")
    job = await runtime.queue.enqueue("test.gate", {"gate": "twice"})
    old = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    await expire_leases(runtime.db)
    await runtime.reconciler.run_once()
    assert await runtime.leases.renew() == 1
    with pytest.raises(asyncio.CancelledError):
        await old
    assert runtime.executor.running == {}
    # the fenced copy wrote nothing: the row waits for its new delivery
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.QUEUED and row.attempts == 1


async def test_cancelling_a_running_job_stops_it(runtime: WorkerRuntime, db: Database) -> None:
    gate("cancel-me")
    job = await runtime.queue.enqueue("test.gate", {"gate": "cancel-me"})
    task = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    await runtime.queue.cancel(job.id)
    assert await runtime.leases.renew() == 1
    with pytest.raises(asyncio.CancelledError):
        await task
    await runtime.mirror.drain()
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.CANCELLED
    assert await attempts(db, job.id) == [(1, "cancelled")]


async def test_leases_are_judged_by_the_database_clock_not_the_workers(
    db: Database, redis: RedisClient, registry: JobRegistry, config: WorkerConfig, arq_cleanup: None
) -> None:
    """Before: liveness compared one host's timestamps with another's clock; a worker 25 s
    behind had all its jobs taken over."""
    behind = FakeClock()
    behind.now = datetime.now(UTC) - timedelta(seconds=25)
    slow_host = WorkerRuntime(config, db, redis, registry, clock=behind, rand=lambda: 0.5)
    fair_host = WorkerRuntime(config, db, redis, registry, rand=lambda: 0.5)
    await slow_host.start(serve_metrics=False, loops=False)
    await fair_host.start(serve_metrics=False, loops=False)
    try:
        gate("skew", open_=False)
        job = await slow_host.queue.enqueue("test.gate", {"gate": "skew"})
        task = asyncio.create_task(
            slow_host.executor.run(arq_job_id(job.id, await token_of(slow_host, job.id)))
        )
        await until(slow_host, job.id, JobStatus.RUNNING)
        await expire_leases_only_clock(db)  # takeover allowed as far as reachability goes
        report = await fair_host.reconciler.run_once()
        assert report.redispatched_stalled == 0 and report.failed_stalled == 0
        assert (await fair_host.queue.get(job.id)).status == JobStatus.RUNNING
        GATES["skew"].set()
        assert await task == "succeeded"
    finally:
        await slow_host.stop()
        await fair_host.stop()


# -- 3. one bad value cannot wedge the mirror ------------------------------------------------


async def test_nan_infinity_and_lone_surrogates_are_stored(runtime: WorkerRuntime) -> None:
    gate("nan", open_=True)
    job = await runtime.queue.enqueue("test.gate", {"gate": "nan", "result": "nan"})
    assert (
        await runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
        == "succeeded"
    )
    await runtime.mirror.drain()
    done = await runtime.queue.get(job.id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.result == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "text": "lone \ufffd x",
    }


async def test_a_refused_write_fails_alone_and_the_rest_of_its_batch_is_written(
    runtime: WorkerRuntime,
) -> None:
    """Before: one value the database refused failed the whole batched statement again and
    again: every claim, heartbeat and outcome of that worker failed."""
    gate("a", open_=True)
    jobs = [await runtime.queue.enqueue("test.gate", {"gate": "a"}) for _ in range(5)]
    keys = [(j.id, await token_of(runtime, j.id)) for j in jobs]
    for row_id, token in keys:
        assert await runtime.mirror.claim(row_id, token) is not None
    bad_id = keys[2][0]
    for row_id, token in keys:
        # a result that is not JSON at all (nothing in the worker produces one any more)
        body = "{not json" if row_id == bad_id else '{"ok": true}'
        runtime.mirror.succeed(row_id, token, body)
    await runtime.mirror.drain()
    for job in jobs:
        row = await runtime.queue.get(job.id)
        if job.id == bad_id:
            assert row.status == JobStatus.FAILED
            assert row.last_error is not None
            assert row.last_error.startswith("the worker could not store this job's outcome")
        else:
            assert (row.status, row.result) == (JobStatus.SUCCEEDED, {"ok": True})
    # and the mirror still works for everyone afterwards
    later = await runtime.queue.enqueue("test.gate", {"gate": "a"})
    assert (
        await runtime.executor.run(arq_job_id(later.id, await token_of(runtime, later.id)))
        == "succeeded"
    )


async def test_a_result_that_cannot_be_serialised_fails_the_job_at_once(
    runtime: WorkerRuntime,
) -> None:
    """Before: the error was raised outside the wrapper; the row stayed running until the
    stall threshold and ended with a misleading "stopped heartbeating"."""
    gate("loop", open_=True)
    job = await runtime.queue.enqueue("test.gate", {"gate": "loop", "result": "circular"})
    assert (
        await runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id))) == "failed"
    )
    await runtime.mirror.drain()
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.FAILED
    assert row.last_error is not None and "result cannot be stored" in row.last_error
    assert runtime.executor.running == {}


# -- 4. an orphaned in-progress delivery is re-dispatched -----------------------------------


async def test_a_delivery_arq_started_but_nobody_claimed_is_dispatched_again(
    runtime: WorkerRuntime, redis: RedisClient, clock: FakeClock
) -> None:
    """Before: kill -9 between arq starting a job and the claim left the row queued for about
    an hour (arq's in-progress key), and the reconciler counted it as "still in Redis"."""
    job = await runtime.queue.enqueue("test.gate", {"gate": "orphan"})
    old_token = await token_of(runtime, job.id)
    # what arq does when it starts a job; then the process dies before the claim
    await redis.psetex(in_progress_key_prefix + arq_job_id(job.id, old_token), 3_600_000, b"1")
    grace = runtime.config.job_queue_lost_grace_seconds
    ticks = [0.0]
    runtime.reconciler.monotonic = lambda: ticks[0]
    clock.advance(seconds=grace + 1)
    assert (await runtime.reconciler.run_once()).redispatched_orphans == 0  # first sight
    ticks[0] += grace + 1
    report = await runtime.reconciler.run_once()
    assert report.redispatched_orphans == 1 and report.dispatched == 1
    new_token = await token_of(runtime, job.id)
    assert new_token != old_token
    gate("orphan", open_=True)
    assert await runtime.executor.run(arq_job_id(job.id, new_token)) == "succeeded"


# -- 5/6. the reconciler is a loop of its own; job tasks outlive arq ------------------------


@contextlib.asynccontextmanager
async def runtime_on(
    server: RedisServer, config: WorkerConfig, db: Database, registry: JobRegistry, *, loops: bool
) -> AsyncIterator[WorkerRuntime]:
    """A worker runtime on a Redis server of the test's own (to stop and start at will)."""
    from cesar_core.redis import create_redis

    cfg = config.model_copy(update={"redis_url": config.redis_url.__class__(server.url)})
    redis = create_redis(server.url)
    rt = WorkerRuntime(cfg, db, redis, registry, rand=lambda: 0.5)
    await rt.start(serve_metrics=False, loops=loops)
    try:
        yield rt
    finally:
        await rt.stop()
        with contextlib.suppress(Exception):
            await redis.aclose()


OwnRuntime = Callable[..., contextlib.AbstractAsyncContextManager[WorkerRuntime]]


@pytest.fixture
def own_runtime(
    db: Database,
    registry: JobRegistry,
    config: WorkerConfig,
    own_redis: RedisServer,
    arq_cleanup: None,
) -> OwnRuntime:
    """``own_runtime(loops=...)``: a worker runtime on the test's own Redis server."""
    return functools.partial(runtime_on, own_redis, config, db, registry)


async def test_the_reconciler_runs_while_redis_is_down(
    own_redis: RedisServer, own_runtime: OwnRuntime
) -> None:
    """Before: the reconciler was an arq cron job: behind a backlog it waited for a slot, and
    while Redis was down it did not run at all."""
    async with own_runtime(loops=True) as rt:
        gate("down")
        job = await rt.queue.enqueue("test.gate", {"gate": "down"}, max_attempts=1)
        async with rt.db.connection() as conn:  # a dead worker's attempt: running, lease expired
            await conn.execute(
                "UPDATE job_queue SET status = 'running', attempts = 1, worker_id = 'dead',"
                " dispatch_token = 'dead-token', lease_expires_at = now() WHERE id = $1",
                job.id,
            )
        own_redis.stop()
        await expire_leases(rt.db)
        row = await until(rt, job.id, JobStatus.FAILED)
        assert row.last_error is not None and "worker dead stopped renewing" in row.last_error


async def test_a_push_redis_refuses_gives_claimed_rows_their_status_back(
    own_redis: RedisServer, own_runtime: OwnRuntime
) -> None:
    """The claim marks rows ``queued`` in the same statement (one row version, not two); when
    Redis then refuses the push, a ``retrying`` row must come back ``retrying`` with no token
    (not ``queued`` with nothing in arq, not relabelled ``pending``) and go out on the next
    pass."""
    async with own_runtime(loops=False) as rt:
        async with rt.db.connection() as conn:
            row_id = await conn.fetchval(
                "INSERT INTO job_queue (job_type, payload, status, attempts, run_after) "
                "VALUES ('test.gate', '{\"gate\": \"back\"}', 'retrying', 1, "
                "now() - interval '1 minute') RETURNING id"
            )
        own_redis.stop()
        report = await rt.reconciler.run_once()
        assert not report.redis_available and report.dispatched == 0
        released = await rt.queue.get(row_id)
        assert (released.status, released.dispatch_token) == (JobStatus.RETRYING, None)
        own_redis.start()
        assert (await rt.reconciler.run_once()).dispatched == 1
        sent = await rt.queue.get(row_id)
        assert sent.status == JobStatus.QUEUED and sent.dispatch_token is not None
        assert await arq_states(rt.redis, rt.queue.queue_name, [(row_id, sent.dispatch_token)]) == [
            "queued"
        ]


async def test_a_delivery_cancelled_while_claiming_still_runs(runtime: WorkerRuntime) -> None:
    """Before: a delivery cancelled while its claim waited to be batched left the row running
    with nothing behind it (arq cancels its tasks when Redis blips)."""
    gate("blip", open_=True)
    job = await runtime.queue.enqueue("test.gate", {"gate": "blip"}, max_attempts=1)
    delivery = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await asyncio.sleep(0)  # the claim is waiting in the mirror's batch
    delivery.cancel()
    done = await until(runtime, job.id, JobStatus.SUCCEEDED)
    assert done.result == {"gate": "blip"} and STARTS == {"blip": 1}


async def test_an_unclaimable_delivery_goes_back_to_arq(
    runtime: WorkerRuntime, database_url: str
) -> None:
    """Before: a delivery whose claim failed (database error) was dropped from arq and waited
    for the reconciler's slow path."""
    job = await runtime.queue.enqueue("test.gate", {"gate": "x"})
    token = await token_of(runtime, job.id)
    unreachable = await Database.open(database_url)
    await unreachable.close()  # every acquire now fails like a lost database
    runtime.mirror.db = unreachable
    try:
        with pytest.raises(Retry):
            await run_job({"cesar": runtime, "job_id": arq_job_id(job.id, token)})
    finally:
        runtime.mirror.db = runtime.db
    assert (await runtime.queue.get(job.id)).status == JobStatus.QUEUED


# -- 7. lost-job detection walks every queued row ------------------------------------------


async def test_lost_rows_behind_a_thousand_queued_ones_are_found(
    runtime: WorkerRuntime, redis: RedisClient, queue_name: str, clock: FakeClock
) -> None:
    """Before: only the oldest batch of queued rows was checked; lost rows behind 1,000
    legitimately queued ones were never found."""
    runtime.reconciler.batch_size = 200
    runtime.reconciler.max_batches = 2  # 400 rows a pass: a walk needs several passes
    legit = await runtime.queue.enqueue_many("test.gate", [{"gate": "q"}] * 1000)
    clock.advance(seconds=1)
    lost = await runtime.queue.enqueue_many("test.gate", [{"gate": "lost"}] * 10)
    for job in lost:
        key = arq_job_id(job.id, job.dispatch_token or "")
        await redis.delete(f"arq:job:{key}")
        await redis.zrem(queue_name, key)
    clock.advance(seconds=runtime.config.job_queue_lost_grace_seconds + 1)
    found = 0
    for _ in range(4):
        found += (await runtime.reconciler.run_once()).redispatched_lost
    assert found == 10
    for job in lost:
        assert (await runtime.queue.get(job.id)).dispatch_token != job.dispatch_token
    for job in legit[:5]:
        assert (await runtime.queue.get(job.id)).dispatch_token == job.dispatch_token


# -- attempt history and retention ---------------------------------------------------------


async def test_attempt_history_records_every_outcome(
    runtime: WorkerRuntime, clock: FakeClock
) -> None:
    gate("hist", open_=True)
    job = await runtime.queue.enqueue("test.gate", {"gate": "hist"}, max_attempts=3)
    token = await token_of(runtime, job.id)
    assert await runtime.mirror.claim(job.id, token) is not None
    runtime.mirror.retry(job.id, token, "boom", clock.now, timed_out=False)
    await runtime.mirror.drain()
    await runtime.reconciler.run_once()
    token = await token_of(runtime, job.id)
    assert await runtime.mirror.claim(job.id, token) is not None
    runtime.mirror.retry(job.id, token, "too slow", clock.now, timed_out=True)
    await runtime.mirror.drain()
    await runtime.reconciler.run_once()
    assert (
        await runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
        == "succeeded"
    )
    await runtime.mirror.drain()
    history = await runtime.queue.attempts(job.id)
    assert [(a["attempt"], a["outcome"], a["error"]) for a in history] == [
        (1, "retrying", "boom"),
        (2, "timed_out", "too slow"),
        (3, "succeeded", None),
    ]
    assert all(a["worker_id"] == runtime.worker_id and a["finished_at"] for a in history)


async def test_finished_jobs_older_than_the_retention_are_removed(
    runtime: WorkerRuntime, db: Database, clock: FakeClock
) -> None:
    gate("old", open_=True)
    old = await runtime.queue.enqueue("test.gate", {"gate": "old"})
    assert (
        await runtime.executor.run(arq_job_id(old.id, await token_of(runtime, old.id)))
        == "succeeded"
    )
    await runtime.mirror.drain()
    active = await runtime.queue.enqueue("test.gate", {"gate": "active"})
    clock.advance(days=runtime.config.job_queue_retention_days + 1)
    gate("recent", open_=True)
    recent = await runtime.queue.enqueue("test.gate", {"gate": "recent"})
    assert (
        await runtime.executor.run(arq_job_id(recent.id, await token_of(runtime, recent.id)))
        == "succeeded"
    )
    await runtime.mirror.drain()
    deleted = await runtime.duty("prune")
    assert deleted["job_queue"] >= 1
    async with db.connection() as conn:
        left = {r["id"] for r in await conn.fetch("SELECT id FROM job_queue")}
        history = await conn.fetchval("SELECT count(*) FROM job_attempts WHERE job_id = $1", old.id)
    assert left == {active.id, recent.id} and history == 0


# -- 8. enqueue never answers an error for a job it stored and pushed -----------------------


async def test_enqueue_succeeds_when_only_the_queued_mark_fails(
    runtime: WorkerRuntime, db: Database, redis: RedisClient, queue_name: str
) -> None:
    """Before: enqueue (and retry) answered 500 when their last write failed although the job
    was stored and pushed; the client retried and the job ran twice."""
    async with db.connection() as conn:  # a database that refuses exactly that write
        await conn.execute(
            "CREATE FUNCTION refuse_queued() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.status = 'queued' THEN RAISE EXCEPTION 'disk full'; END IF;"
            " RETURN NEW; END $$"
        )
        await conn.execute(
            "CREATE TRIGGER refuse_queued BEFORE UPDATE ON job_queue"
            " FOR EACH ROW EXECUTE FUNCTION refuse_queued()"
        )
    job = await runtime.queue.enqueue("test.gate", {"gate": "once"})
    row = await runtime.queue.get(job.id)
    assert row.status == JobStatus.PENDING and row.dispatch_token
    assert await redis.zscore(queue_name, arq_job_id(job.id, row.dispatch_token))
    gate("once", open_=True)
    assert await runtime.executor.run(arq_job_id(job.id, row.dispatch_token)) == "succeeded"
    await runtime.mirror.drain()
    assert (await runtime.queue.get(job.id)).status == JobStatus.SUCCEEDED
    assert STARTS == {"once": 1}


# -- serializer: nobody who can write to Redis runs code in the worker -----------------------


async def test_a_pickled_job_body_is_refused(tmp_path: Any) -> None:
    import pickle

    from cesar_core.jobs.dispatch import job_deserializer

    marker = tmp_path / "owned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            import os

            return (os.system, (f"touch {marker}",))

    body = pickle.dumps({"t": 1, "f": "cesar.job", "a": [Evil()], "k": {}, "et": 0})
    with pytest.raises(ValueError):
        job_deserializer(body)
    assert not marker.exists()


async def test_pushed_bodies_are_json(redis: RedisClient, queue_name: str) -> None:
    row_id = UUID(int=7)
    await push_jobs(redis, queue_name, [(row_id, "tok")])
    raw = await redis.get(f"arq:job:{arq_job_id(row_id, 'tok')}")
    assert raw is not None and raw.startswith(b"{")
    await redis.delete(f"arq:job:{arq_job_id(row_id, 'tok')}")
    await redis.zrem(queue_name, arq_job_id(row_id, "tok"))


async def test_a_stale_final_write_changes_nothing_while_the_newer_attempt_runs(
    runtime: WorkerRuntime, db: Database
) -> None:
    """The token, not the status, must block a stale worker: its `succeeded` arrives while the
    row is `running` under the newer attempt's token."""
    gate("newer")
    job = await runtime.queue.enqueue("test.gate", {"gate": "newer"})
    old_token = await token_of(runtime, job.id)
    assert await runtime.mirror.claim(job.id, old_token) is not None
    await expire_leases(db)
    await runtime.reconciler.run_once()
    new_token = await token_of(runtime, job.id)
    assert await runtime.mirror.claim(job.id, new_token) is not None
    before = await runtime.queue.get(job.id)
    async with db.connection() as conn:
        lease_before = await conn.fetchval(
            "SELECT lease_expires_at FROM job_queue WHERE id = $1", job.id
        )
    runtime.mirror.succeed(job.id, old_token, '{"stale": true}')
    runtime.mirror.fail(job.id, old_token, "stale failure")
    await runtime.mirror.drain()
    after = await runtime.queue.get(job.id)
    assert (after.status, after.dispatch_token, after.result, after.heartbeat_at) == (
        JobStatus.RUNNING,
        new_token,
        None,
        before.heartbeat_at,
    )
    async with db.connection() as conn:
        assert (
            await conn.fetchval("SELECT lease_expires_at FROM job_queue WHERE id = $1", job.id)
            == lease_before
        )


async def test_a_connection_killed_by_the_server_is_replaced_not_blamed_on_the_job(
    runtime: WorkerRuntime, db: Database
) -> None:
    """A restart of the database ends the mirror's kept connection with SQLSTATE 57P01: that is
    an outage (write again on a new connection), not a bad write (the job must not fail)."""
    gate("kept", open_=True)
    job = await runtime.queue.enqueue("test.gate", {"gate": "kept"})
    token = await token_of(runtime, job.id)
    assert await runtime.mirror.claim(job.id, token) is not None
    async with db.connection() as conn:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert killed >= 1
    runtime.mirror.succeed(job.id, token, '{"ok": true}')
    await runtime.mirror.drain()
    row = await until(runtime, job.id, JobStatus.SUCCEEDED)
    assert row.result == {"ok": True}


# -- the reconciler's cost at scale: three Redis commands per batch, gauges not every pass ----


async def test_arq_states_tell_waiting_started_and_gone_apart(
    redis: RedisClient, queue_name: str
) -> None:
    """The walk asks Redis once per batch (MGET, ZMSCORE, MGET); each dispatch must still get
    its own verdict, in order."""
    ids = [(UUID(int=100 + n), f"t{n}") for n in range(6)]
    await push_jobs(redis, queue_name, ids[:5])  # the sixth is never pushed
    started, key_gone, entry_gone, started_no_entry = (arq_job_id(*d) for d in ids[1:5])
    await redis.psetex(in_progress_key_prefix + started, 60_000, b"1")
    await redis.delete(f"arq:job:{key_gone}")
    await redis.zrem(queue_name, entry_gone)
    await redis.zrem(queue_name, started_no_entry)
    await redis.psetex(in_progress_key_prefix + started_no_entry, 60_000, b"1")
    try:
        assert await arq_states(redis, queue_name, ids) == [
            "queued",
            "in_progress",
            "missing",  # no job key: arq would drop the entry
            "missing",  # neither waiting nor started
            "in_progress",
            "missing",
        ]
        assert await redis.zcard(queue_name) == 3  # one ZADD carried every entry
    finally:
        keys = [arq_job_id(*d) for d in ids]
        await redis.delete(*(f"arq:job:{k}" for k in keys))
        await redis.delete(*(in_progress_key_prefix + k for k in keys))
        await redis.zrem(queue_name, *keys)


async def test_queue_depth_gauges_are_counted_at_most_every_ten_seconds(
    runtime: WorkerRuntime,
) -> None:
    """Counting job_queue on every pass cost more than the pass itself at a million rows."""
    ticks = [1000.0]
    runtime.reconciler.monotonic = lambda: ticks[0]

    def queued() -> float:
        return float(metrics.QUEUE_DEPTH.labels("queued")._value.get())

    await runtime.reconciler.run_once()
    before = queued()
    await runtime.queue.enqueue("test.gate", {"gate": "depth"})
    ticks[0] += GAUGE_SECONDS - 1
    await runtime.reconciler.run_once()
    assert queued() == before
    ticks[0] += 1
    await runtime.reconciler.run_once()
    assert queued() == before + 1
