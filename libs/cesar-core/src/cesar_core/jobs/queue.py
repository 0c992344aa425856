"""The job queue as the rest of the system sees it: enqueue, get, list, cancel, retry.

Enqueue writes the row first (``pending``, with a fresh dispatch token when it is due), then
pushes the arq job ``<id>:<token>``, then marks the row ``queued`` if that token still holds.
When Redis is down the row stays ``pending`` and the worker's reconciler dispatches it later;
nothing is lost and the caller gets no error. Jobs due later stay ``pending`` in the database
(no arq job) until the reconciler finds them due. Once the row is stored and pushed, the
caller gets its job even if the last write (``queued``) fails: the row then stays ``pending``
with its token, which the worker's claim accepts, so a client never retries a job that runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from cesar_core.db import Database
from cesar_core.errors import (
    DatabaseError,
    InvalidJobState,
    InvalidPayload,
    JobNotFound,
    RedisUnavailable,
)
from cesar_core.jobs import repository as repo
from cesar_core.jobs.dispatch import new_token, push_jobs
from cesar_core.jobs.models import Job, JobStatus
from cesar_core.jobs.registry import JobRegistry
from cesar_core.jobs.settings import JobSettings
from cesar_core.redis import RedisClient

__all__ = ["Clock", "JobQueue", "utcnow"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]
MAX_LIST_LIMIT = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobQueue:
    def __init__(
        self,
        db: Database,
        redis: RedisClient,
        settings: JobSettings,
        registry: JobRegistry,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.redis = redis
        self.settings = settings
        self.registry = registry
        self.clock = clock

    @property
    def queue_name(self) -> str:
        return self.settings.job_queue_name

    async def _tx(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        try:
            return await self.db.transaction(work)
        except asyncpg.PostgresError as exc:
            raise DatabaseError(f"job queue: {exc}") from exc

    async def enqueue(
        self,
        job_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        max_attempts: int | None = None,
        run_after: datetime | None = None,
        unique_key: str | None = None,
    ) -> Job:
        """Validate, write the row, dispatch it when due. Same active unique_key -> that job."""
        body = json.dumps(self.registry.validate(job_type, payload))
        attempts = self._max_attempts(max_attempts)
        now = self.clock()
        when = _aware(run_after) if run_after is not None else now
        due = when <= now
        token = new_token() if due else None
        if unique_key is not None and not unique_key.strip():
            unique_key = None

        async def write(conn: asyncpg.Connection) -> tuple[Job, bool]:
            job = await repo.insert_job(
                conn,
                job_type=job_type,
                payload_json=body,
                max_attempts=attempts,
                run_after=when,
                unique_key=unique_key,
                token=token,
                now=now,
            )
            if job is not None:
                return job, True
            assert unique_key is not None
            existing = await repo.find_active_by_unique_key(conn, unique_key)
            if existing is None:  # finished in between; the serializable retry sorts it out
                raise InvalidJobState(f"unique_key {unique_key!r} is changing state; try again")
            return existing, False

        job, created = await self._tx(write)
        if not created or token is None:
            return job
        if await self._dispatch([(job.id, token, job.job_type)]):
            return job.model_copy(update={"status": JobStatus.QUEUED})
        return job

    async def enqueue_many(
        self,
        job_type: str,
        payloads: Sequence[Mapping[str, Any] | None],
        *,
        max_attempts: int | None = None,
        run_after: datetime | None = None,
    ) -> list[Job]:
        """Many jobs of one type in one insert and one Redis pipeline (no unique keys)."""
        bodies = [json.dumps(self.registry.validate(job_type, p)) for p in payloads]
        if not bodies:
            return []
        attempts = self._max_attempts(max_attempts)
        now = self.clock()
        when = _aware(run_after) if run_after is not None else now
        due = when <= now
        rows = [(job_type, b, attempts, when, new_token() if due else None) for b in bodies]

        async def write(conn: asyncpg.Connection) -> list[Job]:
            return await repo.insert_jobs(conn, rows, now=now)

        jobs = await self._tx(write)
        if due and await self._dispatch(
            [(j.id, j.dispatch_token, j.job_type) for j in jobs if j.dispatch_token]
        ):
            return [j.model_copy(update={"status": JobStatus.QUEUED}) for j in jobs]
        return jobs

    async def get(self, job_id: UUID) -> Job:
        async with self.db.connection() as conn:
            job = await repo.get_job(conn, job_id)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job

    async def attempts(self, job_id: UUID) -> list[dict[str, Any]]:
        """The job's attempts, oldest first (``job_attempts``)."""
        async with self.db.connection() as conn:
            if await repo.get_job(conn, job_id) is None:
                raise JobNotFound(f"no job with id {job_id}")
            return await repo.list_attempts(conn, job_id)

    async def list(
        self,
        *,
        status: JobStatus | str | None = None,
        job_type: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        search: str | None = None,
        limit: int = 50,
        before: tuple[datetime, UUID] | None = None,
    ) -> list[Job]:
        """Newest first; ``before`` is the (created_at, id) of the last row already seen."""
        if status is not None:
            status = JobStatus(status)
        limit = max(1, min(limit, MAX_LIST_LIMIT))
        async with self.db.connection() as conn:
            return await repo.list_jobs(
                conn,
                status=str(status) if status is not None else None,
                job_type=job_type,
                created_after=created_after,
                created_before=created_before,
                search=search or None,
                before=before,
                limit=limit,
            )

    async def cancel(self, job_id: UUID) -> Job:
        """Any active job -> cancelled. A worker still running it can no longer change it."""
        now = self.clock()

        async def write(conn: asyncpg.Connection) -> Job | None:
            return await repo.cancel_job(conn, job_id, now)

        job = await self._tx(write)
        if job is None:
            current = await self.get(job_id)
            raise InvalidJobState(f"job {job_id} is already {current.status}; cannot cancel it")
        return job

    async def retry(self, job_id: UUID) -> Job:
        """A failed or cancelled job starts afresh (attempts reset) and is dispatched."""
        now = self.clock()
        token = new_token()

        async def write(conn: asyncpg.Connection) -> Job | None:
            return await repo.retry_job(conn, job_id, token, now)

        try:
            job = await self._tx(write)
        except DatabaseError as exc:
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                raise InvalidJobState(
                    f"job {job_id}: another active job holds the same unique_key"
                ) from exc
            raise
        if job is None:
            current = await self.get(job_id)
            raise InvalidJobState(
                f"job {job_id} is {current.status}; only failed or cancelled jobs can be retried"
            )
        if await self._dispatch([(job.id, token, job.job_type)]):
            return job.model_copy(update={"status": JobStatus.QUEUED})
        return job

    async def push_claimed(self, claims: Sequence[repo.Claim]) -> bool:
        """Push rows the reconciler claimed (already ``queued``) to arq; when Redis refuses,
        give them back their previous status so the next pass claims them again."""
        try:
            await push_jobs(self.redis, self.queue_name, [(c.id, c.token) for c in claims])
        except RedisUnavailable as exc:
            log.warning("Redis unavailable; %d claimed job(s) released: %s", len(claims), exc)
            try:
                await self.db.transaction(lambda conn: repo.release_claims(conn, claims))
            except (DatabaseError, asyncpg.PostgresError) as db_exc:
                # queued rows arq does not hold: the lost-row walk returns them after the grace
                log.warning("could not release claimed jobs: %s", db_exc)
            return False
        return True

    async def _dispatch(self, dispatches: Sequence[repo.Dispatch]) -> bool:
        if not dispatches:
            return True
        try:
            await push_jobs(self.redis, self.queue_name, [(d[0], d[1]) for d in dispatches])
        except RedisUnavailable as exc:
            log.warning(
                "Redis unavailable; %d job(s) stay pending for the reconciler: %s",
                len(dispatches),
                exc,
            )
            try:
                await self.db.transaction(lambda conn: repo.release_dispatch(conn, dispatches))
            except (DatabaseError, asyncpg.PostgresError) as db_exc:
                log.warning("could not release dispatch tokens (grace period applies): %s", db_exc)
            return False
        now = self.clock()
        try:
            await self._tx(lambda conn: repo.mark_queued(conn, dispatches, now))
        except DatabaseError as exc:
            # The jobs are stored and in arq: the worker's claim accepts a pending row with
            # its token, so failing here would only make the caller enqueue a second copy.
            log.warning(
                "%d job(s) dispatched but not marked queued (they run all the same): %s",
                len(dispatches),
                exc,
            )
        return True

    def _max_attempts(self, max_attempts: int | None) -> int:
        value = self.settings.job_queue_max_attempts if max_attempts is None else max_attempts
        if not 1 <= value <= 100:
            raise InvalidPayload(f"max_attempts must be between 1 and 100, got {value}")
        return value


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
