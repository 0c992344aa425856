"""/api/v1/jobs: enqueue, list/filter, get, attempts, retry, cancel (the job system's public
interface)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from cesar_core.jobs import Job, JobStatus
from cesar_core.jobs.listing import JobPageJson, list_jobs_json_bounded
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from cesar_api.database import read
from cesar_api.deps import QueueDep, ReadKey, ResourcesDep, WriteKey
from cesar_api.errors import Unauthorized
from cesar_api.pagination import Page, decode_cursor, encode_cursor
from cesar_api.schemas import Count, Cursor, Limit, Name, StrictModel, Timestamp

__all__ = ["JobOut", "router"]

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobIn(StrictModel):
    job_type: Name = Field(description="a registered job type, e.g. maintenance.noop")
    payload: dict[str, Any] = Field(default_factory=dict)
    max_attempts: Annotated[Count, Field(ge=1, le=100)] | None = None
    run_after: Timestamp | None = Field(default=None, description="not before (with zone)")
    unique_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="while a job with this key is active, enqueue returns that job",
    )


class JobOut(BaseModel):
    id: UUID
    job_type: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    run_after: datetime
    unique_key: str | None
    last_error: str | None
    result: Any
    worker_id: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate(job.model_dump())


class JobPage(Page):
    items: list[JobOut]


class AttemptOut(BaseModel):
    """One attempt of a job (``job_attempts``): who ran it, when, and how it ended."""

    attempt: int
    worker_id: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: (
        Literal["succeeded", "failed", "retrying", "timed_out", "interrupted", "lost", "cancelled"]
        | None
    ) = Field(description="null while the attempt runs")
    error: str | None


class AttemptList(BaseModel):
    job_id: UUID
    items: list[AttemptOut]


def page_body(page: JobPageJson, limit: int) -> bytes:
    """The ``JobPage`` document around the database-built items (the hot listing path: no
    models, no decoding; the schema stays ``JobPage``, checked by the tests)."""
    more = page.count >= limit or page.truncated
    cursor = encode_cursor(*page.last) if page.last is not None and more else None
    return (
        b'{"items":' + page.items_array() + b',"next_cursor":' + json.dumps(cursor).encode() + b"}"
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut)
async def enqueue_job(body: JobIn, queue: QueueDep, _key: WriteKey) -> JobOut:
    """Validate the payload against the job type, store the job and dispatch it.

    With a ``unique_key`` that an active job already holds, that job is returned."""
    job = await queue.enqueue(
        body.job_type,
        body.payload,
        max_attempts=body.max_attempts,
        run_after=body.run_after,
        unique_key=body.unique_key,
    )
    return JobOut.of(job)


@router.get("", response_model=JobPage)
async def list_jobs(
    resources: ResourcesDep,
    key: ReadKey,
    status: JobStatus | None = None,
    job_type: Annotated[str | None, Query(max_length=200)] = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    search: Annotated[
        str | None,
        Query(
            max_length=200,
            description="id prefix or text in the payload (needs an API key: it reads every "
            "payload)",
        ),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Jobs, newest first. A page stops early (with a ``next_cursor``) before its items pass
    ``API_MAX_PAGE_BYTES``."""
    if search and key is None:
        # a payload search reads every row's payload (no index can serve a substring match):
        # only callers with a key may spend that much of the database
        raise Unauthorized(
            "search reads every job payload and needs an API key: Authorization: Bearer <key>"
        )
    before = decode_cursor(cursor)

    async def work(conn: asyncpg.Connection) -> JobPageJson:
        return await list_jobs_json_bounded(
            conn,
            status=str(status) if status is not None else None,
            job_type=job_type,
            created_after=created_after,
            created_before=created_before,
            search=search or None,
            before=before,
            limit=limit,
            max_bytes=resources.settings.max_page_bytes,
        )

    page = await read(resources.db(), work)
    return Response(page_body(page, limit), media_type="application/json")


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: UUID, queue: QueueDep, _key: ReadKey) -> JobOut:
    return JobOut.of(await queue.get(job_id))


@router.get("/{job_id}/attempts", response_model=AttemptList)
async def list_attempts(job_id: UUID, queue: QueueDep, _key: ReadKey) -> AttemptList:
    """Every attempt of the job, oldest first; 404 for an unknown job."""
    rows = await queue.attempts(job_id)
    return AttemptList(job_id=job_id, items=[AttemptOut.model_validate(r) for r in rows])


@router.post("/{job_id}/retry", response_model=JobOut)
async def retry_job(job_id: UUID, queue: QueueDep, _key: WriteKey) -> JobOut:
    """A failed or cancelled job starts again (attempts reset); 409 in any other state."""
    return JobOut.of(await queue.retry(job_id))


@router.post("/{job_id}/cancel", response_model=JobOut)
async def cancel_job(job_id: UUID, queue: QueueDep, _key: WriteKey) -> JobOut:
    """An active job becomes cancelled; 409 when it is already finished."""
    return JobOut.of(await queue.cancel(job_id))
