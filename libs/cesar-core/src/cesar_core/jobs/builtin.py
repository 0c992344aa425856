"""Specs (names, payload models, timeouts) of the built-in job types.

The functions live in the worker (``cesar_worker.jobs``) and are joined to these specs by
the ``cesar.jobs`` entry points; the API needs only the specs to validate what it enqueues.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cesar_core.jobs.registry import JobSpec

__all__ = [
    "BUILTIN_SPECS",
    "FINANCIAL_INGEST",
    "MATERIALIZED_VIEWS",
    "MEMORY_CONSOLIDATE",
    "NOOP",
    "REFRESH_VIEWS",
    "REPUTATION_COMPUTE",
    "SUPABASE_SYNC",
    "SYNCABLE_TABLES",
    "WORKFLOW_EXECUTE",
    "FinancialIngestPayload",
    "MemoryConsolidatePayload",
    "NoopPayload",
    "RefreshViewsPayload",
    "ReputationComputePayload",
    "SupabaseSyncPayload",
    "WorkflowExecutePayload",
]

MATERIALIZED_VIEWS = ("mv_sync_lag", "mv_job_queue_backlog", "mv_ingestion_errors")
# Tables sync.supabase may copy, in dependency order (parents first).
SYNCABLE_TABLES = ("agents", "workflow_templates", "workflow_executions", "financial_data")


def _has_password(url: str) -> bool:
    """A password in a URL (``user:secret@``, ``?password=``) or in a key=value DSN."""
    if "://" not in url:
        return "password" in url.lower()
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # malformed netloc: refuse anything that could hide one
        return "@" in url or "password" in url.lower()
    query = {k.lower() for k in parse_qs(parts.query, keep_blank_values=True)}
    return bool(password) or "password" in query


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowExecutePayload(_Payload):
    template_id: UUID | None = None
    template_name: str | None = Field(default=None, min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)
    input: dict[str, Any] = Field(default_factory=dict)
    execution_id: UUID | None = None
    triggered_by: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_template(self) -> WorkflowExecutePayload:
        if (self.template_id is None) == (self.template_name is None):
            raise ValueError("give exactly one of template_id or template_name")
        return self


class FinancialIngestPayload(_Payload):
    source: str = Field(default="manual", min_length=1, max_length=100)
    format: Literal["csv", "json"] | None = None
    data: str | list[dict[str, Any]] | None = None
    path: str | None = Field(default=None, min_length=1)
    bar_interval: str = Field(default="1d", min_length=1, max_length=20)
    symbol: str | None = Field(default=None, min_length=1, max_length=40)

    @model_validator(mode="after")
    def _one_input(self) -> FinancialIngestPayload:
        if (self.data is None) == (self.path is None):
            raise ValueError("give exactly one of data (CSV text or a list of rows) or path")
        if isinstance(self.data, list) and self.format == "csv":
            raise ValueError("format csv needs data as CSV text, not a list")
        return self


class SupabaseSyncPayload(_Payload):
    tables: list[str] | None = None
    target_url: str | None = Field(
        default=None,
        description="overrides SUPABASE_DB_URL; stored in job_queue.payload, so it may not "
        "carry a password (use SUPABASE_DB_URL, or a password file / PGPASSFILE)",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000)
    max_batches: int = Field(default=100, ge=1, le=10_000)

    @field_validator("target_url")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        """The payload is stored in ``job_queue`` and shown by the API: no secrets in it."""
        if url is not None and _has_password(url):
            raise ValueError(
                "target_url must not contain a password (the payload is stored in job_queue "
                "and shown by the API); set SUPABASE_DB_URL instead"
            )
        return url

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, tables: list[str] | None) -> list[str] | None:
        if tables is None:
            return None
        unknown = sorted(set(tables) - set(SYNCABLE_TABLES))
        if unknown:
            raise ValueError(
                f"cannot sync {', '.join(unknown)}; syncable tables: {', '.join(SYNCABLE_TABLES)}"
            )
        return [t for t in SYNCABLE_TABLES if t in tables]


class RefreshViewsPayload(_Payload):
    views: list[Literal["mv_sync_lag", "mv_job_queue_backlog", "mv_ingestion_errors"]] | None = None


class NoopPayload(_Payload):
    sleep_seconds: float = Field(default=0.0, ge=0, le=300)
    fail: str | None = Field(default=None, max_length=1000, description="raise with this message")
    echo: Any = None


class MemoryConsolidatePayload(_Payload):
    """The hippocampal replay; ``as_of`` (default: the job's creation time) fixes the result."""

    agent_id: UUID | None = Field(default=None, description="one agent; default every agent")
    as_of: AwareDatetime | None = Field(
        default=None, description="reference time; default the job's created_at"
    )
    merge_threshold: float = Field(
        default=0.8, ge=0.5, le=1.0, description="token Jaccard at which memories merge"
    )
    unused_days: float = Field(
        default=7.0, gt=0, le=3650, description="memories not recalled this long decay"
    )
    max_episodes: int = Field(default=500, ge=1, le=10_000)
    trigger: Literal["scheduled", "manual", "idle", "consolidation", "error_spike"] = "manual"


class ReputationComputePayload(_Payload):
    agent_id: UUID | None = Field(default=None, description="one agent; default every agent")
    as_of: AwareDatetime | None = Field(
        default=None, description="reference time; default the job's created_at"
    )
    window_days: float = Field(default=30.0, gt=0, le=3650)
    half_life_days: float = Field(default=7.0, gt=0, le=3650)
    trigger: Literal["scheduled", "manual"] = "manual"


WORKFLOW_EXECUTE = JobSpec(
    "workflow.execute",
    WorkflowExecutePayload,
    timeout_seconds=3600,
    description="run the steps of a workflow template, recording progress in workflow_executions",
)
FINANCIAL_INGEST = JobSpec(
    "ingest.financial",
    FinancialIngestPayload,
    timeout_seconds=900,
    description="validate and upsert bars into financial_data; counts and errors in ingestion_log",
)
SUPABASE_SYNC = JobSpec(
    "sync.supabase",
    SupabaseSyncPayload,
    timeout_seconds=1800,
    description="copy changed rows to the Supabase database; cursors and lag recorded",
)
REFRESH_VIEWS = JobSpec(
    "maintenance.refresh_views",
    RefreshViewsPayload,
    timeout_seconds=600,
    description="REFRESH MATERIALIZED VIEW CONCURRENTLY for the monitoring views",
)
NOOP = JobSpec(
    "maintenance.noop",
    NoopPayload,
    timeout_seconds=330,
    description="does nothing (optionally sleeps or fails): benchmarks and checks",
)

MEMORY_CONSOLIDATE = JobSpec(
    "memory.consolidate",
    MemoryConsolidatePayload,
    timeout_seconds=1800,
    description="replay recent episodes: merge near-duplicate memories, strengthen co-recalled "
    "associations, decay unused ones; runs recorded in replay_sessions / memory_consolidations",
)
REPUTATION_COMPUTE = JobSpec(
    "reputation.compute",
    ReputationComputePayload,
    timeout_seconds=900,
    description="recompute agent_reputation from task and job outcomes; events recorded in "
    "agent_reputation_events",
)

BUILTIN_SPECS = (
    WORKFLOW_EXECUTE,
    FINANCIAL_INGEST,
    SUPABASE_SYNC,
    REFRESH_VIEWS,
    NOOP,
    MEMORY_CONSOLIDATE,
    REPUTATION_COMPUTE,
)
