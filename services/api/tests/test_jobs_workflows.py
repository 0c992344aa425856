"""Jobs (enqueue, list/filter, get, retry, cancel) and workflows (templates, execute, executions)."""

from __future__ import annotations

import uuid

import httpx
from cesar_core.db import Database

STEPS = {"steps": [{"name": "fetch", "action": "noop"}, {"name": "store", "action": "noop"}]}


async def test_job_routes(client: httpx.AsyncClient, auth: dict[str, str], db: Database) -> None:
    created = await client.post(
        "/api/v1/jobs",
        json={"job_type": "maintenance.noop", "payload": {"echo": "hi"}, "max_attempts": 2},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued" and job["max_attempts"] == 2  # Redis is up: dispatched
    assert job["payload"]["echo"] == "hi"

    same = await client.post(
        "/api/v1/jobs",
        json={"job_type": "maintenance.noop", "unique_key": "only-one"},
        headers=auth,
    )
    again = await client.post(
        "/api/v1/jobs",
        json={"job_type": "maintenance.noop", "unique_key": "only-one"},
        headers=auth,
    )
    assert same.json()["id"] == again.json()["id"]
    later = await client.post(
        "/api/v1/jobs",
        json={"job_type": "maintenance.noop", "run_after": "2999-01-01T00:00:00Z"},
        headers=auth,
    )
    assert later.json()["status"] == "pending"

    unknown = await client.post("/api/v1/jobs", json={"job_type": "no.such"}, headers=auth)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_job_type"
    bad = await client.post(
        "/api/v1/jobs",
        json={"job_type": "maintenance.noop", "payload": {"sleep_seconds": -1}},
        headers=auth,
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_payload"
    assert "sleep_seconds" in bad.json()["error"]["message"]
    too_many = await client.post(
        "/api/v1/jobs", json={"job_type": "maintenance.noop", "max_attempts": 0}, headers=auth
    )
    assert too_many.status_code == 422 and "max_attempts" in too_many.json()["error"]["message"]

    got = await client.get(f"/api/v1/jobs/{job['id']}")
    assert got.status_code == 200 and got.json()["id"] == job["id"]
    assert (await client.get(f"/api/v1/jobs/{uuid.uuid4()}")).status_code == 404

    listing = (await client.get("/api/v1/jobs?limit=2")).json()
    assert len(listing["items"]) == 2 and listing["next_cursor"]
    rest = (await client.get(f"/api/v1/jobs?limit=2&cursor={listing['next_cursor']}")).json()
    ids = [j["id"] for j in listing["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 3
    pending = (await client.get("/api/v1/jobs?status=pending")).json()["items"]
    assert later.json()["id"] in [j["id"] for j in pending]
    assert (await client.get("/api/v1/jobs?status=sleeping")).status_code == 422
    found = (await client.get(f"/api/v1/jobs?search={job['id'][:8]}", headers=auth)).json()["items"]
    assert [j["id"] for j in found] == [job["id"]]
    typed = (await client.get("/api/v1/jobs?job_type=maintenance.noop&limit=500")).json()
    assert len(typed["items"]) == 3
    window = await client.get(
        "/api/v1/jobs?created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00Z"
    )
    assert len(window.json()["items"]) == 3
    assert (await client.get("/api/v1/jobs?limit=501")).status_code == 422

    # retry only applies to failed/cancelled jobs: 409 first, then cancel, then retry
    conflict = await client.post(f"/api/v1/jobs/{job['id']}/retry", headers=auth)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "invalid_state"
    cancelled = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    twice = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth)
    assert twice.status_code == 409
    retried = await client.post(f"/api/v1/jobs/{job['id']}/retry", headers=auth)
    assert retried.status_code == 200
    assert retried.json()["status"] == "queued" and retried.json()["attempts"] == 0
    assert (
        await client.post(f"/api/v1/jobs/{uuid.uuid4()}/cancel", headers=auth)
    ).status_code == 404
    assert (await client.post(f"/api/v1/jobs/{job['id']}/cancel")).status_code == 401


async def test_workflow_templates_and_execution(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    created = await client.post(
        "/api/v1/workflows/templates",
        json={"name": "daily-report", "description": "v1", "definition": STEPS},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    v1 = created.json()
    assert v1["version"] == 1 and v1["definition"]["steps"][0]["action"] == "noop"
    dup = await client.post(
        "/api/v1/workflows/templates",
        json={"name": "daily-report", "definition": STEPS},
        headers=auth,
    )
    assert dup.status_code == 409 and "versions" in dup.json()["error"]["message"]
    bad = await client.post(
        "/api/v1/workflows/templates",
        json={"name": "x", "definition": {"steps": [{"name": "a"}, {"name": "a"}]}},
        headers=auth,
    )
    assert bad.status_code == 422 and "used twice" in bad.json()["error"]["message"]
    no_steps = await client.post(
        "/api/v1/workflows/templates", json={"name": "y", "definition": {}}, headers=auth
    )
    assert no_steps.status_code == 422 and "steps" in no_steps.json()["error"]["message"]

    v2 = await client.post(
        "/api/v1/workflows/templates/daily-report/versions",
        json={"description": "v2", "definition": STEPS},
        headers=auth,
    )
    assert v2.status_code == 201 and v2.json()["version"] == 2
    missing = await client.post(
        "/api/v1/workflows/templates/nope/versions", json={"definition": STEPS}, headers=auth
    )
    assert missing.status_code == 404

    latest = (await client.get("/api/v1/workflows/templates")).json()["items"]
    assert [(t["name"], t["version"]) for t in latest] == [("daily-report", 2)]
    every = (await client.get("/api/v1/workflows/templates?all_versions=true")).json()["items"]
    assert sorted(t["version"] for t in every) == [1, 2]
    got = await client.get(f"/api/v1/workflows/templates/{v1['id']}")
    assert got.json()["description"] == "v1"
    assert (await client.get(f"/api/v1/workflows/templates/{uuid.uuid4()}")).status_code == 404

    run = await client.post(
        f"/api/v1/workflows/templates/{v2.json()['id']}/execute",
        json={"input": {"day": "2024-01-02"}, "triggered_by": "tests"},
        headers=auth,
    )
    assert run.status_code == 202, run.text
    execution, job = run.json()["execution"], run.json()["job"]
    assert job["job_type"] == "workflow.execute"
    assert job["payload"]["execution_id"] == execution["id"]
    assert execution["job_id"] == job["id"] and execution["status"] == "pending"
    assert execution["progress"] == {
        "total_steps": 2,
        "completed_steps": 0,
        "current_step": 0,
        "percent": 0.0,
    }
    missing_template = await client.post(
        f"/api/v1/workflows/templates/{uuid.uuid4()}/execute", json={}, headers=auth
    )
    assert missing_template.status_code == 404

    # the worker records progress in the row; the API reports it
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE workflow_executions SET status = 'running', current_step = 1, steps = $2::JSONB"
            " WHERE id = $1",
            uuid.UUID(execution["id"]),
            '[{"name": "fetch", "status": "succeeded"}, {"name": "store", "status": "running"}]',
        )
    one = (await client.get(f"/api/v1/workflows/executions/{execution['id']}")).json()
    assert one["progress"]["completed_steps"] == 1 and one["progress"]["percent"] == 50.0
    listed = (
        await client.get(f"/api/v1/workflows/executions?template_id={v2.json()['id']}")
    ).json()["items"]
    assert [e["id"] for e in listed] == [execution["id"]]
    assert (await client.get("/api/v1/workflows/executions?status=running")).json()["items"]
    assert (await client.get(f"/api/v1/workflows/executions/{uuid.uuid4()}")).status_code == 404

    # unique_key: a second execute while the first is active returns the same execution
    first = await client.post(
        f"/api/v1/workflows/templates/{v1['id']}/execute",
        json={"unique_key": "report-today"},
        headers=auth,
    )
    second = await client.post(
        f"/api/v1/workflows/templates/{v1['id']}/execute",
        json={"unique_key": "report-today"},
        headers=auth,
    )
    assert first.json()["execution"]["id"] == second.json()["execution"]["id"]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM workflow_executions") == 2
