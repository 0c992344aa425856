"""Routing rules and decisions, the candidate agents of a rule, and agent reputation."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from cesar_api.repositories import as_dict, as_dicts, dump_json

__all__ = [
    "active_rules",
    "assign_task",
    "candidates",
    "create_rule",
    "get_decision",
    "get_task",
    "list_decisions",
    "list_rules",
    "record_decision",
    "reputation",
    "reputation_events",
    "rule_matched",
]

_RULE_COLUMNS = (
    "id, name, description, priority, conditions, action, target_agent_id, target_agent_type, "
    "target_capability, is_active, match_count, last_matched_at, created_at, updated_at"
)
_DECISION_COLUMNS = (
    "d.id, d.rule_id, r.name AS rule_name, d.task_id, d.selected_agent_id, d.request_type, "
    "d.request, d.candidates, d.score, d.reason, d.latency_ms, d.outcome, d.created_at"
)
_DECISION_JSON = ("request", "candidates")

INSERT_RULE = f"""
INSERT INTO routing_rules (name, description, priority, conditions, action, target_agent_id,
                           target_agent_type, target_capability, is_active)
VALUES ($1, $2, $3, CAST($4 AS JSONB), $5, $6, $7, $8, $9)
RETURNING {_RULE_COLUMNS}
"""

LIST_RULES = f"""
SELECT {_RULE_COLUMNS} FROM routing_rules
WHERE ($1::BOOL IS NULL OR is_active = $1)
ORDER BY priority, name
LIMIT 1000
"""

# evaluation order: lowest priority number first, then name (deterministic)
ACTIVE_RULES = f"""
SELECT {_RULE_COLUMNS} FROM routing_rules WHERE is_active = true ORDER BY priority, name
LIMIT 1000
"""

# capability match (a filter), then reputation (default 0.5), then load (assigned or running
# tasks), then name: the ranking of routing.
CANDIDATES = """
SELECT a.id, a.name, a.agent_type, a.status,
       COALESCE(r.score, 0.5) AS reputation,
       (SELECT COUNT(*) FROM agent_tasks AS t
        WHERE t.agent_id = a.id AND t.status IN ('assigned', 'running')) AS load
FROM agents AS a
LEFT JOIN agent_reputation AS r ON r.agent_id = a.id
WHERE a.status NOT IN ('offline', 'error')
  AND ($1::UUID IS NULL OR a.id = $1)
  AND ($2::TEXT IS NULL OR a.agent_type = $2)
  AND ($3::TEXT IS NULL OR a.capabilities @> ARRAY[$3::TEXT] OR EXISTS (
        SELECT 1 FROM agent_capabilities AS c
        WHERE c.agent_id = a.id AND c.capability = $3 AND c.is_enabled = true))
  AND ($4::TEXT IS NULL OR a.capabilities @> ARRAY[$4::TEXT] OR EXISTS (
        SELECT 1 FROM agent_capabilities AS c
        WHERE c.agent_id = a.id AND c.capability = $4 AND c.is_enabled = true))
ORDER BY reputation DESC, load ASC, a.name ASC, a.id ASC
LIMIT $5
"""

RULE_MATCHED = """
UPDATE routing_rules SET match_count = match_count + 1, last_matched_at = now(), updated_at = now()
WHERE id = $1
"""

SELECT_TASK = "SELECT id, agent_id, status, task_type FROM agent_tasks WHERE id = $1"

ASSIGN_TASK = """
UPDATE agent_tasks
SET agent_id = $2, status = CASE WHEN status = 'pending' THEN 'assigned' ELSE status END,
    updated_at = now()
WHERE id = $1
"""

INSERT_DECISION = """
INSERT INTO routing_decisions (rule_id, task_id, selected_agent_id, request_type, request,
                               candidates, score, reason, latency_ms, outcome)
VALUES ($1, $2, $3, $4, CAST($5 AS JSONB), CAST($6 AS JSONB), $7, $8, $9, $10)
RETURNING id
"""

SELECT_DECISION = f"""
SELECT {_DECISION_COLUMNS}
FROM routing_decisions AS d LEFT JOIN routing_rules AS r ON r.id = d.rule_id
WHERE d.id = $1
"""

LIST_DECISIONS = f"""
SELECT {_DECISION_COLUMNS}
FROM routing_decisions AS d LEFT JOIN routing_rules AS r ON r.id = d.rule_id
WHERE d.expires_at > now()
  AND ($1::UUID IS NULL OR d.selected_agent_id = $1)
  AND ($2::UUID IS NULL OR d.task_id = $2)
  AND ($3::TEXT IS NULL OR d.outcome = $3)
  AND ($4::UUID IS NULL OR d.rule_id = $4)
  AND ($5::TIMESTAMPTZ IS NULL OR (d.created_at, d.id) < ($5::TIMESTAMPTZ, $6::UUID))
ORDER BY d.created_at DESC, d.id DESC
LIMIT $7
"""

REPUTATION = """
SELECT agent_id, score, reliability, quality, responsiveness, successes, failures,
       endorsements, complaints, avg_latency_ms, last_event_at, last_decayed_at, updated_at
FROM agent_reputation WHERE agent_id = $1
"""

REPUTATION_EVENTS = """
SELECT id, event_type, delta, score_before, score_after, reason, task_id, job_id, metadata,
       created_at
FROM agent_reputation_events
WHERE agent_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2
"""


async def create_rule(conn: asyncpg.Connection, values: dict[str, Any]) -> dict[str, Any]:
    row = await conn.fetchrow(
        INSERT_RULE,
        values["name"],
        values.get("description"),
        values["priority"],
        dump_json(values.get("conditions", {})),
        values["action"],
        values.get("target_agent_id"),
        values.get("target_agent_type"),
        values.get("target_capability"),
        values["is_active"],
    )
    return as_dict(row, ("conditions",))


async def list_rules(conn: asyncpg.Connection, is_active: bool | None) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(LIST_RULES, is_active), ("conditions",))


async def active_rules(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(ACTIVE_RULES), ("conditions",))


async def candidates(
    conn: asyncpg.Connection,
    *,
    agent_id: UUID | None,
    agent_type: str | None,
    capabilities: tuple[str | None, str | None],
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        CANDIDATES, agent_id, agent_type, capabilities[0], capabilities[1], limit
    )
    return as_dicts(rows)


async def rule_matched(conn: asyncpg.Connection, rule_id: UUID) -> None:
    await conn.execute(RULE_MATCHED, rule_id)


async def get_task(conn: asyncpg.Connection, task_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_TASK, task_id)
    return as_dict(row) if row else None


async def assign_task(conn: asyncpg.Connection, task_id: UUID, agent_id: UUID) -> None:
    await conn.execute(ASSIGN_TASK, task_id, agent_id)


async def record_decision(conn: asyncpg.Connection, values: dict[str, Any]) -> UUID:
    decision_id: UUID = await conn.fetchval(
        INSERT_DECISION,
        values["rule_id"],
        values["task_id"],
        values["selected_agent_id"],
        values["request_type"],
        dump_json(values["request"]),
        dump_json(values["candidates"]),
        values["score"],
        values["reason"],
        values["latency_ms"],
        values["outcome"],
    )
    return decision_id


async def get_decision(conn: asyncpg.Connection, decision_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_DECISION, decision_id)
    return as_dict(row, _DECISION_JSON) if row else None


async def list_decisions(
    conn: asyncpg.Connection,
    *,
    agent_id: UUID | None,
    task_id: UUID | None,
    outcome: str | None,
    rule_id: UUID | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        LIST_DECISIONS,
        agent_id,
        task_id,
        outcome,
        rule_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return as_dicts(rows, _DECISION_JSON)


async def reputation(conn: asyncpg.Connection, agent_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(REPUTATION, agent_id)
    return as_dict(row) if row else None


async def reputation_events(
    conn: asyncpg.Connection, agent_id: UUID, limit: int
) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(REPUTATION_EVENTS, agent_id, limit), ("metadata",))
