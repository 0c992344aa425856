"""What the Agents page reads about one agent's brain: its memories, the replay sessions that
consolidated them, and its reputation with the events that moved it (SQL and cached reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import streamlit as st

from cesar_dashboard.database import read

__all__ = ["AgentBrain", "agent_brain"]

Row = dict[str, Any]
CACHE_TTL_SECONDS = 5
MEMORY_LIMIT = 200
EVENT_LIMIT = 50
SESSION_LIMIT = 20

MEMORIES_SQL = """
SELECT id, memory_type, content, CAST(tags AS TEXT) AS tags, importance, access_count,
       last_accessed_at, is_consolidated, is_archived, created_at
FROM agent_memories
WHERE agent_id = $1
ORDER BY is_archived, importance DESC, created_at DESC, id
LIMIT $2
"""
MEMORY_COUNTS_SQL = """
SELECT COUNT(*) AS total,
       COUNT(*) FILTER (WHERE is_archived = false) AS live,
       COUNT(*) FILTER (WHERE is_consolidated = true AND is_archived = false) AS consolidated
FROM agent_memories WHERE agent_id = $1
"""
ASSOCIATIONS_SQL = """
SELECT COUNT(*) FROM memory_associations AS m
JOIN agent_memories AS a ON a.id = m.source_memory_id
WHERE a.agent_id = $1
"""
REPLAY_SESSIONS_SQL = """
SELECT created_at, trigger_reason, status, episodes_replayed, memories_strengthened,
       CAST(metrics AS TEXT) AS metrics
FROM replay_sessions
WHERE agent_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2
"""
REPUTATION_SQL = """
SELECT score, reliability, responsiveness, quality, successes, failures, avg_latency_ms,
       last_decayed_at
FROM agent_reputation WHERE agent_id = $1
"""
REPUTATION_EVENTS_SQL = """
SELECT created_at, event_type, delta, score_before, score_after, reason
FROM agent_reputation_events
WHERE agent_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2
"""


@dataclass(frozen=True)
class AgentBrain:
    memories: list[Row]
    memory_counts: Row
    associations: int
    replay_sessions: list[Row]
    reputation: Row | None
    reputation_events: list[Row]


def _rows(records: list[asyncpg.Record]) -> list[Row]:
    return [dict(r.items()) for r in records]


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def agent_brain(url: str, timeout: float, agent_id: str) -> AgentBrain:
    key = UUID(agent_id)

    async def batch(conn: asyncpg.Connection) -> AgentBrain:
        counts = await conn.fetchrow(MEMORY_COUNTS_SQL, key)
        reputation = await conn.fetchrow(REPUTATION_SQL, key)
        return AgentBrain(
            memories=_rows(await conn.fetch(MEMORIES_SQL, key, MEMORY_LIMIT)),
            memory_counts=dict(counts.items()) if counts else {},
            associations=int(await conn.fetchval(ASSOCIATIONS_SQL, key) or 0),
            replay_sessions=_rows(await conn.fetch(REPLAY_SESSIONS_SQL, key, SESSION_LIMIT)),
            reputation=dict(reputation.items()) if reputation else None,
            reputation_events=_rows(await conn.fetch(REPUTATION_EVENTS_SQL, key, EVENT_LIMIT)),
        )

    return read(url, timeout, batch)
