"""API keys on requests: ``Authorization: Bearer <key>``, looked up by SHA-256 hash.

- no key (or not a Bearer header) on a write -> 401; on a read only when READS_REQUIRE_KEY
- a key that is unknown -> 401; revoked -> 403; without the scope the route needs -> 403
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from uuid import UUID

from cesar_core.db import Database

from cesar_api.database import read, write
from cesar_api.errors import Forbidden, Unauthorized
from cesar_api.repositories import api_keys

__all__ = ["KeyChecker", "Principal"]

log = logging.getLogger(__name__)

_TOUCH_EVERY = 60.0


@dataclass(frozen=True)
class Principal:
    """The API key a request came with."""

    key_id: UUID
    name: str
    scopes: tuple[str, ...]


class KeyChecker:
    def __init__(self) -> None:
        self._touched: dict[UUID, float] = {}

    async def authenticate(self, db: Database, secret: str) -> Principal:
        if not secret or len(secret) > 512:
            raise Unauthorized("invalid API key")
        row = await read(db, lambda conn: api_keys.find_by_secret(conn, secret))
        if not row:
            raise Unauthorized("invalid API key")
        if row["revoked_at"] is not None:
            raise Forbidden(f"API key {row['name']!r} was revoked")
        principal = Principal(row["id"], row["name"], tuple(row["scopes"]))
        await self._touch(db, principal.key_id)
        return principal

    async def _touch(self, db: Database, key_id: UUID) -> None:
        now = time.monotonic()
        if now - self._touched.get(key_id, -_TOUCH_EVERY) < _TOUCH_EVERY:
            return
        self._touched[key_id] = now
        try:
            await write(db, lambda conn: api_keys.touch(conn, key_id))
        except Exception as exc:  # bookkeeping only; never fail the request for it
            log.warning("could not record API key use: %s", exc)

    @staticmethod
    def require_scope(principal: Principal, scope: str) -> None:
        if scope not in principal.scopes:
            raise Forbidden(f"API key {principal.name!r} lacks the {scope!r} scope")
