"""The mirror: every transition a worker makes, written to ``job_queue`` in batches.

Callers hand transitions to one in-process :class:`MirrorBatcher`; a single flusher task
writes whatever has accumulated in one transaction (``Database.transaction``, so 40001 is
retried), at most one transaction in flight. Non-urgent transitions (heartbeats and the final
``succeeded`` / ``retrying`` / ``failed``) linger up to ``flush_interval`` (20 ms by default)
so that many share a transaction; a ``running`` claim lingers only ``start_linger`` (2 ms)
because its job waits for it.

Why ``running`` is awaited before the function starts (correctness over a little latency):
the claim is a compare-and-set on the dispatch token, so a stale or cancelled delivery is
refused *before* the function runs, the attempt is counted before any side effect happens
(a kill -9 mid-job is then an honest attempt), and the claim returns the payload from the
row, which is the truth. The price is one group-commit round trip per job start; with many
jobs in flight those claims share transactions, so throughput stays close to bare arq (see
bench/bench_jobs.py). The final transitions are not awaited: if the process dies before
they are written, the row still says ``running`` and the reconciler re-runs the job after
the stall threshold (delivery is at least once; job functions are idempotent).

Every statement is conditioned on ``dispatch_token`` (and on the status it expects), so a
stale worker's late write changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.db import Database
from cesar_core.errors import DatabaseError
from cesar_core.jobs.models import JOB_COLUMNS, Job

from cesar_worker import metrics

__all__ = ["MirrorBatcher"]

log = logging.getLogger(__name__)

_J_COLUMNS = ", ".join(f"j.{c.strip()}" for c in JOB_COLUMNS.split(","))

START = f"""
UPDATE job_queue AS j
SET status = 'running', attempts = j.attempts + 1, worker_id = $4,
    started_at = v.at, heartbeat_at = v.at, updated_at = v.at
FROM unnest($1::UUID[], $2::TEXT[], $3::TIMESTAMPTZ[]) AS v(id, token, at)
WHERE j.id = v.id AND j.dispatch_token = v.token
  AND j.status IN ('pending', 'queued', 'retrying')
RETURNING {_J_COLUMNS}
"""
HEARTBEAT = """
UPDATE job_queue SET heartbeat_at = $3
WHERE id = $1 AND dispatch_token = $2 AND status = 'running'
"""
SUCCEED = """
UPDATE job_queue
SET status = 'succeeded', result = CAST($3 AS JSONB), finished_at = $4, updated_at = $4,
    heartbeat_at = $4
WHERE id = $1 AND dispatch_token = $2 AND status = 'running'
"""
RETRY = """
UPDATE job_queue
SET status = 'retrying', last_error = $3, run_after = $4, updated_at = $5, heartbeat_at = $5,
    dispatch_token = NULL
WHERE id = $1 AND dispatch_token = $2 AND status = 'running'
"""
FAIL = """
UPDATE job_queue
SET status = 'failed', last_error = $3, finished_at = $4, updated_at = $4, heartbeat_at = $4,
    dispatch_token = NULL
WHERE id = $1 AND dispatch_token = $2 AND status = 'running'
"""
# graceful shutdown interrupted the attempt: it does not count, the job is due again at once
INTERRUPT = """
UPDATE job_queue
SET status = 'retrying', attempts = GREATEST(attempts - 1, 0), last_error = $3, run_after = $4,
    updated_at = $4, dispatch_token = NULL
WHERE id = $1 AND dispatch_token = $2 AND status = 'running'
"""

_ORDER = ("heartbeat", "succeed", "retry", "fail", "interrupt")
_SQL = {"heartbeat": HEARTBEAT, "succeed": SUCCEED, "retry": RETRY, "fail": FAIL}
_SQL["interrupt"] = INTERRUPT


@dataclass
class _Batch:
    starts: list[tuple[UUID, str, datetime, asyncio.Future[Job | None]]] = field(
        default_factory=list
    )
    writes: dict[str, list[tuple[Any, ...]]] = field(
        default_factory=lambda: {k: [] for k in _ORDER}
    )

    def size(self) -> int:
        return len(self.starts) + sum(len(v) for v in self.writes.values())


class MirrorBatcher:
    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        flush_interval: float = 0.02,
        start_linger: float = 0.002,
        max_batch: int = 5000,
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.clock = clock
        self.flush_interval = flush_interval
        self.start_linger = start_linger
        self.max_batch = max_batch
        self._batch = _Batch()
        self._first_at: float | None = None
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inflight = False
        self.flushes = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mirror-flusher")

    async def close(self, timeout: float = 10.0) -> None:
        """Write everything still pending (best effort within ``timeout``), then stop."""
        self._closing = True
        self._wake.set()
        self._urgent.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.error("mirror: %d transition(s) not written at shutdown", self._batch.size())
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    # -- transitions -----------------------------------------------------------------------
    async def claim(self, row_id: UUID, token: str) -> Job | None:
        """``running`` (attempts + 1): the claimed row, or None if the token no longer holds."""
        if self._closing:
            return None
        future: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
        self._batch.starts.append((row_id, token, self.clock(), future))
        self._signal(urgent=True)
        return await future

    def heartbeat(self, running: list[tuple[UUID, str]]) -> None:
        now = self.clock()
        for row_id, token in running:
            self._add("heartbeat", (row_id, token, now))

    def succeed(self, row_id: UUID, token: str, result_json: str) -> None:
        self._add("succeed", (row_id, token, result_json, self.clock()))

    def retry(self, row_id: UUID, token: str, error: str, run_after: datetime) -> None:
        self._add("retry", (row_id, token, error, run_after, self.clock()))

    def fail(self, row_id: UUID, token: str, error: str) -> None:
        self._add("fail", (row_id, token, error, self.clock()))

    def interrupt(self, row_id: UUID, token: str, reason: str) -> None:
        self._add("interrupt", (row_id, token, reason, self.clock()))

    def pending(self) -> int:
        return self._batch.size()

    async def drain(self) -> None:
        """Wait until everything handed over so far is written (for tests and shutdown)."""
        while self._batch.size() or self._wake.is_set() or self._inflight:
            self._signal(urgent=True)
            await asyncio.sleep(0.005)

    # -- internals -------------------------------------------------------------------------
    def _add(self, kind: str, values: tuple[Any, ...]) -> None:
        self._batch.writes[kind].append(values)
        self._signal(urgent=False)

    def _signal(self, *, urgent: bool) -> None:
        if self._first_at is None:
            self._first_at = time.monotonic()
        self._wake.set()
        if urgent or self._batch.size() >= self.max_batch:
            self._urgent.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            if not self._closing:
                linger = self.start_linger if self._urgent.is_set() else self.flush_interval
                remaining = (self._first_at or time.monotonic()) + linger - time.monotonic()
                if remaining > 0 and not self._urgent.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), remaining)
                    remaining = (self._first_at or time.monotonic()) + self.start_linger
                    remaining -= time.monotonic()
                if remaining > 0:
                    await asyncio.sleep(remaining)
            batch, self._batch = self._batch, _Batch()
            self._first_at = None
            self._wake.clear()
            self._urgent.clear()
            if batch.size():
                self._inflight = True
                try:
                    ok = await self._flush(batch)
                finally:
                    self._inflight = False
                if not ok:
                    self._requeue(batch)
                    if self._closing and backoff > 2:
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
            if self._closing and not self._batch.size():
                return

    def _requeue(self, batch: _Batch) -> None:
        """Keep the final transitions of a failed flush for the next one (claims already failed)."""
        for kind in _ORDER:
            self._batch.writes[kind][:0] = batch.writes[kind]
        self._signal(urgent=False)

    async def _flush(self, batch: _Batch) -> bool:
        starts = batch.starts

        async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            rows: list[asyncpg.Record] = []
            if starts:
                rows = await conn.fetch(
                    START,
                    [s[0] for s in starts],
                    [s[1] for s in starts],
                    [s[2] for s in starts],
                    self.worker_id,
                )
            for kind in _ORDER:
                if batch.writes[kind]:
                    await conn.executemany(_SQL[kind], batch.writes[kind])
            return rows

        try:
            rows = await self.db.transaction(work)
        except (asyncpg.PostgresError, DatabaseError, OSError) as exc:
            metrics.MIRROR_FLUSH_ERRORS.inc()
            log.warning("mirror: writing %d transition(s) failed: %s", batch.size(), exc)
            error = DatabaseError(f"mirror write failed: {exc}")
            for *_, future in starts:
                if not future.done():
                    future.set_exception(error)
            batch.starts = []
            return False
        self.flushes += 1
        metrics.MIRROR_BATCH.observe(batch.size())
        claimed = {}
        for row in rows:
            job = Job.from_row(row)
            claimed[(job.id, job.dispatch_token)] = job
        for row_id, token, _, future in starts:
            if not future.done():
                future.set_result(claimed.get((row_id, token)))
        return True
