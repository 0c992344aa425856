"""The API's side of the database connector: a pool that may not exist yet, and the boundary
where driver exceptions become the API's own (:func:`read` and :func:`write`).

Every query runs under a statement timeout (``API_STATEMENT_TIMEOUT_MS``), set with
``SET LOCAL`` inside its transaction: a pooled connection is reused, and a bare ``SET`` would
outlive the request (CockroachDB's reset does not undo it). A query cut off by it becomes a 503
``query_timeout`` that says so, never a 500.

At start the API tries to open the pool; while the database is unreachable it keeps trying in
the background with exponential backoff (so the process serves ``/livez`` and answers 503
elsewhere instead of crash-looping), and logs the engine and version once it is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from cesar_core.db import Database, is_retryable
from cesar_core.errors import CesarError, DatabaseUnavailable, SerializationFailure
from cesar_core.settings import describe_target

from cesar_api.errors import translate_db_error

__all__ = ["ApiDatabase", "DatabaseHolder", "read", "write"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_READ_ATTEMPTS = 4


class ApiDatabase(Database):
    """The API's pool: a :class:`Database` that knows the statement timeout of its queries."""

    statement_timeout_ms: int = 0

    def set_local_timeout(self) -> str:
        """``SET LOCAL statement_timeout`` (the value is an int from the settings, never input;
        SET takes no bind parameters)."""
        return f"SET LOCAL statement_timeout = '{int(self.statement_timeout_ms)}ms'"


def _timeout_of(db: Database) -> str | None:
    if isinstance(db, ApiDatabase) and db.statement_timeout_ms > 0:
        return db.set_local_timeout()
    return None


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
            db = await ApiDatabase.open(
                self.url, min_size=self.min_size, max_size=self.max_size, timeout=5.0
            )
        except (CesarError, *_DRIVER_ERRORS) as exc:
            self.last_error = str(exc) or type(exc).__name__
            return False
        assert isinstance(db, ApiDatabase)  # Database.open builds the class it is called on
        db.statement_timeout_ms = self.statement_timeout_ms
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


async def _read_once(
    db: Database, work: Callable[[asyncpg.Connection], Awaitable[T]], begin: str
) -> T:
    async with db.connection() as conn:
        # one round trip for BEGIN and SET LOCAL (a simple query may hold several statements)
        await conn.execute(begin)
        try:
            result = await work(conn)
        except BaseException:
            if not conn.is_closed() and conn.is_in_transaction():
                with contextlib.suppress(*_DRIVER_ERRORS):  # the pool rolls back otherwise
                    await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        return result


async def read(db: Database, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` on a pooled connection, errors translated; on the API's pool inside a
    transaction that bounds every statement with the statement timeout (serialization
    failures retried a few times, as a lone statement would be by the engine)."""
    timeout = _timeout_of(db)
    try:
        if timeout is None:
            async with db.connection() as conn:
                return await work(conn)
        begin = f"BEGIN; {timeout}"
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                return await _read_once(db, work, begin)
            except asyncpg.PostgresError as exc:
                if not is_retryable(exc):
                    raise
                if attempt == _READ_ATTEMPTS:
                    raise SerializationFailure(
                        f"read still conflicting after {attempt} attempts: {exc}"
                    ) from exc
                await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover
    except _DRIVER_ERRORS as exc:
        raise translate_db_error(exc) from exc


async def write(db: Database, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` in one retried transaction (all or nothing), errors translated; on the
    API's pool every statement is bounded by the statement timeout."""
    timeout = _timeout_of(db)

    async def timed(conn: asyncpg.Connection) -> T:
        if timeout is not None:
            await conn.execute(timeout)
        return await work(conn)

    try:
        result: T = await db.transaction(timed)
    except _DRIVER_ERRORS as exc:
        raise translate_db_error(exc) from exc
    return result
