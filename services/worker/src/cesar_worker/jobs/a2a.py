"""``a2a.task``: an agent answers an A2A message.

The agent's model is ``agents.config.model`` (with ``config.system`` as the system prompt,
else the agent's description); the message goes to it through the LLM proxy. An agent without
a model answers with a deterministic echo, so A2A works (and is testable) with no LLM at all.

The reply is stored in ``a2a_messages`` (a ``response`` to the request, same task) and returned
as the job's result ``{"artifact": <A2A Artifact JSON>, ...}``, which the API serves as the
task's artifact. Idempotent: the request is recorded with ``ON CONFLICT DO NOTHING`` and the
reply has an id fixed per task, so a second delivery finds the reply and returns it.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core import a2a
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import A2aTaskPayload
from cesar_core.jobs.registry import JobContext, JobType, PermanentJobError

from cesar_worker.jobs.llm import generate

__all__ = ["JOB", "echo"]

SELECT_AGENT = "SELECT id, name, agent_type, description, config FROM agents WHERE id = $1"


def echo(agent_name: str, text: str) -> str:
    """The answer of an agent without a model."""
    return f"{agent_name} received: {text}"


def _artifact(task_id: UUID, text: str) -> dict[str, Any]:
    return {
        "artifactId": str(a2a.reply_id(task_id)),
        "name": "response",
        "parts": [{"text": text, "mediaType": "text/plain"}],
    }


def _config(row: asyncpg.Record) -> dict[str, Any]:
    value = row["config"]
    config = json.loads(value) if isinstance(value, str) else value
    return config if isinstance(config, dict) else {}


async def _answer(ctx: JobContext, agent: asyncpg.Record, text: str) -> tuple[str, str | None]:
    config = _config(agent)
    model = config.get("model")
    if not isinstance(model, str) or not model.strip():
        return echo(agent["name"], text), None
    system = config.get("system") if isinstance(config.get("system"), str) else None
    data = await generate(ctx, model=model, prompt=text, system=system or agent["description"])
    return str(data.get("response", "")), model


async def run(ctx: JobContext, payload: A2aTaskPayload) -> dict[str, Any]:
    task_id = ctx.job.id
    async with ctx.db.connection() as conn:
        agent = await conn.fetchrow(SELECT_AGENT, payload.agent_id)
    if agent is None:
        raise PermanentJobError(f"agent {payload.agent_id} no longer exists")
    request = {**payload.message, "taskId": str(task_id), "contextId": str(payload.context_id)}

    async def record_request(conn: asyncpg.Connection) -> dict[str, Any] | None:
        await a2a.record_message(
            conn,
            message_id=payload.message_id,
            conversation_id=payload.context_id,
            agent_id=payload.agent_id,
            task_id=task_id,
            message_type="request",
            content={"message": request},
            from_agent=False,
            topic=payload.text[:200],
        )
        return await a2a.find_message(conn, a2a.reply_id(task_id))

    done = await ctx.db.transaction(record_request)
    if done is not None:  # answered by an earlier delivery of this job
        text = "\n".join(p.get("text", "") for p in done["content"]["message"].get("parts", []))
        return {"artifact": _artifact(task_id, text), "reply_message_id": str(done["id"])}

    text, model = await _answer(ctx, agent, payload.text)
    reply_id = a2a.reply_id(task_id)
    reply = {
        "messageId": str(reply_id),
        "contextId": str(payload.context_id),
        "taskId": str(task_id),
        "role": "ROLE_AGENT",
        "parts": [{"text": text, "mediaType": "text/plain"}],
    }
    await ctx.db.transaction(
        lambda conn: a2a.record_message(
            conn,
            message_id=reply_id,
            conversation_id=payload.context_id,
            agent_id=payload.agent_id,
            task_id=task_id,
            message_type="response",
            content={"message": reply, "model": model},
            from_agent=True,
            in_reply_to=payload.message_id,
        )
    )
    return {"artifact": _artifact(task_id, text), "reply_message_id": str(reply_id), "model": model}


JOB = JobType(builtin.A2A_TASK, run)
