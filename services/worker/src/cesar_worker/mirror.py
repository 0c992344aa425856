"""The mirror: every transition a worker makes, written to ``job_queue`` in batches.

Callers hand transitions to one in-process :class:`MirrorBatcher`; a single flusher task
writes whatever has accumulated as **one statement** (``UPDATE job_queue ... FROM
unnest(...)`` with one array element per transition and a ``kind`` column), at most one
statement in flight. One statement is atomic on its own, so a flush needs no BEGIN/COMMIT:
it is one round trip on a connection the mirror keeps (no pool reset per flush), and
SQLSTATE 40001/40P01 is retried (the statement is a set of compare-and-sets, so running it
again is harmless). Non-urgent transitions (heartbeats and the final ``succeeded`` /
``retrying`` / ``failed``) linger up to ``flush_interval`` (20 ms by default) so that many
share a statement; a ``running`` claim lingers at most ``start_linger`` (10 ms by default,
counted from the first claim waiting) because its job waits for it, or not at all once every
job slot of the worker is taken (no other claim could join: ``flush_now``); whatever final
transitions are waiting ride along with the claims for free.

Why ``running`` is awaited before the function starts (correctness over a little latency):
the claim is a compare-and-set on the dispatch token, so a stale or cancelled delivery is
refused *before* the function runs, the attempt is counted before any side effect happens
(a kill -9 mid-job is then an honest attempt), and the claim returns the payload from the
row, which is the truth. The price is a few milliseconds of latency per job start, not
throughput: arq starts jobs one by one (four Redis round trips each), so while a claim
lingers arq keeps starting the next jobs, whose claims join the same statement; with
``max_jobs`` = 100 the slots a lingering claim holds are never what limits throughput
(see bench/bench_jobs.py). The final transitions are not awaited: if the process dies
before they are written, the row still says ``running`` and the reconciler re-runs the job
after the stall threshold (delivery is at least once; job functions are idempotent).

Every element is conditioned on ``dispatch_token`` and on the status it expects (``running``
for everything but the claim, which expects ``pending``/``queued``/``retrying``), so a stale
worker's late write changes nothing. Within one batch the transitions are keyed by (row, token):
a final transition replaces a heartbeat of the same attempt (it sets ``heartbeat_at`` too),
so no row appears twice in one statement. If a flush fails, the claims in it fail (their
jobs stay where they were and the reconciler re-dispatches them) and the other transitions
are kept for the next flush. A failure after the server applied the statement (connection
lost before the answer) leaves claimed rows ``running`` without a function: the reconciler
takes them back after the stall threshold and the attempt counts, which is honest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.db import Database, is_retryable
from cesar_core.errors import DatabaseError
from cesar_core.jobs.models import Job, JobStatus

from cesar_worker import metrics

__all__ = ["FLUSH", "MirrorBatcher"]

log = logging.getLogger(__name__)

START, HEARTBEAT, SUCCEED, RETRY, FAIL, INTERRUPT = (
    "start",
    "heartbeat",
    "succeed",
    "retry",
    "fail",
    "interrupt",
)
_FINAL_KINDS = (SUCCEED, RETRY, FAIL, INTERRUPT)

# One statement per flush. v.kind selects what each element does; every element is a
# compare-and-set on (id, dispatch_token, expected status). Columns a kind does not touch
# keep their value, so a heartbeat leaves the indexed columns alone (a HOT update).
# The claimed rows come back with the columns of a Job (the other kinds with NULLs).
FLUSH = """
UPDATE job_queue AS j SET
    status = CASE v.kind WHEN 'start' THEN 'running' WHEN 'succeed' THEN 'succeeded'
                         WHEN 'retry' THEN 'retrying' WHEN 'interrupt' THEN 'retrying'
                         WHEN 'fail' THEN 'failed' ELSE j.status END,
    attempts = CASE v.kind WHEN 'start' THEN j.attempts + 1
                           WHEN 'interrupt' THEN GREATEST(j.attempts - 1, 0)
                           ELSE j.attempts END,
    worker_id = CASE WHEN v.kind = 'start' THEN $8 ELSE j.worker_id END,
    started_at = CASE WHEN v.kind = 'start' THEN v.at ELSE j.started_at END,
    heartbeat_at = CASE WHEN v.kind = 'interrupt' THEN j.heartbeat_at ELSE v.at END,
    updated_at = CASE WHEN v.kind = 'heartbeat' THEN j.updated_at ELSE v.at END,
    finished_at = CASE WHEN v.kind IN ('succeed', 'fail') THEN v.at ELSE j.finished_at END,
    result = CASE WHEN v.kind = 'succeed' THEN CAST(v.result AS JSONB) ELSE j.result END,
    last_error = CASE WHEN v.kind IN ('retry', 'fail', 'interrupt') THEN v.error
                      ELSE j.last_error END,
    run_after = CASE v.kind WHEN 'retry' THEN v.run_after WHEN 'interrupt' THEN v.at
                            ELSE j.run_after END,
    dispatch_token = CASE WHEN v.kind IN ('retry', 'fail', 'interrupt') THEN NULL
                          ELSE j.dispatch_token END
FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TIMESTAMPTZ[], $5::TEXT[], $6::TEXT[],
            $7::TIMESTAMPTZ[]) AS v(id, token, kind, at, result, error, run_after)
WHERE j.id = v.id AND j.dispatch_token = v.token
  AND CASE WHEN v.kind = 'start' THEN j.status IN ('pending', 'queued', 'retrying')
           ELSE j.status = 'running' END
RETURNING v.kind, j.id, v.token,
    CASE WHEN v.kind = 'start' THEN j.job_type END AS job_type,
    CASE WHEN v.kind = 'start' THEN j.payload END AS payload,
    CASE WHEN v.kind = 'start' THEN j.attempts END AS attempts,
    CASE WHEN v.kind = 'start' THEN j.max_attempts END AS max_attempts,
    CASE WHEN v.kind = 'start' THEN j.run_after END AS run_after,
    CASE WHEN v.kind = 'start' THEN j.unique_key END AS unique_key,
    CASE WHEN v.kind = 'start' THEN j.last_error END AS last_error,
    CASE WHEN v.kind = 'start' THEN j.result END AS result,
    CASE WHEN v.kind = 'start' THEN j.created_at END AS created_at,
    CASE WHEN v.kind = 'start' THEN j.started_at END AS started_at,
    CASE WHEN v.kind = 'start' THEN j.finished_at END AS finished_at
"""

# (kind, at, result json, error, run_after) per (row id, token)
_Write = tuple[str, datetime, str | None, str | None, datetime | None]
_RETRIES = 4
_CONNECTION_ERRORS = (
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.ConnectionFailureError,
    OSError,
    TimeoutError,
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


class _Batch:
    __slots__ = ("starts", "writes")

    def __init__(self) -> None:
        self.starts: dict[tuple[UUID, str], tuple[datetime, asyncio.Future[Job | None]]] = {}
        self.writes: dict[tuple[UUID, str], _Write] = {}

    def size(self) -> int:
        return len(self.starts) + len(self.writes)


class MirrorBatcher:
    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        flush_interval: float = 0.02,
        start_linger: float = 0.01,
        max_batch: int = 5000,
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.clock = clock
        self.flush_interval = flush_interval
        self.start_linger = start_linger
        self.max_batch = max_batch
        self._batch = _Batch()
        self._first_at: float | None = None  # first transition waiting (any kind)
        self._first_claim_at: float | None = None  # first claim waiting
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
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
        self._now.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.error("mirror: %d transition(s) not written at shutdown", self._batch.size())
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._release_connection()

    # -- transitions -----------------------------------------------------------------------
    async def claim(self, row_id: UUID, token: str, *, flush_now: bool = False) -> Job | None:
        """``running`` (attempts + 1): the claimed row, or None if the token no longer holds.

        ``flush_now``: no other claim can join this batch (every job slot of the worker is
        taken), so waiting out the claim linger would only add latency.
        """
        if self._closing:
            return None
        future: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
        key = (row_id, token)
        if key in self._batch.starts:  # the same delivery twice in one batch: one winner
            return None
        self._batch.starts[key] = (self.clock(), future)
        if self._first_claim_at is None:
            self._first_claim_at = time.monotonic()
        self._signal(urgent=True)
        if flush_now:
            self._now.set()
        return await future

    def heartbeat(self, running: list[tuple[UUID, str]]) -> None:
        now = self.clock()
        writes = self._batch.writes
        for key in running:
            if key not in writes:  # a final transition of the attempt already says more
                writes[key] = (HEARTBEAT, now, None, None, None)
        self._signal(urgent=False)

    def succeed(self, row_id: UUID, token: str, result_json: str) -> None:
        self._add(row_id, token, (SUCCEED, self.clock(), result_json, None, None))

    def retry(self, row_id: UUID, token: str, error: str, run_after: datetime) -> None:
        self._add(row_id, token, (RETRY, self.clock(), None, error, run_after))

    def fail(self, row_id: UUID, token: str, error: str) -> None:
        self._add(row_id, token, (FAIL, self.clock(), None, error, None))

    def interrupt(self, row_id: UUID, token: str, reason: str) -> None:
        self._add(row_id, token, (INTERRUPT, self.clock(), None, reason, None))

    def pending(self) -> int:
        return self._batch.size()

    async def drain(self) -> None:
        """Wait until everything handed over so far is written (for tests and shutdown)."""
        while self._batch.size() or self._wake.is_set() or self._inflight:
            self._signal(urgent=True)
            self._now.set()
            await asyncio.sleep(0.005)

    # -- internals -------------------------------------------------------------------------
    def _add(self, row_id: UUID, token: str, write: _Write) -> None:
        self._batch.writes[(row_id, token)] = write
        self._signal(urgent=False)

    def _signal(self, *, urgent: bool) -> None:
        if self._first_at is None:
            self._first_at = time.monotonic()
        self._wake.set()
        if urgent or self._batch.size() >= self.max_batch:
            self._urgent.set()
        if self._batch.size() >= self.max_batch:
            self._now.set()

    async def _linger(self) -> None:
        """Wait until the batch is due: the claim linger, the flush interval, or max_batch."""
        if not self._urgent.is_set():
            remaining = (self._first_at or time.monotonic()) + self.flush_interval
            remaining -= time.monotonic()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), remaining)
        if self._first_claim_at is not None and not self._now.is_set():
            remaining = self._first_claim_at + self.start_linger - time.monotonic()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._now.wait(), remaining)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            if not self._closing:
                await self._linger()
            batch, self._batch = self._batch, _Batch()
            self._first_at = self._first_claim_at = None
            self._wake.clear()
            self._urgent.clear()
            self._now.clear()
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
        for key, write in batch.writes.items():
            newer = self._batch.writes.get(key)
            if newer is None or (newer[0] == HEARTBEAT and write[0] != HEARTBEAT):
                self._batch.writes[key] = write
        if batch.writes:
            self._signal(urgent=False)

    async def _connection(self) -> asyncpg.pool.PoolConnectionProxy:
        if self._conn is None:
            self._conn = await self.db.pool.acquire()
        return self._conn

    async def _release_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self.db.pool.release(conn)

    async def _execute(self, args: list[Any]) -> list[asyncpg.Record]:
        for attempt in range(1, _RETRIES + 1):
            conn = await self._connection()
            try:
                rows: list[asyncpg.Record] = await conn.fetch(FLUSH, *args)
                return rows
            except asyncpg.PostgresError as exc:
                if not is_retryable(exc) or attempt == _RETRIES:
                    raise
            except _CONNECTION_ERRORS:
                await self._release_connection()
                raise
            await asyncio.sleep(0.005 * 2**attempt)
        raise DatabaseError("unreachable")  # pragma: no cover

    async def _flush(self, batch: _Batch) -> bool:
        ids: list[UUID] = []
        tokens: list[str] = []
        kinds: list[str] = []
        ats: list[datetime] = []
        results: list[str | None] = []
        errors: list[str | None] = []
        run_afters: list[datetime | None] = []
        for (row_id, token), (at, _) in batch.starts.items():
            ids.append(row_id)
            tokens.append(token)
            kinds.append(START)
            ats.append(at)
            results.append(None)
            errors.append(None)
            run_afters.append(None)
        for (row_id, token), (kind, at, result, error, run_after) in batch.writes.items():
            ids.append(row_id)
            tokens.append(token)
            kinds.append(kind)
            ats.append(at)
            results.append(result)
            errors.append(error)
            run_afters.append(run_after)
        try:
            rows = await self._execute(
                [ids, tokens, kinds, ats, results, errors, run_afters, self.worker_id]
            )
        except (asyncpg.PostgresError, DatabaseError, *_CONNECTION_ERRORS) as exc:
            metrics.MIRROR_FLUSH_ERRORS.inc()
            log.warning("mirror: writing %d transition(s) failed: %s", batch.size(), exc)
            failure = DatabaseError(f"mirror write failed: {exc}")
            for _, future in batch.starts.values():
                if not future.done():
                    future.set_exception(failure)
            batch.starts = {}
            return False
        self.flushes += 1
        metrics.MIRROR_BATCH.observe(batch.size())
        if not batch.starts:
            return True
        claimed: dict[tuple[UUID, str], Job] = {}
        for row in rows:
            if row["kind"] == START:
                claimed[(row["id"], row["token"])] = self._job(row)
        for key, (_, future) in batch.starts.items():
            if not future.done():
                future.set_result(claimed.get(key))
        return True

    def _job(self, row: asyncpg.Record) -> Job:
        """The claimed row as a Job (values straight from the database: no re-validation)."""
        at = row["started_at"]
        return Job.model_construct(
            id=row["id"],
            job_type=row["job_type"],
            payload=_json(row["payload"]) or {},
            status=JobStatus.RUNNING,
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            run_after=row["run_after"],
            unique_key=row["unique_key"],
            dispatch_token=row["token"],
            last_error=row["last_error"],
            result=_json(row["result"]),
            worker_id=self.worker_id,
            heartbeat_at=at,
            created_at=row["created_at"],
            started_at=at,
            updated_at=at,
            finished_at=row["finished_at"],
        )
