"""The job system's promise at scale: 1,000 mixed jobs (fast, slow, long, failing) through a
worker kill -9, a Redis flush, a Redis restart, a database restart and a database outage longer
than the lease, with the lease and reconciler timings at their defaults. Every job ends in its
right final state (failing ones `failed` after exactly `max_attempts`), none is lost or stuck,
and only the killed worker ever loses an attempt: a live worker's job is never taken over.

Deviation from the defaults, on purpose: the retry backoff (`JOB_QUEUE_BACKOFF_MINUTES`, 5 by
default) is 0.6 s, so failing jobs use up their attempts within the test instead of in 15
minutes. Leases (10 s), renewals (3 s), the reconciler period (2 s) and the lost-job grace
(10 s) are the defaults.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cesar_core.db import Database
from cesar_core.jobs import JobQueue, load_registry
from cesar_core.jobs.settings import JobSettings
from cesar_core.redis import create_redis

from tests.e2e.helpers import query
from tests.e2e.processes import VENV_BIN, PrivatePostgres, PrivateRedis, Service, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]

FAST, SLOW, LONG, FAILING = 600, 250, 50, 100
MAX_ATTEMPTS = 3
ACTIVE = "('pending', 'queued', 'running', 'retrying')"


def _flushall(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(16).startswith(b"+OK")


def _active(url: str) -> int:
    return int(query(url, f"SELECT count(*) AS n FROM job_queue WHERE status IN {ACTIVE}")[0]["n"])


async def _enqueue(database_url: str, redis_url: str) -> dict[str, list[str]]:
    settings = JobSettings(DATABASE_URL=database_url, REDIS_URL=redis_url)  # type: ignore[call-arg]
    db = await Database.open(database_url)
    redis = create_redis(redis_url)
    queue = JobQueue(db, redis, settings, load_registry())
    try:
        kinds: dict[str, list[Any]] = {
            "fast": await queue.enqueue_many("maintenance.noop", [{}] * FAST),
            "slow": await queue.enqueue_many(
                "maintenance.noop", [{"sleep_seconds": 2 + i % 4} for i in range(SLOW)]
            ),
            "long": await queue.enqueue_many("maintenance.noop", [{"sleep_seconds": 45}] * LONG),
            "failing": await queue.enqueue_many(
                "maintenance.noop", [{"fail": "always"}] * FAILING, max_attempts=MAX_ATTEMPTS
            ),
        }
    finally:
        await redis.aclose()
        await db.close()
    return {kind: [str(j.id) for j in jobs] for kind, jobs in kinds.items()}


def test_a_thousand_jobs_survive_every_fault_at_default_settings() -> None:
    pg = PrivatePostgres().init()
    redis = PrivateRedis().start()
    log_dir = Path(tempfile.mkdtemp(prefix="cesar-fault-scale-"))
    workers: dict[str, Service] = {}
    try:
        database_url = pg.url.rsplit("/", 1)[0] + "/cesar"
        query(pg.url, "CREATE DATABASE cesar")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("JOB_QUEUE_", "WORKER_"))},
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "ENVIRONMENT": "development",
            "LOG_JSON": "false",
            "JOB_QUEUE_BACKOFF_MINUTES": "0.01",
            "WORKER_METRICS_PORT": "0",
            "MEMORY_CONSOLIDATE_SECONDS": "0",
            "REPUTATION_COMPUTE_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("COCKROACH_DB_URL", None)
        migrate = Service("migrate", [str(VENV_BIN / "cesar-migrate"), "apply"], env, log_dir)
        migrate.start()
        assert migrate.proc is not None and migrate.proc.wait(120) == 0, migrate.tail()

        def start_worker(name: str) -> None:
            workers[name] = Service(
                name, [str(VENV_BIN / "cesar-worker")], {**env, "WORKER_ID": name}, log_dir
            ).start()

        for name in ("worker-a", "worker-b"):
            start_worker(name)
        ids = asyncio.run(_enqueue(database_url, redis.url))
        total = sum(len(v) for v in ids.values())
        assert total == 1000

        def running_on(worker: str) -> int:
            """Jobs of at least 2 s running on the worker: still running when it is killed."""
            rows = query(
                database_url,
                "SELECT count(*) AS n FROM job_queue WHERE status = 'running' AND worker_id = $1"
                " AND CAST(payload ->> 'sleep_seconds' AS FLOAT8) >= 2",
                worker,
            )
            return int(rows[0]["n"])

        # 1. kill -9 a worker while it runs jobs; a replacement starts
        wait_until(lambda: running_on("worker-a") > 0, 60, "worker-a running jobs")
        workers["worker-a"].kill()
        start_worker("worker-c")
        # 2. Redis flushed (every queued delivery gone) while work is pending
        time.sleep(4)
        assert _active(database_url) > 0
        _flushall(redis.port)
        # 3. Redis restarted empty
        time.sleep(5)
        assert _active(database_url) > 0
        redis.stop()
        time.sleep(1)
        redis.start()
        # 4. the database restarted
        time.sleep(5)
        assert _active(database_url) > 0
        pg.stop()
        pg.start()
        # 5. the database away for longer than a lease (10 s) while long jobs run
        time.sleep(5)
        assert _active(database_url) > 0
        pg.stop()
        time.sleep(15)
        pg.start()

        wait_until(lambda: _active(database_url) == 0, 300, "every job final", interval=1)
        rows = query(database_url, "SELECT id, status, attempts, payload FROM job_queue")
        by_id = {str(r["id"]): r for r in rows}
        assert len(by_id) == total  # nothing lost, nothing duplicated
        for kind in ("fast", "slow", "long"):
            wrong = [
                (i, by_id[i]["status"]) for i in ids[kind] if by_id[i]["status"] != "succeeded"
            ]
            assert not wrong, f"{kind}: {wrong[:5]}"
        wrong = [
            (i, by_id[i]["status"], by_id[i]["attempts"])
            for i in ids["failing"]
            if (by_id[i]["status"], by_id[i]["attempts"]) != ("failed", MAX_ATTEMPTS)
        ]
        assert not wrong, f"failing: {wrong[:5]}"
        # only the killed worker ever lost an attempt: no live worker's job was taken over,
        # not even across the database outage
        lost = query(
            database_url,
            "SELECT worker_id, count(*) AS n FROM job_attempts WHERE outcome = 'lost'"
            " GROUP BY worker_id",
        )
        assert {r["worker_id"] for r in lost} == {"worker-a"}, lost  # killed mid-work
        open_attempts = query(
            database_url, "SELECT count(*) AS n FROM job_attempts WHERE finished_at IS NULL"
        )
        assert open_attempts[0]["n"] == 0
    finally:
        for service in workers.values():
            service.stop()
        redis.stop()
        pg.destroy()
