"""Leases: how a worker proves, by the database's clock, that its running attempts are alive.

Every ``JOB_QUEUE_HEARTBEAT_SECONDS`` the worker renews the leases of all its running
attempts in one statement (``lease_expires_at = now() + JOB_QUEUE_STALL_SECONDS``). The
statement answers which attempts the worker still owns; an attempt missing from the answer
was taken over by the reconciler or cancelled through the API, and its task is cancelled
here (self-fencing), so two copies of a job never run on for long.

A renewal that fails (the database is unreachable) is tried again every half second rather
than a period later, so once the database is back every live worker renews within moments;
the reconciler, for its part, waits a full lease after an outage before it takes anything
over (see :mod:`cesar_worker.reconciler`). A worker cut off from a database that others still
reach loses its attempts after one lease; it learns so at its first renewal after the cut and
stops them then.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

import asyncpg
from cesar_core.db import Database
from cesar_core.jobs import repository as repo

from cesar_worker import metrics
from cesar_worker.executor import Executor

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, db: Database, executor: Executor, *, lease: timedelta) -> None:
        self.db = db
        self.executor = executor
        self.lease = lease

    async def renew(self) -> int:
        """Renew every running attempt's lease; fence the lost ones. Returns how many were lost."""
        attempts = self.executor.running_jobs()
        if not attempts:
            return 0

        async def work(conn: asyncpg.Connection) -> set[tuple[UUID, str]]:
            return await repo.renew_leases(conn, attempts, self.lease)

        owned = await self.db.transaction(work)
        lost = set(attempts) - owned
        fenced = self.executor.fence(lost)
        if fenced:
            metrics.RECONCILER_ACTIONS.labels("fenced").inc(fenced)
            log.warning(
                "lost the lease of %d attempt(s) (taken over or cancelled); stopped", fenced
            )
        return fenced
