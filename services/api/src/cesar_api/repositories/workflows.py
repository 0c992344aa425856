"""Workflow templates (versioned by name) and executions (with step progress)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from cesar_api.repositories import as_dict, as_dicts, dump_json

__all__ = [
    "create_execution",
    "create_template",
    "delete_pending_execution",
    "fail_execution",
    "get_execution",
    "get_template",
    "latest_version",
    "list_executions",
    "list_templates",
    "set_execution_job",
]

_TEMPLATE_COLUMNS = (
    "id, name, version, description, definition, is_active, created_by, created_at, updated_at"
)
_EXECUTION_COLUMNS = (
    "id, template_id, job_id, status, input, output, steps, current_step, error, triggered_by, "
    "started_at, finished_at, created_at, updated_at"
)
_TEMPLATE_JSON = ("definition",)
_EXECUTION_JSON = ("input", "output", "steps")

INSERT_TEMPLATE = f"""
INSERT INTO workflow_templates (name, version, description, definition, is_active, created_by)
VALUES ($1, $2, $3, $4::JSONB, $5, $6)
RETURNING {_TEMPLATE_COLUMNS}
"""

LATEST_VERSION = "SELECT max(version) FROM workflow_templates WHERE name = $1"

SELECT_TEMPLATE = f"SELECT {_TEMPLATE_COLUMNS} FROM workflow_templates WHERE id = $1"

# every version, or only the newest version of each name
LIST_TEMPLATES = f"""
SELECT {_TEMPLATE_COLUMNS} FROM workflow_templates AS t
WHERE ($1::TEXT IS NULL OR t.name = $1)
  AND ($2::BOOL IS NULL OR t.is_active = $2)
  AND ($3::BOOL OR t.version = (
        SELECT max(v.version) FROM workflow_templates AS v WHERE v.name = t.name))
  AND ($4::TIMESTAMPTZ IS NULL OR (t.created_at, t.id) < ($4::TIMESTAMPTZ, $5::UUID))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $6
"""

INSERT_EXECUTION = f"""
INSERT INTO workflow_executions (id, template_id, status, input, steps, triggered_by)
VALUES ($1, $2, 'pending', $3::JSONB, $4::JSONB, $5)
RETURNING {_EXECUTION_COLUMNS}
"""

SET_EXECUTION_JOB = f"""
UPDATE workflow_executions SET job_id = $2, updated_at = now()
WHERE id = $1
RETURNING {_EXECUTION_COLUMNS}
"""

FAIL_EXECUTION = """
UPDATE workflow_executions
SET status = 'failed', error = $2, finished_at = now(), updated_at = now()
WHERE id = $1 AND status = 'pending'
"""

DELETE_PENDING_EXECUTION = (
    "DELETE FROM workflow_executions WHERE id = $1 AND status = 'pending' AND job_id IS NULL"
)

SELECT_EXECUTION = f"SELECT {_EXECUTION_COLUMNS} FROM workflow_executions WHERE id = $1"

LIST_EXECUTIONS = f"""
SELECT {_EXECUTION_COLUMNS} FROM workflow_executions
WHERE ($1::UUID IS NULL OR template_id = $1)
  AND ($2::TEXT IS NULL OR status = $2)
  AND ($3::TIMESTAMPTZ IS NULL OR (created_at, id) < ($3::TIMESTAMPTZ, $4::UUID))
ORDER BY created_at DESC, id DESC
LIMIT $5
"""


async def create_template(
    conn: asyncpg.Connection, values: dict[str, Any], version: int
) -> dict[str, Any]:
    row = await conn.fetchrow(
        INSERT_TEMPLATE,
        values["name"],
        version,
        values.get("description"),
        dump_json(values["definition"]),
        values.get("is_active", True),
        values.get("created_by"),
    )
    return as_dict(row, _TEMPLATE_JSON)


async def latest_version(conn: asyncpg.Connection, name: str) -> int | None:
    value = await conn.fetchval(LATEST_VERSION, name)
    return int(value) if value is not None else None


async def get_template(conn: asyncpg.Connection, template_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_TEMPLATE, template_id)
    return as_dict(row, _TEMPLATE_JSON) if row else None


async def list_templates(
    conn: asyncpg.Connection,
    *,
    name: str | None,
    is_active: bool | None,
    all_versions: bool,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        LIST_TEMPLATES,
        name,
        is_active,
        all_versions,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return as_dicts(rows, _TEMPLATE_JSON)


async def create_execution(
    conn: asyncpg.Connection,
    execution_id: UUID,
    template_id: UUID,
    input_: dict[str, Any],
    steps: list[dict[str, Any]],
    triggered_by: str | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        INSERT_EXECUTION,
        execution_id,
        template_id,
        dump_json(input_),
        dump_json(steps),
        triggered_by,
    )
    return as_dict(row, _EXECUTION_JSON)


async def set_execution_job(
    conn: asyncpg.Connection, execution_id: UUID, job_id: UUID
) -> dict[str, Any]:
    row = await conn.fetchrow(SET_EXECUTION_JOB, execution_id, job_id)
    return as_dict(row, _EXECUTION_JSON)


async def fail_execution(conn: asyncpg.Connection, execution_id: UUID, error: str) -> None:
    await conn.execute(FAIL_EXECUTION, execution_id, error)


async def delete_pending_execution(conn: asyncpg.Connection, execution_id: UUID) -> None:
    await conn.execute(DELETE_PENDING_EXECUTION, execution_id)


async def get_execution(conn: asyncpg.Connection, execution_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_EXECUTION, execution_id)
    return as_dict(row, _EXECUTION_JSON) if row else None


async def list_executions(
    conn: asyncpg.Connection,
    *,
    template_id: UUID | None,
    status: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        LIST_EXECUTIONS,
        template_id,
        status,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return as_dicts(rows, _EXECUTION_JSON)
