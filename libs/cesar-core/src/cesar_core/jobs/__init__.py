"""The job system: ``job_queue`` is the truth, arq is the engine (DESIGN.md section 5).

Public interface (agreed with the API, the dashboard and the e2e tests)::

    from cesar_core.jobs import (
        Job, JobStatus, JobQueue, JobSettings, JobSpec, JobType, JobRegistry, load_registry,
        FINAL_STATUSES, ACTIVE_STATUSES,
    )
"""

from cesar_core.jobs.models import ACTIVE_STATUSES, FINAL_STATUSES, Job, JobStatus
from cesar_core.jobs.queue import JobQueue
from cesar_core.jobs.registry import (
    JobContext,
    JobRegistry,
    JobSpec,
    JobType,
    PermanentJobError,
    load_registry,
)
from cesar_core.jobs.settings import JobSettings

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "Job",
    "JobContext",
    "JobQueue",
    "JobRegistry",
    "JobSettings",
    "JobSpec",
    "JobStatus",
    "JobType",
    "PermanentJobError",
    "load_registry",
]
