"""The jobs page: filters, search, details, and retry/cancel through the API with confirmation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from streamlit.testing.v1 import AppTest

Seed = Callable[..., Any]
OpenPage = Callable[[str], AppTest]

JOBS = """
INSERT INTO job_queue (id, job_type, payload, status, attempts, max_attempts, last_error, result,
                       created_at, started_at, updated_at, finished_at)
VALUES
 ('aaaaaaaa-0000-4000-8000-000000000001', 'ingest.financial', '{"symbol": "AAPL"}', 'failed',
  2, 5, 'upstream said 429', NULL,
  now() - INTERVAL '3 hours', now() - INTERVAL '3 hours', now() - INTERVAL '2 hours',
  now() - INTERVAL '2 hours'),
 ('bbbbbbbb-0000-4000-8000-000000000002', 'ingest.financial', '{"symbol": "MSFT"}', 'cancelled',
  1, 5, NULL, NULL, now() - INTERVAL '2 days', NULL, now() - INTERVAL '2 days',
  now() - INTERVAL '2 days'),
 ('cccccccc-0000-4000-8000-000000000003', 'workflow.execute', '{"template": "daily_100%"}',
  'succeeded', 1, 5, NULL, '{"rows": 42}', now() - INTERVAL '10 minutes',
  now() - INTERVAL '9 minutes', now() - INTERVAL '8 minutes', now() - INTERVAL '8 minutes'),
 ('dddddddd-0000-4000-8000-000000000004', 'workflow.execute', '{"template": "hourly"}',
  'pending', 0, 5, NULL, NULL, now(), NULL, now(), NULL),
 ('eeeeeeee-0000-4000-8000-000000000005', 'sync.supabase', '{}', 'running', 1, 3, NULL, NULL,
  now(), now(), now(), NULL)
"""
FAILED_ID = "aaaaaaaa-0000-4000-8000-000000000001"
CANCELLED_ID = "bbbbbbbb-0000-4000-8000-000000000002"


def texts(elements: Any) -> list[str]:
    return [str(e.value) for e in elements]


def matching(at: AppTest) -> int:
    return int(next(m.value for m in at.metric if m.label == "Matching jobs"))


def check(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
async def jobs_page(dashboard_env: str, seed: Seed, open_page: OpenPage) -> AppTest:
    await seed(JOBS)
    return open_page("jobs")


async def test_empty_queue_is_a_friendly_empty_state(
    dashboard_env: str, open_page: OpenPage
) -> None:
    at = open_page("jobs")
    assert "No jobs yet: the queue has never had a job." in texts(at.info)


async def test_lists_every_job_with_counts(jobs_page: AppTest) -> None:
    at = jobs_page
    assert matching(at) == 5
    table = at.dataframe[0].value
    # newest first; equal created_at is ordered by id, descending
    assert list(table["id"]) == [
        "eeeeeeee-0000-4000-8000-000000000005",
        "dddddddd-0000-4000-8000-000000000004",
        "cccccccc-0000-4000-8000-000000000003",
        FAILED_ID,
        CANCELLED_ID,
    ]
    assert len(table) == 5
    assert "failed: 1" in " ".join(texts(at.caption))


async def test_filters_by_status_type_and_time(jobs_page: AppTest) -> None:
    at = jobs_page
    check(at.multiselect(key="jobs_statuses").set_value(["failed", "cancelled"]).run())
    assert matching(at) == 2
    check(at.multiselect(key="jobs_types").set_value(["ingest.financial"]).run())
    assert matching(at) == 2
    check(at.selectbox(key="jobs_window").set_value("Last 24 hours").run())
    assert matching(at) == 1
    assert list(at.dataframe[0].value["id"]) == [FAILED_ID]
    check(at.selectbox(key="jobs_window").set_value("Last 15 minutes").run())
    assert "No jobs match these filters." in texts(at.info)


async def test_search_by_payload_text_and_id_prefix(jobs_page: AppTest) -> None:
    at = jobs_page
    check(at.text_input(key="jobs_search").input("msft").run())
    assert list(at.dataframe[0].value["id"]) == [CANCELLED_ID]
    check(at.text_input(key="jobs_search").input("AAAAAAAA").run())
    assert list(at.dataframe[0].value["id"]) == [FAILED_ID]
    # LIKE wildcards are searched literally: "100%" matches only the payload holding it
    check(at.text_input(key="jobs_search").input("100%").run())
    assert matching(at) == 1
    check(at.text_input(key="jobs_search").input("%").run())
    assert matching(at) == 1


async def test_details_show_payload_attempts_error_result_and_timeline(
    jobs_page: AppTest,
) -> None:
    at = jobs_page
    check(at.selectbox(key="jobs_selected").set_value(FAILED_ID).run())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "failed"
    assert metrics["Attempts"] == "2/5"
    assert "upstream said 429" in texts(at.code)
    assert any('"symbol"' in j.value and "AAPL" in j.value for j in at.json)
    timeline = at.dataframe[-1].value
    assert list(timeline["event"]) == ["created", "run after", "started", "finished", "updated"]

    check(at.selectbox(key="jobs_selected").set_value("cccccccc-0000-4000-8000-000000000003").run())
    assert any('"rows"' in j.value and "42" in j.value for j in at.json)


async def test_without_api_key_actions_are_disabled(jobs_page: AppTest) -> None:
    at = jobs_page
    assert any("API_KEY is not set" in i for i in texts(at.info))
    assert at.button(key="jobs_bulk_retry").disabled
    assert at.button(key="jobs_retry_one").disabled


async def test_retry_one_with_unreachable_api_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    seed: Seed,
    open_page: OpenPage,
    closed_url: str,
) -> None:
    monkeypatch.setenv("API_KEY", "test-key-not-secret")
    await seed(JOBS)
    at = open_page("jobs")
    check(at.selectbox(key="jobs_selected").set_value(FAILED_ID).run())
    assert at.button(key="jobs_cancel_one").disabled  # a failed job cannot be cancelled
    check(at.button(key="jobs_retry_one").click().run())
    assert any(f"Retry job {FAILED_ID}?" in w for w in texts(at.warning))
    check(at.button(key="jobs_confirm").click().run())
    errors = texts(at.error)
    assert any(
        e.startswith(f"Retry of job {FAILED_ID} failed: API unreachable at {closed_url}")
        for e in errors
    ), errors


async def test_retry_one_posts_to_the_api_with_the_key(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    seed: Seed,
    open_page: OpenPage,
    recording_api: Any,
) -> None:
    monkeypatch.setenv("API_KEY", "test-key-not-secret")
    monkeypatch.setenv("API_URL", recording_api.url)
    await seed(JOBS)
    at = open_page("jobs")
    check(at.selectbox(key="jobs_selected").set_value(FAILED_ID).run())
    check(at.button(key="jobs_retry_one").click().run())
    assert recording_api.posts() == []  # nothing happens before the confirmation
    check(at.button(key="jobs_confirm").click().run())
    [post] = recording_api.posts()
    assert post.path == f"/api/v1/jobs/{FAILED_ID}/retry"
    assert post.authorization == "Bearer test-key-not-secret"
    assert f"Retry requested for job {FAILED_ID}." in texts(at.success)


async def test_bulk_retry_of_the_filtered_set_after_confirmation(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    seed: Seed,
    open_page: OpenPage,
    recording_api: Any,
) -> None:
    monkeypatch.setenv("API_KEY", "test-key-not-secret")
    monkeypatch.setenv("API_URL", recording_api.url)
    await seed(JOBS)
    at = open_page("jobs")
    check(at.multiselect(key="jobs_types").set_value(["ingest.financial"]).run())
    bulk = at.button(key="jobs_bulk_retry")
    assert bulk.label == "Retry 2 failed/cancelled in the filtered set"
    check(bulk.click().run())
    assert any("Retry 2 jobs of the filtered set?" in w for w in texts(at.warning))
    check(at.button(key="jobs_confirm").click().run())
    paths = sorted(p.path for p in recording_api.posts())
    assert paths == [
        f"/api/v1/jobs/{FAILED_ID}/retry",
        f"/api/v1/jobs/{CANCELLED_ID}/retry",
    ]
    assert "Retry: 2 of 2 jobs done." in texts(at.success)


async def test_bulk_cancel_can_be_called_off(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    seed: Seed,
    open_page: OpenPage,
    recording_api: Any,
) -> None:
    monkeypatch.setenv("API_KEY", "test-key-not-secret")
    monkeypatch.setenv("API_URL", recording_api.url)
    await seed(JOBS)
    at = open_page("jobs")
    check(at.button(key="jobs_bulk_cancel").click().run())
    assert any("Cancel 2 jobs of the filtered set?" in w for w in texts(at.warning))
    check(at.button(key="jobs_abort").click().run())
    assert not any("filtered set?" in w for w in texts(at.warning))
    assert recording_api.posts() == []


async def test_api_refusal_is_reported_per_job(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    seed: Seed,
    open_page: OpenPage,
    recording_api: Any,
) -> None:
    monkeypatch.setenv("API_KEY", "test-key-not-secret")
    monkeypatch.setenv("API_URL", recording_api.url)
    recording_api.status = 409
    await seed(JOBS)
    at = open_page("jobs")
    check(at.button(key="jobs_bulk_cancel").click().run())
    check(at.button(key="jobs_confirm").click().run())
    [error] = [e for e in texts(at.error) if e.startswith("Cancel:")]
    assert "0 of 2 jobs done. 2 refused" in error
    assert "HTTP 409: job is succeeded" in error


async def test_the_dashboard_connection_refuses_writes(database_url: str) -> None:
    from cesar_dashboard.database import open_connection

    conn = await open_connection(database_url, 5.0)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("INSERT INTO job_queue (job_type) VALUES ('maintenance.noop')")
    finally:
        await conn.close()
