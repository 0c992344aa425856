"""API keys: stored as a SHA-256 hash plus a short prefix for people; never in clear."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from uuid import UUID

import asyncpg

from cesar_api.repositories import as_dict, as_dicts

__all__ = [
    "KEY_PREFIX",
    "create",
    "find_by_secret",
    "generate_key",
    "hash_key",
    "list_keys",
    "revoke",
    "touch",
]

KEY_PREFIX = "cesar_"
_COLUMNS = "id, name, key_prefix, scopes, created_at, updated_at, last_used_at, revoked_at"

INSERT_KEY = f"""
INSERT INTO api_keys (name, key_hash, key_prefix, scopes) VALUES ($1, $2, $3, $4::TEXT[])
RETURNING {_COLUMNS}
"""

FIND_BY_HASH = f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = $1"

LIST_KEYS = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, name"

REVOKE_KEY = f"""
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()), updated_at = now()
WHERE name = $1
RETURNING {_COLUMNS}
"""

TOUCH_KEY = "UPDATE api_keys SET last_used_at = now() WHERE id = $1"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create(
    conn: asyncpg.Connection, name: str, secret: str, scopes: list[str]
) -> dict[str, Any]:
    row = await conn.fetchrow(INSERT_KEY, name, hash_key(secret), secret[:12], scopes)
    return as_dict(row)


async def find_by_secret(conn: asyncpg.Connection, secret: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(FIND_BY_HASH, hash_key(secret))
    return as_dict(row) if row else None


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(LIST_KEYS))


async def revoke(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(REVOKE_KEY, name)
    return as_dict(row) if row else None


async def touch(conn: asyncpg.Connection, key_id: UUID) -> None:
    await conn.execute(TOUCH_KEY, key_id)
