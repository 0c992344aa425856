"""The job system's settings (shared by the API that enqueues and the worker that runs)."""

from __future__ import annotations

from pydantic import Field, model_validator

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
    # the lease of a running attempt: its worker renews it every JOB_QUEUE_HEARTBEAT_SECONDS;
    # one not renewed for this long (by the database's clock) is taken over by the reconciler
    job_queue_stall_seconds: float = Field(
        default=10.0, gt=0, validation_alias="JOB_QUEUE_STALL_SECONDS"
    )
    job_queue_heartbeat_seconds: float = Field(
        default=3.0, gt=0, validation_alias="JOB_QUEUE_HEARTBEAT_SECONDS"
    )
    # a queued row missing from Redis, or a dispatched pending row, older than this is re-dispatched
    job_queue_lost_grace_seconds: float = Field(
        default=10.0, ge=0, validation_alias="JOB_QUEUE_LOST_GRACE_SECONDS"
    )
    # finished jobs (and their attempts) older than this are removed
    job_queue_retention_days: float = Field(
        default=7.0, gt=0, validation_alias="JOB_QUEUE_RETENTION_DAYS"
    )
    # a job whose type this worker does not know waits this long for a worker that does
    job_queue_unknown_type_delay_seconds: float = Field(
        default=30.0, gt=0, validation_alias="JOB_QUEUE_UNKNOWN_TYPE_DELAY_SECONDS"
    )
    job_queue_result_max_bytes: int = Field(
        default=65_536, ge=256, validation_alias="JOB_QUEUE_RESULT_MAX_BYTES"
    )

    @model_validator(mode="after")
    def _lease_outlives_renewals(self) -> JobSettings:
        if self.job_queue_heartbeat_seconds * 3 > self.job_queue_stall_seconds:
            raise ValueError(
                "JOB_QUEUE_STALL_SECONDS (the lease) must be at least three times "
                "JOB_QUEUE_HEARTBEAT_SECONDS (the renewal period), got "
                f"{self.job_queue_stall_seconds:g} and {self.job_queue_heartbeat_seconds:g}"
            )
        return self

    def outage_gap_seconds(self) -> float:
        """A pause between two ticks of the lease clock longer than this counts as a database
        outage. Every worker ticks once per renewal period, on a fixed cadence, so a longer
        pause means nobody could reach the database; an undetected outage (at most two periods)
        plus the period before it stays shorter than a lease (at least three periods)."""
        return 2 * self.job_queue_heartbeat_seconds
