"""Fixtures for the dashboard tests: a configured environment, seeded rows, an AppTest, and the
real API and Ollama proxy served on free ports (for the actions and the health checks)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import cesar_dashboard
import pytest
import pytest_asyncio
import streamlit as st
import uvicorn
from cesar_api.app import create_app
from cesar_api.database import write
from cesar_api.repositories import api_keys
from cesar_api.settings import ApiSettings
from cesar_core.db import Database
from cesar_ollama_proxy.app import create_app as create_proxy_app
from cesar_ollama_proxy.settings import load_proxy_settings
from streamlit.testing.v1 import AppTest

APP_PATH = Path(cesar_dashboard.__file__).parent / "app.py"
PAGES = {
    "overview": "app_pages/overview.py",
    "jobs": "app_pages/jobs.py",
    "sync_lag": "app_pages/sync_lag.py",
    "ingestion": "app_pages/ingestion.py",
    "agents": "app_pages/agents.py",
    "llm": "app_pages/llm.py",
}


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def unused_port() -> Callable[[], int]:
    return free_port


@pytest.fixture
def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def dashboard_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str, closed_url: str
) -> str:
    """Environment for a dashboard reading ``database_url``; the API and proxy are unreachable."""
    for name in ("DATABASE_URL", "COCKROACH_DB_URL", "API_KEY", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("API_URL", closed_url)
    monkeypatch.setenv("OLLAMA_PROXY_URL", closed_url)
    monkeypatch.setenv("REFRESH_SECONDS", "0")
    monkeypatch.setenv("DASHBOARD_HTTP_TIMEOUT", "2")
    return database_url


@pytest.fixture
def open_page() -> Callable[[str], AppTest]:
    """Run the app and switch to a page; fails the test if Streamlit rendered an exception."""

    def run(page: str) -> AppTest:
        at = AppTest.from_file(APP_PATH, default_timeout=60)
        at.run()
        if page != "overview":
            at.switch_page(PAGES[page]).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


@pytest.fixture
def seed(database_url: str) -> Callable[..., object]:
    """``await seed(sql, *args)`` on the test database, then refresh the three views."""

    async def run(sql: str, *args: object, refresh: bool = True) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(sql, *args) if args else await conn.execute(sql)
            if refresh:
                for view in ("mv_sync_lag", "mv_job_queue_backlog", "mv_ingestion_errors"):
                    await conn.execute(f"REFRESH MATERIALIZED VIEW {view}")
        finally:
            await conn.close()

    return run


@dataclass(frozen=True)
class LiveApi:
    """The real API (``cesar_api.app.create_app``) served by uvicorn on a free port.

    ``key`` is a real API key in the test database (scopes read+write); ``make_key`` inserts
    another one through the API's own key repository.
    """

    url: str
    key: str
    make_key: Callable[..., Awaitable[str]]


@contextlib.asynccontextmanager
async def serve_in_thread(app: Any) -> AsyncIterator[str]:
    """A real uvicorn server for ``app`` in its own thread and event loop; yields its URL.

    AppTest runs the page script synchronously while the test's event loop waits for it, so a
    server on the test's loop could never answer the dashboard's requests.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(3000):
            if server.started or not thread.is_alive():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            raise RuntimeError("the server did not start (see the log for its lifespan error)")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        sock.close()


@pytest_asyncio.fixture
async def live_api(
    database_url: str, redis_url: str, redis_prefix: str, redis: object, db: Database
) -> AsyncIterator[LiveApi]:
    """The real API on the test's database and Redis (isolated by ``redis_prefix``; the
    ``redis`` fixture deletes its keys afterwards)."""
    settings = ApiSettings(
        database_url=database_url,
        redis_url=redis_url,
        environment="development",
        event_stream=f"{redis_prefix}events",
        rate_limit_prefix=f"{redis_prefix}rl",
        job_queue_name=f"{redis_prefix}arq",
        db_pool_min_size=1,
        db_pool_max_size=4,
        health_probe_timeout=2.0,
        db_connect_max_delay=2.0,
    )

    async def make_key(name: str = "dashboard", scopes: tuple[str, ...] = ("read", "write")) -> str:
        secret = api_keys.generate_key()
        await write(db, lambda conn: api_keys.create(conn, name, secret, list(scopes)))
        return secret

    key = await make_key()
    async with serve_in_thread(create_app(settings)) as url:
        yield LiveApi(url=url, key=key, make_key=make_key)


@pytest_asyncio.fixture
async def live_ollama_proxy(redis_url: str, redis_prefix: str, redis: object) -> AsyncIterator[str]:
    """The real Ollama proxy; its upstream (the true outside boundary) is a closed port, which
    ``/livez`` does not depend on."""
    settings = load_proxy_settings(
        OLLAMA_URL=f"http://127.0.0.1:{free_port()}",
        REDIS_URL=redis_url,
        PROXY_REDIS_PREFIX=f"{redis_prefix}proxy:",
        DATABASE_URL=None,
        LOG_JSON=False,
    )
    async with serve_in_thread(create_proxy_app(settings)) as url:
        yield url
