"""Sync lag, ingestion, agents and LLM pages, and the sidebar's manual refresh."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from streamlit.testing.v1 import AppTest

Seed = Callable[..., Any]
OpenPage = Callable[[str], AppTest]

SYNC = """
INSERT INTO sync_status (system_name, last_sync_at, last_success_at, status, records_synced,
                         last_error)
VALUES ('supabase', now(), now() - INTERVAL '10 minutes', 'lagging', 1200, NULL),
       ('email', now(), now() - INTERVAL '30 seconds', 'ok', 40, NULL),
       ('crm', now(), now() - INTERVAL '2 hours', 'error', 7, 'token expired');
INSERT INTO system_metrics (component, metric_name, metric_value, recorded_at)
VALUES ('supabase', 'sync_lag_seconds', 30, now() - INTERVAL '1 hour'),
       ('supabase', 'sync_lag_seconds', 600, now() - INTERVAL '5 minutes')
"""

INGESTION = """
INSERT INTO ingestion_log (source, status, rows_total, rows_ok, rows_failed, error_message,
                           errors, started_at, finished_at)
VALUES ('yahoo', 'failed', 10, 0, 10, 'HTTP 429 from upstream', '[{"row": 1}]',
        now() - INTERVAL '1 hour', now()),
       ('yahoo', 'succeeded', 10, 10, 0, NULL, '[]', now() - INTERVAL '2 hours', now()),
       ('imap', 'partial', 5, 2, 3, 'three messages unreadable', '[]',
        now() - INTERVAL '3 hours', now()),
       ('imap', 'failed', 1, 0, 1, 'ancient failure', '[]',
        now() - INTERVAL '3 days', now() - INTERVAL '3 days')
"""

AGENTS = """
INSERT INTO agents (id, name, agent_type, status, last_heartbeat_at)
VALUES ('11111111-0000-4000-8000-000000000001', 'scout', 'research', 'active', now()),
       ('22222222-0000-4000-8000-000000000002', 'clerk', 'ops', 'idle',
        now() - INTERVAL '1 hour'),
       ('33333333-0000-4000-8000-000000000003', 'ghost', 'ops', 'offline', NULL);
INSERT INTO agent_reputation (agent_id, score, successes, failures)
VALUES ('11111111-0000-4000-8000-000000000001', 0.9, 9, 1),
       ('22222222-0000-4000-8000-000000000002', 0.4, 2, 3);
INSERT INTO agent_events (agent_id, event_type, severity, occurred_at)
VALUES ('11111111-0000-4000-8000-000000000001', 'task.started', 'info', now()),
       ('11111111-0000-4000-8000-000000000001', 'task.failed', 'error', now()),
       ('22222222-0000-4000-8000-000000000002', 'heartbeat', 'debug', now() - INTERVAL '2 hours')
"""

LLM = """
INSERT INTO llm_cache_metrics (model, bucket_start, requests, cache_hits, cache_misses,
                               prompt_tokens, completion_tokens, total_latency_ms,
                               max_latency_ms, errors)
VALUES ('llama3.2:1b', date_trunc('hour', now()) - INTERVAL '2 hours', 10, 6, 4, 100, 200,
        1000, 300, 1),
       ('llama3.2:1b', date_trunc('hour', now()) - INTERVAL '1 hour', 20, 15, 5, 300, 400,
        3000, 500, 0),
       ('qwen2.5:0.5b', date_trunc('hour', now()) - INTERVAL '1 hour', 10, 0, 10, 50, 50,
        1000, 200, 0),
       ('old-model', now() - INTERVAL '60 days', 99, 99, 0, 1, 1, 1, 1, 0)
"""

QUEUED_JOBS = """
INSERT INTO job_queue (job_type, status) VALUES
 ('ingest.financial', 'pending'), ('ingest.financial', 'pending'), ('sync.supabase', 'failed')
"""


def texts(elements: Any) -> list[str]:
    """The element bodies as a reader sees them (the Markdown escapes of ``ui.plain`` undone)."""
    return [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in elements]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: str(m.value) for m in at.metric}


@pytest.mark.parametrize(
    ("page", "empty_text"),
    [
        ("sync_lag", "No external systems are being synced yet"),
        ("ingestion", "No ingestion runs in the last 24 hours"),
        ("agents", "No agents registered yet."),
        ("llm", "No LLM traffic recorded in this window"),
    ],
)
@pytest.mark.usefixtures("dashboard_env")
async def test_empty_tables_give_a_friendly_empty_state(
    open_page: OpenPage, page: str, empty_text: str
) -> None:
    at = open_page(page)
    assert any(i.startswith(empty_text) for i in texts(at.info)), texts(at.info)
    assert not at.error


@pytest.mark.parametrize("page", ["jobs", "sync_lag", "ingestion", "agents", "llm"])
async def test_unreachable_database_is_named_on_every_page(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    closed_url: str,
    open_page: OpenPage,
    page: str,
) -> None:
    port = closed_url.rsplit(":", 1)[1]
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/x")
    at = open_page(page)
    assert any(e.startswith("**Database unreachable**") for e in texts(at.error)), texts(at.error)


@pytest.mark.usefixtures("dashboard_env")
async def test_sync_lag_highlights_systems_over_five_minutes(
    open_page: OpenPage, seed: Seed
) -> None:
    await seed(SYNC)
    at = open_page("sync_lag")
    m = metrics(at)
    assert m["Systems"] == "3"
    assert m["Over 5 min"] == "2"
    assert m["Largest lag"] == "2.0 h"
    [alert] = [e for e in texts(at.error) if e.startswith("Over five minutes behind")]
    assert "crm" in alert and "supabase" in alert and "email" not in alert
    assert any("crm" in w and "token expired" in w for w in texts(at.warning))
    table = at.dataframe[0].value
    over = dict(zip(table["system_name"], table["over_5_min"], strict=True))
    assert over == {"crm": True, "supabase": True, "email": False}
    assert len(at.get("vega_lite_chart")) == 2  # lag per system, lag over time
    assert any("system_metrics (sync_lag_seconds)" in c for c in texts(at.caption))


@pytest.mark.usefixtures("dashboard_env")
async def test_ingestion_errors_per_source_and_latest_failures(
    open_page: OpenPage, seed: Seed
) -> None:
    await seed(INGESTION)
    at = open_page("ingestion")
    m = metrics(at)
    # the view covers 24 hours: the 3-day-old failure is not counted there
    assert (m["Runs"], m["Failed runs"], m["Partial runs"], m["Rows failed"]) == (
        "3",
        "1",
        "1",
        "13",
    )
    per_source = at.dataframe[0].value
    assert dict(zip(per_source["source"], per_source["failed_runs"], strict=True)) == {
        "yahoo": 1,
        "imap": 0,
    }
    failures = at.dataframe[1].value
    assert list(failures["error_message"]) == [
        "HTTP 429 from upstream",
        "three messages unreadable",
        "ancient failure",
    ]
    assert any("yahoo" in e and "HTTP 429 from upstream" in e for e in texts(at.error))


@pytest.mark.usefixtures("dashboard_env")
async def test_agents_activity_heartbeats_and_reputation(open_page: OpenPage, seed: Seed) -> None:
    await seed(AGENTS)
    at = open_page("agents")
    m = metrics(at)
    assert m == {
        "Agents": "3",
        "Active or busy": "1",
        "Heartbeat < 5 min": "1",
        "Events (last hour)": "2",
    }
    events = at.dataframe[0].value
    assert len(events) == 3
    assert set(events["agent_name"]) == {"scout", "clerk"}
    agents = at.dataframe[1].value
    assert list(agents["name"]) == ["scout", "clerk", "ghost"]
    assert list(agents["last_heartbeat"])[2] == "never"
    assert list(agents["score"])[:2] == [0.9, 0.4]


@pytest.mark.usefixtures("dashboard_env")
async def test_llm_hit_ratio_requests_and_tokens(open_page: OpenPage, seed: Seed) -> None:
    await seed(LLM)
    at = open_page("llm")
    m = metrics(at)
    assert m["Requests"] == "40"
    assert m["Cache hit ratio"] == "52.5%"  # 21 hits / 40 lookups
    assert m["Tokens"] == "1100"
    assert m["Errors"] == "1"
    assert m["Avg latency"] == "125 ms"
    per_model = at.dataframe[0].value
    assert dict(zip(per_model["model"], per_model["hit_ratio"], strict=True)) == {
        "llama3.2:1b": "70.0%",
        "qwen2.5:0.5b": "0.0%",
    }
    assert len(at.get("vega_lite_chart")) == 3
    at.selectbox(key="llm_window").set_value("Last 30 days").run()
    assert not at.exception
    assert metrics(at)["Requests"] == "40"  # the 60-day-old bucket stays out


async def backlog(database_url: str) -> dict[tuple[str, str], int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT job_type, status, job_count FROM mv_job_queue_backlog")
    finally:
        await conn.close()
    return {(r["job_type"], r["status"]): int(r["job_count"]) for r in rows}


async def test_refresh_now_refreshes_the_views_through_the_api(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    database_url: str,
    live_api: Any,
    seed: Seed,
    open_page: OpenPage,
) -> None:
    monkeypatch.setenv("API_URL", live_api.url)
    monkeypatch.setenv("API_KEY", live_api.key)
    # rows written after the views' last refresh: the views do not show them yet
    await seed(SYNC + ";" + QUEUED_JOBS, refresh=False)
    assert await backlog(database_url) == {}
    at = open_page("sync_lag")
    assert any(i.startswith("No external systems are being synced yet") for i in texts(at.info))

    at.sidebar.button(key="refresh_now").click().run()
    assert not at.exception
    assert "Materialized views refreshed through the API." in texts(at.sidebar.success)
    assert await backlog(database_url) == {
        ("ingest.financial", "pending"): 2,
        ("sync.supabase", "failed"): 1,
    }
    assert metrics(at)["Systems"] == "3"  # the page re-read the refreshed mv_sync_lag


async def test_refresh_now_with_the_api_down_says_so(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: str, closed_url: str, open_page: OpenPage
) -> None:
    monkeypatch.setenv("API_KEY", "test-key-not-secret")
    at = open_page("overview")
    at.sidebar.button(key="refresh_now").click().run()
    assert not at.exception
    [warning] = texts(at.sidebar.warning)
    assert warning.startswith(f"Views not refreshed: API unreachable at {closed_url}")


async def test_the_refresh_interval_is_adjustable(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: str, open_page: OpenPage
) -> None:
    at = open_page("overview")
    assert any("auto-refresh off" in c for c in texts(at.caption))
    at.sidebar.select_slider[0].set_value(30).run()
    assert not at.exception
    assert any(c.startswith("Last refreshed") and "every 30s" in c for c in texts(at.caption))


async def test_an_unmigrated_database_says_so(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    empty_database_url: str,
    open_page: OpenPage,
) -> None:
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", empty_database_url)
    at = open_page("agents")
    [error] = texts(at.error)
    assert error.startswith("**Database schema missing**")
    assert 'relation "agents" does not exist' in error
    assert "cesar-migrate apply" in error
