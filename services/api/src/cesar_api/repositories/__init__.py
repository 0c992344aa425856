"""Repositories own the SQL (module-level constants) and take a connection from the caller.

They never commit: the caller owns the transaction (``cesar_api.database.write``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg

from cesar_api.errors import InvalidInput

__all__ = ["as_dict", "as_dicts", "dump_json"]


def dump_json(value: Any) -> str:
    """JSON for a JSONB parameter; NaN and Infinity are refused (JSON has no such numbers)."""
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError as exc:
        raise InvalidInput(f"body: JSON values must be finite numbers ({exc})") from exc


def as_dict(record: asyncpg.Record | None, json_columns: Iterable[str] = ()) -> dict[str, Any]:
    if record is None:
        return {}
    row = dict(record)
    for column in json_columns:
        value = row.get(column)
        if isinstance(value, str):
            row[column] = json.loads(value)
    return row


def as_dicts(
    records: Iterable[asyncpg.Record], json_columns: Iterable[str] = ()
) -> list[dict[str, Any]]:
    columns = tuple(json_columns)
    return [as_dict(r, columns) for r in records]
