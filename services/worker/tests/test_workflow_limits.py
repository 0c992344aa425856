"""Issue 11, finding 8: a workflow cannot fan out without end or blow up its rendered text."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from cesar_core.db import Database
from cesar_core.jobs.dispatch import arq_job_id
from cesar_worker.config import WorkerConfig
from cesar_worker.runtime import WorkerRuntime

from .conftest import FakeClock


@pytest_asyncio.fixture
async def make_rt(
    config: WorkerConfig, db: Database, redis: Any, registry: Any, arq_cleanup: None
) -> AsyncIterator[Any]:
    started: list[WorkerRuntime] = []

    async def make(**update: Any) -> WorkerRuntime:
        cfg = config.model_copy(update={"alert_webhook_url": None, **update})
        runtime = WorkerRuntime(cfg, db, redis, registry, clock=FakeClock(), rand=lambda: 0.5)
        await runtime.start(serve_metrics=False)
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        await runtime.stop()


async def run(rt: WorkerRuntime, job_id: uuid.UUID) -> str:
    job = await rt.queue.get(job_id)
    outcome = await rt.executor.run(arq_job_id(job.id, job.dispatch_token or ""))
    await rt.mirror.drain()
    return outcome


async def add_template(db: Database, name: str, steps: list[dict[str, Any]]) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO workflow_templates (name, definition) VALUES ($1, CAST($2 AS JSONB))",
            name,
            json.dumps({"steps": steps}),
        )


async def run_all_workflows(rt: WorkerRuntime, db: Database, rounds: int) -> list[Any]:
    """Run every not-yet-run workflow job, round after round; all of them, shallowest first."""
    done: set[uuid.UUID] = set()
    for _ in range(rounds):
        async with db.connection() as conn:
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM job_queue WHERE job_type = 'workflow.execute' "
                    "ORDER BY created_at"
                )
                if r["id"] not in done
            ]
        if not ids:
            break
        for job_id in ids:
            await run(rt, job_id)
            done.add(job_id)
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT status, payload, last_error FROM job_queue WHERE job_type = 'workflow.execute'"
        )
    return sorted(rows, key=lambda r: json.loads(r["payload"]).get("depth", 0))


async def test_a_workflow_that_starts_itself_stops_at_the_depth_limit(
    make_rt: Any, db: Database
) -> None:
    rt = await make_rt(workflow_max_depth=2)
    step = {"name": "again", "kind": "enqueue", "job_type": "workflow.execute"}
    await add_template(db, "loop", [{**step, "payload": {"template_name": "loop"}}])
    await rt.queue.enqueue("workflow.execute", {"template_name": "loop"})
    jobs = await run_all_workflows(rt, db, rounds=10)
    assert [json.loads(j["payload"]).get("depth", 0) for j in jobs] == [0, 1, 2]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded", "failed"]
    assert "WORKFLOW_MAX_DEPTH is 2" in jobs[-1]["last_error"]


async def test_a_step_cannot_reset_its_depth(make_rt: Any, db: Database) -> None:
    rt = await make_rt(workflow_max_depth=1)
    payload = {"template_name": "sneaky", "depth": 0}
    await add_template(
        db,
        "sneaky",
        [{"kind": "enqueue", "job_type": "workflow.execute", "payload": payload}],
    )
    await rt.queue.enqueue("workflow.execute", {"template_name": "sneaky"})
    jobs = await run_all_workflows(rt, db, rounds=10)
    assert [j["status"] for j in jobs] == ["succeeded", "failed"]
    # and a job enqueued deeper than the limit is refused before it runs a step
    deep = await rt.queue.enqueue("workflow.execute", {"template_name": "sneaky", "depth": 5})
    assert await run(rt, deep.id) == "failed"
    assert "beyond WORKFLOW_MAX_DEPTH (1)" in (await rt.queue.get(deep.id)).last_error


async def test_repeated_placeholders_cannot_multiply_the_rendered_size(
    make_rt: Any, db: Database
) -> None:
    rt = await make_rt(workflow_max_rendered_bytes=4096)
    await add_template(
        db,
        "amplify",
        [{"kind": "agent.event", "event_type": "boom", "payload": {"t": "{{input.x}}" * 100}}],
    )
    job = await rt.queue.enqueue(
        "workflow.execute", {"template_name": "amplify", "input": {"x": "y" * 100}}
    )
    assert await run(rt, job.id) == "failed"
    row = await rt.queue.get(job.id)
    assert row.attempts == 1
    assert "exceeds 4096 bytes (WORKFLOW_MAX_RENDERED_BYTES)" in row.last_error
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM agent_events") == 0
    # within the budget the same template renders as before
    small = await rt.queue.enqueue(
        "workflow.execute", {"template_name": "amplify", "input": {"x": "y"}}
    )
    assert await run(rt, small.id) == "succeeded"
    async with db.connection() as conn:
        payload = await conn.fetchval("SELECT payload FROM agent_events")
    assert json.loads(payload) == {"t": "y" * 100}
