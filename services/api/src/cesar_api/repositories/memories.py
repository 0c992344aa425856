"""Agent memories: store, list, recall candidates and their access marks, associations, and the
replay sessions that consolidated them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from cesar_api.repositories import as_dict, as_dicts, dump_json

__all__ = [
    "RECALL_CANDIDATES_MAX",
    "RECALL_EVENT",
    "associations_of",
    "create",
    "get",
    "link",
    "list_memories",
    "mark_recalled",
    "recall_candidates",
    "replay_sessions",
]

RECALL_EVENT = "memory.recalled"
# recall scores at most this many filtered candidates (the most important first)
RECALL_CANDIDATES_MAX = 2000

_COLUMNS = (
    "id, agent_id, memory_type, content, summary, tags, metadata, source_event_id, importance, "
    "strength, decay_rate, access_count, last_accessed_at, is_consolidated, is_archived, "
    "created_at, updated_at"
)
_JSON = ("metadata",)

INSERT_MEMORY = f"""
INSERT INTO agent_memories (agent_id, memory_type, content, summary, tags, metadata,
                            source_event_id, importance, decay_rate)
VALUES ($1, $2, $3, $4, $5, CAST($6 AS JSONB), $7, $8, $9)
RETURNING {_COLUMNS}
"""

SELECT_MEMORY = f"SELECT {_COLUMNS} FROM agent_memories WHERE agent_id = $1 AND id = $2"

LIST_MEMORIES = f"""
SELECT {_COLUMNS} FROM agent_memories
WHERE agent_id = $1
  AND ($2::TEXT IS NULL OR memory_type = $2)
  AND tags @> $3::TEXT[]
  AND ($4::BOOL OR is_archived = false)
  AND ($5::TIMESTAMPTZ IS NULL OR (created_at, id) < ($5::TIMESTAMPTZ, $6::UUID))
ORDER BY created_at DESC, id DESC
LIMIT $7
"""

# $6: ILIKE patterns of the query's tokens (NULL without a query); $7: the tokens themselves,
# matched against tags. The text score itself is computed by cesar_core.memory.
RECALL_CANDIDATES = f"""
SELECT {_COLUMNS}, now() AS db_now FROM agent_memories
WHERE agent_id = $1
  AND ($2::TEXT IS NULL OR memory_type = $2)
  AND tags @> $3::TEXT[]
  AND importance >= $4
  AND ($5::BOOL OR is_archived = false)
  AND ($6::TEXT[] IS NULL OR tags && $7::TEXT[] OR EXISTS (
        SELECT 1 FROM unnest($6::TEXT[]) AS p (pattern)
        WHERE content ILIKE p.pattern OR summary ILIKE p.pattern))
ORDER BY importance DESC, created_at DESC, id
LIMIT $8
"""

MARK_RECALLED = """
UPDATE agent_memories
SET access_count = access_count + 1, last_accessed_at = now()
WHERE agent_id = $1 AND id = ANY($2::UUID[])
"""

RECORD_RECALL = """
INSERT INTO agent_events (agent_id, event_type, payload, severity, source)
VALUES ($1, 'memory.recalled', CAST($2 AS JSONB), 'debug', 'api')
"""

_ASSOCIATION_COLUMNS = (
    "source_memory_id, target_memory_id, association_type, strength, co_activations, "
    "created_at, updated_at"
)

ASSOCIATIONS_OF = f"""
SELECT {_ASSOCIATION_COLUMNS} FROM memory_associations
WHERE source_memory_id = $1 OR target_memory_id = $1
ORDER BY strength DESC, source_memory_id, target_memory_id
LIMIT 200
"""

UPSERT_ASSOCIATION = f"""
INSERT INTO memory_associations (source_memory_id, target_memory_id, association_type, strength)
VALUES ($1, $2, $3, $4)
ON CONFLICT (source_memory_id, target_memory_id) DO UPDATE SET
    association_type = EXCLUDED.association_type, strength = EXCLUDED.strength,
    updated_at = now()
RETURNING {_ASSOCIATION_COLUMNS}
"""

REPLAY_SESSIONS = """
SELECT id, agent_id, job_id, strategy, trigger_reason, status, episodes_planned,
       episodes_replayed, memories_strengthened, mean_priority, metrics, error, started_at,
       finished_at, created_at
FROM replay_sessions
WHERE agent_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2
"""

CONSOLIDATIONS = """
SELECT id, agent_id, job_id, strategy, status, source_memory_ids, result_memory_id,
       memories_in, memories_out, memories_pruned, summary, details, created_at
FROM memory_consolidations
WHERE agent_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2
"""


async def create(
    conn: asyncpg.Connection, agent_id: UUID, values: dict[str, Any]
) -> dict[str, Any]:
    row = await conn.fetchrow(
        INSERT_MEMORY,
        agent_id,
        values["memory_type"],
        values["content"],
        values.get("summary"),
        values.get("tags", []),
        dump_json(values.get("metadata", {})),
        values.get("source_event_id"),
        values["importance"],
        values["decay_rate"],
    )
    return as_dict(row, _JSON)


async def get(conn: asyncpg.Connection, agent_id: UUID, memory_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_MEMORY, agent_id, memory_id)
    return as_dict(row, _JSON) if row else None


async def list_memories(
    conn: asyncpg.Connection,
    agent_id: UUID,
    *,
    memory_type: str | None,
    tags: list[str],
    include_archived: bool,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        LIST_MEMORIES,
        agent_id,
        memory_type,
        tags,
        include_archived,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return as_dicts(rows, _JSON)


def _like_pattern(token: str) -> str:
    escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def recall_candidates(
    conn: asyncpg.Connection,
    agent_id: UUID,
    *,
    query_tokens: list[str],
    memory_type: str | None,
    tags: list[str],
    min_importance: float,
    include_archived: bool,
) -> list[dict[str, Any]]:
    patterns = [_like_pattern(t) for t in query_tokens] if query_tokens else None
    rows = await conn.fetch(
        RECALL_CANDIDATES,
        agent_id,
        memory_type,
        tags,
        min_importance,
        include_archived,
        patterns,
        query_tokens,
        RECALL_CANDIDATES_MAX,
    )
    return as_dicts(rows, _JSON)


async def mark_recalled(
    conn: asyncpg.Connection, agent_id: UUID, memory_ids: list[UUID], details: dict[str, Any]
) -> None:
    """Count the access, and record what was recalled together (memory.consolidate reads it)."""
    await conn.execute(MARK_RECALLED, agent_id, memory_ids)
    payload = {"memory_ids": [str(i) for i in memory_ids], **details}
    await conn.execute(RECORD_RECALL, agent_id, dump_json(payload))


async def associations_of(conn: asyncpg.Connection, memory_id: UUID) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(ASSOCIATIONS_OF, memory_id))


async def link(
    conn: asyncpg.Connection,
    source_id: UUID,
    target_id: UUID,
    association_type: str,
    strength: float,
) -> dict[str, Any]:
    row = await conn.fetchrow(UPSERT_ASSOCIATION, source_id, target_id, association_type, strength)
    return as_dict(row)


async def replay_sessions(
    conn: asyncpg.Connection, agent_id: UUID, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The agent's latest replay sessions and memory consolidations."""
    sessions = as_dicts(await conn.fetch(REPLAY_SESSIONS, agent_id, limit), ("metrics",))
    consolidations = as_dicts(await conn.fetch(CONSOLIDATIONS, agent_id, limit), ("details",))
    return sessions, consolidations
