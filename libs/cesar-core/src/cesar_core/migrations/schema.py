"""What a ready database must contain: the operators' checklist, as data."""

from __future__ import annotations

__all__ = ["CRITICAL_TABLES", "MATERIALIZED_VIEWS", "MIN_TABLE_COUNT"]

CRITICAL_TABLES = (
    "agents",
    "agent_events",
    "financial_data",
    "workflow_templates",
    "workflow_executions",
    "supabase_sync_state",
    "ingestion_log",
    "sync_status",
    "llm_cache_metrics",
    "email_ingest_state",
    "job_queue",
)

MATERIALIZED_VIEWS = ("mv_sync_lag", "mv_job_queue_backlog", "mv_ingestion_errors")

MIN_TABLE_COUNT = 30
