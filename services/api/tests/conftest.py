"""Fixtures for the API tests: settings on a fresh database and an isolated Redis prefix, the
app with its lifespan running, an httpx client on it, API keys, and a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from cesar_api.app import create_app
from cesar_api.database import write
from cesar_api.repositories import api_keys
from cesar_api.settings import ApiSettings
from cesar_core.db import Database
from cesar_core.redis import RedisClient
from fastapi import FastAPI

MakeKey = Callable[..., Awaitable[str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(db_url: str, cache_url: str, prefix: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "redis_url": cache_url,
        "environment": "development",
        "event_stream": f"{prefix}events",
        "rate_limit_prefix": f"{prefix}rl",
        "job_queue_name": f"{prefix}arq",
        "ws_resume_wait": 0.05,
        "ws_ping_interval": 5.0,
        "db_pool_min_size": 1,
        "db_pool_max_size": 5,
        "health_probe_timeout": 1.0,
        "db_connect_max_delay": 1.0,
    }
    values.update(overrides)
    return ApiSettings(**values)


@pytest.fixture
def make_settings(
    database_url: str, redis_url: str, redis_prefix: str
) -> Callable[..., ApiSettings]:
    def make(**overrides: Any) -> ApiSettings:
        return settings_for(database_url, redis_url, redis_prefix, **overrides)

    return make


@pytest.fixture
def api_settings(make_settings: Callable[..., ApiSettings]) -> ApiSettings:
    return make_settings()


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


@contextlib.asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", timeout=30
        ) as client,
    ):
        yield client


@pytest_asyncio.fixture
async def app(api_settings: ApiSettings, redis: RedisClient) -> AsyncIterator[FastAPI]:
    # `redis` (the fixture) deletes every key under the prefix afterwards
    yield create_app(api_settings)


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest_asyncio.fixture
async def make_key(db: Database) -> MakeKey:
    async def make(name: str = "tests", scopes: tuple[str, ...] = ("read", "write")) -> str:
        secret = api_keys.generate_key()
        await write(db, lambda conn: api_keys.create(conn, name, secret, list(scopes)))
        return secret

    return make


@pytest_asyncio.fixture
async def auth(make_key: MakeKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {await make_key('writer')}"}


class LiveServer:
    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def serve(app: FastAPI, **config: Any) -> AsyncIterator[LiveServer]:
    """A real uvicorn server for ``app`` on a free port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            **config,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield LiveServer(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest_asyncio.fixture
async def live(app: FastAPI) -> AsyncIterator[LiveServer]:
    async with serve(app) as server:
        yield server
