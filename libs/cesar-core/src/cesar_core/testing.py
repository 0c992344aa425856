"""pytest plugin with the fixtures every service's tests use (``-p cesar_core.testing``).

- ``template_database_url`` (session): a database migrated once by the real migrator.
- ``database_url``: a database of its own for each test. On PostgreSQL a fresh copy of the
  template (``CREATE DATABASE ... TEMPLATE``, a file copy), at SERIALIZABLE isolation so the
  40001 retry path runs here too, dropped afterwards. CockroachDB has no ``TEMPLATE`` and each of
  the ~150 DDL statements of a fresh migration is a schema-change job (minutes per database), so
  there the tests of one pytest process share the migrated database, emptied before each test:
  ``DELETE`` from every table, children first (a ``TRUNCATE`` is a schema change too), the rows
  the migrations seed put back, and non-empty materialized views refreshed.
- ``test_engine`` / ``@pytest.mark.engine("postgresql")``: tests that only make sense on one
  engine (``TEMPLATE``, ``pg_terminate_backend``, exact engine strings) say which; they are
  skipped, with that reason, on the other. ``TEST_ENGINE`` (``postgresql`` by default,
  ``cockroach`` under ``make test-cockroach``) names the engine of ``TEST_DATABASE_URL``.
- ``empty_database_url``: an empty database, for tests of the migrator itself.
- ``db``: a :class:`~cesar_core.db.Database` pool on that database.
- ``redis_url`` / ``redis_prefix`` / ``redis``: a real Redis, isolated by a per-test key prefix
  that is deleted afterwards.

URLs come from ``TEST_DATABASE_URL`` and ``TEST_REDIS_URL`` with loopback defaults.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from cesar_core.db import Database, connect, detect_engine
from cesar_core.migrations import Migrator, default_migrations_dir
from cesar_core.redis import RedisClient, create_redis

__all__ = ["admin_url", "database_named", "drop_database", "engine_under_test"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ENGINES = {"postgresql": "PostgreSQL", "cockroach": "CockroachDB"}
# Bookkeeping of the migrator: kept as it is between tests.
_KEEP_TABLES = ("schema_migrations", "schema_migrations_lock")
_USER_TABLES = """
SELECT c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY c.relname
"""
_FOREIGN_KEYS = """
SELECT child.relname, parent.relname FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class child ON child.oid = k.conrelid
JOIN pg_catalog.pg_class parent ON parent.oid = k.confrelid
JOIN pg_catalog.pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = 'public'
"""
_MATVIEWS = "SELECT matviewname FROM pg_catalog.pg_matviews WHERE schemaname = 'public'"


def engine_under_test() -> str:
    """The engine of ``TEST_DATABASE_URL`` as ``TEST_ENGINE`` names it (``postgresql``
    unless ``make test-cockroach`` says ``cockroach``)."""
    value = os.environ.get("TEST_ENGINE", "postgresql").strip().lower()
    if value in ("cockroachdb", "crdb"):
        value = "cockroach"
    if value not in ENGINES:
        raise pytest.UsageError(f"TEST_ENGINE={value!r}: use one of {', '.join(ENGINES)}")
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "engine(name): the test needs that database engine (postgresql or cockroach); "
        "skipped with a reason on the other",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("engine")
    if marker is None:
        return
    needed = str(marker.args[0]) if marker.args else ""
    if needed not in ENGINES:
        raise pytest.UsageError(f"{item.nodeid}: engine({needed!r}): use one of {list(ENGINES)}")
    running = engine_under_test()
    if needed != running:
        reason = marker.kwargs.get("reason", "")
        pytest.skip(
            f"needs {ENGINES[needed]}, the tests run on {ENGINES[running]}"
            + (f": {reason}" if reason else "")
        )


def admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL)


def database_named(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin() -> asyncpg.Connection:
    return await connect(admin_url())


async def drop_database(name: str) -> None:
    conn = await _admin()
    try:
        engine = await detect_engine(conn)
        force = "" if engine.is_cockroach else " WITH (FORCE)"
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    async with Migrator.connect(url, default_migrations_dir()) as migrator:
        await migrator.apply()


@pytest_asyncio.fixture(scope="session")
async def template_database_url() -> AsyncIterator[str]:
    name = f"cesar_tpl_{uuid.uuid4().hex[:10]}"
    conn = await _admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = database_named(admin_url(), name)
    try:
        await _migrate(url)
        yield url
    finally:
        await drop_database(name)


@dataclass
class _SharedDatabase:
    """CockroachDB: the migrated database the tests of this process share, and what to put
    back into it after emptying it (rows the migrations seed)."""

    url: str
    delete_order: list[str]
    seeds: dict[str, tuple[list[str], list[tuple[Any, ...]]]]
    views: list[str]


def _children_first(tables: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Tables ordered so that every table comes before the tables it references."""
    referenced_by: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in edges:
        if child != parent and parent in referenced_by and child in referenced_by:
            referenced_by[parent].add(child)
    ordered: list[str] = []
    done: set[str] = set()

    def visit(table: str, path: frozenset[str]) -> None:
        if table in done or table in path:
            return
        for child in sorted(referenced_by[table]):
            visit(child, path | {table})
        done.add(table)
        ordered.append(table)

    for table in tables:
        visit(table, frozenset())
    return ordered


async def _describe(url: str) -> _SharedDatabase:
    conn = await connect(url)
    try:
        views = [r[0] for r in await conn.fetch(_MATVIEWS)]
        skip = {*_KEEP_TABLES, *views}
        tables = [r[0] for r in await conn.fetch(_USER_TABLES) if r[0] not in skip]
        edges = [(r[0], r[1]) for r in await conn.fetch(_FOREIGN_KEYS)]
        seeds: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table in tables:
            # Table names come from the catalog, never from input.
            rows = await conn.fetch(f'SELECT * FROM "{table}"')
            if rows:
                seeds[table] = (list(rows[0].keys()), [tuple(r.values()) for r in rows])
    finally:
        await conn.close()
    return _SharedDatabase(url, _children_first(tables, edges), seeds, views)


async def reset_shared_database(shared: _SharedDatabase) -> None:
    """Empty every table (children first), put the seeded rows back, refresh non-empty views."""
    conn = await connect(shared.url)
    try:
        async with conn.transaction():
            for table in shared.delete_order:
                await conn.execute(f'DELETE FROM "{table}"')
            for table in reversed(shared.delete_order):
                if table in shared.seeds:
                    columns, rows = shared.seeds[table]
                    names = ", ".join(f'"{c}"' for c in columns)
                    params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
                    await conn.executemany(
                        f'INSERT INTO "{table}" ({names}) VALUES ({params})', rows
                    )
        for view in shared.views:
            if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{view}")'):
                await conn.execute(f'REFRESH MATERIALIZED VIEW "{view}"')
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="session")
async def _shared_cockroach_database(
    template_database_url: str,
) -> AsyncIterator[_SharedDatabase | None]:
    if engine_under_test() != "cockroach":
        yield None
        return
    # One per pytest process: the template is migrated once per process already.
    yield await _describe(template_database_url)


@pytest_asyncio.fixture
async def database_url(
    template_database_url: str, _shared_cockroach_database: _SharedDatabase | None
) -> AsyncIterator[str]:
    if _shared_cockroach_database is not None:
        await reset_shared_database(_shared_cockroach_database)
        yield _shared_cockroach_database.url
        return
    template = urlsplit(template_database_url).path.lstrip("/")
    name = f"cesar_t_{uuid.uuid4().hex[:12]}"
    conn = await _admin()
    try:
        engine = await detect_engine(conn)
        if engine.is_cockroach:
            raise pytest.UsageError(
                "TEST_DATABASE_URL is CockroachDB: set TEST_ENGINE=cockroach "
                "(`make test-cockroach` does)"
            )
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        await conn.execute(
            f'ALTER DATABASE "{name}" SET default_transaction_isolation TO serializable'
        )
    finally:
        await conn.close()
    try:
        yield database_named(admin_url(), name)
    finally:
        await drop_database(name)


@pytest.fixture(scope="session")
def database_engine() -> str:
    """``postgresql`` or ``cockroach``: the engine the suite runs on."""
    return engine_under_test()


@pytest_asyncio.fixture
async def empty_database_url() -> AsyncIterator[str]:
    """A database with nothing in it, for tests of the migrator itself."""
    name = f"cesar_e_{uuid.uuid4().hex[:12]}"
    conn = await _admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield database_named(admin_url(), name)
    finally:
        await drop_database(name)


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, min_size=1, max_size=5)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture
def redis_prefix() -> str:
    return f"cesar-test:{uuid.uuid4().hex[:12]}:"


@pytest_asyncio.fixture
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisClient]:
    client = create_redis(redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
