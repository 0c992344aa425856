"""pytest plugin with the fixtures every service's tests use (``-p cesar_core.testing``).

- ``template_database_url`` (session): a database migrated once by the real migrator.
- ``database_url``: a fresh database per test, copied from the template on PostgreSQL
  (``CREATE DATABASE ... TEMPLATE``) or migrated afresh on CockroachDB; at SERIALIZABLE
  isolation so the 40001 retry path runs here too; dropped afterwards.
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
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from cesar_core.db import Database, connect, detect_engine
from cesar_core.migrations import Migrator, default_migrations_dir
from cesar_core.redis import RedisClient, create_redis

__all__ = ["admin_url", "database_named", "drop_database"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


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


@pytest_asyncio.fixture
async def database_url(template_database_url: str) -> AsyncIterator[str]:
    template = urlsplit(template_database_url).path.lstrip("/")
    name = f"cesar_t_{uuid.uuid4().hex[:12]}"
    conn = await _admin()
    try:
        engine = await detect_engine(conn)
        if engine.is_cockroach:
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            await conn.execute(
                f'ALTER DATABASE "{name}" SET default_transaction_isolation TO serializable'
            )
    finally:
        await conn.close()
    url = database_named(admin_url(), name)
    if engine.is_cockroach:
        await _migrate(url)
    try:
        yield url
    finally:
        await drop_database(name)


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
