"""What a job is: the ``job_queue`` row as a model, and its states."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "JOB_COLUMNS", "Job", "JobStatus"]


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)
ACTIVE_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING}
)

# The column list every query that returns a job selects (never SELECT *).
JOB_COLUMNS = (
    "id, job_type, payload, status, attempts, max_attempts, run_after, unique_key, "
    "dispatch_token, last_error, result, worker_id, heartbeat_at, created_at, started_at, "
    "updated_at, finished_at"
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


class Job(BaseModel):
    """One ``job_queue`` row."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    job_type: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    run_after: datetime
    unique_key: str | None = None
    dispatch_token: str | None = None
    last_error: str | None = None
    result: Any = None
    worker_id: str | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime
    finished_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """From an asyncpg Record (or any mapping) of :data:`JOB_COLUMNS`."""
        data = dict(row)
        data["payload"] = _json(data["payload"]) or {}
        data["result"] = _json(data["result"])
        return cls.model_validate(data)
