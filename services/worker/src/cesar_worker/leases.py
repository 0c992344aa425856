"""Leases: how a worker proves, by the database's clock, that its running attempts are alive.

Every ``JOB_QUEUE_HEARTBEAT_SECONDS``, on a fixed cadence, the worker:

1. renews the leases of all its attempts in one statement (``lease_expires_at = now() +
   JOB_QUEUE_STALL_SECONDS``): the running ones, and the finished ones whose outcome still
   waits in the mirror (a slow write must not turn a success into a lost attempt). The answer
   says which attempts it still owns; a running attempt missing from it was taken over by the
   reconciler or cancelled through the API, and its task is cancelled here (self-fencing);
2. ticks the lease clock (``job_lease_clock``), which tells the reconcilers whether the
   database has been reachable without a gap (see :mod:`cesar_worker.reconciler`);
3. records its heartbeat in ``worker_heartbeats`` (``last_seen_at = now()``, the database's
   clock, which is what ``cesar-worker check`` measures against).

All of it runs on a connection of its own, outside the pool that job code uses: jobs holding
every pooled connection can never delay the proof that their worker is alive. A statement
that fails (the database is unreachable) is tried again every half second rather than a
period later, so once the database is back every live worker renews within moments.
A worker cut off from a database that others still reach loses its attempts after one lease;
it learns so at its first renewal after the cut and stops them then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

import asyncpg
from cesar_core import __version__
from cesar_core.db import connect, is_connection_failure, is_retryable
from cesar_core.errors import DatabaseUnavailable
from cesar_core.jobs import repository as repo

from cesar_worker import metrics
from cesar_worker.executor import Executor
from cesar_worker.mirror import MirrorBatcher

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_TIMEOUT = 5.0  # a renewal is one short statement; longer means the connection is gone

UPSERT_WORKER_HEARTBEAT = """
INSERT INTO worker_heartbeats (worker_id, hostname, pid, version, queue_name, jobs_running,
                               started_at, last_seen_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now(), now())
ON CONFLICT (worker_id) DO UPDATE SET
    jobs_running = EXCLUDED.jobs_running, last_seen_at = now(), updated_at = now()
"""


class LeaseKeeper:
    def __init__(
        self,
        url: str,
        executor: Executor,
        mirror: MirrorBatcher,
        *,
        lease: timedelta,
        outage_gap: timedelta,
        worker_id: str,
        queue_name: str,
        started_at: datetime,
    ) -> None:
        self.url = url
        self.executor = executor
        self.mirror = mirror
        self.lease = lease
        self.outage_gap = outage_gap
        self.worker_id = worker_id
        self.queue_name = queue_name
        self.started_at = started_at
        self._conn: asyncpg.Connection | None = None

    async def renew(self) -> int:
        """Renew the leases of the running attempts and of the finished ones whose outcome is
        not written yet; fence the running ones this worker lost. Returns how many."""
        running = self.executor.running_jobs()
        attempts = list(dict.fromkeys([*running, *self.mirror.pending_attempts()]))
        if not attempts:
            return 0
        owned: set[tuple[UUID, str]] = await self._run(
            lambda conn: repo.renew_leases(conn, attempts, self.lease)
        )
        fenced = self.executor.fence(set(running) - owned)
        if fenced:
            metrics.RECONCILER_ACTIONS.labels("fenced").inc(fenced)
            log.warning(
                "lost the lease of %d attempt(s) (taken over or cancelled); stopped", fenced
            )
        return fenced

    async def tick(self) -> float:
        """Tick the lease clock; seconds the database has been reachable without a gap."""
        return await self._run(lambda conn: repo.tick_lease_clock(conn, outage_gap=self.outage_gap))

    async def record_heartbeat(self, jobs_running: int) -> None:
        await self._run(
            lambda conn: conn.execute(
                UPSERT_WORKER_HEARTBEAT,
                self.worker_id,
                socket.gethostname(),
                os.getpid(),
                __version__,
                self.queue_name,
                jobs_running,
                self.started_at,
            )
        )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), _TIMEOUT)

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """One statement on the keeper's own connection, retrying serialization failures; a
        connection that fails or hangs is dropped and the failure raised as unavailable."""
        for attempt in range(1, 6):
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await connect(self.url, timeout=_TIMEOUT)
                return await asyncio.wait_for(work(self._conn), _TIMEOUT)
            except Exception as exc:
                if is_retryable(exc) and attempt < 5:
                    await asyncio.sleep(0.01 * 2**attempt)
                    continue
                if isinstance(exc, asyncpg.PostgresError) and not is_connection_failure(exc):
                    raise
                await self._drop()
                if isinstance(exc, DatabaseUnavailable):
                    raise
                raise DatabaseUnavailable(f"lease keeper: {exc or type(exc).__name__}") from exc
        raise DatabaseUnavailable("lease keeper: still conflicting")  # pragma: no cover

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()
