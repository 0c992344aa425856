"""The Agents page's per-agent section: memories, replay sessions and reputation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

Seed = Callable[..., Any]
OpenPage = Callable[[str], AppTest]

BRAIN = """
INSERT INTO agents (id, name, agent_type, status, last_heartbeat_at)
VALUES ('11111111-0000-4000-8000-000000000001', 'scout', 'research', 'active', now()),
       ('22222222-0000-4000-8000-000000000002', 'clerk', 'ops', 'idle', NULL);
INSERT INTO agent_memories (id, agent_id, content, importance, is_consolidated, is_archived,
                            tags)
VALUES ('a0000000-0000-4000-8000-000000000001', '11111111-0000-4000-8000-000000000001',
        'the disk is full', 0.9, true, false, ARRAY['ops']),
       ('a0000000-0000-4000-8000-000000000002', '11111111-0000-4000-8000-000000000001',
        'the disk is full!', 0.4, true, true, ARRAY[]::TEXT[]),
       ('a0000000-0000-4000-8000-000000000003', '11111111-0000-4000-8000-000000000001',
        'likes tea', 0.2, false, false, ARRAY[]::TEXT[]);
INSERT INTO memory_associations (source_memory_id, target_memory_id, association_type, strength)
VALUES ('a0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000002',
        'generalizes', 1.0);
INSERT INTO replay_sessions (agent_id, status, trigger_reason, episodes_planned,
                             episodes_replayed, memories_strengthened, metrics)
VALUES ('11111111-0000-4000-8000-000000000001', 'succeeded', 'scheduled', 2, 2, 0,
        '{"memories_merged": 2}');
INSERT INTO agent_reputation (agent_id, score, reliability, responsiveness, successes, failures)
VALUES ('11111111-0000-4000-8000-000000000001', 0.568051, 0.596176, 0.541381, 2, 1);
INSERT INTO agent_reputation_events (agent_id, event_type, delta, score_before, score_after,
                                     reason)
VALUES ('11111111-0000-4000-8000-000000000001', 'task_success', 0.093515, 0.5, 0.593515,
        'task succeeded')
"""


def markdown(at: AppTest) -> list[str]:
    return [str(m.value) for m in at.markdown]


@pytest.mark.usefixtures("dashboard_env")
async def test_agent_memories_and_reputation(open_page: OpenPage, seed: Seed) -> None:
    await seed(BRAIN)
    at = open_page("agents")
    select = at.selectbox(key="agents.brain.agent")
    assert select.options == ["scout (research)", "clerk (ops)"]
    assert select.value == "scout (research)"
    text = markdown(at)
    assert (
        "**Memories:** 2 · **consolidated:** 1 · **archived (merged):** 1 · **associations:** 1"
        in text
    )
    assert any(t.startswith("**Reputation:** 0.568 · **reliability:** 0.596") for t in text)
    frames = [f.value for f in at.dataframe]
    memories = next(f for f in frames if "content" in f.columns)
    assert list(memories["content"]) == ["the disk is full", "likes tea", "the disk is full!"]
    sessions = next(f for f in frames if "episodes_replayed" in f.columns)
    assert list(sessions["trigger_reason"]) == ["scheduled"]
    events = next(f for f in frames if "score_after" in f.columns)
    assert list(events["event_type"]) == ["task_success"]

    select.set_value("clerk (ops)").run()
    assert not at.exception
    infos = [str(i.value) for i in at.info]
    assert "No memories stored for this agent yet." in infos
    assert any(i.startswith("No reputation computed for this agent yet") for i in infos)
