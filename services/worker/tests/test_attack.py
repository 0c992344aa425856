"""Attacks on the job system (leases, mirror, reconciler, health probe). Each test states the
failure it demonstrates; they fail on the code they were written against and pass once the
fix proposed in its docstring is in."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cesar_core.db import Database
from cesar_core.jobs import JobRegistry, JobStatus
from cesar_core.jobs.dispatch import arq_job_id
from cesar_worker.config import WorkerConfig
from cesar_worker.health import heartbeat_age
from cesar_worker.mirror import FLUSH
from cesar_worker.runtime import WorkerRuntime

from .gates import (
    GATES,
    STARTS,
    fresh_gates,  # noqa: F401  (autouse: counters and gates per test)
    gate_registry,
    token_of,
    until,
)


@pytest.fixture
def registry() -> JobRegistry:
    return gate_registry()


# -- A. CockroachDB refuses the mirror's statement -------------------------------------------

_MODIFICATION = re.compile(
    r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE
)


def _modifications(sql: str) -> dict[str, list[str]]:
    """table -> the text of each modification of it (up to the next modification)."""
    found = list(_MODIFICATION.finditer(sql))
    out: dict[str, list[str]] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(sql)
        out.setdefault(match.group(1).lower(), []).append(sql[match.start() : end])
    return out


def test_the_mirror_statement_modifies_each_table_once_as_cockroachdb_requires() -> None:
    """CockroachDB (21.2+, default ``sql.multiple_modifications_of_table.enabled = false``)
    refuses, at plan time with SQLSTATE 0A000, any statement with several modification
    subqueries of one table unless all of them are INSERT without ON CONFLICT. FLUSH has
    ``opened`` (INSERT ... ON CONFLICT DO NOTHING) and ``closed`` (UPDATE) on job_attempts, so
    on CockroachDB every flush is refused: the mirror splits it down to single writes, each
    refused too; every claim fails ("claim refused"), so no job ever runs.
    Fix: write job_attempts in a second statement of the same transaction (or drop the ON
    CONFLICT and make the open/close one UPSERT-free INSERT + a separate UPDATE)."""
    for table, mods in _modifications(FLUSH).items():
        if len(mods) > 1:
            plain_inserts = all(
                m.upper().startswith("INSERT") and "ON CONFLICT" not in m.upper() for m in mods
            )
            assert plain_inserts, f"{table} is modified {len(mods)} times in one statement"


# -- B. a graceful stop while a claim is in flight strands the row -----------------------------


async def test_a_delivery_stopped_while_claiming_is_not_left_running(
    runtime: WorkerRuntime,
) -> None:
    """At graceful stop the executor cancels every delivery task, including one whose claim
    is waiting in the mirror's batch (or already on the wire: a slow database at SIGTERM).
    Cancelling the task cancels the claim's future, but the START stays in the batch and is
    written by ``mirror.close``: the row becomes ``running`` (attempts + 1, a lease) with
    nothing behind it and no interrupt recorded. A lease later the reconciler takes it over
    as ``lost`` and the attempt counts; with ``max_attempts`` 1 the job ends ``failed``
    without ever having run. Fix: when a claim's future is cancelled (``future.cancelled()``
    in ``_flush``) and the claim was written anyway, record it as ``interrupted`` at once (or
    drop a START whose future is cancelled before the flush takes the batch)."""
    GATES["stopped"] = asyncio.Event()
    GATES["stopped"].set()
    job = await runtime.queue.enqueue("test.gate", {"gate": "stopped"}, max_attempts=1)
    runtime.mirror.start_linger = 2.0  # the claim waits in the batch, as on a slow database
    delivery = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await asyncio.sleep(0.05)
    runtime.executor.draining = True  # SIGTERM, grace period over
    await runtime.executor.stop(timeout=1)
    with contextlib.suppress(asyncio.CancelledError):
        await delivery
    await runtime.mirror.drain()  # what mirror.close does at the end of the stop
    row = await runtime.queue.get(job.id)
    assert STARTS == {}  # it never ran
    assert row.status != JobStatus.RUNNING, "stranded: running, counted, nobody behind it"
    assert row.attempts == 0


# -- C. an outage just under the detection gap lets live leases be taken over ------------------


async def test_a_short_outage_never_takes_over_a_live_lease(
    runtime: WorkerRuntime, db: Database, config: WorkerConfig
) -> None:
    """The outage detector counts a gap between reconciler ticks as an outage only above
    ``stall - heartbeat``; that assumes a lease always has ``stall - heartbeat`` left when an
    outage starts. But the renewal loop sleeps a full period *after* each beat (renew +
    heartbeat upsert + migration check: several round trips, ~0.5-1 s on a remote
    CockroachDB), so a live lease can have less left; with several workers ticking, an outage
    a little shorter than the gap is not seen as one, the lease expires during it, and the
    first pass after it takes the live attempt over (counted as lost; fenced a moment later;
    ``failed`` with max_attempts 1). State here: the database was unreachable for just under
    the gap; the live worker's lease ran out 0.2 s before it came back (its renewal retry
    comes within 0.5 s). Fix: renew on a fixed cadence (sleep ``heartbeat - elapsed``) and
    count a gap longer than one renewal period as an outage (or take over only leases that
    expired at least one heartbeat after ``reachable_since``)."""
    GATES["live"] = asyncio.Event()
    job = await runtime.queue.enqueue("test.gate", {"gate": "live"}, max_attempts=1)
    task = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    # the outage: just shorter than stall - heartbeat (the detector's threshold today)
    gap = config.job_queue_stall_seconds - config.job_queue_heartbeat_seconds - 0.1
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE job_queue SET lease_expires_at = now() - INTERVAL '0.2 seconds'"
            " WHERE status = 'running'"
        )
        await conn.execute(
            "INSERT INTO job_lease_clock (id, last_tick_at, reachable_since)"
            " VALUES (1, now() - make_interval(secs => $1), now() - INTERVAL '1 hour')"
            " ON CONFLICT (id) DO UPDATE SET last_tick_at = now() - make_interval(secs => $1),"
            " reachable_since = now() - INTERVAL '1 hour'",
            gap,
        )
    report = await runtime.reconciler.run_once()
    fenced = await runtime.leases.renew()  # the live worker's renewal, moments later
    GATES["live"].set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await runtime.mirror.drain()
    row = await runtime.queue.get(job.id)
    assert report.redispatched_stalled + report.failed_stalled == 0, row.last_error
    assert fenced == 0
    assert row.status == JobStatus.SUCCEEDED


# -- D. the health probe compares the worker's clock with the database's ---------------------


async def test_the_health_probe_does_not_depend_on_the_worker_clock(
    runtime: WorkerRuntime, config: WorkerConfig, clock: Any
) -> None:
    """``last_seen_at`` is written from the worker's clock (``record_worker_heartbeat(now=
    self.clock())``) but ``cesar-worker check`` measures its age with the database's
    ``now()``. A worker whose clock is 40 s behind is reported unhealthy right after it beat
    (the orchestrator restarts a healthy worker forever); one whose clock is ahead stays
    "healthy" long after it died (negative age). Fix: write ``last_seen_at = now()`` in
    UPSERT_WORKER_HEARTBEAT (the docs already say the age is by the database clock)."""
    limit = 3 * config.job_queue_heartbeat_seconds + 10
    clock.now = datetime.now(UTC) - timedelta(seconds=limit + 30)  # clock behind
    await runtime.beat()
    age = await heartbeat_age(config, runtime.worker_id)
    assert age is not None and 0 <= age <= limit, f"just beat, yet age {age:.1f}s"
    clock.now = datetime.now(UTC) + timedelta(days=1)  # clock ahead; then the worker dies
    await runtime.beat()
    age = await heartbeat_age(config, runtime.worker_id)
    assert age is not None and age >= 0, f"age {age:.1f}s: green for a day after death"


# -- E. job code can starve the lease renewal of connections ----------------------------------


@pytest.mark.slow
async def test_the_lease_renewal_does_not_wait_for_connections_jobs_hold(
    runtime: WorkerRuntime, db: Database, config: WorkerConfig
) -> None:
    """Lease renewal and the heartbeat take their connection from the same pool as job code
    (``ctx.db``; DB_POOL_MAX_SIZE 10 by default against WORKER_MAX_JOBS 100), with no acquire
    timeout. While jobs hold every connection (ten sync jobs in a slow query or an open
    transaction), ``renew`` waits in the pool's queue; a lease later another worker's
    reconciler takes over every live attempt of this healthy worker, which is then fenced and
    counted ``lost`` (``failed`` with attempts exhausted). Fix: give the LeaseKeeper (and the
    heartbeat) a connection of its own, kept like the mirror's, or a small dedicated pool."""
    GATES["busy"] = asyncio.Event()
    job = await runtime.queue.enqueue("test.gate", {"gate": "busy"})
    task = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    assert await runtime.leases.renew() == 0  # (a connection kept by the renewal exists now)
    held: list[Any] = []  # every connection job code can get (the mirror keeps one more)
    with contextlib.suppress(TimeoutError):
        while True:
            held.append(await db.pool.acquire(timeout=0.5))
    try:
        renewed = await asyncio.wait_for(runtime.leases.renew(), config.job_queue_stall_seconds)
    except TimeoutError:
        renewed = None
    finally:
        for conn in held:
            await db.pool.release(conn)
        GATES["busy"].set()
        await task
    assert renewed == 0, "the renewal waited a whole lease for a pool connection"


# -- F. at shutdown the mirror gives up long before its time budget ---------------------------


@pytest.mark.slow
async def test_outcomes_pending_at_shutdown_are_written_within_the_close_budget(
    runtime: WorkerRuntime, database_url: str
) -> None:
    """``mirror.close(timeout=10)`` is meant to write what is pending "within timeout", but the
    flusher returns as soon as ``_closing`` and its backoff has reached 2 s, i.e. at the first
    failed flush once the database has been unreachable for ~3 s, whatever the budget left.
    A worker stopped (deploy, SIGTERM) during a database blip drops every outcome it held:
    succeeded jobs stay ``running``, are taken over a lease later as ``lost`` and run again,
    or end ``failed`` when that was their last attempt (as this one, max_attempts 1, would
    once the reconciler takes it over). Fix: in ``_run`` keep retrying while closing until ``close``'s deadline (pass
    the deadline in; let the ``wait_for`` timeout be the only limit)."""
    GATES["done"] = asyncio.Event()
    job = await runtime.queue.enqueue("test.gate", {"gate": "done"}, max_attempts=1)
    task = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    unreachable = await Database.open(database_url)
    await unreachable.close()  # every acquire now fails like a lost database
    await runtime.mirror._release_connection()
    runtime.mirror.db = unreachable
    GATES["done"].set()
    assert await task == "succeeded"
    await asyncio.sleep(3.5)  # the database has been away a few seconds
    closing = asyncio.create_task(runtime.mirror.close(timeout=10))
    await asyncio.sleep(2.5)  # ... and is back 2.5 s into a 10 s shutdown budget
    runtime.mirror.db = runtime.db
    await closing
    assert (await runtime.queue.get(job.id)).status == JobStatus.SUCCEEDED


# -- G. a finished attempt whose outcome waits in the mirror loses its lease -------------------


async def test_an_outcome_waiting_in_the_mirror_keeps_its_lease(
    runtime: WorkerRuntime, db: Database, database_url: str
) -> None:
    """An attempt leaves ``executor.running`` as soon as its function returns; from then on
    nobody renews its lease, though its outcome may still wait in the mirror. When the mirror
    cannot write (its statement timing out under load, serialization failures past its 4
    retries on CockroachDB, its kept connection hung) while the database still answers the
    reconciler, the finished job is taken over a lease later as ``lost``: it runs again (or
    ends ``failed`` on its last attempt) although it succeeded, and the mirror's late write
    is then refused. Fix: keep renewing (id, token) pairs whose final write is pending in the
    mirror (``running_jobs()`` + the mirror's pending keys) until it is written."""
    GATES["finished"] = asyncio.Event()
    job = await runtime.queue.enqueue("test.gate", {"gate": "finished"}, max_attempts=1)
    task = asyncio.create_task(
        runtime.executor.run(arq_job_id(job.id, await token_of(runtime, job.id)))
    )
    await until(runtime, job.id, JobStatus.RUNNING)
    unreachable = await Database.open(database_url)
    await unreachable.close()
    await runtime.mirror._release_connection()
    runtime.mirror.db = unreachable  # the mirror's writes fail; the database itself answers
    try:
        async with db.connection() as conn:  # the lease is about to run out
            await conn.execute(
                "UPDATE job_queue SET lease_expires_at = now() + INTERVAL '1 second' WHERE id = $1",
                job.id,
            )
        GATES["finished"].set()
        assert await task == "succeeded"
        await runtime.leases.renew()  # the worker's next renewal
        async with db.connection() as conn:
            left = await conn.fetchval(
                "SELECT EXTRACT(EPOCH FROM lease_expires_at - now()) FROM job_queue WHERE id = $1",
                job.id,
            )
    finally:
        runtime.mirror.db = runtime.db
    assert float(left) > 1, "the succeeded attempt's lease was not renewed: it will be lost"


# -- H. scheduled jobs run more often than their period -----------------------------------------


def _fires_per_day(spec: dict[str, Any]) -> int:
    """How many times a day arq's cron fires for these arguments (unset field: every value)."""

    def size(field: str, full: int) -> int:
        value = spec.get(field)
        return full if value is None else len(value)

    if "second" not in spec:
        raise AssertionError("every() always sets the second")
    return size("hour", 24) * size("minute", 60) * size("second", 60)


@pytest.mark.parametrize("seconds", [45, 90, 7200, 86_400])
def test_a_schedule_fires_no_more_often_than_its_period(seconds: int) -> None:
    """``every(seconds)`` keeps only the second (under a minute) or the minute (above), and
    never the hour: 45 s fires at :00 and :45 of every minute (2,880 a day, not 1,920), 90 s
    every minute, and any period above an hour hourly, so SUPABASE_SYNC_INTERVAL_SECONDS=86400
    (allowed by its setting, "syncs every target this often") syncs 24 times a day. Fix:
    schedule by elapsed time (enqueue when ``now - last run >= period``, the unique key
    already prevents overlap), or refuse periods that do not divide a minute/hour/day."""
    from cesar_worker.schedule import every

    assert _fires_per_day(every(seconds)) <= 86_400 // seconds
