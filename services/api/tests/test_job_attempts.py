"""GET /api/v1/jobs/{id}/attempts: the attempt history the worker writes to job_attempts."""

from __future__ import annotations

import uuid

import httpx
from cesar_core.db import Database


async def test_attempts_of_a_job_oldest_first(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    created = await client.post("/api/v1/jobs", json={"job_type": "maintenance.noop"}, headers=auth)
    job_id = created.json()["id"]
    assert (await client.get(f"/api/v1/jobs/{job_id}/attempts")).json() == {
        "job_id": job_id,
        "items": [],
    }
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO job_attempts (job_id, dispatch_token, attempt, worker_id, started_at,"
            " finished_at, outcome, error) VALUES"
            " ($1, 'a', 1, 'w1', now() - INTERVAL '1 minute', now() - INTERVAL '50 seconds',"
            "  'lost', 'worker w1 stopped renewing its lease'),"
            " ($1, 'b', 2, 'w2', now() - INTERVAL '40 seconds', NULL, NULL, NULL)",
            uuid.UUID(job_id),
        )
    body = (await client.get(f"/api/v1/jobs/{job_id}/attempts")).json()
    assert [(a["attempt"], a["worker_id"], a["outcome"]) for a in body["items"]] == [
        (1, "w1", "lost"),
        (2, "w2", None),
    ]
    assert body["items"][1]["finished_at"] is None
    missing = await client.get(f"/api/v1/jobs/{uuid.uuid4()}/attempts")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/jobs/not-a-uuid/attempts")).status_code == 422
