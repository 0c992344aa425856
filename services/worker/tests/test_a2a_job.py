"""``a2a.task`` run directly: the echo answer, and a second delivery adds nothing."""

from __future__ import annotations

import uuid
from typing import Any

from cesar_core.db import Database
from cesar_core.jobs.builtin import A2aTaskPayload
from cesar_core.jobs.registry import JobContext
from cesar_worker.jobs import a2a
from cesar_worker.runtime import WorkerRuntime


async def test_echo_reply_is_stored_once(runtime: WorkerRuntime, db: Database) -> None:
    async with db.connection() as conn:
        agent_id = await conn.fetchval(
            "INSERT INTO agents (name, agent_type) VALUES ('echoer', 'helper') RETURNING id"
        )
    context_id, message_id = uuid.uuid4(), uuid.uuid4()
    payload: dict[str, Any] = {
        "agent_id": str(agent_id),
        "context_id": str(context_id),
        "message_id": str(message_id),
        "text": "ping",
        "message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "ping"}]},
    }
    job = await runtime.queue.enqueue("a2a.task", payload)
    ctx = JobContext(
        job=job,
        db=db,
        redis=runtime.redis,
        queue=runtime.queue,
        settings=runtime.config,
        worker_id="test",
        clock=runtime.clock,
        resources=runtime.resources,
    )
    parsed = A2aTaskPayload.model_validate(payload)
    first = await a2a.run(ctx, parsed)
    second = await a2a.run(ctx, parsed)  # at-least-once: delivered again
    assert first["artifact"] == second["artifact"]
    assert first["artifact"]["parts"][0]["text"] == "echoer received: ping"
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT message_type, correlation_id, in_reply_to_id FROM a2a_messages "
            "ORDER BY created_at"
        )
        count = await conn.fetchval(
            "SELECT message_count FROM a2a_conversations WHERE id = $1", context_id
        )
    assert [(r["message_type"], r["correlation_id"]) for r in rows] == [
        ("request", str(job.id)),
        ("response", str(job.id)),
    ]
    assert rows[1]["in_reply_to_id"] == message_id
    assert count == 2
