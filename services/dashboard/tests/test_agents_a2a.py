"""The Agents page's A2A section: an agent's conversations and tasks (with their jobs' state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

Seed = Callable[..., Any]
OpenPage = Callable[[str], AppTest]

SCOUT = "11111111-0000-4000-8000-000000000001"
CLERK = "22222222-0000-4000-8000-000000000002"
CONTEXT = "aaaaaaaa-0000-4000-8000-00000000000a"
DONE = "dddddddd-0000-4000-8000-00000000000d"
BUSY = "bbbbbbbb-0000-4000-8000-00000000000b"

A2A = f"""
INSERT INTO agents (id, name, agent_type, status, last_heartbeat_at)
VALUES ('{SCOUT}', 'scout', 'research', 'active', now()),
       ('{CLERK}', 'clerk', 'ops', 'idle', now());
INSERT INTO job_queue (id, job_type, status, attempts, finished_at)
VALUES ('{DONE}', 'a2a.task', 'succeeded', 1, now()),
       ('{BUSY}', 'a2a.task', 'running', 1, NULL);
INSERT INTO a2a_conversations (id, topic, participant_ids, status, message_count, last_message_at)
VALUES ('{CONTEXT}', 'find the report', ARRAY['{SCOUT}'::UUID], 'active', 3, now());
INSERT INTO a2a_messages (conversation_id, recipient_agent_id, sender_agent_id, message_type,
                          content, correlation_id, created_at)
VALUES ('{CONTEXT}', '{SCOUT}', NULL, 'request',
        '{{"message": {{"parts": [{{"text": "find the report"}}]}}}}', '{DONE}',
        now() - INTERVAL '2 minutes'),
       ('{CONTEXT}', NULL, '{SCOUT}', 'response',
        '{{"message": {{"parts": [{{"text": "found it"}}]}}}}', '{DONE}',
        now() - INTERVAL '1 minute'),
       ('{CONTEXT}', '{SCOUT}', NULL, 'request',
        '{{"message": {{"parts": [{{"text": "and the next one"}}]}}}}', '{BUSY}', now())
"""


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: str(m.value) for m in at.metric}


@pytest.mark.usefixtures("dashboard_env")
async def test_agents_page_shows_conversations_and_tasks_per_agent(
    open_page: OpenPage, seed: Seed
) -> None:
    await seed(A2A)
    at = open_page("agents")
    at.selectbox(key="a2a_agent").set_value("scout").run()
    assert not at.exception
    m = metrics(at)
    assert (m["Conversations"], m["Tasks"], m["Working or submitted"], m["Failed"]) == (
        "1",
        "2",
        "1",
        "0",
    )
    conversations = next(d.value for d in at.dataframe if "message_count" in d.value.columns)
    assert list(conversations["topic"]) == ["find the report"]
    assert list(conversations["message_count"]) == [3]
    tasks = next(d.value for d in at.dataframe if "task_id" in d.value.columns)
    assert list(tasks["task_id"]) == [BUSY, DONE]  # newest first
    assert list(tasks["state"]) == ["working", "completed"]
    assert list(tasks["text"]) == ["and the next one", "find the report"]

    at.selectbox(key="a2a_agent").set_value("clerk").run()
    assert any("No A2A conversations with clerk yet." in i.value for i in at.info)
