"""The database connector: an asyncpg pool that knows its engine, and the retrying transaction.

Repositories take a connection from the caller; the caller owns the transaction, normally
through :meth:`Database.transaction`, which retries SQLSTATE 40001 (CockroachDB's serializable
restarts, and PostgreSQL's at SERIALIZABLE) with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

import asyncpg

from cesar_core.errors import DatabaseError, DatabaseUnavailable, SerializationFailure
from cesar_core.redaction import describe_target

__all__ = [
    "Database",
    "EngineInfo",
    "PoolStats",
    "connect",
    "detect_engine",
    "is_connection_failure",
    "normalize_dsn",
]

T = TypeVar("T")
EngineName = Literal["cockroachdb", "postgresql"]

_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_SCHEMA_VERSION = "SELECT max(version) FROM schema_migrations"
_NOT_LOOKED = -1
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
)


@dataclass(frozen=True)
class EngineInfo:
    name: EngineName
    version: str
    banner: str

    @property
    def is_cockroach(self) -> bool:
        return self.name == "cockroachdb"


@dataclass(frozen=True)
class PoolStats:
    size: int
    free: int
    max: int


def normalize_dsn(url: str) -> str:
    """asyncpg speaks postgresql://; CockroachDB tools often write cockroachdb://."""
    for prefix in ("cockroachdb://", "cockroach://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def parse_engine(banner: str) -> EngineInfo:
    if banner.startswith("CockroachDB"):
        # "CockroachDB CCL v26.2.1 (x86_64-pc-linux-gnu, ...)"
        version = next((w.lstrip("v") for w in banner.split() if w.startswith("v")), "unknown")
        return EngineInfo("cockroachdb", version, banner)
    # "PostgreSQL 15.19 (Debian 15.19-0+deb12u1) on x86_64-pc-linux-gnu, ..."
    words = banner.split()
    return EngineInfo("postgresql", words[1] if len(words) > 1 else "unknown", banner)


async def detect_engine(conn: asyncpg.Connection) -> EngineInfo:
    return parse_engine(await conn.fetchval("SELECT version()"))


def is_retryable(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in _RETRYABLE_SQLSTATES


def is_connection_failure(exc: BaseException) -> bool:
    """The server or the connection went away (a restart, a network cut), as opposed to a
    statement the database refused: SQLSTATE class 08, the shutdown states 57P01-57P03, and
    the driver's and the OS's own connection errors."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    state = str(getattr(exc, "sqlstate", "") or "")
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


async def connect(url: str, *, timeout: float = 10.0) -> asyncpg.Connection:
    """One connection, with driver errors mapped to :class:`DatabaseUnavailable`."""
    try:
        return await asyncpg.connect(normalize_dsn(url), timeout=timeout)
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"cannot reach {describe_target(url)}: {_reason(exc)}") from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailable(f"{describe_target(url)} refused the connection: {exc}") from exc


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook: nothing to reset. asyncpg still rolls back an open transaction; the
    default ``RESET ALL; UNLISTEN *; ...`` round trip on every release is skipped because our
    code keeps no session state (``SET LOCAL`` only, no LISTEN, no advisory locks: DESIGN.md
    section 4), and CockroachDB's reset would not undo a ``SET`` anyway."""


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class Database:
    """An asyncpg pool plus the engine it talks to. Create with :meth:`open`."""

    def __init__(self, pool: asyncpg.Pool, engine: EngineInfo, url: str) -> None:
        self.pool = pool
        self.engine = engine
        self.url = url
        self._schema_version: int | None = _NOT_LOOKED

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        command_timeout: float | None = 60.0,
        server_settings: Mapping[str, str] | None = None,
    ) -> Database:
        """Open the pool. ``server_settings`` are sent in every connection's startup packet,
        so they are each session's defaults on both engines: what a transaction sets with
        ``SET LOCAL`` falls back to them, and no request can change them for the next."""
        try:
            pool = await asyncpg.create_pool(
                normalize_dsn(url),
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                command_timeout=command_timeout,
                reset=_keep_session,
                server_settings=dict(server_settings) if server_settings else None,
            )
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(
                f"cannot reach {describe_target(url)}: {_reason(exc)}"
            ) from exc
        except asyncpg.PostgresError as exc:
            raise DatabaseUnavailable(
                f"{describe_target(url)} refused the connection: {exc}"
            ) from exc
        async with pool.acquire() as proxy:
            engine = await detect_engine(cast(asyncpg.Connection, proxy))
        return cls(pool, engine, url)

    async def close(self) -> None:
        await self.pool.close()

    async def recycle(self) -> None:
        """Drop idle connections, so statements cached before a migration are not reused."""
        await self.pool.expire_connections()

    async def recycle_if_migrated(self) -> bool:
        """Recycle the pool when ``schema_migrations`` moved since the last look (a migration
        ran while this process was up), so no connection keeps statements prepared against
        the old schema. Long-running services call it periodically; returns whether it did."""
        async with self.connection() as conn:
            try:
                version: int | None = await conn.fetchval(_SCHEMA_VERSION)
            except asyncpg.UndefinedTableError:
                version = None
        changed = self._schema_version not in (_NOT_LOOKED, version)
        self._schema_version = version
        if changed:
            await self.recycle()
        return changed

    def stats(self) -> PoolStats:
        return PoolStats(
            size=self.pool.get_size(),
            free=self.pool.get_idle_size(),
            max=self.pool.get_max_size(),
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire() as proxy:
                # The proxy forwards every Connection method; typing it as one keeps
                # repositories simple.
                yield cast(asyncpg.Connection, proxy)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"database connection failed: {_reason(exc)}") from exc

    async def ping(self, timeout: float = 2.0) -> float:
        """Round-trip time of ``SELECT 1`` in milliseconds."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout), self.connection() as conn:
                await conn.fetchval("SELECT 1")
        except TimeoutError as exc:
            raise DatabaseUnavailable(f"database did not answer within {timeout}s") from exc
        return (time.perf_counter() - started) * 1000

    async def transaction(
        self,
        work: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        attempts: int = 8,
        base_delay: float = 0.01,
        max_delay: float = 1.0,
    ) -> T:
        """Run ``work(conn)`` in a transaction, retrying serialization failures.

        ``work`` may run more than once, so it must not have side effects outside the
        database (or they must be idempotent).
        """
        for attempt in range(1, attempts + 1):
            try:
                async with self.connection() as conn, conn.transaction():
                    return await work(conn)
            except asyncpg.PostgresError as exc:
                if not is_retryable(exc):
                    raise
                if attempt == attempts:
                    raise SerializationFailure(
                        f"transaction still conflicting after {attempts} attempts: {exc}"
                    ) from exc
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            await asyncio.sleep(random.uniform(delay / 2, delay))
        raise DatabaseError("unreachable")  # pragma: no cover
