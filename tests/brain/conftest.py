"""The brain's cross-service tests: the real API app served by uvicorn, a real worker runtime
running jobs through arq (both in this event loop), the fake Ollama upstream, on this test's
own database and Redis prefix."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from cesar_api.app import create_app
from cesar_api.database import write
from cesar_api.repositories import api_keys
from cesar_api.settings import ApiSettings
from cesar_core.db import Database
from cesar_core.jobs import load_registry
from cesar_core.redis import RedisClient
from cesar_ollama_proxy.testing.fake_ollama import FakeOllama
from cesar_ollama_proxy.testing.server import serve_app
from cesar_worker.config import WorkerConfig
from cesar_worker.main import serve
from cesar_worker.runtime import WorkerRuntime

FAKE_MODEL = "llama3.2:1b"


@dataclass
class Brain:
    url: str
    key: str
    db: Database
    fake: FakeOllama
    worker: WorkerRuntime

    def http(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
            **kwargs,
        )

    async def agent(self, name: str, **fields: Any) -> dict[str, Any]:
        async with self.http() as http:
            response = await http.post(
                "/api/v1/agents", json={"name": name, "agent_type": "helper", **fields}
            )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


async def _delete_arq_keys(redis: RedisClient, db: Database, queue_name: str) -> None:
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
async def brain(
    database_url: str, redis_url: str, redis_prefix: str, db: Database, redis: RedisClient
) -> AsyncIterator[Brain]:
    queue_name = f"{redis_prefix}queue"
    fake = FakeOllama()
    secret = api_keys.generate_key()
    await write(db, lambda conn: api_keys.create(conn, "brain", secret, ["read", "write"]))
    settings = ApiSettings(
        database_url=database_url,
        redis_url=redis_url,
        environment="development",
        event_stream=f"{redis_prefix}events",
        rate_limit_prefix=f"{redis_prefix}rl",
        job_queue_name=queue_name,
        db_pool_min_size=1,
        db_pool_max_size=5,
        a2a_poll_seconds=0.05,
    )
    async with fake.serve() as fake_url, serve_app(create_app(settings)) as api_url:
        config = WorkerConfig(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            JOB_QUEUE_NAME=queue_name,
            JOB_QUEUE_POLL_INTERVAL="1",
            JOB_QUEUE_HEARTBEAT_SECONDS="0.5",
            JOB_QUEUE_BACKOFF_MINUTES="0.001",
            WORKER_METRICS_PORT="0",
            WORKER_SHUTDOWN_GRACE_SECONDS="2",
            OLLAMA_URL=fake_url,
        )
        runtime = WorkerRuntime(config, db, redis, load_registry())
        await runtime.start(serve_metrics=False)
        stop = asyncio.Event()
        worker = asyncio.create_task(serve(config, runtime=runtime, stop=stop))
        try:
            yield Brain(api_url, secret, db, fake, runtime)
        finally:
            fake.release()
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker, 30)
            await runtime.stop()
            await _delete_arq_keys(redis, db, queue_name)
