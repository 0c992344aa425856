"""The knowledge graph's SQL (``kg_entities``, ``kg_relations``, ``kg_observations``), shared
by the API's ``/api/v1/graph`` routes and the worker's ``graph.extract`` step.

Writes are upserts on the natural keys: an entity is ``(entity_type, name)``, a relation
``(source_id, target_id, relation_type)``; an observation is not stored twice with the same
text on the same entity. So a batch or a step can run again without duplicating anything.

Traversals are recursive CTEs that both PostgreSQL and CockroachDB run: each step joins the
frontier to ``kg_relations`` on ``source_id`` (outgoing) or ``target_id`` (incoming), which the
``kg_relations_source_type_idx`` / ``kg_relations_target_type_idx`` indexes serve; a path
array keeps a walk from revisiting an entity, and the depth is bounded by the caller.
Functions take a connection from the caller and never commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

__all__ = [
    "ENTITY_COLUMNS",
    "Direction",
    "add_observation",
    "entities_by_ids",
    "find_entities",
    "find_entity_id",
    "get_entity",
    "neighbours",
    "observations_of",
    "relations_among",
    "relations_by_ids",
    "shortest_path",
    "upsert_entity",
    "upsert_relation",
]

Direction = Literal["out", "in", "both"]

ENTITY_COLUMNS = (
    "id, entity_type, name, description, aliases, properties, confidence, source, "
    "created_by_agent_id, created_at, updated_at"
)
RELATION_COLUMNS = (
    "id, source_id, target_id, relation_type, weight, confidence, properties, valid_from, "
    "valid_to, created_by_agent_id, created_at, updated_at"
)
OBSERVATION_COLUMNS = (
    "id, entity_id, relation_id, agent_id, content, source, confidence, observed_at, created_at"
)

# A later write fills in what it knows: text fields only when given, properties merged
UPSERT_ENTITY = f"""
INSERT INTO kg_entities (entity_type, name, description, aliases, properties, confidence, source,
                         created_by_agent_id)
VALUES ($1, $2, $3, $4::TEXT[], CAST($5 AS JSONB), $6, $7, $8)
ON CONFLICT (entity_type, name) DO UPDATE SET
    description = COALESCE(EXCLUDED.description, kg_entities.description),
    aliases = CASE WHEN COALESCE(array_length(EXCLUDED.aliases, 1), 0) > 0 THEN EXCLUDED.aliases
                   ELSE kg_entities.aliases END,
    properties = kg_entities.properties || EXCLUDED.properties,
    confidence = EXCLUDED.confidence,
    source = COALESCE(EXCLUDED.source, kg_entities.source),
    updated_at = now()
RETURNING {ENTITY_COLUMNS}
"""

UPSERT_RELATION = f"""
INSERT INTO kg_relations (source_id, target_id, relation_type, weight, confidence, properties,
                          valid_from, valid_to, created_by_agent_id)
VALUES ($1, $2, $3, $4, $5, CAST($6 AS JSONB), $7, $8, $9)
ON CONFLICT (source_id, target_id, relation_type) DO UPDATE SET
    weight = EXCLUDED.weight,
    confidence = EXCLUDED.confidence,
    properties = kg_relations.properties || EXCLUDED.properties,
    valid_from = COALESCE(EXCLUDED.valid_from, kg_relations.valid_from),
    valid_to = COALESCE(EXCLUDED.valid_to, kg_relations.valid_to),
    updated_at = now()
RETURNING {RELATION_COLUMNS}
"""

INSERT_OBSERVATION = f"""
INSERT INTO kg_observations (entity_id, relation_id, agent_id, content, source, confidence,
                             observed_at)
SELECT $1, $2, $3, $4, $5, $6, COALESCE($7, now())
WHERE NOT EXISTS (SELECT 1 FROM kg_observations WHERE entity_id = $1 AND content = $4)
RETURNING {OBSERVATION_COLUMNS}
"""

SELECT_OBSERVATION = f"""
SELECT {OBSERVATION_COLUMNS} FROM kg_observations WHERE entity_id = $1 AND content = $2 LIMIT 1
"""

ENTITY_ID = "SELECT id FROM kg_entities WHERE entity_type = $1 AND name = $2"

SELECT_ENTITY = f"SELECT {ENTITY_COLUMNS} FROM kg_entities WHERE id = $1"

# by name (or alias), optionally of one type: kg_entities_type_name_key, kg_entities_name_idx,
# kg_entities_aliases_gin_idx
FIND_BY_NAME = f"""
SELECT {ENTITY_COLUMNS} FROM kg_entities
WHERE name = $1 OR aliases @> ARRAY[$1::TEXT]
ORDER BY entity_type, name
LIMIT $2
"""
FIND_BY_TYPE_AND_NAME = f"""
SELECT {ENTITY_COLUMNS} FROM kg_entities
WHERE entity_type = $1 AND (name = $2 OR aliases @> ARRAY[$2::TEXT])
ORDER BY name
LIMIT $3
"""
FIND_BY_TYPE = f"""
SELECT {ENTITY_COLUMNS} FROM kg_entities
WHERE entity_type = $1
ORDER BY name
LIMIT $2
"""

ENTITIES_BY_IDS = f"SELECT {ENTITY_COLUMNS} FROM kg_entities WHERE id = ANY($1::UUID[])"
RELATIONS_BY_IDS = f"SELECT {RELATION_COLUMNS} FROM kg_relations WHERE id = ANY($1::UUID[])"
RELATIONS_AMONG = f"""
SELECT {RELATION_COLUMNS} FROM kg_relations
WHERE source_id = ANY($1::UUID[]) AND target_id = ANY($1::UUID[])
  AND ($2::TEXT IS NULL OR relation_type = $2)
ORDER BY relation_type, source_id, target_id
LIMIT $3
"""

OBSERVATIONS_OF = f"""
SELECT {OBSERVATION_COLUMNS} FROM kg_observations
WHERE entity_id = $1
ORDER BY observed_at DESC
LIMIT $2
"""

# One hop from the frontier entity w.entity_id: a relation leaving it (direction out or both)
# or entering it (in or both); the next entity is the relation's other end. The OR of the two
# equalities is answered by both indexes (a BitmapOr on PostgreSQL), once per frontier row.
_HOP = """
    FROM walk AS w
    JOIN kg_relations AS r
      ON (r.source_id = w.entity_id AND $3::TEXT <> 'in')
      OR (r.target_id = w.entity_id AND $3::TEXT <> 'out')
    WHERE w.depth < $2 AND ($4::TEXT IS NULL OR r.relation_type = $4)
"""
_NEXT = "CASE WHEN r.source_id = w.entity_id THEN r.target_id ELSE r.source_id END"

# $1 start, $2 max depth, $3 direction, $4 relation type or NULL, $5 limit
NEIGHBOURS = f"""
WITH RECURSIVE walk (entity_id, depth, path) AS (
    SELECT $1::UUID, CAST(0 AS INT8), ARRAY[$1::UUID]
    UNION ALL
    SELECT {_NEXT}, w.depth + 1, array_append(w.path, {_NEXT})
    {_HOP}
      AND NOT ({_NEXT} = ANY (w.path))
),
nearest AS (
    SELECT entity_id, min(depth) AS depth FROM walk WHERE depth > 0 GROUP BY entity_id
)
SELECT {", ".join("k." + c.strip() for c in ENTITY_COLUMNS.split(","))}, n.depth
FROM nearest AS n
JOIN kg_entities AS k ON k.id = n.entity_id
ORDER BY n.depth, k.entity_type, k.name
LIMIT $5
"""

# $1 from, $2 max depth, $3 direction, $4 relation type or NULL, $5 to; a walk stops at $5
SHORTEST_PATH = f"""
WITH RECURSIVE walk (entity_id, depth, path, relation_ids) AS (
    SELECT $1::UUID, CAST(0 AS INT8), ARRAY[$1::UUID], CAST(ARRAY[] AS UUID[])
    UNION ALL
    SELECT {_NEXT}, w.depth + 1, array_append(w.path, {_NEXT}), array_append(w.relation_ids, r.id)
    {_HOP}
      AND w.entity_id <> $5::UUID AND NOT ({_NEXT} = ANY (w.path))
)
SELECT path, relation_ids, depth FROM walk
WHERE entity_id = $5::UUID
ORDER BY depth
LIMIT 1
"""


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _row(record: asyncpg.Record | None) -> dict[str, Any]:
    assert record is not None  # RETURNING of an upsert, or a row just found
    row = dict(record)
    if "properties" in row:
        row["properties"] = _loads(row["properties"]) or {}
    return row


async def upsert_entity(
    conn: asyncpg.Connection,
    *,
    entity_type: str,
    name: str,
    description: str | None = None,
    aliases: Sequence[str] = (),
    properties: dict[str, Any] | None = None,
    confidence: float = 1.0,
    source: str | None = None,
    agent_id: UUID | None = None,
) -> dict[str, Any]:
    record = await conn.fetchrow(
        UPSERT_ENTITY,
        entity_type,
        name,
        description,
        list(aliases),
        json.dumps(properties or {}),
        confidence,
        source,
        agent_id,
    )
    return _row(record)


async def upsert_relation(
    conn: asyncpg.Connection,
    *,
    source_id: UUID,
    target_id: UUID,
    relation_type: str,
    weight: float = 1.0,
    confidence: float = 1.0,
    properties: dict[str, Any] | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    agent_id: UUID | None = None,
) -> dict[str, Any]:
    record = await conn.fetchrow(
        UPSERT_RELATION,
        source_id,
        target_id,
        relation_type,
        weight,
        confidence,
        json.dumps(properties or {}),
        valid_from,
        valid_to,
        agent_id,
    )
    return _row(record)


async def add_observation(
    conn: asyncpg.Connection,
    *,
    entity_id: UUID,
    content: str,
    relation_id: UUID | None = None,
    agent_id: UUID | None = None,
    source: str | None = None,
    confidence: float = 1.0,
    observed_at: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """The observation, and whether it is new (the same text on the entity is kept once)."""
    record = await conn.fetchrow(
        INSERT_OBSERVATION,
        entity_id,
        relation_id,
        agent_id,
        content,
        source,
        confidence,
        observed_at,
    )
    if record is not None:
        return _row(record), True
    existing = await conn.fetchrow(SELECT_OBSERVATION, entity_id, content)
    return _row(existing), False


async def find_entity_id(conn: asyncpg.Connection, entity_type: str, name: str) -> UUID | None:
    value = await conn.fetchval(ENTITY_ID, entity_type, name)
    return value if isinstance(value, UUID) else None


async def get_entity(conn: asyncpg.Connection, entity_id: UUID) -> dict[str, Any] | None:
    record = await conn.fetchrow(SELECT_ENTITY, entity_id)
    return _row(record) if record else None


async def find_entities(
    conn: asyncpg.Connection, *, name: str | None, entity_type: str | None, limit: int
) -> list[dict[str, Any]]:
    """By name or alias, by type, or both (at least one is given)."""
    if name is not None and entity_type is not None:
        records = await conn.fetch(FIND_BY_TYPE_AND_NAME, entity_type, name, limit)
    elif name is not None:
        records = await conn.fetch(FIND_BY_NAME, name, limit)
    else:
        records = await conn.fetch(FIND_BY_TYPE, entity_type, limit)
    return [_row(r) for r in records]


async def entities_by_ids(conn: asyncpg.Connection, ids: Sequence[UUID]) -> list[dict[str, Any]]:
    return [_row(r) for r in await conn.fetch(ENTITIES_BY_IDS, list(ids))]


async def relations_by_ids(conn: asyncpg.Connection, ids: Sequence[UUID]) -> list[dict[str, Any]]:
    return [_row(r) for r in await conn.fetch(RELATIONS_BY_IDS, list(ids))]


async def relations_among(
    conn: asyncpg.Connection, ids: Sequence[UUID], relation_type: str | None, limit: int
) -> list[dict[str, Any]]:
    records = await conn.fetch(RELATIONS_AMONG, list(ids), relation_type, limit)
    return [_row(r) for r in records]


async def observations_of(
    conn: asyncpg.Connection, entity_id: UUID, limit: int
) -> list[dict[str, Any]]:
    return [_row(r) for r in await conn.fetch(OBSERVATIONS_OF, entity_id, limit)]


async def neighbours(
    conn: asyncpg.Connection,
    entity_id: UUID,
    *,
    depth: int,
    direction: Direction,
    relation_type: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Entities within ``depth`` hops of ``entity_id``, each with its least distance."""
    records = await conn.fetch(NEIGHBOURS, entity_id, depth, direction, relation_type, limit)
    return [_row(r) for r in records]


async def shortest_path(
    conn: asyncpg.Connection,
    source_id: UUID,
    target_id: UUID,
    *,
    max_depth: int,
    direction: Direction,
    relation_type: str | None,
) -> tuple[list[UUID], list[UUID]] | None:
    """Entity ids and relation ids of a shortest path, or None within ``max_depth`` hops."""
    record = await conn.fetchrow(
        SHORTEST_PATH, source_id, max_depth, direction, relation_type, target_id
    )
    if record is None:
        return None
    return list(record["path"]), list(record["relation_ids"])
