"""The overview page against a real migrated database: health, alerts, backlog, glances."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

Seed = Callable[..., Any]
OpenPage = Callable[[str], AppTest]

JOBS = """
INSERT INTO job_queue (job_type, payload, status, attempts, last_error, created_at, updated_at,
                       finished_at)
VALUES
 ('ingest.financial', '{"symbol": "AAPL"}', 'failed', 5, 'boom 1',
  now() - INTERVAL '20 minutes', now() - INTERVAL '2 minutes', now() - INTERVAL '2 minutes'),
 ('ingest.financial', '{"symbol": "MSFT"}', 'failed', 5, 'boom 2',
  now() - INTERVAL '20 minutes', now() - INTERVAL '3 minutes', now() - INTERVAL '3 minutes'),
 ('sync.supabase', '{}', 'failed', 5, 'boom 3',
  now() - INTERVAL '30 minutes', now() - INTERVAL '10 minutes', now() - INTERVAL '10 minutes'),
 ('sync.supabase', '{}', 'failed', 5, 'old failure',
  now() - INTERVAL '3 hours', now() - INTERVAL '2 hours', now() - INTERVAL '2 hours'),
 ('maintenance.noop', '{}', 'pending', 0, NULL, now(), now(), NULL),
 ('maintenance.noop', '{}', 'pending', 0, NULL, now(), now(), NULL),
 ('workflow.execute', '{}', 'running', 1, NULL, now(), now(), NULL),
 ('workflow.execute', '{}', 'succeeded', 1, NULL, now(), now(), now()),
 ('workflow.execute', '{}', 'succeeded', 1, NULL, now(), now(), now())
"""

SYNC = """
INSERT INTO sync_status (system_name, last_sync_at, last_success_at, status)
VALUES ('supabase', now(), now() - INTERVAL '10 minutes', 'lagging'),
       ('email', now(), now() - INTERVAL '30 seconds', 'ok')
"""

INGESTION = """
INSERT INTO ingestion_log (source, status, rows_total, rows_ok, rows_failed, error_message,
                           started_at, finished_at)
VALUES ('yahoo', 'failed', 10, 0, 10, 'HTTP 429 from upstream', now() - INTERVAL '1 hour', now()),
       ('yahoo', 'succeeded', 10, 10, 0, NULL, now() - INTERVAL '2 hours', now()),
       ('imap', 'failed', 5, 2, 3, 'login refused', now() - INTERVAL '3 hours', now())
"""

HEARTBEAT = "INSERT INTO worker_heartbeats (worker_id, hostname) VALUES ('worker-1', 'host-a')"


async def api_healthy(url: str) -> None:
    """Wait until the API's own health says healthy (its event hub connects just after start)."""
    body: Any = None
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(100):
            body = (await client.get(f"{url}/health")).json()
            if body.get("status") == "healthy":
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the API never became healthy: {body}")


def texts(elements: Any) -> list[str]:
    """The element bodies as a reader sees them (the Markdown escapes of ``ui.plain`` undone)."""
    return [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in elements]


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if label in m.label]
    assert values, f"no metric labelled {label!r}: {[m.label for m in at.metric]}"
    return str(values[0])


@pytest.mark.usefixtures("dashboard_env")
async def test_empty_database_shows_friendly_empty_states(open_page: OpenPage) -> None:
    at = open_page("overview")
    infos = " ".join(texts(at.info))
    assert "The job queue is empty" in infos
    assert "No external systems are being synced yet" in infos
    assert "No ingestion runs in the last 24 hours" in infos
    assert "No jobs failed in the last 15 minutes." in texts(at.success)
    assert metric(at, "Database") == "OK"
    assert metric(at, "Dashboard") == "OK"
    assert metric(at, "Worker") == "DOWN"
    assert any("no worker has ever sent a heartbeat" in c for c in texts(at.caption))


@pytest.mark.usefixtures("dashboard_env")
async def test_numbers_match_the_rows(open_page: OpenPage, seed: Seed) -> None:
    await seed(JOBS + ";" + SYNC + ";" + INGESTION + ";" + HEARTBEAT)
    at = open_page("overview")

    assert "**3 jobs failed in the last 15 minutes**" in texts(at.error)
    failed_table = at.dataframe[0].value
    assert sorted(failed_table["last_error"]) == ["boom 1", "boom 2", "boom 3"]
    assert metric(at, "Active jobs") == "3"  # 2 pending + 1 running
    assert metric(at, "Failed jobs") == "4"
    assert metric(at, "Systems over 5 min") == "1"
    assert any(w.startswith("Lagging: supabase") for w in texts(at.warning))
    assert metric(at, "Failed runs") == "2"
    assert metric(at, "Rows failed") == "13"
    assert any("imap" in w and "yahoo" in w for w in texts(at.warning))
    assert metric(at, "Worker") == "OK"
    assert len(at.get("vega_lite_chart")) == 1  # the backlog chart


@pytest.mark.usefixtures("dashboard_env")
async def test_health_names_the_unreachable_api_and_proxy(
    open_page: OpenPage, closed_url: str
) -> None:
    at = open_page("overview")
    assert metric(at, "API") == "DOWN"
    assert metric(at, "Ollama proxy") == "DOWN"
    assert metric(at, "Redis") == "OK"
    captions = texts(at.caption)
    assert any(c.startswith(f"unreachable at {closed_url}") for c in captions)
    assert any("API" in e and "Ollama proxy" in e for e in texts(at.error))
    db_caption = next(c for c in captions if c.startswith("postgresql "))
    assert "ms" in db_caption  # engine, version and the measured ping


async def test_health_with_everything_up(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    live_api: Any,
    live_ollama_proxy: str,
    seed: Seed,
    open_page: OpenPage,
) -> None:
    monkeypatch.setenv("API_URL", live_api.url)
    monkeypatch.setenv("OLLAMA_PROXY_URL", live_ollama_proxy)
    await seed(HEARTBEAT)  # a fresh worker heartbeat: the API reports itself healthy
    await api_healthy(live_api.url)
    at = open_page("overview")
    assert [m.value for m in at.metric][:6] == ["OK"] * 6
    assert not at.error
    captions = texts(at.caption)
    assert any(c.startswith("/health healthy") for c in captions), captions
    assert any(c.startswith("/livez ok") for c in captions), captions


async def test_unreachable_database_is_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: str, closed_url: str, open_page: OpenPage
) -> None:
    port = closed_url.rsplit(":", 1)[1]
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/x")
    at = open_page("overview")
    errors = texts(at.error)
    assert any(e.startswith("**Database unreachable**") and f":{port}/x" in e for e in errors)
    assert metric(at, "Database") == "DOWN"
    assert metric(at, "Worker") == "UNKNOWN"
    assert metric(at, "Redis") == "OK"  # the rest still works


async def test_missing_database_configuration_is_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: str, open_page: OpenPage
) -> None:
    monkeypatch.delenv("DASHBOARD_DATABASE_URL")
    at = open_page("overview")
    assert any("Database not configured" in e for e in texts(at.error))


async def test_invalid_configuration_is_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: str, open_page: OpenPage
) -> None:
    monkeypatch.setenv("REFRESH_SECONDS", "soon")
    at = open_page("overview")
    assert any("Configuration error" in e and "REFRESH_SECONDS" in e for e in texts(at.error))


LOG_ALERTS = """
INSERT INTO system_alerts (alert_key, component, severity, message, occurrences, last_seen_at)
VALUES ('k1', 'worker', 'error', 'Redis unavailable; reconnecting', 7, now() - INTERVAL '1 minute'),
       ('k2', 'api', 'critical', 'event hub died', 1, now() - INTERVAL '2 minutes'),
       ('k3', 'api', 'error', 'two days old', 1, now() - INTERVAL '2 days')
"""


@pytest.mark.usefixtures("dashboard_env")
async def test_recent_log_alerts_are_listed(open_page: OpenPage, seed: Seed) -> None:
    at = open_page("overview")
    assert "No errors logged by any service in the last 24 hours." in texts(at.success)

    await seed(LOG_ALERTS)
    st.cache_data.clear()
    at = open_page("overview")
    assert "**2 errors logged in the last 24 hours** (1 critical)" in texts(at.error)
    table = at.dataframe[0].value
    assert list(table["component"]) == ["worker", "api"]
    assert list(table["message"]) == ["Redis unavailable; reconnecting", "event hub died"]
    assert list(table["occurrences"]) == [7, 1]
