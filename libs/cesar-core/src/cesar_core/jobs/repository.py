"""The SQL of the job system. Every function takes a connection; the caller owns the
transaction. Timestamps come from the caller's clock (injectable in tests), never ``now()``, except for
leases: they are judged by the database's clock alone, so no host's clock can make a live
attempt look dead.

Every update a worker or dispatcher makes is conditioned on the row's ``dispatch_token``: a
stale holder (one whose job was re-dispatched, cancelled or retried) changes nothing.
The statements use ``unnest`` over parallel arrays so one round trip covers a whole batch;
that form (and ``UPDATE ... FROM``) works on PostgreSQL and CockroachDB alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from cesar_core.jobs.models import JOB_COLUMNS, Job

__all__ = [
    "Claim",
    "Dispatch",
    "cancel_job",
    "claim_due",
    "claim_expired",
    "count_active",
    "find_active_by_unique_key",
    "get_job",
    "insert_job",
    "insert_jobs",
    "list_attempts",
    "list_jobs",
    "mark_queued",
    "prune_finished",
    "queued_page",
    "recent_failures",
    "release_claims",
    "release_dispatch",
    "renew_leases",
    "requeue_lost",
    "retry_job",
    "tick_lease_clock",
]

Dispatch = tuple[UUID, str, str]  # (row id, dispatch token, job type)


class Claim(NamedTuple):
    """A row the reconciler claimed: already ``queued`` under ``token``; ``previous_status``
    is what a failed push restores."""

    id: UUID
    token: str
    previous_status: str


_ACTIVE = "('pending', 'queued', 'running', 'retrying')"

INSERT_JOB = f"""
INSERT INTO job_queue (job_type, payload, status, max_attempts, run_after, unique_key,
                       dispatch_token, created_at, updated_at)
VALUES ($1, CAST($2 AS JSONB), 'pending', $3, $4, $5, $6, $7, $7)
ON CONFLICT (unique_key) WHERE status IN {_ACTIVE} AND unique_key IS NOT NULL DO NOTHING
RETURNING {JOB_COLUMNS}
"""

INSERT_JOBS = f"""
INSERT INTO job_queue (job_type, payload, status, max_attempts, run_after, dispatch_token,
                       created_at, updated_at)
SELECT v.job_type, CAST(v.payload AS JSONB), 'pending', v.max_attempts, v.run_after, v.token,
       $6, $6
FROM unnest($1::TEXT[], $2::TEXT[], $3::INT8[], $4::TIMESTAMPTZ[], $5::TEXT[])
     AS v(job_type, payload, max_attempts, run_after, token)
RETURNING {JOB_COLUMNS}
"""

SELECT_ACTIVE_BY_KEY = f"""
SELECT {JOB_COLUMNS} FROM job_queue
WHERE unique_key = $1 AND status IN {_ACTIVE}
"""

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM job_queue WHERE id = $1"

# One page of a listing ($1 status, $2 job_type, $3/$4 created range, $5 search, $6/$7 the
# cursor, $8 the page size): shared by LIST_JOBS and the JSON listing (jobs.listing).
LIST_PAGE = """
WHERE ($1::TEXT IS NULL OR status = $1)
  AND ($2::TEXT IS NULL OR job_type = $2)
  AND ($3::TIMESTAMPTZ IS NULL OR created_at >= $3)
  AND ($4::TIMESTAMPTZ IS NULL OR created_at < $4)
  AND ($5::TEXT IS NULL
       OR left(CAST(id AS TEXT), length($5)) = lower($5)
       OR strpos(lower(CAST(payload AS TEXT)), lower($5)) > 0)
  AND ($6::TIMESTAMPTZ IS NULL OR (created_at, id) < ($6, $7::UUID))
ORDER BY created_at DESC, id DESC
LIMIT $8
"""

LIST_JOBS = f"SELECT {JOB_COLUMNS} FROM job_queue {LIST_PAGE}"

# Dispatch step 3: the row is in arq; pending/retrying -> queued (if the token still holds).
MARK_QUEUED = """
UPDATE job_queue AS j SET status = 'queued', updated_at = $3
FROM unnest($1::UUID[], $2::TEXT[]) AS v(id, token)
WHERE j.id = v.id AND j.dispatch_token = v.token AND j.status IN ('pending', 'retrying')
"""

# The push to Redis failed: forget the token so the next reconciler pass tries again.
RELEASE_DISPATCH = """
UPDATE job_queue AS j SET dispatch_token = NULL
FROM unnest($1::UUID[], $2::TEXT[]) AS v(id, token)
WHERE j.id = v.id AND j.dispatch_token = v.token AND j.status IN ('pending', 'retrying')
"""

CANCEL_JOB = f"""
UPDATE job_queue SET status = 'cancelled', dispatch_token = NULL, finished_at = $2,
                     updated_at = $2, lease_expires_at = NULL
WHERE id = $1 AND status IN {_ACTIVE}
RETURNING {JOB_COLUMNS}
"""

RETRY_JOB = f"""
UPDATE job_queue SET status = 'pending', attempts = 0, dispatch_token = $2, run_after = $3,
                     updated_at = $3, last_error = NULL, result = NULL, finished_at = NULL,
                     started_at = NULL, heartbeat_at = NULL, worker_id = NULL
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING {JOB_COLUMNS}
"""

# Reconciler: due pending/retrying rows that nobody is dispatching, claimed and marked
# `queued` in one statement (one row version instead of two: at scale the second update cost
# as much as the claim). A pending row with a token is being dispatched by its enqueuer; it is
# taken over only after the grace period (the enqueuer crashed between the two writes). A
# claimer that dies before its push leaves `queued` rows arq does not hold: the lost-row walk
# returns them to `pending` after the grace period. The previous status comes back so that a
# failed push can restore it (RELEASE_CLAIMS).
CLAIM_DUE = """
UPDATE job_queue AS j SET status = 'queued', dispatch_token = CAST(gen_random_uuid() AS TEXT),
                          updated_at = $1
FROM (
    SELECT id, status FROM job_queue
    WHERE status IN ('pending', 'retrying') AND run_after <= $1
      AND (dispatch_token IS NULL OR updated_at <= $2)
    ORDER BY run_after
    LIMIT $3
    FOR UPDATE SKIP LOCKED
) AS due
WHERE j.id = due.id
RETURNING j.id, j.dispatch_token, due.status AS previous_status
"""

# The push of claimed rows to Redis failed: back to the status they had, token forgotten, so
# the next pass claims them again (only while still queued under that token).
RELEASE_CLAIMS = """
UPDATE job_queue AS j SET status = v.previous, dispatch_token = NULL
FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[]) AS v(id, token, previous)
WHERE j.id = v.id AND j.dispatch_token = v.token AND j.status = 'queued'
"""

# Reconciler: running rows whose lease expired by the database's clock (the owner stopped
# renewing). The lost attempt counts; with attempts left the row goes back to retrying (due
# now), otherwise it fails. Rows claimed before leases existed fall back to heartbeat_at.
# The old token comes back so the attempt's row in job_attempts can be closed as `lost`.
CLAIM_EXPIRED = """
UPDATE job_queue AS j SET
    status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'retrying' END,
    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN CAST($1 AS TIMESTAMPTZ) ELSE NULL END,
    last_error = 'worker ' || COALESCE(j.worker_id, 'unknown')
                 || ' stopped renewing its lease during the attempt (killed, stalled or cut off)',
    dispatch_token = NULL, lease_expires_at = NULL, run_after = $1, updated_at = $1
FROM (
    SELECT id, dispatch_token FROM job_queue
    WHERE status = 'running'
      AND (lease_expires_at < now()
           OR (lease_expires_at IS NULL AND heartbeat_at < now() - $3::INTERVAL))
    ORDER BY lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) AS s
WHERE j.id = s.id AND j.status = 'running'
RETURNING j.id, j.status, j.job_type, s.dispatch_token AS old_token, j.last_error
"""

# The renewal: one statement per worker and period for all its running attempts. What comes
# back is what the worker still owns; an attempt missing from the answer was taken over or
# cancelled, and the worker cancels it locally (self-fencing).
RENEW_LEASES = """
UPDATE job_queue AS j SET heartbeat_at = now(), lease_expires_at = now() + $3::INTERVAL
FROM unnest($1::UUID[], $2::TEXT[]) AS v(id, token)
WHERE j.id = v.id AND j.dispatch_token = v.token AND j.status = 'running'
RETURNING j.id, v.token
"""

# Every reconciler pass ticks the shared clock; a gap longer than $1 between two ticks means
# nobody could reach the database, so live workers get a full lease to renew before any
# takeover. Answers for how long the database has been reachable without a gap.
TICK_LEASE_CLOCK = """
INSERT INTO job_lease_clock (id, last_tick_at, reachable_since) VALUES (1, now(), now())
ON CONFLICT (id) DO UPDATE SET
    reachable_since = CASE WHEN job_lease_clock.last_tick_at < now() - $1::INTERVAL
                           THEN now() ELSE job_lease_clock.reachable_since END,
    last_tick_at = now()
RETURNING CAST(EXTRACT(EPOCH FROM (now() - reachable_since)) AS FLOAT8) AS reachable_for
"""

CLOSE_ATTEMPTS = """
UPDATE job_attempts AS a SET finished_at = $4, outcome = $5, error = v.error
FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[]) AS v(id, token, error)
WHERE a.job_id = v.id AND a.dispatch_token = v.token AND a.finished_at IS NULL
"""

CANCEL_ATTEMPTS = """
UPDATE job_attempts SET finished_at = $2, outcome = 'cancelled', error = 'cancelled'
WHERE job_id = $1 AND finished_at IS NULL
"""

SELECT_ATTEMPTS = """
SELECT job_id, attempt, dispatch_token, worker_id, started_at, finished_at, outcome, error
FROM job_attempts WHERE job_id = $1
ORDER BY started_at, attempt, dispatch_token
"""

# Lost-job detection walks every queued row across passes, in (updated_at, id) order.
LOST_FIRST_PAGE = """
SELECT id, dispatch_token, job_type, updated_at FROM job_queue
WHERE status = 'queued' AND updated_at <= $1
ORDER BY updated_at, id
LIMIT $2
"""

LOST_NEXT_PAGE = """
SELECT id, dispatch_token, job_type, updated_at FROM job_queue
WHERE status = 'queued' AND updated_at <= $1 AND (updated_at, id) > ($3, $4::UUID)
ORDER BY updated_at, id
LIMIT $2
"""

# Retention: finished jobs older than the cutoff, and their attempts, in batches.
# `= ANY(ARRAY(...))`, not `IN (SELECT ...)`: with IN, PostgreSQL joined the batch against a
# sequential scan of the whole table (15.7 ms per batch of 1,000 at 100,000 rows, growing with
# the table); with an array it looks the batch up in the primary key (3.0 ms).
PRUNE_FINISHED_JOBS = """
DELETE FROM job_queue WHERE id = ANY(ARRAY(
    SELECT id FROM job_queue
    WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
    LIMIT $2
))
RETURNING id
"""

PRUNE_ATTEMPTS = """
DELETE FROM job_attempts WHERE job_id = ANY($1::UUID[])
"""

PRUNE_OLD_ATTEMPTS = """
DELETE FROM job_attempts WHERE finished_at < $1 AND job_id = ANY(ARRAY(
    SELECT job_id FROM job_attempts WHERE finished_at < $1 LIMIT $2
))
"""

REQUEUE_LOST = """
UPDATE job_queue AS j SET status = 'pending', dispatch_token = NULL, updated_at = $3
FROM unnest($1::UUID[], $2::TEXT[]) AS v(id, token)
WHERE j.id = v.id AND j.dispatch_token = v.token AND j.status = 'queued'
RETURNING j.id
"""

COUNT_ACTIVE = f"""
SELECT status, COUNT(*) AS n FROM job_queue WHERE status IN {_ACTIVE} GROUP BY status
"""

RECENT_FAILURES = """
SELECT id, job_type, last_error, finished_at FROM job_queue
WHERE status = 'failed' AND finished_at >= $1
ORDER BY finished_at DESC
LIMIT $2
"""

COUNT_RECENT_FAILURES = """
SELECT COUNT(*) FROM job_queue WHERE status = 'failed' AND finished_at >= $1
"""


async def insert_job(
    conn: asyncpg.Connection,
    *,
    job_type: str,
    payload_json: str,
    max_attempts: int,
    run_after: datetime,
    unique_key: str | None,
    token: str | None,
    now: datetime,
) -> Job | None:
    """The new row, or None when an active job already holds ``unique_key``."""
    row = await conn.fetchrow(
        INSERT_JOB, job_type, payload_json, max_attempts, run_after, unique_key, token, now
    )
    return Job.from_row(row) if row is not None else None


async def insert_jobs(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[str, str, int, datetime, str | None]],
    *,
    now: datetime,
) -> list[Job]:
    """Many rows in one statement: (job_type, payload_json, max_attempts, run_after, token)."""
    columns: list[list[Any]] = [[], [], [], [], []]
    for row in rows:
        for i, value in enumerate(row):
            columns[i].append(value)
    records = await conn.fetch(INSERT_JOBS, *columns, now)
    return [Job.from_row(r) for r in records]


async def find_active_by_unique_key(conn: asyncpg.Connection, unique_key: str) -> Job | None:
    row = await conn.fetchrow(SELECT_ACTIVE_BY_KEY, unique_key)
    return Job.from_row(row) if row is not None else None


async def get_job(conn: asyncpg.Connection, job_id: UUID) -> Job | None:
    row = await conn.fetchrow(SELECT_JOB, job_id)
    return Job.from_row(row) if row is not None else None


def page_args(
    status: str | None,
    job_type: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    search: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[object, ...]:
    """The eight parameters of :data:`LIST_PAGE`, in its order."""
    cursor_at, cursor_id = before if before else (None, None)
    return (status, job_type, created_after, created_before, search, cursor_at, cursor_id, limit)


async def list_jobs(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    job_type: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    search: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Job]:
    rows = await conn.fetch(
        LIST_JOBS,
        *page_args(status, job_type, created_after, created_before, search, before, limit),
    )
    return [Job.from_row(r) for r in rows]


async def mark_queued(
    conn: asyncpg.Connection, dispatches: Sequence[Dispatch], now: datetime
) -> None:
    if dispatches:
        await conn.execute(MARK_QUEUED, [d[0] for d in dispatches], [d[1] for d in dispatches], now)


async def release_dispatch(conn: asyncpg.Connection, dispatches: Sequence[Dispatch]) -> None:
    if dispatches:
        await conn.execute(RELEASE_DISPATCH, [d[0] for d in dispatches], [d[1] for d in dispatches])


async def cancel_job(conn: asyncpg.Connection, job_id: UUID, now: datetime) -> Job | None:
    row = await conn.fetchrow(CANCEL_JOB, job_id, now)
    if row is None:
        return None
    await conn.execute(CANCEL_ATTEMPTS, job_id, now)
    return Job.from_row(row)


async def retry_job(
    conn: asyncpg.Connection, job_id: UUID, token: str, now: datetime
) -> Job | None:
    row = await conn.fetchrow(RETRY_JOB, job_id, token, now)
    return Job.from_row(row) if row is not None else None


async def claim_due(
    conn: asyncpg.Connection, *, now: datetime, taken_before: datetime, limit: int
) -> list[Claim]:
    """Due rows nobody dispatches, now ``queued`` under a fresh token each (see CLAIM_DUE)."""
    rows = await conn.fetch(CLAIM_DUE, now, taken_before, limit)
    return [Claim(r["id"], r["dispatch_token"], r["previous_status"]) for r in rows]


async def release_claims(conn: asyncpg.Connection, claims: Sequence[Claim]) -> None:
    if claims:
        await conn.execute(
            RELEASE_CLAIMS,
            [c.id for c in claims],
            [c.token for c in claims],
            [c.previous_status for c in claims],
        )


async def claim_expired(
    conn: asyncpg.Connection, *, now: datetime, lease: timedelta, limit: int
) -> list[tuple[UUID, str, str]]:
    """(id, new status, job type) of every running row whose lease expired, taken back; the
    attempts they were running are closed as ``lost``."""
    rows = await conn.fetch(CLAIM_EXPIRED, now, limit, lease)
    if rows:
        await conn.execute(
            CLOSE_ATTEMPTS,
            [r["id"] for r in rows],
            [r["old_token"] for r in rows],
            [r["last_error"] for r in rows],
            now,
            "lost",
        )
    return [(r["id"], r["status"], r["job_type"]) for r in rows]


async def renew_leases(
    conn: asyncpg.Connection, attempts: Sequence[tuple[UUID, str]], lease: timedelta
) -> set[tuple[UUID, str]]:
    """Extend the leases of ``attempts`` (id, token); returns those the caller still owns."""
    if not attempts:
        return set()
    rows = await conn.fetch(RENEW_LEASES, [a[0] for a in attempts], [a[1] for a in attempts], lease)
    return {(r["id"], r["token"]) for r in rows}


async def tick_lease_clock(conn: asyncpg.Connection, *, outage_gap: timedelta) -> float:
    """Seconds the database has been reachable without a gap (see :data:`TICK_LEASE_CLOCK`)."""
    return float(await conn.fetchval(TICK_LEASE_CLOCK, outage_gap))


async def list_attempts(conn: asyncpg.Connection, job_id: UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(SELECT_ATTEMPTS, job_id)]


async def queued_page(
    conn: asyncpg.Connection,
    *,
    queued_before: datetime,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[tuple[UUID, str, str, datetime]]:
    """The next page of queued rows after ``after`` (id, token, type, updated_at)."""
    if after is None:
        rows = await conn.fetch(LOST_FIRST_PAGE, queued_before, limit)
    else:
        rows = await conn.fetch(LOST_NEXT_PAGE, queued_before, limit, after[0], after[1])
    return [(r["id"], r["dispatch_token"], r["job_type"], r["updated_at"]) for r in rows]


async def prune_finished(conn: asyncpg.Connection, *, finished_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished jobs older than the cutoff, with their attempts."""
    ids = [r["id"] for r in await conn.fetch(PRUNE_FINISHED_JOBS, finished_before, limit)]
    if ids:
        await conn.execute(PRUNE_ATTEMPTS, ids)
    status = await conn.execute(PRUNE_OLD_ATTEMPTS, finished_before, limit)
    return len(ids) + int(status.split()[-1])


async def requeue_lost(
    conn: asyncpg.Connection, lost: Sequence[Dispatch], now: datetime
) -> list[UUID]:
    if not lost:
        return []
    rows = await conn.fetch(REQUEUE_LOST, [d[0] for d in lost], [d[1] for d in lost], now)
    return [r["id"] for r in rows]


async def count_active(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["status"]: int(r["n"]) for r in await conn.fetch(COUNT_ACTIVE)}


async def recent_failures(
    conn: asyncpg.Connection, *, since: datetime, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    count = int(await conn.fetchval(COUNT_RECENT_FAILURES, since))
    rows = await conn.fetch(RECENT_FAILURES, since, limit)
    return count, [dict(r) for r in rows]
