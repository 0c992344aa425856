"""A2A conversations and tasks of one agent: the SQL and the cached read for the Agents page.

An A2A task is an ``a2a.task`` job (the task id is the job id): its request is the
``a2a_messages`` row sent to the agent with ``correlation_id`` = the task id, its state the
job's. Conversations are found through ``participant_ids`` (GIN index), requests through
``a2a_messages_recipient_read_idx``, jobs by primary key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import streamlit as st

from cesar_dashboard.database import read

__all__ = ["TASK_STATES", "A2aData", "a2a_data", "conversations", "tasks"]

Row = dict[str, Any]
CACHE_TTL_SECONDS = 5

# the A2A task state a job's status stands for
TASK_STATES = {
    "pending": "submitted",
    "queued": "submitted",
    "running": "working",
    "retrying": "working",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "canceled",
}

CONVERSATIONS_SQL = """
SELECT id, topic, status, message_count, last_message_at, created_at
FROM a2a_conversations
WHERE participant_ids @> ARRAY[$1::UUID]
ORDER BY COALESCE(last_message_at, created_at) DESC, id
LIMIT $2
"""

REQUESTS_SQL = """
SELECT correlation_id, conversation_id, content -> 'message' -> 'parts' -> 0 ->> 'text' AS text,
       created_at
FROM a2a_messages
WHERE recipient_agent_id = $1 AND message_type = 'request'
ORDER BY created_at DESC, id
LIMIT $2
"""

JOBS_SQL = """
SELECT id, status, attempts, last_error, finished_at
FROM job_queue
WHERE id = ANY($1::UUID[]) AND job_type = 'a2a.task'
"""


@dataclass(frozen=True)
class A2aData:
    conversations: list[Row] = field(default_factory=list)
    tasks: list[Row] = field(default_factory=list)


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


async def conversations(conn: asyncpg.Connection, agent_id: UUID, limit: int) -> list[Row]:
    return [dict(r.items()) for r in await conn.fetch(CONVERSATIONS_SQL, agent_id, limit)]


async def tasks(conn: asyncpg.Connection, agent_id: UUID, limit: int) -> list[Row]:
    """The agent's latest tasks, newest first, each with its job's state."""
    requests = await conn.fetch(REQUESTS_SQL, agent_id, limit)
    ids = [i for i in (_uuid(r["correlation_id"]) for r in requests) if i is not None]
    jobs = {r["id"]: r for r in await conn.fetch(JOBS_SQL, ids)}
    out = []
    for request in requests:
        job = jobs.get(_uuid(request["correlation_id"]))
        status = job["status"] if job else None
        out.append(
            {
                "task_id": request["correlation_id"],
                "context_id": str(request["conversation_id"]),
                "text": request["text"],
                "state": TASK_STATES.get(status or "", "unknown"),
                "job_status": status,
                "attempts": job["attempts"] if job else None,
                "last_error": job["last_error"] if job else None,
                "created_at": request["created_at"],
                "finished_at": job["finished_at"] if job else None,
            }
        )
    return out


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def a2a_data(url: str, timeout: float, agent_id: str, limit: int) -> A2aData:
    async def batch(conn: asyncpg.Connection) -> A2aData:
        agent = UUID(agent_id)
        return A2aData(
            conversations=await conversations(conn, agent, limit),
            tasks=await tasks(conn, agent, limit),
        )

    return read(url, timeout, batch)
