"""The API's side of the database connector: a pool that may not exist yet, and the boundary
where driver exceptions become the API's own (:func:`read` and :func:`write`).

Every query runs under a statement timeout (``API_STATEMENT_TIMEOUT_MS``), sent as
``statement_timeout`` in each pooled connection's startup packet: it is the session's default on
both engines, so it bounds every statement of every request without a round trip of its own,
and no request can change it for the next (a route that needs another bound uses ``SET LOCAL``
inside its transaction, which falls back to the default at commit). DESIGN.md's rule against a
bare ``SET`` is about one request's setting leaking into the next; a startup setting is the same
for every request. Behind a transaction-mode pooler that drops startup settings, set it on the
role instead (``ALTER ROLE ... SET statement_timeout``). A query cut off by it becomes a 503
``query_timeout`` that says so, never a 500.

At start the API tries to open the pool; while the database is unreachable it keeps trying in
the background with exponential backoff (so the process serves ``/livez`` and answers 503
elsewhere instead of crash-looping), and logs the engine and version once it is connected.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from cesar_core.db import Database
from cesar_core.errors import CesarError, DatabaseUnavailable
from cesar_core.settings import describe_target

from cesar_api.errors import translate_db_error

__all__ = ["DatabaseHolder", "read", "write"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class DatabaseHolder:
    """Owns the pool's life: opened (with retries) at start, closed at shutdown."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int,
        max_size: int,
        max_delay: float = 30.0,
        schema_watch_seconds: float = 30.0,
        statement_timeout_ms: int = 0,
    ) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.max_delay = max_delay
        self.schema_watch_seconds = schema_watch_seconds
        self.statement_timeout_ms = statement_timeout_ms
        self.db: Database | None = None
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def _try_open(self) -> bool:
        try:
            db = await Database.open(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=5.0,
                server_settings=self._session_defaults(),
            )
        except (CesarError, *_DRIVER_ERRORS) as exc:
            self.last_error = str(exc) or type(exc).__name__
            return False
        self.db = db
        self.last_error = None
        self._connected.set()
        self._watch = asyncio.create_task(self._watch_schema(db), name="db-schema-watch")
        log.info(
            "connected to %s %s at %s (pool %d..%d)",
            db.engine.name,
            db.engine.version,
            describe_target(self.url),
            self.min_size,
            self.max_size,
        )
        return True

    def _session_defaults(self) -> dict[str, str]:
        if self.statement_timeout_ms <= 0:
            return {}
        return {"statement_timeout": f"{int(self.statement_timeout_ms)}ms"}

    async def _retry_forever(self) -> None:
        delay = 0.5
        while not await self._try_open():
            log.warning("database not reachable (%s); retrying in %.1fs", self.last_error, delay)
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(self.max_delay, delay * 2)

    async def _watch_schema(self, db: Database) -> None:
        """Recycle the pool after a migration applied while the API runs."""
        while True:
            try:
                if await db.recycle_if_migrated():
                    log.info("schema migrated; database connections recycled")
            except (CesarError, *_DRIVER_ERRORS) as exc:
                log.debug("schema watch skipped: %s", exc)
            await asyncio.sleep(self.schema_watch_seconds)

    async def start(self) -> None:
        """Try once now; if that fails keep trying in the background."""
        if not await self._try_open():
            log.warning("database not reachable at start (%s); will retry", self.last_error)
            self._task = asyncio.create_task(self._retry_forever(), name="db-connect")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def get(self) -> Database:
        if self.db is None:
            raise DatabaseUnavailable(
                f"database not connected yet: {self.last_error or 'connecting'}"
            )
        return self.db

    async def close(self) -> None:
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.db is not None:
            await self.db.close()
            self.db = None


async def read(db: Database, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` on a pooled connection (autocommit: the engine retries a lone statement's
    serialization conflicts itself), errors translated."""
    try:
        async with db.connection() as conn:
            return await work(conn)
    except _DRIVER_ERRORS as exc:
        raise translate_db_error(exc) from exc


async def write(db: Database, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` in one retried transaction (all or nothing), errors translated."""
    try:
        result: T = await db.transaction(work)
    except _DRIVER_ERRORS as exc:
        raise translate_db_error(exc) from exc
    return result
