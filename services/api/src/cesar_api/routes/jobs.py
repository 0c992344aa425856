"""/api/v1/jobs: enqueue, list/filter, get, retry, cancel (the job system's public interface)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from cesar_core.jobs import Job, JobStatus
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field, TypeAdapter

from cesar_api.deps import QueueDep, ReadKey, WriteKey
from cesar_api.pagination import Page, decode_cursor, next_cursor
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


_JOB_LIST = TypeAdapter(list[Job])
_HIDDEN = {"__all__": {"dispatch_token"}}


def _page_response(jobs: list[Job], cursor: str | None) -> Response:
    """The hot listing path: the validated Job models straight to JSON, in one pass."""
    items = _JOB_LIST.dump_json(jobs, exclude=_HIDDEN)
    body = b'{"items":' + items + b',"next_cursor":' + json.dumps(cursor).encode() + b"}"
    return Response(body, media_type="application/json")


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
    queue: QueueDep,
    _key: ReadKey,
    status: JobStatus | None = None,
    job_type: Annotated[str | None, Query(max_length=200)] = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    search: Annotated[
        str | None, Query(max_length=200, description="id prefix or text in the payload")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Jobs, newest first."""
    jobs = await queue.list(
        status=status,
        job_type=job_type,
        created_after=created_after,
        created_before=created_before,
        search=search,
        limit=limit,
        before=decode_cursor(cursor),
    )
    return _page_response(jobs, next_cursor(jobs, limit))


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: UUID, queue: QueueDep, _key: ReadKey) -> JobOut:
    return JobOut.of(await queue.get(job_id))


@router.post("/{job_id}/retry", response_model=JobOut)
async def retry_job(job_id: UUID, queue: QueueDep, _key: WriteKey) -> JobOut:
    """A failed or cancelled job starts again (attempts reset); 409 in any other state."""
    return JobOut.of(await queue.retry(job_id))


@router.post("/{job_id}/cancel", response_model=JobOut)
async def cancel_job(job_id: UUID, queue: QueueDep, _key: WriteKey) -> JobOut:
    """An active job becomes cancelled; 409 when it is already finished."""
    return JobOut.of(await queue.cancel(job_id))
