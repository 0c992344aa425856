"""/api/v1/ingestions: start an ``ingest.financial`` job, and the ingestion log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from cesar_core.jobs.builtin import FinancialIngestPayload
from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from cesar_api.database import read
from cesar_api.deps import DbDep, QueueDep, ReadKey, WriteKey
from cesar_api.pagination import Page, decode_cursor, next_cursor
from cesar_api.repositories import ingestions as repo
from cesar_api.routes.jobs import JobOut
from cesar_api.schemas import Count, Cursor, Limit, StrictModel, Timestamp

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/ingestions", tags=["ingestions"])

INGEST_JOB = "ingest.financial"
IngestionStatus = Literal["running", "succeeded", "partial", "failed"]


class IngestionIn(StrictModel):
    payload: FinancialIngestPayload
    max_attempts: Annotated[Count, Field(ge=1, le=100)] | None = None
    run_after: Timestamp | None = None
    unique_key: str | None = Field(default=None, min_length=1, max_length=200)


class IngestionOut(BaseModel):
    id: UUID
    source: str
    job_id: UUID | None
    status: str
    rows_total: int
    rows_ok: int
    rows_failed: int
    errors: Any
    error_message: str | None
    details: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None
    created_at: datetime


class IngestionPage(Page):
    items: list[IngestionOut]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
async def start_ingestion(body: IngestionIn, queue: QueueDep, _key: WriteKey) -> JobOut:
    """Enqueue an ``ingest.financial`` job; its run appears in the log when the worker starts."""
    job = await queue.enqueue(
        INGEST_JOB,
        body.payload.model_dump(mode="json", exclude_unset=True),
        max_attempts=body.max_attempts,
        run_after=body.run_after,
        unique_key=body.unique_key,
    )
    return JobOut.of(job)


@router.get("", response_model=IngestionPage)
async def ingestion_log(
    db: DbDep,
    _key: ReadKey,
    source: Annotated[str | None, Query(max_length=100)] = None,
    status: IngestionStatus | None = None,
    since: Annotated[Timestamp | None, Query(description="started_at >= since")] = None,
    job_id: UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> IngestionPage:
    """Ingestion runs, newest first."""
    before = decode_cursor(cursor)
    rows = await read(
        db,
        lambda conn: repo.list_log(
            conn,
            source=source,
            status=status,
            since=since,
            job_id=job_id,
            before=before,
            limit=limit,
        ),
    )
    return IngestionPage(
        items=[IngestionOut.model_validate(r) for r in rows], next_cursor=next_cursor(rows, limit)
    )
