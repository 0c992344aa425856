"""A2A conversations and messages: the SQL the API and the worker share.

An A2A task is a ``job_queue`` row (job type ``a2a.task``; the task id is the job id). Its
messages live in ``a2a_messages`` with ``correlation_id`` = the task id, inside the
``a2a_conversations`` row whose id is the A2A context id. The API records the request after
enqueueing the job and the job records it again before it runs (both ``ON CONFLICT DO
NOTHING``), so neither a crash of the API between the two writes nor a second delivery of the
job leaves a task without its request or with two replies.

Message ``content`` holds the A2A ``Message`` as protocol JSON under ``"message"``.
Functions take a connection from the caller and never commit.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

__all__ = [
    "A2A_TASK_JOB",
    "TaskMessage",
    "conversation_exists",
    "find_message",
    "record_message",
    "reply_id",
    "task_messages",
]

A2A_TASK_JOB = "a2a.task"
_REPLY_NS = uuid.UUID("2f4f6f0a-7d4e-4c1b-9a57-0c3f2a1b5e77")

UPSERT_CONVERSATION = """
INSERT INTO a2a_conversations (id, topic, participant_ids, status, metadata)
VALUES ($1, $2, ARRAY[$3::UUID], 'active', CAST('{"protocol": "a2a"}' AS JSONB))
ON CONFLICT (id) DO UPDATE SET
    participant_ids = CASE
        WHEN $3::UUID = ANY (a2a_conversations.participant_ids)
        THEN a2a_conversations.participant_ids
        ELSE array_append(a2a_conversations.participant_ids, $3::UUID)
    END,
    updated_at = now()
"""

INSERT_MESSAGE = """
INSERT INTO a2a_messages (id, conversation_id, sender_agent_id, recipient_agent_id,
                          in_reply_to_id, message_type, content, correlation_id)
VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS JSONB), $8)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

COUNT_MESSAGE = """
UPDATE a2a_conversations
SET message_count = message_count + 1, last_message_at = now(), updated_at = now()
WHERE id = $1
"""

SELECT_MESSAGE = """
SELECT id, conversation_id, correlation_id, message_type, content, created_at
FROM a2a_messages WHERE id = $1
"""

# served by a2a_messages_correlation_idx (migration 019)
SELECT_TASK_MESSAGES = """
SELECT id, sender_agent_id, recipient_agent_id, message_type, content, created_at
FROM a2a_messages
WHERE correlation_id = $1
ORDER BY created_at, id
"""

CONVERSATION_EXISTS = "SELECT id FROM a2a_conversations WHERE id = $1"


@dataclass(frozen=True)
class TaskMessage:
    id: UUID
    message_type: str
    content: dict[str, Any]


def reply_id(task_id: UUID) -> UUID:
    """The id of a task's reply message: fixed per task, so a re-run cannot add a second."""
    return uuid.uuid5(_REPLY_NS, str(task_id))


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def record_message(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    conversation_id: UUID,
    agent_id: UUID,
    task_id: UUID,
    message_type: str,
    content: dict[str, Any],
    from_agent: bool,
    in_reply_to: UUID | None = None,
    topic: str | None = None,
) -> bool:
    """Store one message of a task (and its conversation); False when it was already there.

    ``from_agent``: the agent is the sender (a reply) rather than the recipient (a request
    from an outside client, whose sender is not a registered agent).
    """
    await conn.execute(UPSERT_CONVERSATION, conversation_id, topic, agent_id)
    inserted = await conn.fetchval(
        INSERT_MESSAGE,
        message_id,
        conversation_id,
        agent_id if from_agent else None,
        None if from_agent else agent_id,
        in_reply_to,
        message_type,
        json.dumps(content, default=str),
        str(task_id),
    )
    if inserted is None:
        return False
    await conn.execute(COUNT_MESSAGE, conversation_id)
    return True


async def find_message(conn: asyncpg.Connection, message_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_MESSAGE, message_id)
    if row is None:
        return None
    data = dict(row)
    data["content"] = _loads(data["content"])
    return data


async def task_messages(conn: asyncpg.Connection, task_id: UUID) -> list[TaskMessage]:
    rows = await conn.fetch(SELECT_TASK_MESSAGES, str(task_id))
    return [TaskMessage(r["id"], r["message_type"], _loads(r["content"]) or {}) for r in rows]


async def conversation_exists(conn: asyncpg.Connection, conversation_id: UUID) -> bool:
    return await conn.fetchval(CONVERSATION_EXISTS, conversation_id) is not None
