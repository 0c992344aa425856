from __future__ import annotations

import asyncio

import asyncpg
import pytest
from cesar_core.db import Database, parse_engine
from cesar_core.errors import DatabaseUnavailable, SerializationFailure

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file


def test_engine_detection_from_banner() -> None:
    crdb = parse_engine("CockroachDB CCL v26.2.1 (x86_64-pc-linux-gnu, built 2026/05/01)")
    assert (crdb.name, crdb.version, crdb.is_cockroach) == ("cockroachdb", "26.2.1", True)
    pg = parse_engine("PostgreSQL 15.19 (Debian 15.19-0+deb12u1) on x86_64-pc-linux-gnu")
    assert (pg.name, pg.version) == ("postgresql", "15.19")


@pytest.mark.engine("postgresql", reason="asserts the engine name 'postgresql'")
async def test_pool_reports_engine_and_stats(db: Database) -> None:
    assert db.engine.name == "postgresql"
    stats = db.stats()
    assert stats.max == 5 and 1 <= stats.size <= 5 and 0 <= stats.free <= stats.size
    assert await db.ping() >= 0


async def test_test_databases_are_serializable(db: Database) -> None:
    async with db.connection() as conn:
        assert await conn.fetchval("SHOW default_transaction_isolation") == "serializable"


async def test_transaction_retries_serialization_failures(db: Database) -> None:
    """Two transactions that read and write the same rows: one gets 40001 and is retried."""
    async with db.connection() as conn:
        await conn.execute("CREATE TABLE counter (id INT8 PRIMARY KEY, n INT8 NOT NULL)")
        await conn.execute("INSERT INTO counter VALUES (1, 0)")
    both_read = asyncio.Barrier(2)
    attempts = 0

    async def increment(conn: asyncpg.Connection) -> None:
        nonlocal attempts
        attempts += 1
        n = await conn.fetchval("SELECT n FROM counter WHERE id = 1")
        if attempts <= 2:
            await both_read.wait()  # make the first two attempts overlap
        await conn.execute("UPDATE counter SET n = $1 WHERE id = 1", n + 1)

    await asyncio.gather(db.transaction(increment), db.transaction(increment))
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT n FROM counter WHERE id = 1") == 2
    assert attempts == 3  # one of the two was retried once


async def test_transaction_gives_up_with_a_clear_error(db: Database) -> None:
    async def always_conflicts(conn: asyncpg.Connection) -> None:
        raise asyncpg.SerializationError("could not serialize access")

    with pytest.raises(SerializationFailure, match="after 3 attempts"):
        await db.transaction(always_conflicts, attempts=3, base_delay=0.001)


async def test_transaction_rolls_back_other_errors(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute("CREATE TABLE t (id INT8 PRIMARY KEY)")

    async def half_then_fail(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO t VALUES (1)")
        await conn.execute("INSERT INTO t VALUES (1)")

    with pytest.raises(asyncpg.UniqueViolationError):
        await db.transaction(half_then_fail)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM t") == 0


async def test_unreachable_database_is_mapped() -> None:
    with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1:1"):
        await Database.open(f"postgresql://postgres:{FAKE_PW}@127.0.0.1:1/x", timeout=2)


async def test_password_not_in_unavailable_message() -> None:
    with pytest.raises(DatabaseUnavailable) as info:
        await Database.open(f"postgresql://postgres:{FAKE_PW}@127.0.0.1:1/x", timeout=2)
    assert FAKE_PW not in str(info.value)


async def test_cockroach_style_url_is_accepted(database_url: str) -> None:
    database = await Database.open(database_url.replace("postgresql://", "cockroachdb://"))
    try:
        assert await database.ping() >= 0
    finally:
        await database.close()


async def test_released_connection_never_carries_an_open_transaction(database_url: str) -> None:
    db = await Database.open(database_url, min_size=1, max_size=1)  # one connection, reused
    try:
        async with db.connection() as conn:
            await conn.execute("CREATE TABLE leak (id INT8 PRIMARY KEY)")
        async with db.connection() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO leak VALUES (1)")
        # the pool rolled the unfinished transaction back on release
        async with db.connection() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM leak") == 0
    finally:
        await db.close()


@pytest.mark.engine("postgresql", reason="SHOW statement_timeout values are PostgreSQL's")
async def test_set_local_does_not_outlive_its_transaction(db: Database) -> None:
    async def work(conn: asyncpg.Connection) -> str:
        await conn.execute("SET LOCAL statement_timeout = '1234ms'")
        return str(await conn.fetchval("SHOW statement_timeout"))

    assert await db.transaction(work) == "1234ms"
    async with db.connection() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "0"


async def test_pool_recycled_after_a_migration(database_url: str) -> None:
    db = await Database.open(database_url, min_size=1, max_size=1)
    try:
        assert await db.recycle_if_migrated() is False  # the first look only records
        async with db.connection() as conn:
            before = await conn.fetchval("SELECT pg_backend_pid()")
        assert await db.recycle_if_migrated() is False  # nothing changed
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == before
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, dialect, execution_ms) "
                "VALUES (999, 'later', 'x', 'postgresql', 1)"
            )
        assert await db.recycle_if_migrated() is True
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != before
    finally:
        await db.close()
