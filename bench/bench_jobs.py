# ruff: noqa: ASYNC110  (a benchmark polls and starts processes on purpose)
"""Job system throughput: our worker (every transition mirrored into job_queue) vs bare arq.

Like with like, interleaved: ``ROUNDS`` rounds of (bare arq, then ours), each a fresh worker
process on the same Redis with the same ``max_jobs`` and ``poll_delay`` (our defaults), each
fed 10,000 no-op jobs by the same bulk path (one Redis pipeline of ``psetex`` + ``zadd`` per
500 jobs; ours additionally writes the rows first, which is what ``enqueue_many`` is). The
medians are compared; every round's numbers and the load average before and after it are
recorded, because this 2-core machine is shared and the load moves the absolute numbers.

1. Bare arq: a no-op function, no database; the clock stops when arq's queue is empty
   (arq removes an entry when the job has finished), polled every 10 ms.
2. Ours: ``cesar-worker`` as a real process at its documented defaults (only the metrics port
   is off) runs 10,000 ``maintenance.noop`` jobs enqueued with ``JobQueue.enqueue_many``; the
   clock stops at the last ``finished_at`` once all 10,000 rows say ``succeeded`` (polled
   every 0.2 s, so that watching costs the database little; ``finished_at`` is stamped when
   the worker hands the outcome to the mirror, which writes it within one flush interval).
3. Once, after the rounds: per-call enqueue on both sides (``JobQueue.enqueue`` vs arq's
   ``enqueue_job``, 32 callers, 2,000 jobs).
4. Recovery: a worker is killed with SIGKILL while running jobs; a second worker is already up;
   time from the kill until every job is ``succeeded`` (reconciler stall threshold at its
   default, ``JOB_QUEUE_STALL_SECONDS`` = 30 s).

Run: ``uv run python -m bench jobs`` (results in bench/results/jobs.json and jobs.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.constants import job_key_prefix
from arq.jobs import serialize_job
from cesar_core.db import Database, connect
from cesar_core.jobs import JobQueue, load_registry
from cesar_core.migrations import Migrator, default_migrations_dir
from cesar_core.redis import create_redis
from cesar_core.testing import admin_url, database_named, drop_database
from cesar_worker.config import WorkerConfig
from cesar_worker.main import poll_delay

N_JOBS = 10_000
N_SINGLE = 2_000
ROUNDS = 3
CHUNK = 500
CONCURRENCY = 32
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

BARE_WORKER = """
import asyncio, sys
from arq.connections import RedisSettings
from arq.worker import Worker, func

async def noop(ctx):
    return None

async def main():
    worker = Worker(
        functions=[func(noop, name="noop", keep_result=0)],
        queue_name=sys.argv[2],
        redis_settings=RedisSettings.from_dsn(sys.argv[1]),
        max_jobs=int(sys.argv[3]),
        poll_delay=float(sys.argv[4]),
        keep_result=0,
        handle_signals=True,
        log_results=False,
    )
    await worker.async_run()

asyncio.run(main())
"""


def _worker_env(database_url: str, queue: str, worker_id: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "JOB_QUEUE_NAME": queue,
        "WORKER_ID": worker_id,
        "WORKER_METRICS_PORT": "0",
    }


def _start_worker(database_url: str, queue: str, worker_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cesar_worker"],
        env=_worker_env(database_url, queue, worker_id),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def _count(db: Database, status: str) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval("SELECT COUNT(*) FROM job_queue WHERE status = $1", status))


async def _wait_worker(db: Database, worker_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.connection() as conn:
            if await conn.fetchval(
                "SELECT 1 FROM worker_heartbeats WHERE worker_id = $1", worker_id
            ):
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"worker {worker_id} did not start")


async def _wait_succeeded(db: Database, total: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while await _count(db, "succeeded") < total:
        if time.monotonic() > deadline:
            raise RuntimeError("jobs did not all succeed in time")
        await asyncio.sleep(0.05)


async def _fresh_database() -> tuple[str, str]:
    name = f"cesar_bench_{uuid.uuid4().hex[:10]}"
    conn = await connect(admin_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = database_named(admin_url(), name)
    async with Migrator.connect(url, default_migrations_dir()) as migrator:
        await migrator.apply()
    return name, url


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_ms_per_job(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    return round((after - before) * 1000 / N_JOBS, 3)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def _wait_all_succeeded(db: Database, total: int, timeout: float = 300) -> datetime:
    """Poll (cheaply) until ``total`` rows say succeeded; the last ``finished_at``."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT COUNT(*) AS n, MAX(finished_at) AS last FROM job_queue "
                "WHERE status = 'succeeded'"
            )
        assert row is not None
        if row["n"] >= total:
            last: datetime = row["last"]
            return last
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {row['n']} of {total} jobs succeeded in time")
        await asyncio.sleep(0.2)


async def _ours_round(url: str, config: WorkerConfig, index: int) -> dict[str, Any]:
    queue_name = f"bench:{uuid.uuid4().hex[:8]}:ours"
    worker_id = f"bench-ours-{index}"
    db = await Database.open(url, min_size=2, max_size=10)
    redis = create_redis(REDIS_URL)
    cfg = config.model_copy(update={"job_queue_name": queue_name})
    queue = JobQueue(db, redis, cfg, load_registry())
    async with db.connection() as conn:
        await conn.execute("TRUNCATE job_queue")
    worker = _start_worker(url, queue_name, worker_id)
    load_before = _load()
    try:
        await _wait_worker(db, worker_id)
        load_before = _load()
        cpu_before = _cpu_seconds(worker.pid)
        started_wall = datetime.now(UTC)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                queue.enqueue_many("maintenance.noop", [{} for _ in range(CHUNK)])
                for _ in range(N_JOBS // CHUNK)
            )
        )
        enqueued = time.perf_counter() - started
        last = await _wait_all_succeeded(db, N_JOBS)
        cpu_after = _cpu_seconds(worker.pid)
        seconds = (last - started_wall).total_seconds()
        async with db.connection() as conn:
            attempts = await conn.fetchval("SELECT SUM(attempts) FROM job_queue")
    finally:
        _stop(worker)
        await redis.delete(queue_name)
        await redis.aclose()
        await db.close()
    return {
        "jobs": N_JOBS,
        "seconds": round(seconds, 3),
        "jobs_per_second": round(N_JOBS / seconds, 1),
        "enqueue_seconds": round(enqueued, 3),
        "attempts": int(attempts),
        "worker_cpu_ms_per_job": _cpu_ms_per_job(cpu_before, cpu_after),
        "load_before": load_before,
        "load_after": _load(),
    }


def _start_bare(queue_name: str, config: WorkerConfig) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            BARE_WORKER,
            REDIS_URL,
            queue_name,
            str(config.worker_max_jobs),
            str(poll_delay(config)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _bare_round(config: WorkerConfig) -> dict[str, Any]:
    queue_name = f"bench:{uuid.uuid4().hex[:8]}:bare"
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=queue_name)
    worker = _start_bare(queue_name, config)
    try:
        await asyncio.sleep(1.0)
        load_before = _load()
        cpu_before = _cpu_seconds(worker.pid)
        started = time.perf_counter()

        async def push(count: int) -> None:
            # the same pipelined writes our dispatcher uses (psetex job + zadd)
            now_ms = int(time.time() * 1000)
            body = serialize_job("noop", (), {}, None, now_ms)
            async with pool.pipeline(transaction=False) as pipe:
                for _ in range(count):
                    job_id = uuid.uuid4().hex
                    pipe.psetex(job_key_prefix + job_id, 86_400_000, body)
                    pipe.zadd(queue_name, {job_id: now_ms})
                await pipe.execute()

        await asyncio.gather(*(push(CHUNK) for _ in range(N_JOBS // CHUNK)))
        enqueued = time.perf_counter() - started
        while await pool.zcard(queue_name):
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        cpu_after = _cpu_seconds(worker.pid)
    finally:
        _stop(worker)
        await pool.delete(queue_name)
        await pool.aclose()
    return {
        "jobs": N_JOBS,
        "seconds": round(seconds, 3),
        "jobs_per_second": round(N_JOBS / seconds, 1),
        "enqueue_seconds": round(enqueued, 3),
        "worker_cpu_ms_per_job": _cpu_ms_per_job(cpu_before, cpu_after),
        "load_before": load_before,
        "load_after": _load(),
    }


async def _single_enqueue(url: str, config: WorkerConfig) -> dict[str, Any]:
    """Per-call enqueue, once: JobQueue.enqueue vs arq's enqueue_job, CONCURRENCY callers."""
    results: dict[str, Any] = {}
    sem = asyncio.Semaphore(CONCURRENCY)

    queue_name = f"bench:{uuid.uuid4().hex[:8]}:bare1"
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=queue_name)
    worker = _start_bare(queue_name, config)
    try:
        await asyncio.sleep(1.0)
        started = time.perf_counter()

        async def arq_one() -> None:
            async with sem:
                await pool.enqueue_job("noop")

        await asyncio.gather(*(arq_one() for _ in range(N_SINGLE)))
        enqueued = time.perf_counter() - started
        while await pool.zcard(queue_name):
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        results["bare_arq"] = {"enqueue_seconds": round(enqueued, 3), "seconds": round(seconds, 3)}
    finally:
        _stop(worker)
        await pool.delete(queue_name)
        await pool.aclose()

    queue_name = f"bench:{uuid.uuid4().hex[:8]}:ours1"
    db = await Database.open(url, min_size=2, max_size=10)
    redis = create_redis(REDIS_URL)
    queue = JobQueue(
        db, redis, config.model_copy(update={"job_queue_name": queue_name}), load_registry()
    )
    async with db.connection() as conn:
        await conn.execute("TRUNCATE job_queue")
    ours = _start_worker(url, queue_name, "bench-ours-single")
    try:
        await _wait_worker(db, "bench-ours-single")
        started_wall = datetime.now(UTC)
        started = time.perf_counter()

        async def one() -> None:
            async with sem:
                await queue.enqueue("maintenance.noop", {})

        await asyncio.gather(*(one() for _ in range(N_SINGLE)))
        enqueued = time.perf_counter() - started
        last = await _wait_all_succeeded(db, N_SINGLE)
        seconds = (last - started_wall).total_seconds()
        results["ours"] = {"enqueue_seconds": round(enqueued, 3), "seconds": round(seconds, 3)}
    finally:
        _stop(ours)
        await redis.delete(queue_name)
        await redis.aclose()
        await db.close()
    for side in results.values():
        side["jobs"] = N_SINGLE
        side["jobs_per_second"] = round(N_SINGLE / side["seconds"], 1)
    results["ratio"] = round(
        results["ours"]["jobs_per_second"] / results["bare_arq"]["jobs_per_second"], 3
    )
    return results


async def _recovery(url: str, config: WorkerConfig) -> dict[str, Any]:
    queue_name = f"bench:{uuid.uuid4().hex[:8]}:recovery"
    db = await Database.open(url, min_size=1, max_size=4)
    redis = create_redis(REDIS_URL)
    queue = JobQueue(
        db, redis, config.model_copy(update={"job_queue_name": queue_name}), load_registry()
    )
    async with db.connection() as conn:
        await conn.execute("DELETE FROM job_queue")
    victim = _start_worker(url, queue_name, "bench-victim")
    rescuer: subprocess.Popen[bytes] | None = None
    try:
        await _wait_worker(db, "bench-victim")
        await queue.enqueue_many("maintenance.noop", [{"sleep_seconds": 5} for _ in range(5)])
        while await _count(db, "running") < 5:
            await asyncio.sleep(0.05)
        rescuer = _start_worker(url, queue_name, "bench-rescuer")
        await _wait_worker(db, "bench-rescuer")
        killed = time.perf_counter()
        victim.kill()
        victim.wait(10)
        await _wait_succeeded(db, 5, timeout=180)
        seconds = time.perf_counter() - killed
        async with db.connection() as conn:
            attempts = [r["attempts"] for r in await conn.fetch("SELECT attempts FROM job_queue")]
    finally:
        _stop(victim)
        if rescuer is not None:
            _stop(rescuer)
        await redis.delete(queue_name)
        await redis.aclose()
        await db.close()
    return {
        "jobs": 5,
        "job_seconds": 5,
        "stall_seconds": config.job_queue_stall_seconds,
        "reconcile_every_seconds": config.job_queue_poll_interval,
        "seconds_from_kill_to_all_succeeded": round(seconds, 2),
        "attempts": sorted(attempts),
    }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


async def _run() -> dict[str, Any]:
    config = WorkerConfig(database_url=None)
    name, url = await _fresh_database()
    rounds: list[dict[str, Any]] = []
    try:
        for index in range(ROUNDS):
            bare = await _bare_round(config)
            ours = await _ours_round(url, config, index)
            ratio = round(ours["jobs_per_second"] / bare["jobs_per_second"], 3)
            rounds.append({"bare_arq": bare, "ours": ours, "ratio": ratio})
            print(
                f"round {index + 1}: bare {bare['jobs_per_second']}/s, "
                f"ours {ours['jobs_per_second']}/s, ratio {ratio}, load {_load()}",
                flush=True,
            )
        single = await _single_enqueue(url, config)
        recovery = await _recovery(url, config)
    finally:
        await drop_database(name)
    bare_median = statistics.median(r["bare_arq"]["jobs_per_second"] for r in rounds)
    ours_median = statistics.median(r["ours"]["jobs_per_second"] for r in rounds)
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "max_jobs": config.worker_max_jobs,
            "poll_delay": poll_delay(config),
            "queue_read_limit": max(5 * config.worker_max_jobs, 100),
            "cap_jobs_per_second": max(5 * config.worker_max_jobs, 100) / poll_delay(config),
            "mirror_flush_ms": config.worker_mirror_flush_ms,
            "mirror_start_linger_ms": config.worker_mirror_start_linger_ms,
            "log_level": config.log_level,
        },
        "jobs": N_JOBS,
        "rounds": rounds,
        "bare_arq_median_jobs_per_second": bare_median,
        "ours_median_jobs_per_second": ours_median,
        "ratio": round(ours_median / bare_median, 3),
        "ratio_median_of_rounds": statistics.median(r["ratio"] for r in rounds),
        "worker_cpu_ms_per_job_median": {
            side: _median_or_none([r[side]["worker_cpu_ms_per_job"] for r in rounds])
            for side in ("bare_arq", "ours")
        },
        "single_enqueue": single,
        "recovery": recovery,
    }


def _markdown(r: dict[str, Any]) -> str:
    s, rec, single = r["settings"], r["recovery"], r["single_enqueue"]
    cpu = r["worker_cpu_ms_per_job_median"]
    rows = "\n".join(
        f"| {i + 1} | {x['bare_arq']['jobs_per_second']} ({x['bare_arq']['seconds']} s) "
        f"| {x['ours']['jobs_per_second']} ({x['ours']['seconds']} s, enqueue "
        f"{x['ours']['enqueue_seconds']} s) | {x['ratio']:.2f} "
        f"| {x['bare_arq']['load_before'][0]} / {x['ours']['load_before'][0]} |"
        for i, x in enumerate(r["rounds"])
    )
    return f"""# bench jobs

`uv run python -m bench jobs` on {r["machine"]["cpus"]} CPUs, Python {r["machine"]["python"]}.
Defaults: max_jobs={s["max_jobs"]}, poll_delay={s["poll_delay"]} s, read limit
{s["queue_read_limit"]} ids/poll -> cap {s["cap_jobs_per_second"]:.0f} jobs/s per worker;
mirror flush {s["mirror_flush_ms"]} ms, claim linger {s["mirror_start_linger_ms"]} ms,
LOG_LEVEL {s["log_level"]}. {r["jobs"]} no-op jobs per run, bulk enqueue on both sides, bare
arq and ours interleaved, {len(r["rounds"])} rounds (jobs/s; 1-minute load average before each run).

| round | bare arq jobs/s | cesar worker jobs/s (every transition mirrored) | ratio | load bare / ours |
|---|---|---|---|---|
{rows}

**Median: bare arq {r["bare_arq_median_jobs_per_second"]} jobs/s, ours
{r["ours_median_jobs_per_second"]} jobs/s, ratio {r["ratio"]:.2f}** (goal >= 0.50; median of
the per-round ratios {r["ratio_median_of_rounds"]:.2f}).

What the mirror and the wrapper cost, less dependent on the machine's load: CPU time of the
worker process per job (median), bare arq {cpu["bare_arq"]} ms, ours {cpu["ours"]} ms. Ours
does the same Redis work per job as bare arq (arq's WATCH/MULTI start, job read, finish) plus
the claim and outcome through the mirror, payload validation, the per-type timeout and the
metrics; its wall time also includes writing the 10,000 rows (`enqueue_many`: insert, push,
mark `queued`), which bare arq does not have.

Per-call enqueue, once ({single["ours"]["jobs"]} jobs, {CONCURRENCY} callers): bare arq
`enqueue_job()` {single["bare_arq"]["jobs_per_second"]} jobs/s, our `enqueue()`
{single["ours"]["jobs_per_second"]} jobs/s (ratio {single["ratio"]:.2f}; our enqueue() is
two short transactions plus one Redis pipeline per job, arq's is one WATCH/MULTI).

The mirror: each flush is one `UPDATE job_queue ... FROM unnest(...)` statement (no
BEGIN/COMMIT) on a connection the mirror keeps. `running` claims are compare-and-sets on the
dispatch token that the job awaits; they linger up to {s["mirror_start_linger_ms"]} ms so that
the claims of the jobs arq starts meanwhile share the statement (at once when every slot is
taken); heartbeats and final transitions wait up to {s["mirror_flush_ms"]} ms or ride along
with the next claims. At this rate a statement carries a few dozen transitions (measured while
profiling: about 550 statements for 10,000 jobs, ~18 claims plus ~18 outcomes each; before,
~2,400 transactions of five round trips each).

Recovery after `kill -9` of a worker running {rec["jobs"]} jobs of {rec["job_seconds"]} s, with a
second worker up: all `succeeded` {rec["seconds_from_kill_to_all_succeeded"]} s after the kill
(stall threshold {rec["stall_seconds"]} s, reconciler every {rec["reconcile_every_seconds"]} s);
attempts per job {rec["attempts"]} (the killed attempt counts).
"""


def main(results_dir: Path) -> None:
    results = asyncio.run(_run())
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "jobs.json").write_text(json.dumps(results, indent=2) + "\n")
    (results_dir / "jobs.md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "results")
