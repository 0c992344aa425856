"""Faults at stack level: a worker killed mid-workflow, Redis restarted empty, the database
stopped for a few seconds. Afterwards every job ends in a final state and nothing is lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.helpers import create_template, execute, query, wait_final
from tests.e2e.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]


def enqueue_noops(api: httpx.Client, count: int, **payload: Any) -> list[str]:
    ids = []
    for _ in range(count):
        response = api.post(
            "/api/v1/jobs", json={"job_type": "maintenance.noop", "payload": payload}
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def job_status(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/api/v1/jobs/{job_id}").json()["status"])


def finished_after(stack: Stack, job_ids: list[str], moment: datetime) -> int:
    """How many of the jobs ended after ``moment``: proof they were unfinished at a fault
    (one machine, so the worker's clock and this one agree)."""
    rows = query(
        stack.database_url,
        "SELECT count(*) FROM job_queue WHERE id = ANY($1::uuid[]) AND finished_at > $2",
        job_ids,
        moment,
    )
    return int(rows[0][0])


def test_worker_killed_mid_workflow_another_worker_finishes_it(stack: Stack) -> None:
    steps = [
        {"name": "long", "kind": "delay", "seconds": 4},
        {"name": "tell", "kind": "agent.event", "event_type": "e2e.after-kill"},
    ]
    with stack.api() as api:
        job_id = execute(api, create_template(api, steps))["job"]["id"]
        wait_until(lambda: job_status(api, job_id) == "running", 30, "job running")
        stack.services["worker"].kill()
        replacement = stack.start_worker("worker-2")
        job = wait_final(api, job_id, timeout=90)
        assert job["status"] == "succeeded", (job, stack.logs())
        assert job["attempts"] == 2  # the killed run counts, honestly
        assert job["worker_id"] == replacement.name
        events = query(
            stack.database_url,
            "SELECT count(*) FROM agent_events WHERE event_type = 'e2e.after-kill'",
        )
        assert events[0][0] == 1  # the rerun did not repeat the event


def test_redis_restarted_empty_loses_no_job(stack: Stack) -> None:
    with stack.api() as api:
        # long enough that they are still running when Redis goes away
        before = enqueue_noops(api, 15, sleep_seconds=3)
        redis_stopped = datetime.now(UTC)
        stack.redis.stop()
        during = []
        for _ in range(5):
            response = api.post(
                "/api/v1/jobs", json={"job_type": "maintenance.noop", "payload": {}}
            )
            # accepted and kept as pending in job_queue until Redis is back
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "pending"
            during.append(response.json()["id"])
        stack.redis.start()  # same port, nothing in it: a flushed and restarted Redis
        after = enqueue_noops(api, 5)
        for job_id in before + during + after:
            job = wait_final(api, job_id, timeout=120)
            assert job["status"] == "succeeded", (job, stack.logs())
        assert finished_after(stack, before, redis_stopped) >= 1


def test_database_stopped_health_goes_unhealthy_and_comes_back(stack: Stack) -> None:
    with stack.api() as api:
        # long enough that they are still running when the database goes away
        ids = enqueue_noops(api, 10, sleep_seconds=3)
        database_stopped = datetime.now(UTC)
        stack.pg.stop()
        try:
            wait_until(lambda: api.get("/health").status_code == 503, 30, "unhealthy /health")
            body = api.get("/health").json()
            assert body["status"] == "unhealthy"
            assert body["components"]["database"]["status"] == "unhealthy"
            time.sleep(3)
        finally:
            stack.pg.start()
        wait_until(lambda: api.get("/health").status_code == 200, 60, "healthy /health again")
        assert api.get("/health").json()["components"]["database"]["status"] == "healthy"
        more = enqueue_noops(api, 3)
        for job_id in ids + more:
            job = wait_final(api, job_id, timeout=120)
            assert job["status"] == "succeeded", (job, stack.logs())
        assert finished_after(stack, ids, database_stopped) >= 1
        stuck = query(
            stack.database_url,
            "SELECT count(*) FROM job_queue WHERE status NOT IN ('succeeded','failed','cancelled')",
        )
        assert stuck[0][0] == 0
