"""The worker's settings: the job queue's variables plus what the worker alone needs."""

from __future__ import annotations

import os
import socket
import uuid

from cesar_core.jobs.builtin import SYNCABLE_TABLES
from cesar_core.jobs.settings import JobSettings
from pydantic import Field, SecretStr

__all__ = ["WorkerConfig", "default_worker_id"]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WorkerConfig(JobSettings):
    worker_id: str | None = Field(default=None, validation_alias="WORKER_ID")
    # concurrent jobs per worker; arq reads max(5 * max_jobs, 100) ids per poll
    worker_max_jobs: int = Field(default=100, ge=1, le=10_000, validation_alias="WORKER_MAX_JOBS")
    # the Redis poll delay is min(JOB_QUEUE_POLL_INTERVAL, this); see cesar_worker.main
    worker_redis_poll_cap: float = Field(
        default=0.05, gt=0, le=60, validation_alias="WORKER_REDIS_POLL_CAP"
    )
    worker_metrics_port: int = Field(
        default=9101, ge=0, le=65535, validation_alias="WORKER_METRICS_PORT"
    )
    worker_metrics_host: str = Field(default="0.0.0.0", validation_alias="WORKER_METRICS_HOST")
    # mirror writes: one transaction at most every this many ms (sooner for `running`)
    worker_mirror_flush_ms: float = Field(
        default=20.0, gt=0, le=1000, validation_alias="WORKER_MIRROR_FLUSH_MS"
    )
    worker_mirror_start_linger_ms: float = Field(
        default=10.0, ge=0, le=1000, validation_alias="WORKER_MIRROR_START_LINGER_MS"
    )
    # SIGTERM: running jobs get this long to finish before they are interrupted
    worker_shutdown_grace_seconds: float = Field(
        default=20.0, ge=0, le=3600, validation_alias="WORKER_SHUTDOWN_GRACE_SECONDS"
    )
    worker_reconcile_batch: int = Field(
        default=1000, ge=1, le=100_000, validation_alias="WORKER_RECONCILE_BATCH"
    )
    worker_views_refresh_seconds: int = Field(
        default=60, ge=1, validation_alias="WORKER_VIEWS_REFRESH_SECONDS"
    )
    # scheduled jobs (cesar_worker.schedule): seconds between enqueues, 0 = off; arq cron
    # granularity makes anything above an hour hourly
    memory_consolidate_seconds: float = Field(
        default=3600.0, ge=0, validation_alias="MEMORY_CONSOLIDATE_SECONDS"
    )
    reputation_compute_seconds: float = Field(
        default=900.0, ge=0, validation_alias="REPUTATION_COMPUTE_SECONDS"
    )
    ollama_url: str = Field(default="http://ollama:11434", validation_alias="OLLAMA_URL")
    ollama_timeout_seconds: float = Field(
        default=300.0, gt=0, validation_alias="OLLAMA_TIMEOUT_SECONDS"
    )
    # when set, llm.generate steps go to the Ollama proxy here (cache, limits, metrics) instead
    # of OLLAMA_URL
    ollama_proxy_url: str | None = Field(default=None, validation_alias="OLLAMA_PROXY_URL")
    supabase_db_url: SecretStr | None = Field(default=None, validation_alias="SUPABASE_DB_URL")
    supabase_sync_tables: str = Field(
        default=",".join(SYNCABLE_TABLES), validation_alias="SUPABASE_SYNC_TABLES"
    )
    # named sync targets: a JSON object {"name": "postgresql://..."} or name=URL pairs separated
    # by whitespace (SUPABASE_TARGETS_FILE works too); see cesar_worker.sync_targets
    supabase_targets: SecretStr | None = Field(default=None, validation_alias="SUPABASE_TARGETS")
    # the worker enqueues sync.supabase for every configured target this often (0 = never)
    supabase_sync_interval_seconds: float = Field(
        default=60.0, ge=0, le=86_400, validation_alias="SUPABASE_SYNC_INTERVAL_SECONDS"
    )
    # each run re-reads rows stamped up to this long before its cursor (late commits)
    supabase_sync_safety_window_seconds: float = Field(
        default=300.0, ge=0, le=86_400, validation_alias="SUPABASE_SYNC_SAFETY_WINDOW_SECONDS"
    )
    # every this many seconds a run compares all keys with the target (deletes, missed rows)
    supabase_sync_compare_seconds: float = Field(
        default=3600.0, ge=0, le=7 * 86_400, validation_alias="SUPABASE_SYNC_COMPARE_SECONDS"
    )
    allow_insecure_sync_targets: bool = Field(
        default=False, validation_alias="ALLOW_INSECURE_SYNC_TARGETS"
    )
    # workflows started by workflows: at most this many levels below the first one
    workflow_max_depth: int = Field(default=5, ge=0, le=100, validation_alias="WORKFLOW_MAX_DEPTH")
    # a step's strings after {{...}} substitution: at most this many bytes (UTF-8) in total
    workflow_max_rendered_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        validation_alias="WORKFLOW_MAX_RENDERED_BYTES",
    )
    alert_webhook_url: SecretStr | None = Field(default=None, validation_alias="ALERT_WEBHOOK_URL")
    alert_window_minutes: float = Field(default=15.0, gt=0, validation_alias="ALERT_WINDOW_MINUTES")
    ingest_base_dir: str | None = Field(default=None, validation_alias="INGEST_BASE_DIR")
    # ingest.email: the IMAP account (imaps://host[:port]; imap:// only on loopback, for tests)
    imap_url: str | None = Field(default=None, validation_alias="IMAP_URL")
    imap_user: str | None = Field(default=None, validation_alias="IMAP_USER")
    imap_password: SecretStr | None = Field(default=None, validation_alias="IMAP_PASSWORD")
    imap_folders: str = Field(default="INBOX", validation_alias="IMAP_FOLDERS")
    imap_timeout_seconds: float = Field(default=30.0, gt=0, validation_alias="IMAP_TIMEOUT_SECONDS")
    # a CA bundle for a server certificate signed by a private CA (else the system's)
    imap_ca_file: str | None = Field(default=None, validation_alias="IMAP_CA_FILE")
    email_ingest_interval_seconds: float | None = Field(
        default=None, gt=0, validation_alias="EMAIL_INGEST_INTERVAL_SECONDS"
    )

    @property
    def llm_base_url(self) -> str:
        """Where llm.generate steps go: the proxy when OLLAMA_PROXY_URL is set, else Ollama."""
        return self.ollama_proxy_url or self.ollama_url

    def resolved_worker_id(self) -> str:
        return self.worker_id or default_worker_id()

    def email_folders(self) -> list[str]:
        return [f.strip() for f in self.imap_folders.split(",") if f.strip()]

    def sync_tables(self) -> list[str]:
        wanted = {t.strip() for t in self.supabase_sync_tables.split(",") if t.strip()}
        return [t for t in SYNCABLE_TABLES if t in wanted]
