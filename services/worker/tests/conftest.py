"""Fixtures for the worker's tests: a worker config per test (own arq queue, own database)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cesar_core.db import Database
from cesar_core.jobs import JobQueue, JobRegistry, load_registry
from cesar_core.redis import RedisClient
from cesar_worker.config import WorkerConfig
from cesar_worker.runtime import WorkerRuntime


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def queue_name(redis_prefix: str) -> str:
    return f"{redis_prefix}queue"


@pytest.fixture
def worker_env(
    database_url: str, redis_url: str, queue_name: str, tmp_path: Path
) -> dict[str, str]:
    """Environment for a worker process (fast timings so faults resolve in seconds)."""
    ingest_dir = tmp_path / "ingest"
    ingest_dir.mkdir()
    return {
        "INGEST_BASE_DIR": str(ingest_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JOB_QUEUE_NAME": queue_name,
        "JOB_QUEUE_POLL_INTERVAL": "1",
        "JOB_QUEUE_STALL_SECONDS": "3",
        "JOB_QUEUE_HEARTBEAT_SECONDS": "0.5",
        "JOB_QUEUE_LOST_GRACE_SECONDS": "2",
        "JOB_QUEUE_BACKOFF_MINUTES": "0.001",
        "WORKER_METRICS_PORT": "0",
        # no scheduled memory/reputation jobs: tests count the rows of job_queue
        "MEMORY_CONSOLIDATE_SECONDS": "0",
        "REPUTATION_COMPUTE_SECONDS": "0",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
        "LOG_JSON": "false",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def config(worker_env: dict[str, str]) -> WorkerConfig:
    return WorkerConfig(**{k: v for k, v in worker_env.items()})  # type: ignore[arg-type]


@pytest.fixture
def registry() -> JobRegistry:
    return load_registry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def arq_cleanup(redis: RedisClient, db: Database, queue_name: str) -> AsyncIterator[None]:
    """Delete the arq keys of this test's jobs and queue (never anyone else's)."""
    yield
    async with db.connection() as conn:
        ids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM job_queue")}
    doomed = []
    async for key in redis.scan_iter(match="arq:*", count=1000):
        text = key.decode()
        rest = text.split(":", 2)[-1] if text.count(":") >= 2 else text
        if queue_name in text or rest.split(":")[0] in ids:
            doomed.append(key)
    if doomed:
        await redis.delete(*doomed)


@pytest_asyncio.fixture
async def runtime(
    config: WorkerConfig,
    db: Database,
    redis: RedisClient,
    registry: JobRegistry,
    clock: FakeClock,
    arq_cleanup: None,
) -> AsyncIterator[WorkerRuntime]:
    """A worker runtime with an injected clock, no arq loop and no loops of its own (lease
    renewal, reconciler): tests drive it directly."""
    rt = WorkerRuntime(config, db, redis, registry, clock=clock, rand=lambda: 0.5)
    await rt.start(serve_metrics=False, loops=False)
    try:
        yield rt
    finally:
        await rt.stop()


@pytest_asyncio.fixture
async def queue(
    db: Database, redis: RedisClient, config: WorkerConfig, registry: JobRegistry
) -> JobQueue:
    """A queue on the real clock, for tests with worker processes."""
    return JobQueue(db, redis, config, registry)


async def expire_leases(db: Database) -> None:
    """Every running attempt's lease ran out (by the database's clock), and the database has
    been reachable for long: the reconciler may take them over. Retried like any transaction
    (the runtime's own loops may tick the lease clock at the same moment)."""

    async def work(conn: Any) -> None:
        await conn.execute(
            "UPDATE job_queue SET lease_expires_at = now() - INTERVAL '1 second'"
            " WHERE status = 'running'"
        )
        await conn.execute(
            "INSERT INTO job_lease_clock (id, last_tick_at, reachable_since)"
            " VALUES (1, now(), now() - INTERVAL '1 hour')"
            " ON CONFLICT (id) DO UPDATE SET last_tick_at = now(),"
            " reachable_since = now() - INTERVAL '1 hour'"
        )

    await db.transaction(work)


async def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


class WorkerProcess:
    """``python -m cesar_worker`` as a real process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        full_env = {**os.environ, **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cesar_worker"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str = "worker") -> WorkerProcess:
        proc = WorkerProcess(env, tmp_path / f"{name}-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(Exception):
            proc.stop()


class RedisServer:
    """Our own redis-server on a free port, to stop and start at will."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()
