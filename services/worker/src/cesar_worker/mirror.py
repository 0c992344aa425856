"""The mirror: every transition a worker makes, written to ``job_queue`` in batches.

Callers hand transitions to one in-process :class:`MirrorBatcher`; a single flusher task
writes whatever has accumulated as **one statement** (``UPDATE job_queue ... FROM
unnest(...)`` with one array element per transition and a ``kind`` column, plus the matching
rows of ``job_attempts`` in the same statement), at most one statement in flight. One
statement is atomic on its own, so a flush needs no BEGIN/COMMIT: it is one round trip on a
connection the mirror keeps, and SQLSTATE 40001/40P01 is retried (the statement is a set of
compare-and-sets, so running it again is harmless). Final transitions (``succeeded`` /
``retrying`` / ``failed`` / interrupted) linger up to ``flush_interval`` (20 ms by default)
so that many share a statement; a ``running`` claim lingers at most ``start_linger`` (10 ms
by default, counted from the first claim waiting) because its job waits for it, or not at
all once every job slot of the worker is taken (``flush_now``).

Why ``running`` is awaited before the function starts (correctness over a little latency):
the claim is a compare-and-set on the dispatch token, so a stale or cancelled delivery is
refused *before* the function runs, the attempt is counted and its lease taken before any
side effect happens, and the claim returns the payload from the row, which is the truth.
The final transitions are not awaited: if the process dies before they are written, the
row still says ``running``, its lease runs out and the reconciler re-runs the job (delivery
is at least once; job functions are idempotent). Leases are renewed elsewhere
(:mod:`cesar_worker.leases`), in their own statement, so a write refused here can never
stop a worker from proving it is alive.

Every element is conditioned on ``dispatch_token`` and on the status it expects (``running``
for everything but the claim, which expects ``pending``/``queued``/``retrying``), so a stale
worker's late write changes nothing. Within one batch the transitions are keyed by (row,
token), so no attempt appears twice in one statement.

One bad value cannot wedge the mirror: texts and results are made storable before they get
here (:mod:`cesar_core.jobs.storable`), and a statement the database refuses for any reason
other than connectivity is split in halves until only the offending write fails; that job
then ends ``failed`` with the database's reason as its error. If the database cannot be
reached, the claims in the batch fail (arq delivers them again shortly) and the final
transitions are kept for the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.db import Database, is_connection_failure, is_retryable
from cesar_core.errors import DatabaseError
from cesar_core.jobs.models import Job, JobStatus
from cesar_core.jobs.storable import storable_text

from cesar_worker import metrics

__all__ = ["FLUSH", "MirrorBatcher"]

log = logging.getLogger(__name__)

START, SUCCEED, RETRY, FAIL, INTERRUPT = ("start", "succeed", "retry", "fail", "interrupt")
_FINAL_KINDS = (SUCCEED, RETRY, FAIL, INTERRUPT)

# One statement per flush. v.kind selects what each element does; every element is a
# compare-and-set on (id, dispatch_token, expected status). Columns a kind does not touch
# keep their value. A claim takes the lease (by the database's clock) and opens the
# attempt's row in job_attempts; a final transition closes it with its outcome, in the same
# statement. The claimed rows come back with the columns of a Job (the other kinds with NULLs).
FLUSH = """
WITH changed AS (
UPDATE job_queue AS j SET
    status = CASE v.kind WHEN 'start' THEN 'running' WHEN 'succeed' THEN 'succeeded'
                         WHEN 'retry' THEN 'retrying' WHEN 'interrupt' THEN 'retrying'
                         WHEN 'fail' THEN 'failed' ELSE j.status END,
    attempts = CASE v.kind WHEN 'start' THEN j.attempts + 1
                           WHEN 'interrupt' THEN GREATEST(j.attempts - 1, 0)
                           ELSE j.attempts END,
    worker_id = CASE WHEN v.kind = 'start' THEN $8 ELSE j.worker_id END,
    started_at = CASE WHEN v.kind = 'start' THEN v.at ELSE j.started_at END,
    heartbeat_at = CASE WHEN v.kind = 'start' THEN now() ELSE j.heartbeat_at END,
    lease_expires_at = CASE WHEN v.kind = 'start' THEN now() + $9::INTERVAL ELSE NULL END,
    updated_at = v.at,
    finished_at = CASE WHEN v.kind IN ('succeed', 'fail') THEN v.at ELSE j.finished_at END,
    result = CASE WHEN v.kind = 'succeed' THEN CAST(v.result AS JSONB) ELSE j.result END,
    last_error = CASE WHEN v.kind IN ('retry', 'fail', 'interrupt') THEN v.error
                      ELSE j.last_error END,
    run_after = CASE v.kind WHEN 'retry' THEN v.run_after
                            WHEN 'interrupt' THEN COALESCE(v.run_after, v.at)
                            ELSE j.run_after END,
    dispatch_token = CASE WHEN v.kind IN ('retry', 'fail', 'interrupt') THEN NULL
                          ELSE j.dispatch_token END
FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TIMESTAMPTZ[], $5::TEXT[], $6::TEXT[],
            $7::TIMESTAMPTZ[], $10::TEXT[])
     AS v(id, token, kind, at, result, error, run_after, outcome)
WHERE j.id = v.id AND j.dispatch_token = v.token
  AND CASE WHEN v.kind = 'start' THEN j.status IN ('pending', 'queued', 'retrying')
           ELSE j.status = 'running' END
RETURNING v.kind, j.id, v.token, v.at, v.outcome, v.error, j.attempts AS attempt,
    CASE WHEN v.kind = 'start' THEN j.job_type END AS job_type,
    CASE WHEN v.kind = 'start' THEN j.payload END AS payload,
    CASE WHEN v.kind = 'start' THEN j.max_attempts END AS max_attempts,
    CASE WHEN v.kind = 'start' THEN j.run_after END AS run_after,
    CASE WHEN v.kind = 'start' THEN j.unique_key END AS unique_key,
    CASE WHEN v.kind = 'start' THEN j.last_error END AS last_error,
    CASE WHEN v.kind = 'start' THEN j.result END AS result,
    CASE WHEN v.kind = 'start' THEN j.created_at END AS created_at,
    CASE WHEN v.kind = 'start' THEN j.started_at END AS started_at,
    CASE WHEN v.kind = 'start' THEN j.finished_at END AS finished_at
),
attempts AS (
    -- one modification of job_attempts per statement (CockroachDB refuses more): a claim
    -- opens its attempt, a final transition closes it (the row exists: the conflict branch)
    INSERT INTO job_attempts (job_id, dispatch_token, attempt, worker_id, started_at,
                              finished_at, outcome, error)
    SELECT c.id, c.token, c.attempt, $8, c.at,
           CASE WHEN c.kind = 'start' THEN NULL ELSE c.at END, c.outcome, c.error
    FROM changed AS c
    ON CONFLICT (job_id, dispatch_token) DO UPDATE SET
        finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome, error = EXCLUDED.error
    WHERE job_attempts.finished_at IS NULL AND EXCLUDED.outcome IS NOT NULL
)
SELECT c.kind, c.id, c.token, c.job_type, c.payload, c.attempt AS attempts, c.max_attempts,
    c.run_after, c.unique_key, c.last_error, c.result, c.created_at, c.started_at,
    c.finished_at
FROM changed AS c
"""

# (kind, at, result json, error, run_after, attempt outcome) per (row id, token)
_Write = tuple[str, datetime, str | None, str | None, datetime | None, str]
_RETRIES = 4
_UNSTORABLE = "the worker could not store this job's outcome"
_CONNECTION_ERRORS = (
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.ConnectionFailureError,
    OSError,
    TimeoutError,
)
# a flush is a few milliseconds; one that takes this long is stuck on a dead connection
_FLUSH_TIMEOUT = 10.0


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


class _Batch:
    __slots__ = ("starts", "writes")

    def __init__(self) -> None:
        self.starts: dict[tuple[UUID, str], tuple[datetime, asyncio.Future[Job | None]]] = {}
        self.writes: dict[tuple[UUID, str], _Write] = {}

    def size(self) -> int:
        return len(self.starts) + len(self.writes)

    def halves(self) -> tuple[_Batch, _Batch]:
        first, second = _Batch(), _Batch()
        middle = self.size() // 2
        for i, (key, start) in enumerate(self.starts.items()):
            (first if i < middle else second).starts[key] = start
        for i, (key, write) in enumerate(self.writes.items(), start=len(self.starts)):
            (first if i < middle else second).writes[key] = write
        return first, second


class MirrorBatcher:
    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        lease: timedelta = timedelta(seconds=10),
        flush_interval: float = 0.02,
        start_linger: float = 0.01,
        max_batch: int = 5000,
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.clock = clock
        self.lease = lease
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
        self._flushing: _Batch | None = None  # the batch being written now
        self.flushes = 0
        self.failing_since: float | None = None  # monotonic time of the first failed flush

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
        """``running`` (attempts + 1, lease taken): the claimed row, or None if the token no
        longer holds.

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

    def succeed(self, row_id: UUID, token: str, result_json: str) -> None:
        self._add(row_id, token, (SUCCEED, self.clock(), result_json, None, None, "succeeded"))

    def retry(
        self, row_id: UUID, token: str, error: str, run_after: datetime, *, timed_out: bool
    ) -> None:
        outcome = "timed_out" if timed_out else "retrying"
        self._add(row_id, token, (RETRY, self.clock(), None, error, run_after, outcome))

    def fail(self, row_id: UUID, token: str, error: str, *, timed_out: bool = False) -> None:
        outcome = "timed_out" if timed_out else "failed"
        self._add(row_id, token, (FAIL, self.clock(), None, error, None, outcome))

    def interrupt(
        self, row_id: UUID, token: str, reason: str, *, run_after: datetime | None = None
    ) -> None:
        """Back to ``retrying`` without counting the attempt (due at once, or at run_after)."""
        self._add(row_id, token, (INTERRUPT, self.clock(), None, reason, run_after, "interrupted"))

    def pending(self) -> int:
        return self._batch.size()

    def pending_attempts(self) -> list[tuple[UUID, str]]:
        """(row id, token) of every final transition not written yet: their attempts are
        finished but must keep their leases until the outcome is in the database."""
        writes = list(self._batch.writes)
        if self._flushing is not None:
            writes += list(self._flushing.writes)
        return writes

    async def drain(self) -> None:
        """Wait until everything handed over so far is written (for tests and shutdown)."""
        while self._batch.size() or self._wake.is_set() or self._inflight:
            self._signal(urgent=True)
            self._now.set()
            await asyncio.sleep(0.005)

    # -- internals -------------------------------------------------------------------------
    def _add(self, row_id: UUID, token: str, write: _Write) -> None:
        kind, at, result, error, run_after, outcome = write
        if error is not None:
            error = storable_text(error)
        self._batch.writes[(row_id, token)] = (kind, at, result, error, run_after, outcome)
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
            # a claim whose delivery was stopped while it waited is not written at all
            batch.starts = {k: v for k, v in batch.starts.items() if not v[1].cancelled()}
            self._first_at = self._first_claim_at = None
            self._wake.clear()
            self._urgent.clear()
            self._now.clear()
            if batch.size():
                self._inflight = True
                self._flushing = batch
                try:
                    ok = await self._flush(batch)
                except Exception as exc:  # the flusher must never die: claims would hang
                    log.exception("mirror: unexpected error while writing")
                    ok = self._unreachable(batch, exc)
                finally:
                    self._inflight = False
                    self._flushing = None
                if not ok:
                    if self.failing_since is None:
                        self.failing_since = time.monotonic()
                    self._requeue(batch)
                    # while closing, keep trying: close() bounds the time and cancels us
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                self.failing_since = None
                backoff = 0.1
            if self._closing and not self._batch.size():
                return

    def _requeue(self, batch: _Batch) -> None:
        """Keep the final transitions of a failed flush for the next one (claims already failed)."""
        for key, write in batch.writes.items():
            self._batch.writes.setdefault(key, write)
        if batch.writes:
            self._signal(urgent=False)

    async def _connection(self) -> asyncpg.pool.PoolConnectionProxy:
        if self._conn is None:
            self._conn = await self.db.pool.acquire(timeout=_FLUSH_TIMEOUT)
        return self._conn

    async def _discard_connection(self) -> None:
        """Close the kept connection for good (it may be half dead) and give it back."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()
        await self._release_connection()

    async def _release_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self.db.pool.release(conn)

    async def _execute(self, args: list[Any]) -> list[asyncpg.Record]:
        """Run FLUSH, retrying serialization failures. A connection that failed or hung is
        dropped (a new one is taken next time) and the failure raised as DatabaseError."""
        for attempt in range(1, _RETRIES + 1):
            try:
                conn = await self._connection()
                rows: list[asyncpg.Record] = await conn.fetch(FLUSH, *args, timeout=_FLUSH_TIMEOUT)
                return rows
            except Exception as exc:
                if isinstance(exc, _CONNECTION_ERRORS) or is_connection_failure(exc):
                    await self._discard_connection()
                    raise DatabaseError(
                        f"database unreachable: {exc or type(exc).__name__}"
                    ) from exc
                if not is_retryable(exc) or attempt == _RETRIES:
                    raise
            await asyncio.sleep(0.005 * 2**attempt)
        raise DatabaseError("unreachable")  # pragma: no cover

    def _arguments(self, batch: _Batch) -> list[Any]:
        columns: list[list[Any]] = [[] for _ in range(8)]
        for (row_id, token), (at, _) in batch.starts.items():
            for column, value in zip(
                columns, (row_id, token, START, at, None, None, None, None), strict=True
            ):
                column.append(value)
        for (row_id, token), (kind, at, result, error, run_after, outcome) in batch.writes.items():
            for column, value in zip(
                columns, (row_id, token, kind, at, result, error, run_after, outcome), strict=True
            ):
                column.append(value)
        ids, tokens, kinds, ats, results, errors, run_afters, outcomes = columns
        return [
            ids, tokens, kinds, ats, results, errors, run_afters, self.worker_id, self.lease,
            outcomes,
        ]  # fmt: skip

    async def _flush(self, batch: _Batch) -> bool:
        """Write one batch. False when the database could not be reached (the final
        transitions are kept for the next flush); a statement refused for any other reason
        is split until only the offending write fails, with a clear error on its row."""
        try:
            rows = await self._execute(self._arguments(batch))
        except DatabaseError as exc:
            return self._unreachable(batch, exc)
        except asyncpg.PostgresError as exc:
            if is_retryable(exc):
                return self._unreachable(batch, exc)
            return await self._split(batch, exc)
        self.flushes += 1
        metrics.MIRROR_BATCH.observe(batch.size())
        if not batch.starts:
            return True
        claimed: dict[tuple[UUID, str], Job] = {}
        for row in rows:
            if row["kind"] == START:
                claimed[(row["id"], row["token"])] = self._job(row)
        for key, (_, future) in batch.starts.items():
            if future.cancelled() and key in claimed:
                # its delivery was stopped (shutdown) while the claim was on the wire: give
                # the attempt back rather than leave the row running with nobody behind it
                self.interrupt(*key, "worker stopped before the job started; runs again")
            elif not future.done():
                future.set_result(claimed.get(key))
        return True

    def _unreachable(self, batch: _Batch, exc: BaseException) -> bool:
        metrics.MIRROR_FLUSH_ERRORS.inc()
        log.warning("mirror: writing %d transition(s) failed: %s", batch.size(), exc)
        failure = DatabaseError(f"mirror write failed: {exc}")
        for _, future in batch.starts.values():
            if not future.done():
                future.set_exception(failure)
        batch.starts = {}
        return False

    async def _split(self, batch: _Batch, exc: asyncpg.PostgresError) -> bool:
        metrics.MIRROR_FLUSH_ERRORS.inc()
        if batch.size() > 1:
            # a write that succeeded in one half and is written again after a failure in
            # the other is a no-op: every element is a compare-and-set
            first, second = batch.halves()
            ok_first = await self._flush(first)
            ok_second = await self._flush(second)
            return ok_first and ok_second
        for (row_id, _token), (_, future) in batch.starts.items():
            log.error("mirror: the claim of job %s was refused: %s", row_id, exc)
            if not future.done():
                future.set_exception(DatabaseError(f"claim refused: {exc}"))
        for (row_id, token), write in batch.writes.items():
            if write[0] == FAIL and write[3] is not None and write[3].startswith(_UNSTORABLE):
                log.error("mirror: job %s: even its failure could not be stored: %s", row_id, exc)
                continue
            log.error(
                "mirror: job %s: outcome %s refused by the database: %s", row_id, write[0], exc
            )
            error = f"{_UNSTORABLE}: {type(exc).__name__}: {exc}"[:4000]
            retry = _Batch()
            retry.writes[(row_id, token)] = (FAIL, write[1], None, error, None, "failed")
            return await self._flush(retry)
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
