"""Fixtures for the dashboard tests: a configured environment, seeded rows, an AppTest."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import cesar_dashboard

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
