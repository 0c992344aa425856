"""API keys minted by operator tools (``cesar-verify``, ``make dev``) straight in the database.

The format is the API's own: ``cesar_`` + 32 random bytes (URL-safe base64), stored as the
SHA-256 hex digest plus the first 12 characters for people. The API owns day-to-day key
management (``cesar-api-keys``); this module exists because cesar-core cannot import a service,
and tools that only hold database access still need a key the API accepts.
"""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

__all__ = [
    "KEY_PREFIX",
    "generate_key",
    "hash_key",
    "is_active",
    "put_key",
    "revoke",
]

KEY_PREFIX = "cesar_"

# Creates the key, or gives an existing key of that name a new secret and un-revokes it.
PUT_KEY = """
INSERT INTO api_keys (name, key_hash, key_prefix, scopes) VALUES ($1, $2, $3, $4::TEXT[])
ON CONFLICT (name) DO UPDATE
SET key_hash = excluded.key_hash, key_prefix = excluded.key_prefix, scopes = excluded.scopes,
    revoked_at = NULL, updated_at = now()
"""
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()), updated_at = now() WHERE name = $1
"""
ACTIVE_KEY = """
SELECT count(*) FROM api_keys WHERE name = $1 AND key_hash = $2 AND revoked_at IS NULL
"""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def put_key(conn: asyncpg.Connection, name: str, secret: str, scopes: list[str]) -> None:
    await conn.execute(PUT_KEY, name, hash_key(secret), secret[:12], scopes)


async def revoke(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(REVOKE_KEY, name)


async def is_active(conn: asyncpg.Connection, name: str, secret: str) -> bool:
    return bool(await conn.fetchval(ACTIVE_KEY, name, hash_key(secret)))
