"""Fixtures for the dashboard tests: a configured environment, seeded rows, an AppTest."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import cesar_dashboard
import pytest
import streamlit as st
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


@dataclass
class RecordedRequest:
    method: str
    path: str
    authorization: str | None


@dataclass
class RecordingApi:
    """A stand-in for the API's HTTP surface that records what the dashboard sends.

    It answers ``GET /health`` and ``/livez`` with 200 and every ``POST`` with ``status``
    (default 200; a refusal uses the API's error shape ``{"error": {"code", "message"}}``).
    It checks nothing; tests assert on :attr:`requests`.
    """

    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    status: int = 200

    def posts(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]


@pytest.fixture
def recording_api() -> Iterator[RecordingApi]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    api = RecordingApi(url=f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, object]) -> None:
            api.requests.append(
                RecordedRequest(self.command, self.path, self.headers.get("Authorization"))
            )
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer(200, {"status": "ok"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            ok = api.status < 400
            refusal = {"error": {"code": "invalid_state", "message": "job is succeeded"}}
            self._answer(api.status, {"status": "ok"} if ok else refusal)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
