"""The API's pool owner notices a migration applied while it runs and recycles the pool."""

from __future__ import annotations

import asyncio

import asyncpg
from cesar_api.database import DatabaseHolder


async def test_pool_recycled_when_schema_moves(database_url: str) -> None:
    holder = DatabaseHolder(database_url, min_size=1, max_size=1, schema_watch_seconds=0.05)
    await holder.start()
    try:
        db = holder.get()
        async with db.connection() as conn:
            before = await conn.fetchval("SELECT pg_backend_pid()")
        other = await asyncpg.connect(database_url)
        try:
            await other.execute(
                "INSERT INTO schema_migrations (version, name, checksum, dialect, execution_ms) "
                "VALUES (998, 'applied_while_running', 'x', 'postgresql', 1)"
            )
        finally:
            await other.close()
        for _ in range(100):
            async with db.connection() as conn:
                if await conn.fetchval("SELECT pg_backend_pid()") != before:
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the pool kept its pre-migration connection")
    finally:
        await holder.close()
