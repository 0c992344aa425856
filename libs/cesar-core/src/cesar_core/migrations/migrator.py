"""Applying migrations safely on PostgreSQL and CockroachDB.

The lock is a row in ``schema_migrations_lock`` held ``FOR UPDATE`` by an open transaction on
its own connection: it works on both engines (CockroachDB's advisory locks are no-ops), and it
is released by the database itself if the migrator dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from cesar_core.db import EngineInfo, connect, detect_engine
from cesar_core.errors import (
    ChecksumDrift,
    DatabaseUnavailable,
    MigrationFailed,
    MigrationLockTimeout,
)
from cesar_core.migrations.files import Migration, load_migrations
from cesar_core.migrations.schema import CRITICAL_TABLES, MATERIALIZED_VIEWS, MIN_TABLE_COUNT

__all__ = ["AppliedMigration", "Migrator", "Verification", "wait_for_database"]

log = logging.getLogger("cesar.migrations")

_BOOTSTRAP = (
    """CREATE TABLE IF NOT EXISTS schema_migrations (
        version INT8 PRIMARY KEY,
        name TEXT NOT NULL,
        checksum TEXT NOT NULL,
        dialect TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        execution_ms INT8 NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS schema_migrations_lock (
        id INT8 PRIMARY KEY,
        locked_by TEXT,
        locked_at TIMESTAMPTZ
    )""",
    "INSERT INTO schema_migrations_lock (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
)
_SELECT_APPLIED = (
    "SELECT version, name, checksum, dialect, applied_at, execution_ms "
    "FROM schema_migrations ORDER BY version"
)
_RECORD = (
    "INSERT INTO schema_migrations (version, name, checksum, dialect, execution_ms) "
    "VALUES ($1, $2, $3, $4, $5)"
)
_TAKE_LOCK = "SELECT id FROM schema_migrations_lock WHERE id = 1 FOR UPDATE"
_MARK_LOCK = "UPDATE schema_migrations_lock SET locked_by = $1, locked_at = now() WHERE id = 1"
_LIST_MATVIEWS = (
    "SELECT matviewname FROM pg_catalog.pg_matviews WHERE schemaname = current_schema()"
)
_LIST_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
)
_BOOKKEEPING = {"schema_migrations", "schema_migrations_lock"}
# Concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalog.
_BOOTSTRAP_RACE = (asyncpg.UniqueViolationError, asyncpg.DuplicateTableError)


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    dialect: str
    applied_at: datetime
    execution_ms: int


@dataclass(frozen=True)
class Verification:
    table_count: int
    row_counts: dict[str, int | None]
    views: dict[str, int | None]
    applied: int
    pending: int

    @property
    def missing(self) -> list[str]:
        absent = [n for n, c in {**self.row_counts, **self.views}.items() if c is None]
        if self.table_count < MIN_TABLE_COUNT:
            absent.append(f"{MIN_TABLE_COUNT - self.table_count} more tables")
        return absent

    @property
    def ready(self) -> bool:
        return not self.missing and self.pending == 0


async def wait_for_database(
    url: str,
    *,
    wait_seconds: float,
    on_retry: Callable[[str, float], None] | None = None,
) -> asyncpg.Connection:
    """Connect, retrying with backoff for up to ``wait_seconds`` (compose start order)."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.25
    while True:
        try:
            return await connect(url, timeout=min(10.0, max(1.0, wait_seconds)))
        except DatabaseUnavailable as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseUnavailable(f"{exc} (gave up after {wait_seconds:g}s)") from exc
            if on_retry:
                on_retry(str(exc), min(delay, remaining))
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)


class Migrator:
    """Plan, apply and verify ``directory`` against one database connection."""

    def __init__(
        self, conn: asyncpg.Connection, engine: EngineInfo, directory: Path, url: str
    ) -> None:
        self.conn = conn
        self.engine = engine
        self.directory = directory
        self.url = url

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        directory: Path,
        *,
        wait_seconds: float = 0.0,
        on_retry: Callable[[str, float], None] | None = None,
    ) -> AsyncIterator[Migrator]:
        conn = await wait_for_database(url, wait_seconds=wait_seconds, on_retry=on_retry)
        try:
            yield cls(conn, await detect_engine(conn), directory, url)
        finally:
            await conn.close()

    async def bootstrap(self) -> None:
        for attempt in range(5):
            try:
                for statement in _BOOTSTRAP:
                    await self.conn.execute(statement)
                return
            except _BOOTSTRAP_RACE:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def applied(self) -> list[AppliedMigration]:
        if "schema_migrations" not in await self._names(_LIST_TABLES):
            return []  # a fresh database: nothing applied, and status/verify create nothing
        rows = await self.conn.fetch(_SELECT_APPLIED)
        return [AppliedMigration(**dict(row)) for row in rows]

    async def pending(self) -> list[Migration]:
        """Migrations not yet applied, after checking that the applied ones did not drift."""
        migrations = load_migrations(self.directory)
        applied = await self.applied()
        self._check_drift(migrations, applied)
        done = {a.version for a in applied}
        return [m for m in migrations if m.version not in done]

    def _check_drift(self, migrations: list[Migration], applied: list[AppliedMigration]) -> None:
        by_version = {m.version: m for m in migrations}
        for record in applied:
            migration = by_version.get(record.version)
            if migration is None or migration.name != record.name:
                # Deleted, or replaced by a file under another name: the history no longer
                # matches the folder, and applying on top of it would hide that.
                applied_file = f"{record.version:03d}_{record.name}.sql"
                instead = f" ({migration.label()}.sql now claims that version)" if migration else ""
                raise ChecksumDrift(
                    f"{applied_file} was applied but is no longer in {self.directory}{instead}; "
                    "restore it instead of deleting an applied migration"
                )
            if migration.checksum(self.engine.name) != record.checksum:
                names = ", ".join(p.name for p in migration.files(self.engine.name))
                raise ChecksumDrift(
                    f"{names} changed after it was applied (checksum differs from "
                    "schema_migrations); add a new migration instead of editing an applied one"
                )

    @asynccontextmanager
    async def locked(self, timeout: float) -> AsyncIterator[None]:
        """Hold the migration lock on a second connection for the duration."""
        lock_conn = await connect(self.url)
        try:
            async with lock_conn.transaction():
                try:
                    await asyncio.wait_for(lock_conn.fetchval(_TAKE_LOCK), timeout)
                except TimeoutError as exc:
                    raise MigrationLockTimeout(
                        f"another migrator has held the lock for more than {timeout:g}s"
                    ) from exc
                await lock_conn.execute(_MARK_LOCK, f"{socket.gethostname()}:{os.getpid()}")
                yield
        finally:
            await lock_conn.close()

    async def apply(
        self,
        *,
        lock_timeout: float = 300.0,
        on_applied: Callable[[Migration, int], None] | None = None,
    ) -> list[Migration]:
        """Apply every pending migration in order; returns what was applied."""
        await self.bootstrap()
        load_migrations(self.directory)  # refuse a bad directory before waiting for the lock
        async with self.locked(lock_timeout):
            done: list[Migration] = []
            for migration in await self.pending():
                elapsed_ms = await self._apply_one(migration)
                done.append(migration)
                if on_applied:
                    on_applied(migration, elapsed_ms)
            return done

    async def _apply_one(self, migration: Migration) -> int:
        started = time.perf_counter()
        dialect = self.engine.name
        record = (migration.version, migration.name, migration.checksum(dialect), dialect)
        if self.engine.is_cockroach:
            # Schema changes are not transactional on CockroachDB: statement by statement,
            # each idempotent, so a rerun after a failure picks up where it stopped.
            await self._run_statements(migration)
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            await self.conn.execute(_RECORD, *record, elapsed_ms)
        else:
            async with self.conn.transaction():
                await self._run_statements(migration)
                elapsed_ms = int((time.perf_counter() - started) * 1000)
                await self.conn.execute(_RECORD, *record, elapsed_ms)
        log.debug("applied %s in %d ms", migration.label(), elapsed_ms)
        return elapsed_ms

    async def _run_statements(self, migration: Migration) -> None:
        for path, statement in migration.statements(self.engine.name):
            try:
                await self.conn.execute(statement)
            except asyncpg.PostgresError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                raise MigrationFailed(path.name, statement, reason) from exc

    async def verify(self) -> Verification:
        tables = await self._names(_LIST_TABLES) - _BOOKKEEPING
        views = await self._names(_LIST_MATVIEWS)
        pending = len(await self.pending())
        return Verification(
            table_count=len(tables),
            row_counts={t: await self._count(t, tables) for t in CRITICAL_TABLES},
            views={v: await self._count(v, views) for v in MATERIALIZED_VIEWS},
            applied=len(await self.applied()),
            pending=pending,
        )

    async def _names(self, query: str) -> set[str]:
        return {row[0] for row in await self.conn.fetch(query)}

    async def _count(self, name: str, present: set[str]) -> int | None:
        if name not in present:
            return None
        # ``name`` comes from the fixed lists in schema.py, never from input.
        count: int = await self.conn.fetchval(f'SELECT count(*) FROM "{name}"')
        return count
