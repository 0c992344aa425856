"""The job system's settings (shared by the API that enqueues and the worker that runs)."""

from __future__ import annotations

from pydantic import Field

from cesar_core.settings import CoreSettings

__all__ = ["JobSettings"]


class JobSettings(CoreSettings):
    """``JOB_QUEUE_*`` variables. Services subclass this (the worker adds its own)."""

    job_queue_poll_interval: float = Field(
        default=2.0, gt=0, le=300, validation_alias="JOB_QUEUE_POLL_INTERVAL"
    )
    job_queue_max_attempts: int = Field(
        default=5, ge=1, le=100, validation_alias="JOB_QUEUE_MAX_ATTEMPTS"
    )
    job_queue_backoff_minutes: float = Field(
        default=5.0, ge=0, le=1440, validation_alias="JOB_QUEUE_BACKOFF_MINUTES"
    )
    job_queue_backoff_max_minutes: float = Field(
        default=360.0, ge=0, validation_alias="JOB_QUEUE_BACKOFF_MAX_MINUTES"
    )
    job_queue_name: str = Field(
        default="arq:queue", min_length=1, validation_alias="JOB_QUEUE_NAME"
    )
    # a running job whose heartbeat is older than this is re-dispatched by the reconciler
    job_queue_stall_seconds: float = Field(
        default=30.0, gt=0, validation_alias="JOB_QUEUE_STALL_SECONDS"
    )
    job_queue_heartbeat_seconds: float = Field(
        default=5.0, gt=0, validation_alias="JOB_QUEUE_HEARTBEAT_SECONDS"
    )
    # a queued row missing from Redis, or a dispatched pending row, older than this is re-dispatched
    job_queue_lost_grace_seconds: float = Field(
        default=10.0, ge=0, validation_alias="JOB_QUEUE_LOST_GRACE_SECONDS"
    )
    job_queue_result_max_bytes: int = Field(
        default=65_536, ge=256, validation_alias="JOB_QUEUE_RESULT_MAX_BYTES"
    )
