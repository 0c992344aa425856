"""Agents: the SQL for create, list, get, partial update and heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from cesar_api.repositories import as_dict, as_dicts, dump_json

__all__ = ["create", "exists_many", "get", "heartbeat", "list_agents", "update"]

_COLUMNS = (
    "id, name, agent_type, status, description, capabilities, config, metadata, "
    "last_heartbeat_at, created_at, updated_at"
)
_JSON = ("config", "metadata")

INSERT_AGENT = f"""
INSERT INTO agents (name, agent_type, status, description, capabilities, config, metadata)
VALUES ($1, $2, $3, $4, $5, $6::JSONB, $7::JSONB)
RETURNING {_COLUMNS}
"""

SELECT_AGENT = f"SELECT {_COLUMNS} FROM agents WHERE id = $1"

LIST_AGENTS = f"""
SELECT {_COLUMNS} FROM agents
WHERE ($1::TEXT IS NULL OR agent_type = $1)
  AND ($2::TEXT IS NULL OR status = $2)
  AND ($3::TEXT IS NULL OR capabilities @> ARRAY[$3::TEXT])
  AND ($4::TIMESTAMPTZ IS NULL OR (created_at, id) < ($4::TIMESTAMPTZ, $5::UUID))
ORDER BY created_at DESC, id DESC
LIMIT $6
"""

UPDATE_AGENT = f"""
UPDATE agents SET
    name = CASE WHEN $2 THEN $3 ELSE name END,
    agent_type = CASE WHEN $4 THEN $5 ELSE agent_type END,
    status = CASE WHEN $6 THEN $7 ELSE status END,
    description = CASE WHEN $8 THEN $9 ELSE description END,
    capabilities = CASE WHEN $10 THEN $11::TEXT[] ELSE capabilities END,
    config = CASE WHEN $12 THEN $13::JSONB ELSE config END,
    metadata = CASE WHEN $14 THEN $15::JSONB ELSE metadata END,
    updated_at = now()
WHERE id = $1
RETURNING {_COLUMNS}
"""

HEARTBEAT = f"""
UPDATE agents SET
    last_heartbeat_at = now(),
    status = COALESCE($2, status),
    updated_at = now()
WHERE id = $1
RETURNING {_COLUMNS}
"""

EXISTING_IDS = "SELECT id FROM agents WHERE id = ANY($1::UUID[])"


async def create(conn: asyncpg.Connection, values: dict[str, Any]) -> dict[str, Any]:
    row = await conn.fetchrow(
        INSERT_AGENT,
        values["name"],
        values["agent_type"],
        values["status"],
        values.get("description"),
        values.get("capabilities", []),
        dump_json(values.get("config", {})),
        dump_json(values.get("metadata", {})),
    )
    return as_dict(row, _JSON)


async def get(conn: asyncpg.Connection, agent_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_AGENT, agent_id)
    return as_dict(row, _JSON) if row else None


async def list_agents(
    conn: asyncpg.Connection,
    *,
    agent_type: str | None,
    status: str | None,
    capability: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        LIST_AGENTS,
        agent_type,
        status,
        capability,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return as_dicts(rows, _JSON)


async def update(
    conn: asyncpg.Connection, agent_id: UUID, changes: dict[str, Any]
) -> dict[str, Any] | None:
    def pair(name: str, encode: bool = False) -> tuple[bool, Any]:
        if name not in changes:
            return False, None
        value = changes[name]
        return True, dump_json(value) if encode else value

    args: list[Any] = [agent_id]
    for name, encode in (
        ("name", False),
        ("agent_type", False),
        ("status", False),
        ("description", False),
        ("capabilities", False),
        ("config", True),
        ("metadata", True),
    ):
        args.extend(pair(name, encode))
    row = await conn.fetchrow(UPDATE_AGENT, *args)
    return as_dict(row, _JSON) if row else None


async def heartbeat(
    conn: asyncpg.Connection, agent_id: UUID, status: str | None
) -> dict[str, Any] | None:
    row = await conn.fetchrow(HEARTBEAT, agent_id, status)
    return as_dict(row, _JSON) if row else None


async def exists_many(conn: asyncpg.Connection, ids: list[UUID]) -> set[UUID]:
    rows = await conn.fetch(EXISTING_IDS, ids)
    return {r["id"] for r in rows}
