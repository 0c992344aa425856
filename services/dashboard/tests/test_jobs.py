"""The jobs page: filters, search, details, and retry/cancel through the API with confirmation."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from streamlit.testing.v1 import AppTest

from .test_chart_axes import assert_24_hour_utc

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
SUCCEEDED_ID = "cccccccc-0000-4000-8000-000000000003"
PENDING_ID = "dddddddd-0000-4000-8000-000000000004"
RUNNING_ID = "eeeeeeee-0000-4000-8000-000000000005"


def texts(elements: Any) -> list[str]:
    """The element bodies as a reader sees them (the Markdown escapes of ``ui.plain`` undone)."""
    return [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in elements]


def matching(at: AppTest) -> int:
    return int(next(m.value for m in at.metric if m.label == "Matching jobs"))


def metric(at: AppTest, label: str) -> str:
    return str(next(m.value for m in at.metric if m.label == label))


async def job_rows(database_url: str) -> dict[str, tuple[str, int]]:
    """Every job's (status, attempts), read with the test's own connection."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, status, attempts FROM job_queue")
    finally:
        await conn.close()
    return {str(r["id"]): (str(r["status"]), int(r["attempts"])) for r in rows}


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


ATTEMPTS = f"""
INSERT INTO job_attempts (job_id, dispatch_token, attempt, worker_id, started_at, finished_at,
                          outcome, error) VALUES
 ('{FAILED_ID}', 't1', 1, 'worker-a', now() - INTERVAL '2 minutes', now() - INTERVAL '110 seconds',
  'lost', 'worker worker-a stopped renewing its lease'),
 ('{FAILED_ID}', 't2', 2, 'worker-b', now() - INTERVAL '1 minute', now(), 'failed',
  'upstream said 429')
"""


async def test_details_show_payload_attempts_error_result_and_timeline(
    jobs_page: AppTest, seed: Any
) -> None:
    at = jobs_page
    await seed(ATTEMPTS, refresh=False)
    check(at.selectbox(key="jobs_selected").set_value(FAILED_ID).run())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "failed"
    assert metrics["Attempts"] == "2/5"
    assert "upstream said 429" in texts(at.code)
    assert any('"symbol"' in j.value and "AAPL" in j.value for j in at.json)
    timeline = next(d.value for d in at.dataframe if "event" in d.value.columns)
    assert list(timeline["event"]) == ["created", "run after", "started", "finished", "updated"]
    history = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert list(history["outcome"]) == ["lost", "failed"]
    assert list(history["worker"]) == ["worker-a", "worker-b"]

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


@pytest.fixture
async def acting_page(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    seed: Seed,
    open_page: OpenPage,
    live_api: Any,
) -> AppTest:
    """The jobs page over the seeded rows, acting through the real API with a real key."""
    monkeypatch.setenv("API_URL", live_api.url)
    monkeypatch.setenv("API_KEY", live_api.key)
    await seed(JOBS)
    return open_page("jobs")


async def test_retry_one_through_the_api_requeues_the_job(
    acting_page: AppTest, database_url: str
) -> None:
    at = acting_page
    before = await job_rows(database_url)
    check(at.selectbox(key="jobs_selected").set_value(FAILED_ID).run())
    assert at.button(key="jobs_cancel_one").disabled  # a failed job cannot be cancelled
    check(at.button(key="jobs_retry_one").click().run())
    assert any(f"Retry job {FAILED_ID}?" in w for w in texts(at.warning))
    assert await job_rows(database_url) == before  # nothing happens before the confirmation

    check(at.button(key="jobs_confirm").click().run())
    assert f"Retry requested for job {FAILED_ID}." in texts(at.success)
    after = await job_rows(database_url)
    status, attempts = after.pop(FAILED_ID)
    assert status == "queued"  # Redis is up: dispatched at once
    assert attempts == 0  # a retry starts afresh
    before.pop(FAILED_ID)
    assert after == before  # no other job changed
    # the page re-read the database: the details show the new state
    assert metric(at, "Status") == status


async def test_cancel_one_through_the_api(acting_page: AppTest, database_url: str) -> None:
    at = acting_page
    check(at.selectbox(key="jobs_selected").set_value(PENDING_ID).run())
    assert at.button(key="jobs_retry_one").disabled  # a pending job cannot be retried
    check(at.button(key="jobs_cancel_one").click().run())
    assert any(f"Cancel job {PENDING_ID}?" in w for w in texts(at.warning))
    assert (await job_rows(database_url))[PENDING_ID][0] == "pending"

    check(at.button(key="jobs_confirm").click().run())
    assert f"Cancel requested for job {PENDING_ID}." in texts(at.success)
    assert (await job_rows(database_url))[PENDING_ID][0] == "cancelled"
    assert metric(at, "Status") == "cancelled"


async def test_bulk_retry_of_the_filtered_set_after_confirmation(
    acting_page: AppTest, database_url: str
) -> None:
    at = acting_page
    check(at.multiselect(key="jobs_types").set_value(["ingest.financial"]).run())
    bulk = at.button(key="jobs_bulk_retry")
    assert bulk.label == "Retry 2 failed/cancelled in the filtered set"
    check(bulk.click().run())
    assert any("Retry 2 jobs of the filtered set?" in w for w in texts(at.warning))
    check(at.button(key="jobs_confirm").click().run())
    assert "Retry: 2 of 2 jobs done." in texts(at.success)
    rows = await job_rows(database_url)
    assert {job_id: status for job_id, (status, _) in rows.items()} == {
        FAILED_ID: "queued",  # Redis is up: dispatched at once
        CANCELLED_ID: "queued",
        SUCCEEDED_ID: "succeeded",  # outside the filter: untouched
        PENDING_ID: "pending",
        RUNNING_ID: "running",
    }


async def test_bulk_cancel_of_the_filtered_set_after_confirmation(
    acting_page: AppTest, database_url: str
) -> None:
    at = acting_page
    bulk = at.button(key="jobs_bulk_cancel")
    assert bulk.label == "Cancel 2 active in the filtered set"
    check(bulk.click().run())
    assert any("Cancel 2 jobs of the filtered set?" in w for w in texts(at.warning))
    check(at.button(key="jobs_confirm").click().run())
    assert "Cancel: 2 of 2 jobs done." in texts(at.success)
    statuses = {job_id: status for job_id, (status, _) in (await job_rows(database_url)).items()}
    assert statuses == {
        FAILED_ID: "failed",
        CANCELLED_ID: "cancelled",
        SUCCEEDED_ID: "succeeded",
        PENDING_ID: "cancelled",
        RUNNING_ID: "cancelled",
    }
    assert "cancelled: 3" in " ".join(texts(at.caption))  # the list was re-read


async def test_bulk_cancel_can_be_called_off(acting_page: AppTest, database_url: str) -> None:
    at = acting_page
    before = await job_rows(database_url)
    check(at.button(key="jobs_bulk_cancel").click().run())
    assert any("Cancel 2 jobs of the filtered set?" in w for w in texts(at.warning))
    check(at.button(key="jobs_abort").click().run())
    assert not any("filtered set?" in w for w in texts(at.warning))
    assert await job_rows(database_url) == before


async def test_api_refusal_of_one_job_is_reported(
    acting_page: AppTest, database_url: str, seed: Seed
) -> None:
    at = acting_page
    check(at.selectbox(key="jobs_selected").set_value(FAILED_ID).run())
    check(at.button(key="jobs_retry_one").click().run())
    # meanwhile someone else retried it and it succeeded
    await seed(
        "UPDATE job_queue SET status = 'succeeded' WHERE id = $1", UUID(FAILED_ID), refresh=False
    )
    check(at.button(key="jobs_confirm").click().run())
    [error] = texts(at.error)
    assert error.startswith(f"Retry of job {FAILED_ID} failed: HTTP 409: ")
    assert "succeeded" in error
    assert (await job_rows(database_url))[FAILED_ID][0] == "succeeded"


async def test_api_refusal_is_reported_per_job_in_a_bulk_action(
    acting_page: AppTest, database_url: str, seed: Seed
) -> None:
    at = acting_page
    # an active job already holds the failed job's unique key, so the API refuses to retry it
    await seed(
        "UPDATE job_queue SET unique_key = 'AAPL-daily' WHERE id = ANY($1::uuid[])",
        [UUID(FAILED_ID), UUID(PENDING_ID)],
        refresh=False,
    )
    check(at.multiselect(key="jobs_types").set_value(["ingest.financial"]).run())
    check(at.button(key="jobs_bulk_retry").click().run())
    check(at.button(key="jobs_confirm").click().run())
    [error] = [e for e in texts(at.error) if e.startswith("Retry:")]
    assert error.startswith("Retry: 1 of 2 jobs done. 1 refused")
    assert f"{FAILED_ID}: HTTP 409: " in error
    assert "unique_key" in error
    rows = await job_rows(database_url)
    assert rows[FAILED_ID][0] == "failed"
    assert rows[CANCELLED_ID][0] == "queued"


async def test_a_key_without_write_scope_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
    dashboard_env: str,
    seed: Seed,
    open_page: OpenPage,
    live_api: Any,
    database_url: str,
) -> None:
    monkeypatch.setenv("API_URL", live_api.url)
    monkeypatch.setenv("API_KEY", await live_api.make_key("viewer", scopes=("read",)))
    await seed(JOBS)
    before = await job_rows(database_url)
    at = open_page("jobs")
    check(at.button(key="jobs_bulk_cancel").click().run())
    check(at.button(key="jobs_confirm").click().run())
    [error] = [e for e in texts(at.error) if e.startswith("Cancel:")]
    assert "0 of 2 jobs done." in error
    assert "the API refused the API key (HTTP 403); check API_KEY" in error
    assert await job_rows(database_url) == before


async def test_the_dashboard_connection_refuses_writes(database_url: str) -> None:
    from cesar_dashboard.database import open_connection

    conn = await open_connection(database_url, 5.0)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("INSERT INTO job_queue (job_type) VALUES ('maintenance.noop')")
    finally:
        await conn.close()


async def test_the_job_timeline_axis_is_24_hour_utc(jobs_page: AppTest) -> None:
    at = check(jobs_page.selectbox(key="jobs_selected").set_value(FAILED_ID).run())
    assert_24_hour_utc(at, "job details")
