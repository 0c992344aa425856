"""Sync status: one row per external system, written by the syncer."""

from __future__ import annotations

from typing import Any

import asyncpg

from cesar_api.repositories import as_dict, as_dicts

__all__ = ["get_status", "list_status"]

_COLUMNS = (
    "system_name, last_sync_at, last_success_at, lag_seconds, records_synced, status, "
    "last_error, details, created_at, updated_at"
)

LIST_STATUS = f"SELECT {_COLUMNS} FROM sync_status ORDER BY system_name"

GET_STATUS = f"SELECT {_COLUMNS} FROM sync_status WHERE system_name = $1"


async def list_status(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(LIST_STATUS), ("details",))


async def get_status(conn: asyncpg.Connection, system_name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(GET_STATUS, system_name)
    return as_dict(row, ("details",)) if row else None
