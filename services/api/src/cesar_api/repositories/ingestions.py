"""The ingestion log: one row per ingestion run, written by the worker, listed here."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from cesar_api.repositories import as_dicts

__all__ = ["list_log"]

_COLUMNS = (
    "id, source, job_id, status, rows_total, rows_ok, rows_failed, errors, error_message, "
    "details, started_at, finished_at, created_at"
)

LIST_LOG = f"""
SELECT {_COLUMNS} FROM ingestion_log
WHERE ($1::TEXT IS NULL OR source = $1)
  AND ($2::TEXT IS NULL OR status = $2)
  AND ($3::TIMESTAMPTZ IS NULL OR started_at >= $3)
  AND ($4::UUID IS NULL OR job_id = $4)
  AND ($5::TIMESTAMPTZ IS NULL OR (created_at, id) < ($5::TIMESTAMPTZ, $6::UUID))
  AND expires_at > now()
ORDER BY created_at DESC, id DESC
LIMIT $7
"""


async def list_log(
    conn: asyncpg.Connection,
    *,
    source: str | None,
    status: str | None,
    since: datetime | None,
    job_id: UUID | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        LIST_LOG,
        source,
        status,
        since,
        job_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return as_dicts(rows, ("errors", "details"))
