"""Opaque keyset cursors: ``(created_at, id)`` of the last row seen, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from cesar_api.errors import InvalidInput

__all__ = ["Cursor", "Page", "decode_cursor", "encode_cursor", "next_cursor"]

Cursor = tuple[datetime, UUID]


class Page(BaseModel):
    """A page of a listing; pass ``next_cursor`` back as ``cursor`` for the next one."""

    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, field: str = "cursor") -> Cursor | None:
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        stamp = datetime.fromisoformat(created)
        if stamp.tzinfo is None:
            raise ValueError("naive timestamp")
        return stamp, UUID(row_id)
    except (ValueError, TypeError, binascii.Error, UnicodeError) as exc:
        raise InvalidInput(
            f"query.{field}: not a cursor returned by this API",
            details=[{"field": f"query.{field}", "problem": "malformed cursor"}],
        ) from exc


def next_cursor(rows: list[Any], limit: int) -> str | None:
    """The cursor after the last row when the page is full (there may be more)."""
    if len(rows) < limit or not rows:
        return None
    last = rows[-1]
    created = last["created_at"] if isinstance(last, dict) else last.created_at
    row_id = last["id"] if isinstance(last, dict) else last.id
    return encode_cursor(created, row_id)
