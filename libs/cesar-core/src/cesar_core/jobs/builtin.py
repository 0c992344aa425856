"""Specs (names, payload models, timeouts) of the built-in job types.

The functions live in the worker (``cesar_worker.jobs``) and are joined to these specs by
the ``cesar.jobs`` entry points; the API needs only the specs to validate what it enqueues.
"""

from __future__ import annotations

from typing import Any, Literal
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
    "A2A_TASK",
    "BUILTIN_SPECS",
    "EMAIL_INGEST",
    "FINANCIAL_INGEST",
    "MATERIALIZED_VIEWS",
    "MEMORY_CONSOLIDATE",
    "NOOP",
    "REFRESH_VIEWS",
    "REPUTATION_COMPUTE",
    "SUPABASE_SYNC",
    "SYNCABLE_TABLES",
    "WORKFLOW_EXECUTE",
    "A2aTaskPayload",
    "EmailIngestPayload",
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


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowExecutePayload(_Payload):
    template_id: UUID | None = None
    template_name: str | None = Field(default=None, min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)
    input: dict[str, Any] = Field(default_factory=dict)
    execution_id: UUID | None = None
    triggered_by: str | None = Field(default=None, max_length=200)
    depth: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="how many workflows started this one (the worker sets it for its enqueue "
        "steps; a workflow deeper than WORKFLOW_MAX_DEPTH is refused)",
    )

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
    target: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="name of a sync target the operator configured (SUPABASE_TARGETS); "
        "default: SUPABASE_DB_URL",
    )
    target_url: str | None = Field(
        default=None, description="refused: sync targets are the operator's configuration"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000)
    max_batches: int = Field(default=100, ge=1, le=10_000)

    @field_validator("target_url")
    @classmethod
    def _no_target_url(cls, url: str | None) -> str | None:
        """A caller-chosen URL would let any write key point the worker at any host."""
        if url is not None:
            raise ValueError(
                "target_url is not accepted: sync targets are configured by the operator "
                "(SUPABASE_DB_URL, SUPABASE_TARGETS); name one with target"
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


class EmailIngestPayload(_Payload):
    """Which folders to read (default: IMAP_FOLDERS); the account comes from the worker's
    settings only, so no credential is ever stored in a payload."""

    folders: list[str] | None = Field(default=None, min_length=1, max_length=50)
    max_messages: int = Field(default=1000, ge=1, le=100_000, description="per folder and run")

    @field_validator("folders")
    @classmethod
    def _plain_names(cls, folders: list[str] | None) -> list[str] | None:
        if folders is None:
            return None
        for name in folders:
            if not name.strip() or len(name) > 200 or any(c in name for c in "\r\n\0"):
                raise ValueError(f"folder {name!r} is not a usable IMAP folder name")
        return folders


class RefreshViewsPayload(_Payload):
    views: list[Literal["mv_sync_lag", "mv_job_queue_backlog", "mv_ingestion_errors"]] | None = None


class NoopPayload(_Payload):
    sleep_seconds: float = Field(default=0.0, ge=0, le=300)
    fail: str | None = Field(default=None, max_length=1000, description="raise with this message")
    echo: Any = None


class A2aTaskPayload(_Payload):
    """An A2A message to an agent; the task id is the job id (see :mod:`cesar_core.a2a`)."""

    agent_id: UUID
    context_id: UUID = Field(description="the A2A context: the a2a_conversations row")
    message_id: UUID = Field(description="the a2a_messages row of the request")
    text: str = Field(min_length=1, max_length=100_000, description="the message's text")
    message: dict[str, Any] = Field(description="the A2A Message as protocol JSON")


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
EMAIL_INGEST = JobSpec(
    "ingest.email",
    EmailIngestPayload,
    timeout_seconds=900,
    description="fetch new messages over IMAP into email_messages; state per folder, errors in "
    "ingestion_log",
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

A2A_TASK = JobSpec(
    "a2a.task",
    A2aTaskPayload,
    timeout_seconds=600,
    description="answer an A2A message to an agent (its model through the LLM proxy, or an "
    "echo); the reply is stored in a2a_messages and returned as the task's artifact",
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
    EMAIL_INGEST,
    SUPABASE_SYNC,
    REFRESH_VIEWS,
    NOOP,
    A2A_TASK,
    MEMORY_CONSOLIDATE,
    REPUTATION_COMPUTE,
)
