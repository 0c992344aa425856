"""The dashboard's database connector: one short-lived, read-only connection per batch.

Streamlit reruns scripts in threads without an event loop, so each batch of queries runs inside
its own ``asyncio.run`` on a fresh connection that is closed afterwards. Nothing is pooled or
cached here (``st.cache_data`` caches the *results*, see :mod:`cesar_dashboard.data`). Every
connection sets ``default_transaction_read_only=on``: the database refuses writes even when the
role could write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from cesar_core.db import normalize_dsn
from cesar_core.settings import describe_target

from cesar_dashboard.errors import DatabaseUnreachable, SchemaMissing

__all__ = ["SERVER_SETTINGS", "open_connection", "read"]

T = TypeVar("T")

SERVER_SETTINGS = {
    "default_transaction_read_only": "on",
    "application_name": "cesar-dashboard",
}

_DRIVER_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


async def open_connection(url: str, timeout: float) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(
            normalize_dsn(url),
            timeout=timeout,
            command_timeout=timeout,
            server_settings=SERVER_SETTINGS,
        )
    except _DRIVER_ERRORS as exc:
        raise DatabaseUnreachable(
            f"cannot connect to {describe_target(url)}: {_reason(exc)}"
        ) from exc


async def _read_async(
    url: str, timeout: float, batch: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    conn = await open_connection(url, timeout)
    try:
        async with asyncio.timeout(timeout * 3):
            return await batch(conn)
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
        raise SchemaMissing(
            f"{describe_target(url)} answers but {_reason(exc)}; run `cesar-migrate apply`"
        ) from exc
    except _DRIVER_ERRORS as exc:
        raise DatabaseUnreachable(
            f"reading from {describe_target(url)} failed: {_reason(exc)}"
        ) from exc
    finally:
        try:
            await conn.close(timeout=timeout)
        except _DRIVER_ERRORS:
            conn.terminate()


def read(url: str, timeout: float, batch: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``batch(conn)`` on a fresh read-only connection in its own event loop."""
    return asyncio.run(_read_async(url, timeout, batch))
